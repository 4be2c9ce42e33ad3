//! keystoneauth's v3 `password` and `v3applicationcredential` plugins: the
//! options, their checks, and the request body each sends to
//! `POST /v3/auth/tokens`.

use serde_json::{json, Value};

use super::secret::Password;
use crate::config::{ConfigError, ConfigFiles};

/// The auth plugin names keystoneauth loads for a v3 password.
pub const PASSWORD_PLUGINS: &[&str] = &["password", "v3password"];
/// The auth plugin names keystoneauth loads for an application credential.
pub const APPLICATION_CREDENTIAL_PLUGINS: &[&str] = &["v3applicationcredential"];

/// The auth plugin's options as written in one config section.
#[derive(Clone, Debug, Default)]
pub struct AuthPluginOptions {
    /// `auth_type`.
    pub auth_type: Option<String>,
    /// `auth_url`.
    pub auth_url: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `user_id`.
    pub user_id: Option<String>,
    /// `password`.
    pub password: Option<Password>,
    /// `user_domain_name`.
    pub user_domain_name: Option<String>,
    /// `user_domain_id`.
    pub user_domain_id: Option<String>,
    /// `project_name`.
    pub project_name: Option<String>,
    /// `project_id`.
    pub project_id: Option<String>,
    /// `project_domain_name`.
    pub project_domain_name: Option<String>,
    /// `project_domain_id`.
    pub project_domain_id: Option<String>,
    /// `domain_name` (domain scope).
    pub domain_name: Option<String>,
    /// `domain_id` (domain scope).
    pub domain_id: Option<String>,
    /// `system_scope`.
    pub system_scope: Option<String>,
    /// `trust_id`.
    pub trust_id: Option<String>,
    /// `default_domain_id`.
    pub default_domain_id: Option<String>,
    /// `default_domain_name`.
    pub default_domain_name: Option<String>,
    /// `application_credential_id`.
    pub application_credential_id: Option<String>,
    /// `application_credential_name` (with the user that owns it).
    pub application_credential_name: Option<String>,
    /// `application_credential_secret`.
    pub application_credential_secret: Option<Password>,
}

/// The names of the plugins' options, in the order [`AuthPluginOptions::from_lookup`] asks.
pub const AUTH_OPTION_NAMES: &[&str] = &[
    "auth_type",
    "auth_url",
    "username",
    "user_id",
    "password",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "system_scope",
    "trust_id",
    "default_domain_id",
    "default_domain_name",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
];

