//! Host and service names, which must be exactly the ones the vendordata
//! service gave the instance.
//!
//! TEMPORARY: a minimal copy of the rules of the lead's `join::fqdn` and
//! `join::services` (not on main yet when this was written). Once they are,
//! this module becomes re-exports of them so there is one implementation.

use serde_json::{Map, Value};

/// How FQDNs are built (`[DEFAULT] domain`, `project_subdomain`,
/// `normalize_project`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FqdnPolicy {
    /// The DNS domain, without a trailing dot, lower-case.
    pub domain: String,
    /// Insert the project name: `<host>.<project>.<domain>`.
    pub project_subdomain: bool,
    /// Normalize the project name into a DNS label first.
    pub normalize_project: bool,
}

/// One service principal and the host that may manage it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `service/host` (without realm).
    pub principal: String,
    /// The principal's host.
    pub principal_host: String,
    /// The host added to the service's `managedby`.
    pub managed_by: String,
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!("label {label:?} must have 1 to 63 characters"));
    }
    if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} may only hold letters, digits and inner '-'"));
    }
    Ok(())
}

/// Every run of characters outside `[0-9A-Za-z]` becomes one `-`; leading
/// and trailing `-` go (the rule the original documented).
pub fn normalize_project_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_matches('-').to_string()
}

impl FqdnPolicy {
    fn project_label(&self, project_name: &str) -> Result<String, String> {
        let label = if self.normalize_project { normalize_project_name(project_name) } else { project_name.to_string() };
        check_label(&label).map_err(|w| format!("project name {project_name:?} is not a DNS label: {w}"))?;
        Ok(label.to_lowercase())
    }

    /// The instance's FQDN from nova's hostname (an FQDN hostname in our
    /// domain is used as is).
    pub fn instance_fqdn(&self, hostname: &str, project_name: Option<&str>) -> Result<String, String> {
        let host = hostname.trim_end_matches('.').to_ascii_lowercase();
        let suffix = format!(".{}", self.domain);
        let short = if host.contains('.') {
            match host.strip_suffix(&suffix) {
                Some(rest) if !self.project_subdomain && !rest.contains('.') => rest.to_string(),
                _ => return Err(format!("hostname {hostname:?} is a dotted name outside domain {:?}", self.domain)),
            }
        } else {
            host
        };
        check_label(&short).map_err(|w| format!("hostname {hostname:?} is not a DNS name: {w}"))?;
        if self.project_subdomain {
            let project = project_name.ok_or("project_subdomain is on but the project is unknown")?;
            Ok(format!("{short}.{}.{}", self.project_label(project)?, self.domain))
        } else {
            Ok(format!("{short}.{}", self.domain))
        }
    }

    /// A compact-service sub-host: `<short>.<network>[.<project>].<domain>`.
    pub fn subhost_fqdn(&self, short: &str, network: &str, project_name: Option<&str>) -> Result<String, String> {
        check_label(network).map_err(|w| format!("compact service network {network:?}: {w}"))?;
        let net = network.to_ascii_lowercase();
        match (self.project_subdomain, project_name) {
            (true, Some(p)) => Ok(format!("{short}.{net}.{}.{}", self.project_label(p)?, self.domain)),
            (true, None) => Err("project_subdomain is on but the project is unknown".into()),
            (false, _) => Ok(format!("{short}.{net}.{}", self.domain)),
        }
    }
}

/// The first label of an FQDN.
pub fn short_name(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
}

fn split_principal<'a>(principal: &'a str, realm: &str) -> Result<(&'a str, &'a str), String> {
    let (name, r) = match principal.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (principal, None),
    };
    if let Some(r) = r {
        if r != realm {
            return Err(format!("service principal {principal:?} names realm {r:?}, not {realm:?}"));
        }
    }
    match name.split_once('/') {
        Some((svc, host)) if !svc.is_empty() && !host.is_empty() && !host.contains('/') => Ok((svc, host)),
        _ => Err(format!("service principal {principal:?} is malformed; expected service/host.domain")),
    }
}

fn json_list(key: &str, v: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else { return Err(format!("metadata '{key}' must be a JSON list of network names")) };
    items.iter().map(|i| i.as_str().map(str::to_string).ok_or(format!("metadata '{key}' must list strings"))).collect()
}

/// Compact services from `compact_service_*` keys, else `compact_services`.
pub fn compact_services(metadata: &Map<String, Value>) -> Result<Vec<(String, Vec<String>)>, String> {
    let parse = |key: &str, v: &Value| -> Result<Value, String> {
        let text = v.as_str().ok_or(format!("metadata '{key}' must be a string"))?;
        serde_json::from_str(text).map_err(|e| format!("metadata '{key}' is not valid JSON: {e}"))
    };
    let mut out = Vec::new();
    for (k, v) in metadata {
        if let Some(svc) = k.strip_prefix("compact_service_") {
            out.push((svc.to_string(), json_list(k, &parse(k, v)?)?));
        }
    }
    if out.is_empty() {
        if let Some(v) = metadata.get("compact_services") {
            let Value::Object(map) = parse("compact_services", v)? else {
                return Err("metadata 'compact_services' must be a JSON object".into());
            };
            for (svc, nets) in &map {
                out.push((svc.clone(), json_list("compact_services", nets)?));
            }
        }
    }
    Ok(out)
}

/// `managed_service_*` values, in metadata order.
pub fn managed_services(metadata: &Map<String, Value>) -> Result<Vec<String>, String> {
    metadata
        .iter()
        .filter(|(k, _)| k.starts_with("managed_service_"))
        .map(|(k, v)| v.as_str().map(str::to_string).ok_or(format!("metadata '{k}' must be a string principal")))
        .collect()
}

/// Every service the metadata asks for, managed by `instance_fqdn`.
pub fn requested_services(
    metadata: &Map<String, Value>,
    instance_fqdn: &str,
    policy: &FqdnPolicy,
    project_name: Option<&str>,
    realm: &str,
) -> Result<Vec<ServiceRequest>, String> {
    let mut out = Vec::new();
    for principal in managed_services(metadata)? {
        let (svc, host) = split_principal(&principal, realm)?;
        let host = host.to_ascii_lowercase();
        out.push(ServiceRequest { principal: format!("{svc}/{host}"), principal_host: host, managed_by: instance_fqdn.into() });
    }
    let short = short_name(instance_fqdn);
    for (svc, networks) in compact_services(metadata)? {
        if svc.contains('/') || svc.contains('@') || svc.trim().is_empty() {
            return Err(format!("compact service name {svc:?} is not a valid service name"));
        }
        for net in networks {
            let host = policy.subhost_fqdn(short, &net, project_name)?;
            out.push(ServiceRequest { principal: format!("{svc}/{host}"), principal_host: host, managed_by: instance_fqdn.into() });
        }
    }
    Ok(out)
}
