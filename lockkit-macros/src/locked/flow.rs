//! The block of `locked!` runs inside a closure (so `.await` in it cannot compile, whatever
//! wrote it); this module carries the control flow that leaves the block through that
//! closure. Each `return`, `?`, `break` and `continue` written in the block that leaves it
//! becomes a `return` of an `Exit` from the closure, which the expansion repeats outside it:
//!
//! ```text
//! return r          →  return Exit::Return(r)
//! e?                →  match Branch::branch(e) { Continue(v) => v,
//!                         Break(r) => return Exit::Return(FromResidual::from_residual(r)) }
//! break / continue  →  return Exit::Jump(..)       (one variant per target and kind)
//! ```
//!
//! Closures, `async` blocks, `const` blocks and items inside the block keep their own control
//! flow and are not entered; loops and labelled blocks inside it keep theirs. Macro calls
//! whose arguments are expressions (`println!`, `vec!`, `assert!`, ..) are rewritten inside,
//! and so is a nested `locked!`. A jump that a macro produces from tokens the block cannot see
//! (`anyhow::bail!`) is not rewritten: it is then a type error at the macro call (`return`)
//! or E0267 (`break` inside of a closure), never a jump to the wrong place.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Lifetime, Token};

use super::parse::Locked;

/// A `break` or `continue` that leaves the block, by target.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Jump {
    pub(crate) is_break: bool,
    pub(crate) label: Option<Lifetime>,
    pub(crate) value: bool,
}

/// The control flow leaving the block, found while rewriting it.
pub(crate) struct Flow {
    krate: TokenStream,
    /// A `return` or `?` leaves it.
    pub(crate) returns: bool,
    /// Where the first `return`'s value (or `?`) is: the `return` repeated outside the
    /// closure is put there, so borrow errors about what it returns point at the user's code.
    pub(crate) first_return: Option<Span>,
    /// The `break`/`continue` targets outside the block, in order of appearance.
    pub(crate) jumps: Vec<Jump>,
    /// The first `.await` written in the block itself (not in an `async` block or closure).
    pub(crate) first_await: Option<Span>,
    /// Labels of loops and blocks inside the block, innermost last.
    labels: Vec<Lifetime>,
    /// Loops inside the block around the current expression.
    loops: usize,
    /// Something was rewritten (so a macro call's arguments are put back re-printed).
    rewrote_any: bool,
}

/// A span at `at` with the macro's hygiene: errors point at the user's tokens, lints treat
/// the tokens as generated.
fn at(at: Span) -> Span {
    Span::mixed_site().located_at(at)
}

impl Flow {
    pub(crate) fn new(krate: &TokenStream) -> Self {
        Flow {
            krate: krate.clone(),
            returns: false,
            first_return: None,
            jumps: Vec::new(),
            first_await: None,
            labels: Vec::new(),
            loops: 0,
            rewrote_any: false,
        }
    }

    /// Rewrites `block` in place.
    pub(crate) fn rewrite(&mut self, block: &mut Block) {
        self.visit_block_mut(block);
    }

