//! `cilium-lab`: builds and drives a local multi-node lab of network
//! namespaces with its own minimal cluster control plane and pod runtime.

mod controlplane;
mod runtime;

fn main() {}
