//! The JSON-RPC commands: argument and option checking as ipalib's
//! `Command.__call__` does it (version, then unknown options, then argument
//! count), and each command's semantics on [`State`].

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use crate::errors::{message, IpaErr};
use crate::state::{
    generalized_time, DnsRecordView, Host, PermissionView, PrivilegeView, RoleView, Service, State,
    RECORD_ATTRS,
};

/// Server identity and behaviour switches.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub realm: String,
    pub domain: String,
    pub fqdn: String,
    pub basedn: String,
    /// API version the server speaks, `2.N`.
    pub api_version: String,
    /// Package version (`version` in every response).
    pub package_version: String,
    /// Reject a client minor version newer than the server's (IPA ≤ 4.3).
    pub strict_minor_version: bool,
    /// Whether IPA DNS is configured.
    pub dns_enabled: bool,
}

/// Per-call context.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a ServerConfig,
    /// Minor of the effective client API version (selects encodings).
    pub minor: u32,
}

impl Ctx<'_> {
    /// A DNS name on the wire: wrapped for clients ≥ 2.88.
    fn dns(&self, name: &str) -> Value {
        if self.minor >= 88 {
            json!({"__dns_name__": name})
        } else {
            json!(name)
        }
    }

    /// A datetime on the wire (ipalib's JSON encoder): wrapped for clients
    /// ≥ 2.84 (`datetime_values`), else the bare GeneralizedTime text.
    fn datetime(&self, t: std::time::SystemTime) -> Value {
        let text = generalized_time(t);
        if self.minor >= 84 {
            json!({"__datetime__": text})
        } else {
            json!(text)
        }
    }
}

type Out = Result<Value, IpaErr>;

struct Spec {
    /// Positional parameter names; a trailing `?` means optional, `+` one or more, `*` any.
    args: &'static [&'static str],
    options: &'static [&'static str],
}

const COMMON: &[&str] = &["version", "all", "raw", "no_members"];

fn spec(name: &str) -> Option<Spec> {
    let s = |args, options| Some(Spec { args, options });
    match name {
        "ping" => s(&[], &[]),
        "batch" => s(&["methods*"], &["keeponly"]),
        "session_logout" => s(&[], &[]),
        "host_add" => s(
            &["fqdn"],
            &[
                "description",
                "l",
                "nshostlocation",
                "nshardwareplatform",
                "nsosversion",
                "userpassword",
                "random",
                "usercertificate",
                "macaddress",
                "ipasshpubkey",
                "userclass",
                "ipaassignedidview",
                "krbprincipalauthind",
                "ipakrbrequirespreauth",
                "ipakrbokasdelegate",
                "ipakrboktoauthasdelegate",
                "force",
                "no_reverse",
                "ip_address",
                "setattr",
                "addattr",
            ],
        ),
        "host_mod" => s(
            &["fqdn"],
            &[
                "description",
                "l",
                "nshostlocation",
                "nshardwareplatform",
                "nsosversion",
                "userpassword",
                "random",
                "usercertificate",
                "macaddress",
                "ipasshpubkey",
                "userclass",
                "ipaassignedidview",
                "krbprincipalauthind",
                "ipakrbrequirespreauth",
                "ipakrbokasdelegate",
                "ipakrboktoauthasdelegate",
                "krbprincipalname",
                "updatedns",
                "setattr",
                "addattr",
                "delattr",
                "rights",
            ],
        ),
        "host_show" => s(&["fqdn"], &["rights", "out"]),
        "host_find" => s(
            &["criteria?"],
            &[
                "fqdn",
                "description",
                "l",
                "nshostlocation",
                "nshardwareplatform",
                "nsosversion",
                "userclass",
                "macaddress",
                "timelimit",
                "sizelimit",
                "in_hostgroup",
                "not_in_hostgroup",
                "man_by_host",
                "not_man_by_host",
                "man_host",
                "not_man_host",
                "pkey_only",
            ],
        ),
        "host_del" => s(&["fqdn+"], &["continue", "updatedns"]),
        "host_disable" => s(&["fqdn"], &[]),
        "service_add" => s(
            &["krbcanonicalname"],
            &[
                "krbprincipalauthind",
                "usercertificate",
                "ipakrbrequirespreauth",
                "ipakrbokasdelegate",
                "ipakrboktoauthasdelegate",
                "force",
                "skip_host_check",
                "setattr",
                "addattr",
            ],
        ),
        "service_add_host" => s(&["krbcanonicalname"], &["host"]),
        "service_remove_host" => s(&["krbcanonicalname"], &["host"]),
        "service_show" => s(&["krbcanonicalname"], &["rights", "out"]),
        "service_find" => s(
            &["criteria?"],
            &[
                "krbprincipalname",
                "krbcanonicalname",
                "man_by_host",
                "not_man_by_host",
                "timelimit",
                "sizelimit",
                "pkey_only",
            ],
        ),
        "service_del" => s(&["krbcanonicalname+"], &["continue"]),
        "dnszone_add" => s(
            &["idnsname"],
            &[
                "idnssoamname",
                "idnssoarname",
                "force",
                "skip_overlap_check",
                "skip_nameserver_check",
                "dnsttl",
            ],
        ),
        "dnsrecord_add" => s(
            &["dnszoneidnsname", "idnsname"],
            &[
                "dnsttl",
                "dnsclass",
                "arecord",
                "a_part_ip_address",
                "a_extra_create_reverse",
                "aaaarecord",
                "aaaa_part_ip_address",
                "aaaa_extra_create_reverse",
                "ptrrecord",
                "cnamerecord",
                "sshfprecord",
                "txtrecord",
                "force",
                "structured",
                "setattr",
                "addattr",
            ],
        ),
        "dnsrecord_find" => s(
            &["dnszoneidnsname", "criteria?"],
            &[
                "idnsname",
                "dnsttl",
                "arecord",
                "aaaarecord",
                "ptrrecord",
                "cnamerecord",
                "txtrecord",
                "timelimit",
                "sizelimit",
                "pkey_only",
                "structured",
            ],
        ),
        "dnsrecord_show" => s(&["dnszoneidnsname", "idnsname"], &["rights"]),
        "dnsrecord_del" => s(
            &["dnszoneidnsname", "idnsname"],
            &[
                "arecord",
                "aaaarecord",
                "ptrrecord",
                "cnamerecord",
                "sshfprecord",
                "txtrecord",
                "del_all",
                "structured",
            ],
        ),
        "permission_add" => s(
            &["cn"],
            &[
                "ipapermright",
                "attrs",
                "type",
                "ipapermbindruletype",
                "ipapermlocation",
                "extratargetfilter",
                "ipapermtargetfilter",
                "memberof",
                "targetgroup",
                "subtree",
                "setattr",
                "addattr",
            ],
        ),
        "permission_show" => s(&["cn"], &["rights"]),
        "privilege_add" => s(&["cn"], &["description", "setattr", "addattr"]),
        "privilege_add_permission" => s(&["cn"], &["permission"]),
        "privilege_show" => s(&["cn"], &["rights"]),
        "role_add" => s(&["cn"], &["description", "setattr", "addattr"]),
        "role_add_privilege" => s(&["cn"], &["privilege"]),
        "role_add_member" => s(
            &["cn"],
            &[
                "user",
                "group",
                "host",
                "hostgroup",
                "service",
                "idoverrideuser",
            ],
        ),
        "role_show" => s(&["cn"], &["rights"]),
        _ => None,
    }
}

/// Parses `2.N`; `None` when it is not a version.
pub(crate) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Runs one command. `principal` is the caller (for `ping` and logs).
pub(crate) fn execute(
    state: &mut State,
    cfg: &ServerConfig,
    method: &str,
    args: &[Value],
    options: &Map<String, Value>,
) -> Out {
    let name = method.strip_suffix("/1").unwrap_or(method);
    let Some(spec) = spec(name) else {
        return Err(IpaErr::command(method));
    };
    *state.command_counts.entry(name.to_string()).or_default() += 1;
    let server = parse_version(&cfg.api_version).expect("server api_version is 2.N");
    // 1. version
    let (minor, version_missing) = match options.get("version") {
        Some(v) => {
            let cver = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match parse_version(&cver) {
                Some((major, minor))
                    if major == server.0 && !(cfg.strict_minor_version && minor > server.1) =>
                {
                    (minor, false)
                }
                _ => {
                    return Err(IpaErr::version(
                        &cver,
                        &cfg.api_version,
                        &format!("https://{}/ipa/xml", cfg.fqdn),
                    ))
                }
            }
        }
        None => (server.1, true),
    };
    // 2. unknown options
    if let Some(bad) = options
        .keys()
        .find(|k| !COMMON.contains(&k.as_str()) && !spec.options.contains(&k.as_str()))
    {
        return Err(IpaErr::unknown_option(bad));
    }
    // 3. arguments
    let max = if spec
        .args
        .last()
        .is_some_and(|a| a.ends_with('+') || a.ends_with('*'))
    {
        usize::MAX
    } else {
        spec.args.len()
    };
    let takes_list = max == usize::MAX;
    if !takes_list && args.len() > max {
        return Err(IpaErr::max_arguments(name, max));
    }
    for (i, a) in spec.args.iter().enumerate() {
        let required = !a.ends_with('?') && !a.ends_with('*');
        let missing = match args.get(i) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(v)) => v.is_empty(),
            _ => false,
        };
        if required && missing {
            return Err(IpaErr::requirement(a.trim_end_matches(['?', '+', '*'])));
        }
    }
    let ctx = Ctx { cfg, minor };
    let mut out = if name == "batch" {
        batch(state, cfg, args, options)?
    } else {
        run(state, &ctx, name, args, options)?
    };
    let sets_otp = matches!(name, "host_add" | "host_mod")
        && (options.contains_key("userpassword")
            || flag(options, "random").unwrap_or(false)
            || setattr_sets_password(options));
    if sets_otp {
        state.otps_set += 1;
    }
    if version_missing {
        if let Value::Object(o) = &mut out {
            let mut data = Map::new();
            data.insert("server_version".into(), json!(cfg.api_version));
            o.insert("messages".into(), json!([message(13001, "VersionMissing", format!(
                "API Version number was not sent, forward compatibility not guaranteed. Assuming server's API version, {}",
                cfg.api_version), data)]));
        }
    }
    Ok(out)
}

