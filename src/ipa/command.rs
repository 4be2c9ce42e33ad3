//! [`IpaCommand`]: one JSON-RPC command with its arguments and options, built
//! by typed constructors that use IPA's API parameter names (`userpassword`,
//! `nsosversion`, `nshostlocation`, `a_part_ip_address`, ...), and the typed
//! views of IPA's answers ([`CommandOutput`], [`HostEntry`], ...).

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::secret::Secret;

/// The stock host attribute that holds the owner binding of the hosts this
/// service creates (`--platform` in IPA's CLI). Why this attribute:
/// [`crate::ownership`].
pub const BINDING_ATTRIBUTE: &str = "nshardwareplatform";

/// One IPA command, ready to send alone ([`super::IpaClient::call`]) or in a
/// batch ([`super::IpaClient::batch`]). `Debug` prints the option *names*
/// only, because options may carry an OTP.
#[derive(Clone)]
pub struct IpaCommand {
    method: String,
    args: Vec<Value>,
    options: Map<String, Value>,
}

impl std::fmt::Debug for IpaCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpaCommand")
            .field("method", &self.method)
            .field("args", &self.args)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The attributes novajoin gives a new instance host (`host_add`).
#[derive(Clone, Debug)]
pub struct NewHost {
    /// The host's FQDN.
    pub fqdn: String,
    /// `description` (novajoin: "IPA host for OpenStack").
    pub description: Option<String>,
    /// `userpassword`: the one-time enrolment password.
    pub otp: Option<Secret>,
    /// `userclass` (from `ipa_hostclass`).
    pub userclass: Option<String>,
    /// `nsosversion` ("<os_distro> <os_version>").
    pub nsosversion: Option<String>,
    /// `nshostlocation` (from `ipa_host_location`).
    pub nshostlocation: Option<String>,
    /// `force`: skip IPA's DNS check (novajoin always sets it: the instance
    /// has no DNS record yet).
    pub force: bool,
    /// `nshardwareplatform`: the owner binding (see [`crate::ownership`]).
    pub binding: Option<String>,
}

impl NewHost {
    /// A host with only a name and `force`, as novajoin adds sub-hosts.
    pub fn subhost(fqdn: impl Into<String>) -> Self {
        Self {
            fqdn: fqdn.into(),
            description: None,
            otp: None,
            userclass: None,
            nsosversion: None,
            nshostlocation: None,
            force: true,
            binding: None,
        }
    }
}

impl IpaCommand {
    /// Any command, for what the typed constructors do not cover.
    pub fn new(method: impl Into<String>, args: Vec<Value>, options: Map<String, Value>) -> Self {
        Self {
            method: method.into(),
            args,
            options,
        }
    }

    /// The command name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The positional arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The options (may contain secrets: do not log).
    pub(crate) fn options(&self) -> &Map<String, Value> {
        &self.options
    }

    /// Sets an option (builder style).
    pub fn with_option(mut self, name: &str, value: Value) -> Self {
        self.options.insert(name.to_string(), value);
        self
    }

    /// A short description for logs and error reports: method and first
    /// argument, never options.
    pub fn describe(&self) -> String {
        match self.args.first() {
            Some(Value::String(s)) => format!("{} {s}", self.method),
            Some(Value::Array(a)) if !a.is_empty() => format!("{} {}", self.method, a[0]),
            _ => self.method.clone(),
        }
    }

    fn one(method: &str, arg: &str) -> Self {
        Self::new(method, vec![json!(arg)], Map::new())
    }

    /// `ping`.
    pub fn ping() -> Self {
        Self::new("ping", vec![], Map::new())
    }

