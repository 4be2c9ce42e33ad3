//! The enforcer: registered defaults, overridden by the policy file and the
//! files of the policy directories, reloaded when they change on disk.
//!
//! Loading is strict: a rule that oslo.policy would silently turn into a
//! deny (a parse failure, a check without `:`), a rule that would raise on
//! every request (`name:100%`, `1abc:x`), a remote `http:` check, an empty
//! value (which oslo.policy treats as allow) or a cycle of `rule:`
//! references is an error naming the file, the line, the rule and the
//! column. At start-up that stops the service; on reload it is logged and
//! the last good policy stays in force.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};

use super::defaults::{RuleDefault, NOVAJOIN_DEFAULTS};
use super::error::{EvalError, PolicyError};
use super::eval::{evaluate, RuleLookup};
use super::file::{parse_policy_text, Yaml};
use super::parser::{parse_text, parse_value, Check};
use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};
use crate::config::ConfigFiles;

// ---- [oslo_policy] ----

/// `[oslo_policy] policy_file`.
pub const POLICY_FILE: O = O::new(
    "oslo_policy",
    "policy_file",
    K::Str,
    Some("policy.yaml"),
    "The policy file. Every policy file is parsed as YAML, as oslo.policy does, so a file in JSON \
     loads too (set policy_file = policy.json to keep one). A relative path is searched next to the \
     join.conf files, then in ~/.join, ~, /etc/novajoin, /etc/join and /etc. Missing: the defaults \
     in code apply.",
);
/// `[oslo_policy] policy_default_rule`.
pub const POLICY_DEFAULT_RULE: O = O::new(
    "oslo_policy",
    "policy_default_rule",
    K::Str,
    Some("default"),
    "Rule used for an undefined rule name or rule: reference, if a rule of that name exists.",
);
/// `[oslo_policy] policy_dirs`.
pub const POLICY_DIRS: O = O::new(
    "oslo_policy",
    "policy_dirs",
    K::List,
    Some("policy.d"),
    "Directories whose files (sorted, dot-files skipped) override the policy file's rules. \
     Relative paths are searched like policy_file; missing directories are ignored.",
);
/// `[oslo_policy] enforce_scope`.
pub const ENFORCE_SCOPE: O = O::new(
    "oslo_policy",
    "enforce_scope",
    K::Bool,
    Some("true"),
    "Accepted so old files load, and ignored: as in oslo.policy 6 (which removed the option), the \
     token's scope is always checked against the scope_types of a rule that declares them; \
     join:create and join:create:service_on_other_host need a project-scoped token.",
);
/// `[oslo_policy] enforce_new_defaults`.
pub const ENFORCE_NEW_DEFAULTS: O = O::new("oslo_policy", "enforce_new_defaults", K::Bool, Some("true"),
    "Accepted for compatibility: novajoin has no deprecated rules, so only the current defaults apply.");
/// `[oslo_policy] remote_content_type`.
pub const REMOTE_CONTENT_TYPE: O = O::new(
    "oslo_policy",
    "remote_content_type",
    K::Choice(&["application/x-www-form-urlencoded", "application/json"]),
    Some("application/x-www-form-urlencoded"),
    "Accepted so old files load; http/https remote checks are refused when the policy loads.",
);
/// `[oslo_policy] remote_ssl_verify_server_crt`.
pub const REMOTE_SSL_VERIFY: O = O::new(
    "oslo_policy",
    "remote_ssl_verify_server_crt",
    K::Bool,
    Some("false"),
    "Accepted so old files load; remote checks are not supported.",
);
/// `[oslo_policy] remote_ssl_ca_crt_file`.
pub const REMOTE_SSL_CA: O = O::new(
    "oslo_policy",
    "remote_ssl_ca_crt_file",
    K::Str,
    None,
    "Accepted so old files load; remote checks are not supported.",
);
/// `[oslo_policy] remote_ssl_client_crt_file`.
pub const REMOTE_SSL_CRT: O = O::new(
    "oslo_policy",
    "remote_ssl_client_crt_file",
    K::Str,
    None,
    "Accepted so old files load; remote checks are not supported.",
);
/// `[oslo_policy] remote_ssl_client_key_file`.
pub const REMOTE_SSL_KEY: O = O::new(
    "oslo_policy",
    "remote_ssl_client_key_file",
    K::Str,
    None,
    "Accepted so old files load; remote checks are not supported.",
);
/// `[oslo_policy] remote_timeout`.
pub const REMOTE_TIMEOUT: O = O::new(
    "oslo_policy",
    "remote_timeout",
    K::Float,
    Some("60"),
    "Accepted so old files load; remote checks are not supported.",
);

