//! `novajoin policy-list-redundant`: oslo.policy's
//! `oslopolicy-list-redundant` for this service. Every rule of the policy
//! files that equals the default novajoin registers (the same check once
//! parsed, so `""` equals `"@"`) is printed as the default,
//! `"NAME": "RULE"`, in the order the files define them: such lines can be
//! removed from the files without changing anything.

use std::io::Write;

use super::configured::ConfiguredRules;
use super::defaults::RuleDefault;
use super::parser::parse_text;

/// Prints the redundant file rules to `out`.
pub fn list_redundant(
    defaults: &[RuleDefault],
    configured: &ConfiguredRules,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for rule in &configured.file_rules {
        let Some(d) = defaults.iter().find(|d| d.name == rule.name) else {
            continue;
        };
        if parse_text(d.check_str).check.to_string() == rule.check.to_string() {
            writeln!(out, "\"{}\": \"{}\"", d.name, d.check_str)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::enforcer::PolicyOptions;
    use crate::policy::NOVAJOIN_DEFAULTS;

    #[test]
    fn rules_equal_to_the_defaults_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "\"join:create\": \"rule:compute_service_user\"\n\"service_project\": \"project_name:services\"\n\
             \"context_is_admin\": \"(role:admin)\"\n\"a:b\": \"@\"\n",
        )
        .unwrap();
        let c = ConfiguredRules::load(NOVAJOIN_DEFAULTS, &PolicyOptions::file_only(&path)).unwrap();
        let mut out = Vec::new();
        list_redundant(NOVAJOIN_DEFAULTS, &c, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"join:create\": \"rule:compute_service_user\"\n\"context_is_admin\": \"role:admin\"\n"
        );
    }
}
