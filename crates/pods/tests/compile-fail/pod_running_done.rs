// Only terminal states may end a machine.
use wasmlet_pods::PodWorker;
use wasmlet_pods::state::{Transition, pod};

fn vanish(from: Box<pod::Running>) -> Transition<PodWorker> {
    Transition::done(from)
}

fn main() {}
