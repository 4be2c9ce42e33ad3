//! The IPA checks: "IPA login" (server answers, keytab readable and valid
//! for Kerberos, or the password works), "IPA servers" (with replicas or
//! DNS discovery: each server on its own), "IPA privileges" (what the service
//! needs, proven without changing anything) and "Python novajoin hosts"
//! (hosts of the Python novajoin not yet bound to their instance).
//!
//! # How the write privilege is proven without writing
//!
//! A harmless *write* proves nothing in IPA: `host_mod` or `host_del` of a
//! host that does not exist answers `NotFound` whatever the caller's rights
//! (the entry is looked up before 389-ds evaluates the ACIs), and a
//! `host_mod` that sets a value to what it already is answers `EmptyModlist`
//! before any LDAP write. So the check reads instead:
//!
//! * `host_find sizelimit=1`: the principal may search hosts (every
//!   enrollment and delete reads hosts first);
//! * `host_show <IPA server's host> all rights`: 389-ds's *effective
//!   rights* (GetEffectiveRights control) for the principal on a host entry
//!   that always exists, as `attributelevelrights`. The service writes
//!   `userpassword` (the OTP, "System: Manage Host Enrollment Password") and
//!   `nshardwareplatform` (the owner binding, "System: Modify Hosts"); both
//!   must carry `w`. This is read-only and is the answer the ACIs give, not
//!   a guess from role names.
//!
//! A server that does not report effective rights gives a warning, not a
//! success: nothing else proves the privilege without a write.

use serde_json::{json, Map, Value};

use super::report::CheckResult;
use super::within;
use crate::config::ConfigFiles;
use crate::ipa::command::{HostEntry, IpaCommand};
use crate::ipa::kerberos::{keytab_readable, CredentialSource};
use crate::ipa::servers::Server;
use crate::ipa::{
    load_default_conf, BreakerState, IpaAuth, IpaClient, IpaClientConfig, IpaError, ServerSource,
};
use crate::ownership::HOST_DESCRIPTION;
use std::sync::Arc;

/// Name of the login check.
pub const LOGIN: &str = "IPA login";
/// Name of the per-server check (several servers, or DNS discovery).
pub const SERVERS: &str = "IPA servers";
/// Name of the privilege check.
pub const PRIVILEGES: &str = "IPA privileges";
/// Name of the Python novajoin hosts check.
pub const LEGACY_HOSTS: &str = "Python novajoin hosts";

/// Host attributes the service writes, and why.
pub const WRITTEN_ATTRIBUTES: &[(&str, &str)] = &[
    ("userpassword", "the enrollment OTP"),
    ("nshardwareplatform", "the owner binding"),
];

/// The three IPA checks, in order. The later two are skipped (not run, not
/// reported) when the login fails: their answer would only repeat it.
pub async fn checks(cfg: &ConfigFiles) -> Vec<CheckResult> {
    let client = match client(cfg).await {
        Ok(c) => c,
        Err(r) => return vec![r],
    };
    let mut out = vec![];
    match within(client.ping()).await {
        Ok(Ok(summary)) => out.push(CheckResult::success(
            LOGIN,
            format!(
                "{} at {}: {summary}",
                client.config().auth.describe(),
                client.config().url
            ),
        )),
        Ok(Err(e)) => {
            out.push(CheckResult::failure(LOGIN, login_failure(&client, &e)));
            return out;
        }
        Err(t) => {
            out.push(CheckResult::failure(
                LOGIN,
                format!("IPA at {} did not answer within {t:?}", client.config().url),
            ));
            return out;
        }
    }
    let pool = client.servers();
    let all = pool.servers().await;
    if all.len() > 1 || pool.discovery().is_some() {
        out.push(servers(&client, &all).await);
    }
    out.push(privileges(&client).await);
    out.push(legacy_hosts(&client).await);
    out
}

