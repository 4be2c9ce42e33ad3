//! "Policy": the policy files load and `join:create` resolves.

use super::report::CheckResult;
use crate::config::ConfigFiles;
use crate::policy::enforcer::{PolicyOptions, RuleOrigin};
use crate::policy::Enforcer;

/// The check's name.
pub const NAME: &str = "Policy";

/// The rule nova's requests are checked against.
pub const JOIN_CREATE: &str = "join:create";

/// Loads the policy as the service does (strictly: any problem in a file is
/// an error) and looks `join:create` up.
pub fn check(cfg: &ConfigFiles) -> CheckResult {
    let enforcer = match Enforcer::from_config(cfg) {
        Ok(e) => e,
        Err(e) => {
            return CheckResult::failure(
                NAME,
                format!(
                    "{e}; the service would refuse to start. Fix the file, or make it readable by \
                     the user novajoin runs as"
                ),
            )
        }
    };
    if let Some(json) = PolicyOptions::from_config(cfg).unread_policy_json() {
        return CheckResult::warning(
            NAME,
            format!(
                "{} is not read: [oslo_policy] policy_file defaults to policy.yaml (as in \
                 oslo.policy), which is not found, so the registered defaults apply. Rename it to \
                 policy.yaml (JSON content loads as it is) or set policy_file = policy.json",
                json.display()
            ),
        );
    }
    let rules = enforcer.rules();
    match rules.get(JOIN_CREATE) {
        Some(rule) => {
            let from = match &rule.origin {
                RuleOrigin::Default => "the registered default".to_string(),
                RuleOrigin::File(path, line) => format!("{}, line {line}", path.display()),
            };
            CheckResult::success(
                NAME,
                format!("{JOIN_CREATE} = \"{}\" (from {from})", rule.check),
            )
        }
        None => CheckResult::failure(
            NAME,
            format!(
                "{JOIN_CREATE} is not defined; every vendordata request would be refused (403)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::Code;

    fn cfg_with(text: &str) -> ConfigFiles {
        let mut c = ConfigFiles::default();
        c.add_text(std::path::Path::new("/t/join.conf"), text)
            .unwrap();
        c
    }

    #[test]
    fn the_default_rule_resolves() {
        let r = check(&cfg_with(
            "[oslo_policy]\npolicy_file = /nonexistent/policy.yaml\n",
        ));
        assert_eq!(r.code, Code::Success, "{r:?}");
        assert!(r.details.unwrap().contains("join:create"));
    }

    #[test]
    fn a_policy_json_left_behind_is_a_warning() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("policy.json"),
            "{\"join:create\": \"role:a\"}",
        )
        .unwrap();
        let mut c = ConfigFiles::default();
        c.add_text(&d.path().join("join.conf"), "[DEFAULT]\n")
            .unwrap();
        let r = check(&c);
        assert_eq!(r.code, Code::Warning, "{r:?}");
        assert!(r.details.unwrap().contains("policy.json is not read"));
        // Named explicitly, or beside a policy.yaml, it is fine.
        let mut c = ConfigFiles::default();
        c.add_text(
            &d.path().join("join.conf"),
            "[oslo_policy]\npolicy_file = policy.json\n",
        )
        .unwrap();
        assert_eq!(check(&c).code, Code::Success);
    }

    #[test]
    fn a_broken_file_is_a_failure_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("policy.yaml");
        std::fs::write(&p, "\"join:create\": \"role:a\n").unwrap();
        let r = check(&cfg_with(&format!(
            "[oslo_policy]\npolicy_file = {}\n",
            p.display()
        )));
        assert_eq!(r.code, Code::Failure, "{r:?}");
        assert!(r.details.unwrap().contains("policy.yaml"));
    }
}
