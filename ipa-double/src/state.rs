//! What the double's "LDAP" holds: hosts, services, DNS zones and records,
//! the setup objects (permissions, privileges, roles), users and sessions.
//! The `*View` types are what tests inspect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Instant, SystemTime};

/// A host entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Host {
    pub fqdn: String,
    pub description: Option<String>,
    pub locality: Option<String>,
    pub nshostlocation: Option<String>,
    pub nsosversion: Option<String>,
    pub nshardwareplatform: Option<String>,
    pub userclass: Vec<String>,
    pub macaddress: Vec<String>,
    /// The enrolment OTP while not enrolled.
    pub password: Option<String>,
    /// Enrolled: `ipa-join` fetched a keytab.
    pub has_keytab: bool,
    /// `host/<fqdn>@REALM` once it exists.
    pub krbprincipalname: Option<String>,
    pub managedby: BTreeSet<String>,
    pub uniqueid: String,
    /// `krbLastPwdChange`: when the host last got keys (whole seconds).
    pub keys_changed_at: Option<SystemTime>,
}

/// A service entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Service {
    /// `svc/host@REALM`.
    pub principal: String,
    pub host: String,
    pub managedby: BTreeSet<String>,
    pub has_keytab: bool,
}

/// One DNS name's records in a zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsRecordView {
    /// `arecord` values.
    pub a: Vec<String>,
    /// `aaaarecord` values.
    pub aaaa: Vec<String>,
    /// `ptrrecord` values.
    pub ptr: Vec<String>,
    /// `cnamerecord` values.
    pub cname: Vec<String>,
    /// `txtrecord` values.
    pub txt: Vec<String>,
    /// `sshfprecord` values.
    pub sshfp: Vec<String>,
}

impl DnsRecordView {
    pub(crate) fn values_mut(&mut self, attr: &str) -> Option<&mut Vec<String>> {
        Some(match attr {
            "arecord" => &mut self.a,
            "aaaarecord" => &mut self.aaaa,
            "ptrrecord" => &mut self.ptr,
            "cnamerecord" => &mut self.cname,
            "txtrecord" => &mut self.txt,
            "sshfprecord" => &mut self.sshfp,
            _ => return None,
        })
    }

    pub(crate) fn values(&self, attr: &str) -> &[String] {
        match attr {
            "arecord" => &self.a,
            "aaaarecord" => &self.aaaa,
            "ptrrecord" => &self.ptr,
            "cnamerecord" => &self.cname,
            "txtrecord" => &self.txt,
            "sshfprecord" => &self.sshfp,
            _ => &[],
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        RECORD_ATTRS.iter().all(|a| self.values(a).is_empty())
    }
}

/// The record attributes the double stores.
pub(crate) const RECORD_ATTRS: &[&str] = &[
    "arecord",
    "aaaarecord",
    "ptrrecord",
    "cnamerecord",
    "txtrecord",
    "sshfprecord",
];

/// A permission (setup).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionView {
    /// `cn`.
    pub name: String,
    /// `ipapermright`.
    pub rights: Vec<String>,
    /// `type`.
    pub object_type: Option<String>,
    /// `attrs`.
    pub attrs: Vec<String>,
}

/// A privilege (setup).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivilegeView {
    /// `cn`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// Permission names (as stored).
    pub permissions: Vec<String>,
}

/// A role (setup).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleView {
    /// `cn`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// Privilege names.
    pub privileges: Vec<String>,
    /// Member services (principals with realm).
    pub services: Vec<String>,
    /// Member users.
    pub users: Vec<String>,
    /// Member hosts.
    pub hosts: Vec<String>,
}

/// The state of an IPA user for password login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    /// Can log in.
    Active,
    /// `user-locked`.
    Locked,
    /// `password-expired`.
    PasswordExpired,
    /// `krbprincipal-expired`.
    PrincipalExpired,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub password: String,
    pub state: UserState,
}

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub principal: String,
    pub expires: Instant,
    /// The FQDN of the server that issued it: a session cookie is only
    /// valid on its own server (each IPA server keeps its session key).
    pub server: String,
}

/// A host as tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostView {
    /// FQDN.
    pub fqdn: String,
    /// `description`.
    pub description: Option<String>,
    /// `userclass`.
    pub userclass: Vec<String>,
    /// `nsosversion`.
    pub nsosversion: Option<String>,
    /// `nshostlocation`.
    pub nshostlocation: Option<String>,
    /// `nshardwareplatform` (novajoin's Python version never set it).
    pub platform: Option<String>,
    /// `l` (locality).
    pub locality: Option<String>,
    /// The OTP currently set (`None` when none or enrolled). Exposed
    /// because this is a test double: tests check the OTP handed out is
    /// the one IPA holds.
    pub otp: Option<String>,
    /// `has_password`.
    pub has_password: bool,
    /// Enrolled (`has_keytab`).
    pub enrolled: bool,
    /// `krbprincipalname`.
    pub krbprincipalname: Option<String>,
    /// `managedby_host`.
    pub managed_by: Vec<String>,
    /// `krbLastPwdChange` (whole seconds): when the host last got keys
    /// (enrolment, `retrieve_keytab`, or
    /// [`IpaDouble::set_keys_changed_at`](crate::IpaDouble::set_keys_changed_at));
    /// `None` when it never had keys or `host_disable` removed them.
    pub keys_changed_at: Option<SystemTime>,
}

