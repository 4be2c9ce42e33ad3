//! Building the [`JoinHandler`] from join.conf at start-up: every setting
//! problem is found here, before the first request.

use std::sync::Arc;

use super::decision::JoinHandler;
use super::directory::CloudDirectory;
use super::fqdn::FqdnPolicy;
use super::host_classes::HostClassRules;
use crate::config::{ConfigError, ConfigFiles};
use crate::ipa::settings::{load_default_conf, IpaConfigError};
use crate::ipa::{IpaClient, IpaClientConfig};
use crate::join::options::REGION_NAME;
use crate::keystone::options::SC_REGION_NAME;
use crate::otp_lifetime::OtpLifetime;
use crate::ownership::HostBinding;
use crate::policy::Enforcer;

/// Why the join app cannot start.
#[derive(Debug, thiserror::Error)]
pub enum JoinSetupError {
    /// A join.conf value is wrong or missing.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The IPA client cannot be configured.
    #[error(transparent)]
    Ipa(#[from] IpaConfigError),
    /// The IPA client could not be built (CA bundle unreadable, ...).
    #[error("IPA client: {0}")]
    IpaClient(String),
    /// Keystone or glance access cannot be configured.
    #[error("{0}")]
    Directory(String),
    /// The policy files cannot be loaded.
    #[error("policy cannot be loaded: {0}")]
    Policy(String),
}

/// The region recorded in every host binding: `[DEFAULT] region_name`,
/// else `[service_credentials] region_name`, else none.
pub fn binding_region(config: &ConfigFiles) -> Result<Option<String>, ConfigError> {
    let (spec, at) = match config.raw(&REGION_NAME) {
        Some(at) => (&REGION_NAME, at),
        None => match config.raw(&SC_REGION_NAME) {
            Some(at) => (&SC_REGION_NAME, at),
            None => return Ok(None),
        },
    };
    let region = at.value.trim();
    if region.is_empty() {
        return Ok(None);
    }
    if HostBinding::for_instance(Some("x"), None, Some(region)).is_err() {
        return Err(ConfigError::BadValue {
            file: at.file.clone(),
            line: at.line,
            group: spec.group.to_string(),
            option: spec.name.to_string(),
            problem: format!(
                "{region:?} cannot be recorded in a host binding: use letters, digits, '-' and '_' only"
            ),
        });
    }
    Ok(Some(region.to_string()))
}

/// Builds the handler: FQDN rules, realm, IPA client, keystone and glance.
pub fn join_handler(config: &Arc<ConfigFiles>) -> Result<JoinHandler, JoinSetupError> {
    let default_conf = load_default_conf(config)?;
    let fqdn = FqdnPolicy::from_config(config, default_conf.as_ref())?;
    if fqdn.project_subdomain {
        tracing::warn!(
            "project_subdomain is on: instance hosts are named <host>.<project>.{}",
            fqdn.domain
        );
    }
    let ipa_cfg = IpaClientConfig::from_conf_with(config, default_conf.as_ref())?;
    let realm = ipa_cfg.realm.clone().ok_or_else(|| ConfigError::Missing {
        group: "ipa".into(),
        option: "realm".into(),
        why:
            "the Kerberos realm returned as krb_realm is unknown (no /etc/ipa/default.conf either)"
                .into(),
    })?;
    let ipa = IpaClient::new(ipa_cfg).map_err(|e| JoinSetupError::IpaClient(e.to_string()))?;
    let directory = CloudDirectory::from_config(config)
        .map_err(|e| JoinSetupError::Directory(e.to_string()))?;
    let region = binding_region(config)?;
    let enforcer = Enforcer::shared(config).map_err(|e| JoinSetupError::Policy(e.to_string()))?;
    let otp_lifetime = OtpLifetime::from_config(config)?;
    Ok(JoinHandler {
        fqdn,
        realm,
        ipa,
        directory,
        host_classes: HostClassRules::from_config(config),
        region,
        enforcer,
        otp_lifetime,
    })
}
