//! `[keystone_authtoken]`: keystonemiddleware's option names and defaults,
//! plus the few options novajoin adds (Redis shared cache, JWS keys).
//!
//! Options keystonemiddleware has but novajoin does not use (memcache pool
//! tuning, memcache TLS/SASL) are still declared, so an existing join.conf
//! loads without "unknown option" warnings; their help says they are ignored.

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

const G: &str = "keystone_authtoken";

/// The keystoneauth plugins novajoin loads for its own credentials.
const AUTH_TYPES: &[&str] = &["password", "v3password", "v3applicationcredential"];

/// `www_authenticate_uri` (old name `auth_uri`, still common in novajoin-era files).
pub const KA_WWW_AUTHENTICATE_URI: O = O::new(
    G,
    "www_authenticate_uri",
    K::Str,
    None,
    "Public keystone URL put in 'WWW-Authenticate: Keystone uri=\"...\"' on 401 answers. \
     Defaults to auth_url (with a warning at start-up).",
)
.with_deprecated(&["auth_uri"]);
/// `auth_type`.
pub const KA_AUTH_TYPE: O = O::new(
    G,
    "auth_type",
    K::Choice(AUTH_TYPES),
    None,
    "Auth plugin for the service's own credentials: password (v3password) with username and \
     password, or v3applicationcredential with application_credential_id (or _name with the \
     user) and application_credential_secret.",
)
.with_deprecated(&["auth_plugin"]);
/// `auth_section`.
pub const KA_AUTH_SECTION: O = O::new(
    G,
    "auth_section",
    K::Str,
    None,
    "Read the auth plugin options (auth_type, auth_url, username, ...) from this section instead.",
);
/// `auth_version`.
pub const KA_AUTH_VERSION: O = O::new(
    G,
    "auth_version",
    K::Str,
    None,
    "Identity API version; only v3 exists, so any value means v3.",
);
/// `auth_url`.
pub const KA_AUTH_URL: O = O::new(
    G,
    "auth_url",
    K::Str,
    None,
    "Keystone URL used to obtain the service token, e.g. http://keystone:5000/v3.",
);
/// `username`.
pub const KA_USERNAME: O =
    O::new(G, "username", K::Str, None, "Service user name.").with_deprecated(&["user_name"]);
/// `user_id`.
pub const KA_USER_ID: O = O::new(
    G,
    "user_id",
    K::Str,
    None,
    "Service user id (instead of username).",
);
/// `password`.
pub const KA_PASSWORD: O = O::new(G, "password", K::Secret, None, "Service user password.");
/// `application_credential_id`.
pub const KA_APPLICATION_CREDENTIAL_ID: O = O::new(
    G,
    "application_credential_id",
    K::Str,
    None,
    "With auth_type = v3applicationcredential: the application credential's id.",
);
/// `application_credential_name`.
pub const KA_APPLICATION_CREDENTIAL_NAME: O = O::new(
    G,
    "application_credential_name",
    K::Str,
    None,
    "With auth_type = v3applicationcredential: the credential's name, instead of its id; needs \
     its user (username with user_domain_name, or user_id).",
);
/// `application_credential_secret`.
pub const KA_APPLICATION_CREDENTIAL_SECRET: O = O::new(
    G,
    "application_credential_secret",
    K::Secret,
    None,
    "With auth_type = v3applicationcredential: the credential's secret.",
);
/// `user_domain_name`.
pub const KA_USER_DOMAIN_NAME: O = O::new(
    G,
    "user_domain_name",
    K::Str,
    None,
    "Domain of the service user.",
);
/// `user_domain_id`.
pub const KA_USER_DOMAIN_ID: O = O::new(
    G,
    "user_domain_id",
    K::Str,
    None,
    "Domain id of the service user.",
);
/// `project_name`.
pub const KA_PROJECT_NAME: O = O::new(
    G,
    "project_name",
    K::Str,
    None,
    "Project to scope the service token to.",
)
.with_deprecated(&["tenant_name"]);
/// `project_id`.
pub const KA_PROJECT_ID: O = O::new(G, "project_id", K::Str, None, "Project id to scope to.")
    .with_deprecated(&["tenant_id"]);
