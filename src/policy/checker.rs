//! `novajoin policy-check`: the behaviour of oslo.policy's
//! `oslopolicy-checker`, so a policy can be tested offline exactly as
//! before.
//!
//! Inputs and output, as the original tool has them:
//! * credentials are the `token` object of a keystone token-validation body
//!   with `roles` reduced to role names, `user_id` and (when the token has a
//!   project) `project_id` copied up, `system_scope = "all"` for system
//!   tokens, and `is_admin` from the flag;
//! * the target is the `--target` JSON flattened to dotted keys, or
//!   `{"user_id", "project_id"}` from the token;
//! * only the file's rules are used (no registered defaults), with `default`
//!   as the default rule;
//! * without `--rule`, every rule whose name contains `:` is checked in
//!   sorted order; one `passed: NAME` / `failed: NAME` line each, or an
//!   error message line followed by `exception: RULE` where oslo.policy
//!   would print a Python exception.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::eval::{evaluate, RuleLookup};
use super::file::{parse_policy_entries, Yaml};
use super::parser::{parse_value, Check};
use super::pyvalue::truthy;

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct CheckerInput {
    /// The policy file.
    pub policy: PathBuf,
    /// The keystone token-validation body (`{"token": {...}}`).
    pub access: PathBuf,
    /// Only this rule.
    pub rule: Option<String>,
    /// A JSON target.
    pub target: Option<PathBuf>,
    /// `is_admin` in the credentials.
    pub is_admin: bool,
}