    /// `host_add <fqdn>` with novajoin's options.
    pub fn host_add(host: &NewHost) -> Self {
        let mut c = Self::one("host_add", &host.fqdn);
        if let Some(d) = &host.description {
            c.options.insert("description".into(), json!(d));
        }
        if let Some(otp) = &host.otp {
            c.options.insert("userpassword".into(), json!(otp.expose()));
        }
        if host.force {
            c.options.insert("force".into(), json!(true));
        }
        if let Some(u) = &host.userclass {
            c.options.insert("userclass".into(), json!(u));
        }
        if let Some(v) = &host.nsosversion {
            c.options.insert("nsosversion".into(), json!(v));
        }
        if let Some(l) = &host.nshostlocation {
            c.options.insert("nshostlocation".into(), json!(l));
        }
        if let Some(b) = &host.binding {
            c.options.insert(BINDING_ATTRIBUTE.into(), json!(b));
        }
        c
    }

    /// `host_mod <fqdn> userpassword=<otp>`: (re)sets the enrolment OTP.
    pub fn host_mod_otp(fqdn: &str, otp: &Secret) -> Self {
        Self::one("host_mod", fqdn).with_option("userpassword", json!(otp.expose()))
    }

    /// `host_mod <fqdn>` that sets the OTP and/or the owner binding; at
    /// least one must be given.
    pub fn host_update(fqdn: &str, otp: Option<&Secret>, binding: Option<&str>) -> Self {
        let mut c = Self::one("host_mod", fqdn);
        if let Some(otp) = otp {
            c.options.insert("userpassword".into(), json!(otp.expose()));
        }
        if let Some(b) = binding {
            c.options.insert(BINDING_ATTRIBUTE.into(), json!(b));
        }
        c
    }

    /// `host_mod <fqdn>` that replaces the binding `expected` with
    /// `replacement` (and sets `otp`, when given) only if the host still
    /// holds `expected`: IPA checks a `delattr` value against the entry and
    /// fails the whole command with `AttrValueNotFound` (4026) when it is
    /// gone, so a change made since the host was read is never overwritten.
    pub fn host_swap_binding(
        fqdn: &str,
        expected: &str,
        replacement: &str,
        otp: Option<&Secret>,
    ) -> Self {
        let mut c = Self::one("host_mod", fqdn)
            .with_option(
                "delattr",
                json!([format!("{BINDING_ATTRIBUTE}={expected}")]),
            )
            .with_option(
                "addattr",
                json!([format!("{BINDING_ATTRIBUTE}={replacement}")]),
            );
        if let Some(otp) = otp {
            c.options.insert("userpassword".into(), json!(otp.expose()));
        }
        c
    }

    /// `host_find nshardwareplatform=<binding>`: every host bound to one
    /// owner with one role (an exact match, as IPA's attribute options are).
    pub fn host_find_bound(binding: &str) -> Self {
        Self::new("host_find", vec![], Map::new())
            .with_option(BINDING_ATTRIBUTE, json!(binding))
            .with_option("sizelimit", json!(0))
    }

    /// `host_find <text>`: IPA's free-text search, a case-insensitive
    /// substring of any of the host's search attributes (FQDN, description,
    /// locality, location, platform, OS version). Callers check what they
    /// find: some of those attributes are written from tenant input.
    pub fn host_find_text(text: &str) -> Self {
        Self::new("host_find", vec![json!(text)], Map::new()).with_option("sizelimit", json!(0))
    }

    /// `host_show <fqdn>`.
    pub fn host_show(fqdn: &str) -> Self {
        Self::one("host_show", fqdn)
    }

    /// `host_find fqdn=<fqdn>` (exact match).
    pub fn host_find_fqdn(fqdn: &str) -> Self {
        Self::new("host_find", vec![], Map::new()).with_option("fqdn", json!(fqdn))
    }

    /// `host_disable <fqdn>`: removes the host's keys and certificates, so
    /// it has to enroll again (with a new OTP).
    pub fn host_disable(fqdn: &str) -> Self {
        Self::one("host_disable", fqdn)
    }

    /// `host_del <fqdn> updatedns=<updatedns>`.
    pub fn host_del(fqdn: &str, updatedns: bool) -> Self {
        Self::one("host_del", fqdn).with_option("updatedns", json!(updatedns))
    }

    /// `service_add <principal> force=true`.
    pub fn service_add(principal: &str) -> Self {
        Self::one("service_add", principal).with_option("force", json!(true))
    }

