//! Reading join.conf files the way oslo.config does, keeping file and line
//! for every value so that errors can name them.
//!
//! oslo.config's INI dialect: `[section]` headers, `key = value` or
//! `key: value`, `#`/`;` comment lines, and continuation lines that start
//! with white space. Later files win; a `MultiStrOpt` accumulates. We parse
//! it ourselves (a few dozen lines) because no INI crate reports the line of
//! each key, and every error message here must.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{Catalog, OptionKind, OptionSpec};
use super::ConfigError;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The raw value text (continuations joined with `\n`).
    pub value: String,
    /// The file it came from.
    pub file: PathBuf,
    /// 1-based line number of the `key = value` line.
    pub line: usize,
}

/// A section header and where it first appeared.
#[derive(Clone, Debug)]
struct SectionInfo {
    file: PathBuf,
    line: usize,
}

/// A problem that does not stop the service: reported at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning(pub String);

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The merged contents of every join.conf file given, in order.
#[derive(Clone, Debug, Default)]
pub struct ConfigFiles {
    values: BTreeMap<(String, String), Vec<Located>>,
    sections: BTreeMap<String, SectionInfo>,
    files: Vec<PathBuf>,
}

/// The files searched when no `--config-file` is given, in order; the first
/// that exists is read. The original's list, with its missing-comma bug
/// fixed (it searched `/etc/etc/join/join.conf`).
pub fn default_config_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        out.push(home.join(".join/join.conf"));
        out.push(home.join("join.conf"));
    }
    out.push(PathBuf::from("/etc/novajoin/join.conf"));
    out.push(PathBuf::from("/etc/join/join.conf"));
    out.push(PathBuf::from("/etc/join.conf"));
    out
}

