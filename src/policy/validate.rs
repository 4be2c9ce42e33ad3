//! `novajoin policy-validate`: oslo.policy's `oslopolicy-validator` for
//! this service. It reports, one line each, as the original tool prints
//! them:
//!
//! * `Configured policy file "NAME" not found` (and nothing else);
//! * `Invalid rules found` when a rule refers to an undefined rule or is
//!   part of a cycle of `rule:` references (references under `not` are not
//!   followed, as oslo.policy's check does not follow them);
//! * `Unknown rule found in policy file: NAME` for a file rule novajoin
//!   does not register;
//! * `Failed to parse rule: VALUE` for a file rule that does not parse
//!   (oslo.policy turns it into `!`, and so tells it from a written `!`).
//!
//! The exit status is 1 when any line was printed, else 0.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use super::configured::ConfiguredRules;
use super::defaults::RuleDefault;
use super::error::PolicyError;
use super::file::Yaml;
use super::parser::Check;
use super::pyvalue::{float_repr, repr_str};

/// Why the validator could not run (the original fails with a traceback).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The files cannot be read as policy files.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A rule from a policy directory does not parse and the policy file
    /// does not have it (oslopolicy-validator fails on a KeyError there).
    #[error(
        "rule {0:?} from a policy directory does not parse, and the policy file does not define it"
    )]
    NotInPolicyFile(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Whether `check` refers to an undefined rule, as oslo.policy's
/// `_undefined_check` tells it (through `and`/`or`, not `not`).
fn refers_to_undefined(check: &Check, rules: &BTreeMap<String, Check>) -> bool {
    match check {
        Check::Rule(name) => !rules.contains_key(name),
        Check::And(cs) | Check::Or(cs) => cs.iter().any(|c| refers_to_undefined(c, rules)),
        _ => false,
    }
}

/// Whether following `rule:` references from `check` comes back to a rule
/// already passed, as oslo.policy's `_cycle_check` tells it.
fn reaches_a_cycle(
    check: &Check,
    rules: &BTreeMap<String, Check>,
    seen: &mut HashSet<String>,
) -> bool {
    match check {
        Check::Rule(name) => {
            if !seen.insert(name.clone()) {
                return true;
            }
            rules
                .get(name)
                .is_some_and(|next| reaches_a_cycle(next, rules, seen))
        }
        Check::And(cs) | Check::Or(cs) => cs
            .iter()
            .any(|c| reaches_a_cycle(c, rules, &mut seen.clone())),
        _ => false,
    }
}

/// Python's `str()` of a value PyYAML constructed.
fn py_str(v: &Yaml) -> String {
    match v {
        Yaml::Str(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Yaml) -> String {
    match v {
        Yaml::Null => "None".into(),
        Yaml::Bool(true) => "True".into(),
        Yaml::Bool(false) => "False".into(),
        Yaml::Int { text, .. } => text.clone(),
        Yaml::Float(f) => float_repr(*f),
        Yaml::Str(s) => repr_str(s, false),
        Yaml::MergeKey => repr_str("<<", false),
        Yaml::Timestamp(t) => t.clone(),
        Yaml::Seq(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Yaml::Map(pairs) => {
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v, _)| format!("{}: {}", py_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Checks the configured files against `defaults`, printing what is wrong
/// to `out`; returns the exit status (0 or 1).
pub fn validate(
    defaults: &[RuleDefault],
    configured: &ConfiguredRules,
    out: &mut dyn Write,
) -> Result<i32, ValidateError> {
    if configured.main_file.is_none() {
        writeln!(
            out,
            "Configured policy file \"{}\" not found",
            configured.policy_file
        )?;
        return Ok(1);
    }
    let mut status = 0;
    let rules = &configured.rules;
    let invalid = rules.values().any(|check| {
        refers_to_undefined(check, rules) || reaches_a_cycle(check, rules, &mut HashSet::new())
    });
    if invalid {
        writeln!(out, "Invalid rules found")?;
        status = 1;
    }
    for rule in &configured.file_rules {
        if !defaults.iter().any(|d| d.name == rule.name) {
            writeln!(out, "Unknown rule found in policy file: {}", rule.name)?;
            status = 1;
        }
        let in_force = rules.get(&rule.name).unwrap_or(&rule.check);
        if in_force.to_string() == "!" {
            let raw = configured
                .main_raw
                .iter()
                .find(|(n, _)| *n == rule.name)
                .map(|(_, v)| v)
                .ok_or_else(|| ValidateError::NotInPolicyFile(rule.name.clone()))?;
            if *raw != Yaml::Str("!".into()) {
                writeln!(out, "Failed to parse rule: {}", py_str(raw))?;
                status = 1;
            }
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::enforcer::PolicyOptions;
    use crate::policy::NOVAJOIN_DEFAULTS;

    fn run(text: Option<&str>) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        let c = ConfiguredRules::load(NOVAJOIN_DEFAULTS, &PolicyOptions::file_only(&path)).unwrap();
        let mut out = Vec::new();
        let rc = validate(NOVAJOIN_DEFAULTS, &c, &mut out).unwrap();
        (rc, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_clean_file_passes() {
        assert_eq!(
            run(Some("\"service_project\": \"project_name:services\"\n")),
            (0, String::new())
        );
        assert_eq!(run(Some("# only comments\n")), (0, String::new()));
    }

    #[test]
    fn problems_are_reported_as_the_original_reports_them() {
        let (rc, out) = run(None);
        assert_eq!(rc, 1);
        assert!(out.starts_with("Configured policy file \""), "{out}");
        let (rc, out) = run(Some(
            "\"a:b\": \"rule:nope\"\n\"join:create\": \"role:admin or\"\n\"x\": [[\"!\"]]\n",
        ));
        assert_eq!(rc, 1);
        assert_eq!(
            out,
            "Invalid rules found\nUnknown rule found in policy file: a:b\n\
             Failed to parse rule: role:admin or\nUnknown rule found in policy file: x\n\
             Failed to parse rule: [['!']]\n"
        );
        // Under `not`, references are not followed.
        let (rc, out) = run(Some("\"join:create\": \"not rule:join:create\"\n"));
        assert_eq!((rc, out.as_str()), (0, ""));
        let (rc, out) = run(Some(
            "\"join:create\": \"rule:compute_service_user\"\n\"compute_service_user\": \"rule:join:create\"\n",
        ));
        assert_eq!((rc, out.as_str()), (1, "Invalid rules found\n"));
    }
}
