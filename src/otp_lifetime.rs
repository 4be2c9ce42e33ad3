//! How long an enrollment OTP stays valid when no guest uses it.
//!
//! An OTP is readable by any process of the guest (and by an SSRF to the
//! metadata address) for as long as nova serves vendordata, and IPA would
//! accept it for ever if ipa-client-install never ran. So:
//!
//! - every OTP the join handler sets records its issue time in the host's
//!   binding (`otp-issued=<unix seconds>`, see [`crate::ownership`]), in the
//!   same `host_add`/`host_mod`: IPA itself is the record, every replica
//!   agrees, and no other store is needed;
//! - the response cache never serves an answer past its OTP's
//!   [`OtpLifetime::expires_at`];
//! - the listener runs [`sweep`] every [`OtpLifetime::sweep_interval`]: a
//!   host still holding an OTP older than the lifetime gets one nobody
//!   knows; a host that enrolled is counted with the time it took. Either
//!   way the issue time leaves the binding, so each OTP is counted once.
//!
//! The sweep changes a host only if its binding is still the one it read
//! ([`IpaCommand::host_swap_binding`]): when the join handler has just set a
//! new OTP (and a new issue time), IPA refuses the sweep's write and the
//! new OTP stays valid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ConfigError, ConfigFiles, OptionSource};
use crate::ipa::{HostEntry, IpaClient, IpaCommand, IpaError, Secret};
use crate::join::options::OTP_LIFETIME;
use crate::ownership::{HostBinding, HostRole};

