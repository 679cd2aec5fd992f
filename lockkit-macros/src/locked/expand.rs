//! Expands `locked!` into a block that owns the guard. The guard's binding has a
//! macro-private (mixed-site) name, so the user's block cannot name, move or forget it; the
//! block gets the lent data at most.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident};

use super::flow::Flow;
use super::parse::{Item, Locked, Mode, Wait};

/// A macro-private binding: mixed-site hygiene (user code cannot name it), located at `at`
/// so that diagnostics about it point at the user's tokens.
fn private(name: &str, at: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(at))
}

/// The user's block, run as a closure called once (`__private::run_block`), so that
/// `.await` in it is a compile error however it got there (the task would be suspended
/// holding the lock). The control flow that leaves the block (`return`, `?`, `break`,
/// `continue`) was rewritten by `flow.rs` into `return`s of an `Exit` from the closure,
/// repeated here outside it. The block's temporaries are dropped when the closure returns,
/// before the guard.
/// Whether the block ends in a jump (rewritten into a `return` from the closure) or a macro
/// of std's that never returns.
fn diverges(b: &Block) -> bool {
    let last = match b.stmts.last() {
        Some(syn::Stmt::Expr(e, _)) => e,
        Some(syn::Stmt::Macro(m)) => return diverging_macro(&m.mac),
        _ => return false,
    };
    match last {
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        Expr::Macro(m) => diverging_macro(&m.mac),
        _ => false,
    }
}

fn diverging_macro(m: &syn::Macro) -> bool {
    m.path.segments.last().is_some_and(|s| {
        ["panic", "unreachable", "todo", "unimplemented"]
            .iter()
            .any(|n| s.ident == n)
    })
}

