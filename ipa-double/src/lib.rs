//! A stateful FreeIPA JSON-RPC test double, for tests and benchmarks only
//! (never shipped).
//!
//! It speaks IPA's wire format as described in the project's
//! `spec/freeipa-jsonrpc.md`:
//!
//! * `POST /ipa/session/login_password` (form `user`, `password`; Referer
//!   required) → `200` + `Set-Cookie: ipa_session=MagBearerToken=...`, or
//!   `401` + `X-IPA-Rejection-Reason`, or `400` for a bad form or Referer.
//! * `POST /ipa/session/json` with the cookie: a missing, unknown or expired
//!   session gets Apache's `401` + `WWW-Authenticate: Negotiate`; a Referer
//!   failing IPA's `check_referer()` gets `400` "denied"; then IPA's executor
//!   (Referer prefix check → `RefererError` 911, `version` check →
//!   `VersionError` 901, unknown option → `OptionError` 3005, argument
//!   checks, the command) answers HTTP 200 JSON-RPC.
//! * Kerberos, behind a real Apache with mod_auth_gssapi: set
//!   [`DoubleOptions::trusted_user_header`] (e.g. `X-Remote-User`) and have
//!   Apache authenticate `/ipa/session/login_kerberos` and `/ipa/json` with
//!   `GssapiCredStore`/`Require valid-user`, then
//!   `RequestHeader unset X-Remote-User early` and
//!   `RequestHeader set X-Remote-User "%{REMOTE_USER}s"` before proxying to
//!   the double. The double trusts that header as the authenticated
//!   principal: `login_kerberos` then issues an `ipa_session` cookie, and
//!   `/ipa/json` runs the call (and sets a cookie, as mod_auth_gssapi
//!   sessions do). Without the header both answer `401 Negotiate`. Never
//!   expose the double with this option set without such a proxy in front.
//!
//! Commands: `ping`, `batch`, `session_logout`, `host_add/mod/show/find/del`,
//! `service_add/add_host/remove_host/show/find/del`, `dnszone_add`,
//! `dnsrecord_add/find/del`, and the setup commands `permission_add/show`,
//! `privilege_add/add_permission/show`, `role_add/add_privilege/add_member/show`,
//! with IPA's semantics and error codes (see `commands.rs`). `host_mod`
//! takes `setattr`/`addattr`/`delattr` (`host_add`: `setattr`/`addattr`)
//! for `description`, `l`, `nshostlocation`, `nshardwareplatform`,
//! `nsosversion` and `userclass` (and `setattr` for `userpassword`), as
//! ipaserver's `process_attr_options` applies them; a `delattr` of a value
//! that is not there fails (`AttrValueNotFound` 4026) and changes nothing,
//! which makes `delattr`+`addattr` a compare-and-swap. With `all`, host
//! entries carry `krblastpwdchange` once the host has keys.
//!
//! Access control: [`IpaDouble::deny`] takes a right away from the caller
//! for a command (and object), and the command then fails the way IPA
//! fails without the permission (`ACIError` 2100 and friends);
//! [`IpaDouble::retrieve_keytab`] models who may run `ipa-getkeytab`.
//!
//! Replication: [`IpaDouble::start_replica`] starts a second server (its
//! own FQDN, address, sessions, faults and counters) on the same directory,
//! as IPA replicas share one replicated LDAP tree. Replication here has no
//! lag: a write on one is seen at once on the other. A session cookie is
//! only valid on the server that issued it, as in IPA.
//!
//! Start it in-process with [`IpaDouble::start`], or as the `ipa-double`
//! binary for demos and benchmarks.

mod commands;
mod errors;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use errors::IpaErr;
pub use state::{
    DnsRecordView, HostView, PermissionView, PrivilegeView, RoleView, ServiceView, UserState,
};

use commands::ServerConfig;
use server::{Counters, Faults, Shared};
use state::{Denial, Host, Service, State, User};

/// How an injected failure looks to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 (what IPA answers when its LDAP server is down).
    Http503,
    /// The connection is closed without an answer, after the request was
    /// read and before it was run.
    Drop,
    /// The request is run, then the connection is closed without an
    /// answer: the client cannot know the command took effect.
    LoseAnswer,
}

