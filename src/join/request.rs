//! The body nova POSTs to a dynamic vendordata target, and its validation.
//!
//! Statuses follow the original novajoin where it answered sensibly (400 for
//! a missing body or hostname); where it crashed with a 500 on bad input
//! (a non-object body, `metadata: null`, a non-string `ipa_enroll`) we
//! answer 400 with a message that names the field.

use serde_json::{Map, Value};

use super::JoinError;

/// The fields of nova's request that novajoin uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VendordataRequest {
    /// `instance-id` (nova's instance UUID), when sent.
    pub instance_id: Option<String>,
    /// `hostname`: nova's short hostname (or an FQDN since API 2.94).
    pub hostname: String,
    /// `image-id`; `""` for boot-from-volume, `None` when absent or null.
    pub image_id: Option<String>,
    /// `project-id`, when sent.
    pub project_id: Option<String>,
    /// `metadata`: the instance's user properties.
    pub metadata: Map<String, Value>,
}

/// Whether the `Content-Type` is JSON (parameters allowed), as WebOb decided
/// whether to look at the body at all.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, JoinError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(JoinError::BadRequest(format!(
            "'{key}' must be a string, not {}",
            json_type(other)
        ))),
    }
}

/// The JSON type name of a value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether every number in `value` is one a double holds (the crate keeps
/// numbers as written, for policy-check; a request body with a number such
/// as `1e999999` is malformed, as a JSON parser without that feature says).
/// serde_json's recursion limit bounds the depth.
fn numbers_in_range(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64().is_some(),
        Value::Array(items) => items.iter().all(numbers_in_range),
        Value::Object(map) => map.values().all(numbers_in_range),
        _ => true,
    }
}

impl VendordataRequest {
    /// Parses and validates a request body. `content_type` is the request's
    /// `Content-Type`; a body that is not declared JSON is treated as absent,
    /// as the original did.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, JoinError> {
        if body.is_empty() || !is_json_content_type(content_type) {
            return Err(JoinError::BadRequestDefault);
        }
        let value: Value = serde_json::from_slice(body)
            .ok()
            .filter(numbers_in_range)
            .ok_or_else(|| JoinError::BadRequest("Malformed request body".into()))?;
        let Value::Object(obj) = value else {
            return Err(JoinError::BadRequest(format!(
                "The request body must be a JSON object, not {}",
                json_type(&value)
            )));
        };
        if obj.is_empty() {
            return Err(JoinError::BadRequestDefault);
        }
        let hostname = match optional_string(&obj, "hostname")? {
            Some(h) if !h.is_empty() => h,
            _ => return Err(JoinError::BadRequestDefault),
        };
        let metadata = match obj.get("metadata") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(JoinError::BadRequest(format!(
                    "'metadata' must be an object, not {}",
                    json_type(other)
                )))
            }
        };
        Ok(VendordataRequest {
            instance_id: optional_string(&obj, "instance-id")?,
            hostname,
            image_id: optional_string(&obj, "image-id")?,
            project_id: optional_string(&obj, "project-id")?,
            metadata,
        })
    }

    /// A metadata value that must be a string when present.
    pub fn metadata_str(&self, key: &str) -> Result<Option<&str>, JoinError> {
        match self.metadata.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(JoinError::BadRequest(format!(
                "metadata '{key}' must be a string, not {}",
                json_type(other)
            ))),
        }
    }
}

/// Whether a metadata or image property asks for enrollment: exactly `true`
/// after lower-casing, as the original (`True`, `TRUE`; not `yes` or `1`).
pub fn is_enroll_flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.to_lowercase() == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA_BODY: &str = r#"{"project-id": "8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f", "instance-id": "5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c", "image-id": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "user-data": null, "hostname": "vm1", "metadata": {"ipa_enroll": "True", "ipa_hostclass": "web"}, "boot-roles": "member,reader"}"#;

    #[test]
    fn parses_the_exact_body_nova_sends() {
        let r = VendordataRequest::parse(Some("application/json"), NOVA_BODY.as_bytes()).unwrap();
        assert_eq!(r.hostname, "vm1");
        assert_eq!(
            r.instance_id.as_deref(),
            Some("5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c")
        );
        assert_eq!(r.metadata_str("ipa_hostclass").unwrap(), Some("web"));
    }

    #[test]
    fn content_type_decides_whether_the_body_counts() {
        assert!(VendordataRequest::parse(
            Some("application/json; charset=UTF-8"),
            NOVA_BODY.as_bytes()
        )
        .is_ok());
        assert!(matches!(
            VendordataRequest::parse(Some("text/plain"), NOVA_BODY.as_bytes()),
            Err(JoinError::BadRequestDefault)
        ));
        assert!(matches!(
            VendordataRequest::parse(None, NOVA_BODY.as_bytes()),
            Err(JoinError::BadRequestDefault)
        ));
    }

    #[test]
    fn bad_bodies_are_400_with_a_message() {
        let p = |b: &str| {
            VendordataRequest::parse(Some("application/json"), b.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(p("{not json"), "Malformed request body");
        assert_eq!(
            p(r#"{"hostname": "vm", "x": [1e999999]}"#),
            "Malformed request body"
        );
        assert!(p("[1,2]").contains("JSON object"));
        assert!(
            p(r#"{"hostname": "a", "metadata": null}"#).contains("'metadata' must be an object")
        );
        assert!(p(r#"{"hostname": 5}"#).contains("'hostname' must be a string"));
        assert!(matches!(
            VendordataRequest::parse(Some("application/json"), b"{}"),
            Err(JoinError::BadRequestDefault)
        ));
        assert!(matches!(
            VendordataRequest::parse(Some("application/json"), br#"{"hostname": ""}"#),
            Err(JoinError::BadRequestDefault)
        ));
    }

    #[test]
    fn enroll_flag_is_exactly_true() {
        for (v, want) in [
            ("True", true),
            ("TRUE", true),
            ("true", true),
            ("yes", false),
            ("1", false),
            (" true", false),
        ] {
            assert_eq!(is_enroll_flag(Some(v)), want, "{v}");
        }
        assert!(!is_enroll_flag(None));
    }
}
