//! `novajoin status upgrade check` and the `novajoin-status` name: the
//! command line of [`crate::status`], shaped like every OpenStack
//! `<service>-status upgrade check` (oslo.upgradecheck): `--json`, exit
//! status 0 success, 1 warning, 2 failure, 255 when the checks could not run.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::cli::ConfigArgs;
use crate::status::{run, StatusOptions};

/// The program name that runs `novajoin status` directly.
pub const STATUS_PROGRAM: &str = "novajoin-status";

/// `novajoin status ...`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// What to check.
    #[command(subcommand)]
    pub command: StatusCommand,
}

/// `novajoin-status ...` (argv[0] is `novajoin-status`).
#[derive(Debug, Parser)]
#[command(
    name = "novajoin-status",
    version,
    about = "Check that this novajoin deployment works (like nova-status)"
)]
pub struct StatusCli {
    /// What to check.
    #[command(subcommand)]
    pub command: StatusCommand,
}

/// The status subcommands.
#[derive(Debug, Subcommand)]
pub enum StatusCommand {
    /// Checks for after an install or upgrade.
    Upgrade(UpgradeArgs),
}

/// `upgrade ...`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The action.
    #[command(subcommand)]
    pub command: UpgradeCommand,
}

/// `upgrade` actions.
#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Check configuration, policy, keystone, IPA, RabbitMQ, the shared
    /// cache (and nova.conf with --nova-conf). Exit status: 0 success,
    /// 1 warning, 2 failure.
    Check(CheckArgs),
}

/// `upgrade check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// join.conf.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the results as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also check that this nova.conf sends vendordata requests to this service.
    #[arg(long = "nova-conf", value_name = "PATH")]
    pub nova_conf: Option<PathBuf>,
}

/// Whether the program was started as `novajoin-status` (argv[0]'s base name).
pub fn invoked_as_status() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == STATUS_PROGRAM))
        .unwrap_or(false)
}

/// The `novajoin-status` program; returns the exit status.
pub fn main_as_status() -> i32 {
    let cli = StatusCli::parse();
    let code = run_cli(cli.command);
    crate::logging::shutdown();
    code
}

/// Runs a status command; returns the exit status.
pub fn run_cli(command: StatusCommand) -> i32 {
    let StatusCommand::Upgrade(UpgradeArgs {
        command: UpgradeCommand::Check(args),
    }) = command;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error:\ncannot start the async runtime: {e}");
            return 255;
        }
    };
    let opts = StatusOptions {
        config_files: args.config.config_file,
        config_dirs: args.config.config_dir,
        nova_conf: args.nova_conf,
    };
    // As oslo.upgradecheck: a check that breaks is 255, not a result.
    let report = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(run(&opts))
    })) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            println!("Error:\n{why}");
            return 255;
        }
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    report.exit_code()
}
