// A Transition is made only by `Transition::next` (a declared edge) or
// `Transition::done` (a terminal state), never by hand.
use wasmlet_pods::PodWorker;
use wasmlet_pods::state::{State, Transition};

fn jump(to: Box<dyn State<PodWorker>>) -> Transition<PodWorker> {
    Transition::Next(to)
}

fn stop() -> Transition<PodWorker> {
    Transition::Done
}

fn main() {}