    /// `service_add_host <principal> host=[hosts]`: lets the hosts manage it.
    pub fn service_add_host(principal: &str, hosts: &[String]) -> Self {
        Self::one("service_add_host", principal).with_option("host", json!(hosts))
    }

    /// `service_remove_host <principal> host=[hosts]`: the hosts no longer
    /// manage it.
    pub fn service_remove_host(principal: &str, hosts: &[String]) -> Self {
        Self::one("service_remove_host", principal).with_option("host", json!(hosts))
    }

    /// `service_show <principal>`.
    pub fn service_show(principal: &str) -> Self {
        Self::one("service_show", principal)
    }

    /// `service_find man_by_host=<host>`.
    pub fn service_find_managed_by(host: &str) -> Self {
        Self::new("service_find", vec![], Map::new()).with_option("man_by_host", json!(host))
    }

    /// `service_del <principal>`.
    pub fn service_del(principal: &str) -> Self {
        Self::one("service_del", principal)
    }

    /// `dnsrecord_add <zone> <name> a_part_ip_address=<ip>` (or
    /// `aaaa_part_ip_address` for an IPv6 address).
    pub fn dnsrecord_add_a(zone: &str, name: &str, ip: &str) -> Self {
        let part = if is_v6(ip) {
            "aaaa_part_ip_address"
        } else {
            "a_part_ip_address"
        };
        Self::new("dnsrecord_add", vec![json!(zone), json!(name)], Map::new())
            .with_option(part, json!(ip))
    }

    /// `dnsrecord_find <zone> arecord=<ip>` (or `aaaarecord`).
    pub fn dnsrecord_find_a(zone: &str, ip: &str) -> Self {
        Self::new("dnsrecord_find", vec![json!(zone)], Map::new())
            .with_option(address_attribute(ip), json!(ip))
    }

    /// `dnsrecord_show <zone> <name>`.
    pub fn dnsrecord_show(zone: &str, name: &str) -> Self {
        Self::new("dnsrecord_show", vec![json!(zone), json!(name)], Map::new())
    }

    /// `dnsrecord_add <zone> <name> txtrecord=<text>` (the raw value; IPA
    /// stores it as given, like `txt_part_data`).
    pub fn dnsrecord_add_txt(zone: &str, name: &str, text: &str) -> Self {
        Self::new("dnsrecord_add", vec![json!(zone), json!(name)], Map::new())
            .with_option("txtrecord", json!(text))
    }

    /// `dnsrecord_del <zone> <name> txtrecord=<text>`.
    pub fn dnsrecord_del_txt(zone: &str, name: &str, text: &str) -> Self {
        Self::new("dnsrecord_del", vec![json!(zone), json!(name)], Map::new())
            .with_option("txtrecord", json!(text))
    }

    /// `dnsrecord_del <zone> <name> del_all=true`.
    pub fn dnsrecord_del_all(zone: &str, name: &str) -> Self {
        Self::new("dnsrecord_del", vec![json!(zone), json!(name)], Map::new())
            .with_option("del_all", json!(true))
    }

    /// `dnsrecord_del <zone> <name> arecord=<ip>` (or `aaaarecord`).
    pub fn dnsrecord_del_a(zone: &str, name: &str, ip: &str) -> Self {
        Self::new("dnsrecord_del", vec![json!(zone), json!(name)], Map::new())
            .with_option(address_attribute(ip), json!(ip))
    }
}

fn is_v6(ip: &str) -> bool {
    ip.contains(':')
}

/// The record attribute that holds `ip`: `arecord` or `aaaarecord`.
pub fn address_attribute(ip: &str) -> &'static str {
    if is_v6(ip) {
        "aaaarecord"
    } else {
        "arecord"
    }
}

/// The output of a successful command (`response.result`, with IPA's
/// special encodings already unwrapped).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandOutput(pub Value);

impl CommandOutput {
    /// The LDAP entry of `*_add`/`*_mod`/`*_show`/member commands
    /// (`result.result` when it is an object).
    pub fn entry(&self) -> Option<&Map<String, Value>> {
        self.0.get("result").and_then(Value::as_object)
    }

