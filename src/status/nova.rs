//! "nova vendordata" (with `--nova-conf`): nova's `[api]
//! vendordata_dynamic_targets` has an entry for this service, nova uses
//! the DynamicJSON provider, and `[vendordata_dynamic_auth]` gives nova a
//! token to send (without one every request is refused with 401).

use std::path::Path;

use ini::{Ini, ParseOption};

use super::report::CheckResult;
use crate::config::ConfigFiles;
use crate::server::{listen_addr, ListenAddr};

/// The check's name.
pub const NAME: &str = "nova vendordata";

/// The port of the shipped httpd front (packaging/httpd/novajoin.conf).
pub const HTTPD_FRONT_PORT: u16 = 9090;

/// Reads `nova_conf` and compares it with where this service listens.
pub fn check(cfg: &ConfigFiles, nova_conf: &Path) -> CheckResult {
    let text = match std::fs::read_to_string(nova_conf) {
        Ok(t) => t,
        Err(e) => {
            return CheckResult::failure(NAME, format!("cannot read {}: {e}", nova_conf.display()))
        }
    };
    let listen = match listen_addr(cfg) {
        Ok(l) => l,
        Err(e) => return CheckResult::failure(NAME, e.to_string()),
    };
    evaluate(nova_conf, &text, &listen)
}

