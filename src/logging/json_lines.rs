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
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
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
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
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
