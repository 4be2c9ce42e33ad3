//! Reconciliation: what lost notifications left behind in IPA.
//!
//! A delete notification that was dropped, published while the listener
//! was down past the queue's life, or that failed for good leaves the
//! instance's hosts in IPA. [`survey`] compares the hosts bound to
//! instances of this region ([`crate::ownership`]) with nova's list of
//! servers of every project and sorts every host the service knows into
//! a [`Verdict`]. [`run_once`] with `apply` then removes each orphan with
//! [`crate::notify::handlers::IpaEventHandler::remove_instance`], exactly as
//! a delete notification would; [`periodic`] does so inside the listener.
//!
//! nova's answer must be whole: the server list is read page by page with
//! `changes-since` so that deleted servers are listed as `DELETED`, and any
//! failure on any page stops the survey. Missing servers are never
//! inferred from a partial answer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::cloud::{CloudLookups, LookupError};
use crate::config::ConfigFiles;
use crate::ipa::{HostEntry, IpaClient, IpaCommand, IpaError};
use crate::notify::cleanup::Cleanup;
use crate::notify::options::RECONCILE_INTERVAL;
use crate::ownership::{HostBinding, HostRole, HOST_DESCRIPTION};
use crate::progress::Progress;

/// The earliest `changes-since`: nova then lists every server it still
/// has a row for, deleted ones included.
const SINCE_THE_BEGINNING: &str = "1970-01-01T00:00:00Z";

/// What a host is, seen from nova.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Bound to an instance nova reports deleted or no longer knows: to be
    /// removed.
    Orphan,
    /// Bound to an instance nova still has.
    Live,
    /// Made by the Python novajoin (description, no binding): bound by its
    /// next enrollment, removed by its delete notification; never here.
    Legacy,
    /// Bound by novajoin in another region: that region's business.
    OtherRegion,
}

impl Verdict {
    /// The word shown in the table.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Orphan => "orphan",
            Verdict::Live => "live",
            Verdict::Legacy => "legacy",
            Verdict::OtherRegion => "other-region",
        }
    }
}

/// One host and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostFinding {
    /// The host's FQDN.
    pub host: String,
    /// `instance` or `sub-host`; `None` for a legacy host.
    pub role: Option<&'static str>,
    /// The owning instance, when bound.
    pub instance_id: Option<String>,
    /// The owning project, when bound.
    pub project_id: Option<String>,
    /// What it is.
    pub verdict: Verdict,
    /// Whether the host is enrolled (has a keytab).
    pub enrolled: bool,
}

/// Why a survey could not be made. Nothing has been changed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// IPA could not be asked.
    #[error("IPA could not list the hosts: {0}")]
    Ipa(#[from] IpaError),
    /// nova could not be asked, or answered only in part.
    #[error("nova's server list is not complete, so nothing is removed: {0}")]
    Nova(#[from] LookupError),
}

/// The hosts the service knows, each with its verdict, sorted by host.
pub async fn survey(
    ipa: &IpaClient,
    cloud: &CloudLookups,
    region: Option<&str>,
) -> Result<Vec<HostFinding>, ReconcileError> {
    let hosts = known_hosts(ipa).await?;
    let servers = cloud.all_servers(Some(SINCE_THE_BEGINNING)).await?;
    let live: BTreeMap<&str, bool> = servers
        .iter()
        .map(|s| (s.id.as_str(), !s.is_deleted()))
        .collect();
    let mut out: Vec<HostFinding> = hosts
        .into_iter()
        .map(|h| {
            let binding = h.binding.as_deref().and_then(HostBinding::parse);
            let verdict = match &binding {
                None => Verdict::Legacy,
                Some(b) if b.region.as_deref() != region => Verdict::OtherRegion,
                Some(b) if live.get(b.instance_id.as_str()) == Some(&true) => Verdict::Live,
                Some(_) => Verdict::Orphan,
            };
            HostFinding {
                role: binding.as_ref().map(|b| match b.role {
                    HostRole::Instance => "instance",
                    HostRole::SubHost => "sub-host",
                }),
                instance_id: binding.as_ref().map(|b| b.instance_id.clone()),
                project_id: binding.and_then(|b| b.project_id),
                enrolled: h.has_keytab,
                host: h.fqdn,
                verdict,
            }
        })
        .collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(out)
}

/// Every host with a novajoin binding, and the Python novajoin's hosts
/// (its description, no binding), in one batch: IPA's free-text search
/// covers `nshardwareplatform`, and the description is an exact option.
async fn known_hosts(ipa: &IpaClient) -> Result<Vec<HostEntry>, IpaError> {
    let cmds = [
        IpaCommand::host_find_text("novajoin/1"),
        IpaCommand::new("host_find", vec![], Default::default())
            .with_option("description", serde_json::json!(HOST_DESCRIPTION))
            .with_option("sizelimit", serde_json::json!(0)),
    ];
    let mut seen = BTreeMap::new();
    for result in ipa.batch(&cmds).await? {
        for e in result?.entries() {
            if let Some(h) = e.as_object().and_then(HostEntry::from_entry) {
                let ours = match h.binding.as_deref() {
                    Some(b) => HostBinding::parse(b).is_some(),
                    None => h.description.as_deref() == Some(HOST_DESCRIPTION),
                };
                if ours {
                    seen.insert(h.fqdn.to_ascii_lowercase(), h);
                }
            }
        }
    }
    Ok(seen.into_values().collect())
}

/// The instances whose hosts are orphans, each once, with its project.
pub fn orphan_instances(findings: &[HostFinding]) -> Vec<(String, Option<String>)> {
    let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.verdict == Verdict::Orphan) {
        if let Some(id) = &f.instance_id {
            out.entry(id.clone())
                .or_insert_with(|| f.project_id.clone());
        }
    }
    out.into_iter().collect()
}

