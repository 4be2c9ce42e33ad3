//! `novajoin notify`: build the IPA client and the cloud lookups from
//! join.conf, and run the notification listener (with the OTP sweeper and
//! the periodic reconciler) through the daemon path.

use std::future::Future;
use std::sync::Arc;

use super::daemon::{self, Daemon};
use crate::cli::ConfigArgs;
use crate::config::ConfigFiles;
use crate::metrics::MetricsRole;
use crate::notify::cleanup::Cleanup;
use crate::notify::{Listener, ListenerSettings};

/// Runs the listener from the command line; returns the exit status.
pub fn run_cli(args: ConfigArgs) -> i32 {
    daemon::run::<Notify>(&args)
}

/// The listener and the periodic tasks beside it.
struct Notify {
    listener: Listener,
    otp_sweeper: tokio::task::JoinHandle<()>,
    _reconciler: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon for Notify {
    type Error = String;
    const NAME: &'static str = "novajoin notify";
    const METRICS: MetricsRole = MetricsRole::Notify;

    async fn start(cfg: Arc<ConfigFiles>) -> Result<Self, String> {
        let (listener, parts) = build(&cfg)?;
        let otp_lifetime =
            crate::otp_lifetime::OtpLifetime::from_config(&cfg).map_err(|e| e.to_string())?;
        let otp_sweeper =
            crate::otp_lifetime::periodic(parts.ipa.clone(), parts.region.clone(), otp_lifetime);
        let reconciler = match crate::reconcile::periodic(&cfg, parts) {
            Ok(task) => task,
            Err(e) => {
                otp_sweeper.abort();
                return Err(e);
            }
        };
        Ok(Self {
            listener,
            otp_sweeper,
            _reconciler: reconciler,
        })
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let result = self.listener.run(shutdown).await.map_err(|e| e.to_string());
        self.otp_sweeper.abort();
        result
    }
}

/// Everything the listener needs, from join.conf.
fn build(cfg: &ConfigFiles) -> Result<(Listener, Cleanup), String> {
    let settings = ListenerSettings::from_config(cfg).map_err(|e| e.to_string())?;
    let parts = Cleanup::from_config(cfg)?;
    let listener = Listener::new(settings, parts.handler.clone()).map_err(|e| e.to_string())?;
    Ok((listener, parts))
}