impl AuthPluginOptions {
    /// Fills the options by asking `get(name)` for each name in
    /// [`AUTH_OPTION_NAMES`]; empty values count as unset.
    pub fn from_lookup<E>(
        mut get: impl FnMut(&str) -> Result<Option<String>, E>,
    ) -> Result<Self, E> {
        let mut o = AuthPluginOptions::default();
        for name in AUTH_OPTION_NAMES {
            let v = get(name)?.filter(|s| !s.trim().is_empty());
            match *name {
                "auth_type" => o.auth_type = v,
                "auth_url" => o.auth_url = v,
                "username" => o.username = v,
                "user_id" => o.user_id = v,
                "password" => o.password = v.map(Password::new),
                "user_domain_name" => o.user_domain_name = v,
                "user_domain_id" => o.user_domain_id = v,
                "project_name" => o.project_name = v,
                "project_id" => o.project_id = v,
                "project_domain_name" => o.project_domain_name = v,
                "project_domain_id" => o.project_domain_id = v,
                "domain_name" => o.domain_name = v,
                "domain_id" => o.domain_id = v,
                "system_scope" => o.system_scope = v,
                "trust_id" => o.trust_id = v,
                "default_domain_id" => o.default_domain_id = v,
                "default_domain_name" => o.default_domain_name = v,
                "application_credential_id" => o.application_credential_id = v,
                "application_credential_name" => o.application_credential_name = v,
                "application_credential_secret" => {
                    o.application_credential_secret = v.map(Password::new)
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// `[service_credentials]` of join.conf.
    pub fn from_service_credentials(cfg: &ConfigFiles) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            Ok(match name {
                "auth_type" => cfg.choice(&crate::keystone::options::SC_AUTH_TYPE)?,
                "auth_url" => cfg.string(&crate::keystone::options::SC_AUTH_URL),
                "username" => cfg.string(&crate::keystone::options::SC_USERNAME),
                "user_id" => cfg.string(&crate::keystone::options::SC_USER_ID),
                "password" => cfg.string(&crate::keystone::options::SC_PASSWORD),
                "user_domain_name" => cfg.string(&crate::keystone::options::SC_USER_DOMAIN_NAME),
                "user_domain_id" => cfg.string(&crate::keystone::options::SC_USER_DOMAIN_ID),
                "project_name" => cfg.string(&crate::keystone::options::SC_PROJECT_NAME),
                "project_id" => cfg.string(&crate::keystone::options::SC_PROJECT_ID),
                "project_domain_name" => {
                    cfg.string(&crate::keystone::options::SC_PROJECT_DOMAIN_NAME)
                }
                "project_domain_id" => cfg.string(&crate::keystone::options::SC_PROJECT_DOMAIN_ID),
                "application_credential_id" => {
                    cfg.string(&crate::keystone::options::SC_APPLICATION_CREDENTIAL_ID)
                }
                "application_credential_name" => {
                    cfg.string(&crate::keystone::options::SC_APPLICATION_CREDENTIAL_NAME)
                }
                "application_credential_secret" => {
                    cfg.string(&crate::keystone::options::SC_APPLICATION_CREDENTIAL_SECRET)
                }
                // Not declared for [service_credentials]; read if written.
                other => cfg
                    .raw_undeclared("service_credentials", other)
                    .map(|l| l.value.clone()),
            })
        })
    }

    /// Any section, by name (keystonemiddleware's `auth_section`).
    pub fn from_section(cfg: &ConfigFiles, section: &str) -> Self {
        let r: Result<Self, std::convert::Infallible> = Self::from_lookup(|name| {
            Ok(cfg.raw_undeclared(section, name).map(|l| l.value.clone()))
        });
        match r {
            Ok(o) => o,
            Err(never) => match never {},
        }
    }

    /// Whether an auth plugin is configured at all (keystoneauth loads no
    /// plugin without `auth_type`).
    pub fn is_configured(&self) -> bool {
        self.auth_type.is_some()
    }
}

/// The scope requested for the service token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A project, by id.
    ProjectId(String),
    /// A project, by name within a domain.
    ProjectName {
        /// Project name.
        name: String,
        /// Its domain.
        domain: DomainRef,
    },
    /// A domain.
    Domain(DomainRef),
    /// The whole system (`all`).
    System,
    /// A trust.
    Trust(String),
    /// Unscoped: such a token has no catalog, so endpoints cannot be found.
    Unscoped,
}

/// A domain by id or name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainRef {
    /// By id.
    Id(String),
    /// By name.
    Name(String),
}

impl DomainRef {
    fn to_json(&self) -> Value {
        match self {
            DomainRef::Id(id) => json!({ "id": id }),
            DomainRef::Name(n) => json!({ "name": n }),
        }
    }
}

/// A checked, ready-to-use auth plugin configuration.
#[derive(Clone, Debug)]
pub struct AuthPlugin {
    /// Where `POST .../auth/tokens` goes.
    pub auth_url: url::Url,
    /// What proves the service's identity.
    pub credential: Credential,
    /// The scope (always [`Scope::Unscoped`] for an application
    /// credential, whose token keystone scopes to the credential's project).
    pub scope: Scope,
}