/// How to start the double.
#[derive(Clone, Debug)]
pub struct DoubleOptions {
    /// Address to listen on (loopback, port 0 = any free port).
    pub listen: SocketAddr,
    /// The IPA server's FQDN (what the Referer must name).
    pub fqdn: String,
    /// Kerberos realm.
    pub realm: String,
    /// DNS domain; also a DNS zone unless `dns_zones` says otherwise.
    pub domain: String,
    /// Users for password login: `(uid, password)`.
    pub users: Vec<(String, String)>,
    /// The server's API version (`2.254` = IPA 4.12).
    pub api_version: String,
    /// The server package version in every response.
    pub package_version: String,
    /// Emulate IPA ≤ 4.3: reject a client whose minor API version is newer
    /// than the server's. Newer servers accept any `2.x`.
    pub strict_minor_version: bool,
    /// Whether IPA DNS is configured (else DNS commands get `NotFound`
    /// "DNS is not configured").
    pub dns_enabled: bool,
    /// DNS zones that exist at start (absolute or not).
    pub dns_zones: Vec<String>,
    /// How long a session cookie stays valid.
    pub session_lifetime: Duration,
    /// Serve HTTPS with a certificate from a CA made at start
    /// ([`IpaDouble::ca_pem`]); the certificate names `fqdn`, `localhost`
    /// and 127.0.0.1.
    pub tls: bool,
    /// Header that a fronting Apache (mod_auth_gssapi) sets to the
    /// authenticated principal; enables Kerberos login (see crate docs).
    pub trusted_user_header: Option<String>,
}

impl Default for DoubleOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            fqdn: "ipa.example.test".into(),
            realm: "EXAMPLE.TEST".into(),
            domain: "example.test".into(),
            users: vec![("admin".into(), "Secret123".into())],
            api_version: "2.254".into(),
            package_version: "4.12.2".into(),
            strict_minor_version: false,
            dns_enabled: true,
            dns_zones: vec!["example.test.".into()],
            session_lifetime: Duration::from_secs(20 * 60),
            tls: false,
            trusted_user_header: None,
        }
    }
}

/// A running double. Dropping it stops the server.
pub struct IpaDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    scheme: &'static str,
    ca_pem: Option<String>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for IpaDouble {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().expect("task").take() {
            t.abort();
        }
    }
}

impl IpaDouble {
    /// Starts the double on a Tokio runtime.
    pub async fn start(opts: DoubleOptions) -> std::io::Result<Self> {
        Self::start_on(opts, Arc::new(Mutex::new(State::default()))).await
    }

    /// Starts a replica of this double: another server, named by
    /// `opts.fqdn` (which must differ), on the same directory. Users,
    /// zones and the server's own host entry of `opts` are added to it;
    /// realm and domain are this double's.
    pub async fn start_replica(&self, mut opts: DoubleOptions) -> std::io::Result<Self> {
        if opts.fqdn.eq_ignore_ascii_case(&self.shared.cfg.fqdn) {
            return Err(std::io::Error::other(format!(
                "a replica needs its own FQDN, not {}",
                opts.fqdn
            )));
        }
        opts.realm = self.shared.cfg.realm.clone();
        opts.domain = self.shared.cfg.domain.clone();
        Self::start_on(opts, self.shared.state.clone()).await
    }

