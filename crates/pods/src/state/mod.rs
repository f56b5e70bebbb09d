//! The lifecycle state machines, with their legal edges checked at compile time.
//!
//! A state is a type implementing [`State`] for some context `C` (a pod worker,
//! a container worker). Its `next` method does the state's work and returns
//! the following state through [`Transition::next`], which only compiles when
//! `From: TransitionTo<To>` — the edge is declared in [`pod`] or
//! [`container`]. An illegal edge is a compile error, not a runtime check:
//! `tests/compile-fail` proves it (the idea comes from Krustlet's krator).
//!
//! [`drive`] runs a machine from a start state until a state returns
//! [`Transition::Done`].
//!
//! # Compile-time checks
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
//!
//! A finished pod cannot run again (error E0277: `Finished: TransitionTo<Running>`
//! is not satisfied):
//!
//! ```compile_fail,E0277
//! use wasmlet_pods::PodWorker;
//! use wasmlet_pods::state::{Transition, pod};
//!
//! fn rerun(from: Box<pod::Finished>, to: pod::Running) -> Transition<PodWorker> {
//!     Transition::next(from, to)
//! }
//! ```
//!
//! A rejected pod cannot start:
//!
//! ```compile_fail,E0277
//! use wasmlet_pods::PodWorker;
//! use wasmlet_pods::state::{Transition, pod};
//!
//! fn start(from: Box<pod::Rejected>, to: pod::Starting) -> Transition<PodWorker> {
//!     Transition::next(from, to)
//! }
//! ```
//!
//! A running pod cannot skip termination and be deleted:
//!
//! ```compile_fail,E0277
//! use wasmlet_pods::PodWorker;
//! use wasmlet_pods::state::{Transition, pod};
//!
//! fn delete(from: Box<pod::Running>, to: pod::Deleting) -> Transition<PodWorker> {
//!     Transition::next(from, to)
//! }
//! ```
//!
//! A running pod's machine cannot just end (only terminal states may):
//!
//! ```compile_fail,E0277
//! use wasmlet_pods::PodWorker;
//! use wasmlet_pods::state::{Transition, pod};
//!
//! fn vanish(from: Box<pod::Running>) -> Transition<PodWorker> {
//!     Transition::done(from)
//! }
//! ```
//!
//! A container that exited cannot run again without going through pulling
//! (and its back-off):
//!
//! ```compile_fail,E0277
//! use wasmlet_pods::ContainerWorker;
//! use wasmlet_pods::state::{Transition, container};
//!
//! fn rerun(from: Box<container::Completed>, to: container::Pulling) -> Transition<ContainerWorker> {
//!     Transition::next(from, to)
//! }
//! ```

pub mod container;
pub mod pod;

use futures::future::BoxFuture;

/// One state of a machine whose context is `C`.
pub trait State<C>: Send + 'static {
    /// The state's name, for logs and status.
    fn name(&self) -> &'static str;

    /// Does this state's work and says what comes next.
    fn next<'a>(self: Box<Self>, ctx: &'a mut C) -> BoxFuture<'a, Transition<C>>;
}

/// Declares a legal edge `Self → Next`. Implemented only in this module's
/// children, next to the states.
pub trait TransitionTo<Next> {}

/// What a state returns: the next state, or the end of the machine.
pub enum Transition<C> {
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
        Transition::Next(Box::new(to))
    }

    /// Ends the machine from `from`; compiles only for states that may end it.
    pub fn done<From>(from: Box<From>) -> Self
    where
        From: State<C> + Terminal,
    {
        drop(from);
        Transition::Done
    }
}

/// Marks the states a machine may end in.
pub trait Terminal {}

/// Runs a machine from `start` until it is done, reporting each state entered
/// to `on_enter` (for logs and tests).
pub async fn drive<C: 'static>(ctx: &mut C, start: Box<dyn State<C>>, mut on_enter: impl FnMut(&'static str)) {
    let mut state = start;
    loop {
        on_enter(state.name());
        match state.next(ctx).await {
            Transition::Next(next) => state = next,
            Transition::Done => return,
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx(Vec<&'static str>);
    struct A;
    struct B(u32);
    struct End;
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