/// The `[oslo_policy]` group.
pub const OSLO_POLICY_OPTIONS: OptionGroup = &[
    POLICY_FILE,
    POLICY_DEFAULT_RULE,
    POLICY_DIRS,
    ENFORCE_SCOPE,
    ENFORCE_NEW_DEFAULTS,
    REMOTE_CONTENT_TYPE,
    REMOTE_SSL_VERIFY,
    REMOTE_SSL_CA,
    REMOTE_SSL_CRT,
    REMOTE_SSL_KEY,
    REMOTE_TIMEOUT,
];

/// How often the watcher looks at the policy files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Where the enforcer finds its files.
#[derive(Clone, Debug)]
pub struct PolicyOptions {
    /// `policy_file`.
    pub policy_file: String,
    /// `policy_dirs`.
    pub policy_dirs: Vec<String>,
    /// `policy_default_rule`.
    pub default_rule: String,
    /// Directories a relative path is searched in, in order.
    pub search_dirs: Vec<PathBuf>,
}

impl PolicyOptions {
    /// The options as join.conf sets them.
    pub fn from_config(config: &ConfigFiles) -> Self {
        let mut search_dirs: Vec<PathBuf> = config
            .files()
            .iter()
            .rev()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        if let Some(home) = std::env::var_os("HOME") {
            let home = PathBuf::from(home);
            search_dirs.push(home.join(".join"));
            search_dirs.push(home);
        }
        search_dirs.extend(["/etc/novajoin", "/etc/join", "/etc"].map(PathBuf::from));
        Self {
            policy_file: config.string(&POLICY_FILE).unwrap_or_default(),
            policy_dirs: config.list(&POLICY_DIRS),
            default_rule: config.string(&POLICY_DEFAULT_RULE).unwrap_or_default(),
            search_dirs,
        }
    }

    /// Options reading exactly `policy_file` (no search, no directories).
    pub fn file_only(policy_file: &Path) -> Self {
        Self {
            policy_file: policy_file.display().to_string(),
            policy_dirs: Vec::new(),
            default_rule: "default".into(),
            search_dirs: Vec::new(),
        }
    }

    fn find(&self, name: &str, want_dir: bool) -> Option<PathBuf> {
        let p = Path::new(name);
        let ok = |p: &Path| if want_dir { p.is_dir() } else { p.is_file() };
        if p.is_absolute() {
            return ok(p).then(|| p.to_path_buf());
        }
        self.search_dirs.iter().map(|d| d.join(p)).find(|c| ok(c))
    }

    /// The files in force, in the order they apply (later wins).
    fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.main_file().into_iter().collect();
        out.extend(self.dir_files());
        out
    }

    /// A `policy.json` that is no longer read: `policy_file` is its
    /// default, `policy.yaml`, which is not found, and a `policy.json` is
    /// where it would be searched (the name releases before this one read).
    pub fn unread_policy_json(&self) -> Option<PathBuf> {
        if self.policy_file != POLICY_FILE.default.unwrap_or_default() || self.main_file().is_some()
        {
            return None;
        }
        self.find("policy.json", false)
    }

    /// The policy file, if it is found.
    pub fn main_file(&self) -> Option<PathBuf> {
        self.find(&self.policy_file, false)
    }

    /// The files of the policy directories that exist, in the order they
    /// apply (each directory's files sorted, dot-files skipped).
    pub fn dir_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.policy_dirs {
            let Some(dir) = self.find(d, true) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            files.sort();
            out.extend(files);
        }
        out
    }
}

/// Where a rule in force came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleOrigin {
    /// Registered in code.
    Default,
    /// A policy file, at a line.
    File(PathBuf, usize),
}

