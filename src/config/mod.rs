//! Configuration: join.conf (oslo.config INI) and pipeline.toml.
//!
//! join.conf keeps the original novajoin option names and defaults so an
//! existing deployment's file works unchanged. Each part of the service
//! declares the options it reads (see [`schema`]); this module declares the
//! `[DEFAULT]`, `[service_credentials]`, `[ipa]` and oslo.middleware groups.

pub mod files;
pub mod pipeline_file;
pub mod schema;

use std::path::PathBuf;

pub use files::{ConfigFiles, ConfigWarning, Located};
use schema::{OptionKind as K, OptionSpec as O};

/// Why the configuration cannot be used. Every variant names where to look.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not valid INI.
    #[error("{}:{line}: {problem}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A known option has a value of the wrong type or range.
    #[error("{}:{line}: [{group}] {option}: {problem}", file.display())]
    BadValue {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The section.
        group: String,
        /// The option.
        option: String,
        /// What is wrong (never echoes a secret's value).
        problem: String,
    },
    /// A needed option is not set anywhere.
    #[error("[{group}] {option} is not set; {why}")]
    Missing {
        /// The section.
        group: String,
        /// The option.
        option: String,
        /// What needs it.
        why: String,
    },
    /// The pipeline file is wrong.
    #[error(transparent)]
    Pipeline(#[from] pipeline_file::PipelineFileError),
}

// ---- [DEFAULT]: novajoin's own options (names and defaults of 1.1.1) ----

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
/// `keytab`.
pub const KEYTAB: O = O::new(
    "DEFAULT",
    "keytab",
    K::Str,
    Some("/etc/novajoin/krb5.keytab"),
    "Kerberos keytab used to authenticate to IPA.",
);
/// `domain`.
pub const DOMAIN: O = O::new(
    "DEFAULT",
    "domain",
    K::Str,
    None,
    "DNS domain of enrolled hosts. Defaults to IPA's domain from /etc/ipa/default.conf.",
);
/// `connect_retries`.
pub const CONNECT_RETRIES: O = O::new(
    "DEFAULT",
    "connect_retries",
    K::Int { min: 0, max: 100 },
    Some("2"),
    "How many times to retry connecting to IPA (attempts = retries + 1), with backoff.",
);
/// `project_subdomain`.
pub const PROJECT_SUBDOMAIN: O = O::new(
    "DEFAULT",
    "project_subdomain",
    K::Bool,
    Some("false"),
    "Put the project name in the FQDN: <host>.<project>.<domain>.",
);
/// `normalize_project`.
pub const NORMALIZE_PROJECT: O = O::new(
    "DEFAULT",
    "normalize_project",
    K::Bool,
    Some("true"),
    "With project_subdomain, replace every run of characters outside [0-9A-Za-z] in the project \
     name by '-' and strip leading and trailing '-' (the documented rule; 1.1.1 never applied it).",
);
/// `glance_api_servers`.
pub const GLANCE_API_SERVERS: O = O::new(
    "DEFAULT",
    "glance_api_servers",
    K::List,
    None,
    "Glance API URLs to use instead of the catalog's image endpoint.",
);
/// `glance_num_retries`.
pub const GLANCE_NUM_RETRIES: O = O::new(
    "DEFAULT",
    "glance_num_retries",
    K::Int { min: 0, max: 100 },
    Some("0"),
    "Retries of a Glance call that failed to connect or got 503, 1 s apart.",
);
/// `auth_strategy`.
pub const AUTH_STRATEGY: O = O::new(
    "DEFAULT",
    "auth_strategy",
    K::Choice(&["keystone", "noauth"]),
    Some("keystone"),
    "keystone: validate tokens (production). noauth: trust every caller (development only).",
);
/// `debug`.
pub const DEBUG: O = O::new(
    "DEFAULT",
    "debug",
    K::Bool,
    Some("false"),
    "Log at debug level.",
);
/// `url`.
pub const URL: O = O::new("DEFAULT", "url", K::Str, None,
    "IPA JSON-RPC URL, e.g. https://ipa.example.com/ipa/json. Defaults to the server named in /etc/ipa/default.conf.");