/// What one run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RunSummary {
    /// Hosts found, by verdict.
    pub hosts: Vec<HostFinding>,
    /// Hosts removed (with `--apply`).
    pub removed: Vec<String>,
    /// Instances whose removal failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// One survey, and with `apply` the removal of every orphan.
/// With `show_progress` (the command line) each step is shown on stderr
/// ([`Progress`]).
pub async fn run_once(
    parts: &Cleanup,
    apply: bool,
    show_progress: bool,
) -> Result<RunSummary, String> {
    let cloud = parts.cloud.as_ref().ok_or(
        "reconcile needs [service_credentials] (with nova's admin role) to list every project's servers",
    )?;
    let mut progress = show_progress.then(|| Progress::new("reconcile", 1));
    if let Some(p) = &mut progress {
        p.step("listing IPA's hosts and nova's servers of every project");
    }
    let hosts = survey(&parts.ipa, cloud, parts.region.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    drop(progress);
    for verdict in [
        Verdict::Orphan,
        Verdict::Live,
        Verdict::Legacy,
        Verdict::OtherRegion,
    ] {
        let n = hosts.iter().filter(|h| h.verdict == verdict).count();
        metrics::gauge!("novajoin_reconcile_hosts", "verdict" => verdict.word()).set(n as f64);
    }
    let mut summary = RunSummary {
        hosts,
        ..Default::default()
    };
    if !apply {
        return Ok(summary);
    }
    let orphans = orphan_instances(&summary.hosts);
    let mut progress = (show_progress && !orphans.is_empty())
        .then(|| Progress::new("reconcile --apply", orphans.len()));
    for (instance, project) in orphans {
        if let Some(p) = &mut progress {
            p.step(&format!("removing the hosts of instance {instance}"));
        }
        let owner = match HostBinding::for_instance(
            Some(&instance),
            project.as_deref(),
            parts.region.as_deref(),
        ) {
            Ok(o) => o,
            Err(e) => {
                summary.failed.push((instance, e.to_string()));
                continue;
            }
        };
        match parts.handler.remove_instance(&owner).await {
            Ok(removed) => {
                tracing::info!(instance_id = %instance, hosts = ?removed,
                    "reconcile: removed the hosts of an instance nova no longer has");
                metrics::counter!("novajoin_reconcile_removed_total")
                    .increment(removed.len() as u64);
                summary.removed.extend(removed);
            }
            Err(e) => {
                tracing::warn!(instance_id = %instance, error = %e, "reconcile: removal failed");
                summary.failed.push((instance, e.to_string()));
            }
        }
    }
    Ok(summary)
}

/// With `[notify] reconcile_interval` > 0, runs reconcile with `--apply`
/// in the listener at that interval; `None` when it is off.
pub fn periodic(
    cfg: &ConfigFiles,
    parts: Cleanup,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let seconds = cfg
        .int(&RECONCILE_INTERVAL)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    if seconds <= 0 {
        return Ok(None);
    }
    if parts.cloud.is_none() {
        return Err(
            "[notify] reconcile_interval needs [service_credentials] (nova's admin role) to list servers"
                .into(),
        );
    }
    let interval = Duration::from_secs(seconds as u64);
    Ok(Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match run_once(&parts, true, false).await {
                Ok(s) => {
                    metrics::counter!("novajoin_reconcile_runs_total", "outcome" => if s.failed.is_empty() { "ok" } else { "partial" }).increment(1);
                    tracing::info!(
                        orphans = s
                            .hosts
                            .iter()
                            .filter(|h| h.verdict == Verdict::Orphan)
                            .count(),
                        removed = s.removed.len(),
                        failed = s.failed.len(),
                        "reconcile run finished"
                    );
                }
                Err(e) => {
                    metrics::counter!("novajoin_reconcile_runs_total", "outcome" => "refused")
                        .increment(1);
                    tracing::warn!(error = %e, "reconcile run did not change anything");
                }
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(host: &str, instance: &str, verdict: Verdict) -> HostFinding {
        HostFinding {
            host: host.into(),
            role: Some("instance"),
            instance_id: Some(instance.into()),
            project_id: Some("p".into()),
            verdict,
            enrolled: false,
        }
    }

    #[test]
    fn each_orphan_instance_is_listed_once() {
        let f = vec![
            finding("a.example.test", "i-1", Verdict::Orphan),
            finding("a.net.example.test", "i-1", Verdict::Orphan),
            finding("b.example.test", "i-2", Verdict::Live),
            finding("c.example.test", "i-3", Verdict::Orphan),
        ];
        assert_eq!(
            orphan_instances(&f),
            vec![
                ("i-1".to_string(), Some("p".to_string())),
                ("i-3".to_string(), Some("p".to_string()))
            ]
        );
    }
}
