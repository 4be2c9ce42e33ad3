//! What each fuzz target checks, as plain functions: the libFuzzer targets
//! in `fuzz_targets/` call them, and `tests/fuzz_regressions.rs` in the main
//! crate replays every saved input (`fuzz/regressions/`, `fuzz/seeds/`)
//! through them in the ordinary `cargo test`, so a crash once found stays
//! fixed without a libFuzzer build.

use std::path::Path;

use novajoin::join::fqdn::FqdnPolicy;
use novajoin::join::request::VendordataRequest;
use novajoin::join::services::requested_services;
use novajoin::notify::envelope::{decode, salvage_message_id};
use novajoin::notify::events::{classify, Classified};
use novajoin::notify::settings::NotificationFormat;
use novajoin::policy::eval::{evaluate, RuleLookup};
use novajoin::policy::{parse_text, Check};
use serde_json::{json, Map, Value};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=UTF-8"),
    Some("text/plain"),
    None,
];

/// The request body decoder: `VendordataRequest::parse` with the content
/// types nova and others send (the first byte picks one), then everything
/// the handler derives from the body before it calls IPA (metadata strings,
/// host name, service requests), and the cache filter's own reading of the
/// body. Nothing may panic; a parsed request always has a hostname.
pub(crate) fn vendordata_request(data: &[u8]) {
    let (selector, body) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => (0, data),
    };
    let content_type = CONTENT_TYPES[selector % CONTENT_TYPES.len()];
    if let Ok(req) = VendordataRequest::parse(content_type, body) {
        assert!(!req.hostname.is_empty(), "a parsed request has a hostname");
        for key in ["ipa_enroll", "ipa_hostclass", "ipa_host_location"] {
            let _ = req.metadata_str(key);
        }
        for project_subdomain in [false, true] {
            let policy = FqdnPolicy {
                domain: "example.test".into(),
                project_subdomain,
                normalize_project: true,
            };
            if let Ok(fqdn) = policy.instance_fqdn(&req.hostname, Some("Demo Project")) {
                assert!(fqdn.len() <= novajoin::join::fqdn::MAX_FQDN, "{fqdn}");
                let _ = requested_services(
                    &req.metadata,
                    &fqdn,
                    &policy,
                    Some("Demo Project"),
                    "EXAMPLE.TEST",
                );
            }
        }
    }
    let (parts, ()) = http::Request::builder()
        .method("POST")
        .uri("/v1/")
        .header("content-type", content_type.unwrap_or("application/json"))
        .body(())
        .expect("request")
        .into_parts();
    let _ = novajoin::cache::RequestKey::from_request(&parts, body);
}

struct Rules<'a> {
    main: &'a Check,
    other: Check,
}

impl RuleLookup for Rules<'_> {
    fn lookup(&self, name: &str) -> Option<(&str, &Check)> {
        match name {
            "main" => Some(("main", self.main)),
            "admin_required" => Some(("admin_required", &self.other)),
            _ => None,
        }
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The policy rule parser (`policy::parse_text`, oslo.policy's language)
/// and the evaluation of whatever it parsed, against fixed credentials and
/// a target, with the rule able to refer to itself (`rule:main`) and to
/// another rule that refers back. Nothing may panic or recurse without
/// bound.
pub(crate) fn policy_rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_text(text);
    let _ = parsed.check.referenced_rules();
    let _ = parsed.check.lint();
    let rules = Rules {
        main: &parsed.check,
        other: parse_text("role:admin or rule:main").check,
    };
    let creds = object(json!({
        "user_id": "u1", "user_name": "nova", "project_id": "p1", "project_name": "service",
        "roles": ["admin", "service"], "is_admin": true, "domain_id": null,
        "nested": {"list": [1, "two", {"three": 3.0}], "s": "%(project_id)s"}
    }));
    let target = object(json!({"project_id": "p1", "user_id": "u1", "n": 5, "none": null}));
    let _ = evaluate(&parsed.check, Some("main"), &rules, &target, &creds);
}

/// The policy file parser (`policy::file::parse_policy_text`: the YAML and
/// JSON that policy files use), then each rule value (text or the legacy
/// list of lists). Nothing may panic.
pub(crate) fn policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = novajoin::policy::file::parse_policy_text(Path::new("policy.yaml"), text) {
        for e in entries {
            if let Ok(rule) = novajoin::policy::parser::parse_value(&e.value) {
                let _ = rule.check.lint();
            }
        }
    }
}

/// The notification envelope decoder (`notify::envelope::decode`: oslo's
/// 2.0 envelope or a bare message, as delivered by RabbitMQ), the message
/// id salvaging used for dead letters, and the classification of the
/// decoded notification into events, in both notification formats.
/// Nothing may panic; a decoded notification has an event type and a
/// publisher.
pub(crate) fn notification_envelope(data: &[u8]) {
    let _ = salvage_message_id(data);
    let Ok(n) = decode(data, None) else {
        return;
    };
    assert!(!n.event_type.is_empty() && !n.publisher_id.is_empty());
    for format in [
        NotificationFormat::Unversioned,
        NotificationFormat::Versioned,
    ] {
        if let Ok(Classified::Handle(e)) = classify(&n, format) {
            let _ = e.kind();
            let _ = e.ordering_key();
        }
    }
}
