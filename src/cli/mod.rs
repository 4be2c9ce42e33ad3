//! The command line: one binary, one subcommand per tool.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod config_sample;
pub mod daemon;
pub mod install;
pub mod ipa_setup;
pub mod manpages;
pub mod notify;
pub mod policy_check;
pub mod policy_list_redundant;
pub mod policy_sample;
pub mod policy_validate;
pub mod reconcile;
pub mod server;
pub mod status;

/// novajoin: enroll OpenStack instances into FreeIPA.
#[derive(Debug, Parser)]
#[command(name = "novajoin", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Where join.conf comes from, as oslo.config reads it.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A join.conf file; may repeat, later files win.
    #[arg(long = "config-file", value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// A directory whose *.conf files are read in order after --config-file.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the vendordata REST service nova calls.
    Server(ConfigArgs),
    /// Evaluate a policy file offline against a keystone token, with the
    /// options and output of oslo.policy's oslopolicy-checker.
    PolicyCheck(policy_check::PolicyCheckArgs),
    /// Print the default policy with descriptions (like
    /// oslopolicy-sample-generator).
    PolicySample(policy_sample::PolicySampleArgs),
    /// Check the configured policy files for unknown, unparsable, undefined
    /// and cyclic rules, with the output and exit status of oslo.policy's
    /// oslopolicy-validator.
    PolicyValidate(policy_validate::PolicyValidateArgs),
    /// List the rules of the configured policy files that equal the
    /// defaults, as oslo.policy's oslopolicy-list-redundant does.
    PolicyListRedundant(policy_list_redundant::PolicyListRedundantArgs),
    /// Run the RabbitMQ notification listener that cleans IPA up.
    Notify(ConfigArgs),
    /// Print every join.conf option with its default and help (like oslo-config-generator).
    ConfigSample(config_sample::ConfigSampleArgs),
    /// Set up this host: write join.conf, place pipeline.toml and the cloud-config, print the nova.conf changes.
    Install(Box<install::InstallArgs>),
    /// Write man pages generated from this command line.
    Manpages(manpages::ManpagesArgs),
    /// Prepare IPA for novajoin: permissions, privilege, role, the
    /// nova/<host> service and its keytab (or --precreate the host).
    IpaSetup(Box<ipa_setup::IpaSetupArgs>),
    /// Find the hosts whose instances nova has deleted (lost delete
    /// notifications) and, with --apply, remove them.
    Reconcile(reconcile::ReconcileArgs),
    /// Check that this deployment works (`status upgrade check`, like nova-status; also installed as novajoin-status).
    Status(status::StatusArgs),
}

/// Parses the command line and runs the subcommand; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Server(args) => server::run_cli(args),
        Command::PolicyCheck(args) => policy_check::run_cli(args),
        Command::PolicySample(args) => policy_sample::run_cli(args),
        Command::PolicyValidate(args) => policy_validate::run_cli(args),
        Command::PolicyListRedundant(args) => policy_list_redundant::run_cli(args),
        Command::Notify(args) => notify::run_cli(args),
        Command::ConfigSample(args) => config_sample::run(&args),
        Command::Install(args) => install::run(&args),
        Command::Manpages(args) => manpages::run(&args),
        Command::IpaSetup(args) => ipa_setup::run_cli(*args),
        Command::Reconcile(args) => reconcile::run_cli(args),
        Command::Status(args) => status::run_cli(args.command),
    };
    crate::logging::shutdown();
    code
}
