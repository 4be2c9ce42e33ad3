//! `novajoin reconcile`: finds the hosts that lost delete notifications
//! left in IPA ([`crate::reconcile`]), prints them, and with `--apply`
//! removes the orphans as their delete notifications would have. The
//! listener runs the same with `[notify] reconcile_interval`.

use clap::{Args, ValueEnum};

use super::ConfigArgs;
use crate::config::ConfigFiles;
use crate::notify::cleanup::Cleanup;
use crate::reconcile::{run_once, RunSummary, Verdict};

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
        let parts = match Cleanup::from_config(&cfg) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("novajoin reconcile: {e}");
                return 2;
            }
        };
        match run_once(&parts, args.apply, true).await {
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