/// What the plugin authenticates with.
#[derive(Clone, Debug)]
pub enum Credential {
    /// keystoneauth's `password` plugin.
    Password {
        /// The user, by id or by name in a domain.
        user: UserRef,
        /// The password.
        password: Password,
    },
    /// keystoneauth's `v3applicationcredential` plugin.
    ApplicationCredential {
        /// The credential, by id or by name with its user.
        credential: ApplicationCredentialRef,
        /// The credential's secret.
        secret: Password,
    },
}

/// The user, by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    /// By id.
    Id(String),
    /// By name within a domain.
    Name {
        /// User name.
        name: String,
        /// Its domain.
        domain: DomainRef,
    },
}

impl UserRef {
    fn to_json(&self) -> Value {
        match self {
            UserRef::Id(id) => json!({ "id": id }),
            UserRef::Name { name, domain } => json!({ "name": name, "domain": domain.to_json() }),
        }
    }

    /// For log lines: the user's name or id.
    pub fn label(&self) -> &str {
        match self {
            UserRef::Id(id) => id,
            UserRef::Name { name, .. } => name,
        }
    }
}

/// An application credential, by id or by name (names are unique per user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplicationCredentialRef {
    /// By id.
    Id(String),
    /// By name, with the user that owns it.
    Name {
        /// The credential's name.
        name: String,
        /// Its user.
        user: UserRef,
    },
}

impl AuthPlugin {
    /// Checks the options of section `group`; every problem names the option.
    pub fn from_options(o: &AuthPluginOptions, group: &str) -> Result<Self, ConfigError> {
        let missing = |option: &str, why: &str| ConfigError::Missing {
            group: group.to_string(),
            option: option.to_string(),
            why: why.to_string(),
        };
        let Some(auth_type) = o.auth_type.as_deref() else {
            return Err(missing(
                "auth_type",
                "set auth_type = password and its options (auth_url, username, password, ...), \
                 or auth_type = v3applicationcredential (auth_url, application_credential_id, \
                 application_credential_secret)",
            ));
        };
        let app_cred = APPLICATION_CREDENTIAL_PLUGINS.contains(&auth_type);
        if !app_cred && !PASSWORD_PLUGINS.contains(&auth_type) {
            return Err(ConfigError::Missing {
                group: group.to_string(),
                option: "auth_type".into(),
                why: format!(
                    "{auth_type:?} is not supported; use password or v3applicationcredential"
                ),
            });
        }
        let raw_url = o
            .auth_url
            .as_deref()
            .ok_or_else(|| missing("auth_url", "the auth plugin needs keystone's URL"))?;
        let auth_url = url::Url::parse(raw_url).map_err(|e| ConfigError::Missing {
            group: group.to_string(),
            option: "auth_url".into(),
            why: format!("{raw_url:?} is not a URL ({e}); write e.g. http://keystone:5000/v3"),
        })?;
        if !matches!(auth_url.scheme(), "http" | "https") {
            return Err(missing(
                "auth_url",
                "auth_url must be an http:// or https:// URL",
            ));
        }
        let default_domain = o
            .default_domain_id
            .clone()
            .map(DomainRef::Id)
            .or_else(|| o.default_domain_name.clone().map(DomainRef::Name));
        let user_domain = o
            .user_domain_id
            .clone()
            .map(DomainRef::Id)
            .or_else(|| o.user_domain_name.clone().map(DomainRef::Name))
            .or_else(|| default_domain.clone());
        let user = match (&o.user_id, &o.username) {
            (Some(id), _) => Some(UserRef::Id(id.clone())),
            (None, Some(name)) => Some(UserRef::Name {
                name: name.clone(),
                domain: user_domain.ok_or_else(|| {
                    missing("user_domain_name", "with username, keystone v3 needs the user's domain (e.g. user_domain_name = Default)")
                })?,
            }),
            (None, None) => None,
        };
        if app_cred {
            return Self::application_credential(o, group, auth_url, user);
        }
        let user = user.ok_or_else(|| {
            missing(
                "username",
                "the password plugin needs username (or user_id)",
            )
        })?;
        let password = o
            .password
            .clone()
            .ok_or_else(|| missing("password", "the password plugin needs the user's password"))?;
        let project_domain = o
            .project_domain_id
            .clone()
            .map(DomainRef::Id)
            .or_else(|| o.project_domain_name.clone().map(DomainRef::Name))
            .or_else(|| default_domain.clone());
        let scope = if let Some(id) = &o.project_id {
            Scope::ProjectId(id.clone())
        } else if let Some(name) = &o.project_name {
            Scope::ProjectName {
                name: name.clone(),
                domain: project_domain.ok_or_else(|| {
                    missing("project_domain_name", "with project_name, keystone v3 needs the project's domain (e.g. project_domain_name = Default)")
                })?,
            }
        } else if let Some(id) = &o.domain_id {
            Scope::Domain(DomainRef::Id(id.clone()))
        } else if let Some(name) = &o.domain_name {
            Scope::Domain(DomainRef::Name(name.clone()))
        } else if let Some(s) = &o.system_scope {
            if s != "all" {
                return Err(ConfigError::Missing {
                    group: group.to_string(),
                    option: "system_scope".into(),
                    why: format!("{s:?} is not a system scope keystone knows; use all"),
                });
            }
            Scope::System
        } else if let Some(t) = &o.trust_id {
            Scope::Trust(t.clone())
        } else {
            Scope::Unscoped
        };
        Ok(AuthPlugin {
            auth_url,
            credential: Credential::Password { user, password },
            scope,
        })
    }

