//! Kerberos login to IPA: GSSAPI (MIT krb5, through `libgssapi`) with a
//! keytab, exchanged for an `ipa_session` cookie at
//! `/ipa/session/login_kerberos` with `Authorization: Negotiate <token>`.
//!
//! How the credentials are held:
//!
//! * The service's principal (`nova/<host>@REALM` by default) gets its
//!   tickets from the keytab through `gss_acquire_cred_from` with a cred
//!   store of `client_keytab=<keytab>` and `ccache=MEMORY:<uuid>`: a
//!   credential cache private to this [`KerberosAuth`], never the process's
//!   default cache, no `kinit` process and no environment variables.
//! * MIT krb5 gets a new TGT from the client keytab by itself when the one
//!   in the cache has expired (or reached its refresh time), so a login
//!   after the ticket's lifetime simply works. The client logs in again
//!   whenever IPA answers 401 to the session cookie, so an expired session
//!   and an expired ticket are both handled by the same path.
//! * If the server rejects the token (401 to the Negotiate login), the cache
//!   is destroyed and replaced by a fresh one, and the login is tried once
//!   more: this clears a service ticket made with keys the server no longer
//!   has. A second 401 is reported as [`KerberosError::Rejected`].
//! * Every GSSAPI call may block (it talks to the KDC), so each runs in
//!   `spawn_blocking`.
//!
//! The context is a plain krb5-mechanism context with mutual
//! authentication and sequence detection, as IPA's own client builds it;
//! the server's mutual-authentication token (`WWW-Authenticate: Negotiate
//! <token>` on the 200) is verified when present.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::Error as GssError;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};
use libgssapi_sys as sys;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, REFERER, WWW_AUTHENTICATE};

use super::error::{IpaError, KerberosError};
use super::http::{
    http_error, is_transient_status, rejection_reason, session_cookie, AttemptError, Endpoints,
};
use super::secret::Secret;

/// How a failed Kerberos step counts as an attempt at logging in.
fn attempt(e: KerberosError) -> AttemptError {
    if e.is_transient() {
        AttemptError::Transient(e.to_string())
    } else {
        AttemptError::Fatal(e.into())
    }
}

/// Where the initiator's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `principal`'s keys in `keytab`, tickets in a private memory cache.
    Keytab {
        /// `nova/<host>@REALM`.
        principal: String,
        /// `[DEFAULT] keytab`.
        keytab: PathBuf,
    },
    /// Whatever the default credential cache holds (after `kinit`).
    DefaultCache,
}

/// Kerberos login to IPA. Cheap to clone; clones share the credential cache.
#[derive(Clone)]
pub struct KerberosAuth {
    inner: Arc<Inner>,
}

struct Inner {
    source: CredentialSource,
    /// `MEMORY:novajoin-<uuid>`; replaced (and the old one destroyed) when
    /// the server rejects a token.
    ccache: Mutex<String>,
}

impl std::fmt::Debug for KerberosAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerberosAuth")
            .field("source", &self.inner.source)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if matches!(self.source, CredentialSource::Keytab { .. }) {
            let name = self.ccache.get_mut().map(|s| s.clone()).unwrap_or_default();
            destroy_ccache(&name);
        }
    }
}

fn new_ccache_name() -> String {
    format!("MEMORY:novajoin-{}", uuid::Uuid::new_v4().simple())
}

impl KerberosAuth {
    /// Log in as `principal` with the keys in `keytab`.
    pub fn with_keytab(principal: impl Into<String>, keytab: impl Into<PathBuf>) -> Self {
        Self::new(CredentialSource::Keytab {
            principal: principal.into(),
            keytab: keytab.into(),
        })
    }

    /// Log in with the default credential cache (an administrator's `kinit`).
    pub fn default_cache() -> Self {
        Self::new(CredentialSource::DefaultCache)
    }