/// `project_domain_name`.
pub const KA_PROJECT_DOMAIN_NAME: O = O::new(
    G,
    "project_domain_name",
    K::Str,
    None,
    "Domain of the project.",
);
/// `project_domain_id`.
pub const KA_PROJECT_DOMAIN_ID: O = O::new(
    G,
    "project_domain_id",
    K::Str,
    None,
    "Domain id of the project.",
);
/// `domain_name`.
pub const KA_DOMAIN_NAME: O = O::new(
    G,
    "domain_name",
    K::Str,
    None,
    "Domain to scope to (domain-scoped service token).",
);
/// `domain_id`.
pub const KA_DOMAIN_ID: O = O::new(G, "domain_id", K::Str, None, "Domain id to scope to.");
/// `system_scope`.
pub const KA_SYSTEM_SCOPE: O = O::new(
    G,
    "system_scope",
    K::Str,
    None,
    "System scope (all) for a system-scoped service token.",
);
/// `trust_id`.
pub const KA_TRUST_ID: O = O::new(G, "trust_id", K::Str, None, "Trust to scope to.");
/// `default_domain_id`.
pub const KA_DEFAULT_DOMAIN_ID: O = O::new(
    G,
    "default_domain_id",
    K::Str,
    None,
    "Domain id used when user/project domain ids are not given.",
);
/// `default_domain_name`.
pub const KA_DEFAULT_DOMAIN_NAME: O = O::new(
    G,
    "default_domain_name",
    K::Str,
    None,
    "Domain name used when user/project domains are not given.",
);
/// `interface`.
pub const KA_INTERFACE: O = O::new(
    G,
    "interface",
    K::Choice(&["public", "internal", "admin"]),
    Some("internal"),
    "Interface of the identity endpoint (from the service token's catalog) used for validation.",
);
/// `region_name`.
pub const KA_REGION_NAME: O = O::new(
    G,
    "region_name",
    K::Str,
    None,
    "Region of the identity endpoint used for validation.",
);
/// `delay_auth_decision`.
pub const KA_DELAY_AUTH_DECISION: O = O::new(G, "delay_auth_decision", K::Bool, Some("false"),
    "Let requests with a missing or invalid token through, marked Invalid, for an inner filter to decide.");
/// `http_connect_timeout`.
pub const KA_HTTP_CONNECT_TIMEOUT: O = O::new(G, "http_connect_timeout", K::Int { min: 1, max: 3600 }, None,
    "Seconds a call to keystone may take. Unset: 30 s (keystonemiddleware waits forever; nova gives up long before).");
/// `http_request_max_retries`.
pub const KA_HTTP_REQUEST_MAX_RETRIES: O = O::new(
    G,
    "http_request_max_retries",
    K::Int { min: 0, max: 100 },
    Some("3"),
    "Retries of a validation call that could not connect, with back-off from 0.5 s.",
);
/// `certfile`.
pub const KA_CERTFILE: O = O::new(
    G,
    "certfile",
    K::Str,
    None,
    "Client certificate (PEM) for keystone.",
);
/// `keyfile`.
pub const KA_KEYFILE: O = O::new(G, "keyfile", K::Str, None, "Client key (PEM) for keystone.");
/// `cafile`.
pub const KA_CAFILE: O = O::new(
    G,
    "cafile",
    K::Str,
    None,
    "CA bundle that signs keystone's certificate.",
);
/// `insecure`.
pub const KA_INSECURE: O = O::new(
    G,
    "insecure",
    K::Bool,
    Some("false"),
    "Skip TLS verification towards keystone (never in production).",
);
/// `memcached_servers`.
pub const KA_MEMCACHED_SERVERS: O = O::new(G, "memcached_servers", K::List, None,
    "memcached servers (host:port) of the token cache shared by every replica, as keystonemiddleware's; \
     tokens are spread over them by consistent hashing. Used only with memcache_security_strategy MAC or \
     ENCRYPT (otherwise a warning, and each process caches in memory); redis_url, when set, is used instead.")
    .with_deprecated(&["memcache_servers"]);