/// A service as tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// `svc/host@REALM`.
    pub principal: String,
    /// The principal's host.
    pub host: String,
    /// `managedby_host`.
    pub managed_by: Vec<String>,
    /// `has_keytab` (keys were set, e.g. by `IpaDouble::retrieve_keytab`).
    pub has_keytab: bool,
}

/// Everything the double holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub hosts: BTreeMap<String, Host>,
    pub services: BTreeMap<String, Service>,
    /// Zone (absolute, lower case) → name → records.
    pub zones: BTreeMap<String, BTreeMap<String, DnsRecordView>>,
    /// Lower-cased name → permission.
    pub permissions: BTreeMap<String, PermissionView>,
    pub privileges: BTreeMap<String, PrivilegeView>,
    pub roles: BTreeMap<String, RoleView>,
    pub users: HashMap<String, User>,
    pub sessions: HashMap<String, Session>,
    /// Commands executed, by name (batch sub-commands included).
    pub command_counts: BTreeMap<String, u64>,
    /// Successful `host_add`/`host_mod` commands that set a host's OTP.
    pub otps_set: u64,
    /// Access rules set by `IpaDouble::deny`.
    pub denials: Vec<Denial>,
}

/// One `IpaDouble::deny` rule: calls of `method` on `object` (any object
/// when `None`) lack the rights they need.
#[derive(Clone, Debug)]
pub(crate) struct Denial {
    /// Command name without `/1`.
    pub method: String,
    /// Lower case, trailing dot removed.
    pub object: Option<String>,
}

/// How `deny` compares objects: case-insensitive, trailing dot ignored.
pub(crate) fn norm_object(s: &str) -> String {
    s.trim_end_matches('.').to_lowercase()
}

impl State {
    /// Whether a rule denies `method` on an object known by any of `names`
    /// (the argument as given and its canonical forms).
    pub(crate) fn denied(&self, method: &str, names: &[&str]) -> bool {
        self.denials.iter().any(|d| {
            d.method == method
                && d.object
                    .as_ref()
                    .is_none_or(|o| names.iter().any(|n| norm_object(n) == *o))
        })
    }
}

impl Host {
    pub(crate) fn view(&self) -> HostView {
        HostView {
            fqdn: self.fqdn.clone(),
            description: self.description.clone(),
            userclass: self.userclass.clone(),
            nsosversion: self.nsosversion.clone(),
            nshostlocation: self.nshostlocation.clone(),
            platform: self.nshardwareplatform.clone(),
            locality: self.locality.clone(),
            otp: self.password.clone(),
            has_password: self.password.is_some(),
            enrolled: self.has_keytab,
            krbprincipalname: self.krbprincipalname.clone(),
            managed_by: self.managedby.iter().cloned().collect(),
            keys_changed_at: self.keys_changed_at,
        }
    }

    /// The host got keys now (`krbLastPwdChange` is set by the KDB/extop
    /// when keys are written).
    pub(crate) fn got_keys(&mut self) {
        self.has_keytab = true;
        self.keys_changed_at = Some(whole_seconds(SystemTime::now()));
    }
}

/// `t` without its fraction of a second (LDAP GeneralizedTime as
/// `krbLastPwdChange` holds it has whole seconds).
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    use std::time::{Duration, UNIX_EPOCH};
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(e) => {
            let d = e.duration();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            UNIX_EPOCH - Duration::from_secs(secs)
        }
    }
}

/// `t` as LDAP GeneralizedTime in UTC, `YYYYMMDDHHMMSSZ` (ipalib's
/// `LDAP_GENERALIZED_TIME_FORMAT`, `%Y%m%d%H%M%SZ`).
pub(crate) fn generalized_time(t: SystemTime) -> String {
    use std::time::UNIX_EPOCH;
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Service {
    pub(crate) fn view(&self) -> ServiceView {
        ServiceView {
            principal: self.principal.clone(),
            host: self.host.clone(),
            managed_by: self.managedby.iter().cloned().collect(),
            has_keytab: self.has_keytab,
        }
    }
}

/// The permissions a current IPA ships that novajoin's setup names (their
/// real names; four of novajoin's list do not match any of them).
pub(crate) const MANAGED_PERMISSIONS: &[&str] = &[
    "System: Add Hosts",
    "System: Remove Hosts",
    "System: Modify Hosts",
    "System: Add krbPrincipalName to a Host",
    "System: Add Services",
    "System: Remove Services",
    "System: Manage Host Keytab",
    "System: Manage Host Certificates",
    "System: Modify Services",
    "System: Manage Service Keytab",
    "System: Read DNS Entries",
    "System: Remove DNS Entries",
    "System: Add DNS Entries",
    "System: Update DNS Entries",
    "Retrieve Certificates from the CA",
    "Revoke Certificate",
];
