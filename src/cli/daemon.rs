//! The one start-up path of the long-running subcommands (`novajoin
//! server`, `novajoin notify`): load join.conf, set up logging from it and
//! validate it, build the async runtime, start the metrics endpoint and the
//! subcommand's work, tell systemd it is ready, and run until SIGTERM or
//! SIGINT (telling systemd it is stopping).
//!
//! Exit statuses: 0 after a clean stop; 2 when join.conf, pipeline.toml or a
//! component cannot be used at start; 1 when the runtime cannot start or
//! the work fails while running.

use std::future::Future;
use std::sync::Arc;

use crate::cli::ConfigArgs;
use crate::config::{ConfigError, ConfigFiles};
use crate::metrics::MetricsRole;

/// A long-running subcommand, once join.conf is loaded and valid.
pub trait Daemon: Sized {
    /// Why it could not start, or stopped with an error.
    type Error: std::fmt::Display;

    /// Its name in messages on stderr (`novajoin`, `novajoin notify`).
    const NAME: &'static str;

    /// Which of `[metrics]`' endpoints it serves.
    const METRICS: MetricsRole;

    /// Sets everything up that may fail at start; it is ready to work when
    /// this returns.
    fn start(cfg: Arc<ConfigFiles>) -> impl Future<Output = Result<Self, Self::Error>>;

    /// Works until `shutdown` completes, then stops.
    fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Runs `D` from the command line; returns the exit status.
pub fn run<D: Daemon>(args: &ConfigArgs) -> i32 {
    let cfg = match load_config(args) {
        Ok(c) => c,
        Err(e) => {
            // Logging is not set up when join.conf could not be read.
            crate::logging::init(false, "auto");
            fail(D::NAME, &format_args!("configuration error: {e}"));
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            fail(
                D::NAME,
                &format_args!("cannot start the async runtime: {e}"),
            );
            return 1;
        }
    };
    runtime.block_on(start_and_run::<D>(cfg))
}

async fn start_and_run<D: Daemon>(cfg: Arc<ConfigFiles>) -> i32 {
    let _metrics = match crate::metrics::start_from_config(&cfg, D::METRICS).await {
        Ok(m) => m,
        Err(e) => {
            fail(D::NAME, &e);
            return 2;
        }
    };
    let daemon = match D::start(cfg).await {
        Ok(d) => d,
        Err(e) => {
            fail(D::NAME, &e);
            return 2;
        }
    };
    crate::logging::notify_ready();
    match daemon.run(shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            fail(D::NAME, &e);
            1
        }
    }
}

/// Reads join.conf from the command line's files, sets up logging from
/// it, then validates it and logs its warnings.
pub fn load_config(args: &ConfigArgs) -> Result<Arc<ConfigFiles>, ConfigError> {
    let cfg = ConfigFiles::load(&args.config_file, &args.config_dir)?;
    crate::logging::init_from_config(&cfg);
    for w in cfg.validate(&crate::option_catalog::CATALOG)? {
        tracing::warn!("{w}");
    }
    Ok(Arc::new(cfg))
}

/// Says why the daemon stops, in the log and on stderr (which the log may
/// not reach when it goes to the journal as JSON).
fn fail(name: &str, why: &dyn std::fmt::Display) {
    tracing::error!("{why}");
    eprintln!("{name}: {why}");
}

/// Completes at SIGTERM or SIGINT, and tells systemd the service is
/// stopping.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; stopping"),
        },
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received; stopping");
        }
    }
    crate::logging::notify_stopping();
}
