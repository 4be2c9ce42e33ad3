//! The access log: one line per answered request, target
//! `novajoin::access`, level INFO.
//!
//! With JSON lines installed (the service's format when stderr is not a
//! terminal), [`record`] writes the line straight into the logging
//! thread's buffer, byte for byte the line [`super::JsonLines`] makes of
//! the same `tracing` event, skipping the generic path's field visitor,
//! escape check per key and second buffer; otherwise (human format, no
//! logger, tests with their own subscriber) it emits that event.
//!
//! Either way `tracing` decides whether the line is wanted, so `RUST_LOG`
//! (say `novajoin::access=off`) and `debug` keep working.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::SystemTime;

use super::json_lines::{push_json_str, push_timestamp};
use super::{BatchingWriter, LatencyText};

/// The target access-log lines carry.
pub const TARGET: &str = "novajoin::access";

/// One answered request as the access log records it (`-` where a value
/// is unknown).
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request path (no query string).
    pub path: &'a str,
    /// The response status code.
    pub status: u16,
    /// Time from request received to response ready.
    pub latency: LatencyText,
    /// This service's `req-...` id (`X-OpenStack-Request-ID`).
    pub request_id: &'a str,
    /// The caller's global request id, when it sent one.
    pub global_request_id: &'a str,
    /// The instance the request was about.
    pub instance_id: &'a str,
    /// The response cache's outcome (`hit`, `miss`, ...).
    pub cache: &'a str,
    /// The client address (from the proxy headers when trusted).
    pub client: &'a str,
    /// The scheme the client used.
    pub scheme: &'a str,
    /// The host the client asked for.
    pub host: &'a str,
}

/// Where lines go directly; set once by [`super::init`] with JSON lines.
static DIRECT: OnceLock<BatchingWriter> = OnceLock::new();

/// Sends access-log lines straight to `writer` (the JSON-lines logger's).
pub(super) fn write_directly_to(writer: BatchingWriter) {
    let _ = DIRECT.set(writer);
}

thread_local! {
    /// The line being built; kept per thread so a line costs no allocation.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes the access-log line for `entry`, if INFO lines of the access
/// target are wanted.
pub fn record(entry: &AccessEntry<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let Some(writer) = DIRECT.get() else {
        return emit_event(entry);
    };
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        format_line(&mut line, SystemTime::now(), entry);
        // Appending to the logging thread's buffer cannot fail.
        let _ = (&*writer).write_all(&line);
    });
}

/// The line as a `tracing` event, for whatever subscriber is installed.
fn emit_event(e: &AccessEntry<'_>) {
    tracing::info!(target: TARGET, method = e.method, path = e.path, status = e.status,
        latency_ms = e.latency.as_str(), request_id = e.request_id,
        global_request_id = e.global_request_id, instance_id = e.instance_id, cache = e.cache,
        client = e.client, scheme = e.scheme, host = e.host, "request");
}

