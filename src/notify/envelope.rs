//! The oslo.messaging message: the 2.0 envelope (`oslo.version`, with the
//! real message as a JSON *string* in `oslo.message`) or the old 1.0 form
//! (the message itself), and the notification fields inside it.

use serde_json::{Map, Value};

/// Why a message body is not a notification. The listener rejects these:
/// they will never decode, however often they are retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Compressed by `kombu_compression`, which novajoin does not support.
    #[error("the body is compressed ({0}); set kombu_compression off for the novajoin topic")]
    Compressed(String),
    /// Not JSON (or not UTF-8).
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("the body is JSON but not an object")]
    NotAnObject,
    /// `oslo.version` other than 2.x.
    #[error("unsupported oslo.version {0:?}; this listener understands 2.0")]
    UnsupportedVersion(String),
    /// `oslo.message` missing, not a string, or not a JSON object.
    #[error("the oslo.message field is {0}")]
    BadInnerMessage(&'static str),
    /// A notification field is missing or has the wrong type.
    #[error("the notification has no {0}")]
    MissingField(&'static str),
}

/// One notification, as oslo's dispatcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// `message_id` (UUID4), used in every log line about the message.
    pub message_id: String,
    /// `publisher_id`, e.g. `compute.cmp-1` or `nova-compute:cmp-1`.
    pub publisher_id: String,
    /// `event_type`, e.g. `compute.instance.delete.end`.
    pub event_type: String,
    /// `priority`, lower-cased (`info`).
    pub priority: String,
    /// `payload`.
    pub payload: Value,
    /// `timestamp` as sent (Python `str(datetime)`, UTC).
    pub timestamp: Option<String>,
    /// `_unique_id`, oslo's duplicate-detection id.
    pub unique_id: Option<String>,
}

/// Decodes a message body. `content_encoding` is the AMQP property; a
/// `compression` header (kombu) is passed as `compression`.
pub fn decode(body: &[u8], compression: Option<&str>) -> Result<Notification, EnvelopeError> {
    if let Some(c) = compression {
        return Err(EnvelopeError::Compressed(c.to_string()));
    }
    let outer: Value =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let Value::Object(outer) = outer else {
        return Err(EnvelopeError::NotAnObject);
    };
    let message = match (outer.get("oslo.version"), outer.get("oslo.message")) {
        (Some(version), Some(inner)) => {
            let version = version.as_str().unwrap_or_default();
            if version.split('.').next() != Some("2") {
                return Err(EnvelopeError::UnsupportedVersion(version.to_string()));
            }
            let Some(text) = inner.as_str() else {
                return Err(EnvelopeError::BadInnerMessage("not a string"));
            };
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(EnvelopeError::BadInnerMessage("JSON but not an object")),
                Err(_) => return Err(EnvelopeError::BadInnerMessage("not valid JSON")),
            }
        }
        // oslo takes an object without both envelope keys as the message
        // itself (the 1.0 `messaging` driver).
        _ => outer,
    };
    from_message(message)
}

fn from_message(mut m: Map<String, Value>) -> Result<Notification, EnvelopeError> {
    let mut text = |key: &'static str| -> Result<String, EnvelopeError> {
        match m.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(EnvelopeError::MissingField(key)),
        }
    };
    let event_type = text("event_type")?;
    let publisher_id = text("publisher_id")?;
    let priority = text("priority")?.to_ascii_lowercase();
    let message_id = text("message_id").unwrap_or_else(|_| "-".to_string());
    let timestamp = m
        .remove("timestamp")
        .and_then(|v| v.as_str().map(str::to_string));
    let unique_id = m
        .remove("_unique_id")
        .and_then(|v| v.as_str().map(str::to_string));
    let payload = m
        .remove("payload")
        .ok_or(EnvelopeError::MissingField("payload"))?;
    Ok(Notification {
        message_id,
        publisher_id,
        event_type,
        priority,
        payload,
        timestamp,
        unique_id,
    })
}

/// Best effort: the `message_id` of a body that failed to decode fully, for
/// the log line that reports it.
pub fn salvage_message_id(body: &[u8]) -> Option<String> {
    let outer: Value = serde_json::from_slice(body).ok()?;
    let inner = match outer.get("oslo.message").and_then(Value::as_str) {
        Some(text) => serde_json::from_str::<Value>(text).ok()?,
        None => outer,
    };
    inner.get("message_id")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(inner: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}))
            .unwrap()
    }

    fn inner() -> Value {
        json!({
            "message_id": "b3ef1e59-340f-42d4-a10d-c4ac20aa38d3",
            "publisher_id": "compute.cmp-1",
            "event_type": "compute.instance.delete.end",
            "priority": "INFO",
            "payload": {"hostname": "vm1"},
            "timestamp": "2026-11-27 00:46:43.715649",
            "_unique_id": "268e86ddb1a447059fe9416d3d11895f",
            "_context_user": "u",
        })
    }

    #[test]
    fn decodes_the_v2_envelope() {
        let n = decode(&envelope(&inner()), None).unwrap();
        assert_eq!(n.event_type, "compute.instance.delete.end");
        assert_eq!(n.priority, "info");
        assert_eq!(n.publisher_id, "compute.cmp-1");
        assert_eq!(n.payload["hostname"], "vm1");
        assert_eq!(
            n.unique_id.as_deref(),
            Some("268e86ddb1a447059fe9416d3d11895f")
        );
    }

    #[test]
    fn accepts_the_unenveloped_form() {
        let n = decode(inner().to_string().as_bytes(), None).unwrap();
        assert_eq!(n.message_id, "b3ef1e59-340f-42d4-a10d-c4ac20aa38d3");
    }

    #[test]
    fn rejects_what_never_decodes() {
        assert!(matches!(
            decode(b"not json", None),
            Err(EnvelopeError::NotJson(_))
        ));
        assert_eq!(decode(b"[1,2]", None), Err(EnvelopeError::NotAnObject));
        let bad =
            serde_json::to_vec(&json!({"oslo.version": "3.0", "oslo.message": "{}"})).unwrap();
        assert!(matches!(
            decode(&bad, None),
            Err(EnvelopeError::UnsupportedVersion(_))
        ));
        let bad =
            serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": {"a": 1}})).unwrap();
        assert_eq!(
            decode(&bad, None),
            Err(EnvelopeError::BadInnerMessage("not a string"))
        );
        let bad = serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": "{"})).unwrap();
        assert_eq!(
            decode(&bad, None),
            Err(EnvelopeError::BadInnerMessage("not valid JSON"))
        );
        let mut m = inner();
        m.as_object_mut().unwrap().remove("event_type");
        assert_eq!(
            decode(&envelope(&m), None),
            Err(EnvelopeError::MissingField("event_type"))
        );
        assert!(matches!(
            decode(&envelope(&inner()), Some("application/x-gzip")),
            Err(EnvelopeError::Compressed(_))
        ));
    }

    #[test]
    fn salvages_the_id_of_a_broken_message() {
        let mut m = inner();
        m.as_object_mut().unwrap().remove("payload");
        assert_eq!(
            salvage_message_id(&envelope(&m)).as_deref(),
            Some("b3ef1e59-340f-42d4-a10d-c4ac20aa38d3")
        );
        assert_eq!(salvage_message_id(b"garbage"), None);
    }
}
