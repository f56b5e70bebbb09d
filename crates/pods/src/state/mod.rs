//! The lifecycle state machines, with their legal edges checked at compile time.
//!
//! A state is a type implementing [`State`] for some context `C` (a pod worker,
//! a container worker). Its `next` method does the state's work and returns
//! the following state through [`Transition::next`], which only compiles when
//! `From: TransitionTo<To>` — the edge is declared in [`pod`] or
//! [`container`]. An illegal edge is a compile error, not a runtime check
//! (the idea comes from Krustlet's krator).
//!
//! # Sealed
//!
//! Nothing else can make a transition:
//!
//! - [`Transition`] has no public variant or field: its only constructors
//!   are [`Transition::next`] (a declared edge) and [`Transition::done`]
//!   (a [`Terminal`] state).
//! - a state cannot be built outside its module: unit states carry a
//!   private field, the others have private fields, and the machines are
//!   entered through `pod::start` / `container::start_state`.
//! - [`State`], [`TransitionTo`] and [`Terminal`] are sealed (a private
//!   supertrait), so no other crate can add a state or an edge.
//!
//! `crates/pods/tests/compile_fail.rs` proves each point on stable Rust:
//! it compiles the programs in `crates/pods/tests/compile-fail/` with
//! `trybuild` and compares the compiler's messages with the `.stderr`
//! files next to them.
//!
//! [`drive`] runs a machine from a start state until a state returns
//! [`Transition::done`].
//!
//! A declared edge builds:
//!
//! ```
//! use wasmlet_pods::{ContainerWorker, PodWorker};
//! use wasmlet_pods::state::{Transition, container, pod};
//!
//! fn delete(from: Box<pod::Finished>, to: pod::Deleting) -> Transition<PodWorker> {
//!     Transition::next(from, to)
//! }
//! fn restart(from: Box<container::CrashBackOff>, to: container::Pulling) -> Transition<ContainerWorker> {
//!     Transition::next(from, to)
//! }
//! fn end(from: Box<pod::Cleanup>) -> Transition<PodWorker> {
//!     Transition::done(from)
//! }
//! ```

pub mod container;
pub mod pod;

use futures::future::BoxFuture;

/// The supertrait that seals [`State`], [`TransitionTo`] and [`Terminal`]:
/// public, in a private module, so only this module's children implement it.
mod sealed {
    #[allow(unreachable_pub, reason = "public so that public traits may name it; unreachable on purpose (sealed)")]
    pub trait Sealed {}
}

/// The private field of the unit states: only their module builds them.
struct Seal;

/// One state of a machine whose context is `C`.
pub trait State<C>: sealed::Sealed + Send + 'static {
    /// The state's name, for logs and status.
    fn name(&self) -> &'static str;

    /// Does this state's work and says what comes next.
    fn next<'a>(self: Box<Self>, ctx: &'a mut C) -> BoxFuture<'a, Transition<C>>;
}

/// Declares a legal edge `Self → Next`. Implemented only in this module's
/// children, next to the states (sealed).
pub trait TransitionTo<Next>: sealed::Sealed {}

/// Marks the states a machine may end in (sealed).
pub trait Terminal: sealed::Sealed {}

/// What a state returns: the next state, or the end of the machine. Built
/// only by [`Transition::next`] and [`Transition::done`].
pub struct Transition<C>(Step<C>);

enum Step<C> {
    /// Continue in this state.
    Next(Box<dyn State<C>>),
    /// The machine is finished.
    Done,
}

impl<C> Transition<C> {
    /// Moves from `from` to `to`; compiles only for a declared edge.
    pub fn next<From, To>(from: Box<From>, to: To) -> Self
    where
        From: State<C> + TransitionTo<To>,
        To: State<C>,
    {
        drop(from);
        Transition(Step::Next(Box::new(to)))
    }

    /// Ends the machine from `from`; compiles only for states that may end it.
    pub fn done<From>(from: Box<From>) -> Self
    where
        From: State<C> + Terminal,
    {
        drop(from);
        Transition(Step::Done)
    }
}

/// Runs a machine from `start` until it is done, reporting each state entered
/// to `on_enter` (for logs and tests).
pub async fn drive<C: 'static>(ctx: &mut C, start: Box<dyn State<C>>, mut on_enter: impl FnMut(&'static str)) {
    let mut state = start;
    loop {
        on_enter(state.name());
        match state.next(ctx).await.0 {
            Step::Next(next) => state = next,
            Step::Done => return,
        }
    }
}

/// Declares edges: `edges!(A => B, C; B => C);`
macro_rules! edges {
    ($($from:ty => $($to:ty),+);+ $(;)?) => {
        $($(impl $crate::state::TransitionTo<$to> for $from {})+)+
    };
}
pub(crate) use edges;

/// Declares the states of a machine (implements the seal): `states!(A, B);`
macro_rules! states {
    ($($state:ty),+ $(,)?) => {
        $(impl $crate::state::sealed::Sealed for $state {})+
    };
}
pub(crate) use states;

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx(Vec<&'static str>);
    struct A;
    struct B(u32);
    struct End;
    states!(A, B, End);
    edges!(A => B; B => B, End);
    impl Terminal for End {}

    impl State<Ctx> for A {
        fn name(&self) -> &'static str {
            "A"
        }
        fn next<'a>(self: Box<Self>, _: &'a mut Ctx) -> BoxFuture<'a, Transition<Ctx>> {
            Box::pin(async move { Transition::next(self, B(0)) })
        }
    }
    impl State<Ctx> for B {
        fn name(&self) -> &'static str {
            "B"
        }
        fn next<'a>(self: Box<Self>, _: &'a mut Ctx) -> BoxFuture<'a, Transition<Ctx>> {
            Box::pin(async move {
                let n = self.0;
                if n < 2 { Transition::next(self, B(n + 1)) } else { Transition::next(self, End) }
            })
        }
    }
    impl State<Ctx> for End {
        fn name(&self) -> &'static str {
            "End"
        }
        fn next<'a>(self: Box<Self>, _: &'a mut Ctx) -> BoxFuture<'a, Transition<Ctx>> {
            Box::pin(async move { Transition::done(self) })
        }
    }

    #[tokio::test]
    async fn drives_through_declared_edges_until_done() {
        let mut ctx = Ctx(Vec::new());
        let mut seen = Vec::new();
        drive(&mut ctx, Box::new(A), |s| seen.push(s)).await;
        assert_eq!(seen, ["A", "B", "B", "B", "End"]);
        assert!(ctx.0.is_empty());
    }
}