/// `token_cache_time`.
pub const KA_TOKEN_CACHE_TIME: O = O::new(
    G,
    "token_cache_time",
    K::Int {
        min: -1,
        max: 86400 * 7,
    },
    Some("300"),
    "Seconds a validated token is cached (never past its expiry). -1 disables the cache.",
);
/// `memcache_security_strategy`.
pub const KA_MEMCACHE_SECURITY_STRATEGY: O = O::new(G, "memcache_security_strategy", K::Str, Some("None"),
    "Protection of shared-cache (memcached or Redis) entries: None, MAC (authenticated) or ENCRYPT \
     (authenticated and encrypted), keyed with memcache_secret_key as keystonemiddleware derives it. \
     A shared cache requires MAC or ENCRYPT.");
/// `memcache_secret_key`.
pub const KA_MEMCACHE_SECRET_KEY: O = O::new(G, "memcache_secret_key", K::Secret, None,
    "Secret for memcache_security_strategy. Every replica sharing the token cache needs the same one.");
/// `memcache_pool_dead_retry`.
pub const KA_MEMCACHE_POOL_DEAD_RETRY: O = O::new(
    G,
    "memcache_pool_dead_retry",
    K::Int { min: 0, max: 86400 },
    Some("300"),
    "Seconds a memcached server of memcached_servers that failed is left alone (its tokens are \
     validated with keystone meanwhile) before it is tried again.",
);
/// `memcache_pool_maxsize`.
pub const KA_MEMCACHE_POOL_MAXSIZE: O = O::new(
    G,
    "memcache_pool_maxsize",
    K::Int {
        min: 0,
        max: 100000,
    },
    Some("10"),
    "Ignored (memcache pool option).",
);
/// `memcache_pool_socket_timeout`.
pub const KA_MEMCACHE_POOL_SOCKET_TIMEOUT: O = O::new(
    G,
    "memcache_pool_socket_timeout",
    K::Int { min: 1, max: 3600 },
    Some("3"),
    "Seconds one memcached or Redis command may take before the cache is skipped for that request.",
);
/// `memcache_pool_unused_timeout`.
pub const KA_MEMCACHE_POOL_UNUSED_TIMEOUT: O = O::new(
    G,
    "memcache_pool_unused_timeout",
    K::Int { min: 0, max: 86400 },
    Some("60"),
    "Ignored (memcache pool option).",
);
/// `memcache_pool_conn_get_timeout`.
pub const KA_MEMCACHE_POOL_CONN_GET_TIMEOUT: O = O::new(
    G,
    "memcache_pool_conn_get_timeout",
    K::Int { min: 0, max: 3600 },
    Some("10"),
    "Ignored (memcache pool option).",
);
/// `memcache_use_advanced_pool`.
pub const KA_MEMCACHE_USE_ADVANCED_POOL: O = O::new(
    G,
    "memcache_use_advanced_pool",
    K::Bool,
    Some("true"),
    "Ignored (memcache pool option).",
);
/// `memcache_tls_enabled`.
pub const KA_MEMCACHE_TLS_ENABLED: O = O::new(
    G,
    "memcache_tls_enabled",
    K::Bool,
    Some("false"),
    "memcached over TLS is not supported: when set, memcached_servers is not used (a warning says \
     so); use a rediss:// redis_url for TLS.",
);
/// `memcache_tls_cafile`.
pub const KA_MEMCACHE_TLS_CAFILE: O = O::new(
    G,
    "memcache_tls_cafile",
    K::Str,
    None,
    "Ignored (memcache TLS option).",
);
/// `memcache_tls_certfile`.
pub const KA_MEMCACHE_TLS_CERTFILE: O = O::new(
    G,
    "memcache_tls_certfile",
    K::Str,
    None,
    "Ignored (memcache TLS option).",
);
/// `memcache_tls_keyfile`.
pub const KA_MEMCACHE_TLS_KEYFILE: O = O::new(
    G,
    "memcache_tls_keyfile",
    K::Str,
    None,
    "Ignored (memcache TLS option).",
);
/// `memcache_tls_allowed_ciphers`.
pub const KA_MEMCACHE_TLS_ALLOWED_CIPHERS: O = O::new(
    G,
    "memcache_tls_allowed_ciphers",
    K::Str,
    None,
    "Ignored (memcache TLS option).",
);
/// `memcache_sasl_enabled`.
pub const KA_MEMCACHE_SASL_ENABLED: O = O::new(
    G,
    "memcache_sasl_enabled",
    K::Bool,
    Some("false"),
    "memcached SASL is not supported: when set, memcached_servers is not used (a warning says so).",
);
/// `memcache_username`.
pub const KA_MEMCACHE_USERNAME: O = O::new(
    G,
    "memcache_username",
    K::Str,
    None,
    "Ignored (memcache SASL option).",
);
/// `memcache_password`.
pub const KA_MEMCACHE_PASSWORD: O = O::new(
    G,
    "memcache_password",
    K::Secret,
    None,
    "Ignored (memcache SASL option).",
);
/// `cache`.
pub const KA_CACHE: O = O::new(
    G,
    "cache",
    K::Str,
    None,
    "Ignored (Swift's environ cache hook).",
);
/// `include_service_catalog`.
pub const KA_INCLUDE_SERVICE_CATALOG: O = O::new(
    G,
    "include_service_catalog",
    K::Bool,
    Some("true"),
    "Ask keystone for the token's catalog and pass it on as X-Service-Catalog.",
);
/// `enforce_token_bind`.
pub const KA_ENFORCE_TOKEN_BIND: O = O::new(G, "enforce_token_bind", K::Str, Some("permissive"),
    "Token bind enforcement: disabled, permissive, strict, required, or a bind type that must be present. \
     novajoin cannot verify a kerberos bind, so a kerberos-bound token is refused unless disabled.");
