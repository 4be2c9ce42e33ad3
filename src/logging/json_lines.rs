//! One JSON object per log line, in the shape tracing-subscriber's JSON
//! format with `flatten_event(true)` writes (`timestamp`, `level`, the
//! event's fields in order, `target`), but serialized straight into one
//! buffer.
//!
//! tracing-subscriber's own JSON format writes through an adaptor that
//! checks every small piece serde_json emits for UTF-8 on its way into a
//! `String`; with an access-log line per request that was half the cost of
//! logging on the cache-hit path (docs/PERFORMANCE.md).

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use serde::ser::{SerializeMap, Serializer as _};
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
        let mut timestamp = String::with_capacity(32);
        write_timestamp(std::time::SystemTime::now(), &mut timestamp)?;
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
            serialize(buf, &timestamp, meta, event).map_err(|_| fmt::Error)?;
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

/// Writes `at` as tracing-subscriber's `SystemTime` timer does: UTC,
/// RFC 3339 with microseconds (`2026-11-27T12:05:16.054421Z`).
fn write_timestamp(at: std::time::SystemTime, out: &mut String) -> fmt::Result {
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
            write!(cached.1, "{}", date.format("%Y-%m-%dT%H:%M:%S"))?;
            cached.0 = secs;
        }
        out.push_str(&cached.1);
        Ok::<_, fmt::Error>(())
    })?;
    write!(out, ".{:06}Z", since_epoch.subsec_micros())
}

fn serialize(
    buf: &mut Vec<u8>,
    timestamp: &str,
    meta: &tracing::Metadata<'_>,
    event: &Event<'_>,
) -> Result<(), serde_json::Error> {
    let mut ser = serde_json::Serializer::new(buf);
    let mut map = ser.serialize_map(None)?;
    map.serialize_entry("timestamp", timestamp)?;
    map.serialize_entry("level", meta.level().as_str())?;
    let mut fields = Fields {
        map: &mut map,
        scratch: String::new(),
        error: None,
    };
    event.record(&mut fields);
    if let Some(e) = fields.error {
        return Err(e);
    }
    map.serialize_entry("target", meta.target())?;
    map.end()
}

/// Writes each field of an event as one entry of the map.
struct Fields<'a, M> {
    map: &'a mut M,
    scratch: String,
    error: Option<serde_json::Error>,
}

impl<M: SerializeMap<Error = serde_json::Error>> Fields<'_, M> {
    fn entry<V: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &V) {
        // The `log.*` fields only carry what normalization already used.
        if self.error.is_some() || field.name().starts_with("log.") {
            return;
        }
        if let Err(e) = self.map.serialize_entry(field.name(), value) {
            self.error = Some(e);
        }
    }
}

impl<M: SerializeMap<Error = serde_json::Error>> Visit for Fields<'_, M> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let _ = write!(text, "{value:?}");
        self.entry(field, text.as_str());
        self.scratch = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
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
            let mut ours = String::new();
            write_timestamp(at, &mut ours).unwrap();
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
        let mut ours = String::new();
        write_timestamp(std::time::SystemTime::now(), &mut ours).unwrap();
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
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
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
