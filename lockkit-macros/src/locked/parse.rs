//! The forms of `locked!`:
//!
//! ```text
//! locked!(lock => { .. })
//! locked!(name = lock => { .. })
//! locked!(a, name = b, c => { .. })         several locks, each may lend its data
//! locked!(read name = rw => { .. })         an RwLock, shared; `write` for exclusive
//! locked!(read a = rw, write b = rw2, c => { .. })   `read`/`write` per lock
//! locked!(try [read|write] [name =] lock => { .. } else { .. })
//! locked!(try_for(timeout) [read|write] [name =] lock => { .. } else { .. })
//! locked!(crate = "path"; ..)               any form, with lockkit renamed
//! ```
//! (`set[i]` is an ordinary lock expression: lock sets index to their locks.)

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Block, Expr, Ident, Token};

use crate::msg;

/// How a single lock is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `lock()`: exclusive.
    Lock,
    /// `read()` of an RwLock.
    Read,
    /// `write()` of an RwLock.
    Write,
}

/// Whether the block waits for the lock.
pub(crate) enum Wait {
    /// Waits as long as needed.
    Forever,
    /// `try`: does not wait; the else block runs if the lock is busy.
    Try(Block),
    /// `try_for(timeout)`: waits at most `timeout`; the else block runs if it runs out.
    For(Expr, Block),
}

/// One lock of the invocation, how it is taken, and the name its data is lent under.
pub(crate) struct Item {
    pub(crate) mode: Mode,
    /// `read`/`write` as written (empty without), to print the invocation back.
    mode_kw: TokenStream,
    pub(crate) name: Option<Ident>,
    pub(crate) lock: Expr,
}

pub(crate) struct Locked {
    /// `crate = ..`: the path of the lockkit crate (`::lockkit` unless renamed).
    pub(crate) krate: TokenStream,
    /// The tokens of `crate = ..;` as written (empty without), and of `try`/`try_for`, to
    /// print an invocation back (a nested `locked!`, rewritten).
    krate_arg: TokenStream,
    wait_kw: TokenStream,
    pub(crate) wait: Wait,
    pub(crate) items: Vec<Item>,
    pub(crate) body: Block,
}

fn name(input: ParseStream) -> syn::Result<Option<Ident>> {
    if input.peek(Token![mut]) && input.peek2(Ident) && input.peek3(Token![=]) {
        let m = input.parse::<Token![mut]>()?;
        return Err(syn::Error::new(m.span, msg::LOCKED_MUT));
    }
    if input.peek(Ident)
        && input.peek2(Token![=])
        && !input.peek2(Token![=>])
        && !input.peek2(Token![==])
    {
        let name = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(Some(name))
    } else {
        Ok(None)
    }
}

fn arrow(input: ParseStream) -> syn::Result<()> {
    input
        .parse::<Token![=>]>()
        .map(|_| ())
        .map_err(|e| syn::Error::new(e.span(), msg::LOCKED_ARROW))
}

/// `crate = "path";` or `crate = path;` at the start of the invocation, and its tokens.
fn krate(input: ParseStream) -> syn::Result<(TokenStream, TokenStream)> {
    if !(input.peek(Token![crate]) && input.peek2(Token![=])) {
        return Ok((quote::quote!(::lockkit), TokenStream::new()));
    }
    let start = input.fork();
    input.parse::<Token![crate]>()?;
    input.parse::<Token![=]>()?;
    let path = if input.peek(syn::LitStr) {
        let lit: syn::LitStr = input.parse()?;
        crate::ctxt::crate_path(&lit)?
    } else {
        // Tokens up to the `;`, so `$crate` from a wrapping macro_rules passes through.
        let mut path = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![;]) {
            path.extend([input.parse::<TokenTree>()?]);
        }
        path
    };
    input
        .parse::<Token![;]>()
        .map_err(|e| syn::Error::new(e.span(), msg::LOCKED_CRATE_SEMI))?;
    Ok((path, tokens_between(&start, input)))
}