/// The verdict on nova.conf's text for a service listening at `listen`.
pub fn evaluate(path: &Path, text: &str, listen: &ListenAddr) -> CheckResult {
    let opt = ParseOption {
        enabled_escape: false,
        enabled_quote: false,
        ..ParseOption::default()
    };
    let ini = match Ini::load_from_str_opt(text, opt) {
        Ok(i) => i,
        Err(e) => return CheckResult::failure(NAME, format!("{}: {e}", path.display())),
    };
    let get = |section: &str, key: &str| {
        ini.section(Some(section))
            .and_then(|s| s.get(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let file = path.display();
    let providers = get("api", "vendordata_providers").unwrap_or_else(|| "StaticJSON".into());
    if !providers.split(',').any(|p| p.trim() == "DynamicJSON") {
        return CheckResult::failure(
            NAME,
            format!(
                "{file}: [api] vendordata_providers = {providers} lacks DynamicJSON: nova never \
                 calls novajoin; add it (StaticJSON,DynamicJSON)"
            ),
        );
    }
    let Some(targets) = get("api", "vendordata_dynamic_targets") else {
        return CheckResult::failure(
            NAME,
            format!(
                "{file}: [api] vendordata_dynamic_targets is not set; add join@<URL of this \
                 service>/v1/ (see packaging/nova/nova.conf.snippet)"
            ),
        );
    };
    let ours: Vec<&str> = targets
        .split(',')
        .map(str::trim)
        .filter(|t| target_matches(t, listen))
        .collect();
    if ours.is_empty() {
        return CheckResult::failure(
            NAME,
            format!(
                "{file}: no entry of [api] vendordata_dynamic_targets ({targets}) is a name@URL \
                 reaching this service ({}) at /v1; nova's answer key is the name (join for \
                 the shipped cloud-config)",
                describe(listen)
            ),
        );
    }
    match get("vendordata_dynamic_auth", "auth_type") {
        None => CheckResult::failure(
            NAME,
            format!(
                "{file}: [vendordata_dynamic_auth] auth_type is not set: nova sends no token and \
                 every request is refused (401); set auth_type = password, auth_url, username, \
                 password, project_name and the domains"
            ),
        ),
        Some(auth) => {
            let names: Vec<&str> = ours
                .iter()
                .filter_map(|t| t.split_once('@').map(|x| x.0))
                .collect();
            let warn = names.iter().all(|n| *n != "join");
            let details = format!(
                "{file}: target {} reaches this service; [vendordata_dynamic_auth] auth_type = {auth}{}",
                ours.join(", "),
                if warn {
                    "; the shipped cloud-config reads the answer under the name \"join\", which no \
                     matching entry uses"
                } else {
                    ""
                }
            );
            if warn {
                CheckResult::warning(NAME, details)
            } else {
                CheckResult::success(NAME, details)
            }
        }
    }
}

fn describe(listen: &ListenAddr) -> String {
    match listen {
        ListenAddr::Tcp(a) => format!("port {}", a.port()),
        ListenAddr::Unix(p) => format!(
            "the httpd front on port {HTTPD_FRONT_PORT}, unix socket {}",
            p.display()
        ),
    }
}

/// Whether one `name@url` entry reaches a service listening at `listen`:
/// the URL's port is `join_listen_port` (or the httpd front's when the
/// service listens on a Unix socket), its path is under `/v1`, and when
/// both the URL and `join_listen` are specific IP addresses they agree.
pub fn target_matches(entry: &str, listen: &ListenAddr) -> bool {
    let Some((name, url)) = entry.split_once('@') else {
        return false;
    };
    if name.is_empty() {
        return false;
    }
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let path_ok = url.path() == "/v1" || url.path().starts_with("/v1/");
    let Some(port) = url.port_or_known_default() else {
        return false;
    };
    path_ok
        && match listen {
            ListenAddr::Tcp(addr) => {
                let host_ok = match url.host() {
                    Some(url::Host::Ipv4(ip)) if !addr.ip().is_unspecified() => {
                        std::net::IpAddr::V4(ip) == addr.ip()
                    }
                    Some(url::Host::Ipv6(ip)) if !addr.ip().is_unspecified() => {
                        std::net::IpAddr::V6(ip) == addr.ip()
                    }
                    _ => true,
                };
                host_ok && port == addr.port()
            }
            ListenAddr::Unix(_) => port == HTTPD_FRONT_PORT,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::Code;

    fn tcp(s: &str) -> ListenAddr {
        ListenAddr::Tcp(s.parse().unwrap())
    }

    const GOOD: &str = "[api]\nvendordata_providers = StaticJSON,DynamicJSON\n\
        vendordata_dynamic_targets = join@http://127.0.0.1:9090/v1/\n\
        [vendordata_dynamic_auth]\nauth_type = password\n";

    #[test]
    fn a_target_matches_by_port_path_and_address() {
        let l = tcp("0.0.0.0:9090");
        assert!(target_matches(
            "join@https://novajoin.example.com:9090/v1/",
            &l
        ));
        assert!(!target_matches(
            "join@https://novajoin.example.com:9091/v1/",
            &l
        ));
        assert!(!target_matches(
            "join@https://novajoin.example.com:9090/v2/",
            &l
        ));
        assert!(!target_matches("https://novajoin.example.com:9090/v1/", &l));
        let l = tcp("10.0.0.5:9090");
        assert!(!target_matches("join@http://10.0.0.6:9090/v1", &l));
        assert!(target_matches("join@http://10.0.0.5:9090/v1", &l));
        let unix = ListenAddr::Unix("/run/novajoin/join.sock".into());
        assert!(target_matches(
            "join@https://nj.example.com:9090/v1/",
            &unix
        ));
    }

    #[test]
    fn verdicts() {
        let p = Path::new("/etc/nova/nova.conf");
        let l = tcp("127.0.0.1:9090");
        assert_eq!(evaluate(p, GOOD, &l).code, Code::Success);
        let r = evaluate(p, &GOOD.replace("9090", "9999"), &l);
        assert_eq!(r.code, Code::Failure);
        assert!(r.details.unwrap().contains("vendordata_dynamic_targets"));
        let r = evaluate(p, &GOOD.replace("auth_type = password\n", ""), &l);
        assert_eq!(r.code, Code::Failure);
        assert!(r.details.unwrap().contains("[vendordata_dynamic_auth]"));
        let r = evaluate(p, &GOOD.replace("StaticJSON,DynamicJSON", "StaticJSON"), &l);
        assert!(r.details.unwrap().contains("DynamicJSON"));
        assert_eq!(
            evaluate(p, &GOOD.replace("join@", "ipa@"), &l).code,
            Code::Warning
        );
    }
}