/// A rule in force.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The parsed rule.
    pub check: Check,
    /// Where it came from.
    pub origin: RuleOrigin,
}

/// The complete set of rules in force at one time.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: HashMap<String, Rule>,
    default_rule: String,
}

impl RuleLookup for RuleSet {
    fn lookup(&self, name: &str) -> Option<(&str, &Check)> {
        if let Some((k, r)) = self.rules.get_key_value(name) {
            return Some((k.as_str(), &r.check));
        }
        self.rules
            .get_key_value(&self.default_rule)
            .map(|(k, r)| (k.as_str(), &r.check))
    }
}

impl RuleSet {
    /// The rule named `name`, if defined.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    /// Names of every rule in force, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rules.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

fn strict_rule(path: &Path, line: usize, name: &str, value: &Yaml) -> Result<Check, PolicyError> {
    let err = |problem: String| PolicyError::Rule {
        path: path.to_path_buf(),
        line,
        name: name.to_string(),
        problem,
    };
    if matches!(value, Yaml::Null) {
        return Err(err("has no value (oslo.policy would allow everyone); write \"@\" to allow everyone or \"!\" to deny".into()));
    }
    let parsed = parse_value(value)
        .map_err(|e| err(format!("must be a rule string or a list of lists ({e})")))?;
    if let Some(p) = parsed.problems.first() {
        let at = if p.column > 0 {
            format!("column {}: ", p.column)
        } else {
            String::new()
        };
        return Err(err(format!("{at}{}", p.message)));
    }
    if let Some(problem) = parsed.check.lint().into_iter().next() {
        return Err(err(problem));
    }
    Ok(parsed.check)
}

fn find_cycle(rules: &HashMap<String, Rule>) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        rules: &'a HashMap<String, Rule>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == name) {
            return Some(path[i..].iter().map(|s| s.to_string()).collect());
        }
        if done.contains(name) {
            return None;
        }
        let (key, rule) = rules.get_key_value(name)?;
        path.push(key.as_str());
        for r in rule.check.referenced_rules() {
            if let Some(c) = visit(r, rules, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(key.as_str());
        None
    }
    let mut done = HashSet::new();
    let mut names: Vec<&String> = rules.keys().collect();
    names.sort();
    for n in names {
        if let Some(c) = visit(n, rules, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Builds the rule set from the defaults and the files, strictly.
pub fn load_rule_set(
    defaults: &[RuleDefault],
    files: &[PathBuf],
    default_rule: &str,
) -> Result<RuleSet, PolicyError> {
    let mut rules: HashMap<String, Rule> = HashMap::new();
    for path in files {
        let text = std::fs::read(path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(text).map_err(|e| PolicyError::Shape {
            path: path.clone(),
            line: 0,
            problem: format!("the file is not UTF-8 ({e})"),
        })?;
        for entry in parse_policy_text(path, &text)? {
            let check = strict_rule(path, entry.line, &entry.name, &entry.value)?;
            rules.insert(
                entry.name,
                Rule {
                    check,
                    origin: RuleOrigin::File(path.clone(), entry.line),
                },
            );
        }
    }
    for d in defaults {
        if rules.contains_key(d.name) {
            continue;
        }
        let parsed = parse_text(d.check_str);
        if let Some(p) = parsed.problems.first() {
            return Err(PolicyError::Default {
                name: d.name.into(),
                problem: p.message.clone(),
            });
        }
        rules.insert(
            d.name.to_string(),
            Rule {
                check: parsed.check,
                origin: RuleOrigin::Default,
            },
        );
    }
    if let Some(names) = find_cycle(&rules) {
        let path = names
            .iter()
            .find_map(|n| match &rules[n].origin {
                RuleOrigin::File(p, _) => Some(p.clone()),
                RuleOrigin::Default => None,
            })
            .unwrap_or_default();
        return Err(PolicyError::Cycle { path, names });
    }
    for (name, rule) in &rules {
        for r in rule.check.referenced_rules() {
            if !rules.contains_key(r) {
                let fallback = if rules.contains_key(default_rule) {
                    format!("the {default_rule:?} rule applies instead")
                } else {
                    "it denies".to_string()
                };
                tracing::warn!(rule = %name, reference = %r, "policy rule refers to an undefined rule; {fallback}");
            }
        }
    }
    Ok(RuleSet {
        rules,
        default_rule: default_rule.to_string(),
    })
}

/// What changed on disk since the last look: path, modification time, size.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|p| {
            let md = std::fs::metadata(p).ok();
            (
                p.clone(),
                md.as_ref().and_then(|m| m.modified().ok()),
                md.map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect()
}

/// What [`Enforcer::reload_if_changed`] did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Nothing changed on disk.
    Unchanged,
    /// The new files were loaded and are in force.
    Reloaded,
    /// The new files are broken; the previous policy stays in force.
    Rejected(PolicyError),
}

/// The result of a policy decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The rule allows.
    Allow,
    /// The rule denies.
    Deny,
    /// Evaluating the rule failed (oslo.policy would raise); treated as a
    /// deny by callers.
    Error(EvalError),
}

impl Decision {
    /// Whether the action may go ahead.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Why `authorize` refused to decide.
#[derive(Debug, thiserror::Error)]
#[error("policy {0} has not been registered")]
pub struct PolicyNotRegistered(pub String);

/// Registered defaults plus file overrides, swapped atomically on reload.
pub struct Enforcer {
    defaults: Vec<RuleDefault>,
    options: PolicyOptions,
    current: ArcSwap<RuleSet>,
    last_seen: Mutex<Fingerprint>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Enforcer {
    /// Loads the policy; any problem in the files is an error.
    pub fn new(defaults: &[RuleDefault], options: PolicyOptions) -> Result<Self, PolicyError> {
        let files = options.files();
        let seen = fingerprint(&files);
        let set = load_rule_set(defaults, &files, &options.default_rule)?;
        match files.is_empty() {
            true => {
                tracing::info!(policy_file = %options.policy_file, "no policy file found; the registered defaults apply")
            }
            false => tracing::info!(files = ?files, "policy loaded"),
        }
        if let Some(json) = options.unread_policy_json() {
            tracing::warn!(path = %json.display(),
                "{} is not read: [oslo_policy] policy_file defaults to policy.yaml, as in oslo.policy; \
                 rename it to policy.yaml (JSON content loads as it is) or set policy_file = policy.json",
                json.display());
        }
        Ok(Self {
            defaults: defaults.to_vec(),
            options,
            current: ArcSwap::from_pointee(set),
            last_seen: Mutex::new(seen),
        })
    }

    /// novajoin's enforcer as join.conf configures it.
    pub fn from_config(config: &ConfigFiles) -> Result<Self, PolicyError> {
        Self::new(NOVAJOIN_DEFAULTS, PolicyOptions::from_config(config))
    }

    /// One enforcer per loaded configuration, shared by the filters that
    /// need it (policy, keystonecontext), with its file watcher started on
    /// first use inside a tokio runtime.
    pub fn shared(config: &Arc<ConfigFiles>) -> Result<Arc<Enforcer>, PolicyError> {
        type Registry = Vec<(Weak<ConfigFiles>, Weak<Enforcer>)>;
        static SHARED: Mutex<Registry> = Mutex::new(Vec::new());
        let mut reg = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(c, e)| c.strong_count() > 0 && e.strong_count() > 0);
        for (c, e) in reg.iter() {
            if c.upgrade().is_some_and(|c| Arc::ptr_eq(&c, config)) {
                if let Some(e) = e.upgrade() {
                    return Ok(e);
                }
            }
        }
        let e = Arc::new(Self::from_config(config)?);
        if tokio::runtime::Handle::try_current().is_ok() {
            e.spawn_watcher(RELOAD_INTERVAL);
        }
        reg.push((Arc::downgrade(config), Arc::downgrade(&e)));
        Ok(e)
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// The rules in force now, as a short-lived guard (cheaper than
    /// [`Self::rules`] on the request path).
    pub fn current(&self) -> arc_swap::Guard<Arc<RuleSet>> {
        self.current.load()
    }

    /// Whether `name` is registered in code.
    pub fn is_registered(&self, name: &str) -> bool {
        self.defaults.iter().any(|d| d.name == name)
    }

    /// Whether `name` is defined (registered or in a file).
    pub fn is_defined(&self, name: &str) -> bool {
        self.current.load().get(name).is_some()
    }

    /// Looks at the files; if they changed, loads them and swaps the new
    /// rules in. A broken file is logged (file, line, rule, problem) once per
    /// change and the previous rules stay in force.
    pub fn reload_if_changed(&self) -> ReloadOutcome {
        let files = self.options.files();
        let now = fingerprint(&files);
        let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return ReloadOutcome::Unchanged;
        }
        *seen = now;
        drop(seen);
        match load_rule_set(&self.defaults, &files, &self.options.default_rule) {
            Ok(set) => {
                self.current.store(Arc::new(set));
                tracing::info!(files = ?files, "policy reloaded");
                ReloadOutcome::Reloaded
            }
            Err(e) => {
                tracing::error!(error = %e, "policy file changed but cannot be used; the previous policy stays in force");
                ReloadOutcome::Rejected(e)
            }
        }
    }

    /// Starts a task that calls [`Self::reload_if_changed`] every
    /// `interval`; it ends when the enforcer is dropped. Needs a tokio
    /// runtime.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(e) = weak.upgrade() else { return };
                // File reads are small; keep them off the async workers anyway.
                let _ = tokio::task::spawn_blocking(move || e.reload_if_changed()).await;
            }
        });
    }

    /// Evaluates rule `name` (oslo's `enforce`): an undefined name uses the
    /// default rule if one exists, else denies.
    pub fn enforce(
        &self,
        name: &str,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
    ) -> Decision {
        self.enforce_in(&self.current.load(), name, target, creds)
    }

    /// [`Self::enforce`] under `set` (one of this enforcer's [`Self::rules`]),
    /// so that a caller remembering decisions knows which rules took them.
    pub fn enforce_in(
        &self,
        set: &RuleSet,
        name: &str,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
    ) -> Decision {
        let Some((resolved, check)) = set.lookup(name) else {
            return Decision::Deny;
        };
        // oslo.policy copies a truthy system_scope into `system`.
        let creds: std::borrow::Cow<'_, Map<String, Value>> = match creds
            .get("system_scope")
            .filter(|v| super::pyvalue::truthy(v))
        {
            Some(s) => {
                let mut c = creds.clone();
                c.insert("system".into(), s.clone());
                std::borrow::Cow::Owned(c)
            }
            None => std::borrow::Cow::Borrowed(creds),
        };
        if let Some(d) = self.defaults.iter().find(|d| d.name == name) {
            let scope = token_scope(&creds);
            if !d.scope_types.is_empty() && !d.scope_types.contains(&scope) {
                // oslo.policy's InvalidScope, as a deny with its message.
                tracing::warn!(rule = %name, scope_types = ?d.scope_types, token_scope = scope,
                    "{name} requires a scope of {:?}, request was made with {scope} scope", d.scope_types);
                return Decision::Deny;
            }
        }
        match evaluate(check, Some(resolved), set, target, &creds) {
            Ok(true) => Decision::Allow,
            Ok(false) => Decision::Deny,
            Err(e) => Decision::Error(e),
        }
    }

    /// Like [`Self::enforce`], for a name registered in code only (oslo's
    /// `authorize`).
    pub fn authorize(
        &self,
        name: &str,
        target: &Map<String, Value>,
        creds: &Map<String, Value>,
    ) -> Result<Decision, PolicyNotRegistered> {
        if !self.is_registered(name) {
            return Err(PolicyNotRegistered(name.to_string()));
        }
        Ok(self.enforce(name, target, creds))
    }

    /// Whether rule `name` holds for `creds`, with the target the original
    /// novajoin used for its admin check (`{"project_id": ""}`). Errors
    /// count as "no" and are logged. This is how the keystonecontext filter
    /// asks `context_is_admin`:
    /// `enforcer.check_rule_name("context_is_admin", &creds)`.
    pub fn check_rule_name(&self, name: &str, creds: &Map<String, Value>) -> bool {
        match self.check_rule_name_in(&self.current.load(), name, creds) {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Error(e) => {
                tracing::error!(rule = %name, error = %e, "policy rule could not be evaluated; treating it as not holding");
                false
            }
        }
    }

    /// The decision behind [`Self::check_rule_name`], under `set`, without
    /// logging.
    pub fn check_rule_name_in(
        &self,
        set: &RuleSet,
        name: &str,
        creds: &Map<String, Value>,
    ) -> Decision {
        let mut target = Map::new();
        target.insert("project_id".into(), Value::String(String::new()));
        self.enforce_in(set, name, &target, creds)
    }
}

