//! Bodies of the agent's answers, as `cilium-dbg` and `cilium-cni`
//! decode them.
#![no_main]

use agentclient::{
    ApiError, CniAddResponse, CniGcResponse, EndpointModel, IpEntry, IpcacheMapEntry, LxcMapEntry,
    MetricsMapEntry, StatusResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ApiError>(data);
    let _ = serde_json::from_slice::<CniAddResponse>(data);
    let _ = serde_json::from_slice::<CniGcResponse>(data);
    let _ = serde_json::from_slice::<StatusResponse>(data);
    let _ = serde_json::from_slice::<Vec<EndpointModel>>(data);
    let _ = serde_json::from_slice::<Vec<IpEntry>>(data);
    let _ = serde_json::from_slice::<Vec<IpcacheMapEntry>>(data);
    let _ = serde_json::from_slice::<Vec<LxcMapEntry>>(data);
    let _ = serde_json::from_slice::<Vec<MetricsMapEntry>>(data);
});
