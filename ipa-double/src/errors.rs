//! IPA's public errors as they appear on the wire: `code` (errno), `name`
//! (class), `message` (formatted text) and `data` (the keyword arguments).
//! Messages follow ipalib's English formats; clients must not parse them.

use serde_json::{json, Map, Value};

/// One IPA error.
#[derive(Clone, Debug, PartialEq)]
pub struct IpaErr {
    /// errno.
    pub code: i64,
    /// Class name.
    pub name: &'static str,
    /// Formatted message.
    pub message: String,
    /// Keyword arguments (`error.data` / batch `error_kw`).
    pub data: Value,
}

impl IpaErr {
    fn new(code: i64, name: &'static str, message: String, data: Value) -> Self {
        Self {
            code,
            name,
            message,
            data,
        }
    }

    /// The `error` object of a JSON-RPC response.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "name": self.name, "message": self.message, "data": self.data})
    }

    /// The failed-item form inside a batch result.
    pub fn to_batch_item(&self) -> Value {
        json!({"error": self.message, "error_code": self.code, "error_name": self.name, "error_kw": self.data})
    }

    /// 901 `VersionError`.
    pub fn version(cver: &str, sver: &str, server: &str) -> Self {
        Self::new(
            901,
            "VersionError",
            format!("{cver} client incompatible with {sver} server at '{server}'"),
            json!({"cver": cver, "sver": sver, "server": server}),
        )
    }

    /// 903 `InternalError`.
    pub fn internal() -> Self {
        Self::new(
            903,
            "InternalError",
            "an internal error has occurred".into(),
            json!({}),
        )
    }

    /// 905 `CommandError`: unknown command.
    pub fn command(name: &str) -> Self {
        Self::new(
            905,
            "CommandError",
            format!("unknown command '{name}'"),
            json!({"name": name}),
        )
    }

    /// 909 `JSONError`.
    pub fn json(error: &str) -> Self {
        Self::new(
            909,
            "JSONError",
            format!("Invalid JSON-RPC request: {error}"),
            json!({"error": error}),
        )
    }

    /// 911 `RefererError`.
    pub fn referer(referer: &str) -> Self {
        Self::new(
            911,
            "RefererError",
            format!("Missing or invalid HTTP Referer, {referer}"),
            json!({"referer": referer}),
        )
    }

    /// 2100 `ACIError`.
    pub fn aci(info: &str) -> Self {
        Self::new(
            2100,
            "ACIError",
            format!("Insufficient access: {info}"),
            json!({"info": info}),
        )
    }

    /// 3004 `MaxArgumentError`.
    pub fn max_arguments(name: &str, count: usize) -> Self {
        let plural = if count == 1 { "argument" } else { "arguments" };
        Self::new(
            3004,
            "MaxArgumentError",
            format!("command '{name}' takes at most {count} {plural}"),
            json!({"name": name, "count": count}),
        )
    }

    /// 3005 `OptionError` for an unknown option.
    pub fn unknown_option(option: &str) -> Self {
        Self::new(
            3005,
            "OptionError",
            format!("Unknown option: {option}"),
            json!({"option": option}),
        )
    }

    /// 3005 `OptionError` with a pre-formatted message.
    pub fn option(message: &str) -> Self {
        Self::new(3005, "OptionError", message.to_string(), json!({}))
    }

    /// 3007 `RequirementError`.
    pub fn requirement(name: &str) -> Self {
        Self::new(
            3007,
            "RequirementError",
            format!("'{name}' is required"),
            json!({"name": name}),
        )
    }

    /// 3008 `ConversionError`.
    pub fn conversion(name: &str, error: &str) -> Self {
        Self::new(
            3008,
            "ConversionError",
            format!("invalid '{name}': {error}"),
            json!({"name": name, "error": error}),
        )
    }

    /// 3009 `ValidationError`.
    pub fn validation(name: &str, error: &str) -> Self {
        Self::new(
            3009,
            "ValidationError",
            format!("invalid '{name}': {error}"),
            json!({"name": name, "error": error}),
        )
    }

    /// 4001 `NotFound`.
    pub fn not_found(reason: String) -> Self {
        Self::new(4001, "NotFound", reason.clone(), json!({"reason": reason}))
    }

    /// 4002 `DuplicateEntry` as `*_add` raises it (pre-formatted, empty data).
    pub fn duplicate(object: &str, pkey: &str) -> Self {
        Self::new(
            4002,
            "DuplicateEntry",
            format!("{object} with name \"{pkey}\" already exists"),
            json!({}),
        )
    }

    /// 4010 `AlreadyInactive`, as `host_disable` raises it for a host with
    /// neither keytab nor certificate.
    pub fn already_inactive() -> Self {
        Self::new(
            4010,
            "AlreadyInactive",
            "This entry is already disabled".to_string(),
            json!({}),
        )
    }

    /// 4003 `HostService`.
    pub fn host_service() -> Self {
        Self::new(
            4003,
            "HostService",
            "You must enroll a host in order to create a host service".into(),
            json!({}),
        )
    }

    /// 4005 `RealmMismatch`.
    pub fn realm_mismatch() -> Self {
        Self::new(
            4005,
            "RealmMismatch",
            "The realm for the principal does not match the realm for this IPA server".into(),
            json!({}),
        )
    }

    /// 4019 `DNSNotARecordError`.
    pub fn dns_not_a_record(hostname: &str) -> Self {
        Self::new(
            4019,
            "DNSNotARecordError",
            format!("Host '{hostname}' does not have corresponding DNS A/AAAA record"),
            json!({"hostname": hostname}),
        )
    }

    /// 4026 `AttrValueNotFound`.
    pub fn attr_value_not_found(attr: &str, value: &str) -> Self {
        Self::new(
            4026,
            "AttrValueNotFound",
            format!("{attr} does not contain '{value}'"),
            json!({"attr": attr, "value": value}),
        )
    }

    /// 4026 `AttrValueNotFound` from `--delattr` (`process_attr_options`):
    /// the attribute's parameter name, and the value as given (`None` for
    /// an empty value, which Python formats as `None`).
    pub fn delattr_value_not_found(attr: &str, value: Option<&str>) -> Self {
        Self::new(
            4026,
            "AttrValueNotFound",
            format!("{attr} does not contain '{}'", value.unwrap_or("None")),
            json!({"attr": attr, "value": value}),
        )
    }

    /// 4207 `OnlyOneValueAllowed`.
    pub fn only_one_value(attr: &str) -> Self {
        Self::new(
            4207,
            "OnlyOneValueAllowed",
            format!("{attr}: Only one value allowed."),
            json!({"attr": attr}),
        )
    }

    /// 4202 `EmptyModlist`.
    pub fn empty_modlist() -> Self {
        Self::new(
            4202,
            "EmptyModlist",
            "no modifications to be performed".into(),
            json!({}),
        )
    }
}

/// A warning in `result.messages`.
pub fn message(code: i64, name: &str, text: String, data: Map<String, Value>) -> Value {
    json!({"type": "warning", "name": name, "code": code, "message": text, "data": data})
}
