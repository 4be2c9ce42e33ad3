//! `novajoin status upgrade check` (also `novajoin-status upgrade check`):
//! the checks an operator runs after installing or upgrading, in
//! oslo.upgradecheck's shape ([`report`]). One file per check group; each
//! check builds what it needs with the library code the services use
//! (configuration, policy enforcer, keystone session and validator, IPA
//! client, listener settings and topology, Redis store), so a check passes
//! exactly when the service would get past that point.
//!
//! Nothing is changed anywhere: keystone gets two token requests and one
//! validation, IPA reads only, RabbitMQ passive declares, Redis `PING`.

pub mod cache;
pub mod config;
pub mod ipa;
pub mod keystone;
pub mod nova;
pub mod policy;
pub mod rabbit;
pub mod report;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use report::{CheckResult, Code, Report};

/// Longest wait for one remote answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct StatusOptions {
    /// join.conf files (`--config-file`).
    pub config_files: Vec<PathBuf>,
    /// join.conf directories (`--config-dir`).
    pub config_dirs: Vec<PathBuf>,
    /// nova.conf to compare with (`--nova-conf`).
    pub nova_conf: Option<PathBuf>,
}

/// Runs every check, in order. A configuration that cannot be read ends
/// the run after its own row: every other check needs it.
pub async fn run(opts: &StatusOptions) -> Report {
    let mut checks = Vec::new();
    let (result, cfg) = config::check(&opts.config_files, &opts.config_dirs);
    checks.push(result);
    let Some(cfg) = cfg else {
        return Report { checks };
    };
    checks.push(policy::check(&cfg));
    checks.push(keystone::service_credentials(&cfg).await);
    checks.push(keystone::token_validation(&cfg).await);
    checks.extend(ipa::checks(&cfg).await);
    checks.push(rabbit::check(&cfg).await);
    checks.push(cache::check(&cfg).await);
    if let Some(nova_conf) = &opts.nova_conf {
        checks.push(nova::check(&cfg, nova_conf));
    }
    Report { checks }
}

/// `fut`, or the time waited when it did not finish within [`CALL_TIMEOUT`].
pub async fn within<F: Future>(fut: F) -> Result<F::Output, Duration> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .map_err(|_| CALL_TIMEOUT)
}
