// A finished pod never runs again: Finished → Running is not an edge.
use wasmlet_pods::PodWorker;
use wasmlet_pods::state::{Transition, pod};

fn rerun(from: Box<pod::Finished>, to: pod::Running) -> Transition<PodWorker> {
    Transition::next(from, to)
}

fn main() {}
