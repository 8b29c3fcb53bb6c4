//! cilium-lab.
fn main() {}
