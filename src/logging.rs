//! Logging to stderr (journald picks it up) and systemd readiness.
//!
//! Human-readable lines on a terminal, JSON lines otherwise (or as
//! `[DEFAULT] log_format_style` says). `debug = true` lowers the level to
//! debug; `RUST_LOG` overrides both.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigFiles, DEBUG, LOG_FORMAT};

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
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