/// `service_token_roles`.
pub const KA_SERVICE_TOKEN_ROLES: O = O::new(
    G,
    "service_token_roles",
    K::List,
    Some("service"),
    "An X-Service-Token must carry at least one of these roles (case-sensitive).",
);
/// `service_token_roles_required`.
pub const KA_SERVICE_TOKEN_ROLES_REQUIRED: O = O::new(
    G,
    "service_token_roles_required",
    K::Bool,
    Some("true"),
    "Refuse an X-Service-Token without one of service_token_roles. true is keystonemiddleware's \
     default from 2026.2 on (it was false before); false accepts any valid token as a service \
     token, with a warning.",
);
/// `service_type`.
pub const KA_SERVICE_TYPE: O = O::new(G, "service_type", K::Str, None,
    "This service's catalog type; needed to accept application-credential tokens with access rules.");
/// `redis_url`: new.
pub const KA_REDIS_URL: O = O::new(G, "redis_url", K::Secret, None,
    "novajoin: Redis URL (redis://[:password@]host:6379/0 or rediss://...) of the token cache shared by \
     every replica. Unset: each process caches in memory. Needs memcache_security_strategy MAC or ENCRYPT.");
/// `redis_key_prefix`: new.
pub const KA_REDIS_KEY_PREFIX: O = O::new(
    G,
    "redis_key_prefix",
    K::Str,
    Some("novajoin:"),
    "novajoin: prefix of every token-cache key in Redis or memcached.",
);
/// `memory_cache_size`: new.
pub const KA_MEMORY_CACHE_SIZE: O = O::new(
    G,
    "memory_cache_size",
    K::Int {
        min: 1,
        max: 100_000_000,
    },
    Some("100000"),
    "novajoin: most validated tokens kept in this process's memory (least recently used go first).",
);
/// `jws_public_key_repository`: new.
pub const KA_JWS_PUBLIC_KEY_REPOSITORY: O = O::new(G, "jws_public_key_repository", K::Str, None,
    "novajoin: a copy of keystone's [jwt_tokens] jws_public_key_repository. When set, JWS tokens are \
     checked locally (signature and expiry) and forged or expired ones refused without asking keystone.");
/// `jws_accepted_algorithms`: new.
pub const KA_JWS_ACCEPTED_ALGORITHMS: O = O::new(G, "jws_accepted_algorithms", K::List, Some("ES256"),
    "novajoin: JWS algorithms accepted in the local check (keystone's [jwt_tokens] jws_accepted_algorithms): \
     ES256, ES384, EdDSA.");