    fn new(source: CredentialSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                ccache: Mutex::new(new_ccache_name()),
            }),
        }
    }

    /// Where the credentials come from.
    pub fn source(&self) -> &CredentialSource {
        &self.inner.source
    }

    /// For logs: principal and keytab (no secrets exist here).
    pub fn describe(&self) -> String {
        match &self.inner.source {
            CredentialSource::Keytab { principal, keytab } => {
                format!(
                    "Kerberos login as {principal} (keytab {})",
                    keytab.display()
                )
            }
            CredentialSource::DefaultCache => {
                "Kerberos login with the default credential cache".into()
            }
        }
    }

    fn principal_for_messages(&self) -> String {
        match &self.inner.source {
            CredentialSource::Keytab { principal, .. } => principal.clone(),
            CredentialSource::DefaultCache => "the default principal".into(),
        }
    }

    /// Obtains (or reuses) a TGT now, without contacting IPA: checks that
    /// the keytab works. Blocking; call from `spawn_blocking` in async code.
    pub fn check_credentials(&self) -> Result<(), KerberosError> {
        self.inner.acquire().map(|_| ())
    }

    /// One Negotiate login; returns the `ipa_session` cookie value.
    pub(crate) async fn login(
        &self,
        http: &reqwest::Client,
        ep: &Endpoints,
    ) -> Result<Secret, AttemptError> {
        let target = format!("HTTP@{}", ep.server_fqdn);
        let mut renewed = false;
        loop {
            let inner = self.inner.clone();
            let t = target.clone();
            let (ctx, token) = blocking(move || inner.initiate(&t))
                .await
                .map_err(attempt)?;
            let mut auth = HeaderValue::from_str(&format!(
                "Negotiate {}",
                base64::engine::general_purpose::STANDARD.encode(&token)
            ))
            .map_err(|e| AttemptError::Fatal(IpaError::Protocol(e.to_string())))?;
            auth.set_sensitive(true);
            let resp = http
                .post(ep.login_kerberos.clone())
                .header(REFERER, &ep.referer)
                .header(ACCEPT, "text/plain")
                .header(AUTHORIZATION, auth)
                .send()
                .await
                .map_err(AttemptError::from_send)?;
            let status = resp.status().as_u16();
            match status {
                200 => {
                    let cookie = session_cookie(resp.headers()).ok_or_else(|| {
                        AttemptError::Fatal(IpaError::Protocol(
                            "Kerberos login succeeded but no ipa_session cookie was set".into(),
                        ))
                    })?;
                    match server_token(resp.headers()) {
                        Some(reply) => {
                            blocking(move || {
                                let mut ctx = ctx;
                                ctx.step(Some(&reply), None)
                                    .map(|_| ())
                                    .map_err(|e| KerberosError::MutualAuth(gss_detail(&e)))
                            })
                            .await
                            .map_err(attempt)?;
                        }
                        None => tracing::debug!(
                            "IPA's Kerberos login answer carried no mutual-authentication token"
                        ),
                    }
                    return Ok(cookie);
                }
                401 if !renewed => {
                    tracing::info!(
                        principal = %self.principal_for_messages(),
                        "IPA rejected the Kerberos token; starting over with a fresh credential cache"
                    );
                    renewed = true;
                    self.inner.renew_ccache();
                }
                401 => {
                    let reason = rejection_reason(resp.headers())
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default();
                    return Err(AttemptError::Fatal(
                        KerberosError::Rejected {
                            principal: self.principal_for_messages(),
                            target,
                            reason,
                        }
                        .into(),
                    ));
                }
                s if is_transient_status(s) => {
                    return Err(AttemptError::Transient(format!(
                        "Kerberos login answered HTTP {s}"
                    )))
                }
                s => return Err(AttemptError::Fatal(http_error(s, ep.login_kerberos.path()))),
            }
        }
    }
}

/// Runs a blocking GSSAPI step off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KerberosError> + Send + 'static,
) -> Result<T, KerberosError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KerberosError::Internal(e.to_string()))?
}

/// The token of `WWW-Authenticate: Negotiate <token>`, if any.
fn server_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers.get_all(WWW_AUTHENTICATE).iter().find_map(|v| {
        let text = v.to_str().ok()?.trim();
        let (scheme, token) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("negotiate") {
            return None;
        }
        base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()
    })
}

