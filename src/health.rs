//! Health probes: each component that depends on something outside the
//! process (Redis, IPA, keystone) registers a probe; the `healthcheck`
//! filter reports them.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

/// The state a probe reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// Working.
    Ok,
    /// Working in a reduced mode (e.g. Redis down, local cache in use).
    Degraded(String),
    /// Not working: the service cannot do its job.
    Failed(String),
}

/// Something the health check asks.
pub trait HealthProbe: Send + Sync {
    /// Short name shown in detailed output (`redis`, `ipa`).
    fn name(&self) -> &str;
    /// The current state; must answer quickly (use cached state).
    fn check(&self) -> BoxFuture<'_, HealthState>;
}

/// The probes registered by the running components.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    probes: Arc<Mutex<Vec<Arc<dyn HealthProbe>>>>,
}

impl HealthRegistry {
    /// Adds a probe.
    pub fn register(&self, probe: Arc<dyn HealthProbe>) {
        self.probes
            .lock()
            .expect("health registry poisoned")
            .push(probe);
    }

    /// Asks every probe, in registration order.
    pub async fn check_all(&self) -> Vec<(String, HealthState)> {
        let probes: Vec<_> = self
            .probes
            .lock()
            .expect("health registry poisoned")
            .clone();
        let mut out = Vec::with_capacity(probes.len());
        for p in probes {
            let state = p.check().await;
            out.push((p.name().to_string(), state));
        }
        out
    }
}