fn batch(
    state: &mut State,
    cfg: &ServerConfig,
    args: &[Value],
    options: &Map<String, Value>,
) -> Out {
    // `methods*` arrives as one list argument or as the items themselves.
    let items: Vec<Value> = match args {
        [Value::Array(items)] if items.iter().all(Value::is_object) || items.is_empty() => {
            items.clone()
        }
        other => other.to_vec(),
    };
    if items.iter().any(|i| !i.is_object()) {
        return Err(IpaErr::conversion("methods", "must be a dictionary"));
    }
    let version = options.get("version").cloned();
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        let r = (|| {
            let Some(method) = item.get("method").and_then(Value::as_str) else {
                return Err(IpaErr::requirement("method"));
            };
            let Some(params) = item.get("params") else {
                return Err(IpaErr::requirement("params"));
            };
            let (Some(a), Some(o)) = (
                params.get(0).and_then(Value::as_array),
                params.get(1).and_then(Value::as_object),
            ) else {
                return Err(IpaErr::conversion(
                    "params",
                    "must contain a tuple (list, dict)",
                ));
            };
            if params.as_array().map(Vec::len) != Some(2) {
                return Err(IpaErr::conversion(
                    "params",
                    "must contain a tuple (list, dict)",
                ));
            }
            if method == "batch" || method == "batch/1" {
                return Err(IpaErr::command(method));
            }
            let mut o = o.clone();
            if let (false, Some(v)) = (o.contains_key("version"), &version) {
                o.insert("version".into(), v.clone());
            }
            execute(state, cfg, method, a, &o)
        })();
        results.push(match r {
            Ok(Value::Object(mut m)) => {
                m.insert("error".into(), Value::Null);
                Value::Object(m)
            }
            Ok(other) => json!({"result": other, "error": null}),
            Err(e) => e.to_batch_item(),
        });
    }
    Ok(json!({"count": results.len(), "results": results}))
}

fn run(state: &mut State, ctx: &Ctx, name: &str, args: &[Value], o: &Map<String, Value>) -> Out {
    match name {
        "ping" => Ok(
            json!({"summary": format!("IPA server version {}. API version {}",
            ctx.cfg.package_version, ctx.cfg.api_version)}),
        ),
        "session_logout" => Ok(json!({"result": null})),
        "host_add" => host_add(state, ctx, args, o),
        "host_mod" => host_mod(state, ctx, args, o),
        "host_show" => {
            let fqdn = norm_host(&arg(args, 0, "fqdn")?);
            // 389-ds returns no entry the caller may not read: NotFound.
            let h = state
                .hosts
                .get(&fqdn)
                .filter(|_| !state.denied(name, &[&fqdn]))
                .ok_or_else(|| host_not_found(&fqdn))?;
            let mut entry = host_entry(h, ctx, true, flag(o, "all")?);
            if flag(o, "rights")? {
                // 389-ds's effective rights for the caller: every writable
                // host attribute, without `w` where a rule denies host_mod.
                let write = !state.denied("host_mod", &[&fqdn]);
                let rights = if write { "rscwo" } else { "rsc" };
                let attrs: Map<String, Value> = HOST_WRITABLE_ATTRIBUTES
                    .iter()
                    .map(|a| (a.to_string(), json!(rights)))
                    .collect();
                entry["attributelevelrights"] = Value::Object(attrs);
            }
            Ok(json!({"result": entry, "value": fqdn, "summary": null}))
        }
        "host_find" => host_find(state, ctx, args, o),
        "host_del" => host_del(state, ctx, args, o),
        "host_disable" => host_disable(state, name, args),
        "service_add" => service_add(state, ctx, args, o),
        "service_add_host" | "service_remove_host" => service_member(state, ctx, name, args, o),
        "service_show" => {
            let raw = arg(args, 0, "krbcanonicalname")?;
            let p = principal_key(ctx, &raw)?;
            let s = state
                .services
                .get(&p)
                .filter(|_| !state.denied(name, &service_names(&raw, &p)))
                .ok_or_else(|| IpaErr::not_found(format!("{p}: service not found")))?;
            Ok(json!({"result": service_entry(s, ctx), "value": p, "summary": null}))
        }
        "service_find" => service_find(state, ctx, args, o),
        "service_del" => service_del(state, args, o, ctx),
        "dnszone_add" => {
            let zone = norm_zone(&arg(args, 0, "idnsname")?);
            if state.zones.contains_key(&zone) {
                return Err(IpaErr::duplicate("DNS zone", &zone));
            }
            let dn = format!("idnsname={zone},cn=dns,{}", ctx.cfg.basedn);
            check_access(state, name, &[&zone], Right::Add, &dn)?;
            state.zones.insert(zone.clone(), Default::default());
            Ok(
                json!({"result": {"idnsname": [ctx.dns(&zone)], "dn": format!("idnsname={zone},cn=dns,{}", ctx.cfg.basedn)},
                      "value": ctx.dns(&zone), "summary": format!("Added DNS zone \"{zone}\"")}),
            )
        }
        "dnsrecord_add" => dnsrecord_add(state, ctx, args, o),
        "dnsrecord_find" => dnsrecord_find(state, ctx, args, o),
        "dnsrecord_show" => dnsrecord_show(state, ctx, args, o),
        "dnsrecord_del" => dnsrecord_del(state, ctx, args, o),
        "permission_add" => {
            let cn = arg(args, 0, "cn")?;
            if state.permissions.contains_key(&cn.to_lowercase()) {
                return Err(IpaErr::duplicate("permission", &cn));
            }
            let dn = format!("cn={cn},cn=permissions,cn=pbac,{}", ctx.cfg.basedn);
            check_access(state, name, &[&cn], Right::Add, &dn)?;
            let p = PermissionView {
                name: cn.clone(),
                rights: opt_strs(o, "ipapermright")?,
                object_type: opt_str(o, "type")?,
                attrs: opt_strs(o, "attrs")?,
            };
            let entry = permission_entry(&p, ctx);
            state.permissions.insert(cn.to_lowercase(), p);
            Ok(
                json!({"result": entry, "value": cn, "summary": format!("Added permission \"{cn}\"")}),
            )
        }
        "permission_show" => {
            let cn = arg(args, 0, "cn")?;
            let p = state
                .permissions
                .get(&cn.to_lowercase())
                .ok_or_else(|| IpaErr::not_found(format!("{cn}: permission not found")))?;
            Ok(json!({"result": permission_entry(p, ctx), "value": p.name, "summary": null}))
        }
        "privilege_add" | "role_add" => {
            let cn = arg(args, 0, "cn")?;
            let description = opt_str(o, "description")?;
            let (kind, exists) = if name == "privilege_add" {
                (
                    "privilege",
                    state.privileges.contains_key(&cn.to_lowercase()),
                )
            } else {
                ("role", state.roles.contains_key(&cn.to_lowercase()))
            };
            if exists {
                return Err(IpaErr::duplicate(kind, &cn));
            }
            let dn = if name == "privilege_add" {
                format!("cn={cn},cn=privileges,cn=pbac,{}", ctx.cfg.basedn)
            } else {
                format!("cn={cn},cn=roles,cn=accounts,{}", ctx.cfg.basedn)
            };
            check_access(state, name, &[&cn], Right::Add, &dn)?;
            let entry = if name == "privilege_add" {
                let p = PrivilegeView {
                    name: cn.clone(),
                    description,
                    permissions: vec![],
                };
                let e = privilege_entry(&p, ctx);
                state.privileges.insert(cn.to_lowercase(), p);
                e
            } else {
                let r = RoleView {
                    name: cn.clone(),
                    description,
                    ..Default::default()
                };
                let e = role_entry(&r, ctx);
                state.roles.insert(cn.to_lowercase(), r);
                e
            };
            Ok(json!({"result": entry, "value": cn, "summary": format!("Added {kind} \"{cn}\"")}))
        }
        "privilege_show" => {
            let cn = arg(args, 0, "cn")?;
            let p = state
                .privileges
                .get(&cn.to_lowercase())
                .ok_or_else(|| IpaErr::not_found(format!("{cn}: privilege not found")))?;
            Ok(json!({"result": privilege_entry(p, ctx), "value": p.name, "summary": null}))
        }
        "role_show" => {
            let cn = arg(args, 0, "cn")?;
            let r = state
                .roles
                .get(&cn.to_lowercase())
                .ok_or_else(|| IpaErr::not_found(format!("{cn}: role not found")))?;
            Ok(json!({"result": role_entry(r, ctx), "value": r.name, "summary": null}))
        }
        "privilege_add_permission" => {
            let cn = arg(args, 0, "cn")?;
            let wanted = opt_strs(o, "permission")?;
            let known: Vec<(String, String)> = state
                .permissions
                .iter()
                .map(|(k, p)| (k.clone(), p.name.clone()))
                .collect();
            let denied = state.denied(name, &[&cn]);
            let p = state
                .privileges
                .get_mut(&cn.to_lowercase())
                .ok_or_else(|| IpaErr::not_found(format!("{cn}: privilege not found")))?;
            let mut failed = Vec::new();
            let mut completed = 0;
            for w in wanted {
                match known.iter().find(|(k, _)| *k == w.to_lowercase()) {
                    None => failed.push(json!([w, "no such entry"])),
                    // A reverse member: IPA writes the permission's `member`.
                    Some((_, real)) if denied => failed.push(json!([
                        w,
                        aci_error(
                            Right::Write("member"),
                            &format!("cn={real},cn=permissions,cn=pbac,{}", ctx.cfg.basedn)
                        )
                        .message
                    ])),
                    Some((_, real)) if p.permissions.contains(real) => {
                        failed.push(json!([w, "This entry is already a member"]))
                    }
                    Some((_, real)) => {
                        p.permissions.push(real.clone());
                        completed += 1;
                    }
                }
            }
            let entry = privilege_entry(p, ctx);
            Ok(
                json!({"result": entry, "completed": completed, "failed": {"member": {"permission": failed}}}),
            )
        }
        "role_add_privilege" => {
            let cn = arg(args, 0, "cn")?;
            let wanted = opt_strs(o, "privilege")?;
            let known: Vec<(String, String)> = state
                .privileges
                .iter()
                .map(|(k, p)| (k.clone(), p.name.clone()))
                .collect();
            let denied = state.denied(name, &[&cn]);
            let r = state
                .roles
                .get_mut(&cn.to_lowercase())
                .ok_or_else(|| IpaErr::not_found(format!("{cn}: role not found")))?;
            let mut failed = Vec::new();
            let mut completed = 0;
            for w in wanted {
                match known.iter().find(|(k, _)| *k == w.to_lowercase()) {
                    None => failed.push(json!([w, "no such entry"])),
                    // A reverse member: IPA writes the privilege's `member`.
                    Some((_, real)) if denied => failed.push(json!([
                        w,
                        aci_error(
                            Right::Write("member"),
                            &format!("cn={real},cn=privileges,cn=pbac,{}", ctx.cfg.basedn)
                        )
                        .message
                    ])),
                    Some((_, real)) if r.privileges.contains(real) => {
                        failed.push(json!([w, "This entry is already a member"]))
                    }
                    Some((_, real)) => {
                        r.privileges.push(real.clone());
                        completed += 1;
                    }
                }
            }
            let entry = role_entry(r, ctx);
            Ok(
                json!({"result": entry, "completed": completed, "failed": {"member": {"privilege": failed}}}),
            )
        }
        "role_add_member" => role_add_member(state, ctx, args, o),
        _ => Err(IpaErr::command(name)),
    }
}

