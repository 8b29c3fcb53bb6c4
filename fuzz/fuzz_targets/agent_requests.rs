//! Bodies of requests to the agent's REST API (the CNI plugin's calls).
#![no_main]

use agentclient::{CniAddRequest, CniCheckRequest, CniDelRequest, CniGcRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<CniAddRequest>(data);
    let _ = serde_json::from_slice::<CniDelRequest>(data);
    let _ = serde_json::from_slice::<CniCheckRequest>(data);
    let _ = serde_json::from_slice::<CniGcRequest>(data);
});
