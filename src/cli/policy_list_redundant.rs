//! `novajoin policy-list-redundant`: oslopolicy-list-redundant's options
//! and output for this service's policy files.

use clap::Args;

use super::policy_validate::configured;
use super::ConfigArgs;
use crate::policy::redundant::list_redundant;
use crate::policy::NOVAJOIN_DEFAULTS;

/// Options, named as oslopolicy-list-redundant names them.
#[derive(Debug, Clone, Args)]
pub struct PolicyListRedundantArgs {
    /// The rules to compare with: novajoin's (the only one here).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// join.conf, whose [oslo_policy] names the policy file and directories.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Prints the file rules that equal the defaults, one `"NAME": "RULE"` line
/// each. Exit status 0, or 1 when the files cannot be read.
pub fn run_cli(args: PolicyListRedundantArgs) -> i32 {
    let configured = match configured(
        "policy-list-redundant",
        args.namespace.as_deref(),
        &args.config,
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    match list_redundant(NOVAJOIN_DEFAULTS, &configured, &mut stdout.lock()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("novajoin policy-list-redundant: cannot write output: {e}");
            1
        }
    }
}
