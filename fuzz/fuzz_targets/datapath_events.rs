//! Records of the `cilium_events` ring buffer (trace and drop
//! notifications written by the BPF programs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = datapath::Notification::decode(data);
});
