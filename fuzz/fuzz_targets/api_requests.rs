//! A request to the API server as it arrives: the first line is the path
//! and query, the second the Content-Type, the rest the body. Routed,
//! parsed, decoded, applied as a patch of every type to a pod, and
//! rendered as a Table: none of it may panic.
#![no_main]

use controlplane::apiserver::{patch, paths, query, resources, table};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let target = lines.next().unwrap_or("");
    let content_type = lines.next().unwrap_or("");
    let body = lines.next().unwrap_or("").as_bytes();
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let _ = paths::route(path);
    let _ = query::Query::parse(Some(raw_query));
    let ty = <k8s_openapi::api::core::v1::Pod as api::Object>::TYPE;
    if let Ok(object) = resources::decode_body(body, content_type) {
        let _ = table::table(
            &ty,
            &[object],
            table::IncludeObject::Object,
            true,
            &Default::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"}, "finalizers": ["x"]},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": [{"name": "E", "value": "1"}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    for kind in [
        patch::PatchType::Json,
        patch::PatchType::Merge,
        patch::PatchType::Strategic,
        patch::PatchType::Apply,
    ] {
        let _ = patch::patch(&ty, kind, &pod, body);
    }
    let _ = patch::PatchType::from_content_type(content_type, &ty);
});
