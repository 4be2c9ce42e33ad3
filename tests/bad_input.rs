//! Bad input over HTTP, through the repository's whole pipeline
//! (http_proxy_to_wsgi, request_id, healthcheck, sizelimit, cors, authtoken,
//! keystonecontext, policy, cache, join) with nova's real keystone token:
//! malformed JSON, wrong types for every field, huge and deep JSON, invalid
//! UTF-8, hostnames no DNS name can be, header injection and forged
//! identity headers. Each gets its documented 4xx and nothing reaches IPA
//! (the IPA double counts every HTTP request it receives).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use support::vendordata::{enroll, new_instance_id, nova_body, ServiceEnv};

/// A body that is nova's request with `field` replaced by `value`.
fn with_field(field: &str, value: Value) -> String {
    let mut v: Value =
        serde_json::from_str(&nova_body("vm", &new_instance_id(), enroll())).unwrap();
    v[field] = value;
    v.to_string()
}

/// nova's request with one metadata item set.
fn with_metadata(key: &str, value: Value) -> String {
    let mut md = enroll();
    md[key] = value;
    nova_body("vm", &new_instance_id(), md)
}

/// Asserts a fault `{"badRequest": {"code": 400, "message": M}}` where M
/// contains every `needles` entry; returns M.
fn assert_400(status: u16, text: &str, needles: &[&str], case: &str) -> String {
    assert_eq!(status, 400, "{case}: {text}");
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("{case}: not JSON: {text}"));
    assert_eq!(v["badRequest"]["code"], 400, "{case}: {text}");
    let m = v["badRequest"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for n in needles {
        assert!(m.contains(n), "{case}: message {m:?} should name {n:?}");
    }
    m
}

async fn env() -> ServiceEnv {
    let e = ServiceEnv::builder().start().await;
    e.ipa.reset_counters();
    e
}

/// How many requests the server's access log shows answered 413.
fn refusals_413(e: &ServiceEnv) -> usize {
    e.server
        .logs()
        .lines()
        .filter(|l| l.contains("\"target\":\"novajoin::access\"") && l.contains("\"status\":413"))
        .count()
}

