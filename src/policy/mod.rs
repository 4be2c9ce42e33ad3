//! Policy: the oslo.policy rule language, novajoin's default rules, the
//! enforcer behind the `policy` filter, and `novajoin policy-check`,
//! `policy-sample`, `policy-validate` and `policy-list-redundant`.
//!
//! # The language
//!
//! A rule is text such as `user_name:nova and (role:admin or not
//! project_id:%(project_id)s)`, or the legacy list-of-lists (outer list OR,
//! inner lists AND, each element one check). Precedence from tightest:
//! parentheses, `not`, `and`, `or`; operators are case-insensitive. Checks:
//!
//! * `@` allows, `!` denies, the empty rule allows;
//! * `rule:NAME` evaluates another rule (an undefined name falls back to the
//!   default rule, `[oslo_policy] policy_default_rule`, if it exists);
//! * `role:NAME` holds when the credentials' `roles` contain NAME, compared
//!   case-insensitively;
//! * `kind:match` (generic): if `kind` is a Python literal (`True`, `5`,
//!   `'x'`) its `str()` is compared with the match; otherwise `kind` is a
//!   dotted path into the credentials, any list on the way matching if one
//!   element matches, and the value's Python `str()` is compared with the
//!   match, case-sensitively;
//! * in `role:` and generic matches, `%(key)s` is replaced by `str()` of the
//!   target's top-level `key`; a missing key denies.
//!
//! The parser reproduces oslo.policy's greedy shift-reduce parser, values
//! render as CPython renders them, and a check kind is classified with a
//! recogniser of Python's expression syntax, so `novajoin policy-check`
//! prints what `oslopolicy-checker` prints (a differential test runs both).
//!
//! # Departures from oslo.policy, on purpose
//!
//! * Where oslo.policy raises during a request (a stray `%`, a kind that is
//!   not valid Python, a path through a string), the service denies and logs
//!   the error instead of answering 500; such rules are refused at load.
//! * Loading is strict (see [`enforcer`]): rules oslo.policy silently turns
//!   into a deny, empty values it turns into allow, cycles and remote
//!   `http:`/`https:` checks stop the service at start-up with the file,
//!   line, rule and column, and a broken file written while running is
//!   logged and ignored (the last good policy stays in force).
//! * Remote `http:`/`https:` checks are not supported; `policy-check`
//!   reports them on an `exception:` line as oslopolicy-checker does when it
//!   has no `--enforcer_config`.
//!
//! # Using it from another filter
//!
//! [`Enforcer::shared`] gives the one enforcer for a loaded configuration;
//! [`Enforcer::check_rule_name`] answers a yes/no question about a rule for
//! given credentials. The keystonecontext filter computes `is_admin` with:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn f(config: Arc<novajoin::config::ConfigFiles>, creds: serde_json::Map<String, serde_json::Value>) {
//! let enforcer = novajoin::policy::Enforcer::shared(&config).expect("policy loads");
//! let is_admin = enforcer.check_rule_name("context_is_admin", &creds);
//! # }
//! ```
//!
//! [`context::admin_check`] wraps that as the keystonecontext filter's
//! `AdminCheck` (a closure over the request context).

pub mod checker;
pub mod configured;
pub mod context;
pub mod defaults;
pub mod enforcer;
pub mod error;
pub mod eval;
pub mod file;
pub mod memo;
pub mod parser;
pub mod pyformat;
pub mod pyliteral;
pub mod pyvalue;
pub mod redundant;
pub mod validate;

pub use defaults::{RuleDefault, NOVAJOIN_DEFAULTS, SERVICE_ON_OTHER_HOST};
pub use enforcer::{Decision, Enforcer, PolicyOptions, ReloadOutcome, OSLO_POLICY_OPTIONS};
pub use error::{EvalError, PolicyError};
pub use parser::{parse_text, Check};