// ---- argument and option helpers ----

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "TRUE".into() } else { "FALSE".into() }),
        _ => None,
    }
}

fn arg(args: &[Value], i: usize, name: &str) -> Result<String, IpaErr> {
    match args.get(i) {
        Some(Value::Array(v)) if v.len() == 1 => as_text(&v[0]),
        Some(Value::Array(v)) if v.len() > 1 => {
            return Err(IpaErr::validation(name, "Only one value is allowed"))
        }
        Some(v) => as_text(v),
        None => None,
    }
    .filter(|s| !s.is_empty())
    .ok_or_else(|| IpaErr::requirement(name))
}

fn arg_list(args: &[Value], i: usize, name: &str) -> Result<Vec<String>, IpaErr> {
    let v: Vec<String> = match args.get(i) {
        Some(Value::Array(v)) => v.iter().filter_map(as_text).collect(),
        Some(v) => as_text(v).into_iter().collect(),
        None => vec![],
    };
    if v.is_empty() {
        return Err(IpaErr::requirement(name));
    }
    Ok(v)
}

fn opt_str(o: &Map<String, Value>, name: &str) -> Result<Option<String>, IpaErr> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(v)) if v.len() > 1 => {
            Err(IpaErr::validation(name, "Only one value is allowed"))
        }
        Some(Value::Array(v)) => Ok(v.first().and_then(as_text)),
        Some(v) => as_text(v)
            .map(Some)
            .ok_or_else(|| IpaErr::conversion(name, "must be Unicode text")),
    }
}

fn opt_strs(o: &Map<String, Value>, name: &str) -> Result<Vec<String>, IpaErr> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(v)) => v
            .iter()
            .map(|x| as_text(x).ok_or_else(|| IpaErr::conversion(name, "must be Unicode text")))
            .collect(),
        Some(v) => as_text(v)
            .map(|s| vec![s])
            .ok_or_else(|| IpaErr::conversion(name, "must be Unicode text")),
    }
}

fn flag(o: &Map<String, Value>, name: &str) -> Result<bool, IpaErr> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(IpaErr::conversion(name, "must be True or False")),
    }
}

fn sizelimit(o: &Map<String, Value>) -> Result<Option<usize>, IpaErr> {
    match o.get("sizelimit") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_text(v)
            .and_then(|s| s.parse::<usize>().ok())
            .map(|n| if n == 0 { None } else { Some(n) })
            .ok_or_else(|| IpaErr::conversion("sizelimit", "must be an integer")),
    }
}

fn find_output(mut entries: Vec<Value>, limit: Option<usize>, noun: &str) -> Value {
    let truncated = limit.is_some_and(|l| entries.len() > l);
    if let Some(l) = limit {
        entries.truncate(l);
    }
    let n = entries.len();
    let plural = if n == 1 { "" } else { "s" };
    let mut out = json!({"result": entries, "count": n, "truncated": truncated,
                         "summary": format!("{n} {noun}{plural} matched")});
    if truncated {
        out["messages"] = json!([message(
            13017,
            "SearchResultTruncated",
            "Search result has been truncated: Configured size limit exceeded".into(),
            Map::new()
        )]);
    }
    out
}

// ---- access control (`IpaDouble::deny`) ----

/// The right a refused LDAP write lacked, as 389-ds names it.
#[derive(Clone, Copy, Debug)]
enum Right<'a> {
    Add,
    Delete,
    /// Modify, naming the first attribute of the modlist.
    Write(&'a str),
}

/// The `ACIError` that 389-ds's refusal becomes: ipaldap's `error_handler`
/// turns INSUFFICIENT_ACCESS into `ACIError(info=<server's text, stripped>)`
/// and the server's text is 389-ds's `acl_gen_err_msg`.
fn aci_error(right: Right, dn: &str) -> IpaErr {
    IpaErr::aci(&match right {
        Right::Add => format!("Insufficient 'add' privilege to add the entry '{dn}'."),
        Right::Delete => format!("Insufficient 'delete' privilege to delete the entry '{dn}'."),
        Right::Write(attr) => {
            format!("Insufficient 'write' privilege to the '{attr}' attribute of entry '{dn}'.")
        }
    })
}

/// `ACIError` when a rule denies `method` on the object named by `names`.
fn check_access(
    state: &State,
    method: &str,
    names: &[&str],
    right: Right,
    dn: &str,
) -> Result<(), IpaErr> {
    if state.denied(method, names) {
        Err(aci_error(right, dn))
    } else {
        Ok(())
    }
}

/// The names a service is known by for a rule: as given, and canonical
/// with and without the realm.
fn service_names<'a>(raw: &'a str, key: &'a str) -> [&'a str; 3] {
    [raw, key, key.split('@').next().unwrap_or(key)]
}

/// The first argument's text (each value when it is a list).
fn first_arg(args: &[Value]) -> Vec<&str> {
    match args.first() {
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => vec![],
    }
}

fn host_dn(ctx: &Ctx, fqdn: &str) -> String {
    format!("fqdn={fqdn},cn=computers,cn=accounts,{}", ctx.cfg.basedn)
}

fn service_dn(ctx: &Ctx, principal: &str) -> String {
    format!(
        "krbprincipalname={principal},cn=services,cn=accounts,{}",
        ctx.cfg.basedn
    )
}

fn record_dn(ctx: &Ctx, zone: &str, name: &str) -> String {
    format!("idnsname={name},idnsname={zone},cn=dns,{}", ctx.cfg.basedn)
}

// ---- hosts ----

fn norm_host(s: &str) -> String {
    s.trim_end_matches('.').to_lowercase()
}

fn host_not_found(fqdn: &str) -> IpaErr {
    IpaErr::not_found(format!("{fqdn}: host not found"))
}

fn validate_hostname(fqdn: &str) -> Result<(), IpaErr> {
    if !fqdn.contains('.') {
        return Err(IpaErr::validation(
            "hostname",
            "invalid domain-name: not fully qualified",
        ));
    }
    for label in fqdn.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(IpaErr::validation("hostname",
                "invalid domain-name: only letters, numbers, '-' are allowed. DNS label may not start or end with '-'"));
        }
    }
    if fqdn.len() > 64 {
        return Err(IpaErr::validation(
            "hostname",
            "can be at most 64 characters",
        ));
    }
    Ok(())
}

/// `(zone, relative name)` of an FQDN inside the managed zones, longest zone first.
fn split_in_zone(state: &State, fqdn: &str) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for zone in state.zones.keys() {
        let z = zone.trim_end_matches('.');
        if let Some(rel) = fqdn.strip_suffix(&format!(".{z}")) {
            if best.as_ref().is_none_or(|(b, _)| b.len() < zone.len()) {
                best = Some((zone.clone(), rel.to_string()));
            }
        }
    }
    best
}

fn resolves(state: &State, fqdn: &str) -> bool {
    split_in_zone(state, fqdn)
        .and_then(|(z, n)| state.zones.get(&z)?.get(&n).cloned())
        .is_some_and(|r| !r.a.is_empty() || !r.aaaa.is_empty())
}

