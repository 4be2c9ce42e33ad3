//! [`IpaHealth`]: the IPA client's state for the `healthcheck` filter,
//! taken from the outcome of the last round trip (no extra IPA call).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;

use super::error::IpaError;
use crate::health::{HealthProbe, HealthState};

/// When the last round trip ended, and what went wrong (`None`: nothing).
type LastOutcome = Option<(Instant, Option<String>)>;

/// The last round trip's outcome, shared by a client and its probe.
#[derive(Clone, Default)]
pub struct IpaHealth {
    last: Arc<Mutex<LastOutcome>>,
}

impl IpaHealth {
    /// Records a round trip's outcome. Errors IPA itself reported
    /// (`NotFound`, ...) mean IPA is working.
    pub(crate) fn record<T>(&self, outcome: &Result<T, IpaError>) {
        let problem = match outcome {
            Ok(_) => None,
            Err(e) if e.remote().is_some() => None,
            Err(e) => Some(e.to_string()),
        };
        if let Ok(mut l) = self.last.lock() {
            *l = Some((Instant::now(), problem));
        }
    }

    /// The state: `Ok` until a round trip fails for a reason other than an
    /// IPA-reported error, `Failed` with that reason until one succeeds.
    pub fn state(&self) -> HealthState {
        match self.last.lock().ok().and_then(|l| l.clone()) {
            Some((at, Some(problem))) => HealthState::Failed(format!(
                "last IPA call {} s ago failed: {problem}",
                at.elapsed().as_secs()
            )),
            _ => HealthState::Ok,
        }
    }
}

impl HealthProbe for IpaHealth {
    fn name(&self) -> &str {
        "ipa"
    }

    fn check(&self) -> BoxFuture<'_, HealthState> {
        Box::pin(async move { self.state() })
    }
}