/// The `[keystone_authtoken]` group.
pub const KEYSTONE_AUTHTOKEN_OPTIONS: OptionGroup = &[
    KA_WWW_AUTHENTICATE_URI,
    KA_AUTH_TYPE,
    KA_AUTH_SECTION,
    KA_AUTH_VERSION,
    KA_AUTH_URL,
    KA_USERNAME,
    KA_USER_ID,
    KA_PASSWORD,
    KA_APPLICATION_CREDENTIAL_ID,
    KA_APPLICATION_CREDENTIAL_NAME,
    KA_APPLICATION_CREDENTIAL_SECRET,
    KA_USER_DOMAIN_NAME,
    KA_USER_DOMAIN_ID,
    KA_PROJECT_NAME,
    KA_PROJECT_ID,
    KA_PROJECT_DOMAIN_NAME,
    KA_PROJECT_DOMAIN_ID,
    KA_DOMAIN_NAME,
    KA_DOMAIN_ID,
    KA_SYSTEM_SCOPE,
    KA_TRUST_ID,
    KA_DEFAULT_DOMAIN_ID,
    KA_DEFAULT_DOMAIN_NAME,
    KA_INTERFACE,
    KA_REGION_NAME,
    KA_DELAY_AUTH_DECISION,
    KA_HTTP_CONNECT_TIMEOUT,
    KA_HTTP_REQUEST_MAX_RETRIES,
    KA_CERTFILE,
    KA_KEYFILE,
    KA_CAFILE,
    KA_INSECURE,
    KA_MEMCACHED_SERVERS,
    KA_TOKEN_CACHE_TIME,
    KA_MEMCACHE_SECURITY_STRATEGY,
    KA_MEMCACHE_SECRET_KEY,
    KA_MEMCACHE_POOL_DEAD_RETRY,
    KA_MEMCACHE_POOL_MAXSIZE,
    KA_MEMCACHE_POOL_SOCKET_TIMEOUT,
    KA_MEMCACHE_POOL_UNUSED_TIMEOUT,
    KA_MEMCACHE_POOL_CONN_GET_TIMEOUT,
    KA_MEMCACHE_USE_ADVANCED_POOL,
    KA_MEMCACHE_TLS_ENABLED,
    KA_MEMCACHE_TLS_CAFILE,
    KA_MEMCACHE_TLS_CERTFILE,
    KA_MEMCACHE_TLS_KEYFILE,
    KA_MEMCACHE_TLS_ALLOWED_CIPHERS,
    KA_MEMCACHE_SASL_ENABLED,
    KA_MEMCACHE_USERNAME,
    KA_MEMCACHE_PASSWORD,
    KA_CACHE,
    KA_INCLUDE_SERVICE_CATALOG,
    KA_ENFORCE_TOKEN_BIND,
    KA_SERVICE_TOKEN_ROLES,
    KA_SERVICE_TOKEN_ROLES_REQUIRED,
    KA_SERVICE_TYPE,
    KA_REDIS_URL,
    KA_REDIS_KEY_PREFIX,
    KA_MEMORY_CACHE_SIZE,
    KA_JWS_PUBLIC_KEY_REPOSITORY,
    KA_JWS_ACCEPTED_ALGORITHMS,
];

/// `[service_credentials] auth_type`.
pub const SC_AUTH_TYPE: O = O::new(
    "service_credentials",
    "auth_type",
    K::Choice(AUTH_TYPES),
    None,
    "keystoneauth plugin: password (v3password) with username and password, or \
     v3applicationcredential with application_credential_id (or _name with the user) and \
     application_credential_secret.",
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
/// `application_credential_id`.
pub const SC_APPLICATION_CREDENTIAL_ID: O = O::new(
    "service_credentials",
    "application_credential_id",
    K::Str,
    None,
    "With auth_type = v3applicationcredential: the application credential's id.",
);
/// `application_credential_name`.
pub const SC_APPLICATION_CREDENTIAL_NAME: O = O::new(
    "service_credentials",
    "application_credential_name",
    K::Str,
    None,
    "With auth_type = v3applicationcredential: the credential's name, instead of its id; needs \
     its user (username with user_domain_name, or user_id).",
);
/// `application_credential_secret`.
pub const SC_APPLICATION_CREDENTIAL_SECRET: O = O::new(
    "service_credentials",
    "application_credential_secret",
    K::Secret,
    None,
    "With auth_type = v3applicationcredential: the credential's secret.",
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
pub const SERVICE_CREDENTIALS_OPTIONS: OptionGroup = &[
    SC_AUTH_TYPE,
    SC_AUTH_URL,
    SC_USERNAME,
    SC_USER_ID,
    SC_PASSWORD,
    SC_APPLICATION_CREDENTIAL_ID,
    SC_APPLICATION_CREDENTIAL_NAME,
    SC_APPLICATION_CREDENTIAL_SECRET,
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