/// Appends the JSON line [`super::JsonLines`] writes for [`emit_event`]'s
/// event logged at `at`: the same keys, order and escaping.
fn format_line(buf: &mut Vec<u8>, at: SystemTime, e: &AccessEntry<'_>) {
    buf.extend_from_slice(br#"{"timestamp":""#);
    push_timestamp(buf, at);
    buf.extend_from_slice(br#"","level":"INFO","message":"request","method":"#);
    push_json_str(buf, e.method);
    buf.extend_from_slice(br#","path":"#);
    push_json_str(buf, e.path);
    buf.extend_from_slice(br#","status":"#);
    push_number(buf, e.status);
    // The string fields after `status`, each with the text before its value.
    let strings: [(&[u8], &str); 8] = [
        (br#","latency_ms":"#, e.latency.as_str()),
        (br#","request_id":"#, e.request_id),
        (br#","global_request_id":"#, e.global_request_id),
        (br#","instance_id":"#, e.instance_id),
        (br#","cache":"#, e.cache),
        (br#","client":"#, e.client),
        (br#","scheme":"#, e.scheme),
        (br#","host":"#, e.host),
    ];
    for (key, value) in strings {
        buf.extend_from_slice(key);
        push_json_str(buf, value);
    }
    buf.extend_from_slice(br#","target":"novajoin::access"}"#);
    buf.push(b'\n');
}

/// Appends `n` in decimal.
fn push_number(buf: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::test_support::json_lines_of;
    use std::time::Duration;

    fn entry<'a>(path: &'a str, host: &'a str, status: u16) -> AccessEntry<'a> {
        AccessEntry {
            method: "POST",
            path,
            status,
            latency: LatencyText::new(Duration::from_micros(1_505)),
            request_id: "req-4f1c6f2e-5c1b-4b7e-9d3a-0c8e2b6a1f00",
            global_request_id: "-",
            instance_id: "8d5e3c1a-1111-2222-3333-444455556666",
            cache: "hit",
            client: "192.0.2.7",
            scheme: "https",
            host,
        }
    }

    /// The line without its timestamp value (the only part that differs
    /// between two lines written at different moments).
    fn without_timestamp(line: &str) -> String {
        let start = line.find(r#""timestamp":""#).expect("a timestamp") + 13;
        let end = start + line[start..].find('"').expect("its end");
        format!("{}{}", &line[..start], &line[end..])
    }

    #[test]
    fn direct_lines_are_the_lines_the_json_format_writes() {
        let cases = [
            entry("/v1/", "nova-api.example.test", 200),
            entry("/v1/\"quoted\"\n\u{7}", "h\u{e9}te \u{1f600}", 413),
            entry("", "", 5),
            entry("/healthcheck", "back\\slash", 65535),
        ];
        for e in cases {
            let through_tracing = json_lines_of(|| emit_event(&e));
            let mut direct = Vec::new();
            format_line(&mut direct, SystemTime::now(), &e);
            let direct = String::from_utf8(direct).unwrap();
            assert_eq!(
                without_timestamp(&direct),
                without_timestamp(&through_tracing),
                "{e:?}"
            );
            let parsed: serde_json::Value = serde_json::from_str(&direct).unwrap();
            assert_eq!(parsed["path"], e.path);
            assert_eq!(parsed["host"], e.host);
            assert_eq!(parsed["status"], e.status);
            assert_eq!(parsed["latency_ms"], "1.51");
        }
    }

    #[test]
    fn the_timestamp_is_the_json_formats() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_795_000_000, 54_421_000);
        let mut line = Vec::new();
        format_line(&mut line, at, &entry("/v1/", "h", 200));
        let line = String::from_utf8(line).unwrap();
        assert!(
            line.starts_with(r#"{"timestamp":"2026-11-18T11:06:40.054421Z","level":"INFO""#),
            "{line}"
        );
    }

    #[test]
    fn numbers_are_decimal() {
        for n in [0u16, 7, 10, 200, 413, 999, 1000, 65535] {
            let mut buf = Vec::new();
            push_number(&mut buf, n);
            assert_eq!(String::from_utf8(buf).unwrap(), n.to_string());
        }
    }

    #[test]
    fn without_a_direct_writer_the_event_goes_to_the_subscriber() {
        // Tests never install the global logger, so this is the event path.
        assert!(DIRECT.get().is_none());
        let text = json_lines_of(|| record(&entry("/v1/", "h", 200)));
        assert!(text.contains(r#""target":"novajoin::access""#), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn an_access_target_turned_off_writes_nothing() {
        use tracing_subscriber::layer::SubscriberExt;
        let sink = crate::logging::test_support::Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                "info,novajoin::access=off",
            ))
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(crate::logging::JsonLines)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            record(&entry("/v1/", "h", 200));
            tracing::info!("other lines still come");
        });
        let text = sink.text();
        assert!(!text.contains("novajoin::access"), "{text}");
        assert!(text.contains("other lines still come"), "{text}");
    }
}
