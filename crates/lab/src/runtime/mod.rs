//! Pod runtime (a minimal kubelet): sandboxes, CNI calls, workloads.