impl ConfigFiles {
    /// Reads `files` in order, then every `*.conf` in each of `dirs` in
    /// lexical order, as oslo.config does with `--config-file` and
    /// `--config-dir`. With neither, the first existing default file is read.
    pub fn load(files: &[PathBuf], dirs: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut cfg = ConfigFiles::default();
        let mut to_read: Vec<PathBuf> = files.to_vec();
        if files.is_empty() && dirs.is_empty() {
            if let Some(found) = default_config_files().into_iter().find(|p| p.is_file()) {
                to_read.push(found);
            }
        }
        for dir in dirs {
            let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
                path: dir.clone(),
                source,
            })?;
            let mut confs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                .collect();
            confs.sort();
            to_read.extend(confs);
        }
        for path in &to_read {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            cfg.add_text(path, &text)?;
        }
        Ok(cfg)
    }

    /// Parses one file's text and merges it over what was read before.
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        self.files.push(path.to_path_buf());
        let mut section: Option<String> = None;
        // (key, index into values vec) of the last key, for continuations.
        let mut last: Option<(String, String)> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let syntax = |problem: String| ConfigError::Syntax {
                file: path.to_path_buf(),
                line: line_no,
                problem,
            };
            if raw.trim().is_empty() {
                last = None;
                continue;
            }
            let trimmed = raw.trim_start();
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                // Continuation of the previous value.
                let Some(key) = &last else {
                    return Err(syntax(
                        "indented line does not continue a value; remove the leading spaces".into(),
                    ));
                };
                if let Some(v) = self.values.get_mut(key).and_then(|v| v.last_mut()) {
                    v.value.push('\n');
                    v.value.push_str(raw.trim());
                }
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.trim_end().strip_suffix(']') else {
                    return Err(syntax(format!(
                        "section header {trimmed:?} is missing its closing ']'"
                    )));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(syntax("empty section name '[]'".into()));
                }
                self.sections
                    .entry(name.to_string())
                    .or_insert_with(|| SectionInfo {
                        file: path.to_path_buf(),
                        line: line_no,
                    });
                section = Some(name.to_string());
                last = None;
                continue;
            }
            let Some(sec) = &section else {
                return Err(syntax(
                    "option set before any [section] header; put it under [DEFAULT]".into(),
                ));
            };
            let split_at = match (trimmed.find('='), trimmed.find(':')) {
                (Some(e), Some(c)) => e.min(c),
                (Some(e), None) => e,
                (None, Some(c)) => c,
                (None, None) => {
                    return Err(syntax(format!(
                        "expected 'name = value', found {:?}",
                        trimmed.chars().take(40).collect::<String>()
                    )))
                }
            };
            let key = trimmed[..split_at].trim();
            if key.is_empty() {
                return Err(syntax("option name missing before '='".into()));
            }
            let value = strip_quotes(trimmed[split_at + 1..].trim());
            let located = Located {
                value: value.to_string(),
                file: path.to_path_buf(),
                line: line_no,
            };
            let map_key = (sec.clone(), key.to_string());
            // Every occurrence is kept: a single-valued option reads the
            // last one (oslo.config's rule), a multi-valued one all of them.
            self.values
                .entry(map_key.clone())
                .or_default()
                .push(located);
            last = Some(map_key);
        }
        Ok(())
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The last value written for `group.name` (or any deprecated name).
    pub fn raw(&self, spec: &OptionSpec) -> Option<&Located> {
        self.raw_all(spec).last()
    }

    /// Every value written for a multi-valued option, in file order.
    pub fn raw_all(&self, spec: &OptionSpec) -> &[Located] {
        std::iter::once(spec.name)
            .chain(spec.deprecated_names.iter().copied())
            .find_map(|n| {
                self.values
                    .get(&(spec.group.to_string(), n.to_string()))
                    .map(|v| v.as_slice())
            })
            .unwrap_or(&[])
    }

    /// A value of an option nobody declares (a keystoneauth plugin's own
    /// options).
    pub fn raw_undeclared(&self, group: &str, name: &str) -> Option<&Located> {
        self.values
            .get(&(group.to_string(), name.to_string()))
            .and_then(|v| v.last())
    }

    /// Every section that sets `name`, with the last value it sets there:
    /// for options of sections nobody declares (per-project
    /// `allowed_classes`).
    pub fn sections_setting(&self, name: &str) -> Vec<(&str, &Located)> {
        self.values
            .iter()
            .filter(|((_, n), _)| n == name)
            .filter_map(|((g, _), v)| Some((g.as_str(), v.last()?)))
            .collect()
    }

    fn bad_value(spec: &OptionSpec, at: &Located, problem: String) -> ConfigError {
        ConfigError::BadValue {
            file: at.file.clone(),
            line: at.line,
            group: spec.group.to_string(),
            option: spec.name.to_string(),
            problem,
        }
    }

    /// The option's text value, or its default; `None` when unset.
    pub fn string(&self, spec: &OptionSpec) -> Option<String> {
        match self.raw(spec) {
            Some(v) => Some(v.value.clone()),
            None => spec.default.map(str::to_string),
        }
    }

    /// The option's text value, or an error naming the option if unset.
    pub fn required(&self, spec: &OptionSpec, why: &str) -> Result<String, ConfigError> {
        self.string(spec)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigError::Missing {
                group: spec.group.to_string(),
                option: spec.name.to_string(),
                why: why.to_string(),
            })
    }

    /// oslo.config boolean.
    pub fn bool(&self, spec: &OptionSpec) -> Result<bool, ConfigError> {
        let text = match self.raw(spec) {
            Some(v) => {
                return parse_bool(&v.value).ok_or_else(|| {
                    Self::bad_value(
                        spec,
                        v,
                        format!("{:?} is not a boolean; use true or false", v.value),
                    )
                })
            }
            None => spec.default.unwrap_or("false"),
        };
        Ok(parse_bool(text).unwrap_or(false))
    }

    /// An integer within the option's bounds.
    pub fn int(&self, spec: &OptionSpec) -> Result<Option<i64>, ConfigError> {
        let (min, max) = match spec.kind {
            OptionKind::Int { min, max } => (min, max),
            OptionKind::Port => (0, 65535),
            _ => (i64::MIN, i64::MAX),
        };
        let Some(v) = self.raw(spec) else {
            return Ok(spec.default.and_then(|d| d.parse().ok()));
        };
        let n: i64 = v.value.trim().parse().map_err(|_| {
            Self::bad_value(spec, v, format!("{:?} is not a whole number", v.value))
        })?;
        if n < min || n > max {
            return Err(Self::bad_value(
                spec,
                v,
                format!("{n} is out of range; it must be between {min} and {max}"),
            ));
        }
        Ok(Some(n))
    }

    /// A non-negative float (seconds and the like).
    pub fn float(&self, spec: &OptionSpec) -> Result<Option<f64>, ConfigError> {
        let Some(v) = self.raw(spec) else {
            return Ok(spec.default.and_then(|d| d.parse().ok()));
        };
        match v.value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(Self::bad_value(
                spec,
                v,
                format!("{:?} is not a non-negative number", v.value),
            )),
        }
    }

    /// A comma-separated list (empty entries dropped, entries trimmed).
    pub fn list(&self, spec: &OptionSpec) -> Vec<String> {
        self.string(spec)
            .map(|s| split_list(&s))
            .unwrap_or_default()
    }

    /// One of the option's allowed words.
    pub fn choice(&self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        let OptionKind::Choice(words) = spec.kind else {
            return Ok(self.string(spec));
        };
        match self.raw(spec) {
            Some(v) if !words.contains(&v.value.as_str()) => Err(Self::bad_value(
                spec,
                v,
                format!("{:?} is not one of: {}", v.value, words.join(", ")),
            )),
            Some(v) => Ok(Some(v.value.clone())),
            None => Ok(spec.default.map(str::to_string)),
        }
    }

    /// Checks every declared option's value and lists unknown options and
    /// sections as warnings (join.conf files carry sections for other
    /// libraries, as oslo.config allows). A section holding only
    /// `allowed_classes` is a per-project section and is not unknown.
    pub fn validate(&self, declared: &Catalog) -> Result<Vec<ConfigWarning>, ConfigError> {
        let mut warnings = Vec::new();
        for ((group, name), vals) in &self.values {
            let Some(at) = vals.last() else { continue };
            match declared.find(group, name) {
                Some(spec) => {
                    self.check_value(spec)?;
                    if spec.name != name {
                        warnings.push(ConfigWarning(format!(
                            "{}:{}: [{group}] {name} is deprecated; use {} instead",
                            at.file.display(),
                            at.line,
                            spec.name
                        )));
                    }
                }
                None if name == "allowed_classes" && !declared.is_known_group(group) => {}
                None if declared.is_known_group(group) => warnings.push(ConfigWarning(format!(
                    "{}:{}: unknown option '{name}' in [{group}] is ignored",
                    at.file.display(),
                    at.line
                ))),
                None => {}
            }
        }
        for (group, info) in &self.sections {
            let project_section = self
                .values
                .keys()
                .filter(|(g, _)| g == group)
                .all(|(_, n)| n == "allowed_classes");
            if !declared.is_known_group(group) && !project_section {
                warnings.push(ConfigWarning(format!(
                    "{}:{}: section [{group}] is not used by novajoin and is ignored",
                    info.file.display(),
                    info.line
                )));
            }
        }
        Ok(warnings)
    }

    fn check_value(&self, spec: &OptionSpec) -> Result<(), ConfigError> {
        match spec.kind {
            OptionKind::Bool => self.bool(spec).map(|_| ()),
            OptionKind::Int { .. } | OptionKind::Port => self.int(spec).map(|_| ()),
            OptionKind::Float => self.float(spec).map(|_| ()),
            OptionKind::Choice(_) => self.choice(spec).map(|_| ()),
            OptionKind::Str | OptionKind::Secret | OptionKind::List | OptionKind::Multi => Ok(()),
        }
    }
}

