//! Extra hosts and service principals requested in instance metadata:
//! `managed_service_*`, `compact_service_*` and the legacy `compact_services`.
//!
//! Shared by the vendordata handler (which creates them) and the
//! notification listener (which removes them), so both read the metadata the
//! same way.

use serde_json::{Map, Value};

use super::fqdn::FqdnPolicy;
use super::request::json_type;
use super::JoinError;

/// One service principal and the host that may manage it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `service/host` (without realm).
    pub principal: String,
    /// The principal's host: created as an IPA host if missing.
    pub principal_host: String,
    /// The host that is added to the service's `managedby`.
    pub managed_by: String,
    /// A compact service, whose host is a sub-host named after the instance
    /// (`<short>.<network>.<domain>`); else a `managed_service_*`, whose
    /// host the tenant named.
    pub compact: bool,
}

/// A principal `service/host[@REALM]` split into parts.
pub fn split_principal<'a>(
    principal: &'a str,
    realm: &str,
) -> Result<(&'a str, &'a str), JoinError> {
    let (name, realm_part) = match principal.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (principal, None),
    };
    if let Some(r) = realm_part {
        if r != realm {
            return Err(JoinError::BadRequest(format!(
                "service principal {principal:?} names realm {r:?}, but IPA's realm is {realm:?}"
            )));
        }
    }
    match name.split_once('/') {
        Some((svc, host)) if !svc.is_empty() && !host.is_empty() && !host.contains('/') => {
            Ok((svc, host))
        }
        _ => Err(JoinError::BadRequest(format!(
            "service principal {principal:?} is malformed; expected service/host.domain"
        ))),
    }
}

/// Compact services: `{service: [network, ...]}` from `compact_service_*`
/// keys, else from the legacy `compact_services` JSON object.
pub fn compact_services(
    metadata: &Map<String, Value>,
) -> Result<Vec<(String, Vec<String>)>, JoinError> {
    let parse_networks = |key: &str, v: &Value| -> Result<Vec<String>, JoinError> {
        let text = v.as_str().ok_or_else(|| {
            JoinError::BadRequest(format!(
                "metadata '{key}' must be a string holding a JSON list of networks"
            ))
        })?;
        let parsed: Value = serde_json::from_str(text).map_err(|e| {
            JoinError::BadRequest(format!("metadata '{key}' is not valid JSON: {e}"))
        })?;
        list_of_strings(key, &parsed)
    };
    let mut out = Vec::new();
    for (k, v) in metadata {
        if let Some(rest) = k.strip_prefix("compact_service_") {
            if rest.is_empty() {
                return Err(JoinError::BadRequest(format!(
                    "metadata key '{k}' names no service"
                )));
            }
            out.push((rest.to_string(), parse_networks(k, v)?));
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    if let Some(v) = metadata.get("compact_services") {
        let text = v.as_str().ok_or_else(|| {
            JoinError::BadRequest(
                "metadata 'compact_services' must be a string holding a JSON object".into(),
            )
        })?;
        let parsed: Value = serde_json::from_str(text).map_err(|e| {
            JoinError::BadRequest(format!(
                "metadata 'compact_services' is not valid JSON: {e}"
            ))
        })?;
        let Value::Object(map) = parsed else {
            return Err(JoinError::BadRequest(format!(
                "metadata 'compact_services' must be a JSON object, not {}",
                json_type(&parsed)
            )));
        };
        for (svc, nets) in &map {
            out.push((svc.clone(), list_of_strings("compact_services", nets)?));
        }
    }
    Ok(out)
}

fn list_of_strings(key: &str, v: &Value) -> Result<Vec<String>, JoinError> {
    let Value::Array(items) = v else {
        return Err(JoinError::BadRequest(format!(
            "metadata '{key}' must be a JSON list of network names"
        )));
    };
    items
        .iter()
        .map(|i| {
            i.as_str().map(str::to_string).ok_or_else(|| {
                JoinError::BadRequest(format!(
                    "metadata '{key}' must list network names as strings"
                ))
            })
        })
        .collect()
}

/// `managed_service_*` values, in metadata order.
pub fn managed_services(metadata: &Map<String, Value>) -> Result<Vec<String>, JoinError> {
    metadata
        .iter()
        .filter(|(k, _)| k.starts_with("managed_service_"))
        .map(|(k, v)| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                JoinError::BadRequest(format!(
                    "metadata '{k}' must be a string principal like HTTP/host.domain"
                ))
            })
        })
        .collect()
}

