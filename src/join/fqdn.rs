//! Host names: validation of nova's hostname and the FQDN rules shared by
//! the vendordata service and the notification listener (both must name the
//! same IPA host).

use super::JoinError;
use crate::config::{ConfigError, ConfigFiles};
use crate::ipa::IpaDefaultConf;
use crate::join::options::{DOMAIN, NORMALIZE_PROJECT, PROJECT_SUBDOMAIN};

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

impl FqdnPolicy {
    /// The rules from join.conf: `[DEFAULT] domain` (else the domain in
    /// `/etc/ipa/default.conf`), `project_subdomain`, `normalize_project`.
    /// The vendordata service and the listener both build it here, so that
    /// they always name the same IPA host.
    pub fn from_config(
        config: &ConfigFiles,
        default_conf: Option<&IpaDefaultConf>,
    ) -> Result<Self, ConfigError> {
        let domain = config
            .string(&DOMAIN)
            .filter(|d| !d.is_empty())
            .or_else(|| default_conf.and_then(|d| d.domain.clone()))
            .ok_or_else(|| ConfigError::Missing {
                group: "DEFAULT".into(),
                option: "domain".into(),
                why:
                    "the DNS domain of enrolled hosts is unknown (no /etc/ipa/default.conf either)"
                        .into(),
            })?;
        Ok(Self {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            project_subdomain: config.bool(&PROJECT_SUBDOMAIN)?,
            normalize_project: config.bool(&NORMALIZE_PROJECT)?,
        })
    }
}

/// Longest FQDN DNS allows (RFC 1035, without the root dot).
pub const MAX_FQDN: usize = 253;
/// Longest DNS label.
pub const MAX_LABEL: usize = 63;

/// Checks one DNS label (letters, digits, hyphens; not starting or ending
/// with a hyphen; 1..=63 characters).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("has an empty label".into());
    }
    if label.len() > MAX_LABEL {
        return Err(format!("has a label longer than {MAX_LABEL} characters"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "label {:?} may only contain letters, digits and '-'",
            label.escape_debug().to_string()
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} must not start or end with '-'"));
    }
    Ok(())
}

/// The 2016 nova-hooks rule the original documented: every run of characters
/// outside `[0-9A-Za-z]` becomes one `-`, then leading and trailing `-` go.
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
    /// The project label for `project_name` under this policy.
    fn project_label(&self, project_name: &str) -> Result<String, JoinError> {
        let label = if self.normalize_project {
            normalize_project_name(project_name)
        } else {
            project_name.to_string()
        };
        check_label(&label).map_err(|why| {
            JoinError::BadRequest(format!(
                "project name {project_name:?} cannot be used as a DNS label: it {why}; \
             enable normalize_project or rename the project"
            ))
        })?;
        Ok(label.to_lowercase())
    }

    /// The instance's FQDN. `hostname` is nova's hostname; an FQDN hostname
    /// (nova API 2.94) is accepted only when it already ends in our domain
    /// (it is then used as is, never with the domain appended twice).
    /// `project_name` must be given when `project_subdomain` is on.
    pub fn instance_fqdn(
        &self,
        hostname: &str,
        project_name: Option<&str>,
    ) -> Result<String, JoinError> {
        let host = hostname.trim_end_matches('.').to_ascii_lowercase();
        let suffix = format!(".{}", self.domain);
        let short = if host.contains('.') {
            match host.strip_suffix(&suffix) {
                Some(rest) if !self.project_subdomain && !rest.contains('.') => rest.to_string(),
                _ => {
                    return Err(JoinError::BadRequest(format!(
                        "hostname {:?} is a dotted name outside domain {:?}; \
                         use a short hostname or an FQDN in that domain",
                        hostname.escape_debug().to_string(),
                        self.domain
                    )))
                }
            }
        } else {
            host
        };
        check_label(&short).map_err(|why| {
            JoinError::BadRequest(format!(
                "hostname {:?} is not a valid DNS name: it {why}",
                hostname.escape_debug().to_string()
            ))
        })?;
        let fqdn = if self.project_subdomain {
            let project = project_name.ok_or_else(|| JoinError::BadRequest(
                "project_subdomain is on but the request has no project-id to name the subdomain".into()))?;
            format!("{short}.{}.{}", self.project_label(project)?, self.domain)
        } else {
            format!("{short}.{}", self.domain)
        };
        if fqdn.len() > MAX_FQDN {
            return Err(JoinError::BadRequest(format!(
                "host name {fqdn:?} is longer than {MAX_FQDN} characters"
            )));
        }
        Ok(fqdn)
    }

    /// A compact-service sub-host: `<short>.<network>[.<project>].<domain>`.
    /// Unlike the original (which put the literal `None` there), the real
    /// project label is used with `project_subdomain`.
    pub fn subhost_fqdn(
        &self,
        short: &str,
        network: &str,
        project_name: Option<&str>,
    ) -> Result<String, JoinError> {
        check_label(network).map_err(|why| {
            JoinError::BadRequest(format!(
                "compact service network {:?} is not a valid DNS label: it {why}",
                network.escape_debug().to_string()
            ))
        })?;
        let fqdn = match (self.project_subdomain, project_name) {
            (true, Some(p)) => format!(
                "{short}.{}.{}.{}",
                network.to_ascii_lowercase(),
                self.project_label(p)?,
                self.domain
            ),
            (true, None) => return Err(JoinError::BadRequest(
                "project_subdomain is on but the request has no project-id to name the subdomain"
                    .into(),
            )),
            (false, _) => format!("{short}.{}.{}", network.to_ascii_lowercase(), self.domain),
        };
        if fqdn.len() > MAX_FQDN {
            return Err(JoinError::BadRequest(format!(
                "host name {fqdn:?} is longer than {MAX_FQDN} characters"
            )));
        }
        Ok(fqdn)
    }
}

