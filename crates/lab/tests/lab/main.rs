//! Lab integration tests: real namespaces, real etcd, real packets (ping,
//! curl, iperf3), the seeds' manifests applied unchanged. Each test builds
//! its own uniquely named lab and tears it down, also when it fails.
//! Needs root (`make test` runs as root after scripts/setup.sh).

mod cilium;
mod common;
mod kubectl;
mod seed;
mod tunnel;