    /// The `v3applicationcredential` plugin: keystone scopes its token to
    /// the credential's project and refuses a requested scope, so scope
    /// options are an error here rather than a silent no-op.
    fn application_credential(
        o: &AuthPluginOptions,
        group: &str,
        auth_url: url::Url,
        user: Option<UserRef>,
    ) -> Result<Self, ConfigError> {
        let missing = |option: &str, why: &str| ConfigError::Missing {
            group: group.to_string(),
            option: option.to_string(),
            why: why.to_string(),
        };
        let secret = o.application_credential_secret.clone().ok_or_else(|| {
            missing(
                "application_credential_secret",
                "the v3applicationcredential plugin needs the credential's secret",
            )
        })?;
        let credential = match (&o.application_credential_id, &o.application_credential_name) {
            (Some(id), _) => ApplicationCredentialRef::Id(id.clone()),
            (None, Some(name)) => ApplicationCredentialRef::Name {
                name: name.clone(),
                user: user.ok_or_else(|| {
                    missing(
                        "username",
                        "an application credential given by name needs its user \
                         (username with user_domain_name, or user_id)",
                    )
                })?,
            },
            (None, None) => {
                return Err(missing(
                    "application_credential_id",
                    "the v3applicationcredential plugin needs application_credential_id \
                     (or application_credential_name with its user)",
                ))
            }
        };
        for (option, set) in [
            ("project_name", o.project_name.is_some()),
            ("project_id", o.project_id.is_some()),
            ("domain_name", o.domain_name.is_some()),
            ("domain_id", o.domain_id.is_some()),
            ("system_scope", o.system_scope.is_some()),
            ("trust_id", o.trust_id.is_some()),
        ] {
            if set {
                return Err(missing(
                    option,
                    "not used with auth_type = v3applicationcredential: the token is scoped \
                     to the project the application credential was created in; remove it",
                ));
            }
        }
        Ok(AuthPlugin {
            auth_url,
            credential: Credential::ApplicationCredential { credential, secret },
            scope: Scope::Unscoped,
        })
    }

    /// For log lines: the user's name or id, or the application credential's.
    pub fn label(&self) -> &str {
        match &self.credential {
            Credential::Password { user, .. } => user.label(),
            Credential::ApplicationCredential { credential, .. } => match credential {
                ApplicationCredentialRef::Id(id) => id,
                ApplicationCredentialRef::Name { name, .. } => name,
            },
        }
    }

