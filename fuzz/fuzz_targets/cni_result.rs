//! What a CNI plugin prints: an ADD result (any supported version) or an
//! error object, as the lab's kubelet decodes them.
#![no_main]

use cnispec::{AddResult, CniError, CniVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = serde_json::from_slice::<AddResult>(data) {
        let _ = result.addresses_on("eth0");
        for v in [CniVersion::V0_3_0, CniVersion::V1_1_0] {
            let _ = result.clone().convert(v);
        }
    }
    if let Ok(e) = serde_json::from_slice::<CniError>(data) {
        let _ = e.to_string();
    }
});
