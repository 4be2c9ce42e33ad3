//! The JSON-RPC envelope IPA speaks (`{"method", "params": [args, options],
//! "id"}` in, `{"result", "error", "id", "principal", "version"}` out) and
//! the special value encodings (`__dns_name__`, `__datetime__`,
//! `__base64__`).

use serde_json::{json, Map, Value};

use super::error::{IpaError, RemoteError};

/// The request body for one command.
pub fn request_body(method: &str, args: &[Value], options: &Map<String, Value>) -> Value {
    json!({"method": method, "params": [args, options], "id": 0})
}

/// Replaces IPA's wrapper objects with plain values, anywhere in `v`:
/// `{"__dns_name__": "vm1"}` → `"vm1"`, `{"__datetime__": "2024..Z"}` →
/// the generalized-time string, `{"__base64__": "..."}` → the base64 text.
pub fn unwrap_special(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            if map.len() == 1 {
                for key in ["__dns_name__", "__datetime__", "__base64__"] {
                    if let Some(Value::String(s)) = map.get(key) {
                        return Value::String(s.clone());
                    }
                }
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, unwrap_special(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_special).collect()),
        other => other,
    }
}

/// Reads a JSON-RPC response: the command output (`response.result`) or the
/// classified error.
pub fn parse_response(body: &[u8]) -> Result<Value, IpaError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| IpaError::Protocol(format!("body is not JSON ({e})")))?;
    let Value::Object(mut top) = v else {
        return Err(IpaError::Protocol("body is not a JSON object".into()));
    };
    match top.remove("error") {
        None | Some(Value::Null) => {}
        Some(Value::Object(err)) => return Err(IpaError::from_remote(remote_from_envelope(&err))),
        Some(other) => {
            return Err(IpaError::Protocol(format!(
                "\"error\" is neither null nor an object: {other}"
            )))
        }
    }
    match top.remove("result") {
        Some(result) => Ok(unwrap_special(result)),
        None => Err(IpaError::Protocol(
            "response has neither \"result\" nor \"error\"".into(),
        )),
    }
}

fn remote_from_envelope(err: &Map<String, Value>) -> RemoteError {
    RemoteError {
        code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
        name: err
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        data: err.get("data").cloned().unwrap_or(Value::Null),
    }
}

/// One item of a batch result: the sub-command's output, or its error in
/// the batch form `{"error": msg, "error_code", "error_name", "error_kw"}`.
pub fn parse_batch_item(item: Value) -> Result<Value, IpaError> {
    let Value::Object(mut map) = item else {
        return Err(IpaError::Protocol("batch item is not an object".into()));
    };
    match map.get("error") {
        None | Some(Value::Null) => {
            map.remove("error");
            Ok(Value::Object(map))
        }
        Some(Value::String(message)) => Err(IpaError::from_remote(RemoteError {
            code: map.get("error_code").and_then(Value::as_i64).unwrap_or(0),
            name: map
                .get("error_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            message: message.clone(),
            data: map.get("error_kw").cloned().unwrap_or(Value::Null),
        })),
        Some(Value::Object(err)) => Err(IpaError::from_remote(remote_from_envelope(err))),
        Some(other) => Err(IpaError::Protocol(format!("batch item error is {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_wrappers_anywhere() {
        let v = json!({"result": [{"idnsname": [{"__dns_name__": "vm1"}],
                                   "when": {"__datetime__": "20240101000000Z"}}],
                       "value": {"__dns_name__": "example.com."}});
        let u = unwrap_special(v);
        assert_eq!(u["result"][0]["idnsname"][0], "vm1");
        assert_eq!(u["result"][0]["when"], "20240101000000Z");
        assert_eq!(u["value"], "example.com.");
    }

    #[test]
    fn error_envelope_is_classified() {
        let body = br#"{"result": null, "error": {"code": 4001, "name": "NotFound",
            "message": "vm2.example.com: host not found",
            "data": {"reason": "vm2.example.com: host not found"}}, "id": 0,
            "principal": "admin@EXAMPLE.COM", "version": "4.12.2"}"#;
        match parse_response(body) {
            Err(IpaError::NotFound(e)) => {
                assert_eq!(e.data["reason"], "vm2.example.com: host not found")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_item_error_form() {
        let item = json!({"error": "host with name \"a\" already exists", "error_code": 4002,
                          "error_name": "DuplicateEntry", "error_kw": {}});
        assert!(matches!(
            parse_batch_item(item),
            Err(IpaError::DuplicateEntry(_))
        ));
        let ok = json!({"result": {"fqdn": ["a"]}, "value": "a", "summary": "x", "error": null});
        assert_eq!(parse_batch_item(ok).unwrap()["value"], "a");
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(
            parse_response(b"<html>"),
            Err(IpaError::Protocol(_))
        ));
        assert!(matches!(
            parse_response(b"{\"id\":0}"),
            Err(IpaError::Protocol(_))
        ));
    }
}