    async fn start_on(opts: DoubleOptions, state: Arc<Mutex<State>>) -> std::io::Result<Self> {
        if commands::parse_version(&opts.api_version).is_none() {
            return Err(std::io::Error::other(format!(
                "api_version {:?} is not 2.N",
                opts.api_version
            )));
        }
        let basedn = opts
            .domain
            .split('.')
            .map(|p| format!("dc={p}"))
            .collect::<Vec<_>>()
            .join(",");
        let cfg = ServerConfig {
            realm: opts.realm.clone(),
            domain: opts.domain.clone(),
            fqdn: opts.fqdn.to_lowercase(),
            basedn,
            api_version: opts.api_version.clone(),
            package_version: opts.package_version.clone(),
            strict_minor_version: opts.strict_minor_version,
            dns_enabled: opts.dns_enabled,
        };
        let directory = state;
        {
            let mut guard = directory.lock().expect("state");
            let state: &mut State = &mut guard;
            for (u, p) in &opts.users {
                state.users.insert(
                    u.clone(),
                    User {
                        password: p.clone(),
                        state: UserState::Active,
                    },
                );
            }
            for z in &opts.dns_zones {
                let z = z.to_lowercase();
                let z = if z.ends_with('.') { z } else { format!("{z}.") };
                state.zones.entry(z).or_default();
            }
            for p in state::MANAGED_PERMISSIONS {
                state
                    .permissions
                    .entry(p.to_lowercase())
                    .or_insert_with(|| PermissionView {
                        name: (*p).into(),
                        ..Default::default()
                    });
            }
            // The IPA server itself is a host.
            state.hosts.insert(
                cfg.fqdn.clone(),
                Host {
                    fqdn: cfg.fqdn.clone(),
                    has_keytab: true,
                    keys_changed_at: Some(state::whole_seconds(std::time::SystemTime::now())),
                    krbprincipalname: Some(format!("host/{}@{}", cfg.fqdn, cfg.realm)),
                    managedby: [cfg.fqdn.clone()].into(),
                    uniqueid: uuid::Uuid::new_v4().to_string(),
                    ..Default::default()
                },
            );
        }
        let (tls, ca_pem) = if opts.tls {
            let m = tls::make(&opts.fqdn).map_err(std::io::Error::other)?;
            (Some(m.acceptor), Some(m.ca_pem))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            cfg,
            session_lifetime: opts.session_lifetime,
            trusted_user_header: opts.trusted_user_header.clone(),
            state: directory,
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(Counters::default()),
            tls,
        });
        let listener = server::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Self {
            shared,
            addr,
            scheme: if opts.tls { "https" } else { "http" },
            ca_pem,
            task: Mutex::new(Some(task)),
        })
    }

    // ---- where it is ----

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `<url>/ipa/json`: what `[DEFAULT] url` should say.
    pub fn json_url(&self) -> String {
        format!("{}/ipa/json", self.url())
    }

    /// The server FQDN the Referer must name.
    pub fn fqdn(&self) -> &str {
        &self.shared.cfg.fqdn
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.shared.cfg.realm
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.shared.cfg.domain
    }

    /// `https://<fqdn>/ipa`: the Referer the double accepts.
    pub fn referer(&self) -> String {
        format!("https://{}/ipa", self.shared.cfg.fqdn)
    }

    /// The PEM of the CA that signed the double's certificate (with `tls`).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    // ---- state inspection ----

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("state")
    }

    /// A host by FQDN (case-insensitive, trailing dot ignored).
    pub fn host(&self, fqdn: &str) -> Option<HostView> {
        self.state()
            .hosts
            .get(&fqdn.trim_end_matches('.').to_lowercase())
            .map(Host::view)
    }

    /// Every host (the IPA server's own host included), by FQDN.
    pub fn hosts(&self) -> Vec<HostView> {
        self.state().hosts.values().map(Host::view).collect()
    }

    /// A service by principal (`svc/host` or `svc/host@REALM`).
    pub fn service(&self, principal: &str) -> Option<ServiceView> {
        let key = if principal.contains('@') {
            principal.to_string()
        } else {
            format!("{principal}@{}", self.realm())
        };
        self.state().services.get(&key).map(Service::view)
    }

    /// Every service.
    pub fn services(&self) -> Vec<ServiceView> {
        self.state().services.values().map(Service::view).collect()
    }

    /// The records of a zone (`example.test` or `example.test.`), by name;
    /// `None` when the zone does not exist.
    pub fn dns_records(&self, zone: &str) -> Option<BTreeMap<String, DnsRecordView>> {
        let z = zone.to_lowercase();
        let z = if z.ends_with('.') { z } else { format!("{z}.") };
        self.state().zones.get(&z).cloned()
    }

    /// A permission by name (case-insensitive).
    pub fn permission(&self, name: &str) -> Option<PermissionView> {
        self.state().permissions.get(&name.to_lowercase()).cloned()
    }

    /// A privilege by name.
    pub fn privilege(&self, name: &str) -> Option<PrivilegeView> {
        self.state().privileges.get(&name.to_lowercase()).cloned()
    }

    /// A role by name.
    pub fn role(&self, name: &str) -> Option<RoleView> {
        self.state().roles.get(&name.to_lowercase()).cloned()
    }

    /// Sessions this server issued that are stored (valid or not yet
    /// noticed expired).
    pub fn session_count(&self) -> usize {
        let me = &self.shared.cfg.fqdn;
        self.state()
            .sessions
            .values()
            .filter(|s| &s.server == me)
            .count()
    }

    // ---- test hooks that change state ----

    /// Adds a DNS zone.
    pub fn add_zone(&self, zone: &str) {
        let z = zone.to_lowercase();
        let z = if z.ends_with('.') { z } else { format!("{z}.") };
        self.state().zones.entry(z).or_default();
    }

    /// Adds an A record (creating the zone if needed).
    pub fn add_a_record(&self, zone: &str, name: &str, ip: &str) {
        self.add_record(zone, name, "arecord", ip);
    }

    /// Adds one value of a record attribute (`arecord`, `aaaarecord`,
    /// `txtrecord`, ...) at `name`, creating the zone if needed, as an
    /// administrator's `dnsrecord_add` would. Panics on an attribute the
    /// double does not store.
    pub fn add_record(&self, zone: &str, name: &str, attr: &str, value: &str) {
        self.add_zone(zone);
        let z = zone.to_lowercase();
        let z = if z.ends_with('.') { z } else { format!("{z}.") };
        let mut st = self.state();
        let vals = st
            .zones
            .get_mut(&z)
            .expect("zone")
            .entry(name.to_lowercase())
            .or_default()
            .values_mut(attr)
            .unwrap_or_else(|| panic!("the double stores no {attr}"));
        if !vals.iter().any(|x| x == value) {
            vals.push(value.to_string());
        }
    }

    /// Creates a host directly (no OTP, principal present, not enrolled),
    /// as `host_add --force` without a password would.
    pub fn seed_host(&self, fqdn: &str) {
        let fqdn = fqdn.trim_end_matches('.').to_lowercase();
        let realm = self.realm().to_string();
        self.state()
            .hosts
            .entry(fqdn.clone())
            .or_insert_with(|| Host {
                krbprincipalname: Some(format!("host/{fqdn}@{realm}")),
                managedby: [fqdn.clone()].into(),
                uniqueid: uuid::Uuid::new_v4().to_string(),
                fqdn,
                ..Default::default()
            });
    }

    /// Creates a host directly, as an administrator or an older tool would
    /// have made it: `description` and `nshardwareplatform` as given (a
    /// host made by the Python novajoin has description "IPA host for
    /// OpenStack" and no platform), managed by itself. `enrolled` gives it
    /// a keytab (`keys_changed_at` now) and no OTP (`otp` is then ignored:
    /// `ipa-join` clears it);
    /// otherwise `otp` is its enrolment OTP. The principal
    /// `host/<fqdn>@REALM` is there when enrolled or when there is no OTP
    /// (as `host_add` without a password makes it). Does nothing when the
    /// host exists, like [`seed_host`](Self::seed_host).
    pub fn seed_host_with(
        &self,
        fqdn: &str,
        description: Option<&str>,
        platform: Option<&str>,
        enrolled: bool,
        otp: Option<&str>,
    ) {
        let fqdn = fqdn.trim_end_matches('.').to_lowercase();
        let realm = self.realm().to_string();
        let password = if enrolled {
            None
        } else {
            otp.map(str::to_string)
        };
        self.state()
            .hosts
            .entry(fqdn.clone())
            .or_insert_with(|| Host {
                description: description.map(str::to_string),
                nshardwareplatform: platform.map(str::to_string),
                krbprincipalname: (enrolled || password.is_none())
                    .then(|| format!("host/{fqdn}@{realm}")),
                password,
                has_keytab: enrolled,
                keys_changed_at: enrolled
                    .then(|| state::whole_seconds(std::time::SystemTime::now())),
                managedby: [fqdn.clone()].into(),
                uniqueid: uuid::Uuid::new_v4().to_string(),
                fqdn,
                ..Default::default()
            });
    }

    /// Models who may run `ipa-getkeytab` for `principal` (`host/<fqdn>` or
    /// `svc/<host>`, realm optional) as the host `requester_host`, under a
    /// real IPA's default ACIs (`default-aci.ldif`: "Entities are allowed
    /// to rekey themselves", "Entities are allowed to rekey managed
    /// entries"):
    ///
    /// * the requester must exist and be enrolled (have a keytab), or it
    ///   cannot authenticate at all;
    /// * its own `host/<fqdn>`: allowed;
    /// * another host's `host/<other>`: only when the requester is in that
    ///   host's `managedby`;
    /// * a service `svc/<host>`: only when the service exists and the
    ///   requester is in its `managedby` ("System: Manage Service Keytab"
    ///   is for administrators; hosts get the right through managedBy).
    ///
    /// On success the target has keys (`has_keytab`; a host's
    /// `keys_changed_at`, `krbLastPwdChange`, is now), as `ipa-getkeytab`
    /// leaves it. This is `ipa-getkeytab`'s default, which makes new keys
    /// (`ipaProtectedOperation;write_keys`); `-r` (read the existing keys)
    /// needs `ipaAllowedToPerform;read_keys` (`service-allow-retrieve-keytab`),
    /// which the double does not model.
    ///
    /// Errors carry `ipa-getkeytab`'s wording: "Failed to parse result:
    /// Insufficient access rights" when the ACIs refuse, "Failed to parse
    /// result: PrincipalName not found." when the principal does not exist.
    pub fn retrieve_keytab(&self, requester_host: &str, principal: &str) -> Result<(), String> {
        const DENIED: &str = "Failed to parse result: Insufficient access rights";
        const NOT_FOUND: &str = "Failed to parse result: PrincipalName not found.";
        let realm = self.realm().to_string();
        let requester = requester_host.trim_end_matches('.').to_lowercase();
        let name = match principal.rsplit_once('@') {
            Some((n, r)) if r == realm => n,
            Some(_) => {
                return Err(format!(
                    "{principal}: the realm does not match the realm of this IPA server ({realm})"
                ))
            }
            None => principal,
        };
        let Some((svc, host)) = name.split_once('/') else {
            return Err(format!("{principal}: not a service or host principal"));
        };
        let host = host.trim_end_matches('.').to_lowercase();
        let mut st = self.state();
        if !st.hosts.get(&requester).is_some_and(|h| h.has_keytab) {
            return Err(format!(
                "host/{requester}@{realm}: no keytab (not enrolled), cannot authenticate: \
                 Kerberos User Principal not found. Do you have a valid Credential Cache?"
            ));
        }
        if svc == "host" {
            let target = st.hosts.get_mut(&host).ok_or(NOT_FOUND)?;
            if host != requester && !target.managedby.contains(&requester) {
                return Err(DENIED.into());
            }
            target.got_keys();
            return Ok(());
        }
        let key = format!("{svc}/{host}@{realm}");
        let s = st.services.get_mut(&key).ok_or(NOT_FOUND)?;
        if !s.managedby.contains(&requester) {
            return Err(DENIED.into());
        }
        s.has_keytab = true;
        Ok(())
    }

    // ---- access control ----

    /// Makes every later call of `method` (`host_del`, `service_add_host`...;
    /// inside a `batch` too) on `object` (its first argument; compared
    /// case-insensitively, trailing dot ignored; a service with or without
    /// its realm; `None` = any object) lack the rights it needs, as a
    /// caller without the permission would in a real IPA. What the caller
    /// sees is what IPA answers, and nothing changes:
    ///
    /// * `*_add`: `ACIError` (2100) "Insufficient access: Insufficient
    ///   'add' privilege to add the entry '<dn>'." (`dnsrecord_add` to an
    ///   existing name: the 'write' wording);
    /// * `*_del`: `ACIError` "Insufficient access: Insufficient 'delete'
    ///   privilege to delete the entry '<dn>'." (`dnsrecord_del` without
    ///   `del_all`: the 'write' wording); with several names, those before
    ///   the denied one are deleted, as in IPA;
    /// * `*_mod`: `ACIError` "Insufficient access: Insufficient 'write'
    ///   privilege to the '<attr>' attribute of entry '<dn>'.";
    /// * member commands (`service_add_host`, `service_remove_host`,
    ///   `role_add_member`, `role_add_privilege`,
    ///   `privilege_add_permission`): no error — IPA's LDAPAddMember and
    ///   LDAPRemoveMember report a refused modify per member under
    ///   `failed` (with that `ACIError`'s message) and `completed: 0`;
    /// * `*_show`: `NotFound` and `*_find`: the entry left out (the entry
    ///   named by `object`, not the criteria), since 389-ds returns no
    ///   entry the caller may not read.
    ///
    /// Rights are checked where IPA's LDAP call would be, so errors found
    /// before it (`NotFound`, `DuplicateEntry`, `EmptyModlist`, validation)
    /// still come first. `ping`, `batch` and `session_logout` touch no
    /// entry and ignore rules.
    pub fn deny(&self, method: &str, object: Option<&str>) {
        self.state().denials.push(Denial {
            method: method.strip_suffix("/1").unwrap_or(method).to_string(),
            object: object.map(state::norm_object),
        });
    }

    /// Clears every [`deny`](Self::deny) rule.
    pub fn allow_all(&self) {
        self.state().denials.clear();
    }

    /// Creates a service directly (its host must exist for realism, but is
    /// not checked here).
    pub fn seed_service(&self, principal: &str) {
        let key = if principal.contains('@') {
            principal.to_string()
        } else {
            format!("{principal}@{}", self.realm())
        };
        let host = key
            .split_once('/')
            .map(|(_, r)| r.split('@').next().unwrap_or_default().to_lowercase())
            .unwrap_or_default();
        self.state()
            .services
            .entry(key.clone())
            .or_insert_with(|| Service {
                principal: key,
                managedby: [host.clone()].into(),
                host,
                has_keytab: false,
            });
    }

    /// Marks a host enrolled, as if it had run `ipa-client-install`: it now
    /// has a keytab (`keys_changed_at` now) and no OTP, so
    /// `host_mod userpassword` gets `ValidationError`. Returns false when
    /// the host does not exist.
    pub fn mark_enrolled(&self, fqdn: &str) -> bool {
        let realm = self.realm().to_string();
        let mut st = self.state();
        let Some(h) = st.hosts.get_mut(&fqdn.trim_end_matches('.').to_lowercase()) else {
            return false;
        };
        h.password = None;
        h.got_keys();
        h.krbprincipalname
            .get_or_insert_with(|| format!("host/{}@{realm}", h.fqdn));
        true
    }

    /// Enrols a host the way `ipa-join` does with an OTP: succeeds only if
    /// the host exists, is not enrolled, and `otp` is its current OTP.
    pub fn ipa_join(&self, fqdn: &str, otp: &str) -> Result<(), String> {
        let fqdn = fqdn.trim_end_matches('.').to_lowercase();
        {
            let st = self.state();
            let h = st
                .hosts
                .get(&fqdn)
                .ok_or_else(|| format!("{fqdn}: host not found"))?;
            match &h.password {
                None if h.has_keytab => return Err(format!("{fqdn} is already enrolled")),
                None => return Err(format!("{fqdn} has no OTP")),
                Some(p) if p != otp => return Err(format!("{fqdn}: wrong OTP")),
                Some(_) => {}
            }
        }
        self.mark_enrolled(&fqdn);
        Ok(())
    }

    /// Sets when a host last got keys (`krbLastPwdChange`, which `host_show`,
    /// `host_find` and `host_mod` return with `all`), truncated to whole
    /// seconds, as if its keys had been written at `at`; whether it has
    /// keys (`has_keytab`) does not change. Returns false when the host
    /// does not exist.
    pub fn set_keys_changed_at(&self, fqdn: &str, at: std::time::SystemTime) -> bool {
        let mut st = self.state();
        let Some(h) = st.hosts.get_mut(&fqdn.trim_end_matches('.').to_lowercase()) else {
            return false;
        };
        h.keys_changed_at = Some(state::whole_seconds(at));
        true
    }

    /// Adds (or replaces) a password-login user.
    pub fn add_user(&self, uid: &str, password: &str) {
        self.state().users.insert(
            uid.into(),
            User {
                password: password.into(),
                state: UserState::Active,
            },
        );
    }

    /// Sets a user's login state (locked, expired...).
    pub fn set_user_state(&self, uid: &str, state: UserState) {
        if let Some(u) = self.state().users.get_mut(uid) {
            u.state = state;
        }
    }

    // ---- counters ----

    fn counters(&self) -> Counters {
        self.shared.counters.lock().expect("counters").clone()
    }

    /// JSON-RPC round trips answered (`/ipa/session/json` and `/ipa/json`
    /// requests that reached IPA's executor; a batch is one).
    pub fn round_trips(&self) -> u64 {
        self.counters().round_trips
    }

    /// Commands carried by the JSON-RPC calls (each `batch` item counts).
    pub fn commands_carried(&self) -> u64 {
        self.counters().commands
    }

    /// Round trips whose top-level method was `method` (`batch`, `host_mod`...).
    pub fn round_trips_for(&self, method: &str) -> u64 {
        self.counters()
            .round_trips_by_method
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Round trips by top-level method.
    pub fn round_trips_by_method(&self) -> BTreeMap<String, u64> {
        self.counters().round_trips_by_method
    }

    /// Commands executed by name, batch sub-commands included.
    pub fn commands(&self, method: &str) -> u64 {
        self.state()
            .command_counts
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Successful `host_add`/`host_mod` commands that set a host's
    /// one-time password (batch items included): one per enrollment that
    /// handed out a new OTP.
    pub fn otps_set(&self) -> u64 {
        self.state().otps_set
    }

    /// Successful logins (sessions issued).
    pub fn logins(&self) -> u64 {
        self.counters().logins
    }

    /// Rejected password logins.
    pub fn failed_logins(&self) -> u64 {
        self.counters().failed_logins
    }

    /// The most HTTP requests that were being handled at the same time.
    pub fn max_in_flight(&self) -> u64 {
        self.counters().max_in_flight
    }

    /// HTTP requests being handled right now (abandoned ones included,
    /// until the double finishes or drops them).
    pub fn in_flight(&self) -> u64 {
        self.counters().in_flight
    }

    /// Every HTTP request received (faulted ones included).
    pub fn http_requests(&self) -> u64 {
        self.counters().http_requests
    }

    /// Requests answered by an injected fault.
    pub fn injected_failures(&self) -> u64 {
        self.counters().injected
    }

    /// Sets every counter to zero.
    pub fn reset_counters(&self) {
        *self.shared.counters.lock().expect("counters") = Counters::default();
        let mut st = self.state();
        st.command_counts.clear();
        st.otps_set = 0;
    }

    // ---- faults ----

    /// Makes every JSON-RPC call take `per_call`, plus `per_item` for each
    /// command it carries (a `batch` counts its items), before it runs:
    /// IPA's fixed cost per request and its cost per command.
    pub fn set_cost_model(&self, per_call: Duration, per_item: Duration) {
        self.shared.faults.lock().expect("faults").cost = server::CostModel { per_call, per_item };
    }

    /// Adds a fixed delay before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.lock().expect("faults").latency = latency;
    }

    /// Fails the next `n` HTTP requests (any endpoint) with `fault`.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        let mut f = self.shared.faults.lock().expect("faults");
        f.fail_next = n;
        f.mode = Some(fault);
    }

    /// Fails this fraction (0.0–1.0) of HTTP requests with `fault`.
    pub fn set_failure_rate(&self, fraction: f64, fault: Fault) {
        let mut f = self.shared.faults.lock().expect("faults");
        f.fail_rate = fraction.clamp(0.0, 1.0);
        f.mode = Some(fault);
    }

    /// When on, a request runs to the end even if the client closed the
    /// connection meanwhile (a client timeout), as IPA behind Apache does;
    /// by default hyper drops the work with the connection. Cleared by
    /// [`clear_faults`](Self::clear_faults).
    pub fn finish_abandoned_calls(&self, on: bool) {
        self.shared.faults.lock().expect("faults").finish_abandoned = on;
    }

    /// Clears every fault and the latency.
    pub fn clear_faults(&self) {
        *self.shared.faults.lock().expect("faults") = Faults::default();
    }

    /// Invalidates every session of this server: the next call with its
    /// cookie gets 401.
    pub fn expire_sessions(&self) {
        let now = Instant::now();
        let me = self.shared.cfg.fqdn.clone();
        for s in self
            .state()
            .sessions
            .values_mut()
            .filter(|s| s.server == me)
        {
            s.expires = now;
        }
    }

    /// Stops listening and closes every connection: clients get
    /// "connection refused" until [`go_up`](Self::go_up).
    pub async fn go_down(&self) {
        let task = self.task.lock().expect("task").take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same address, with the same state.
    pub async fn go_up(&self) -> std::io::Result<()> {
        if self.is_up() {
            return Ok(());
        }
        let listener = server::bind(self.addr).await?;
        let task = tokio::spawn(server::serve(listener, self.shared.clone()));
        *self.task.lock().expect("task") = Some(task);
        Ok(())
    }

    /// Whether it is listening.
    pub fn is_up(&self) -> bool {
        self.task.lock().expect("task").is_some()
    }
}