/// oslo.config's boolean words.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Splits an oslo list value.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn strip_quotes(v: &str) -> &str {
    if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{OptionKind as K, OptionSpec as O};

    const DOMAIN: O = O::new("DEFAULT", "domain", K::Str, None, "");
    const PORT: O = O::new("DEFAULT", "join_listen_port", K::Port, Some("9090"), "");
    const SUBDOMAIN: O = O::new("DEFAULT", "project_subdomain", K::Bool, Some("false"), "");
    const DECLARED: Catalog = Catalog(&[&[DOMAIN, PORT, SUBDOMAIN]]);

    fn parse(text: &str) -> Result<ConfigFiles, ConfigError> {
        let mut c = ConfigFiles::default();
        c.add_text(Path::new("join.conf"), text)?;
        Ok(c)
    }

    #[test]
    fn later_values_win_and_lines_are_kept() {
        let c = parse("[DEFAULT]\ndomain = a.com\n\n# c\ndomain = b.com\n").unwrap();
        let v = c.raw(&DOMAIN).unwrap();
        assert_eq!((v.value.as_str(), v.line), ("b.com", 5));
    }

    #[test]
    fn continuation_lines_join_the_value() {
        let c = parse("[DEFAULT]\ndomain = a\n  b\n").unwrap();
        assert_eq!(c.string(&DOMAIN).unwrap(), "a\nb");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("[DEFAULT]\ndomain = x\nnonsense\n").unwrap_err();
        assert!(e.to_string().contains("join.conf:3"), "{e}");
        let e = parse("domain = x\n").unwrap_err();
        assert!(e.to_string().contains("join.conf:1"), "{e}");
        let e = parse("[DEFAULT\n").unwrap_err();
        assert!(e.to_string().contains("closing ']'"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_option() {
        let c = parse("[DEFAULT]\n\njoin_listen_port = 99999\n").unwrap();
        let e = c.validate(&DECLARED).unwrap_err().to_string();
        assert!(
            e.contains("join.conf:3") && e.contains("join_listen_port"),
            "{e}"
        );
        let c = parse("[DEFAULT]\nproject_subdomain = maybe\n").unwrap();
        let e = c.validate(&DECLARED).unwrap_err().to_string();
        assert!(
            e.contains("join.conf:2") && e.contains("project_subdomain"),
            "{e}"
        );
    }

    #[test]
    fn unknown_options_and_sections_warn() {
        let c = parse(
            "[DEFAULT]\nbogus = 1\n[oslo_concurrency]\nlock_path = /x\n[tenantA]\nallowed_classes = web\n",
        )
        .unwrap();
        let w = c.validate(&DECLARED).unwrap();
        let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("join.conf:2") && t.contains("bogus")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("[oslo_concurrency]")),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("tenantA")), "{text:?}");
    }

    #[test]
    fn booleans_follow_oslo() {
        for (s, b) in [("True", true), ("yes", true), ("0", false), ("OFF", false)] {
            assert_eq!(parse_bool(s), Some(b));
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