/// The host attributes `host_show --rights` reports rights on.
const HOST_WRITABLE_ATTRIBUTES: &[&str] = &[
    "description",
    "l",
    "nshostlocation",
    "nshardwareplatform",
    "nsosversion",
    "userpassword",
    "userclass",
    "macaddress",
    "managedby",
    "usercertificate",
    "krbprincipalkey",
];

/// A host entry as IPA returns it. `all`: also the attributes outside the
/// host's `default_attributes` that the double holds (`krblastpwdchange`).
fn host_entry(h: &Host, ctx: &Ctx, with_dn: bool, all: bool) -> Value {
    let mut e = Map::new();
    if with_dn {
        e.insert("dn".into(), json!(host_dn(ctx, &h.fqdn)));
    }
    e.insert("fqdn".into(), json!([h.fqdn]));
    e.insert("cn".into(), json!([h.fqdn]));
    e.insert(
        "serverhostname".into(),
        json!([h.fqdn.split('.').next().unwrap_or_default()]),
    );
    for (k, v) in [
        ("description", &h.description),
        ("l", &h.locality),
        ("nshostlocation", &h.nshostlocation),
        ("nsosversion", &h.nsosversion),
        ("nshardwareplatform", &h.nshardwareplatform),
    ] {
        if let Some(v) = v {
            e.insert(k.into(), json!([v]));
        }
    }
    if !h.userclass.is_empty() {
        e.insert("userclass".into(), json!(h.userclass));
    }
    if !h.macaddress.is_empty() {
        e.insert("macaddress".into(), json!(h.macaddress));
    }
    if let Some(p) = &h.krbprincipalname {
        e.insert("krbprincipalname".into(), json!([p]));
        e.insert("krbcanonicalname".into(), json!([p]));
    }
    // GeneralizedTime syntax: ipaldap decodes it to a datetime, which the
    // JSON encoder writes as `{"__datetime__": ...}`; every value a list.
    if let (true, Some(t)) = (all, h.keys_changed_at) {
        e.insert("krblastpwdchange".into(), json!([ctx.datetime(t)]));
    }
    e.insert("ipauniqueid".into(), json!([h.uniqueid]));
    e.insert(
        "objectclass".into(),
        json!([
            "ipaobject",
            "nshost",
            "ipahost",
            "pkiuser",
            "ipaservice",
            "ieee802device",
            "ipasshhost",
            "top",
            "ipaSshGroupOfPubKeys"
        ]),
    );
    e.insert(
        "managedby_host".into(),
        json!(h.managedby.iter().collect::<Vec<_>>()),
    );
    e.insert(
        "has_keytab".into(),
        json!(h.has_keytab && h.password.is_none()),
    );
    e.insert("has_password".into(), json!(h.password.is_some()));
    Value::Object(e)
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut r = rand::thread_rng();
    (0..24)
        .map(|_| CHARS[r.gen_range(0..CHARS.len())] as char)
        .collect()
}

// ---- --setattr / --addattr / --delattr ----

/// One of `--setattr`/`--addattr`/`--delattr` as ipalib's `_convert_2_dict`
/// reads it: attribute (lower case) → its values in the order given, `None`
/// for an empty value ("delete this attribute"). Attributes keep the order
/// of their first appearance.
#[derive(Debug, Default)]
struct AttrDict(Vec<(String, Vec<Option<String>>)>);

impl AttrDict {
    fn get(&self, attr: &str) -> Option<&Vec<Option<String>>> {
        self.0.iter().find(|(a, _)| a == attr).map(|(_, v)| v)
    }

    fn contains(&self, attr: &str) -> bool {
        self.get(attr).is_some()
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(a, _)| a.as_str())
    }

    fn push(&mut self, attr: String, value: Option<String>) {
        match self.0.iter_mut().find(|(a, _)| *a == attr) {
            Some((_, v)) => v.push(value),
            None => self.0.push((attr, vec![value])),
        }
    }
}

/// The three options, converted.
#[derive(Debug, Default)]
struct AttrOptions {
    set: AttrDict,
    add: AttrDict,
    del: AttrDict,
}

/// `(attr, value)` pairs of one option in the order given.
type AttrPairs = Vec<(String, Option<String>)>;

/// Validates the items of `setattr`/`addattr`/`delattr` as their `Str`
/// parameters do before the command runs: no leading or trailing spaces
/// (`noextrawhitespace`), then `validate_attribute`'s
/// `\s*(.*?)\s*=\s*(.*?)\s*$` (split at the first `=`, both sides trimmed;
/// `.` does not match a newline). Empty items are dropped (NULLS).
fn parse_attr_option(o: &Map<String, Value>, option: &str) -> Result<AttrPairs, IpaErr> {
    let mut out = Vec::new();
    for item in opt_strs(o, option)? {
        if item.is_empty() {
            continue;
        }
        if item.trim() != item {
            return Err(IpaErr::validation(
                option,
                "Leading and trailing spaces are not allowed",
            ));
        }
        let bad = || IpaErr::validation(option, "Invalid format. Should be name=value");
        let (attr, value) = item.split_once('=').ok_or_else(bad)?;
        let (attr, value) = (attr.trim(), value.trim());
        if attr.contains('\n') || value.contains('\n') {
            return Err(bad());
        }
        out.push((
            attr.to_lowercase(),
            (!value.is_empty()).then(|| value.to_string()),
        ));
    }
    Ok(out)
}

/// The host attributes the double stores and lets the attribute options
/// name (`userpassword` with `setattr` only).
const HOST_ATTR_OPTION_ATTRS: &[&str] = &[
    "description",
    "l",
    "nshostlocation",
    "nshardwareplatform",
    "nsosversion",
    "userclass",
];

/// Host parameters a `*_mod` does not take (`no_update`), which
/// `_convert_2_dict` refuses as "attribute is not configurable".
const HOST_NO_UPDATE_PARAMS: &[&str] = &[
    "randompassword",
    "subject",
    "serial_number",
    "serial_number_hex",
    "issuer",
    "valid_not_before",
    "valid_not_after",
    "sha1_fingerprint",
    "sha256_fingerprint",
    "revocation_reason",
    "krbcanonicalname",
    "memberprincipal",
    "sshpubkeyfp",
];

/// `_convert_2_dict` for each option, in IPA's order (`addattr`, `setattr`,
/// `delattr`).
fn convert_attr_options(
    set: AttrPairs,
    add: AttrPairs,
    del: AttrPairs,
    creating: bool,
) -> Result<AttrOptions, IpaErr> {
    let mut out = AttrOptions::default();
    for (pairs, dict, setting) in [
        (add, &mut out.add, false),
        (set, &mut out.set, true),
        (del, &mut out.del, false),
    ] {
        for (attr, value) in pairs {
            let no_param = HOST_NO_UPDATE_PARAMS.contains(&attr.as_str())
                || (creating && attr == "krbprincipalname");
            if no_param {
                return Err(IpaErr::validation(&attr, "attribute is not configurable"));
            }
            let modelled = HOST_ATTR_OPTION_ATTRS.contains(&attr.as_str())
                || (setting && attr == "userpassword");
            if !modelled {
                // Real IPA would hand it to LDAP; the double stores only
                // the attributes above.
                return Err(IpaErr::validation(
                    &attr,
                    "ipa-double does not model this attribute (test double limitation)",
                ));
            }
            dict.push(attr, value);
        }
    }
    Ok(out)
}

/// Whether `setattr` gives `userpassword` a value (the OTP counter).
fn setattr_sets_password(o: &Map<String, Value>) -> bool {
    parse_attr_option(o, "setattr").is_ok_and(|pairs| {
        pairs
            .iter()
            .any(|(a, v)| a == "userpassword" && v.is_some())
    })
}

/// A host attribute's values.
fn host_values(h: &Host, attr: &str) -> Vec<String> {
    match attr {
        "userpassword" => h.password.iter().cloned().collect(),
        _ => host_attr(h, attr).iter().map(|s| s.to_string()).collect(),
    }
}

/// Replaces a host attribute's values (`host_values`' attributes).
fn set_host_values(h: &mut Host, attr: &str, values: Vec<String>) {
    let one = values.first().cloned();
    match attr {
        "description" => h.description = one,
        "l" => h.locality = one,
        "nshostlocation" => h.nshostlocation = one,
        "nshardwareplatform" => h.nshardwareplatform = one,
        "nsosversion" => h.nsosversion = one,
        "userpassword" => h.password = one,
        "userclass" => {
            // An LDAP attribute holds each value once.
            let mut v: Vec<String> = Vec::new();
            for x in values {
                if !v.contains(&x) {
                    v.push(x);
                }
            }
            h.userclass = v;
        }
        _ => unreachable!("not a modelled host attribute: {attr}"),
    }
}

