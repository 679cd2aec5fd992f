//! The forms of `locked!`:
//!
//! ```text
//! locked!(lock => { .. })
//! locked!(name = lock => { .. })
//! locked!(a, b, c => { .. })
//! locked!(try lock => { .. } else { .. })
//! locked!(try name = lock => { .. } else { .. })
//! ```
//! (`set[i]` is an ordinary lock expression: lock sets index to their locks.)

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Block, Expr, Ident, Token};

pub(crate) enum Locked {
    One {
        name: Option<Ident>,
        lock: Expr,
        body: Block,
    },
    Many {
        locks: Punctuated<Expr, Token![,]>,
        body: Block,
    },
    Try {
        name: Option<Ident>,
        lock: Expr,
        body: Block,
        otherwise: Block,
    },
}

fn name(input: ParseStream) -> syn::Result<Option<Ident>> {
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
    input.parse::<Token![=>]>().map(|_| ()).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `=>` and a block: locked!(lock => { .. }) or locked!(g = lock => { .. })",
        )
    })
}

impl Parse for Locked {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![try]) {
            input.parse::<Token![try]>()?;
            let name = name(input)?;
            let lock = input.parse()?;
            arrow(input)?;
            let body = input.parse()?;
            if !input.peek(Token![else]) {
                return Err(syn::Error::new(
                    input.span(),
                    "locked!(try ..) needs an else block for when the lock is busy: \
                     locked!(try lock => { .. } else { .. })",
                ));
            }
            input.parse::<Token![else]>()?;
            let otherwise = input.parse()?;
            end(input)?;
            return Ok(Locked::Try {
                name,
                lock,
                body,
                otherwise,
            });
        }
        let name = name(input)?;
        let mut locks = Punctuated::new();
        loop {
            locks.push_value(input.parse::<Expr>()?);
            if input.peek(Token![,]) {
                locks.push_punct(input.parse()?);
                continue;
            }
            break;
        }
        arrow(input)?;
        let body = input.parse()?;
        end(input)?;
        if locks.len() == 1 {
            let lock = locks.into_iter().next().expect("one lock");
            return Ok(Locked::One { name, lock, body });
        }
        if let Some(n) = name {
            return Err(syn::Error::new(
                n.span(),
                "a guard can be named only when locked! takes one lock",
            ));
        }
        Ok(Locked::Many { locks, body })
    }
}

fn end(input: ParseStream) -> syn::Result<()> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(input.error("unexpected tokens after the block of locked!"))
    }
}