/// Every service the metadata asks for. `instance_fqdn` manages the
/// `managed_service_*` principals; the compact services are managed by the
/// instance host too (the original used a project-less name there, which
/// differed from the enrolled host under `project_subdomain`).
pub fn requested_services(
    metadata: &Map<String, Value>,
    instance_fqdn: &str,
    policy: &FqdnPolicy,
    project_name: Option<&str>,
    realm: &str,
) -> Result<Vec<ServiceRequest>, JoinError> {
    let mut out = Vec::new();
    for principal in managed_services(metadata)? {
        let (svc, host) = split_principal(&principal, realm)?;
        out.push(ServiceRequest {
            principal: format!("{svc}/{}", host.to_ascii_lowercase()),
            principal_host: host.to_ascii_lowercase(),
            managed_by: instance_fqdn.to_string(),
            compact: false,
        });
    }
    let short = super::fqdn::short_name(instance_fqdn);
    for (svc, networks) in compact_services(metadata)? {
        if svc.contains('/') || svc.contains('@') || svc.trim().is_empty() {
            return Err(JoinError::BadRequest(format!(
                "compact service name {svc:?} is not a valid service name"
            )));
        }
        for net in networks {
            let host = policy.subhost_fqdn(short, &net, project_name)?;
            out.push(ServiceRequest {
                principal: format!("{svc}/{host}"),
                principal_host: host,
                managed_by: instance_fqdn.to_string(),
                compact: true,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn policy() -> FqdnPolicy {
        FqdnPolicy {
            domain: "example.com".into(),
            project_subdomain: false,
            normalize_project: true,
        }
    }

    #[test]
    fn compact_service_keys_win_over_the_legacy_form() {
        let m = md(&[
            ("compact_service_HTTP", r#"["ctlplane", "internalapi"]"#),
            ("compact_services", r#"{"x": ["y"]}"#),
        ]);
        let s = compact_services(&m).unwrap();
        assert_eq!(
            s,
            vec![(
                "HTTP".to_string(),
                vec!["ctlplane".to_string(), "internalapi".to_string()]
            )]
        );
        let m = md(&[(
            "compact_services",
            r#"{"HTTP": ["ctlplane"], "foo_bar": ["storage"]}"#,
        )]);
        assert_eq!(compact_services(&m).unwrap().len(), 2);
    }

    #[test]
    fn requested_services_for_both_forms() {
        let m = md(&[
            (
                "managed_service_a",
                "HTTP/overcloud.internalapi.example.com",
            ),
            ("compact_service_HTTP", r#"["ctlplane"]"#),
        ]);
        let s = requested_services(&m, "vm1.example.com", &policy(), None, "EXAMPLE.COM").unwrap();
        assert_eq!(s[0].principal, "HTTP/overcloud.internalapi.example.com");
        assert_eq!(s[0].principal_host, "overcloud.internalapi.example.com");
        assert_eq!(s[1].principal, "HTTP/vm1.ctlplane.example.com");
        assert!(s.iter().all(|r| r.managed_by == "vm1.example.com"));
    }

    #[test]
    fn malformed_input_is_a_400_not_a_500() {
        for m in [
            md(&[("managed_service_a", "nohost")]),
            md(&[("managed_service_a", "HTTP/h.example.com@OTHER.REALM")]),
            md(&[("compact_service_HTTP", "not json")]),
            md(&[("compact_service_HTTP", r#"{"a": 1}"#)]),
            md(&[("compact_services", "[1]")]),
            md(&[("compact_service_HTTP", r#"["bad net"]"#)]),
        ] {
            let e = requested_services(&m, "vm1.example.com", &policy(), None, "EXAMPLE.COM")
                .unwrap_err();
            assert!(matches!(e, JoinError::BadRequest(_)), "{m:?}");
        }
    }
}