fn assert_ipa_untouched(e: &ServiceEnv) {
    assert_eq!(
        e.ipa.http_requests(),
        0,
        "bad input reached IPA: {:?}",
        e.ipa.round_trips_by_method()
    );
    assert_eq!(
        e.ipa.hosts().len(),
        1,
        "only the IPA server's own host exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_malformed_request_body() {
    let e = env().await;
    let good = nova_body("vm", &new_instance_id(), enroll());
    let cases: Vec<(&str, String)> = vec![
        ("unclosed object", "{".into()),
        ("truncated nova body", good[..good.len() / 2].to_string()),
        ("trailing comma", r#"{"hostname": "vm",}"#.into()),
        (
            "missing comma",
            r#"{"hostname": "vm" "metadata": {}}"#.into(),
        ),
        ("two documents", format!("{good}{good}")),
        ("single quotes", "{'hostname': 'vm'}".into()),
        ("NaN", r#"{"hostname": "vm", "x": NaN}"#.into()),
        ("bare word", "nul".into()),
        ("comment", "{\"hostname\": \"vm\" /* x */}".into()),
        (
            "control character in a string",
            "{\"hostname\": \"v\u{1}m\"}".into(),
        ),
        ("lone surrogate escape", r#"{"hostname": "\ud800"}"#.into()),
        ("bad escape", r#"{"hostname": "\q"}"#.into()),
        (
            "number out of range",
            r#"{"hostname": "vm", "x": 1e999999}"#.into(),
        ),
        ("garbage after the object", format!("{good} x")),
    ];
    for (case, body) in cases {
        let (s, text) = e.post(&body).await;
        let m = assert_400(s, &text, &[], case);
        assert_eq!(m, "Malformed request body", "{case}");
    }
    // Valid JSON that is not an object names what it is.
    for (body, what) in [
        ("[1, 2]", "a list"),
        ("\"vm\"", "a string"),
        ("42", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let (s, text) = e.post(body).await;
        assert_400(s, &text, &["must be a JSON object", what], body);
    }
    // Empty body, empty object, whitespace: WebOb's default 400.
    for body in ["", "{}", "   "] {
        let (s, text) = e.post(body).await;
        let m = assert_400(s, &text, &[], body);
        assert!(
            m.starts_with("The server could not comply") || m == "Malformed request body",
            "{body:?}: {m}"
        );
    }
    assert_ipa_untouched(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_for_every_field_name_the_field() {
    let e = env().await;
    let wrong = [
        json!(5),
        json!(1.5),
        json!(true),
        json!([]),
        json!(["vm"]),
        json!({"a": 1}),
    ];
    for field in ["hostname", "instance-id", "image-id", "project-id"] {
        for v in &wrong {
            let (s, text) = e.post(&with_field(field, v.clone())).await;
            assert_400(
                s,
                &text,
                &[&format!("'{field}' must be a string")],
                &format!("{field} = {v}"),
            );
        }
    }
    for v in [json!("x"), json!(5), json!(true), json!([]), json!(null)] {
        let (s, text) = e.post(&with_field("metadata", v.clone())).await;
        assert_400(
            s,
            &text,
            &["'metadata' must be an object"],
            &format!("metadata = {v}"),
        );
    }
    // hostname null or missing: the original's bare 400.
    let (s, text) = e.post(&with_field("hostname", Value::Null)).await;
    assert_400(s, &text, &["could not comply"], "hostname null");

    // Metadata items the handler reads.
    for key in ["ipa_enroll", "ipa_hostclass", "ipa_host_location"] {
        for v in &wrong {
            let body = if key == "ipa_enroll" {
                nova_body("vm", &new_instance_id(), json!({ key: v }))
            } else {
                with_metadata(key, v.clone())
            };
            let (s, text) = e.post(&body).await;
            assert_400(
                s,
                &text,
                &[&format!("metadata '{key}' must be a string")],
                &format!("{key} = {v}"),
            );
        }
    }
    let services: Vec<(&str, Value, &str)> = vec![
        ("compact_service_HTTP", json!(5), "compact_service_HTTP"),
        (
            "compact_service_HTTP",
            json!(["ctlplane"]),
            "compact_service_HTTP",
        ),
        (
            "compact_service_HTTP",
            json!("{\"a\": 1}"),
            "compact_service_HTTP",
        ),
        (
            "compact_service_HTTP",
            json!("[1, 2]"),
            "compact_service_HTTP",
        ),
        (
            "compact_service_HTTP",
            json!("[oops"),
            "compact_service_HTTP",
        ),
        (
            "compact_service_",
            json!("[\"ctlplane\"]"),
            "compact_service_",
        ),
        ("compact_services", json!(5), "compact_services"),
        ("compact_services", json!("[\"x\"]"), "compact_services"),
        (
            "compact_services",
            json!("{\"HTTP\": \"ctlplane\"}"),
            "compact_services",
        ),
        (
            "compact_services",
            json!("{\"HTTP\": [1]}"),
            "compact_services",
        ),
        ("managed_service_a", json!(5), "managed_service_a"),
        (
            "managed_service_a",
            json!(["HTTP/x.example.test"]),
            "managed_service_a",
        ),
        ("managed_service_a", json!("noslash"), ""),
        (
            "managed_service_a",
            json!("HTTP/x.example.test@OTHER.REALM"),
            "",
        ),
    ];
    for (key, v, needle) in services {
        let (s, text) = e.post(&with_metadata(key, v.clone())).await;
        let needles: Vec<&str> = if needle.is_empty() {
            vec![]
        } else {
            vec![needle]
        };
        assert_400(s, &text, &needles, &format!("{key} = {v}"));
    }
    assert_ipa_untouched(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_novajoin_does_not_read_may_have_any_type() {
    // user-data and boot-roles are nova's, not ours: their types do not
    // matter, as with the original. The request enrolls normally.
    let e = env().await;
    let mut v: Value =
        serde_json::from_str(&nova_body("odd", &new_instance_id(), enroll())).unwrap();
    v["user-data"] = json!({"nested": [1, 2, {"x": null}]});
    v["boot-roles"] = json!(17);
    v["metadata"]["unrelated"] = json!([true, {"deep": [1]}]);
    let (s, text) = e.post(&v.to_string()).await;
    assert_eq!(s, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["ipaotp"].as_str(), e.otp_in_ipa("odd").as_deref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_deep_json() {
    let e = env().await;
    // Over the 112 KiB limit, with a Content-Length: 413 before reading.
    let huge = with_metadata("x", json!("a".repeat(200_000)));
    let (s, text) = e.post(&huge).await;
    assert_eq!(s, 413, "{text}");
    assert!(text.contains("overLimit"), "{text}");
    let refused_before = refusals_413(&e);
    // Over the limit without a Content-Length (chunked): 413 while reading.
    // The server answers and closes while the client is still sending the
    // rest; its lingering close drains that, so the client gets the 413
    // rather than a reset connection.
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> = huge
        .as_bytes()
        .chunks(8192)
        .map(|c| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let resp = e
        .http
        .post(e.join_url())
        .header("Content-Type", "application/json")
        .header("X-Auth-Token", &e.nova_token)
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(
            futures::stream::iter(chunks),
        )))
        .send()
        .await;
    let resp = resp.expect("the 413 reaches the client");
    assert_eq!(resp.status(), 413);
    assert_eq!(refusals_413(&e), refused_before + 1);
    // Just under the limit but a hundred thousand keys: parsed and refused
    // for what it lacks, quickly.
    let many: String = {
        let mut s = String::from("{");
        let mut i = 0;
        while s.len() < 110_000 {
            s.push_str(&format!("\"k{i}\": 0, "));
            i += 1;
        }
        s.push_str("\"hostname\": 5}");
        s
    };
    let started = std::time::Instant::now();
    let (s, text) = e.post(&many).await;
    assert_400(s, &text, &["'hostname' must be a string"], "many keys");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Deep nesting (serde_json stops at 128 levels): 400, no stack overflow,
    // in the body, in metadata and in an unrelated field.
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for (case, body) in [
        ("deep top level", deep(50_000)),
        (
            "deep metadata",
            format!(
                "{{\"hostname\": \"vm\", \"instance-id\": \"{}\", \"metadata\": {{\"x\": {}}}}}",
                new_instance_id(),
                deep(20_000)
            ),
        ),
        (
            "deep objects",
            format!("{}{}", "{\"a\":".repeat(15_000), "}".repeat(15_000)),
        ),
        (
            "deep user-data",
            format!(
                "{{\"instance-id\": \"{}\", \"hostname\": \"vm\", \"user-data\": {}}}",
                new_instance_id(),
                deep(129)
            ),
        ),
    ] {
        let (s, text) = e.post(&body).await;
        let m = assert_400(s, &text, &[], case);
        assert_eq!(m, "Malformed request body", "{case}");
    }
    // The server is still there.
    let r = e
        .http
        .get(format!("{}/healthcheck", e.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ipa_untouched(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_400() {
    let e = env().await;
    let id = new_instance_id();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = nova_body("vm", &id, enroll()).into_bytes();
    let at = b.windows(4).position(|w| w == b"\"vm\"").unwrap() + 2;
    b.insert(at, 0xff);
    cases.push(("0xff in hostname", b));
    cases.push((
        "overlong encoding of '/'",
        [b"{\"hostname\": \"v".as_slice(), &[0xc0, 0xaf], b"m\"}"].concat(),
    ));
    cases.push((
        "truncated multibyte sequence",
        [b"{\"hostname\": \"vm".as_slice(), &[0xe2, 0x82], b"\"}"].concat(),
    ));
    cases.push((
        "UTF-16 body",
        nova_body("vm", &id, enroll())
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect(),
    ));
    cases.push((
        "invalid UTF-8 in a metadata key",
        [
            b"{\"hostname\": \"vm\", \"metadata\": {\"ipa_enroll".as_slice(),
            &[0xfe],
            b"\": \"True\"}}",
        ]
        .concat(),
    ));
    for (case, body) in cases {
        let resp = e
            .http
            .post(e.join_url())
            .header("Content-Type", "application/json")
            .header("X-Auth-Token", &e.nova_token)
            .body(body)
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let m = assert_400(s, &text, &[], case);
        assert_eq!(m, "Malformed request body", "{case}");
    }
    // Invalid UTF-8 in the token header: not a token keystone could have made.
    let (s, _, _) = raw_request(
        &e,
        &[
            b"POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: "
                .as_slice(),
            &[0xff, 0xfe, b'a'],
            b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        ]
        .concat(),
    );
    assert_eq!(s, 401);
    assert_ipa_untouched(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnames_that_are_no_dns_name_are_400() {
    let e = env().await;
    let bad = [
        // dots
        "vm.other.org",
        "vm.example.test.evil.org",
        "a.b.example.test",
        ".vm",
        "vm..x",
        ".",
        "..",
        // spaces and other whitespace
        "vm 1",
        " vm",
        "vm\t1",
        "vm\n1",
        "vm\r\nSet-Cookie: a=b",
        "\u{a0}vm",
        // unicode
        "vm-ü",
        "вм",
        "ｖｍ",
        "vm\u{200b}",
        "vm\u{0}",
        "🦀",
        // shell metacharacters
        "vm;reboot",
        "$(reboot)",
        "`id`",
        "vm|id",
        "vm&&id",
        "vm>x",
        "vm<x",
        "vm'x",
        "vm\"x",
        "vm\\x",
        "vm*",
        "vm?",
        "vm#x",
        "vm!x",
        "~root",
        "vm$HOME",
        "../../etc/passwd",
        "vm/x",
        "vm%0a",
        "vm@x",
        "vm:x",
        "vm,x",
        "vm_x",
        // label rules
        "-vm",
        "vm-",
        &"a".repeat(64),
    ];
    for h in bad {
        let (s, text) = e.post(&nova_body(h, &new_instance_id(), enroll())).await;
        let m = assert_400(s, &text, &["hostname"], &format!("{h:?}"));
        assert!(
            !m.contains('\n') && !m.contains('\r'),
            "{h:?}: message {m:?} carries a raw line break"
        );
    }
    // An FQDN over 253 characters, in our domain.
    let long = format!("{}.example.test", vec!["a".repeat(63); 4].join("."));
    let (s, text) = e
        .post(&nova_body(&long, &new_instance_id(), enroll()))
        .await;
    assert_400(s, &text, &["hostname"], "long FQDN");
    assert_ipa_untouched(&e);

    // A valid DNS name whose FQDN is longer than IPA allows
    // (ipamaxhostnamelength, 64 by default and configurable in IPA, so
    // novajoin leaves it to IPA): IPA refuses it, the answer is 400 naming
    // IPA's limit, and no host is created.
    let (s, text) = e
        .post(&nova_body(&"c".repeat(52), &new_instance_id(), enroll()))
        .await;
    assert_400(s, &text, &["at most 64 characters"], "65-character FQDN");
    assert_eq!(e.ipa.hosts().len(), 1);
    assert_eq!(e.ipa.round_trips(), 1, "IPA was asked once and refused");

    // What is documented to work: an FQDN already in the domain (nova API
    // 2.94), upper case, a trailing dot, the longest FQDN IPA takes, and an
    // IDNA label.
    let good = [
        ("vmfq.example.test", "vmfq"),
        ("UPPER", "upper"),
        ("dot.", "dot"),
        (&"b".repeat(51) as &str, &"b".repeat(51) as &str),
        ("xn--bcher-kva", "xn--bcher-kva"),
    ];
    for (h, short) in good {
        let (s, text) = e.post(&nova_body(h, &new_instance_id(), enroll())).await;
        assert_eq!(s, 200, "{h:?}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["hostname"], format!("{short}.example.test"), "{h:?}");
        assert_eq!(
            v["ipaotp"].as_str(),
            e.otp_in_ipa(short).as_deref(),
            "{h:?}"
        );
    }
    assert_eq!(e.ipa.hosts().len(), 1 + good.len());
}

/// Sends raw bytes on a new connection and reads the answer (the server
/// closes after it: every request says `Connection: close` or is bad).
fn raw_request(e: &ServiceEnv, bytes: &[u8]) -> (u16, String, String) {
    let addr = e.server.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer to {:?}: {text:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn request_with(e: &ServiceEnv, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Auth-Token: {}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        e.nova_token,
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_attempts_are_refused() {
    let e = env().await;
    let body = nova_body("inj", &new_instance_id(), enroll());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "obsolete line folding carrying a header",
            request_with(&e, "X-Note: a\r\n X-Roles: admin\r\n", &body),
        ),
        ("NUL in a header value", request_with(&e, "X-Note: a\0b\r\n", &body)),
        (
            "bare CR inside a header value",
            request_with(&e, "X-Note: a\rX-Roles: admin\r\n", &body),
        ),
        ("space in a header name", request_with(&e, "X Roles: admin\r\n", &body)),
        ("header line without a colon", request_with(&e, "X-Roles admin\r\n", &body)),
        (
            "two different Content-Length headers",
            format!(
                "POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: {}\r\n\
                 Content-Length: 2\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                e.nova_token,
                body.len()
            )
            .into_bytes(),
        ),
        (
            "request line with a raw space in the path",
            format!(
                "POST /v1/ x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        ),
    ];
    for (case, bytes) in cases {
        let (status, head, _) = raw_request(&e, &bytes);
        assert_eq!(status, 400, "{case}: {head}");
    }
    // A smuggled second request behind a chunked body with a conflicting
    // Content-Length: hyper reads the chunked body (RFC 9112 §6.1) and the
    // connection is closed after it, so the tail is never run as a request.
    let smuggled = nova_body("smuggled", &new_instance_id(), enroll());
    let tail = format!(
        "POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: {}\r\n\
         Content-Length: {}\r\n\r\n{smuggled}",
        e.nova_token,
        smuggled.len()
    );
    let bytes = format!(
        "POST /v1/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: {}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n{tail}",
        e.nova_token
    );
    let (status, head, rest) = raw_request(&e, bytes.as_bytes());
    assert!(
        status == 400,
        "chunked + Content-Length: the request is refused ({status}): {head}"
    );
    assert!(
        !rest.contains("HTTP/1.1 200"),
        "the smuggled request was answered: {rest}"
    );
    assert!(e.ipa.host("smuggled.example.test").is_none());

    // A hostname carrying CRLF and a header never becomes a header.
    let (status, head, _) = raw_request(
        &e,
        &request_with(
            &e,
            "",
            &nova_body("vm\r\nSet-Cookie: a=b", &new_instance_id(), enroll()),
        ),
    );
    assert_eq!(status, 400);
    assert!(!head.to_ascii_lowercase().contains("set-cookie"), "{head}");
    // A request id that tries to smuggle text is not echoed; a fresh one is made.
    let (status, head, _) = raw_request(
        &e,
        &request_with(&e, "X-OpenStack-Request-Id: req-1; Set-Cookie=a\r\n", "{}"),
    );
    assert_eq!(status, 400);
    let rid = head
        .lines()
        .find_map(|l| l.strip_prefix("x-openstack-request-id: "))
        .unwrap_or_else(|| panic!("no request id: {head}"));
    assert!(
        rid.starts_with("req-") && !rid.contains("Set-Cookie"),
        "{rid}"
    );
    // An encoded CRLF in the path stays a path: 404.
    let (status, head, _) = raw_request(
        &e,
        format!(
            "POST /v1/%0d%0aX-Roles:%20admin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             X-Auth-Token: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            e.nova_token,
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(status, 404, "{head}");
    assert_ipa_untouched(&e);
}

/// Every identity header a client could forge, claiming to be nova.
const FORGED: &[(&str, &str)] = &[
    ("X-Identity-Status", "Confirmed"),
    ("X-Service-Identity-Status", "Confirmed"),
    ("X-User-Name", "nova"),
    ("X-User-Id", "nova"),
    ("X-User", "nova"),
    ("X-Project-Name", "service"),
    ("X-Project-Id", "service"),
    ("X-Tenant-Name", "service"),
    ("X-Tenant-Id", "service"),
    ("X-Tenant", "service"),
    ("X-Roles", "admin,service"),
    ("X-Role", "admin"),
    ("X-Service-Roles", "service,admin"),
    ("X-Service-User-Name", "nova"),
    ("X-Service-Project-Name", "service"),
    ("X-Is-Admin-Project", "True"),
    ("OpenStack-System-Scope", "all"),
    ("X-User-Domain-Name", "Default"),
    ("X-Project-Domain-Name", "Default"),
    ("X-Domain-Name", "Default"),
];

async fn post_forged(
    e: &ServiceEnv,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = e
        .http
        .post(e.join_url())
        .header("Content-Type", "application/json")
        .body(body.to_string());
    for (k, v) in FORGED.iter().chain(extra) {
        req = req.header(*k, *v);
    }
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_with_real_tokens_change_nothing() {
    let e = env().await;
    let demo = e.keystone.issue_token("demo").await;
    let novajoin = e.keystone.issue_token("novajoin").await;
    let body = || nova_body("forged", &new_instance_id(), enroll());

    let (s, text) = post_forged(&e, None, &[], &body()).await;
    assert_eq!(s, 401, "no token: {text}");
    let (s, text) = post_forged(&e, Some("gAAAAAB-not-a-token"), &[], &body()).await;
    assert_eq!(s, 401, "garbage token: {text}");
    let (s, text) = post_forged(&e, Some(&demo), &[], &body()).await;
    assert_eq!(s, 403, "demo claiming to be nova: {text}");
    assert!(text.contains("forbidden"), "{text}");
    let (s, text) = post_forged(&e, Some(&novajoin), &[], &body()).await;
    assert_eq!(s, 403, "a service user that is not nova: {text}");
    // nova's token as a *service* token does not make the user nova.
    let (s, text) = post_forged(
        &e,
        Some(&demo),
        &[("X-Service-Token", &e.nova_token)],
        &body(),
    )
    .await;
    assert_eq!(s, 403, "demo with nova's token as X-Service-Token: {text}");
    // A second X-Auth-Token header cannot add nova to a demo request.
    let r = e
        .http
        .post(e.join_url())
        .header("Content-Type", "application/json")
        .header("X-Auth-Token", &demo)
        .header("X-Auth-Token", &e.nova_token)
        .body(body())
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status().as_u16(), 401 | 403),
        "two tokens: {}",
        r.status()
    );
    assert_ipa_untouched(&e);

    // Forged headers cannot take rights away from nova either: they are
    // dropped, and nova's own token decides.
    let (s, text) = post_forged(
        &e,
        Some(&e.nova_token),
        &[("X-Roles", "reader"), ("X-User-Name", "demo")],
        &nova_body("realnova", &new_instance_id(), enroll()),
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ipaotp"].as_str(), e.otp_in_ipa("realnova").as_deref());
    assert_eq!(
        e.ipa.hosts().len(),
        2,
        "only nova's request enrolled a host"
    );
}
