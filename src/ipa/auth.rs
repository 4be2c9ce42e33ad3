//! How the client logs in to IPA and obtains the `ipa_session` cookie.
//!
//! [`IpaAuth`] has one variant per login method. Each variant's login
//! returns the cookie value; everything else (keeping the cookie, dropping
//! it on 401, logging in again once, retrying on connection failures) is
//! the client's job and does not depend on the method. The Kerberos variant
//! ([`super::kerberos`]) POSTs to [`Endpoints::login_kerberos`](super::Endpoints::login_kerberos) with
//! `Authorization: Negotiate <token>` (and checks the mutual-auth token in
//! the answer), returning the cookie the same way.

use reqwest::header::{ACCEPT, REFERER};

use super::error::IpaError;
use super::http::{
    http_error, is_transient_status, rejection_reason, session_cookie, AttemptError, Endpoints,
};
use super::kerberos::KerberosAuth;
use super::secret::Secret;

/// How to authenticate to IPA.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum IpaAuth {
    /// Form login to `/ipa/session/login_password` (`[ipa] auth_method =
    /// password`, `[ipa] username`, `[ipa] password`).
    Password {
        /// The IPA user (uid or principal).
        user: String,
        /// Its password.
        password: Secret,
    },
    /// GSSAPI/SPNEGO login to `/ipa/session/login_kerberos` (`[ipa]
    /// auth_method = kerberos`, `[DEFAULT] keytab`, `[ipa] principal`).
    Kerberos(KerberosAuth),
}

impl IpaAuth {
    /// Password login.
    pub fn password(user: impl Into<String>, password: Secret) -> Self {
        Self::Password {
            user: user.into(),
            password,
        }
    }

    /// Kerberos login.
    pub fn kerberos(auth: KerberosAuth) -> Self {
        Self::Kerberos(auth)
    }

    /// A description for logs (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Password { user, .. } => format!("password login as {user}"),
            Self::Kerberos(k) => k.describe(),
        }
    }

    /// Logs in once and returns the `ipa_session` cookie value.
    pub(crate) async fn login(
        &self,
        http: &reqwest::Client,
        ep: &Endpoints,
    ) -> Result<Secret, AttemptError> {
        match self {
            Self::Password { user, password } => {
                let form = [("user", user.as_str()), ("password", password.expose())];
                let resp = http
                    .post(ep.login_password.clone())
                    .header(REFERER, &ep.referer)
                    .header(ACCEPT, "text/plain")
                    .form(&form)
                    .send()
                    .await
                    .map_err(AttemptError::from_send)?;
                let status = resp.status().as_u16();
                match status {
                    200 => session_cookie(resp.headers()).ok_or_else(|| {
                        AttemptError::Fatal(IpaError::Protocol(
                            "login succeeded but no ipa_session cookie was set".into(),
                        ))
                    }),
                    401 => {
                        let reason = rejection_reason(resp.headers()).unwrap_or_else(|| {
                            "no reason given (the server could not create a session)".into()
                        });
                        Err(AttemptError::Fatal(IpaError::LoginRejected {
                            user: user.clone(),
                            reason,
                        }))
                    }
                    s if is_transient_status(s) => {
                        Err(AttemptError::Transient(format!("login answered HTTP {s}")))
                    }
                    s => Err(AttemptError::Fatal(http_error(s, ep.login_password.path()))),
                }
            }
            Self::Kerberos(k) => k.login(http, ep).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_auth_hides_password() {
        let a = IpaAuth::password("admin", Secret::new("Secret123!"));
        assert!(!format!("{a:?}").contains("Secret123!"));
    }
}