    /// `.../v3/auth/tokens` under `auth_url` (appending `v3` when the URL
    /// does not already name an API version, as keystoneauth's URL guess does).
    pub fn tokens_url(&self) -> url::Url {
        v3_base(&self.auth_url).join_path(&["auth", "tokens"])
    }

    /// The JSON body of `POST /v3/auth/tokens`. It holds the password or
    /// secret: never log it.
    pub fn request_body(&self) -> Value {
        let identity = match &self.credential {
            Credential::Password { user, password } => {
                let mut user = user.to_json();
                user["password"] = json!(password.expose());
                json!({ "methods": ["password"], "password": { "user": user } })
            }
            Credential::ApplicationCredential { credential, secret } => {
                let mut c = match credential {
                    ApplicationCredentialRef::Id(id) => json!({ "id": id }),
                    ApplicationCredentialRef::Name { name, user } => {
                        json!({ "name": name, "user": user.to_json() })
                    }
                };
                c["secret"] = json!(secret.expose());
                json!({ "methods": ["application_credential"], "application_credential": c })
            }
        };
        let mut auth = json!({ "identity": identity });
        let scope = match &self.scope {
            Scope::ProjectId(id) => Some(json!({ "project": { "id": id } })),
            Scope::ProjectName { name, domain } => {
                Some(json!({ "project": { "name": name, "domain": domain.to_json() } }))
            }
            Scope::Domain(d) => Some(json!({ "domain": d.to_json() })),
            Scope::System => Some(json!({ "system": { "all": true } })),
            Scope::Trust(t) => Some(json!({ "OS-TRUST:trust": { "id": t } })),
            Scope::Unscoped => None,
        };
        if let Some(s) = scope {
            auth["scope"] = s;
        }
        json!({ "auth": auth })
    }
}

/// Helpers for building URLs below a base without losing its path.
pub(crate) trait JoinPath {
    /// `base` + `/seg1/seg2`, each segment percent-encoded.
    fn join_path(&self, segments: &[&str]) -> url::Url;
}

impl JoinPath for url::Url {
    fn join_path(&self, segments: &[&str]) -> url::Url {
        let mut u = self.clone();
        u.set_query(None);
        u.set_fragment(None);
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            for s in segments {
                p.push(s);
            }
        }
        u
    }
}