/// ipaserver's `BaseLDAPCommand.process_attr_options` for a host. `setattr`
/// replaces, then `addattr` appends and `delattr` removes (Python's
/// `list.remove`: the first equal value, exact comparison). `creating`:
/// `host_add`, where the values the other options gave are the base;
/// otherwise `stored` is the entry in LDAP (`None`: no such host), read for
/// the attributes only added to or deleted from. Returns the attributes
/// touched with their final values (none = the attribute is removed).
fn process_attr_options(
    opts: &AttrOptions,
    creating: Option<&Host>,
    stored: Option<&Host>,
    fqdn: &str,
) -> Result<Vec<(String, Vec<String>)>, IpaErr> {
    let mut entry = AttrDict::default();
    let entry_mut = |entry: &mut AttrDict, attr: &str| -> usize {
        match entry.0.iter().position(|(a, _)| a == attr) {
            Some(i) => i,
            None => {
                let base = creating
                    .map(|h| host_values(h, attr).into_iter().map(Some).collect())
                    .unwrap_or_default();
                entry.0.push((attr.to_string(), base));
                entry.0.len() - 1
            }
        }
    };
    for (attr, values) in &opts.set.0 {
        entry.0.push((attr.clone(), values.clone()));
    }
    // With an entry to modify, only the attributes also set are changed
    // directly; without one (creating), every one is.
    let direct = |attr: &str| creating.is_some() || opts.set.contains(attr);
    for (attr, adds) in opts.add.0.iter().filter(|(a, _)| direct(a)) {
        let i = entry_mut(&mut entry, attr);
        entry.0[i].1.extend(adds.iter().cloned());
    }
    for (attr, dels) in opts.del.0.iter().filter(|(a, _)| direct(a)) {
        let i = entry_mut(&mut entry, attr);
        for d in dels {
            let values = &mut entry.0[i].1;
            match values.iter().position(|v| v == d) {
                Some(at) => {
                    values.remove(at);
                }
                None => return Err(IpaErr::delattr_value_not_found(attr, d.as_deref())),
            }
        }
    }
    if creating.is_none() {
        let mut need: Vec<&str> = Vec::new();
        for attr in opts.add.names().chain(opts.del.names()) {
            if !opts.set.contains(attr) && !need.contains(&attr) {
                need.push(attr);
            }
        }
        if !need.is_empty() {
            let old = stored.ok_or_else(|| host_not_found(fqdn))?;
            // "a nice error message when user tries to delete an attribute
            // that does not exist on the entry (and user is not adding it)"
            if let Some(attr) = opts.del.names().find(|a| {
                host_values(old, a).is_empty() && !opts.set.contains(a) && !opts.add.contains(a)
            }) {
                return Err(IpaErr::validation(attr, "No such attribute on this entry"));
            }
            for attr in need {
                let mut values: Vec<Option<String>> =
                    host_values(old, attr).into_iter().map(Some).collect();
                if let Some(adds) = opts.add.get(attr) {
                    values.extend(adds.iter().cloned());
                }
                for d in opts.del.get(attr).into_iter().flatten() {
                    // `delval.encode()` on an empty (None) value raises
                    // AttributeError: an internal error.
                    let Some(d) = d else {
                        return Err(IpaErr::internal());
                    };
                    match values.iter().position(|v| v.as_deref() == Some(d.as_str())) {
                        Some(at) => {
                            values.remove(at);
                        }
                        None => return Err(IpaErr::delattr_value_not_found(attr, Some(d))),
                    }
                }
                let i = entry_mut(&mut entry, attr);
                entry.0[i].1 = values;
            }
        }
    }
    // Normalise through each parameter: a single-valued one takes one
    // value (none removes the attribute); empty values are dropped.
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for attr in opts
        .set
        .names()
        .chain(opts.add.names())
        .chain(opts.del.names())
    {
        if out.iter().any(|(a, _)| a == attr) {
            continue;
        }
        let values = entry.get(attr).cloned().unwrap_or_default();
        if attr != "userclass" && values.len() > 1 {
            return Err(IpaErr::only_one_value(attr));
        }
        out.push((attr.to_string(), values.into_iter().flatten().collect()));
    }
    Ok(out)
}

fn host_add(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let fqdn = norm_host(&arg(args, 0, "fqdn")?);
    validate_hostname(&fqdn)?;
    let password = opt_str(o, "userpassword")?;
    let random = flag(o, "random")?;
    let force = flag(o, "force")?;
    let all = flag(o, "all")?;
    let ip = opt_str(o, "ip_address")?;
    if let Some(ip) = &ip {
        if ip.parse::<Ipv4Addr>().is_err() && ip.parse::<Ipv6Addr>().is_err() {
            return Err(IpaErr::validation(
                "ip_address",
                "invalid IP address format",
            ));
        }
    }
    let setattr = parse_attr_option(o, "setattr")?;
    let addattr = parse_attr_option(o, "addattr")?;
    // The entry the options make; then --setattr/--addattr on it.
    let mut host = Host {
        fqdn: fqdn.clone(),
        description: opt_str(o, "description")?,
        locality: opt_str(o, "l")?,
        nshostlocation: opt_str(o, "nshostlocation")?,
        nsosversion: opt_str(o, "nsosversion")?,
        nshardwareplatform: opt_str(o, "nshardwareplatform")?,
        userclass: opt_strs(o, "userclass")?,
        macaddress: opt_strs(o, "macaddress")?,
        password,
        has_keytab: false,
        managedby: BTreeSet::from([fqdn.clone()]),
        uniqueid: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let attr_opts = convert_attr_options(setattr, addattr, vec![], true)?;
    for (attr, values) in process_attr_options(&attr_opts, Some(&host), None, &fqdn)? {
        set_host_values(&mut host, &attr, values);
    }
    if state.hosts.contains_key(&fqdn) {
        return Err(IpaErr::duplicate("host", &fqdn));
    }
    if !force && ip.is_none() && !resolves(state, &fqdn) {
        return Err(IpaErr::dns_not_a_record(&fqdn));
    }
    // pre_callback: the principal only without a password; `random`
    // replaces any password given.
    if host.password.is_none() && !random {
        host.krbprincipalname = Some(format!("host/{fqdn}@{}", ctx.cfg.realm));
    }
    let randompassword = random.then(random_password);
    if let Some(r) = &randompassword {
        host.password = Some(r.clone());
    }
    // IPA adds the entry, then the DNS record (post_callback).
    check_access(
        state,
        "host_add",
        &[&fqdn],
        Right::Add,
        &host_dn(ctx, &fqdn),
    )?;
    let mut messages = Vec::new();
    if let Some(ip) = ip {
        let attr = if ip.contains(':') {
            "aaaarecord"
        } else {
            "arecord"
        };
        match split_in_zone(state, &fqdn) {
            Some((zone, name)) if ctx.cfg.dns_enabled => {
                let rec = state.zones.get_mut(&zone).expect("zone").entry(name).or_default();
                let vals = rec.values_mut(attr).expect("attr");
                if !vals.contains(&ip) {
                    vals.push(ip);
                }
            }
            _ => messages.push(message(13011, "FailedToAddHostDNSRecords",
                format!("The host was added but the DNS update failed with: DNS zone not found for {fqdn}"),
                Map::new())),
        }
    }
    let mut entry = host_entry(&host, ctx, true, all);
    if let Some(r) = randompassword {
        entry["randompassword"] = json!(r);
    }
    state.hosts.insert(fqdn.clone(), host);
    let mut out =
        json!({"result": entry, "value": fqdn, "summary": format!("Added host \"{fqdn}\"")});
    if !messages.is_empty() {
        out["messages"] = json!(messages);
    }
    Ok(out)
}

/// `host_mod`: LDAPUpdate. The options give the new values, then
/// `--setattr`/`--addattr`/`--delattr` (`process_attr_options`) change
/// them, then the pre_callback (host lookup, the enrolled-host password
/// check, `random`), then LDAP: `EmptyModlist` when nothing changes,
/// `ACIError` when a rule denies the write. Changes are made on a copy,
/// stored only when the whole command succeeds, so a failed `delattr`
/// (compare-and-swap) changes nothing.
fn host_mod(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let fqdn = norm_host(&arg(args, 0, "fqdn")?);
    let password = opt_str(o, "userpassword")?;
    let random = flag(o, "random")?;
    let all = flag(o, "all")?;
    // Options given with a value (`null` removes the attribute).
    let mut given: Vec<(&str, Vec<String>)> = Vec::new();
    for key in [
        "description",
        "l",
        "nshostlocation",
        "nsosversion",
        "nshardwareplatform",
    ] {
        if o.contains_key(key) {
            given.push((key, opt_str(o, key)?.into_iter().collect()));
        }
    }
    if o.contains_key("userclass") {
        given.push(("userclass", opt_strs(o, "userclass")?));
    }
    let setattr = parse_attr_option(o, "setattr")?;
    let addattr = parse_attr_option(o, "addattr")?;
    let delattr = parse_attr_option(o, "delattr")?;
    let stored = state.hosts.get(&fqdn).cloned();
    let attr_opts = convert_attr_options(setattr, addattr, delattr, false)?;
    let from_attr_opts = process_attr_options(&attr_opts, None, stored.as_ref(), &fqdn)?;
    // pre_callback: resolve_fqdn (host_show), then the password check,
    // made for the `userpassword`/`random` options only.
    let orig = stored.ok_or_else(|| host_not_found(&fqdn))?;
    if (password.is_some() || random) && orig.password.is_none() && orig.has_keytab {
        return Err(IpaErr::validation(
            "password",
            "Password cannot be set on enrolled host.",
        ));
    }
    let mut h = orig.clone();
    let mut password_written = false;
    if let Some(p) = password {
        h.password = Some(p);
        password_written = true;
    }
    for (attr, values) in given {
        set_host_values(&mut h, attr, values);
    }
    for (attr, values) in from_attr_opts {
        if attr == "userpassword" {
            // A new password is always a change (LDAP holds its hash);
            // none removes the one there is.
            password_written = !values.is_empty() || orig.password.is_some();
        }
        set_host_values(&mut h, &attr, values);
    }
    let mut randompassword = None;
    if random {
        let r = random_password();
        h.password = Some(r.clone());
        randompassword = Some(r);
        password_written = true;
    }
    // The attributes changed, in modlist order (for an ACIError).
    let mut changed: Vec<&str> = Vec::new();
    if password_written {
        changed.push("userpassword");
    }
    for attr in [
        "description",
        "l",
        "nshostlocation",
        "nsosversion",
        "nshardwareplatform",
    ] {
        if host_values(&h, attr) != host_values(&orig, attr) {
            changed.push(attr);
        }
    }
    // Values are compared as LDAP does: order does not count.
    let same_classes = h.userclass.len() == orig.userclass.len()
        && h.userclass.iter().all(|c| orig.userclass.contains(c));
    if same_classes {
        h.userclass = orig.userclass.clone();
    } else {
        changed.push("userclass");
    }
    let Some(first) = changed.first() else {
        return Err(IpaErr::empty_modlist());
    };
    check_access(
        state,
        "host_mod",
        &[&fqdn],
        Right::Write(first),
        &host_dn(ctx, &fqdn),
    )?;
    // `entry_to_dict` adds the DN with `all` only.
    let mut entry = host_entry(&h, ctx, all, all);
    if let Some(r) = randompassword {
        entry["randompassword"] = json!(r);
    }
    state.hosts.insert(fqdn.clone(), h);
    Ok(json!({"result": entry, "value": fqdn, "summary": format!("Modified host \"{fqdn}\"")}))
}

/// LDAP's caseIgnoreMatch: case and insignificant spaces do not count.
fn ignore_case_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// The host attributes `host_find` options filter on, by option name:
/// IPA turns each given one into an equality filter `(attr=value)`.
fn host_attr<'h>(h: &'h Host, option: &str) -> Vec<&'h str> {
    let one = |v: &'h Option<String>| v.as_deref().into_iter().collect();
    match option {
        "fqdn" => vec![h.fqdn.as_str()],
        "description" => one(&h.description),
        "l" => one(&h.locality),
        "nshostlocation" => one(&h.nshostlocation),
        "nshardwareplatform" => one(&h.nshardwareplatform),
        "nsosversion" => one(&h.nsosversion),
        "userclass" => h.userclass.iter().map(String::as_str).collect(),
        "macaddress" => h.macaddress.iter().map(String::as_str).collect(),
        _ => vec![],
    }
}

