//! Expands `locked!` into a block that owns the guard. The guard's binding has a
//! macro-private (mixed-site) name, so the user's block cannot name, move or forget it; the
//! block gets the lent data at most.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident};

use super::parse::Locked;

/// The guard's binding: mixed-site hygiene (user code cannot name it), located at the lock
/// expression so that diagnostics about the guard's type point there.
fn guard_ident(at: Span) -> Ident {
    Ident::new("__lockkit_guard", Span::mixed_site().located_at(at))
}

/// `let name = lend(&mut guard);`, or nothing for an unnamed guard.
fn lend(name: &Option<Ident>, guard: &Ident) -> TokenStream {
    match name {
        Some(n) => quote! {
            #[allow(unused_mut)]
            let mut #guard = #guard;
            let #n = ::lockkit::__private::Lend::lend(&mut #guard);
        },
        None => quote!(),
    }
}

/// The block's statements, spliced into the macro's own block (a nested block would draw
/// `unused_braces` warnings at the user's code). Hygiene keeps the guard's binding out of
/// their reach all the same.
fn body(b: &Block) -> TokenStream {
    let stmts = &b.stmts;
    quote!(#(#stmts)*)
}

/// A macro-private binding for the lock expression's value. Binding `&(expr)` with `let`
/// extends the life of a temporary the expression returns (`locked!(g = table.get(k) => ..)`)
/// to the end of the macro's block, so the guard may borrow from it.
fn lock_binding(i: usize, at: Span) -> Ident {
    Ident::new(
        &format!("__lockkit_lock{i}"),
        Span::mixed_site().located_at(at),
    )
}

pub(crate) fn expand(l: &Locked) -> TokenStream {
    let at = match l {
        Locked::One { lock, .. } | Locked::Try { lock, .. } => lock.span(),
        Locked::Many { locks, .. } => locks.span(),
    };
    let guard = guard_ident(at);
    match l {
        Locked::One {
            name,
            lock,
            body: b,
        } => {
            let bound = lock_binding(0, lock.span());
            let take = take(&bound, lock, quote!(lock));
            let lend = lend(name, &guard);
            let b = body(b);
            // Spanned at the lock (the user's block keeps its own spans), so "not a lock"
            // points at it. rustc still repeats that error once at the invocation.
            quote_spanned! {lock.span()=> {
                let #bound = &(#lock);
                let #guard = #take;
                #lend
                #b
            }}
        }
        Locked::Try {
            name,
            lock,
            body: b,
            otherwise,
        } => {
            let bound = lock_binding(0, lock.span());
            let take = take(&bound, lock, quote!(try_lock));
            let lend = lend(name, &guard);
            let b = body(b);
            let opt = Ident::new("__lockkit_try", Span::mixed_site().located_at(lock.span()));
            // The Option is bound to a local, not matched as a temporary: a temporary in the
            // tail of a block outlives the block's locals (edition 2021), which would outlive
            // `bound` as well.
            quote_spanned! {lock.span()=> {
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
        Locked::Many { locks, body: b } => {
            let bound: Vec<Ident> = locks
                .iter()
                .enumerate()
                .map(|(i, l)| lock_binding(i, l.span()))
                .collect();
            let exprs = locks.iter().map(|l| quote_spanned! {l.span()=> &(#l)});
            let dyns = locks.iter().map(|l| {
                quote_spanned! {l.span()=> &dyn ::lockkit::__private::ChainLock}
            });
            let b = body(b);
            quote! {{
                let (#(#bound,)*): (#(#dyns,)*) = (#(#exprs,)*);
                let #guard = ::lockkit::__private::lock_all([#(#bound),*]);
                #b
            }}
        }
    }
}

/// The call that takes the lock, spanned at the user's expression so that "not a lock"
/// errors point at it.
fn take(bound: &Ident, lock: &Expr, f: TokenStream) -> TokenStream {
    quote_spanned! {lock.span()=> ::lockkit::__private::#f(#bound)}
}