/// Counter: OTPs set in IPA by the join handler.
pub const OTPS_ISSUED: &str = "novajoin_otp_issued_total";
/// Counter: OTPs a guest enrolled with (seen by the sweep).
pub const OTPS_USED: &str = "novajoin_otp_used_total";
/// Counter: OTPs replaced because nobody used them within the lifetime.
pub const OTPS_EXPIRED: &str = "novajoin_otp_expired_total";
/// Histogram: seconds from an OTP's issue to the host's enrollment.
pub const OTP_TO_ENROLLMENT: &str = "novajoin_otp_enrollment_seconds";
/// The buckets of [`OTP_TO_ENROLLMENT`]: a guest enrolls within minutes of
/// its first boot; hours mean it was stuck.
pub const ENROLLMENT_BUCKETS: &[f64] = &[
    15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// `[DEFAULT] otp_lifetime`: `None` when OTPs never expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtpLifetime(Option<Duration>);

impl OtpLifetime {
    /// A lifetime (`Duration::ZERO`: off).
    pub fn new(lifetime: Duration) -> Self {
        Self((!lifetime.is_zero()).then_some(lifetime))
    }

    /// Reads `[DEFAULT] otp_lifetime`.
    pub fn from_config(cfg: &ConfigFiles) -> Result<Self, ConfigError> {
        let mut src = cfg;
        let seconds = src.int_or_default(&OTP_LIFETIME)?.max(0);
        Ok(Self::new(Duration::from_secs(seconds as u64)))
    }

    /// The lifetime, when OTPs expire.
    pub fn get(self) -> Option<Duration> {
        self.0
    }

    /// When an OTP issued at `issued` stops being valid.
    pub fn expires_at(self, issued: SystemTime) -> Option<SystemTime> {
        self.0.map(|l| issued + l)
    }

    /// How often the listener sweeps: a quarter of the lifetime, between
    /// one second and one minute, so an unused OTP outlives its lifetime by
    /// at most that much; every five minutes when OTPs do not expire (the
    /// sweep then only counts enrollments).
    pub fn sweep_interval(self) -> Duration {
        match self.0 {
            Some(l) => (l / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            None => Duration::from_secs(300),
        }
    }
}

/// Whole seconds since the epoch, as the binding records them.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where one outstanding OTP stands.
#[derive(Clone, Debug, PartialEq)]
pub enum OtpState {
    /// Not used and not yet expired: left alone.
    Pending,
    /// The host enrolled; `after` is the time from issue to enrollment when
    /// IPA reports when the keys were set.
    Used {
        /// Issue to enrollment.
        after: Option<Duration>,
    },
    /// Unused past the lifetime: to be replaced.
    Expired,
    /// Neither an OTP nor keys (disabled, or the password removed by an
    /// administrator): only the issue time is dropped.
    Withdrawn,
}

/// Judges one host whose binding records an OTP issued at `issued`.
pub fn otp_state(
    entry: &HostEntry,
    issued: u64,
    lifetime: OtpLifetime,
    now: SystemTime,
) -> OtpState {
    let issued_at = UNIX_EPOCH + Duration::from_secs(issued);
    if entry.has_keytab {
        let after = entry
            .keys_changed_at
            .and_then(|k| k.duration_since(issued_at).ok());
        return OtpState::Used { after };
    }
    if !entry.has_password {
        return OtpState::Withdrawn;
    }
    match lifetime.expires_at(issued_at) {
        Some(end) if now >= end => OtpState::Expired,
        _ => OtpState::Pending,
    }
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Hosts that enrolled since the last sweep.
    pub used: Vec<String>,
    /// Hosts whose unused OTP was replaced.
    pub expired: Vec<String>,
    /// Hosts changed by someone else between the read and the write (a new
    /// OTP was issued meanwhile): left as they are.
    pub changed_meanwhile: Vec<String>,
    /// Hosts IPA refused to change, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Finds every host of this region whose binding records an outstanding
/// OTP and settles it (see the module documentation).
pub async fn sweep(
    ipa: &IpaClient,
    region: Option<&str>,
    lifetime: OtpLifetime,
    now: SystemTime,
) -> Result<SweepSummary, IpaError> {
    let find = IpaCommand::host_find_text("otp-issued=").with_option("all", true.into());
    let found = ipa.call(find).await?;
    let mut summary = SweepSummary::default();
    for entry in found
        .entries()
        .iter()
        .filter_map(|e| e.as_object().and_then(HostEntry::from_entry))
    {
        // The free-text search also looks in attributes tenants write: only
        // the host's own binding counts.
        let Some(binding) = entry.binding.as_deref().and_then(HostBinding::parse) else {
            continue;
        };
        let Some(issued) = binding.otp_issued else {
            continue;
        };
        if binding.role != HostRole::Instance || binding.region.as_deref() != region {
            continue;
        }
        let state = otp_state(&entry, issued, lifetime, now);
        if state == OtpState::Pending {
            continue;
        }
        let host = entry.fqdn.clone();
        match settle(ipa, &entry, &binding, &state).await {
            Ok(()) => match state {
                OtpState::Used { after } => {
                    metrics::counter!(OTPS_USED).increment(1);
                    if let Some(after) = after {
                        metrics::histogram!(OTP_TO_ENROLLMENT).record(after.as_secs_f64());
                    }
                    summary.used.push(host);
                }
                OtpState::Expired => {
                    metrics::counter!(OTPS_EXPIRED).increment(1);
                    tracing::warn!(host = %host, instance_id = %binding.instance_id,
                        "enrollment OTP expired unused and was replaced in IPA; the instance's next \
                         vendordata request gets a new one");
                    summary.expired.push(host);
                }
                _ => {}
            },
            Err(IpaError::AttrValueNotFound(_)) => {
                tracing::debug!(host = %host, "host changed since the sweep read it; left as it is");
                summary.changed_meanwhile.push(host);
            }
            Err(IpaError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "OTP sweep could not update the host");
                summary.failed.push((host, e.to_string()));
            }
        }
    }
    Ok(summary)
}

/// Writes the outcome of `state` for one host, only if its binding is
/// still the one `entry` was read with: the issue time leaves the binding
/// and, for an expired OTP, a random OTP nobody knows replaces it.
pub async fn settle(
    ipa: &IpaClient,
    entry: &HostEntry,
    binding: &HostBinding,
    state: &OtpState,
) -> Result<(), IpaError> {
    let read = entry.binding.as_deref().unwrap_or_default();
    let scrub = (*state == OtpState::Expired).then(|| Secret::new(crate::join::new_otp()));
    let cmd = IpaCommand::host_swap_binding(
        &entry.fqdn,
        read,
        &binding.instance_host().to_attribute(),
        scrub.as_ref(),
    );
    ipa.call(cmd).await.map(|_| ())
}

/// Runs [`sweep`] every [`OtpLifetime::sweep_interval`] inside the
/// listener.
pub fn periodic(
    ipa: IpaClient,
    region: Option<String>,
    lifetime: OtpLifetime,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(lifetime.sweep_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match sweep(&ipa, region.as_deref(), lifetime, SystemTime::now()).await {
                Ok(s) if s.used.len() + s.expired.len() + s.failed.len() > 0 => {
                    tracing::info!(
                        used = s.used.len(),
                        expired = s.expired.len(),
                        failed = s.failed.len(),
                        "OTP sweep finished"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "OTP sweep could not list the hosts"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(has_keytab: bool, has_password: bool, keys: Option<u64>) -> HostEntry {
        HostEntry {
            fqdn: "vm1.example.test".into(),
            description: None,
            has_keytab,
            has_password,
            krbprincipalname: vec![],
            managedby_host: vec![],
            userclass: vec![],
            nsosversion: None,
            nshostlocation: None,
            binding: None,
            keys_changed_at: keys.map(|k| UNIX_EPOCH + Duration::from_secs(k)),
        }
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn an_unused_otp_expires_after_the_lifetime_and_not_before() {
        let l = OtpLifetime::new(Duration::from_secs(60));
        let pending = entry(false, true, None);
        assert_eq!(otp_state(&pending, 1000, l, at(1059)), OtpState::Pending);
        assert_eq!(otp_state(&pending, 1000, l, at(1060)), OtpState::Expired);
        let off = OtpLifetime::new(Duration::ZERO);
        assert_eq!(off.get(), None);
        assert_eq!(
            otp_state(&pending, 0, off, at(u32::MAX as u64)),
            OtpState::Pending
        );
    }

    #[test]
    fn an_enrolled_host_counts_as_used_with_the_time_it_took() {
        let l = OtpLifetime::new(Duration::from_secs(60));
        assert_eq!(
            otp_state(&entry(true, false, Some(1042)), 1000, l, at(5000)),
            OtpState::Used {
                after: Some(Duration::from_secs(42))
            }
        );
        // Keys older than the OTP (a clock step): used, time unknown.
        assert_eq!(
            otp_state(&entry(true, false, Some(900)), 1000, l, at(5000)),
            OtpState::Used { after: None }
        );
        assert_eq!(
            otp_state(&entry(false, false, None), 1000, l, at(5000)),
            OtpState::Withdrawn
        );
    }

    #[test]
    fn the_sweep_interval_follows_the_lifetime() {
        let i = |s| OtpLifetime::new(Duration::from_secs(s)).sweep_interval();
        assert_eq!(i(2), Duration::from_secs(1));
        assert_eq!(i(120), Duration::from_secs(30));
        assert_eq!(i(3600), Duration::from_secs(60));
        assert_eq!(i(0), Duration::from_secs(300));
    }
}
