//! `apply -f FILE|-`: decode every document first (so a bad manifest
//! changes nothing), then create or update each object, printing
//! `kind.group/name created|configured|unchanged` like kubectl.

use anyhow::{Context, Result};
use serde_json::{Map, Value};
use store::Store;

use super::qualified;

/// Apply manifests from a file path or `-` (stdin).
pub async fn apply_file(store: &Store, path: &str) -> Result<Vec<String>> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
    };
    apply_text(store, &text, path, false).await
}

/// Apply manifests given as text; `source` names them in errors. Prints
/// each result line unless `quiet`; returns them.
pub async fn apply_text(
    store: &Store,
    text: &str,
    source: &str,
    quiet: bool,
) -> Result<Vec<String>> {
    let manifests =
        api::parse_manifests(text).with_context(|| format!("error validating {source:?}"))?;
    let mut lines = Vec::new();
    for m in manifests {
        let line = apply_one(store, m.kind, m.object).await?;
        if !quiet {
            println!("{line}");
        }
        lines.push(line);
    }
    Ok(lines)
}

async fn apply_one(store: &Store, kind: &'static api::Kind, mut obj: Value) -> Result<String> {
    let ty = &kind.ty;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace = if ty.namespaced {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        obj["metadata"]["namespace"] = Value::String(ns.clone());
        Some(ns)
    } else {
        None
    };
    let id = qualified(kind, &name);
    loop {
        match store.get_value(ty, namespace.as_deref(), &name).await? {
            None => match store.create_value(ty, &obj).await {
                Ok(_) => return Ok(format!("{id} created")),
                Err(store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            },
            Some(current) => {
                let merged = merge(&current, &obj);
                if merged == current {
                    return Ok(format!("{id} unchanged"));
                }
                match store.update_value(ty, &merged).await {
                    Ok(_) => return Ok(format!("{id} configured")),
                    Err(store::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// The object `apply` writes over `current`: every top-level field of the
/// manifest except metadata and status replaces the stored one; labels and
/// annotations come from the manifest; identity, status and fields the
/// cluster allocated (a Service's cluster IPs and node ports) are kept.
fn merge(current: &Value, manifest: &Value) -> Value {
    let mut out = current.clone();
    let (Some(out_map), Some(man)) = (out.as_object_mut(), manifest.as_object()) else {
        return manifest.clone();
    };
    for (k, v) in man {
        if k != "metadata" && k != "status" {
            out_map.insert(k.clone(), v.clone());
        }
    }
    for field in ["labels", "annotations"] {
        let meta = out_map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        match manifest.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta[field] = v.clone(),
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if current.get("kind").and_then(Value::as_str) == Some("Service") {
        keep_allocated_service_fields(current, &mut out);
    }
    out
}

fn keep_allocated_service_fields(current: &Value, out: &mut Value) {
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if out.pointer(&format!("/spec/{f}")).is_none()
            && let Some(v) = current.pointer(&format!("/spec/{f}"))
        {
            out["spec"][f] = v.clone();
        }
    }
    let cur_ports = current.pointer("/spec/ports").and_then(Value::as_array);
    if let (Some(cur_ports), Some(ports)) = (
        cur_ports,
        out.pointer_mut("/spec/ports").and_then(Value::as_array_mut),
    ) {
        for p in ports.iter_mut() {
            if p.get("nodePort").is_some() {
                continue;
            }
            let same = cur_ports
                .iter()
                .find(|c| c.get("port") == p.get("port") && c.get("protocol") == p.get("protocol"));
            if let Some(np) = same.and_then(|c| c.get("nodePort")) {
                p["nodePort"] = np.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_identity_status_and_allocations() {
        let current = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "webpod", "namespace": "default", "uid": "u1",
                "resourceVersion": "7", "labels": {"old": "x"}},
            "spec": {"clusterIP": "10.96.1.2", "clusterIPs": ["10.96.1.2"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}], "type": "NodePort"},
            "status": {"loadBalancer": {}}
        });
        let manifest = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "webpod", "namespace": "default", "labels": {"app": "webpod"}},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "NodePort",
                "selector": {"app": "webpod"}}
        });
        let m = merge(&current, &manifest);
        assert_eq!(m["metadata"]["uid"], "u1");
        assert_eq!(m["metadata"]["resourceVersion"], "7");
        assert_eq!(m["metadata"]["labels"], json!({"app": "webpod"}));
        assert_eq!(m["spec"]["clusterIP"], "10.96.1.2");
        assert_eq!(m["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(m["spec"]["selector"], json!({"app": "webpod"}));
        assert_eq!(m["status"], json!({"loadBalancer": {}}));
        // Applying the merged object again changes nothing.
        assert_eq!(merge(&m, &manifest), m);
    }
}