    /// The entries of a `*_find` (`result.result` when it is an array).
    pub fn entries(&self) -> &[Value] {
        self.0
            .get("result")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// `count` of a `*_find`.
    pub fn count(&self) -> u64 {
        self.0.get("count").and_then(Value::as_u64).unwrap_or(0)
    }

    /// `summary`.
    pub fn summary(&self) -> Option<&str> {
        self.0.get("summary").and_then(Value::as_str)
    }

    /// `completed` and `failed` of a member-add command
    /// (`service_add_host`, `role_add_member`, ...).
    pub fn member_result(&self) -> MemberAddResult {
        let mut failed = Vec::new();
        collect_failed(self.0.get("failed").unwrap_or(&Value::Null), &mut failed);
        MemberAddResult {
            completed: self.0.get("completed").and_then(Value::as_u64).unwrap_or(0),
            failed,
        }
    }
}

/// `failed` is nested `{attr: {type: [[member, reason], ...]}}`: flatten it.
fn collect_failed(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => m.values().for_each(|x| collect_failed(x, out)),
        Value::Array(items) => {
            for it in items {
                match it {
                    Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => out.push((
                        pair[0].as_str().unwrap_or("").to_string(),
                        pair[1]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| pair[1].to_string()),
                    )),
                    other => collect_failed(other, out),
                }
            }
        }
        _ => {}
    }
}

/// What a member-add command did: how many were added and which were not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberAddResult {
    /// Members actually added.
    pub completed: u64,
    /// `(member, reason)` for members not added, e.g.
    /// `("vm1.example.com", "This entry is already a member")`.
    pub failed: Vec<(String, String)>,
}

impl MemberAddResult {
    /// Failures other than "already a member" (which is success for an
    /// idempotent caller). The reason text is IPA's fixed English string
    /// for `AlreadyGroupMember` (4014); batch `failed` lists carry no code.
    pub fn real_failures(&self) -> Vec<&(String, String)> {
        self.failed
            .iter()
            .filter(|(_, why)| why != "This entry is already a member")
            .collect()
    }
}