/// `api_paste_config`.
pub const API_PASTE_CONFIG: O = O::new(
    "DEFAULT",
    "api_paste_config",
    K::Str,
    Some("/etc/novajoin/pipeline.toml"),
    "The pipeline file (pipeline.toml). A value naming the old join-api-paste.ini is replaced by \
     pipeline.toml in the same directory, with a warning.",
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
/// `notification_format`.
pub const NOTIFICATION_FORMAT: O = O::new(
    "DEFAULT",
    "notification_format",
    K::Choice(&["unversioned", "versioned"]),
    Some("unversioned"),
    "Which nova notification format the listener consumes.",
);
/// `notifications_topic`.
pub const NOTIFICATIONS_TOPIC: O = O::new(
    "DEFAULT",
    "notifications_topic",
    K::Str,
    Some("novajoin_notifications"),
    "Topic (routing key prefix) the listener consumes.",
);
/// `transport_url` in [DEFAULT].
pub const TRANSPORT_URL: O = O::new(
    "DEFAULT",
    "transport_url",
    K::Secret,
    None,
    "oslo.messaging transport URL: rabbit://user:pass@host:port[,user:pass@host2:port]/vhost",
);
/// `ipa_otp_ttl`: new option.
pub const OTP_REUSE_SECONDS: O = O::new(
    "DEFAULT",
    "otp_reuse_seconds",
    K::Int { min: 0, max: 86400 },
    Some("30"),
    "Within this many seconds, a repeated request for the same host gets the same OTP \
     without a new IPA call (the original's 30 s window).",
);

/// `otp_lifetime`: new option.
pub const OTP_LIFETIME: O = O::new(
    "DEFAULT",
    "otp_lifetime",
    K::Int {
        min: 0,
        max: 2_592_000,
    },
    Some("3600"),
    "Seconds an enrollment OTP stays valid if no guest enrolls with it. After that the listener \
     (novajoin notify) replaces it in IPA by one nobody knows, the response cache stops serving \
     it, and the instance's next vendordata request gets a new one. The issue time is kept in the \
     host's binding in IPA, so every replica agrees. 0 keeps OTPs until they are used, as the \
     Python novajoin did.",
);

/// `region_name`: new option.
pub const REGION_NAME: O = O::new(
    "DEFAULT",
    "region_name",
    K::Str,
    None,
    "Region recorded, with the instance uuid and project id, in the binding of every IPA host \
     this service creates; hosts bound in another region are never changed. Defaults to \
     [service_credentials] region_name. Letters, digits, '-' and '_' only.",
);

/// The `[DEFAULT]` group.
pub const DEFAULT_OPTIONS: schema::OptionGroup = &[
    JOIN_LISTEN,
    JOIN_LISTEN_PORT,
    KEYTAB,
    DOMAIN,
    CONNECT_RETRIES,
    PROJECT_SUBDOMAIN,
    NORMALIZE_PROJECT,
    GLANCE_API_SERVERS,
    GLANCE_NUM_RETRIES,
    AUTH_STRATEGY,
    DEBUG,
    URL,
    API_PASTE_CONFIG,
    LOG_FILE,
    LOG_DIR,
    VERBOSE,
    LOG_FORMAT,
    NOTIFICATION_FORMAT,
    NOTIFICATIONS_TOPIC,
    TRANSPORT_URL,
    OTP_REUSE_SECONDS,
    OTP_LIFETIME,
    REGION_NAME,
];

// ---- [service_credentials]: keystoneauth password plugin + session ----

/// `[service_credentials] auth_type`.
pub const SC_AUTH_TYPE: O = O::new(
    "service_credentials",
    "auth_type",
    K::Choice(&["password", "v3password"]),
    None,
    "keystoneauth plugin; only password (v3) is supported.",
)
.with_deprecated(&["auth_plugin"]);
/// `auth_url`.
pub const SC_AUTH_URL: O = O::new(
    "service_credentials",
    "auth_url",
    K::Str,
    None,
    "Keystone URL, e.g. http://keystone:5000/v3.",
);
/// `username`.
pub const SC_USERNAME: O = O::new(
    "service_credentials",
    "username",
    K::Str,
    None,
    "Service user name.",
);
/// `user_id`.
pub const SC_USER_ID: O = O::new(
    "service_credentials",
    "user_id",
    K::Str,
    None,
    "Service user id (instead of username).",
);
/// `password`.
pub const SC_PASSWORD: O = O::new(
    "service_credentials",
    "password",
    K::Secret,
    None,
    "Service user password.",
);
/// `project_name`.
pub const SC_PROJECT_NAME: O = O::new(
    "service_credentials",
    "project_name",
    K::Str,
    None,
    "Project to scope to.",
)
.with_deprecated(&["tenant_name"]);
/// `project_id`.
pub const SC_PROJECT_ID: O = O::new(
    "service_credentials",
    "project_id",
    K::Str,
    None,
    "Project id to scope to.",
)
.with_deprecated(&["tenant_id"]);
/// `user_domain_name`.
pub const SC_USER_DOMAIN_NAME: O = O::new(
    "service_credentials",
    "user_domain_name",
    K::Str,
    None,
    "Domain of the user.",
);
/// `user_domain_id`.
pub const SC_USER_DOMAIN_ID: O = O::new(
    "service_credentials",
    "user_domain_id",
    K::Str,
    None,
    "Domain id of the user.",
);
/// `project_domain_name`.
pub const SC_PROJECT_DOMAIN_NAME: O = O::new(
    "service_credentials",
    "project_domain_name",
    K::Str,
    None,
    "Domain of the project.",
);
/// `project_domain_id`.
pub const SC_PROJECT_DOMAIN_ID: O = O::new(
    "service_credentials",
    "project_domain_id",
    K::Str,
    None,
    "Domain id of the project.",
);
/// `interface`.
pub const SC_INTERFACE: O = O::new(
    "service_credentials",
    "interface",
    K::Choice(&["public", "internal", "admin"]),
    Some("public"),
    "Catalog interface for glance, nova and neutron endpoints.",
);
/// `region_name`.
pub const SC_REGION_NAME: O = O::new(
    "service_credentials",
    "region_name",
    K::Str,
    None,
    "Catalog region.",
);
/// `cafile`.
pub const SC_CAFILE: O = O::new(
    "service_credentials",
    "cafile",
    K::Str,
    None,
    "CA bundle for keystone and catalog endpoints.",
);
/// `certfile`.
pub const SC_CERTFILE: O = O::new(
    "service_credentials",
    "certfile",
    K::Str,
    None,
    "Client certificate (PEM).",
);
/// `keyfile`.
pub const SC_KEYFILE: O = O::new(
    "service_credentials",
    "keyfile",
    K::Str,
    None,
    "Client key (PEM).",
);
/// `insecure`.
pub const SC_INSECURE: O = O::new(
    "service_credentials",
    "insecure",
    K::Bool,
    Some("false"),
    "Skip TLS verification (never in production).",
);
/// `timeout`.
pub const SC_TIMEOUT: O = O::new(
    "service_credentials",
    "timeout",
    K::Float,
    Some("30"),
    "HTTP timeout in seconds.",
);

/// The `[service_credentials]` group.
pub const SERVICE_CREDENTIALS_OPTIONS: schema::OptionGroup = &[
    SC_AUTH_TYPE,
    SC_AUTH_URL,
    SC_USERNAME,
    SC_USER_ID,
    SC_PASSWORD,
    SC_PROJECT_NAME,
    SC_PROJECT_ID,
    SC_USER_DOMAIN_NAME,
    SC_USER_DOMAIN_ID,
    SC_PROJECT_DOMAIN_NAME,
    SC_PROJECT_DOMAIN_ID,
    SC_INTERFACE,
    SC_REGION_NAME,
    SC_CAFILE,
    SC_CERTFILE,
    SC_KEYFILE,
    SC_INSECURE,
    SC_TIMEOUT,
];

// ---- [ipa]: new options for reaching IPA without ipalib ----

/// `[ipa] auth_method`.
pub const IPA_AUTH_METHOD: O = O::new(
    "ipa",
    "auth_method",
    K::Choice(&["kerberos", "password"]),
    Some("kerberos"),
    "How to log in to IPA: kerberos (the keytab in [DEFAULT] keytab) or password.",
);
/// `[ipa] principal`.
pub const IPA_PRINCIPAL: O = O::new(
    "ipa",
    "principal",
    K::Str,
    None,
    "Kerberos principal; defaults to nova/<host>@<realm> from /etc/ipa/default.conf.",
);
/// `[ipa] username`.
pub const IPA_USERNAME: O = O::new(
    "ipa",
    "username",
    K::Str,
    None,
    "IPA user for auth_method = password.",
);
/// `[ipa] password`.
pub const IPA_PASSWORD: O = O::new(
    "ipa",
    "password",
    K::Secret,
    None,
    "IPA password for auth_method = password.",
);
/// `[ipa] ca_file`.
pub const IPA_CA_FILE: O = O::new(
    "ipa",
    "ca_file",
    K::Str,
    Some("/etc/ipa/ca.crt"),
    "CA bundle that signs the IPA server's certificate.",
);
/// `[ipa] realm`.
pub const IPA_REALM: O = O::new(
    "ipa",
    "realm",
    K::Str,
    None,
    "Kerberos realm; defaults to [global] realm in /etc/ipa/default.conf.",
);
/// `[ipa] server`.
pub const IPA_SERVER: O = O::new(
    "ipa",
    "server",
    K::Str,
    None,
    "IPA server host; defaults to [global] server in /etc/ipa/default.conf.",
);
/// `[ipa] ipa_conf`.
pub const IPA_DEFAULT_CONF: O = O::new(
    "ipa",
    "default_conf",
    K::Str,
    Some("/etc/ipa/default.conf"),
    "The IPA client configuration to read host, realm, domain and server from.",
);
/// `[ipa] api_version`.
pub const IPA_API_VERSION: O = O::new(
    "ipa",
    "api_version",
    K::Str,
    Some("2.146"),
    "The API version sent with every call (2.146 = IPA 4.2, what novajoin always sent).",
);
/// `[ipa] timeout`.
pub const IPA_TIMEOUT: O = O::new(
    "ipa",
    "timeout",
    K::Float,
    Some("20"),
    "Seconds one IPA call may take; keep below nova's vendordata_dynamic_read_timeout.",
);
/// `[ipa] detached_call_timeout`.
pub const IPA_DETACHED_CALL_TIMEOUT: O = O::new(
    "ipa",
    "detached_call_timeout",
    K::Float,
    Some("300"),
    "Seconds an enrollment call to IPA may go on after the request stopped waiting for it \
     ([ipa] timeout); later enrollments of the same host wait for it, so that its late \
     answer cannot replace the OTP they hand out. At least [ipa] timeout.",
);
/// `[ipa] max_concurrent_calls`.
pub const IPA_MAX_CONCURRENT: O = O::new(
    "ipa",
    "max_concurrent_calls",
    K::Int { min: 1, max: 10000 },
    Some("16"),
    "Cap on IPA calls in flight from this process, to protect IPA from a boot storm.",
);

/// The `[ipa]` group.
pub const IPA_OPTIONS: schema::OptionGroup = &[
    IPA_AUTH_METHOD,
    IPA_PRINCIPAL,
    IPA_USERNAME,
    IPA_PASSWORD,
    IPA_CA_FILE,
    IPA_REALM,
    IPA_SERVER,
    IPA_DEFAULT_CONF,
    IPA_API_VERSION,
    IPA_TIMEOUT,
    IPA_DETACHED_CALL_TIMEOUT,
    IPA_MAX_CONCURRENT,
];

// ---- oslo.middleware groups ----

/// `[oslo_middleware] max_request_body_size`.
pub const MAX_REQUEST_BODY_SIZE: O = O::new(
    "oslo_middleware",
    "max_request_body_size",
    K::Int {
        min: 1,
        max: 1 << 30,
    },
    Some("114688"),
    "Largest request body accepted, in bytes (413 above).",
)
.with_deprecated(&["osapi_max_request_body_size"]);
/// `[oslo_middleware] enable_proxy_headers_parsing`.
pub const ENABLE_PROXY_HEADERS_PARSING: O = O::new(
    "oslo_middleware",
    "enable_proxy_headers_parsing",
    K::Bool,
    Some("false"),
    "Trust Forwarded / X-Forwarded-* headers (only behind a proxy that sets them).",
);

/// The `[oslo_middleware]` group.
pub const MIDDLEWARE_OPTIONS: schema::OptionGroup =
    &[MAX_REQUEST_BODY_SIZE, ENABLE_PROXY_HEADERS_PARSING];

/// `[cors] allowed_origin`.
pub const CORS_ALLOWED_ORIGIN: O = O::new(
    "cors",
    "allowed_origin",
    K::List,
    None,
    "Origins allowed to make cross-site requests (scheme://host[:port], or *).",
);
/// `[cors] allow_credentials`.
pub const CORS_ALLOW_CREDENTIALS: O = O::new(
    "cors",
    "allow_credentials",
    K::Bool,
    Some("true"),
    "Send Access-Control-Allow-Credentials.",
);
/// `[cors] expose_headers`.
pub const CORS_EXPOSE_HEADERS: O = O::new(
    "cors",
    "expose_headers",
    K::List,
    Some(""),
    "Headers exposed to the browser.",
);
/// `[cors] max_age`.
pub const CORS_MAX_AGE: O = O::new(
    "cors",
    "max_age",
    K::Int {
        min: 0,
        max: 1 << 31,
    },
    Some("3600"),
    "Preflight cache lifetime, seconds.",
);
/// `[cors] allow_methods`.
pub const CORS_ALLOW_METHODS: O = O::new(
    "cors",
    "allow_methods",
    K::List,
    Some("OPTIONS,GET,HEAD,POST,PUT,DELETE,TRACE,PATCH"),
    "Methods allowed in preflight.",
);
/// `[cors] allow_headers`.
pub const CORS_ALLOW_HEADERS: O = O::new(
    "cors",
    "allow_headers",
    K::List,
    Some(""),
    "Non-simple headers allowed in preflight.",
);

/// The `[cors]` group.
pub const CORS_OPTIONS: schema::OptionGroup = &[
    CORS_ALLOWED_ORIGIN,
    CORS_ALLOW_CREDENTIALS,
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE,
    CORS_ALLOW_METHODS,
    CORS_ALLOW_HEADERS,
];

/// `[healthcheck] backends`.
pub const HC_BACKENDS: O = O::new(
    "healthcheck",
    "backends",
    K::List,
    Some(""),
    "Health check backends: disable_by_file, enable_by_files.",
);
/// `[healthcheck] detailed`.
pub const HC_DETAILED: O = O::new(
    "healthcheck",
    "detailed",
    K::Bool,
    Some("false"),
    "Show details (dependencies' state) in the health check.",
);
/// `[healthcheck] disable_by_file_path`.
pub const HC_DISABLE_BY_FILE_PATH: O = O::new(
    "healthcheck",
    "disable_by_file_path",
    K::Str,
    None,
    "When this file exists the service reports 503.",
);
/// `[healthcheck] enable_by_file_paths`.
pub const HC_ENABLE_BY_FILE_PATHS: O = O::new(
    "healthcheck",
    "enable_by_file_paths",
    K::List,
    Some(""),
    "The service reports 503 unless all these files exist.",
);

/// The `[healthcheck]` group.
pub const HEALTHCHECK_OPTIONS: schema::OptionGroup = &[
    HC_BACKENDS,
    HC_DETAILED,
    HC_DISABLE_BY_FILE_PATH,
    HC_ENABLE_BY_FILE_PATHS,
];
