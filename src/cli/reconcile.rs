//! `novajoin reconcile`: finds the hosts that lost delete notifications
//! left in IPA ([`crate::reconcile`]), prints them, and with `--apply`
//! removes the orphans as their delete notifications would have. The
//! listener runs the same with `[notify] reconcile_interval`.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::notify::{cleanup, Cleanup};
use super::ConfigArgs;
use crate::config::ConfigFiles;
use crate::notify::options::RECONCILE_INTERVAL;
use crate::ownership::HostBinding;
use crate::reconcile::{orphan_instances, survey, HostFinding, Verdict};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A table for people.
    Table,
    /// JSON for tools.
    Json,
}

/// Options of `novajoin reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Where join.conf comes from.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Remove the orphans (default: only report them).
    #[arg(long)]
    pub apply: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
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

/// Runs `novajoin reconcile`; returns the exit status: 0 done, 1 some
/// removal failed, 2 nothing could be surveyed (configuration, IPA or an
/// incomplete answer from nova).
pub fn run_cli(args: ReconcileArgs) -> i32 {
    let cfg = match ConfigFiles::load(&args.config.config_file, &args.config.config_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("novajoin reconcile: {e}");
            return 2;
        }
    };
    crate::logging::init_from_config(&cfg);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("novajoin reconcile: cannot start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        let parts = match cleanup(&cfg) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("novajoin reconcile: {e}");
                return 2;
            }
        };
        match run_once(&parts, args.apply).await {
            Ok(summary) => {
                print_summary(&summary, args.format, args.apply);
                if summary.failed.is_empty() {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                eprintln!("novajoin reconcile: {e}");
                2
            }
        }
    })
}

/// One survey, and with `apply` the removal of every orphan.
pub(crate) async fn run_once(parts: &Cleanup, apply: bool) -> Result<RunSummary, String> {
    let cloud = parts.cloud.as_ref().ok_or(
        "reconcile needs [service_credentials] (with nova's admin role) to list every project's servers",
    )?;
    let hosts = survey(&parts.ipa, cloud, parts.region.as_deref())
        .await
        .map_err(|e| e.to_string())?;
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
    for (instance, project) in orphan_instances(&summary.hosts) {
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

fn print_summary(summary: &RunSummary, format: ReportFormat, applied: bool) {
    if format == ReportFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).unwrap_or_else(|_| "{}".into())
        );
        return;
    }
    let width = summary
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<12}  {:<8}  {:<36}  {:<8}",
        "HOST", "VERDICT", "ROLE", "INSTANCE", "ENROLLED"
    );
    for h in &summary.hosts {
        println!(
            "{:<width$}  {:<12}  {:<8}  {:<36}  {:<8}",
            h.host,
            h.verdict.word(),
            h.role.unwrap_or("-"),
            h.instance_id.as_deref().unwrap_or("-"),
            if h.enrolled { "yes" } else { "no" },
        );
    }
    let orphans = summary
        .hosts
        .iter()
        .filter(|h| h.verdict == Verdict::Orphan)
        .count();
    if applied {
        println!(
            "\n{} orphan host(s); removed {}; {} instance(s) failed",
            orphans,
            summary.removed.len(),
            summary.failed.len()
        );
        for (instance, why) in &summary.failed {
            println!("  {instance}: {why}");
        }
    } else {
        println!("\n{orphans} orphan host(s); run with --apply to remove them");
    }
}

/// With `[notify] reconcile_interval` > 0, runs reconcile with `--apply`
/// in the listener at that interval; `None` when it is off.
pub(crate) fn periodic(
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
            match run_once(&parts, true).await {
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
