//! Reconciliation: what lost notifications left behind in IPA.
//!
//! A delete notification that was dropped, published while the listener
//! was down past the queue's life, or that failed for good leaves the
//! instance's hosts in IPA. [`survey`] compares the hosts bound to
//! instances of this region ([`crate::ownership`]) with nova's list of
//! servers of every project and sorts every host the service knows into
//! a [`Verdict`]. [`crate::notify::handlers::IpaEventHandler::remove_instance`]
//! then removes an orphan exactly as a delete notification would.
//!
//! nova's answer must be whole: the server list is read page by page with
//! `changes-since` so that deleted servers are listed as `DELETED`, and any
//! failure on any page stops the survey. Missing servers are never
//! inferred from a partial answer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cloud::{CloudLookups, LookupError};
use crate::ipa::{HostEntry, IpaClient, IpaCommand, IpaError};
use crate::ownership::{HostBinding, HostRole, HOST_DESCRIPTION};

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
        IpaCommand::new(
            "host_find",
            vec![serde_json::json!("novajoin/1")],
            Default::default(),
        )
        .with_option("sizelimit", serde_json::json!(0)),
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
