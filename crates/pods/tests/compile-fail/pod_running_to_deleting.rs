// A running pod cannot skip termination and be deleted.
use wasmlet_pods::PodWorker;
use wasmlet_pods::state::{Transition, pod};

fn delete(from: Box<pod::Running>, to: pod::Deleting) -> Transition<PodWorker> {
    Transition::next(from, to)
}

fn main() {}
