//! `novajoin notify`: load join.conf, build the IPA client and the cloud
//! lookups, and run the notification listener until SIGTERM or SIGINT.

use std::sync::Arc;

use crate::cache::{RawCacheOptions, ResponseCache};
use crate::cli::ConfigArgs;
use crate::cloud::CloudLookups;
use crate::config::ConfigFiles;
use crate::ipa::{load_default_conf, IpaClient, IpaClientConfig};
use crate::keystone::ServiceSession;
use crate::notify::handlers::{InstanceEviction, IpaEventHandler};
use crate::notify::naming::FqdnPolicy;
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
    match cfg.validate() {
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
        let _reconciler = match crate::cli::reconcile::periodic(&cfg, parts) {
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
        match listener.run(shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        }
    })
}

/// What removes instances from IPA: the event handler and what it is
/// built on, shared by the listener and `novajoin reconcile`.
pub(crate) struct Cleanup {
    /// The handler of instance and floating-IP events.
    pub handler: Arc<IpaEventHandler>,
    /// The IPA client it uses.
    pub ipa: IpaClient,
    /// nova, neutron and keystone, when `[service_credentials]` is set.
    pub cloud: Option<CloudLookups>,
    /// `[DEFAULT] region_name` (or `[service_credentials] region_name`).
    pub region: Option<String>,
}

/// Builds the [`Cleanup`] from join.conf. Errors are start-up errors with a
/// message naming the option to fix.
pub(crate) fn cleanup(cfg: &ConfigFiles) -> Result<Cleanup, String> {
    let default_conf = load_default_conf(cfg).map_err(|e| e.to_string())?;
    let ipa_cfg =
        IpaClientConfig::from_conf_with(cfg, default_conf.as_ref()).map_err(|e| e.to_string())?;
    let realm = ipa_cfg.realm.clone().unwrap_or_default();
    let ipa = IpaClient::new(ipa_cfg).map_err(|e| e.to_string())?;
    let policy = FqdnPolicy::from_config(cfg, default_conf.as_ref()).map_err(|e| e.to_string())?;
    let cloud = ServiceSession::from_config(cfg)
        .map_err(|e| e.to_string())?
        .map(CloudLookups::new);
    if cloud.is_none() {
        if policy.project_subdomain {
            return Err("project_subdomain = true needs [service_credentials] (auth_type, auth_url, username, ...) \
                        to look up project names"
                .into());
        }
        tracing::warn!(
            "[service_credentials] is not configured: floating-IP events cannot be handled and instance \
             updates are applied without checking that nova still has the instance"
        );
    }
    if realm.is_empty() {
        tracing::warn!(
            "the IPA realm is unknown ([ipa] realm or /etc/ipa/default.conf): service principals \
                        written with @REALM in instance metadata will be refused"
        );
    }
    let region = crate::join::setup::binding_region(cfg).map_err(|e| e.to_string())?;
    let handler = IpaEventHandler::new(
        ipa.clone(),
        policy,
        realm,
        region.clone(),
        cloud.clone(),
        response_cache(cfg)?,
    );
    Ok(Cleanup {
        handler: Arc::new(handler),
        ipa,
        cloud,
        region,
    })
}

/// Everything the listener needs, from join.conf.
fn build(cfg: &ConfigFiles) -> Result<(Listener, Cleanup), String> {
    let settings = ListenerSettings::from_config(cfg).map_err(|e| e.to_string())?;
    let parts = cleanup(cfg)?;
    let listener = Listener::new(settings, parts.handler.clone()).map_err(|e| e.to_string())?;
    Ok((listener, parts))
}

/// The shared (Redis) response cache whose entries deletes evict. A memory
/// cache lives inside the server process, out of reach, and its entries
/// expire after `[cache] ttl` on their own.
fn response_cache(cfg: &ConfigFiles) -> Result<Option<Arc<dyn InstanceEviction>>, String> {
    let settings = RawCacheOptions::from_config(cfg)
        .and_then(RawCacheOptions::resolve)
        .map_err(|e| e.to_string())?;
    if settings.redis.is_none() {
        tracing::debug!("[cache] backend is memory: nothing to evict from this process");
        return Ok(None);
    }
    let cache = ResponseCache::new(&settings).map_err(|e| e.to_string())?;
    tracing::info!("deleted instances are evicted from the shared response cache (Redis)");
    Ok(Some(Arc::new(cache)))
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