/// The first label of an FQDN.
pub fn short_name(fqdn: &str) -> &str {
    fqdn.split('.').next().unwrap_or(fqdn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(sub: bool, norm: bool) -> FqdnPolicy {
        FqdnPolicy {
            domain: "example.com".into(),
            project_subdomain: sub,
            normalize_project: norm,
        }
    }

    #[test]
    fn plain_and_project_fqdns() {
        assert_eq!(
            policy(false, true).instance_fqdn("vm1", None).unwrap(),
            "vm1.example.com"
        );
        assert_eq!(
            policy(true, true)
                .instance_fqdn("vm1", Some("tenantA"))
                .unwrap(),
            "vm1.tenanta.example.com"
        );
        assert!(
            policy(true, true).instance_fqdn("vm1", None).is_err(),
            "never vm1.None.example.com"
        );
    }

    #[test]
    fn normalize_project_follows_the_documented_rule() {
        assert_eq!(normalize_project_name("My Project__x"), "My-Project-x");
        assert_eq!(normalize_project_name("--a b--"), "a-b");
        assert_eq!(
            policy(true, true)
                .instance_fqdn("vm1", Some("My Project"))
                .unwrap(),
            "vm1.my-project.example.com"
        );
        assert!(policy(true, false)
            .instance_fqdn("vm1", Some("My Project"))
            .is_err());
    }

    #[test]
    fn fqdn_hostnames_in_our_domain_are_not_doubled() {
        assert_eq!(
            policy(false, true)
                .instance_fqdn("vm1.example.com", None)
                .unwrap(),
            "vm1.example.com"
        );
        assert!(policy(false, true)
            .instance_fqdn("vm1.other.org", None)
            .is_err());
        assert!(policy(false, true)
            .instance_fqdn("a.b.example.com", None)
            .is_err());
    }

    #[test]
    fn bad_hostnames_are_refused() {
        let p = policy(false, true);
        for bad in [
            "vm 1",
            "vm_1",
            "-vm",
            "vm-",
            "vé",
            "a;rm -rf",
            &"a".repeat(64),
            "$(id)",
        ] {
            let e = p.instance_fqdn(bad, None).unwrap_err();
            assert!(matches!(e, JoinError::BadRequest(_)), "{bad}");
        }
        assert_eq!(
            p.instance_fqdn(&"a".repeat(63), None).unwrap().len(),
            63 + 12
        );
    }

    #[test]
    fn overlong_fqdn_is_refused() {
        let p = FqdnPolicy {
            domain: format!("{}.com", vec!["x".repeat(60); 4].join(".")),
            project_subdomain: false,
            normalize_project: true,
        };
        assert!(p.instance_fqdn(&"a".repeat(63), None).is_err());
    }

    #[test]
    fn subhosts() {
        assert_eq!(
            policy(false, true)
                .subhost_fqdn("vm1", "internalapi", None)
                .unwrap(),
            "vm1.internalapi.example.com"
        );
        assert_eq!(
            policy(true, true)
                .subhost_fqdn("vm1", "ctl", Some("P"))
                .unwrap(),
            "vm1.ctl.p.example.com"
        );
    }
}