/// Why nothing could be checked (the original exits 1 with a traceback).
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON input is not valid JSON.
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The access file does not look like a token-validation body.
    #[error("{}: {problem}", path.display())]
    Access {
        /// The file.
        path: PathBuf,
        /// What is missing.
        problem: String,
    },
    /// The target is not a JSON object.
    #[error("{}: the target must be a JSON object", path.display())]
    Target {
        /// The file.
        path: PathBuf,
    },
    /// The policy file cannot be loaded.
    #[error(transparent)]
    Policy(#[from] super::error::PolicyError),
    /// Every rule is to be checked, but one name is not text, so the rules
    /// cannot be listed (oslopolicy-checker fails with a TypeError).
    #[error("{}:{line}: rule name {key} is not text, so the rules cannot be listed in order; \
             quote the name, or check one rule with --rule", path.display())]
    NonTextName {
        /// The policy file.
        path: PathBuf,
        /// The key, as written.
        key: String,
        /// Its line.
        line: usize,
    },
    /// `--rule` names a rule that is not defined and there is no `default`.
    #[error("rule {0:?} is not defined in the policy file and there is no \"default\" rule")]
    NoSuchRule(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A file's rules with oslo.policy's tolerant semantics (a malformed rule
/// denies) and `default` as the default rule.
pub struct FileRules {
    rules: BTreeMap<String, Check>,
    /// The first key that is not text (`1`, `true`), if any: oslo.policy
    /// keeps such a rule under a key no lookup by name can reach, and
    /// cannot list the rules (it sorts and searches the names).
    non_text_key: Option<(Yaml, usize)>,
}

impl FileRules {
    /// Loads a policy file as `oslopolicy-checker` does.
    pub fn load(path: &Path) -> Result<Self, CheckerError> {
        let text = std::fs::read(path).map_err(|source| CheckerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&text);
        let entries = parse_policy_entries(path, &text)?;
        let mut rules = BTreeMap::new();
        let mut non_text_key = None;
        for e in entries {
            let parsed =
                parse_value(&e.value).map_err(|problem| super::error::PolicyError::Rule {
                    path: path.to_path_buf(),
                    line: e.line,
                    name: match &e.key {
                        Yaml::Str(name) => name.clone(),
                        other => other.describe(),
                    },
                    problem,
                })?;
            match e.key {
                Yaml::Str(name) => {
                    rules.insert(name, parsed.check);
                }
                other => {
                    non_text_key.get_or_insert((other, e.line));
                }
            }
        }
        Ok(Self {
            rules,
            non_text_key,
        })
    }

    /// The rule `name` evaluates, with the name it resolved to.
    pub fn resolve(&self, name: &str) -> Option<(&str, &Check)> {
        self.lookup(name)
    }
}

impl RuleLookup for FileRules {
    fn lookup(&self, name: &str) -> Option<(&str, &Check)> {
        if let Some((k, v)) = self.rules.get_key_value(name) {
            return Some((k.as_str(), v));
        }
        self.rules
            .get_key_value("default")
            .map(|(k, v)| (k.as_str(), v))
    }
}

fn read_json(path: &Path) -> Result<Value, CheckerError> {
    let bytes = std::fs::read(path).map_err(|source| CheckerError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CheckerError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Credentials from a token-validation body, as the original tool builds
/// them.
pub fn credentials_from_access(
    path: &Path,
    access: Value,
    is_admin: bool,
) -> Result<Map<String, Value>, CheckerError> {
    let bad = |problem: &str| CheckerError::Access {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let Value::Object(mut outer) = access else {
        return Err(bad(
            "expected a JSON object with a \"token\" key (keystone's GET /v3/auth/tokens body)",
        ));
    };
    let Some(Value::Object(mut token)) = outer.remove("token") else {
        return Err(bad(
            "expected a \"token\" object (keystone's GET /v3/auth/tokens body)",
        ));
    };
    let Some(Value::Array(roles)) = token.get("roles") else {
        return Err(bad("token.roles must be a list of {\"name\": ...} objects"));
    };
    let mut names = Vec::with_capacity(roles.len());
    for r in roles {
        match r.get("name") {
            Some(n) if r.is_object() => names.push(n.clone()),
            _ => return Err(bad("every entry of token.roles needs a \"name\"")),
        }
    }
    token.insert("roles".into(), Value::Array(names));
    let user_id = match token.get("user") {
        Some(Value::Object(u)) => u
            .get("id")
            .cloned()
            .ok_or_else(|| bad("token.user has no \"id\""))?,
        _ => return Err(bad("token.user must be an object with an \"id\"")),
    };
    token.insert("user_id".into(), user_id);
    if let Some(p) = token.get("project").filter(|p| truthy(p)) {
        let id = match p {
            Value::Object(p) => p
                .get("id")
                .cloned()
                .ok_or_else(|| bad("token.project has no \"id\""))?,
            _ => return Err(bad("token.project must be an object with an \"id\"")),
        };
        token.insert("project_id".into(), id);
    }
    if token.get("system").is_some_and(truthy) {
        token.insert("system_scope".into(), Value::String("all".into()));
    }
    token.insert("is_admin".into(), Value::Bool(is_admin));
    Ok(token)
}

/// oslo's `flatten`: nested objects become dotted keys; lists stay.
pub fn flatten(value: &Map<String, Value>) -> Map<String, Value> {
    fn walk(out: &mut Map<String, Value>, m: &Map<String, Value>, prefix: &str) {
        for (k, v) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(inner) => walk(out, inner, &key),
                other => {
                    out.insert(key, other.clone());
                }
            }
        }
    }
    let mut out = Map::new();
    walk(&mut out, value, "");
    out
}

/// Runs the check and writes the result lines to `out`.
pub fn run(input: &CheckerInput, out: &mut dyn Write) -> Result<(), CheckerError> {
    let access = read_json(&input.access)?;
    let creds = credentials_from_access(&input.access, access, input.is_admin)?;
    let rules = FileRules::load(&input.policy)?;
    let target = match &input.target {
        Some(p) => match read_json(p)? {
            Value::Object(m) => flatten(&m),
            _ => return Err(CheckerError::Target { path: p.clone() }),
        },
        None => {
            let mut t = Map::new();
            t.insert(
                "user_id".into(),
                creds.get("user_id").cloned().unwrap_or(Value::Null),
            );
            if let Some(p) = creds.get("project_id").filter(|p| truthy(p)) {
                t.insert("project_id".into(), p.clone());
            }
            t
        }
    };
    let mut try_rule = |key: &str, resolved: &str, check: &Check| -> Result<(), std::io::Error> {
        match evaluate(check, Some(resolved), &rules, &target, &creds) {
            Ok(true) => writeln!(out, "passed: {key}"),
            Ok(false) => writeln!(out, "failed: {key}"),
            Err(e) => {
                writeln!(out, "{e}")?;
                writeln!(out, "exception: {check}")
            }
        }
    };
    if let Some(name) = &input.rule {
        let (resolved, check) = rules
            .resolve(name)
            .ok_or_else(|| CheckerError::NoSuchRule(name.clone()))?;
        try_rule(name, resolved, check)?;
        return Ok(());
    }
    if let Some((key, line)) = &rules.non_text_key {
        return Err(CheckerError::NonTextName {
            path: input.policy.clone(),
            key: key.describe(),
            line: *line,
        });
    }
    for (key, check) in rules.rules.iter().filter(|(k, _)| k.contains(':')) {
        try_rule(key, key, check)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_follow_the_original_tool() {
        let access = json!({"token": {"user": {"id": "u1", "name": "nova"}, "project": {"id": "p1", "name": "service"},
                                      "roles": [{"id": "r1", "name": "member"}]}});
        let c = credentials_from_access(Path::new("a.json"), access, true).unwrap();
        assert_eq!(c["roles"], json!(["member"]));
        assert_eq!(c["user_id"], "u1");
        assert_eq!(c["project_id"], "p1");
        assert_eq!(c["is_admin"], true);
        assert!(c.get("system_scope").is_none());
        assert!(c.get("user_name").is_none());
        let e = credentials_from_access(
            Path::new("a.json"),
            json!({"token": {"user": {"id": "u"}}}),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("roles"));
    }

    #[test]
    fn flatten_makes_dotted_keys() {
        let t = json!({"target": {"project": {"id": "p1"}}, "project_id": "zzz", "l": [{"a": 1}], "e": {}});
        let f = flatten(t.as_object().unwrap());
        assert_eq!(f["target.project.id"], "p1");
        assert_eq!(f["project_id"], "zzz");
        assert_eq!(f["l"], json!([{"a": 1}]));
        assert!(f.get("e").is_none());
    }
}
