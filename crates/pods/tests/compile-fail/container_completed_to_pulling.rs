// A completed container does not run again.
use wasmlet_pods::ContainerWorker;
use wasmlet_pods::state::{Transition, container};

fn rerun(from: Box<container::Completed>, to: container::Pulling) -> Transition<ContainerWorker> {
    Transition::next(from, to)
}

fn main() {}