impl Inner {
    fn ccache_name(&self) -> String {
        self.ccache.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Destroys the memory cache and starts a new one.
    fn renew_ccache(&self) {
        if let Ok(mut name) = self.ccache.lock() {
            destroy_ccache(&name);
            *name = new_ccache_name();
        }
    }

    /// Credentials for initiating, from the keytab into the private cache
    /// (MIT krb5 reuses valid tickets there and fetches new ones when they
    /// have expired).
    fn acquire(&self) -> Result<Cred, KerberosError> {
        match &self.source {
            CredentialSource::Keytab { principal, keytab } => {
                if let Err(source) = std::fs::File::open(keytab) {
                    return Err(KerberosError::KeytabUnreadable {
                        path: keytab.clone(),
                        source,
                    });
                }
                let store = [
                    ("ccache", self.ccache_name()),
                    ("client_keytab", format!("FILE:{}", keytab.display())),
                ];
                acquire_from(principal, &store, sys::GSS_C_INITIATE).map_err(|e| {
                    let mut detail = gss_detail(&e);
                    if !keytab_has_key_for(principal, keytab) {
                        detail = format!("the keytab holds no key for {principal} ({detail})");
                    }
                    KerberosError::Credentials {
                        principal: principal.clone(),
                        keytab: keytab.clone(),
                        detail,
                        kdc_unreachable: kdc_unreachable(&e),
                    }
                })
            }
            CredentialSource::DefaultCache => Cred::acquire(None, None, CredUsage::Initiate, None)
                .map_err(|e| KerberosError::DefaultCredentials {
                    detail: gss_detail(&e),
                    kdc_unreachable: kdc_unreachable(&e),
                }),
        }
    }

    /// Credentials plus the first context token for `target` (`HTTP@fqdn`).
    fn initiate(&self, target: &str) -> Result<(ClientCtx, Vec<u8>), KerberosError> {
        let cred = self.acquire()?;
        let principal = match &self.source {
            CredentialSource::Keytab { principal, .. } => principal.clone(),
            CredentialSource::DefaultCache => "the default principal".into(),
        };
        let service_err = |e: GssError| KerberosError::ServiceTicket {
            principal: principal.clone(),
            target: target.to_string(),
            detail: gss_detail(&e),
            kdc_unreachable: kdc_unreachable(&e),
        };
        let name =
            Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE)).map_err(service_err)?;
        let mut ctx = ClientCtx::new(
            Some(cred),
            name,
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_SEQUENCE_FLAG,
            Some(GSS_MECH_KRB5),
        );
        let token = ctx
            .step(None, None)
            .map_err(service_err)?
            .ok_or_else(|| KerberosError::Internal("GSSAPI produced no initial token".into()))?;
        Ok((ctx, token.to_vec()))
    }
}