/// Builds the client as the service does and checks the Kerberos
/// credentials before any call, so a bad keytab is named as such.
async fn client(cfg: &ConfigFiles) -> Result<IpaClient, CheckResult> {
    let fail = |d: String| CheckResult::failure(LOGIN, d);
    let default_conf = load_default_conf(cfg).map_err(|e| fail(e.to_string()))?;
    let ipa_cfg = IpaClientConfig::from_conf_with(cfg, default_conf.as_ref())
        .map_err(|e| fail(e.to_string()))?;
    if let IpaAuth::Kerberos(k) = &ipa_cfg.auth {
        if let CredentialSource::Keytab { keytab, .. } = k.source() {
            keytab_readable(keytab).map_err(|e| {
                fail(format!(
                    "the keytab {} ([DEFAULT] keytab) cannot be read by this user: {e}; make it \
                     readable by the user novajoin runs as (mode 0600, owned by it)",
                    keytab.display()
                ))
            })?;
            let k = k.clone();
            // The error names the principal, the keytab and what to check.
            match tokio::task::spawn_blocking(move || k.check_credentials()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(fail(e.to_string())),
                Err(e) => return Err(fail(format!("the Kerberos check did not finish: {e}"))),
            }
        }
    }
    IpaClient::new(ipa_cfg).map_err(|e| fail(e.to_string()))
}

fn login_failure(client: &IpaClient, e: &IpaError) -> String {
    let url = &client.config().url;
    match e {
        // The error names the user and the options to fix.
        IpaError::LoginRejected { .. } => format!("{e} (IPA at {url})"),
        _ => format!("{} at {url}: {e}", client.config().auth.describe()),
    }
}

/// Each server on its own (its own session): whether it answers, where it
/// came from and its breaker. Success when all answer, a warning when some
/// do (the others take over), a failure when none does.
async fn servers(client: &IpaClient, all: &[Arc<Server>]) -> CheckResult {
    let pool = client.servers();
    let mut lines = Vec::new();
    let mut down = 0usize;
    if let Some(d) = pool.discovery() {
        let found = all
            .iter()
            .filter(|s| s.addr().source == ServerSource::Dns)
            .count();
        lines.push(format!("DNS SRV of {}: {found} more server(s)", d.domain));
    }
    for s in all {
        let fqdn = &s.endpoints().server_fqdn;
        let from = s.addr().source.describe();
        let breaker = match s.breaker(pool.policy()) {
            BreakerState::Closed => String::new(),
            BreakerState::Open(left) => format!(", breaker open for {} s", left.as_secs()),
            BreakerState::HalfOpen => ", breaker half-open".into(),
        };
        let verdict = match IpaClient::new(client.config().for_server(s.addr())) {
            Err(e) => Err(e.to_string()),
            Ok(one) => match within(one.ping()).await {
                Ok(Ok(summary)) => Ok(summary),
                Ok(Err(e)) => Err(e.to_string()),
                Err(t) => Err(format!("no answer within {t:?}")),
            },
        };
        match verdict {
            Ok(summary) => lines.push(format!("{fqdn} ({from}{breaker}): {summary}")),
            Err(e) => {
                down += 1;
                lines.push(format!("{fqdn} ({from}{breaker}): FAILED: {e}"));
            }
        }
    }
    let details = lines.join("; ");
    if all.is_empty() || down == all.len() {
        CheckResult::failure(SERVERS, details)
    } else if down > 0 {
        CheckResult::warning(
            SERVERS,
            format!("{details} (calls fail over to the servers that answer)"),
        )
    } else {
        CheckResult::success(SERVERS, details)
    }
}

/// Read access to hosts, and the effective rights on the server's host.
async fn privileges(client: &IpaClient) -> CheckResult {
    const N: &str = PRIVILEGES;
    let find = IpaCommand::new("host_find", vec![], Map::new()).with_option("sizelimit", json!(1));
    match within(client.call(find)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return CheckResult::failure(N, format!("host_find: {e}")),
        Err(t) => return CheckResult::failure(N, format!("host_find did not answer within {t:?}")),
    }
    let server = client.endpoints().server_fqdn.clone();
    let show = IpaCommand::new("host_show", vec![json!(server)], Map::new())
        .with_option("all", json!(true))
        .with_option("rights", json!(true));
    let out = match within(client.call(show)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) if e.is_not_found() => {
            return CheckResult::warning(
                N,
                format!(
                    "host_find works; the IPA server's own host {server} was not found, so the \
                     effective rights could not be read; set [ipa] server to the server's FQDN"
                ),
            )
        }
        Ok(Err(e)) => return CheckResult::failure(N, format!("host_show {server}: {e}")),
        Err(t) => return CheckResult::failure(N, format!("host_show did not answer within {t:?}")),
    };
    let rights = out
        .entry()
        .and_then(|e| e.get("attributelevelrights"))
        .and_then(Value::as_object);
    let Some(rights) = rights else {
        return CheckResult::warning(
            N,
            format!(
                "host_find works, but IPA did not report effective rights (host_show {server} \
                 --all --rights), so the write privilege could not be proven without a write; \
                 check that the principal's role holds the privilege novajoin ipa-setup creates"
            ),
        );
    };
    evaluate_rights(&server, rights)
}

