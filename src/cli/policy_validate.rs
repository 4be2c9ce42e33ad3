//! `novajoin policy-validate`: oslopolicy-validator's options, output and
//! exit status for this service's policy files.

use clap::Args;

use super::ConfigArgs;
use crate::config::ConfigFiles;
use crate::policy::configured::ConfiguredRules;
use crate::policy::enforcer::PolicyOptions;
use crate::policy::validate::validate;
use crate::policy::NOVAJOIN_DEFAULTS;

/// The namespace the oslo.policy tools know this service's rules by.
pub const NAMESPACE: &str = "novajoin";

/// Options, named as oslopolicy-validator names them.
#[derive(Debug, Clone, Args)]
pub struct PolicyValidateArgs {
    /// The rules to validate against: novajoin's (the only one here).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// join.conf, whose [oslo_policy] names the policy file and directories.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The configured rules, or the exit status after an error was printed.
pub(crate) fn configured(
    tool: &str,
    namespace: Option<&str>,
    config: &ConfigArgs,
) -> Result<ConfiguredRules, i32> {
    if let Some(ns) = namespace.filter(|ns| *ns != NAMESPACE) {
        eprintln!("novajoin {tool}: Namespace \"{ns}\" not found (this service's is {NAMESPACE})");
        return Err(1);
    }
    let cfg = ConfigFiles::load(&config.config_file, &config.config_dir).map_err(|e| {
        eprintln!("novajoin {tool}: {e}");
        1
    })?;
    ConfiguredRules::load(NOVAJOIN_DEFAULTS, &PolicyOptions::from_config(&cfg)).map_err(|e| {
        eprintln!("novajoin {tool}: {e}");
        1
    })
}

/// Validates; prints one line per problem on stdout. Exit status 0 when
/// the files are sound, 1 otherwise.
pub fn run_cli(args: PolicyValidateArgs) -> i32 {
    let configured = match configured("policy-validate", args.namespace.as_deref(), &args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match validate(NOVAJOIN_DEFAULTS, &configured, &mut out) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("novajoin policy-validate: {e}");
            1
        }
    }
}