/// The tokens `start` has that `end` (a later position of the same stream) no longer has.
fn tokens_between(start: ParseStream, end: ParseStream) -> TokenStream {
    let mut out = TokenStream::new();
    let cursor = end.cursor();
    let _ = start.step(|c| {
        let mut c = *c;
        while c != cursor {
            let Some((tt, next)) = c.token_tree() else {
                break;
            };
            out.extend([tt]);
            c = next;
        }
        Ok(((), c))
    });
    out
}

/// `read` or `write` followed by a name or a lock (an identifier either way), so a lock that
/// is itself called `read` still works: `locked!(read => ..)`.
fn mode(input: ParseStream) -> syn::Result<Mode> {
    let fork = input.fork();
    if let Ok(id) = fork.parse::<Ident>() {
        if fork.peek(Ident) || fork.peek(Token![self]) {
            if id == "read" {
                input.parse::<Ident>()?;
                return Ok(Mode::Read);
            }
            if id == "write" {
                input.parse::<Ident>()?;
                return Ok(Mode::Write);
            }
        }
    }
    Ok(Mode::Lock)
}

fn wait_kind(input: ParseStream) -> syn::Result<Option<Option<Expr>>> {
    if input.peek(Token![try]) {
        input.parse::<Token![try]>()?;
        return Ok(Some(None));
    }
    let fork = input.fork();
    if let Ok(id) = fork.parse::<Ident>() {
        if id == "try_for" && fork.peek(syn::token::Paren) {
            input.parse::<Ident>()?;
            let content;
            syn::parenthesized!(content in input);
            let timeout: Expr = content.parse()?;
            return Ok(Some(Some(timeout)));
        }
    }
    Ok(None)
}

impl Parse for Locked {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (krate, krate_arg) = krate(input)?;
        let start = input.fork();
        let waits = wait_kind(input)?;
        let wait_kw = tokens_between(&start, input);
        let mut items = Vec::new();
        loop {
            let at = input.span();
            let start = input.fork();
            let mode = mode(input)?;
            let mode_kw = tokens_between(&start, input);
            let name = name(input)?;
            let lock: Expr = input.parse()?;
            items.push((
                at,
                Item {
                    mode,
                    mode_kw,
                    name,
                    lock,
                },
            ));
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
                continue;
            }
            break;
        }
        arrow(input)?;
        let body: Block = input.parse()?;
        let wait = match waits {
            None => Wait::Forever,
            Some(timeout) => {
                if !input.peek(Token![else]) {
                    return Err(syn::Error::new(input.span(), msg::LOCKED_TRY_ELSE));
                }
                input.parse::<Token![else]>()?;
                let otherwise: Block = input.parse()?;
                match timeout {
                    None => Wait::Try(otherwise),
                    Some(t) => Wait::For(t, otherwise),
                }
            }
        };
        if !input.is_empty() {
            return Err(input.error(msg::LOCKED_TRAILING));
        }
        if items.len() > 1 {
            let second = &items[1].1.lock;
            if !matches!(wait, Wait::Forever) {
                return Err(syn::Error::new_spanned(second, msg::LOCKED_TRY_MANY));
            }
        }
        Ok(Locked {
            krate,
            krate_arg,
            wait_kw,
            wait,
            items: items.into_iter().map(|(_, i)| i).collect(),
            body,
        })
    }
}

/// The invocation printed back: a `locked!` nested in another one's block, after the outer
/// one rewrote the control flow in it (`flow.rs`).
impl quote::ToTokens for Locked {
    fn to_tokens(&self, out: &mut TokenStream) {
        out.extend(self.krate_arg.clone());
        match &self.wait {
            Wait::For(t, _) => {
                let kw = self.wait_kw.clone().into_iter().next();
                out.extend(quote::quote!(#kw(#t)));
            }
            _ => out.extend(self.wait_kw.clone()),
        }
        let items = self.items.iter().map(|it| {
            let (kw, lock) = (&it.mode_kw, &it.lock);
            match &it.name {
                Some(n) => quote::quote!(#kw #n = #lock),
                None => quote::quote!(#kw #lock),
            }
        });
        let body = &self.body;
        out.extend(quote::quote!(#(#items),* => #body));
        if let Wait::Try(b) | Wait::For(_, b) = &self.wait {
            out.extend(quote::quote!(else #b));
        }
    }
}
