//! One JSON object per log line, in the shape tracing-subscriber's JSON
//! format with `flatten_event(true)` writes (`timestamp`, `level`, the
//! event's fields in order, `target`), but serialized straight into one
//! buffer.
//!
//! tracing-subscriber's own JSON format writes through an adaptor that
//! checks every small piece serde_json emits for UTF-8 on its way into a
//! `String`, for every access-log line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON line format of the service's logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

thread_local! {
    /// The line being built; kept per thread so a line costs no allocation.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now();
        // Records that came from the `log` crate carry their real level and
        // target in `log.*` fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        LINE.with(|line| {
            // A line being formatted when a field's Debug logs again: give
            // the inner event a buffer of its own.
            let mut own = Vec::new();
            let mut borrowed = line.try_borrow_mut().ok();
            let buf = borrowed.as_deref_mut().unwrap_or(&mut own);
            buf.clear();
            serialize(buf, now, meta, event);
            buf.push(b'\n');
            writer.write_str(std::str::from_utf8(buf).map_err(|_| fmt::Error)?)
        })
    }
}

thread_local! {
    /// The current second as `YYYY-MM-DDTHH:MM:SS` (epoch seconds, text):
    /// formatting the date once per second instead of once per line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Appends `at` as tracing-subscriber's `SystemTime` timer writes it:
/// UTC, RFC 3339 with microseconds (`2026-11-27T12:05:16.054421Z`).
pub(super) fn push_timestamp(buf: &mut Vec<u8>, at: std::time::SystemTime) {
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            let date = i64::try_from(secs)
                .ok()
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
                .unwrap_or_default();
            cached.1.clear();
            // Writing into a String cannot fail.
            let _ = write!(cached.1, "{}", date.format("%Y-%m-%dT%H:%M:%S"));
            cached.0 = secs;
        }
        buf.extend_from_slice(cached.1.as_bytes());
    });
    let mut micros = since_epoch.subsec_micros();
    let mut digits = *b".000000Z";
    for at in (1..7).rev() {
        digits[at] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    buf.extend_from_slice(&digits);
}

fn serialize(
    buf: &mut Vec<u8>,
    at: std::time::SystemTime,
    meta: &tracing::Metadata<'_>,
    event: &Event<'_>,
) {
    let mut line = Line { buf, first: true };
    line.buf.push(b'{');
    line.key("timestamp");
    line.buf.push(b'"');
    push_timestamp(line.buf, at);
    line.buf.push(b'"');
    line.key("level");
    push_json_str(line.buf, meta.level().as_str());
    let mut fields = Fields {
        line: &mut line,
        scratch: String::new(),
    };
    event.record(&mut fields);
    line.key("target");
    push_json_str(line.buf, meta.target());
    line.buf.push(b'}');
}

/// A JSON object being written: entries separated by commas.
struct Line<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl Line<'_> {
    /// Starts an entry: the separator, the key and the colon.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        push_json_str(self.buf, key);
        self.buf.push(b':');
    }

    /// Writes a value with serde_json (numbers, booleans), as
    /// tracing-subscriber's JSON format does.
    fn serde_value<V: serde::Serialize>(&mut self, value: &V) {
        // Serializing a number or a bool into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.buf, value);
    }
}

/// Appends `text` as a JSON string. Log text rarely needs escaping, so it
/// is checked for the characters JSON escapes first ([`needs_json_escape`])
/// and copied as is when clean; serde_json escapes the rest.
/// Escaping copies runs of plain bytes at once rather than byte by byte.
pub(super) fn push_json_str(buf: &mut Vec<u8>, text: &str) {
    if needs_json_escape(text.as_bytes()) {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, text);
    } else {
        buf.reserve(text.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    }
}

/// Whether JSON needs any of these bytes escaped: control characters, `"`
/// and the backslash (the same set as serde_json). Checked eight bytes at a
/// time (most log strings are short, too short for vector code), the last
/// word overlapping the one before it.
fn needs_json_escape(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let word_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let mut any = 0;
    let mut i = 0;
    while i + 8 <= bytes.len() {
        any |= special_bytes(word_at(i));
        i += 8;
    }
    if i < bytes.len() {
        any |= special_bytes(word_at(bytes.len() - 8));
    }
    any != 0
}

