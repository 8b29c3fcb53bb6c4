//! Patches (interim): JSON patch and merge patch; strategic merge and
//! apply are treated as merge patches until the full implementation lands.

use api::ResourceType;
use serde_json::Value;

use super::status::ApiError;

/// The patch formats of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Strategic merge patch.
    Strategic,
    /// Server-side apply.
    Apply,
}

impl PatchType {
    /// The format named by a Content-Type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// 415 for an unknown patch format.
pub fn unsupported(_ty: &ResourceType) -> ApiError {
    ApiError::unsupported_media_type(&[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
        "application/strategic-merge-patch+json",
    ])
}

/// Apply a patch body to `current`.
pub fn apply(
    _ty: &ResourceType,
    current: &Value,
    patch_type: PatchType,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut out = current.clone();
    match patch_type {
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(&mut out, &p).map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        PatchType::Apply => {
            let p: Value =
                serde_saphyr::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::merge(&mut out, &p);
        }
        PatchType::Merge | PatchType::Strategic => {
            let p: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::merge(&mut out, &p);
        }
    }
    Ok(out)
}
