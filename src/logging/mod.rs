//! Logging to stderr (journald picks it up) and systemd readiness.
//!
//! Human-readable lines on a terminal, JSON lines otherwise (or as
//! `[DEFAULT] log_format_style` says). `debug = true` lowers the level to
//! debug; `RUST_LOG` overrides both.
//!
//! Lines are written by a logging thread, not by the thread that logs: it
//! gathers lines for a few milliseconds and writes them together
//! ([`BatchingWriter`]); a full buffer makes the logger wait rather than
//! drop lines, and [`shutdown`] writes the rest before the process exits.
//! This writer, the JSON line built in one buffer ([`JsonLines`],
//! [`access_log`]) and [`LatencyText`] are ours, not tracing-appender and
//! tracing-subscriber's JSON format: bench/ab.sh gives them 17 % of the
//! cache-hit path's requests/s (docs/PERFORMANCE.md).

pub mod access_log;
mod batching_writer;
mod json_lines;
mod latency_text;
pub mod options;

pub use access_log::AccessEntry;
pub use batching_writer::{BatchingWriter, FlushGuard};
pub use json_lines::JsonLines;
pub use latency_text::LatencyText;

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Keeps the logging thread alive; dropped by [`shutdown`].
static WRITER_GUARD: Mutex<Option<FlushGuard>> = Mutex::new(None);

use crate::config::ConfigFiles;
use crate::logging::options::{DEBUG, LOG_FORMAT};

/// Installs the global subscriber once; later calls do nothing.
pub fn init(debug: bool, style: &str) {
    // lapin logs a passive exchange check that fails (an exchange nova has
    // not declared yet) as an ERROR; the listener reports it itself.
    let default = if debug {
        "debug,lapin::channel=off"
    } else {
        "info,lapin::channel=off"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = match style {
        "json" => true,
        "human" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let mut guard = WRITER_GUARD.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_some() {
        return;
    }
    let (writer, worker) = match BatchingWriter::new(std::io::stderr(), "novajoin-log") {
        Ok(w) => w,
        Err(e) => {
            eprintln!("novajoin: cannot start the logging thread: {e}");
            return;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!json && std::io::stderr().is_terminal())
        .with_writer(writer.clone());
    let installed = if json {
        builder.event_format(JsonLines).try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok() {
        if json {
            access_log::write_directly_to(writer);
        }
        *guard = Some(worker);
    }
}

/// Writes out every queued line and stops the logging thread; call once,
/// just before the process exits. Later log lines are dropped.
pub fn shutdown() {
    let worker = WRITER_GUARD
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    drop(worker);
}

/// Installs the subscriber from join.conf (`debug`, `log_format_style`).
pub fn init_from_config(cfg: &ConfigFiles) {
    let debug = cfg.bool(&DEBUG).unwrap_or(false);
    let style = cfg
        .choice(&LOG_FORMAT)
        .ok()
        .flatten()
        .unwrap_or_else(|| "auto".into());
    init(debug, &style);
}

/// Tells systemd (Type=notify) the service is ready; a no-op elsewhere.
pub fn notify_ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the service is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// What tests use to read what a subscriber writes.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    pub(crate) struct Sink(pub Arc<Mutex<Vec<u8>>>);

    impl Sink {
        /// Everything written so far.
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What [`super::JsonLines`] writes for the events `emit` logs.
    pub(crate) fn json_lines_of(emit: impl FnOnce()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(super::JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        sink.text()
    }
}