/// The v3 API root under an identity URL: the URL itself when its last path
/// segment is a version (`v3`, `v3.14`), else the URL with `/v3` appended
/// (devstack registers `http://host/identity`).
pub fn v3_base(url: &url::Url) -> url::Url {
    let last = url
        .path_segments()
        .and_then(|mut s| s.rfind(|p| !p.is_empty()))
        .unwrap_or("");
    let is_version = last.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    });
    let mut u = url.clone();
    u.set_query(None);
    if is_version {
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
        }
        u
    } else {
        u.join_path(&["v3"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> AuthPluginOptions {
        let r: Result<_, ()> = AuthPluginOptions::from_lookup(|n| {
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string()))
        });
        r.unwrap()
    }

    #[test]
    fn project_scoped_body_matches_keystoneauth() {
        let a = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "password"),
                ("auth_url", "http://ks:5000/v3"),
                ("username", "nova"),
                ("password", "pw"),
                ("user_domain_name", "Default"),
                ("project_name", "service"),
                ("project_domain_name", "Default"),
            ]),
            "keystone_authtoken",
        )
        .unwrap();
        assert_eq!(a.tokens_url().as_str(), "http://ks:5000/v3/auth/tokens");
        assert_eq!(
            a.request_body(),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "nova", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}})
        );
    }

    #[test]
    fn missing_options_are_named() {
        let e = AuthPlugin::from_options(
            &opts(&[("auth_url", "http://ks:5000")]),
            "service_credentials",
        )
        .unwrap_err();
        assert!(e.to_string().contains("auth_type"), "{e}");
        let e = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "password"),
                ("auth_url", "http://ks:5000"),
                ("username", "nova"),
                ("password", "x"),
            ]),
            "service_credentials",
        )
        .unwrap_err();
        assert!(e.to_string().contains("user_domain_name"), "{e}");
        let e = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "password"),
                ("auth_url", "ks:5000"),
                ("user_id", "u"),
                ("password", "x"),
            ]),
            "service_credentials",
        )
        .unwrap_err();
        assert!(e.to_string().contains("auth_url"), "{e}");
    }

    #[test]
    fn default_domain_fills_in() {
        let a = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "password"),
                ("auth_url", "http://ks/identity"),
                ("username", "nova"),
                ("password", "pw"),
                ("default_domain_id", "default"),
                ("project_name", "service"),
            ]),
            "g",
        )
        .unwrap();
        assert_eq!(a.tokens_url().as_str(), "http://ks/identity/v3/auth/tokens");
        assert_eq!(
            a.request_body()["auth"]["scope"]["project"]["domain"],
            json!({"id": "default"})
        );
    }

    #[test]
    fn application_credential_bodies_match_keystoneauth() {
        let by_id = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "v3applicationcredential"),
                ("auth_url", "http://ks:5000/v3"),
                ("application_credential_id", "ac1"),
                ("application_credential_secret", "s3cret"),
                ("project_domain_name", "Default"),
            ]),
            "service_credentials",
        )
        .unwrap();
        assert_eq!(
            by_id.request_body(),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": "ac1", "secret": "s3cret"}}}})
        );
        assert_eq!(by_id.label(), "ac1");
        assert!(!format!("{by_id:?}").contains("s3cret"));
        let by_name = AuthPlugin::from_options(
            &opts(&[
                ("auth_type", "v3applicationcredential"),
                ("auth_url", "http://ks:5000/v3"),
                ("application_credential_name", "novajoin"),
                ("application_credential_secret", "s3cret"),
                ("username", "novajoin"),
                ("user_domain_name", "Default"),
            ]),
            "keystone_authtoken",
        )
        .unwrap();
        assert_eq!(
            by_name.request_body(),
            json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"name": "novajoin", "secret": "s3cret",
                    "user": {"name": "novajoin", "domain": {"name": "Default"}}}}}})
        );
    }

    #[test]
    fn application_credential_problems_are_named() {
        let base = [
            ("auth_type", "v3applicationcredential"),
            ("auth_url", "http://ks:5000/v3"),
        ];
        for (extra, want) in [
            (
                vec![("application_credential_id", "a")],
                "application_credential_secret",
            ),
            (
                vec![("application_credential_secret", "s")],
                "application_credential_id",
            ),
            (
                vec![
                    ("application_credential_name", "n"),
                    ("application_credential_secret", "s"),
                ],
                "username",
            ),
            (
                vec![
                    ("application_credential_id", "a"),
                    ("application_credential_secret", "s"),
                    ("project_name", "service"),
                ],
                "project_name",
            ),
        ] {
            let pairs: Vec<(&str, &str)> = base.iter().copied().chain(extra).collect();
            let e = AuthPlugin::from_options(&opts(&pairs), "g")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
            assert!(!e.contains("\"s\""), "{e}");
        }
        let e = AuthPlugin::from_options(
            &opts(&[("auth_type", "token"), ("auth_url", "http://ks")]),
            "g",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("v3applicationcredential"), "{e}");
    }

    #[test]
    fn v3_base_keeps_or_adds_the_version() {
        for (i, o) in [
            ("http://h:5000/v3", "http://h:5000/v3"),
            ("http://h:5000/v3/", "http://h:5000/v3"),
            ("http://h:5000", "http://h:5000/v3"),
            ("http://h/identity", "http://h/identity/v3"),
            ("http://h/identity/v3.14", "http://h/identity/v3.14"),
        ] {
            assert_eq!(v3_base(&url::Url::parse(i).unwrap()).as_str(), o, "{i}");
        }
    }
}
