//! Errors of rule evaluation and policy loading.

use std::fmt;
use std::path::PathBuf;

/// The kind of failure where oslo.policy would raise a Python exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A missing key where oslo.policy lets `KeyError` escape (only `https:`
    /// URL substitution); a `rule:` check above it turns it into a deny.
    KeyError,
    /// A malformed `%` format in a match (`name:100%`).
    ValueError,
    /// A value of the wrong type: `%(x)d` on text, a path through a string.
    TypeError,
    /// A check kind that is not valid Python (`1abc:x`).
    SyntaxError,
    /// A role that is not text, or a remote check without configuration.
    AttributeError,
    /// A rule that refers back to itself while being evaluated.
    RecursionError,
    /// A number out of range in a format.
    OverflowError,
    /// A format width or precision too large to build (Python would run out
    /// of memory trying).
    MemoryError,
}

/// Why a rule could not be evaluated. Where oslo.policy raises, novajoin's
/// enforcer denies and logs this; `policy-check` prints it like the
/// original tool prints the exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong, in Python's terms.
    pub kind: EvalErrorKind,
    /// The message, on one line.
    pub message: String,
}

impl EvalError {
    /// An error of `kind` with `message`.
    pub fn new(kind: EvalErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// A policy file or rule that cannot be used. Every variant names the file,
/// and where it can, the rule and the line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid YAML (or JSON).
    #[error("{}:{line}:{column}: policy file is not valid YAML/JSON: {problem}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        problem: String,
    },
    /// The file parsed but its shape is wrong (not a mapping, a value that
    /// is neither a rule string nor a list).
    #[error("{}:{line}: {problem}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// One rule is malformed.
    #[error("{}:{line}: rule {name:?}: {problem}", path.display())]
    Rule {
        /// The file.
        path: PathBuf,
        /// 1-based line of the rule.
        line: usize,
        /// The rule's name.
        name: String,
        /// What is wrong, with the column inside the rule text.
        problem: String,
    },
    /// Rules refer to each other in a circle.
    #[error("{}: rules {names:?} refer to each other in a cycle; break the cycle", path.display())]
    Cycle {
        /// The file.
        path: PathBuf,
        /// The rules on the cycle.
        names: Vec<String>,
    },
    /// A default registered in code is malformed (a bug in novajoin).
    #[error("registered default rule {name:?} is malformed: {problem}")]
    Default {
        /// The rule's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}
