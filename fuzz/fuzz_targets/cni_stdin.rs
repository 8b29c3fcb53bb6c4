//! The network configuration a container runtime writes to `cilium-cni`'s
//! standard input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = cni::config::decode(data) {
        let _ = cni::config::version_hint(&doc);
    }
});