/// Non-zero when one of the eight bytes of `word` is below 0x20, `"` or a
/// backslash (the classic "has a zero byte" test, exact for existence).
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let zero_where = |w: u64, b: u8| w ^ (ONES * u64::from(b));
    below(word, 0x20) | below(zero_where(word, b'"'), 1) | below(zero_where(word, b'\\'), 1)
}

/// Writes each field of an event as one entry of the line.
struct Fields<'a, 'b> {
    line: &'a mut Line<'b>,
    scratch: String,
}

impl Fields<'_, '_> {
    /// Starts the field's entry, or says to skip it: the `log.*` fields
    /// only carry what normalization already used.
    fn key(&mut self, field: &Field) -> bool {
        if field.name().starts_with("log.") {
            return false;
        }
        self.line.key(field.name());
        true
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            push_json_str(self.line.buf, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.line.serde_value(&value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            self.line.serde_value(&value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            self.line.serde_value(&value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            self.line.serde_value(&value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.key(field) {
            return;
        }
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let _ = write!(text, "{value:?}");
        push_json_str(self.line.buf, &text);
        self.scratch = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::test_support::{json_lines_of, Sink};

    fn lines_of(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let text = json_lines_of(emit);
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn writes_the_fields_in_order_between_timestamp_level_and_target() {
        let path = "/v1/\"quoted\"\n";
        let lines = lines_of(|| {
            tracing::info!(target: "novajoin::access", method = %"POST", path, status = 200u16,
                latency_ms = format_args!("{:.2}", 1.5f64), cached = true, delta = -3i64, "request");
        });
        let line = lines[0].as_object().unwrap();
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "message",
                "method",
                "path",
                "status",
                "latency_ms",
                "cached",
                "delta",
                "target"
            ]
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["path"], path, "escaped and read back intact");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_ms"], "1.50");
        assert_eq!(line["cached"], true);
        assert_eq!(line["delta"], -3);
        assert_eq!(line["target"], "novajoin::access");
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut samples = vec![
            String::new(),
            "plain".into(),
            "req-4f1c6f2e-5c1b-4b7e-9d3a-0c8e2b6a1f00".into(),
            "h\u{e9}llo \u{1f600} unicode".into(),
            "\u{7f} is not escaped".into(),
        ];
        // Each special byte at every position of strings of every length
        // up to five words, and bytes just around the special ones.
        for len in 1..40 {
            for special in [
                '"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}',
            ] {
                for at in 0..len {
                    let mut t: String = "x".repeat(len);
                    t.replace_range(at..at + 1, &special.to_string());
                    samples.push(t);
                }
            }
        }
        for text in samples {
            let mut ours = Vec::new();
            push_json_str(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn timestamps_are_utc_rfc3339_with_microseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        for (secs, micros) in [
            (0u64, 0u32),
            (1_795_000_000, 54_421),
            (1_795_000_000, 999_999),
            (1_795_000_001, 7),
            (951_782_400, 500_000), // 2000-02-29
        ] {
            let at = UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999);
            let mut ours = Vec::new();
            push_timestamp(&mut ours, at);
            let ours = String::from_utf8(ours).unwrap();
            let expected = chrono::DateTime::<chrono::Utc>::from(at)
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(ours, expected);
        }
        // The same shape as tracing-subscriber's own timer, now.
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
        let mut theirs = String::new();
        SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = Vec::new();
        push_timestamp(&mut ours, std::time::SystemTime::now());
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
        assert_eq!(ours[..16], theirs[..16], "same minute: {ours} vs {theirs}");
    }

    #[test]
    fn matches_tracing_subscribers_own_json_format() {
        let emit = || tracing::warn!(answer = 42, name = "nova", ratio = 0.5, "plain message");
        let ours = lines_of(emit);
        let sink = Sink::default();
        let writer = sink.clone();
        let theirs = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(theirs, emit);
        let text = sink.text();
        let mut theirs: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let mut ours = ours[0].clone();
        ours.as_object_mut().unwrap().remove("timestamp");
        theirs.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
    }
}
