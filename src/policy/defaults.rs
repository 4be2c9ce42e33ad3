//! novajoin's registered default rules (policy in code) and the sample
//! policy file generated from them (`novajoin policy-sample`).

use serde_json::json;

/// A rule registered in code: used unless a policy file overrides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleDefault {
    /// The rule's name.
    pub name: &'static str,
    /// The default rule text.
    pub check_str: &'static str,
    /// What the rule decides, for operators.
    pub description: &'static str,
    /// The API operations it guards (method, path).
    pub operations: &'static [(&'static str, &'static str)],
    /// Token scopes allowed (empty: any), as oslo.policy's `scope_types`.
    pub scope_types: &'static [&'static str],
}

/// The scope of the rules nova's requests are checked against. nova calls
/// with the token of its `[vendordata_dynamic_auth]` user, which keystoneauth
/// scopes to that section's project (`project_name = service`): a
/// project-scoped token. A system- or domain-scoped token is not nova's
/// vendordata call, so these rules refuse it before reading the rule text.
pub const PROJECT_SCOPE: &[&str] = &["project"];

/// The defaults novajoin registers, with the original service's rule texts.
pub const NOVAJOIN_DEFAULTS: &[RuleDefault] = &[
    RuleDefault {
        name: "context_is_admin",
        check_str: "role:admin",
        description: "Who counts as an administrator: a request context for which this rule \
                      holds gets is_admin = True (which the is_admin:True check then sees).",
        operations: &[],
        scope_types: &[],
    },
    RuleDefault {
        name: "service_project",
        check_str: "project_name:service",
        description: "The project the compute service user's token is scoped to. The match is \
                      case-sensitive: deployments whose service project is called 'services' \
                      (packstack, RDO) must override this rule.",
        operations: &[],
        scope_types: &[],
    },
    RuleDefault {
        name: "compute_service_user",
        check_str: "user_name:nova and rule:service_project",
        description: "The caller nova uses for dynamic vendordata: the user configured in \
                      nova.conf [vendordata_dynamic_auth], in the service project.",
        operations: &[],
        scope_types: &[],
    },
    RuleDefault {
        name: "join:create",
        check_str: "rule:compute_service_user",
        description: "Enroll an instance: create or update its host in IPA and return a \
                      one-time password. Only nova's metadata service should be allowed.",
        operations: &[("POST", "/v1")],
        scope_types: PROJECT_SCOPE,
    },
    RuleDefault {
        name: SERVICE_ON_OTHER_HOST,
        check_str: "!",
        description: "Let an instance manage a service principal (metadata \
                      managed_service_*) whose host is neither the instance's own host nor a \
                      sub-host bound to the same instance, such as a shared VIP name. The \
                      instance's host is added to the principal's managedby, so the guest \
                      can fetch that service's keytab. Credentials are nova's service \
                      identity; the target holds the instance's project_id and instance_id \
                      (as nova sent them) and the requested principal and principal_host. \
                      Example: \"'8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f':%(project_id)s and \
                      'overcloud.example.com':%(principal_host)s\" (a quoted literal on the \
                      left compares with the target; project_id:... alone would compare \
                      nova's own credentials). Default: nobody.",
        operations: &[("POST", "/v1")],
        scope_types: PROJECT_SCOPE,
    },
];

/// The rule that decides managed services on hosts the instance does not own.
pub const SERVICE_ON_OTHER_HOST: &str = "join:create:service_on_other_host";

/// Wraps `text` into `#`-comment lines of at most 70 characters.
fn comment_lines(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 70 {
            out.push_str(&format!("# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("# {line}\n"));
    }
    out
}

/// The sample policy as YAML: every default with its description and
/// operations, commented out as oslopolicy-sample-generator writes them
/// (uncomment a line to override it).
pub fn sample_yaml(defaults: &[RuleDefault]) -> String {
    let mut out = String::new();
    for d in defaults {
        out.push_str(&comment_lines(d.description));
        for (method, path) in d.operations {
            out.push_str(&format!("# {method}  {path}\n"));
        }
        if !d.scope_types.is_empty() {
            out.push_str(&format!(
                "# Intended scope(s): {}\n",
                d.scope_types.join(", ")
            ));
        }
        out.push_str(&format!("#{}: {}\n\n", json!(d.name), json!(d.check_str)));
    }
    out
}

/// The sample policy as JSON (rule name to rule text).
pub fn sample_json(defaults: &[RuleDefault]) -> String {
    let mut m = serde_json::Map::new();
    for d in defaults {
        m.insert(d.name.to_string(), json!(d.check_str));
    }
    let mut s = serde_json::to_string_pretty(&serde_json::Value::Object(m)).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parser::parse_text;

    #[test]
    fn defaults_parse_cleanly() {
        for d in NOVAJOIN_DEFAULTS {
            let p = parse_text(d.check_str);
            assert!(p.problems.is_empty(), "{}: {:?}", d.name, p.problems);
            assert!(p.check.lint().is_empty(), "{}", d.name);
        }
    }

    #[test]
    fn sample_documents_every_default_and_parses_back() {
        let y = sample_yaml(NOVAJOIN_DEFAULTS);
        for d in NOVAJOIN_DEFAULTS {
            assert!(
                y.contains(&format!("#\"{}\": \"{}\"", d.name, d.check_str)),
                "{}",
                d.name
            );
        }
        // Uncommented, the sample is a valid policy file with the defaults.
        let uncommented: String = y
            .lines()
            .filter(|l| l.starts_with("#\""))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        let entries =
            crate::policy::file::parse_policy_text(std::path::Path::new("s"), &uncommented)
                .unwrap();
        assert_eq!(entries.len(), NOVAJOIN_DEFAULTS.len());
    }

    #[test]
    fn the_shipped_policy_yaml_is_the_sample() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policy/policy.yaml"))
                .unwrap();
        assert!(
            shipped.ends_with(&sample_yaml(NOVAJOIN_DEFAULTS)),
            "policy/policy.yaml is out of date: regenerate it with `novajoin policy-sample`"
        );
    }
}
