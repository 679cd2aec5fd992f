//! Expands `locked!` into a block that owns the guard. The guard's binding has a
//! macro-private (mixed-site) name, so the user's block cannot name, move or forget it; the
//! block gets the lent data at most.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident};

use super::parse::{Item, Locked, Mode, Wait};

/// A macro-private binding: mixed-site hygiene (user code cannot name it), located at `at`
/// so that diagnostics about it point at the user's tokens.
fn private(name: &str, at: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(at))
}

/// The user's block, inside the macro's block.
///
/// A block that ends in an expression is evaluated into a macro-private binding, whose value
/// the macro's block returns: the block is then its own scope, so temporaries of its tail
/// expression (the guard of `*o.lock()`) are dropped at the end of that `let`, before the
/// macro's guard; in edition 2021 a tail temporary of the macro's block itself would outlive
/// the guard (E0716). A block that ends in a statement, a macro call (`panic!`) or a jump
/// is spliced in as it is: it has no such temporaries, and reading the binding after a block
/// that diverges would draw an "unreachable expression" warning at the user's code.
fn body(b: &Block) -> TokenStream {
    let wrap = match b.stmts.last() {
        Some(syn::Stmt::Expr(e, None)) => !matches!(
            e,
            Expr::Macro(_) | Expr::Return(_) | Expr::Break(_) | Expr::Continue(_)
        ),
        _ => false,
    };
    if !wrap {
        let stmts = &b.stmts;
        return quote!(#(#stmts)*);
    }
    let value = Ident::new("__lockkit_value", Span::mixed_site());
    quote! {
        #[allow(unused_braces, clippy::let_unit_value)]
        let #value = #b;
        #value
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
    let Item { name, lock } = &l.items[0];
    let span = lock.span();
    let krate = &l.krate;
    let bound = private("__lockkit_lock", span);
    let guard = private("__lockkit_guard", span);
    let lend = lend(krate, name, &guard);
    let b = body(&l.body);
    let (plain, tried, timed) = match l.mode {
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
                let #bound = &(#lock);
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
            // The Option is bound to a local, not matched as a temporary: a temporary in the
            // tail of a block outlives the block's locals (edition 2021), which would outlive
            // `bound` as well.
            quote_spanned! {span=> {
                let #bound = &(#lock);
                let #opt = #take;
                match #opt {
                    ::core::option::Option::Some(#guard) => {
                        #lend
                        #b
                    }
                    ::core::option::Option::None => #otherwise,
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
    let binds = l.items.iter().zip(&bound).map(|(it, b)| {
        let e: &Expr = &it.lock;
        quote_spanned! {e.span()=> let #b = &(#e);}
    });
    let dyns = l.items.iter().zip(&bound).map(|(it, b)| {
        quote_spanned! {it.lock.span()=> #b as &dyn #krate::__private::ChainLock}
    });
    let lends = l.items.iter().zip(&bound).filter_map(|(it, b)| {
        let n = it.name.as_ref()?;
        Some(quote_spanned! {it.lock.span()=> let #n = #guard.lend(#b);})
    });
    let b = body(&l.body);
    quote! {{
        #(#binds)*
        let #guard = #krate::__private::lock_all([#(#dyns),*]);
        #(#lends)*
        #b
    }}
}