/// The token's scope as oslo.policy's `_enforce_scope` tells it: `system`
/// when `system` (copied from `system_scope`) is set, `domain` when
/// `domain_id` is (keystonemiddleware sets it only for domain-scoped
/// tokens), else `project`.
fn token_scope(creds: &Map<String, Value>) -> &'static str {
    use super::pyvalue::truthy;
    if creds.get("system").is_some_and(truthy) {
        "system"
    } else if creds.get("domain_id").is_some_and(truthy) {
        "domain"
    } else {
        "project"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(user: &str, project: &str, roles: &[&str]) -> Map<String, Value> {
        json!({"user_name": user, "project_name": project, "roles": roles})
            .as_object()
            .unwrap()
            .clone()
    }

    fn enforcer_with(text: Option<&str>) -> (tempfile::TempDir, Enforcer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        let e = Enforcer::new(NOVAJOIN_DEFAULTS, PolicyOptions::file_only(&path)).unwrap();
        (dir, e)
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let (_d, e) = enforcer_with(None);
        let t = Map::new();
        assert!(e
            .enforce("join:create", &t, &creds("nova", "service", &[]))
            .allowed());
        assert!(!e
            .enforce("join:create", &t, &creds("nova", "services", &[]))
            .allowed());
        assert!(!e
            .enforce("join:create", &t, &creds("admin", "service", &["admin"]))
            .allowed());
        assert!(e.check_rule_name("context_is_admin", &creds("x", "y", &["Admin"])));
        assert!(!e.check_rule_name("context_is_admin", &creds("x", "y", &["member"])));
        assert!(!e
            .enforce("no:such", &t, &creds("nova", "service", &[]))
            .allowed());
        assert!(e
            .authorize("no:such", &t, &creds("nova", "service", &[]))
            .is_err());
    }

    #[test]
    fn the_file_overrides_defaults_and_adds_rules() {
        let (_d, e) = enforcer_with(Some(
            "\"service_project\": \"project_name:services\"\n\"default\": \"role:member\"\n",
        ));
        let t = Map::new();
        assert!(e
            .enforce("join:create", &t, &creds("nova", "services", &[]))
            .allowed());
        assert!(e
            .enforce("no:such", &t, &creds("x", "y", &["member"]))
            .allowed());
        assert_eq!(
            e.rules().get("service_project").unwrap().origin,
            RuleOrigin::File(_d.path().join("policy.yaml"), 1)
        );
    }

    #[test]
    fn malformed_files_name_the_rule_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        for (text, want) in [
            (
                "\"a\": \"@\"\n\"join:create\": \"role:admin or\"\n",
                ":2: rule \"join:create\": column 12",
            ),
            ("\"x\": \"name:100%\"\n", "incomplete format"),
            (
                "\"x\": \"1abc:y\"\n",
                "neither a credentials path nor a literal",
            ),
            ("\"x\": \"http://example.org/check\"\n", "remote http/https"),
            ("\"x\":\n", "has no value"),
            ("\"x\": true\n", "must be a rule string"),
            ("\"a\": \"rule:b\"\n\"b\": \"rule:a\"\n", "cycle"),
            ("\"x\": [\n", "not valid YAML"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Enforcer::new(NOVAJOIN_DEFAULTS, PolicyOptions::file_only(&path))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains("policy.yaml"), "{e}");
        }
    }

    #[test]
    fn a_broken_rewrite_keeps_the_last_good_policy() {
        let (dir, e) = enforcer_with(Some("\"join:create\": \"role:member\"\n"));
        let path = dir.path().join("policy.yaml");
        let t = Map::new();
        let member = creds("x", "y", &["member"]);
        assert!(e.enforce("join:create", &t, &member).allowed());
        assert!(matches!(e.reload_if_changed(), ReloadOutcome::Unchanged));
        std::fs::write(
            &path,
            "\"join:create\": \"role:member or\"\n# changed size\n",
        )
        .unwrap();
        match e.reload_if_changed() {
            ReloadOutcome::Rejected(err) => {
                assert!(err.to_string().contains("join:create"), "{err}")
            }
            other => panic!("expected a rejected reload, got {other:?}"),
        }
        assert!(
            e.enforce("join:create", &t, &member).allowed(),
            "old policy must stay in force"
        );
        std::fs::write(&path, "\"join:create\": \"role:reader\"\n").unwrap();
        assert!(matches!(e.reload_if_changed(), ReloadOutcome::Reloaded));
        assert!(!e.enforce("join:create", &t, &member).allowed());
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(e.reload_if_changed(), ReloadOutcome::Reloaded));
        assert!(
            e.enforce("join:create", &t, &creds("nova", "service", &[]))
                .allowed(),
            "defaults again"
        );
    }

    #[test]
    fn policy_dirs_override_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.json"),
            "{\"join:create\": \"role:a\"}",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("policy.d")).unwrap();
        std::fs::write(
            dir.path().join("policy.d/10.yaml"),
            "\"join:create\": \"role:b\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("policy.d/.hidden"),
            "\"join:create\": \"role:c\"\n",
        )
        .unwrap();
        let opts = PolicyOptions {
            policy_file: "policy.json".into(),
            policy_dirs: vec!["policy.d".into()],
            default_rule: "default".into(),
            search_dirs: vec![dir.path().to_path_buf()],
        };
        let e = Enforcer::new(NOVAJOIN_DEFAULTS, opts).unwrap();
        let t = Map::new();
        assert!(e
            .enforce("join:create", &t, &creds("x", "y", &["b"]))
            .allowed());
        assert!(!e
            .enforce("join:create", &t, &creds("x", "y", &["a"]))
            .allowed());
        assert!(!e
            .enforce("join:create", &t, &creds("x", "y", &["c"]))
            .allowed());
    }

    #[test]
    fn join_rules_take_novas_project_scoped_token_only() {
        let (_d, e) = enforcer_with(None);
        let t = Map::new();
        let mut project = creds("nova", "service", &["service"]);
        project.insert("project_id".into(), json!("p-service"));
        project.insert("domain_id".into(), Value::Null);
        project.insert("system_scope".into(), Value::Null);
        assert!(e.enforce("join:create", &t, &project).allowed());
        let mut system = project.clone();
        system.insert("system_scope".into(), json!("all"));
        assert!(!e.enforce("join:create", &t, &system).allowed());
        let mut domain = project.clone();
        domain.insert("domain_id".into(), json!("default"));
        assert!(!e.enforce("join:create", &t, &domain).allowed());
        // The rule text alone would allow them: the scope decides.
        let (_d, e) = enforcer_with(Some("\"join:create\": \"@\"\n"));
        assert!(e.enforce("join:create", &t, &project).allowed());
        assert!(!e.enforce("join:create", &t, &system).allowed());
        assert!(!e
            .enforce(crate::policy::SERVICE_ON_OTHER_HOST, &t, &domain)
            .allowed());
        // Rules without scope types (context_is_admin) take any scope.
        let mut admin = system.clone();
        admin.insert("roles".into(), json!(["admin"]));
        assert!(e.check_rule_name("context_is_admin", &admin));
    }

    #[test]
    fn scope_types_are_enforced() {
        const D: &[RuleDefault] = &[RuleDefault {
            name: "s",
            check_str: "@",
            description: "",
            operations: &[],
            scope_types: &["system"],
        }];
        let dir = tempfile::tempdir().unwrap();
        let e = Enforcer::new(D, PolicyOptions::file_only(&dir.path().join("none"))).unwrap();
        let t = Map::new();
        assert!(!e
            .enforce(
                "s",
                &t,
                &json!({"project_id": "p"}).as_object().unwrap().clone()
            )
            .allowed());
        assert!(e
            .enforce(
                "s",
                &t,
                &json!({"system_scope": "all"}).as_object().unwrap().clone()
            )
            .allowed());
    }
}
