//! What removes instances from IPA: the event handler of the listener and
//! the clients it is built on, from join.conf. Shared by `novajoin notify`
//! and `novajoin reconcile`.

use std::sync::Arc;

use super::handlers::{InstanceEviction, IpaEventHandler};
use super::naming::FqdnPolicy;
use crate::cache::{CacheSettings, ResponseCache};
use crate::cloud::CloudLookups;
use crate::config::ConfigFiles;
use crate::ipa::{load_default_conf, IpaClient, IpaClientConfig};
use crate::keystone::ServiceSession;

/// What removes instances from IPA: the event handler and what it is
/// built on, shared by the listener and `novajoin reconcile`.
pub struct Cleanup {
    /// The handler of instance and floating-IP events.
    pub handler: Arc<IpaEventHandler>,
    /// The IPA client it uses.
    pub ipa: IpaClient,
    /// nova, neutron and keystone, when `[service_credentials]` is set.
    pub cloud: Option<CloudLookups>,
    /// `[DEFAULT] region_name` (or `[service_credentials] region_name`).
    pub region: Option<String>,
}

impl Cleanup {
    /// Builds the [`Cleanup`] from join.conf. Errors are start-up errors with a
    /// message naming the option to fix.
    pub fn from_config(cfg: &ConfigFiles) -> Result<Cleanup, String> {
        let default_conf = load_default_conf(cfg).map_err(|e| e.to_string())?;
        let ipa_cfg = IpaClientConfig::from_conf_with(cfg, default_conf.as_ref())
            .map_err(|e| e.to_string())?;
        let realm = ipa_cfg.realm.clone().unwrap_or_default();
        let ipa = IpaClient::new(ipa_cfg).map_err(|e| e.to_string())?;
        let policy =
            FqdnPolicy::from_config(cfg, default_conf.as_ref()).map_err(|e| e.to_string())?;
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
}

/// The shared (Redis, memcached) response cache whose entries deletes
/// evict. A memory cache lives inside the server process, out of reach,
/// and its entries expire after `[cache] ttl` on their own.
fn response_cache(cfg: &ConfigFiles) -> Result<Option<Arc<dyn InstanceEviction>>, String> {
    let settings = CacheSettings::read(&mut &*cfg).map_err(|e| e.to_string())?;
    if !settings.is_shared() {
        tracing::debug!("[cache] backend is memory: nothing to evict from this process");
        return Ok(None);
    }
    let cache = ResponseCache::new(&settings).map_err(|e| e.to_string())?;
    tracing::info!(
        backend = cache.backend(),
        "deleted instances are evicted from the shared response cache"
    );
    Ok(Some(Arc::new(cache)))
}