/// First string of a multi-valued attribute.
fn first(entry: &Map<String, Value>, key: &str) -> Option<String> {
    match entry.get(key) {
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// All strings of a multi-valued attribute.
fn all(entry: &Map<String, Value>, key: &str) -> Vec<String> {
    match entry.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn flag(entry: &Map<String, Value>, key: &str) -> bool {
    entry.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A host entry as `host_show`/`host_add`/`host_mod` return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntry {
    /// `fqdn`.
    pub fqdn: String,
    /// `description`.
    pub description: Option<String>,
    /// `has_keytab`: enrolled.
    pub has_keytab: bool,
    /// `has_password`: an OTP is set (not yet enrolled).
    pub has_password: bool,
    /// `krbprincipalname` (absent for an OTP host until it enrols).
    pub krbprincipalname: Vec<String>,
    /// `managedby_host`.
    pub managedby_host: Vec<String>,
    /// `userclass`.
    pub userclass: Vec<String>,
    /// `nsosversion`.
    pub nsosversion: Option<String>,
    /// `nshostlocation`.
    pub nshostlocation: Option<String>,
    /// `nshardwareplatform`: the owner binding, when there is one.
    pub binding: Option<String>,
    /// `krblastpwdchange`: when the host's keys were last set (its
    /// enrollment); only in answers to commands sent with `all`.
    pub keys_changed_at: Option<SystemTime>,
}

impl HostEntry {
    /// Reads the entry of a host command's output.
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Self> {
        Some(Self {
            fqdn: first(entry, "fqdn")?,
            description: first(entry, "description"),
            has_keytab: flag(entry, "has_keytab"),
            has_password: flag(entry, "has_password"),
            krbprincipalname: all(entry, "krbprincipalname"),
            managedby_host: all(entry, "managedby_host"),
            userclass: all(entry, "userclass"),
            nsosversion: first(entry, "nsosversion"),
            nshostlocation: first(entry, "nshostlocation"),
            binding: first(entry, BINDING_ATTRIBUTE),
            keys_changed_at: entry.get("krblastpwdchange").and_then(generalized_time),
        })
    }
}

/// An LDAP generalized time as IPA's JSON encoder sends it
/// (`[{"__datetime__": "20261207230000Z"}]`; a bare string is accepted too).
fn generalized_time(value: &Value) -> Option<SystemTime> {
    let v = match value {
        Value::Array(a) => a.first()?,
        v => v,
    };
    let text = match v {
        Value::Object(o) => o.get("__datetime__")?.as_str()?,
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%SZ").ok()?;
    Some(SystemTime::from(t.and_utc()))
}

/// A service entry as `service_show` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// `krbcanonicalname` (or first `krbprincipalname`), with the realm.
    pub principal: String,
    /// `krbprincipalname` (all aliases).
    pub krbprincipalname: Vec<String>,
    /// `managedby_host`: hosts that may manage it (includes its own host).
    pub managedby_host: Vec<String>,
    /// `has_keytab`.
    pub has_keytab: bool,
}

impl ServiceEntry {
    /// Reads the entry of a service command's output.
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Self> {
        let krbprincipalname = all(entry, "krbprincipalname");
        let principal =
            first(entry, "krbcanonicalname").or_else(|| krbprincipalname.first().cloned())?;
        Some(Self {
            principal,
            krbprincipalname,
            managedby_host: all(entry, "managedby_host"),
            has_keytab: flag(entry, "has_keytab"),
        })
    }
}

/// A DNS record name and its address and text values, as `dnsrecord_find`
/// and `dnsrecord_show` return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRecordEntry {
    /// `idnsname` (relative, e.g. `vm1`).
    pub name: String,
    /// `arecord`.
    pub arecord: Vec<String>,
    /// `aaaarecord`.
    pub aaaarecord: Vec<String>,
    /// `txtrecord` (raw values, as stored).
    pub txtrecord: Vec<String>,
}

impl DnsRecordEntry {
    /// Reads one `dnsrecord_find` item or a `dnsrecord_show` entry
    /// (wrappers already unwrapped).
    pub fn from_entry(entry: &Map<String, Value>) -> Option<Self> {
        Some(Self {
            name: first(entry, "idnsname")?,
            arecord: all(entry, "arecord"),
            aaaarecord: all(entry, "aaaarecord"),
            txtrecord: all(entry, "txtrecord"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_option_values() {
        let c = IpaCommand::host_mod_otp("vm1.example.com", &Secret::new("0123456789abcdef"));
        let d = format!("{c:?}");
        assert!(d.contains("userpassword") && d.contains("vm1.example.com"));
        assert!(!d.contains("0123456789abcdef"), "{d}");
        assert_eq!(c.describe(), "host_mod vm1.example.com");
    }

    #[test]
    fn host_add_uses_api_parameter_names() {
        let h = NewHost {
            fqdn: "vm1.example.com".into(),
            description: Some("IPA host for OpenStack".into()),
            otp: Some(Secret::new("x")),
            userclass: Some("web".into()),
            nsosversion: Some("fedora 39".into()),
            nshostlocation: Some("rack 1".into()),
            force: true,
            binding: Some("novajoin/1 instance=i-1".into()),
        };
        let c = IpaCommand::host_add(&h);
        let keys: Vec<_> = c.options().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "description",
                "userpassword",
                "force",
                "userclass",
                "nsosversion",
                "nshostlocation",
                "nshardwareplatform"
            ]
        );
    }

    #[test]
    fn member_failures_are_flattened() {
        let out = CommandOutput(json!({"result": {}, "completed": 0,
            "failed": {"managedby": {"host": [["a.example.com", "This entry is already a member"],
                                              ["b.example.com", "no such entry"]]}}}));
        let m = out.member_result();
        assert_eq!(m.failed.len(), 2);
        assert_eq!(
            m.real_failures(),
            vec![&("b.example.com".to_string(), "no such entry".to_string())]
        );
    }
}
