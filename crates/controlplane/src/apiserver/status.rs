//! API errors as the Kubernetes API server reports them: a `Status`
//! object with the HTTP code, a machine-readable `reason` and the message
//! kubectl prints after `Error from server (<reason>): `.

use api::ResourceType;
use serde_json::{Value, json};

/// A failed request, rendered as a `Status` body with the same HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details` (name, group, kind, causes), when known.
    pub details: Option<Value>,
}

/// Result of request handling.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden with the authorizer's message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 for one missing object: `pods "x" not found`.
    pub fn not_found(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", ty.qualified_plural()),
        )
        .with_details(object_details(ty, name))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(verb: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({verb} {what})"
            ),
        )
    }

    /// 409 AlreadyExists: `pods "x" already exists`.
    pub fn already_exists(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", ty.qualified_plural()),
        )
        .with_details(object_details(ty, name))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(ty: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                ty.qualified_plural()
            ),
        )
        .with_details(object_details(ty, name))
    }

    /// 410 Expired: the resource version is compacted.
    pub fn expired(requested: i64, oldest: Option<i64>) -> Self {
        let message = match oldest {
            Some(o) => format!("too old resource version: {requested} ({o})"),
            None => format!("too old resource version: {requested}"),
        };
        Self::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 422 Invalid: `Pod "x" is invalid: <field>: <message>`.
    pub fn invalid(ty: &ResourceType, name: &str, field: &str, message: &str) -> Self {
        let details = json!({
            "name": name,
            "group": ty.group,
            "kind": ty.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        });
        let text = if field.is_empty() {
            format!("{} \"{name}\" is invalid: {message}", ty.kind)
        } else {
            format!("{} \"{name}\" is invalid: {field}: {message}", ty.kind)
        };
        Self::new(422, "Invalid", text).with_details(details)
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// 503 ServiceUnavailable (the store is unreachable).
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(503, "ServiceUnavailable", message.to_string())
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// Map a store error on an object of `ty` named `name`.
    pub fn from_store(ty: &ResourceType, name: &str, err: store::Error) -> Self {
        match err {
            store::Error::NotFound { .. } => Self::not_found(ty, name),
            store::Error::AlreadyExists { .. } => Self::already_exists(ty, name),
            store::Error::Conflict { .. } => Self::conflict(ty, name),
            store::Error::Invalid(message) => Self::invalid(ty, name, "", &message),
            store::Error::Compacted(rev) => Self::expired(rev, None),
            // 500, not 503: clients retry a 503 for minutes (kube-rs and
            // client-go back off up to ~15 times), hiding a store outage.
            store::Error::Backend(message) => Self::internal(message),
            err @ store::Error::Decode { .. } => Self::internal(err),
        }
    }
}

impl From<super::patch::PatchError> for ApiError {
    fn from(e: super::patch::PatchError) -> Self {
        Self::new(e.code(), e.reason(), e.to_string())
    }
}

/// A success `Status` (deletions that leave no object to return).
pub fn success(ty: &ResourceType, name: &str, uid: Option<&str>) -> Value {
    let mut details = object_details(ty, name);
    if let Some(uid) = uid {
        details["uid"] = uid.into();
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn object_details(ty: &ResourceType, name: &str) -> Value {
    json!({"name": name, "group": ty.group, "kind": ty.plural})
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Object;
    use api::k8s_openapi::api::apps::v1::Deployment;
    use api::k8s_openapi::api::core::v1::Pod;

    #[test]
    fn messages_read_like_the_api_server() {
        assert_eq!(
            ApiError::not_found(&Deployment::TYPE, "x").message,
            "deployments.apps \"x\" not found"
        );
        let conflict = ApiError::conflict(&Pod::TYPE, "p");
        assert_eq!(conflict.code, 409);
        assert!(
            conflict
                .message
                .starts_with("Operation cannot be fulfilled on pods \"p\"")
        );
        let invalid = ApiError::invalid(
            &Pod::TYPE,
            "p",
            "spec.containers[0].image",
            "Required value",
        );
        assert_eq!(
            invalid.message,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        let status = invalid.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        assert_eq!(
            ApiError::expired(3, Some(10)).message,
            "too old resource version: 3 (10)"
        );
    }
}