/// `host_find`'s attribute options.
const HOST_FIND_ATTRS: &[&str] = &[
    "fqdn",
    "description",
    "l",
    "nshostlocation",
    "nshardwareplatform",
    "nsosversion",
    "userclass",
    "macaddress",
];

/// What the criteria (a substring, case-insensitive) is searched in: the
/// host object's `search_attributes`.
const HOST_SEARCH_ATTRS: &[&str] = &[
    "fqdn",
    "description",
    "l",
    "nshostlocation",
    "nshardwareplatform",
    "nsosversion",
];

fn host_find(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let criteria = args.first().and_then(as_text).map(|s| s.to_lowercase());
    // Each attribute option is an equality filter; the values of a
    // multi-valued one must all match (MATCH_ALL).
    let mut filters: Vec<(&str, String)> = Vec::new();
    for attr in HOST_FIND_ATTRS {
        // `userclass` and `macaddress` are multi-valued; the others take
        // one value ("Only one value is allowed").
        let values = match *attr {
            "userclass" | "macaddress" => opt_strs(o, attr)?,
            _ => opt_str(o, attr)?.into_iter().collect(),
        };
        for v in values {
            let v = if *attr == "fqdn" { norm_host(&v) } else { v };
            filters.push((attr, v));
        }
    }
    let man_by = opt_strs(o, "man_by_host")?
        .iter()
        .map(|s| norm_host(s))
        .collect::<Vec<_>>();
    let not_man_by = opt_strs(o, "not_man_by_host")?
        .iter()
        .map(|s| norm_host(s))
        .collect::<Vec<_>>();
    let pkey_only = flag(o, "pkey_only")?;
    let all = flag(o, "all")?;
    let entries: Vec<Value> = state
        .hosts
        .values()
        .filter(|h| {
            criteria.as_ref().is_none_or(|c| {
                h.krbprincipalname
                    .iter()
                    .map(String::as_str)
                    .chain(HOST_SEARCH_ATTRS.iter().flat_map(|a| host_attr(h, a)))
                    .any(|v| v.to_lowercase().contains(c.as_str()))
            })
        })
        .filter(|h| {
            filters
                .iter()
                .all(|(a, v)| host_attr(h, a).iter().any(|x| ignore_case_eq(x, v)))
        })
        .filter(|h| man_by.iter().all(|m| h.managedby.contains(m)))
        .filter(|h| not_man_by.iter().all(|m| !h.managedby.contains(m)))
        // 389-ds leaves out the entries the caller may not read.
        .filter(|h| !state.denied("host_find", &[&h.fqdn]))
        .map(|h| {
            if pkey_only {
                json!({"fqdn": [h.fqdn], "dn": host_dn(ctx, &h.fqdn)})
            } else {
                host_entry(h, ctx, true, all)
            }
        })
        .collect();
    Ok(find_output(entries, sizelimit(o)?, "host"))
}

/// IPA's `host_disable`: removes the host's keys (and certificates), so it
/// must enroll again; `AlreadyInactive` when it has neither.
fn host_disable(state: &mut State, name: &str, args: &[Value]) -> Out {
    let fqdn = norm_host(&arg(args, 0, "fqdn")?);
    if state.denied(name, &[&fqdn]) {
        return Err(IpaErr::aci(&format!(
            "Insufficient 'write' privilege to the 'krbPrincipalKey' attribute of entry \
             'fqdn={fqdn},cn=computers,cn=accounts'."
        )));
    }
    let h = state
        .hosts
        .get_mut(&fqdn)
        .ok_or_else(|| host_not_found(&fqdn))?;
    if !h.has_keytab || h.password.is_some() {
        return Err(IpaErr::already_inactive());
    }
    // ldap2.remove_principal_key: krbprincipalkey and krblastpwdchange
    // are both replaced with nothing.
    h.has_keytab = false;
    h.keys_changed_at = None;
    Ok(json!({"result": true, "value": fqdn, "summary": format!("Disabled host \"{fqdn}\"")}))
}

fn host_del(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let names: Vec<String> = arg_list(args, 0, "fqdn")?
        .iter()
        .map(|s| norm_host(s))
        .collect();
    let cont = flag(o, "continue")?;
    let updatedns = flag(o, "updatedns")?;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    let mut messages = Vec::new();
    for fqdn in names {
        if fqdn == ctx.cfg.fqdn {
            let e = IpaErr::validation(
                "hostname",
                "An IPA master host cannot be deleted or disabled",
            );
            if cont {
                failed.push(fqdn);
                continue;
            } else {
                return Err(e);
            }
        }
        if !state.hosts.contains_key(&fqdn) {
            if cont {
                failed.push(fqdn);
                continue;
            }
            return Err(host_not_found(&fqdn));
        }
        // ACIError is no ExecutionError: `continue` does not skip it.
        check_access(
            state,
            "host_del",
            &[&fqdn],
            Right::Delete,
            &host_dn(ctx, &fqdn),
        )?;
        state.hosts.remove(&fqdn);
        // IPA deletes the services whose principal host is this host, and
        // referential integrity drops the host from every managedby.
        state.services.retain(|_, s| s.host != fqdn);
        for s in state.services.values_mut() {
            s.managedby.remove(&fqdn);
        }
        for h in state.hosts.values_mut() {
            h.managedby.remove(&fqdn);
        }
        if updatedns {
            let mut removed = false;
            if let Some((zone, name)) = split_in_zone(state, &fqdn) {
                if let Some(recs) = state.zones.get_mut(&zone) {
                    if let Some(r) = recs.get_mut(&name) {
                        removed = !(r.a.is_empty() && r.aaaa.is_empty() && r.sshfp.is_empty());
                        r.a.clear();
                        r.aaaa.clear();
                        r.sshfp.clear();
                        if r.is_empty() {
                            recs.remove(&name);
                        }
                    }
                }
            }
            if !removed {
                messages.push(message(13012, "FailedToRemoveHostDNSRecords",
                    format!("The host was removed but the DNS update failed with: DNS resource record not found for {fqdn}"),
                    Map::new()));
            }
        }
        deleted.push(fqdn);
    }
    let mut out = json!({"result": {"failed": failed}, "value": deleted,
                         "summary": format!("Deleted host \"{}\"", deleted.join(","))});
    if !messages.is_empty() {
        out["messages"] = json!(messages);
    }
    Ok(out)
}

// ---- services ----

/// `svc/host[@REALM]` → canonical `svc/host@REALM`.
fn principal_key(ctx: &Ctx, p: &str) -> Result<String, IpaErr> {
    let (name, realm) = match p.rsplit_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (p, None),
    };
    if let Some(r) = realm {
        if r != ctx.cfg.realm {
            return Err(IpaErr::realm_mismatch());
        }
    }
    let Some((svc, host)) = name.split_once('/') else {
        return Err(IpaErr::validation(
            "canonical_principal",
            "Service principal is required",
        ));
    };
    if svc.is_empty() || host.is_empty() || host.contains('/') {
        return Err(IpaErr::validation(
            "canonical_principal",
            "Malformed principal",
        ));
    }
    Ok(format!("{svc}/{}@{}", norm_host(host), ctx.cfg.realm))
}

fn service_entry(s: &Service, ctx: &Ctx) -> Value {
    json!({
        "dn": service_dn(ctx, &s.principal),
        "krbprincipalname": [s.principal],
        "krbcanonicalname": [s.principal],
        "ipakrbprincipalalias": [s.principal],
        "managedby_host": s.managedby.iter().collect::<Vec<_>>(),
        "has_keytab": s.has_keytab,
        "objectclass": ["krbprincipal", "krbprincipalaux", "krbticketpolicyaux", "ipaobject", "ipaservice", "pkiuser", "top"],
    })
}