    /// `Exit::Jump(Next(..Next(Here(value))))`: target `i` carrying `value` (`()` when the
    /// jump has none). The chain ends in `Infallible` (see [`Flow::exit_type`]).
    pub(crate) fn jump_expr(&self, i: usize, value: TokenStream, span: Span) -> TokenStream {
        let krate = &self.krate;
        let mut v = quote_spanned!(span=> #krate::__private::Jump::Here(#value));
        for _ in 0..i {
            v = quote_spanned!(span=> #krate::__private::Jump::Next(#v));
        }
        quote_spanned!(span=> #krate::__private::Exit::Jump(#v))
    }

    /// The pattern of the jumps after the last target: never matched.
    pub(crate) fn jump_tail_pat(&self, never: &syn::Ident) -> TokenStream {
        let krate = &self.krate;
        let mut v = quote!(#never);
        for _ in 0..self.jumps.len() {
            v = quote!(#krate::__private::Jump::Next(#v));
        }
        quote!(#krate::__private::Exit::Jump(#v))
    }

    /// The closure's return type: `Exit<V, R, J>` with `V` inferred unless the block
    /// `diverges` (`Infallible` then), `R` inferred when something returns
    /// and `Infallible` otherwise, and `J` a chain of one `Jump` per target ending in
    /// `Infallible`, so that no type is left for inference to guess.
    pub(crate) fn exit_type(&self, diverges: bool) -> TokenStream {
        let krate = &self.krate;
        let never = quote!(::core::convert::Infallible);
        let v = if diverges { never.clone() } else { quote!(_) };
        let r = if self.returns {
            quote!(_)
        } else {
            never.clone()
        };
        let mut j = never;
        for _ in &self.jumps {
            j = quote!(#krate::__private::Jump<_, #j>);
        }
        quote!(#krate::__private::Exit<#v, #r, #j>)
    }

    fn target(&mut self, jump: Jump) -> usize {
        if let Some(i) = self.jumps.iter().position(|j| *j == jump) {
            return i;
        }
        self.jumps.push(jump);
        self.jumps.len() - 1
    }

    /// Whether a `break`/`continue` with this label (or none) leaves the block.
    fn leaves(&self, label: &Option<Lifetime>) -> bool {
        match label {
            None => self.loops == 0,
            Some(l) => !self.labels.iter().any(|x| x.ident == l.ident),
        }
    }

    fn in_loop(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self), is_loop: bool) {
        if let Some(l) = label {
            self.labels.push(l.name.clone());
        }
        if is_loop {
            self.loops += 1;
        }
        f(self);
        if is_loop {
            self.loops -= 1;
        }
        if label.is_some() {
            self.labels.pop();
        }
    }

    /// Rewrites the arguments of a macro call when they are expressions (or a `locked!`).
    fn rewrite_macro(&mut self, mac: &mut syn::Macro) {
        let is_locked = mac
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "locked");
        if is_locked {
            if let Ok(mut inner) = syn::parse2::<Locked>(mac.tokens.clone()) {
                let outer = std::mem::replace(&mut self.rewrote_any, false);
                for item in &mut inner.items {
                    self.visit_expr_mut(&mut item.lock);
                }
                self.visit_block_mut(&mut inner.body);
                match &mut inner.wait {
                    super::parse::Wait::Forever => {}
                    super::parse::Wait::Try(b) => self.visit_block_mut(b),
                    super::parse::Wait::For(t, b) => {
                        self.visit_expr_mut(t);
                        self.visit_block_mut(b);
                    }
                }
                if self.rewrote_any {
                    mac.tokens = inner.to_token_stream();
                }
                self.rewrote_any |= outer;
            }
            return;
        }
        let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
        let outer = std::mem::replace(&mut self.rewrote_any, false);
        if let Ok(mut args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            for a in args.iter_mut() {
                self.visit_expr_mut(a);
            }
            if self.rewrote_any {
                mac.tokens = args.to_token_stream();
            }
        } else if let Ok((mut value, semi, mut len)) = syn::parse::Parser::parse2(
            // `vec![value; len]`
            |input: syn::parse::ParseStream| {
                Ok((
                    input.parse::<Expr>()?,
                    input.parse::<Token![;]>()?,
                    input.parse::<Expr>()?,
                ))
            },
            mac.tokens.clone(),
        ) {
            self.visit_expr_mut(&mut value);
            self.visit_expr_mut(&mut len);
            if self.rewrote_any {
                mac.tokens = quote!(#value #semi #len);
            }
        }
        self.rewrote_any |= outer;
    }
}

impl VisitMut for Flow {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            // Their own control flow, their own `.await`.
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {}
            Expr::Await(a) => {
                self.first_await.get_or_insert(a.await_token.span());
                visit_mut::visit_expr_await_mut(self, a);
            }
            Expr::Return(r) => {
                if let Some(v) = &mut r.expr {
                    self.visit_expr_mut(v);
                }
                self.returns = true;
                self.rewrote_any = true;
                let span = at(r.return_token.span());
                let value_at = r.expr.as_ref().map_or(span, |v| v.span());
                self.first_return.get_or_insert(value_at);
                let krate = &self.krate;
                let v = match &r.expr {
                    Some(v) => quote!(#v),
                    None => quote_spanned!(span=> ()),
                };
                *e = syn::parse_quote_spanned!(span=>
                    return #krate::__private::Exit::Return(#v)
                );
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                self.returns = true;
                self.rewrote_any = true;
                let span = at(t.question_token.span());
                self.first_return.get_or_insert(span);
                let krate = &self.krate;
                let inner = &t.expr;
                let (v, r) = (
                    syn::Ident::new("__lockkit_v", Span::mixed_site()),
                    syn::Ident::new("__lockkit_r", Span::mixed_site()),
                );
                *e = syn::parse_quote_spanned!(span=>
                    match #krate::__private::Branch::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#v) => #v,
                        ::core::ops::ControlFlow::Break(#r) => {
                            return #krate::__private::Exit::Return(
                                #krate::__private::FromResidual::from_residual(#r),
                            )
                        }
                    }
                );
            }
            Expr::Break(b) => {
                if let Some(v) = &mut b.expr {
                    self.visit_expr_mut(v);
                }
                if !self.leaves(&b.label) {
                    return;
                }
                self.rewrote_any = true;
                let span = at(b.break_token.span());
                let i = self.target(Jump {
                    is_break: true,
                    label: b.label.clone(),
                    value: b.expr.is_some(),
                });
                let v = match &b.expr {
                    Some(v) => quote!(#v),
                    None => quote_spanned!(span=> ()),
                };
                let jump = self.jump_expr(i, v, span);
                *e = syn::parse_quote_spanned!(span=> return #jump);
            }
            Expr::Continue(c) => {
                if !self.leaves(&c.label) {
                    return;
                }
                self.rewrote_any = true;
                let span = at(c.continue_token.span());
                let i = self.target(Jump {
                    is_break: false,
                    label: c.label.clone(),
                    value: false,
                });
                let jump = self.jump_expr(i, quote_spanned!(span=> ()), span);
                *e = syn::parse_quote_spanned!(span=> return #jump);
            }
            Expr::ForLoop(f) => {
                self.visit_expr_mut(&mut f.expr);
                let label = f.label.clone();
                let body = &mut f.body;
                self.in_loop(label.as_ref(), |s| s.visit_block_mut(body), true);
            }
            Expr::While(w) => {
                let label = w.label.clone();
                let (cond, body) = (&mut w.cond, &mut w.body);
                self.in_loop(
                    label.as_ref(),
                    |s| {
                        s.visit_expr_mut(cond);
                        s.visit_block_mut(body);
                    },
                    true,
                );
            }
            Expr::Loop(l) => {
                let label = l.label.clone();
                let body = &mut l.body;
                self.in_loop(label.as_ref(), |s| s.visit_block_mut(body), true);
            }
            Expr::Block(b) if b.label.is_some() => {
                let label = b.label.clone();
                let block = &mut b.block;
                self.in_loop(label.as_ref(), |s| s.visit_block_mut(block), false);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    // Items declared in the block have their own control flow.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        self.rewrite_macro(mac);
    }
}
