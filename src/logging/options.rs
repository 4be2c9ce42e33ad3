//! The `[DEFAULT]` logging options (oslo.log's names; most are kept only
//! so that old files load).

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// `debug`.
pub const DEBUG: O = O::new(
    "DEFAULT",
    "debug",
    K::Bool,
    Some("false"),
    "Log at debug level.",
);
/// `log_file`.
pub const LOG_FILE: O = O::new(
    "DEFAULT",
    "log_file",
    K::Str,
    None,
    "Ignored: novajoin logs to stderr (journald); kept so old files load.",
);
/// `log_dir`.
pub const LOG_DIR: O = O::new(
    "DEFAULT",
    "log_dir",
    K::Str,
    None,
    "Ignored: novajoin logs to stderr (journald); kept so old files load.",
);
/// `verbose`.
pub const VERBOSE: O = O::new(
    "DEFAULT",
    "verbose",
    K::Bool,
    Some("false"),
    "Ignored (removed from oslo.log); kept so old files load.",
);
/// `log_format`.
pub const LOG_FORMAT: O = O::new(
    "DEFAULT",
    "log_format_style",
    K::Choice(&["auto", "human", "json"]),
    Some("auto"),
    "Log line format on stderr: human, json, or auto (human on a terminal, json otherwise).",
);

/// The `[DEFAULT]` logging options.
pub const LOGGING_OPTIONS: OptionGroup = &[DEBUG, LOG_FILE, LOG_DIR, VERBOSE, LOG_FORMAT];
