// Edges (and terminal states) are declared only next to the states: the
// traits are sealed, so another crate cannot add `Finished → Running`.
use wasmlet_pods::state::{Terminal, TransitionTo, pod};

struct Mine;

impl TransitionTo<pod::Running> for Mine {}
impl Terminal for Mine {}

fn main() {}