fn body(krate: &TokenStream, b: &Block) -> TokenStream {
    let mut b = b.clone();
    let mut flow = Flow::new(krate);
    flow.rewrite(&mut b);
    let ty = flow.exit_type(diverges(&b));
    let exit = Ident::new("__lockkit_exit", Span::mixed_site());
    let (v, never) = (
        Ident::new("__lockkit_v", Span::mixed_site()),
        Ident::new("__lockkit_never", Span::mixed_site()),
    );
    // The returned value at the first `return`: borrow errors about it point there.
    let r = Ident::new(
        "__lockkit_r",
        Span::mixed_site().located_at(flow.first_return.unwrap_or_else(Span::call_site)),
    );
    let ret = if flow.returns {
        quote!(return #r)
    } else {
        quote!(match #r {})
    };
    let jumps = flow.jumps.iter().enumerate().map(|(i, j)| {
        let pat = flow.jump_expr(i, quote!(#v), Span::mixed_site());
        let label = &j.label;
        let jump = match (j.is_break, j.value) {
            (true, true) => quote!(break #label #v),
            (true, false) => quote!({ let _ = #v; break #label }),
            (false, _) => quote!({ let _ = #v; continue #label }),
        };
        quote!(#pat => #jump,)
    });
    let tail = flow.jump_tail_pat(&never);
    // `||` at the block: E0728 ("this is not `async`") points there.
    let closure = quote_spanned!(b.brace_token.span.join()=> ||);
    // A block that ends in a jump is the closure's body as it is (`!`, which it returns as
    // any type): an `Exit::Value` after it would be an "unreachable call" warning.
    let (run, value) = if diverges(&b) {
        let stmts = &b.stmts;
        (quote!(#(#stmts)*), quote!(match #v.into_inner() {}))
    } else {
        let value = Ident::new("__lockkit_value", Span::mixed_site());
        (
            quote! {
                #[allow(unused_braces, clippy::let_unit_value)]
                let #value = #b;
                #krate::__private::Exit::Value(#krate::__private::BlockValue::new(#value))
            },
            quote!(#v.into_inner()),
        )
    };
    quote! {
        let #exit: #ty = #krate::__private::run_block(#closure -> #ty { #run });
        match #exit {
            #krate::__private::Exit::Value(#v) => #value,
            #[allow(unreachable_patterns)]
            #krate::__private::Exit::Return(#r) => #ret,
            #(#jumps)*
            #[allow(unreachable_patterns)]
            #tail => match #never {},
        }
    }
}

/// A reference to the lock `e`: `&(e)`, or, for an index into a place (`set[i]`,
/// `table.stripes[i]`), `base.__lockkit_index(i)` (`__private::LockIndex`, the same
/// autoderef and `Index`), which a `#[striped_by]` field answers with an error naming its
/// accessor rather than "cannot index". A temporary base keeps `&(e)`, whose `let` extends
/// the temporary's life.
fn lock_ref(e: &Expr) -> TokenStream {
    fn is_place(e: &Expr) -> bool {
        match e {
            Expr::Path(_) => true,
            Expr::Field(f) => is_place(&f.base),
            Expr::Index(i) => is_place(&i.expr),
            Expr::Paren(p) => is_place(&p.expr),
            Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)) && is_place(&u.expr),
            _ => false,
        }
    }
    match e {
        Expr::Index(i) if is_place(&i.expr) => {
            let (base, index) = (&i.expr, &i.index);
            let method = Ident::new("__lockkit_index", i.bracket_token.span.join());
            quote_spanned!(e.span()=> (#base).#method(#index))
        }
        _ => quote_spanned!(e.span()=> &(#e)),
    }
}

/// `use LockIndex as _;` for [`lock_ref`].
fn lock_index_in_scope(krate: &TokenStream) -> TokenStream {
    quote! {
        #[allow(unused_imports)]
        use #krate::__private::LockIndex as _;
    }
}

/// `let name = lend(&mut guard);`, or nothing for an unnamed guard.
fn lend(krate: &TokenStream, name: &Option<Ident>, guard: &Ident) -> TokenStream {
    match name {
        Some(n) => quote! {
            #[allow(unused_mut)]
            let mut #guard = #guard;
            let #n = #krate::__private::Lend::lend(&mut #guard);
        },
        None => quote!(),
    }
}

pub(crate) fn expand(l: &Locked) -> TokenStream {
    if l.items.len() > 1 {
        return many(l);
    }
    let Item {
        name, lock, mode, ..
    } = &l.items[0];
    let span = lock.span();
    let krate = &l.krate;
    let bound = private("__lockkit_lock", span);
    let guard = private("__lockkit_guard", span);
    let lend = lend(krate, name, &guard);
    let b = body(krate, &l.body);
    let (in_scope, lock_ref) = (lock_index_in_scope(krate), lock_ref(lock));
    let (plain, tried, timed) = match mode {
        Mode::Lock => ("lock", "try_lock", "try_lock_for"),
        Mode::Read => ("read", "try_read", "try_read_for"),
        Mode::Write => ("write", "try_write", "try_write_for"),
    };
    // The calls are spanned at the lock expression, so "not a lock" points at it. Binding
    // `&(expr)` with `let` extends the life of a temporary the expression returns
    // (`locked!(g = table.get(k) => ..)`) to the end of the macro's block.
    let take = |f: &str, extra: TokenStream| {
        let f = Ident::new(f, span);
        quote_spanned! {span=> #krate::__private::#f(#bound #extra)}
    };
    match &l.wait {
        Wait::Forever => {
            let take = take(plain, quote!());
            quote_spanned! {span=> {
                #in_scope
                let #bound = #lock_ref;
                let #guard = #take;
                #lend
                #b
            }}
        }
        Wait::Try(otherwise) | Wait::For(_, otherwise) => {
            let take = match &l.wait {
                Wait::For(timeout, _) => take(timed, quote!(, #timeout)),
                _ => take(tried, quote!()),
            };
            let opt = private("__lockkit_try", span);
            // At the macro's own span, not the lock's: `::core` at a span of an edition-2015
            // crate would name a module of that crate.
            let (some, none) = (
                quote!(::core::option::Option::Some),
                quote!(::core::option::Option::None),
            );
            // The Option is bound to a local, not matched as a temporary: a temporary in the
            // tail of a block outlives the block's locals (edition 2021), which would outlive
            // `bound` as well.
            quote_spanned! {span=> {
                #in_scope
                let #bound = #lock_ref;
                let #opt = #take;
                match #opt {
                    #some(#guard) => {
                        #lend
                        #b
                    }
                    #none => #otherwise,
                }
            }}
        }
    }
}

/// `locked!(a, x = b => ..)`: every lock taken by one `MultiGuard` in the global order; each
/// named lock lends its data, borrowed from the guard so it cannot outlive it.
fn many(l: &Locked) -> TokenStream {
    let krate = &l.krate;
    let bound: Vec<Ident> = l
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| private(&format!("__lockkit_lock{i}"), it.lock.span()))
        .collect();
    let guard = private("__lockkit_guard", Span::call_site());
    // A lock written `read x` or `write x` is taken through its read or write side, a lock
    // of its own in the order (at the RwLock's place), which lends `&T` or `&mut T`.
    let binds = l.items.iter().zip(&bound).map(|(it, b)| {
        let e: &Expr = &it.lock;
        let r = lock_ref(e);
        let side = match it.mode {
            Mode::Lock => return quote_spanned! {e.span()=> let #b = #r;},
            Mode::Read => Ident::new("read_side", e.span()),
            Mode::Write => Ident::new("write_side", e.span()),
        };
        // The lock first, so a temporary it names lives as long as with the plain forms.
        quote_spanned! {e.span()=>
            let #b = #r;
            let #b = &#krate::__private::#side(#b);
        }
    });
    let in_scope = lock_index_in_scope(krate);
    let dyns = l.items.iter().zip(&bound).map(|(it, b)| {
        if it.name.is_some() {
            // The bound of its `lend`: one error if it is not such a lock.
            return quote_spanned! {it.lock.span()=> #krate::__private::held_as_chain(#b)};
        }
        // `dyn` at the macro's span: at an edition-2015 span, `dyn ::lockkit::..` is a path.
        let ty = quote!(&dyn #krate::__private::ChainLock);
        quote_spanned! {it.lock.span()=> #b as #ty}
    });
    let lends = l.items.iter().zip(&bound).filter_map(|(it, b)| {
        let n = it.name.as_ref()?;
        Some(quote_spanned! {it.lock.span()=> let #n = #guard.lend(#b);})
    });
    let b = body(krate, &l.body);
    quote! {{
        #in_scope
        #(#binds)*
        let #guard = #krate::__private::lock_all([#(#dyns),*]);
        #(#lends)*
        #b
    }}
}

/// The first `.await` written in the block itself (outside `async` blocks and closures).
pub(crate) fn first_await(l: &Locked) -> Option<Span> {
    let mut flow = Flow::new(&l.krate);
    flow.rewrite(&mut l.body.clone());
    flow.first_await
}
