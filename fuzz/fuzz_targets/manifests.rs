//! Manifests a user applies: multi-document YAML (or JSON) of built-in
//! kinds and Cilium CRDs, decoded and validated.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = api::parse_manifests(text);
    }
});