/// The verdict on `attributelevelrights` of a host entry.
pub fn evaluate_rights(server: &str, rights: &Map<String, Value>) -> CheckResult {
    let missing: Vec<String> = WRITTEN_ATTRIBUTES
        .iter()
        .filter(|(attr, _)| {
            !rights
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                .and_then(|(_, v)| v.as_str())
                .is_some_and(|r| r.contains('w'))
        })
        .map(|(attr, why)| format!("{attr} ({why})"))
        .collect();
    if missing.is_empty() {
        CheckResult::success(
            PRIVILEGES,
            format!(
                "host_find works; effective rights on {server} include write on {}",
                WRITTEN_ATTRIBUTES
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )
    } else {
        CheckResult::failure(
            PRIVILEGES,
            format!(
                "the principal may not write {} of hosts (effective rights on {server}); grant it \
                 the role novajoin ipa-setup creates (privileges \"System: Modify Hosts\" and \
                 \"System: Manage Host Enrollment Password\")",
                missing.join(", ")
            ),
        )
    }
}

/// Hosts with the Python novajoin's description and no binding.
async fn legacy_hosts(client: &IpaClient) -> CheckResult {
    const N: &str = LEGACY_HOSTS;
    let find = IpaCommand::new("host_find", vec![], Map::new())
        .with_option("description", json!(HOST_DESCRIPTION))
        .with_option("sizelimit", json!(0));
    let out = match within(client.call(find)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return CheckResult::failure(N, format!("host_find: {e}")),
        Err(t) => return CheckResult::failure(N, format!("host_find did not answer within {t:?}")),
    };
    let truncated = out.0.get("truncated").and_then(Value::as_bool) == Some(true);
    let unbound: Vec<String> = out
        .entries()
        .iter()
        .filter_map(|e| e.as_object().and_then(HostEntry::from_entry))
        .filter(|h| h.binding.is_none())
        .map(|h| h.fqdn)
        .collect();
    legacy_verdict(&unbound, truncated)
}

/// The verdict on the unbound hosts found.
pub fn legacy_verdict(unbound: &[String], truncated: bool) -> CheckResult {
    if unbound.is_empty() && !truncated {
        return CheckResult::success(
            LEGACY_HOSTS,
            "every host with novajoin's description is bound",
        );
    }
    let shown: Vec<&str> = unbound.iter().take(5).map(String::as_str).collect();
    CheckResult::warning(
        LEGACY_HOSTS,
        format!(
            "{}{} host(s) created by the Python novajoin are not bound to their instance yet \
             (e.g. {}); until an enrollment of their instance binds them they follow the \
             original's rules; see docs/UPGRADING.md, tenant isolation",
            if truncated { "at least " } else { "" },
            unbound.len(),
            shown.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::Code;

    #[test]
    fn write_on_both_attributes_is_needed() {
        let ok = json!({"userpassword": "wo", "nshardwareplatform": "rscwo", "fqdn": "rsc"});
        let r = evaluate_rights("ipa.example.test", ok.as_object().unwrap());
        assert_eq!(r.code, Code::Success, "{r:?}");
        let no_binding = json!({"userpassword": "wo", "nshardwareplatform": "rsc"});
        let r = evaluate_rights("ipa.example.test", no_binding.as_object().unwrap());
        assert_eq!(r.code, Code::Failure);
        let d = r.details.unwrap();
        assert!(d.contains("nshardwareplatform (the owner binding)"), "{d}");
        assert!(!d.contains("userpassword"), "{d}");
    }

    #[test]
    fn unbound_hosts_are_counted() {
        assert_eq!(legacy_verdict(&[], false).code, Code::Success);
        let r = legacy_verdict(&["a.example.test".into(), "b.example.test".into()], false);
        assert_eq!(r.code, Code::Warning);
        assert!(r.details.unwrap().starts_with("2 host(s)"));
        let r = legacy_verdict(&["a.example.test".into()], true);
        assert!(r.details.unwrap().starts_with("at least 1"));
    }
}
