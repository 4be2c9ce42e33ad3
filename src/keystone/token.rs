//! What keystone says about a token (`{"token": {...}}` of `GET /v3/auth/tokens`),
//! as far as novajoin needs it, and the identity it vouches for.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::identity::Identity;

/// `{"id", "name"}` of a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRef {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The token's user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUser {
    /// User id.
    pub id: String,
    /// User name.
    #[serde(default)]
    pub name: String,
    /// The user's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
}

/// The token's project scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProject {
    /// Project id.
    pub id: String,
    /// Project name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The project's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
}

/// A role on the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRole {
    /// Role id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Role name.
    pub name: String,
}

/// One access rule of an application credential.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRule {
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// Path pattern (`{x}` and `*` match one segment, `**` the rest).
    #[serde(default)]
    pub path: String,
    /// Service type.
    #[serde(default)]
    pub service: String,
}

/// The application credential a token was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAppCred {
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Access rules, when the credential is restricted to some requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rules: Option<Vec<AccessRule>>,
}

/// The v3 token body, reduced to what novajoin uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenData {
    /// Authentication methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The user.
    pub user: TokenUser,
    /// Project scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<TokenProject>,
    /// Domain scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
    /// System scope (`{"all": true}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<BTreeMap<String, bool>>,
    /// Roles, in keystone's order.
    #[serde(default)]
    pub roles: Vec<TokenRole>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<DateTime<Utc>>,
    /// Audit ids (safe to log).
    #[serde(default)]
    pub audit_ids: Vec<String>,
    /// Service catalog (absent with `?nocatalog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
    /// Whether the project is the cloud's admin project. Absent means true
    /// (keystonemiddleware's backward-compatible reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin_project: Option<bool>,
    /// Application credential the token came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential: Option<TokenAppCred>,
    /// Token bind (`{"kerberos": "principal"}`), rare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BTreeMap<String, serde_json::Value>>,
}

/// The body of a validation answer.
#[derive(Debug, Deserialize)]
pub struct ValidationBody {
    /// The token.
    pub token: TokenData,
}

impl TokenData {
    /// Whether the token has expired at `now` (expiry is exclusive, as
    /// keystonemiddleware's `expires <= now` check).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    /// Role names, in keystone's order.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.name.clone()).collect()
    }

    /// The identity this token proves, as keystonemiddleware's `X-*` headers
    /// would carry it.
    pub fn identity(&self) -> Identity {
        let user_domain = self.user.domain.clone().unwrap_or_default();
        let (project_id, project_name, pd_id, pd_name) = match &self.project {
            Some(p) => {
                let d = p.domain.clone().unwrap_or_default();
                (Some(p.id.clone()), p.name.clone(), d.id, d.name)
            }
            None => (None, None, None, None),
        };
        let (domain_id, domain_name) = match &self.domain {
            Some(d) => (d.id.clone(), d.name.clone()),
            None => (None, None),
        };
        let system_scope = self
            .system
            .as_ref()
            .filter(|s| s.get("all").copied().unwrap_or(false))
            .map(|_| "all".to_string());
        Identity {
            user_id: self.user.id.clone(),
            user_name: self.user.name.clone(),
            user_domain_id: user_domain.id,
            user_domain_name: user_domain.name,
            project_id,
            project_name,
            project_domain_id: pd_id,
            project_domain_name: pd_name,
            domain_id,
            domain_name,
            system_scope,
            roles: self.role_names(),
            is_admin_project: self.is_admin_project.unwrap_or(true),
            service_roles: Vec::new(),
            service_token_valid: false,
            expires_at: Some(
                self.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            audit_ids: self.audit_ids.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_keystone_30_answer() {
        let body = serde_json::json!({"token": {
            "methods": ["password"],
            "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "nova",
                     "password_expires_at": null},
            "audit_ids": ["aud1"],
            "expires_at": "2030-01-01T00:00:00.000000Z",
            "issued_at": "2029-12-31T23:00:00.000000Z",
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "service"},
            "is_domain": false,
            "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "service"}],
            "catalog": []
        }});
        let v: ValidationBody = serde_json::from_value(body).unwrap();
        let id = v.token.identity();
        assert_eq!(id.user_name, "nova");
        assert_eq!(id.project_name.as_deref(), Some("service"));
        assert_eq!(id.project_domain_name.as_deref(), Some("Default"));
        assert_eq!(id.roles, vec!["admin", "service"]);
        assert!(id.is_admin_project, "absent is_admin_project reads as true");
        assert_eq!(id.domain_id, None);
        assert_eq!(id.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert!(!v.token.is_expired(Utc::now()));
    }

    #[test]
    fn system_scope_and_domain_scope() {
        let t: TokenData = serde_json::from_value(serde_json::json!({
            "user": {"id": "u", "name": "admin"}, "system": {"all": true},
            "expires_at": "2000-01-01T00:00:00Z", "is_admin_project": false
        }))
        .unwrap();
        let id = t.identity();
        assert_eq!(id.system_scope.as_deref(), Some("all"));
        assert!(!id.is_admin_project);
        assert!(t.is_expired(Utc::now()));
    }
}
