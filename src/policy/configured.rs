//! The configured policy files read as oslo.policy's enforcer reads them
//! for its operator tools (`oslopolicy-validator`,
//! `oslopolicy-list-redundant`): tolerantly (a rule that does not parse
//! becomes `!`), with a record of the rules that came from files.
//!
//! The service itself loads strictly ([`super::enforcer`]); these tools
//! report what oslo.policy would make of the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::defaults::RuleDefault;
use super::enforcer::PolicyOptions;
use super::error::PolicyError;
use super::file::{parse_policy_entries, Yaml};
use super::parser::{parse_text, parse_value, Check};

/// A rule read from a policy file.
#[derive(Clone, Debug)]
pub struct FileRule {
    /// Its name.
    pub name: String,
    /// Its value as the file has it.
    pub raw: Yaml,
    /// The parsed rule (`!` where it does not parse).
    pub check: Check,
}

/// The rules of the configured files, over the registered defaults.
#[derive(Clone, Debug)]
pub struct ConfiguredRules {
    /// `[oslo_policy] policy_file` as configured.
    pub policy_file: String,
    /// The policy file, when it is found.
    pub main_file: Option<PathBuf>,
    /// The policy file's own entries (name, value), before the policy
    /// directories override any.
    pub main_raw: Vec<(String, Yaml)>,
    /// Every rule read from a file, in the order the names first appear
    /// (a later file replaces the rule in place).
    pub file_rules: Vec<FileRule>,
    /// Every rule in force: the files' over the defaults.
    pub rules: BTreeMap<String, Check>,
}

fn read_entries(path: &Path) -> Result<Vec<(String, Yaml)>, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    parse_policy_entries(path, &text)?
        .into_iter()
        .map(|e| match e.key {
            Yaml::Str(name) => Ok((name, e.value)),
            other => Err(PolicyError::Shape {
                path: path.to_path_buf(),
                line: e.line,
                problem: format!("rule name {} is not text; quote it", other.describe()),
            }),
        })
        .collect()
}

impl ConfiguredRules {
    /// Reads the files `options` names over `defaults`. A file that is not
    /// YAML, or a rule value that is neither text nor a list, is an error
    /// (oslo.policy fails on them too).
    pub fn load(defaults: &[RuleDefault], options: &PolicyOptions) -> Result<Self, PolicyError> {
        let main_file = options.main_file();
        let main_raw = match &main_file {
            Some(p) => read_entries(p)?,
            None => Vec::new(),
        };
        let mut file_rules: Vec<FileRule> = Vec::new();
        let mut add = |path: &Path, name: String, raw: Yaml| -> Result<(), PolicyError> {
            let check = parse_value(&raw)
                .map_err(|problem| PolicyError::Rule {
                    path: path.to_path_buf(),
                    line: 0,
                    name: name.clone(),
                    problem,
                })?
                .check;
            let rule = FileRule { name, raw, check };
            match file_rules.iter_mut().find(|r| r.name == rule.name) {
                Some(slot) => *slot = rule,
                None => file_rules.push(rule),
            }
            Ok(())
        };
        if let Some(p) = &main_file {
            for (name, raw) in main_raw.clone() {
                add(p, name, raw)?;
            }
        }
        for p in options.dir_files() {
            for (name, raw) in read_entries(&p)? {
                add(&p, name, raw)?;
            }
        }
        let mut rules: BTreeMap<String, Check> = file_rules
            .iter()
            .map(|r| (r.name.clone(), r.check.clone()))
            .collect();
        for d in defaults {
            rules
                .entry(d.name.to_string())
                .or_insert_with(|| parse_text(d.check_str).check);
        }
        Ok(Self {
            policy_file: options.policy_file.clone(),
            main_file,
            main_raw,
            file_rules,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NOVAJOIN_DEFAULTS;

    #[test]
    fn directories_replace_file_rules_in_place_and_defaults_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            "\"a:b\": \"role:x\"\n\"join:create\": \"role:admin or\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("policy.d")).unwrap();
        std::fs::write(dir.path().join("policy.d/1.yaml"), "\"a:b\": \"@\"\n").unwrap();
        let opts = PolicyOptions {
            policy_file: "policy.yaml".into(),
            policy_dirs: vec!["policy.d".into()],
            default_rule: "default".into(),
            search_dirs: vec![dir.path().to_path_buf()],
        };
        let c = ConfiguredRules::load(NOVAJOIN_DEFAULTS, &opts).unwrap();
        let names: Vec<&str> = c.file_rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a:b", "join:create"]);
        assert_eq!(c.file_rules[0].check, Check::True);
        assert_eq!(c.rules["join:create"], Check::False, "unparsable: !");
        assert_eq!(
            c.rules["service_project"].to_string(),
            "project_name:service"
        );
        assert_eq!(c.main_raw.len(), 2);
    }
}