/// Obtains a TGT for `principal` with its password and stores it in the
/// credential cache `ccache` (e.g. `FILE:/tmp/x/admin.cc`), as `kinit`
/// would, without a process or environment change: MIT krb5's `password`
/// cred-store element (which excludes a ccache element) into memory, then
/// `gss_store_cred_into` the cache. Blocking.
pub fn kinit_with_password(
    principal: &str,
    password: &Secret,
    ccache: &str,
) -> Result<(), KerberosError> {
    let fail = |e: GssError| KerberosError::PasswordLogin {
        principal: principal.to_string(),
        detail: gss_detail(&e),
        kdc_unreachable: kdc_unreachable(&e),
    };
    let mut store = [("password", password.expose().to_string())];
    let result = acquire_from_raw(principal, &store, sys::GSS_C_INITIATE);
    zeroize::Zeroize::zeroize(&mut store[0].1);
    let raw = result.map_err(fail)?;
    // SAFETY: `raw` is ours and wrapped exactly once (released on drop).
    let cred = unsafe { Cred::from_c(raw) };
    let cc = CString::new(ccache).map_err(|_| KerberosError::Internal("bad ccache name".into()))?;
    let mut element = sys::gss_key_value_element_desc {
        key: c"ccache".as_ptr(),
        value: cc.as_ptr(),
    };
    let set = sys::gss_key_value_set_desc {
        count: 1,
        elements: &mut element,
    };
    let mut minor: sys::OM_uint32 = 0;
    // SAFETY: `raw` stays valid while `cred` lives; the store outlives the call.
    let major = unsafe {
        sys::gss_store_cred_into(
            &mut minor,
            raw,
            sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
            std::ptr::null_mut(),
            1,
            0,
            &set,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    drop(cred);
    if major != sys::GSS_S_COMPLETE {
        return Err(fail(GssError {
            major: libgssapi::error::MajorFlags::from_bits_retain(major),
            minor,
        }));
    }
    Ok(())
}

/// The GSSAPI error as text (major and minor status messages).
fn gss_detail(e: &GssError) -> String {
    e.to_string().trim().to_string()
}

/// krb5 error codes (krb5.h) that mean the KDC could not be reached.
const KRB5_KDC_UNREACH: i32 = -1765328228;
const KRB5_REALM_CANT_RESOLVE: i32 = -1765328164;

fn kdc_unreachable(e: &GssError) -> bool {
    matches!(e.minor as i32, KRB5_KDC_UNREACH | KRB5_REALM_CANT_RESOLVE)
}

// ---- the two C calls libgssapi does not wrap ----

/// `GSS_KRB5_NT_PRINCIPAL_NAME` (1.2.840.113554.1.2.2.1).
const KRB5_PRINCIPAL_OID: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

/// Whether `keytab` holds a key for `principal`: acquiring *acceptor*
/// credentials from it checks exactly that, without contacting the KDC.
fn keytab_has_key_for(principal: &str, keytab: &Path) -> bool {
    let store = [("keytab", format!("FILE:{}", keytab.display()))];
    acquire_from(principal, &store, sys::GSS_C_ACCEPT).is_ok()
}

/// `gss_acquire_cred_from(principal, store)` with the default mechanisms,
/// for `usage` (`GSS_C_INITIATE` or `GSS_C_ACCEPT`).
fn acquire_from(principal: &str, store: &[(&str, String)], usage: u32) -> Result<Cred, GssError> {
    let raw = acquire_from_raw(principal, store, usage)?;
    // SAFETY: `raw` was just returned to us and is wrapped exactly once.
    Ok(unsafe { Cred::from_c(raw) })
}

/// As [`acquire_from`], returning the handle the caller must release.
fn acquire_from_raw(
    principal: &str,
    store: &[(&str, String)],
    usage: u32,
) -> Result<sys::gss_cred_id_t, GssError> {
    let bad_input = || GssError {
        major: libgssapi::error::MajorFlags::GSS_S_BAD_NAME,
        minor: 0,
    };
    let mut pairs: Vec<(CString, CString)> = store
        .iter()
        .map(|(k, v)| Ok((CString::new(*k)?, CString::new(v.as_str())?)))
        .collect::<Result<_, std::ffi::NulError>>()
        .map_err(|_| bad_input())?;
    let mut elements: Vec<sys::gss_key_value_element_desc> = pairs
        .iter()
        .map(|(k, v)| sys::gss_key_value_element_desc {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let set = sys::gss_key_value_set_desc {
        count: elements.len() as u32,
        elements: elements.as_mut_ptr(),
    };
    let mut oid = sys::gss_OID_desc {
        length: KRB5_PRINCIPAL_OID.len() as u32,
        elements: KRB5_PRINCIPAL_OID.as_ptr() as *mut c_void,
    };
    let mut name_buf = sys::gss_buffer_desc {
        length: principal.len(),
        value: principal.as_ptr() as *mut c_void,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut name: sys::gss_name_t = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local for the duration of the
    // call; gss_import_name copies the buffer and does not keep the OID.
    let major = unsafe { sys::gss_import_name(&mut minor, &mut name_buf, &mut oid, &mut name) };
    if major != sys::GSS_S_COMPLETE {
        return Err(GssError {
            major: libgssapi::error::MajorFlags::from_bits_retain(major),
            minor,
        });
    }
    struct NameGuard(sys::gss_name_t);
    impl Drop for NameGuard {
        fn drop(&mut self) {
            let mut minor = 0;
            // SAFETY: the name came from gss_import_name and is released once.
            unsafe { sys::gss_release_name(&mut minor, &mut self.0) };
        }
    }
    let name = NameGuard(name);
    let mut cred: sys::gss_cred_id_t = std::ptr::null_mut();
    // SAFETY: as above; `set` and its strings outlive the call, and the
    // returned credential is owned by exactly one `Cred`.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            name.0,
            sys::_GSS_C_INDEFINITE,
            std::ptr::null_mut(),
            usage as sys::gss_cred_usage_t,
            &set,
            &mut cred,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    drop(elements);
    // A store may carry a password: wipe our copies.
    for (_, v) in pairs.drain(..) {
        zeroize::Zeroize::zeroize(&mut v.into_bytes());
    }
    if major != sys::GSS_S_COMPLETE {
        return Err(GssError {
            major: libgssapi::error::MajorFlags::from_bits_retain(major),
            minor,
        });
    }
    Ok(cred)
}

#[link(name = "krb5")]
extern "C" {
    fn krb5_init_context(context: *mut *mut c_void) -> c_int;
    fn krb5_free_context(context: *mut c_void);
    fn krb5_cc_resolve(context: *mut c_void, name: *const c_char, cache: *mut *mut c_void)
        -> c_int;
    fn krb5_cc_destroy(context: *mut c_void, cache: *mut c_void) -> c_int;
}

/// Destroys a credential cache by name (memory caches otherwise live as
/// long as the process). Errors are ignored: there is nothing to clean up.
fn destroy_ccache(name: &str) {
    let Ok(cname) = CString::new(name) else {
        return;
    };
    let mut ctx: *mut c_void = std::ptr::null_mut();
    // SAFETY: plain krb5 API use; the context is freed on every path and
    // krb5_cc_destroy also closes the handle.
    unsafe {
        if krb5_init_context(&mut ctx) != 0 {
            return;
        }
        let mut cache: *mut c_void = std::ptr::null_mut();
        if krb5_cc_resolve(ctx, cname.as_ptr(), &mut cache) == 0 {
            krb5_cc_destroy(ctx, cache);
        }
        krb5_free_context(ctx);
    }
}

/// The default principal `nova/<host>@<realm>` (no realm when unknown: the
/// library then uses its default realm).
pub fn default_principal(host: &str, realm: Option<&str>) -> String {
    match realm {
        Some(r) if !r.is_empty() => format!("nova/{host}@{r}"),
        _ => format!("nova/{host}"),
    }
}

/// This machine's host name, as `gethostname(2)` reports it (used when
/// default.conf names no `host`).
pub fn local_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Whether `path` can be opened for reading now.
pub fn keytab_readable(path: &Path) -> Result<(), std::io::Error> {
    std::fs::File::open(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_from_host_and_realm() {
        assert_eq!(
            default_principal("undercloud.example.com", Some("EXAMPLE.COM")),
            "nova/undercloud.example.com@EXAMPLE.COM"
        );
        assert_eq!(default_principal("h.example", None), "nova/h.example");
    }

    #[test]
    fn mutual_token_is_read_from_www_authenticate() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=x"));
        h.append(WWW_AUTHENTICATE, HeaderValue::from_static("negotiate AQID"));
        assert_eq!(server_token(&h), Some(vec![1, 2, 3]));
        let mut bare = HeaderMap::new();
        bare.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        assert_eq!(server_token(&bare), None);
    }

    #[test]
    fn missing_keytab_names_the_file_and_the_option() {
        let auth = KerberosAuth::with_keytab("nova/h@R", "/nonexistent/krb5.keytab");
        let e = auth.check_credentials().unwrap_err();
        assert!(matches!(e, KerberosError::KeytabUnreadable { .. }));
        let text = e.to_string();
        assert!(
            text.contains("/nonexistent/krb5.keytab") && text.contains("[DEFAULT] keytab"),
            "{text}"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn only_an_unreachable_kdc_is_transient() {
        let unreachable = GssError {
            major: libgssapi::error::MajorFlags::GSS_S_FAILURE,
            minor: KRB5_KDC_UNREACH as u32,
        };
        assert!(kdc_unreachable(&unreachable));
        let wrong_key = GssError {
            major: libgssapi::error::MajorFlags::GSS_S_FAILURE,
            minor: -1765328360i32 as u32, // KRB5KDC_ERR_PREAUTH_FAILED
        };
        assert!(!kdc_unreachable(&wrong_key));
    }

    #[test]
    fn debug_shows_principal_and_keytab() {
        let a = KerberosAuth::with_keytab("nova/h@R", "/etc/novajoin/krb5.keytab");
        let d = format!("{a:?}");
        assert!(d.contains("nova/h@R") && d.contains("krb5.keytab"), "{d}");
    }
}
