//! `novajoin notify`: load join.conf, build the IPA client and the cloud
//! lookups, and run the notification listener until SIGTERM or SIGINT.

use crate::cli::ConfigArgs;
use crate::config::ConfigFiles;
use crate::notify::cleanup::Cleanup;
use crate::notify::{Listener, ListenerSettings};

/// Runs the listener from the command line; returns the exit status.
pub fn run_cli(args: ConfigArgs) -> i32 {
    let cfg = match ConfigFiles::load(&args.config_file, &args.config_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("novajoin notify: {e}");
            return 2;
        }
    };
    crate::logging::init_from_config(&cfg);
    match cfg.validate(&crate::option_catalog::CATALOG) {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let (listener, parts) = match build(&cfg) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return 2;
            }
        };
        let otp_lifetime = match crate::otp_lifetime::OtpLifetime::from_config(&cfg) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return 2;
            }
        };
        let otp_sweeper =
            crate::otp_lifetime::periodic(parts.ipa.clone(), parts.region.clone(), otp_lifetime);
        let _reconciler = match crate::reconcile::periodic(&cfg, parts) {
            Ok(task) => task,
            Err(e) => {
                tracing::error!("{e}");
                return 2;
            }
        };
        let _metrics = match crate::metrics::start_from_config(
            &cfg,
            crate::metrics::MetricsRole::Notify,
        )
        .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("{e}");
                return 2;
            }
        };
        crate::logging::notify_ready();
        let status = match listener.run(shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        };
        otp_sweeper.abort();
        status
    })
}

/// Everything the listener needs, from join.conf.
fn build(cfg: &ConfigFiles) -> Result<(Listener, Cleanup), String> {
    let settings = ListenerSettings::from_config(cfg).map_err(|e| e.to_string())?;
    let parts = Cleanup::from_config(cfg)?;
    let listener = Listener::new(settings, parts.handler.clone()).map_err(|e| e.to_string())?;
    Ok((listener, parts))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received: stopping"),
    }
    crate::logging::notify_stopping();
}