fn service_add(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let raw = arg(args, 0, "krbcanonicalname")?;
    let p = principal_key(ctx, &raw)?;
    let force = flag(o, "force")?;
    let skip_host_check = flag(o, "skip_host_check")?;
    let (svc, rest) = p.split_once('/').expect("checked");
    let host = rest.split('@').next().unwrap_or_default().to_string();
    if svc.eq_ignore_ascii_case("host") && !force {
        return Err(IpaErr::host_service());
    }
    if !skip_host_check && !state.hosts.contains_key(&host) {
        return Err(IpaErr::not_found(format!(
            "The host '{host}' does not exist to add a service to."
        )));
    }
    if !force && !resolves(state, &host) {
        return Err(IpaErr::dns_not_a_record(&host));
    }
    if state.services.contains_key(&p) {
        return Err(IpaErr::duplicate("service", &p));
    }
    check_access(
        state,
        "service_add",
        &service_names(&raw, &p),
        Right::Add,
        &service_dn(ctx, &p),
    )?;
    let s = Service {
        principal: p.clone(),
        host: host.clone(),
        managedby: BTreeSet::from([host]),
        has_keytab: false,
    };
    let entry = service_entry(&s, ctx);
    state.services.insert(p.clone(), s);
    Ok(json!({"result": entry, "value": p, "summary": format!("Added service \"{p}\"")}))
}

fn service_member(
    state: &mut State,
    ctx: &Ctx,
    name: &str,
    args: &[Value],
    o: &Map<String, Value>,
) -> Out {
    let raw = arg(args, 0, "krbcanonicalname")?;
    let p = principal_key(ctx, &raw)?;
    let hosts: Vec<String> = opt_strs(o, "host")?.iter().map(|h| norm_host(h)).collect();
    let exists: Vec<bool> = hosts.iter().map(|h| state.hosts.contains_key(h)).collect();
    let denied = state.denied(name, &service_names(&raw, &p));
    let s = state
        .services
        .get_mut(&p)
        .ok_or_else(|| IpaErr::not_found(format!("{p}: service not found")))?;
    // LDAPAddMember/LDAPRemoveMember report a refused modify per member,
    // under `failed`, as for any other error (389-ds checks the write
    // right before it looks at the values).
    let aci = aci_error(Right::Write("managedby"), &service_dn(ctx, &p)).message;
    let mut failed = Vec::new();
    let mut completed = 0;
    for (h, exists) in hosts.iter().zip(exists) {
        if name == "service_add_host" {
            if !exists {
                failed.push(json!([h, "no such entry"]));
            } else if denied {
                failed.push(json!([h, aci]));
            } else if !s.managedby.insert(h.clone()) {
                failed.push(json!([h, "This entry is already a member"]));
            } else {
                completed += 1;
            }
        } else if denied {
            failed.push(json!([h, aci]));
        } else if s.managedby.remove(h) {
            completed += 1;
        } else {
            failed.push(json!([h, "This entry is not a member"]));
        }
    }
    Ok(
        json!({"result": service_entry(s, ctx), "completed": completed, "failed": {"managedby": {"host": failed}}}),
    )
}

fn service_find(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let criteria = args.first().and_then(as_text).map(|s| s.to_lowercase());
    let man_by: Vec<String> = opt_strs(o, "man_by_host")?
        .iter()
        .map(|h| norm_host(h))
        .collect();
    let not_man_by: Vec<String> = opt_strs(o, "not_man_by_host")?
        .iter()
        .map(|h| norm_host(h))
        .collect();
    let names = opt_strs(o, "krbprincipalname")?
        .iter()
        .map(|p| principal_key(ctx, p))
        .collect::<Result<Vec<_>, _>>()?;
    let canonical = opt_str(o, "krbcanonicalname")?
        .map(|p| principal_key(ctx, &p))
        .transpose()?;
    let pkey_only = flag(o, "pkey_only")?;
    let entries: Vec<Value> = state
        .services
        .values()
        .filter(|s| {
            criteria
                .as_ref()
                .is_none_or(|c| s.principal.to_lowercase().contains(c.as_str()))
        })
        .filter(|s| man_by.iter().all(|m| s.managedby.contains(m)))
        .filter(|s| not_man_by.iter().all(|m| !s.managedby.contains(m)))
        .filter(|s| names.is_empty() || names.contains(&s.principal))
        .filter(|s| canonical.as_ref().is_none_or(|c| c == &s.principal))
        // 389-ds leaves out the entries the caller may not read.
        .filter(|s| !state.denied("service_find", &service_names(&s.principal, &s.principal)))
        .map(|s| {
            if pkey_only {
                json!({"krbcanonicalname": [s.principal], "krbprincipalname": [s.principal]})
            } else {
                service_entry(s, ctx)
            }
        })
        .collect();
    Ok(find_output(entries, sizelimit(o)?, "service"))
}

fn service_del(state: &mut State, args: &[Value], o: &Map<String, Value>, ctx: &Ctx) -> Out {
    let cont = flag(o, "continue")?;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for raw in arg_list(args, 0, "krbcanonicalname")? {
        let p = principal_key(ctx, &raw)?;
        let svc = p.split('/').next().unwrap_or_default();
        let host = p
            .split_once('/')
            .map(|(_, r)| r.split('@').next().unwrap_or_default())
            .unwrap_or_default();
        if host == ctx.cfg.fqdn
            && ["HTTP", "ldap", "DNS", "dogtag", "ipa-dnskeysyncd"].contains(&svc)
        {
            return Err(IpaErr::validation(
                "principal",
                "This principal is required by the IPA master",
            ));
        }
        if !state.services.contains_key(&p) {
            if cont {
                failed.push(p);
                continue;
            }
            return Err(IpaErr::not_found(format!("{p}: service not found")));
        }
        // ACIError is no ExecutionError: `continue` does not skip it.
        check_access(
            state,
            "service_del",
            &service_names(&raw, &p),
            Right::Delete,
            &service_dn(ctx, &p),
        )?;
        state.services.remove(&p);
        for r in state.roles.values_mut() {
            r.services.retain(|s| s != &p);
        }
        deleted.push(p);
    }
    Ok(json!({"result": {"failed": failed}, "value": deleted,
              "summary": format!("Deleted service \"{}\"", deleted.join(","))}))
}

// ---- DNS ----

fn norm_zone(z: &str) -> String {
    let z = z.to_lowercase();
    if z.ends_with('.') {
        z
    } else {
        format!("{z}.")
    }
}

fn zone_of<'s>(
    state: &'s mut State,
    ctx: &Ctx,
    args: &[Value],
) -> Result<
    (
        String,
        &'s mut std::collections::BTreeMap<String, DnsRecordView>,
    ),
    IpaErr,
> {
    if !ctx.cfg.dns_enabled {
        return Err(IpaErr::not_found("DNS is not configured".into()));
    }
    let zone = norm_zone(&arg(args, 0, "dnszoneidnsname")?);
    match state.zones.get_mut(&zone) {
        Some(z) => Ok((zone, z)),
        None => Err(IpaErr::not_found(format!("{zone}: DNS zone not found"))),
    }
}

fn record_label(attr: &str) -> &'static str {
    match attr {
        "arecord" => "A record",
        "aaaarecord" => "AAAA record",
        "ptrrecord" => "PTR record",
        "cnamerecord" => "CNAME record",
        "txtrecord" => "TXT record",
        _ => "SSHFP record",
    }
}

fn check_value(attr: &str, v: &str) -> Result<(), IpaErr> {
    let ok = match attr {
        "arecord" | "a_part_ip_address" => v.parse::<Ipv4Addr>().is_ok(),
        "aaaarecord" | "aaaa_part_ip_address" => v.parse::<Ipv6Addr>().is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(IpaErr::validation(attr, "invalid IP address format"))
    }
}

fn record_entry(zone: &str, name: &str, r: &DnsRecordView, ctx: &Ctx) -> Value {
    let mut e = Map::new();
    e.insert("dn".into(), json!(record_dn(ctx, zone, name)));
    e.insert("idnsname".into(), json!([ctx.dns(name)]));
    for attr in RECORD_ATTRS {
        let vals = r.values(attr);
        if !vals.is_empty() {
            e.insert((*attr).into(), json!(vals));
        }
    }
    e.insert("objectclass".into(), json!(["top", "idnsrecord"]));
    Value::Object(e)
}

