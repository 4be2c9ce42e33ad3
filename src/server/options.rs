//! The `[DEFAULT]` options of `novajoin server`: where it listens and
//! which pipeline it runs.

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// `join_listen`: address the vendordata service listens on.
pub const JOIN_LISTEN: O = O::new(
    "DEFAULT",
    "join_listen",
    K::Str,
    Some("0.0.0.0"),
    "IP address (or unix:/path/to/socket) the vendordata service listens on.",
);
/// `join_listen_port`.
pub const JOIN_LISTEN_PORT: O = O::new(
    "DEFAULT",
    "join_listen_port",
    K::Port,
    Some("9090"),
    "TCP port the vendordata service listens on.",
);
/// `auth_strategy`.
pub const AUTH_STRATEGY: O = O::new(
    "DEFAULT",
    "auth_strategy",
    K::Choice(&["keystone", "noauth"]),
    Some("keystone"),
    "keystone: validate tokens (production). noauth: trust every caller (development only).",
);
/// `api_paste_config`.
pub const API_PASTE_CONFIG: O = O::new(
    "DEFAULT",
    "api_paste_config",
    K::Str,
    Some("/etc/novajoin/pipeline.toml"),
    "The pipeline file (pipeline.toml). A value naming the old join-api-paste.ini is replaced by \
     pipeline.toml in the same directory, with a warning.",
);

/// The `[DEFAULT]` options of the server.
pub const SERVER_OPTIONS: OptionGroup = &[
    JOIN_LISTEN,
    JOIN_LISTEN_PORT,
    AUTH_STRATEGY,
    API_PASTE_CONFIG,
];
