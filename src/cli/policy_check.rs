//! `novajoin policy-check`: oslopolicy-checker's options and output.

use std::path::PathBuf;

use clap::Args;

use crate::policy::checker::{run, CheckerInput};

/// Options, named as oslopolicy-checker names them.
#[derive(Debug, Clone, Args)]
pub struct PolicyCheckArgs {
    /// Path to a policy file (YAML or JSON). Required.
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Path to a keystone token-validation body (GET /v3/auth/tokens) in
    /// JSON: `{"token": {...}}`. Required.
    #[arg(long, value_name = "PATH")]
    pub access: Option<PathBuf>,
    /// Path to a JSON target; nested objects become dotted keys. Default:
    /// the token's user_id and project_id.
    #[arg(long, value_name = "PATH")]
    pub target: Option<PathBuf>,
    /// Check only this rule (an undefined name uses the "default" rule).
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Set is_admin=True in the credentials.
    #[arg(long = "is_admin", overrides_with = "nois_admin")]
    pub is_admin: bool,
    /// Set is_admin=False in the credentials (the default).
    #[arg(long = "nois_admin", overrides_with = "is_admin")]
    pub nois_admin: bool,
    /// Accepted for compatibility: configuration for remote http checks,
    /// which novajoin does not evaluate.
    #[arg(long = "enforcer_config", value_name = "PATH")]
    pub enforcer_config: Option<PathBuf>,
    /// Accepted for compatibility (oslo.config's standard option); unused.
    #[arg(long = "config-file", value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// Accepted for compatibility (oslo.config's standard option); unused.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
}

/// Runs the check; prints one line per rule on stdout. Exit status 0 when
/// the rules could be checked (whatever they decided), 1 otherwise.
pub fn run_cli(args: PolicyCheckArgs) -> i32 {
    let (Some(policy), Some(access)) = (args.policy, args.access) else {
        eprintln!("novajoin policy-check: --policy and --access are required");
        return 1;
    };
    if args.enforcer_config.is_some() {
        eprintln!("novajoin policy-check: --enforcer_config is accepted but unused: remote http/https checks are not evaluated");
    }
    let input = CheckerInput {
        policy,
        access,
        rule: args.rule,
        target: args.target,
        is_admin: args.is_admin && !args.nois_admin,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(&input, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("novajoin policy-check: {e}");
            1
        }
    }
}