fn dnsrecord_add(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let name = arg(args, 1, "idnsname")?.to_lowercase();
    let mut adds: Vec<(&str, String)> = Vec::new();
    for attr in RECORD_ATTRS {
        for v in opt_strs(o, attr)? {
            check_value(attr, &v)?;
            adds.push((attr, v));
        }
    }
    for (part, attr, raw_opt) in [
        ("a_part_ip_address", "arecord", "a_rec"),
        ("aaaa_part_ip_address", "aaaarecord", "aaaa_rec"),
    ] {
        if let Some(v) = opt_str(o, part)? {
            if o.contains_key(attr) {
                return Err(IpaErr::validation(
                    part,
                    &format!("Raw value of a DNS record was already set by \"{raw_opt}\" option"),
                ));
            }
            check_value(part, &v)?;
            adds.push((attr, v));
        }
    }
    let denied = state.denied("dnsrecord_add", &first_arg(args));
    let (zone, recs) = zone_of(state, ctx, args)?;
    let found = recs.get(&name).cloned();
    let existing = found.clone().unwrap_or_default();
    let has_cname = !existing.cname.is_empty() || adds.iter().any(|(a, _)| *a == "cnamerecord");
    let has_other = RECORD_ATTRS
        .iter()
        .any(|a| *a != "cnamerecord" && !existing.values(a).is_empty())
        || adds.iter().any(|(a, _)| *a != "cnamerecord");
    if has_cname && has_other {
        return Err(IpaErr::validation("cnamerecord",
            "CNAME record is not allowed to coexist with any other record (RFC 1034, section 3.6.2)"));
    }
    let mut rec = existing;
    let mut changed: Option<&str> = None;
    for (attr, v) in adds {
        let vals = rec.values_mut(attr).expect("known attr");
        if !vals.contains(&v) {
            vals.push(v);
            changed.get_or_insert(attr);
        }
    }
    let Some(first) = changed else {
        return Err(IpaErr::empty_modlist());
    };
    if denied {
        let right = if found.is_some() {
            Right::Write(first)
        } else {
            Right::Add
        };
        return Err(aci_error(right, &record_dn(ctx, &zone, &name)));
    }
    let entry = record_entry(&zone, &name, &rec, ctx);
    recs.insert(name.clone(), rec);
    Ok(json!({"result": entry, "value": ctx.dns(&name), "summary": null}))
}

fn dnsrecord_find(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let criteria = args.get(1).and_then(as_text).map(|s| s.to_lowercase());
    let idnsname = opt_str(o, "idnsname")?.map(|s| s.to_lowercase());
    let mut filters = Vec::new();
    for attr in RECORD_ATTRS {
        for v in opt_strs(o, attr)? {
            filters.push((*attr, v));
        }
    }
    let limit = sizelimit(o)?;
    let pkey_only = flag(o, "pkey_only")?;
    let (zone, recs) = zone_of(state, ctx, args)?;
    let entries: Vec<Value> = recs
        .iter()
        .filter(|(n, _)| criteria.as_ref().is_none_or(|c| n.contains(c.as_str())))
        .filter(|(n, _)| idnsname.as_ref().is_none_or(|i| *n == i))
        .filter(|(_, r)| filters.iter().all(|(a, v)| r.values(a).contains(v)))
        .map(|(n, r)| {
            if pkey_only {
                json!({"idnsname": [ctx.dns(n)]})
            } else {
                record_entry(&zone, n, r, ctx)
            }
        })
        .collect();
    Ok(find_output(entries, limit, "DNS resource record"))
}

/// `dnsrecord_show`: LDAPRetrieve of the record entry. The zone is
/// checked first ("DNS zone not found"), then the name ("DNS resource
/// record not found", also when the caller may not read it, as 389-ds
/// hides unreadable entries). `dn`, `idnsname` and the record attributes;
/// `objectclass` only with `all`.
fn dnsrecord_show(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let name = arg(args, 1, "idnsname")?.to_lowercase();
    let all = flag(o, "all")?;
    let denied = state.denied("dnsrecord_show", &first_arg(args));
    let (zone, recs) = zone_of(state, ctx, args)?;
    let rec = recs
        .get(&name)
        .filter(|_| !denied)
        .ok_or_else(|| IpaErr::not_found(format!("{name}: DNS resource record not found")))?;
    let mut entry = record_entry(&zone, &name, rec, ctx);
    if !all {
        if let Value::Object(e) = &mut entry {
            e.remove("objectclass");
        }
    }
    Ok(json!({"result": entry, "value": ctx.dns(&name), "summary": null}))
}

fn dnsrecord_del(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let name = arg(args, 1, "idnsname")?.to_lowercase();
    let del_all = flag(o, "del_all")?;
    let mut dels: Vec<(&str, String)> = Vec::new();
    for attr in RECORD_ATTRS {
        for v in opt_strs(o, attr)? {
            dels.push((attr, v));
        }
    }
    if !del_all && dels.is_empty() {
        return Err(IpaErr::option(
            "Neither --del-all nor options to delete a specific record provided.\n\
            Command help may be consulted for all supported record types.",
        ));
    }
    if del_all && name == "@" {
        return Err(IpaErr::validation(
            "del_all",
            "Zone record '@' cannot be deleted",
        ));
    }
    let denied = state.denied("dnsrecord_del", &first_arg(args));
    let (zone, recs) = zone_of(state, ctx, args)?;
    let Some(rec) = recs.get(&name) else {
        return Err(IpaErr::not_found(format!(
            "{name}: DNS resource record not found"
        )));
    };
    for (attr, v) in &dels {
        if !del_all && !rec.values(attr).contains(v) {
            return Err(IpaErr::attr_value_not_found(record_label(attr), v));
        }
    }
    let mut rec = rec.clone();
    for (attr, v) in &dels {
        rec.values_mut(attr).expect("known").retain(|x| x != v);
    }
    if denied {
        // Without `del_all` IPA modifies the entry first, and deletes it
        // only once no record is left.
        let right = if del_all {
            Right::Delete
        } else {
            Right::Write(dels[0].0)
        };
        return Err(aci_error(right, &record_dn(ctx, &zone, &name)));
    }
    if del_all || rec.is_empty() {
        recs.remove(&name);
    } else {
        recs.insert(name.clone(), rec);
    }
    Ok(
        json!({"result": {"failed": []}, "value": [ctx.dns(&name)], "summary": format!("Deleted record \"{name}\"")}),
    )
}

// ---- setup objects ----

fn permission_entry(p: &PermissionView, ctx: &Ctx) -> Value {
    let mut e = json!({"cn": [p.name], "ipapermright": p.rights, "attrs": p.attrs,
        "dn": format!("cn={},cn=permissions,cn=pbac,{}", p.name, ctx.cfg.basedn)});
    if let Some(t) = &p.object_type {
        e["type"] = json!([t]);
    }
    e
}

fn privilege_entry(p: &PrivilegeView, ctx: &Ctx) -> Value {
    let mut e = json!({"cn": [p.name], "dn": format!("cn={},cn=privileges,cn=pbac,{}", p.name, ctx.cfg.basedn)});
    if let Some(d) = &p.description {
        e["description"] = json!([d]);
    }
    if !p.permissions.is_empty() {
        e["memberof_permission"] = json!(p.permissions);
    }
    e
}

fn role_entry(r: &RoleView, ctx: &Ctx) -> Value {
    let mut e = json!({"cn": [r.name], "dn": format!("cn={},cn=roles,cn=accounts,{}", r.name, ctx.cfg.basedn)});
    if let Some(d) = &r.description {
        e["description"] = json!([d]);
    }
    for (k, v) in [
        ("memberof_privilege", &r.privileges),
        ("member_service", &r.services),
        ("member_user", &r.users),
        ("member_host", &r.hosts),
    ] {
        if !v.is_empty() {
            e[k] = json!(v);
        }
    }
    e
}

fn role_add_member(state: &mut State, ctx: &Ctx, args: &[Value], o: &Map<String, Value>) -> Out {
    let cn = arg(args, 0, "cn")?;
    let services = opt_strs(o, "service")?;
    let hosts: Vec<String> = opt_strs(o, "host")?.iter().map(|h| norm_host(h)).collect();
    let users = opt_strs(o, "user")?;
    let service_keys: Vec<Option<String>> = services
        .iter()
        .map(|s| {
            principal_key(ctx, s)
                .ok()
                .filter(|k| state.services.contains_key(k))
        })
        .collect();
    let host_exists: Vec<bool> = hosts.iter().map(|h| state.hosts.contains_key(h)).collect();
    let user_exists: Vec<bool> = users.iter().map(|u| state.users.contains_key(u)).collect();
    let denied = state.denied("role_add_member", &[&cn]);
    let r = state
        .roles
        .get_mut(&cn.to_lowercase())
        .ok_or_else(|| IpaErr::not_found(format!("{cn}: role not found")))?;
    // 389-ds checks the write right before it looks at the values.
    let aci = aci_error(
        Right::Write("member"),
        &format!("cn={},cn=roles,cn=accounts,{}", r.name, ctx.cfg.basedn),
    )
    .message;
    let mut completed = 0;
    let mut failed_services = Vec::new();
    for (raw, key) in services.iter().zip(service_keys) {
        match key {
            None => failed_services.push(json!([raw, "no such entry"])),
            Some(_) if denied => failed_services.push(json!([raw, aci])),
            Some(k) if r.services.contains(&k) => {
                failed_services.push(json!([raw, "This entry is already a member"]))
            }
            Some(k) => {
                r.services.push(k);
                completed += 1;
            }
        }
    }
    let mut failed_hosts = Vec::new();
    for (h, ok) in hosts.iter().zip(host_exists) {
        if !ok {
            failed_hosts.push(json!([h, "no such entry"]));
        } else if denied {
            failed_hosts.push(json!([h, aci]));
        } else if r.hosts.contains(h) {
            failed_hosts.push(json!([h, "This entry is already a member"]));
        } else {
            r.hosts.push(h.clone());
            completed += 1;
        }
    }
    let mut failed_users = Vec::new();
    for (u, ok) in users.iter().zip(user_exists) {
        if !ok {
            failed_users.push(json!([u, "no such entry"]));
        } else if denied {
            failed_users.push(json!([u, aci]));
        } else if r.users.contains(u) {
            failed_users.push(json!([u, "This entry is already a member"]));
        } else {
            r.users.push(u.clone());
            completed += 1;
        }
    }
    Ok(
        json!({"result": role_entry(r, ctx), "completed": completed, "failed": {"member": {
        "user": failed_users, "group": [], "host": failed_hosts, "hostgroup": [], "service": failed_services,
        "idoverrideuser": []}}}),
    )
}
