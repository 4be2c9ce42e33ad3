//! Building an [`IpaClientConfig`] from join.conf and `/etc/ipa/default.conf`.
//!
//! Where each value comes from, first match wins:
//!
//! | value | join.conf | default.conf | default |
//! |---|---|---|---|
//! | URLs | `[DEFAULT] url` (a list) | `xmlrpc_uri` (`/xml` → `/json`), else `https://<server>/ipa/json` | `https://<[ipa] server>/ipa/json` |
//! | server FQDNs (Referer) | `[ipa] server` (a list) | `server`, else host of `xmlrpc_uri` | host of the URL |
//! | more servers | | | DNS SRV of `[ipa] domain` (default.conf `domain`), see `[ipa] discover_servers` |
//! | breaker | `[ipa] breaker_failures`, `breaker_open_time` | | 3, 30 s |
//! | realm | `[ipa] realm` | `realm` | — |
//! | login | `[ipa] auth_method`, `username`, `password` | | kerberos |
//! | Kerberos principal | `[ipa] principal` | `nova/<host>@<realm>` | `nova/<gethostname()>@<realm>` |
//! | keytab | `[DEFAULT] keytab` | | `/etc/novajoin/krb5.keytab` |
//! | CA bundle | `[ipa] ca_file` | | `/etc/ipa/ca.crt` (https only) |
//! | version, timeout, cap | `[ipa] api_version`, `timeout`, `detached_call_timeout`, `max_concurrent_calls` | | 2.146, 20 s, 300 s, 16 |
//! | retries | `[DEFAULT] connect_retries` | | 2 |
//! | queue | `[ipa] batch_max`, `batch_window_ms`, `queue_deadline` | | 50, 0 ms, 4 s |
//!
//! Several servers: the Nth URL goes with the Nth server FQDN; a URL
//! beyond the servers has its host as FQDN, a server beyond the URLs is
//! called at `https://<server>/ipa/json`. join.conf's lists replace
//! default.conf's values (each list on its own, as for one server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::auth::IpaAuth;
use super::batcher::QueueSettings;
use super::client::IpaClientConfig;
use super::default_conf::{DefaultConfError, IpaDefaultConf};
use super::discovery::{parse_nameserver, DiscoveryConfig};
use super::kerberos::{default_principal, keytab_readable, local_hostname, KerberosAuth};
use super::secret::Secret;
use super::servers::{BreakerPolicy, ServerAddr, ServerSource};
use crate::config::schema::OptionSpec;
use crate::config::OptionSource;
use crate::config::{ConfigError, ConfigFiles};
use crate::ipa::options::{
    CONNECT_RETRIES, IPA_API_VERSION, IPA_AUTH_METHOD, IPA_BATCH_MAX, IPA_BATCH_WINDOW_MS,
    IPA_BREAKER_FAILURES, IPA_BREAKER_OPEN_TIME, IPA_CA_FILE, IPA_DEFAULT_CONF,
    IPA_DETACHED_CALL_TIMEOUT, IPA_DISCOVERY_NAMESERVERS, IPA_DISCOVER_SERVERS, IPA_DOMAIN,
    IPA_MAX_CONCURRENT, IPA_PASSWORD, IPA_PRINCIPAL, IPA_QUEUE_DEADLINE, IPA_REALM, IPA_SERVER,
    IPA_TIMEOUT, IPA_USERNAME, KEYTAB, URL,
};

/// Why the IPA client cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum IpaConfigError {
    /// A join.conf value is wrong or missing (names file, line, option).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// default.conf exists but cannot be read or parsed.
    #[error(transparent)]
    DefaultConf(#[from] DefaultConfError),
}

fn bad(conf: &ConfigFiles, spec: &OptionSpec, problem: String) -> ConfigError {
    match conf.raw(spec) {
        Some(at) => ConfigError::BadValue {
            file: at.file.clone(),
            line: at.line,
            group: spec.group.to_string(),
            option: spec.name.to_string(),
            problem,
        },
        None => ConfigError::Missing {
            group: spec.group.to_string(),
            option: spec.name.to_string(),
            why: problem,
        },
    }
}

/// Reads default.conf at `[ipa] default_conf`; `Ok(None)` when the file
/// does not exist (a host that is not an IPA client).
pub fn load_default_conf(conf: &ConfigFiles) -> Result<Option<IpaDefaultConf>, IpaConfigError> {
    let path = PathBuf::from(conf.string(&IPA_DEFAULT_CONF).unwrap_or_default());
    match IpaDefaultConf::load(&path) {
        Ok(c) => Ok(Some(c)),
        Err(DefaultConfError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `[ipa] auth_method = kerberos`: the principal (`[ipa] principal`, else
/// `nova/<host>@<realm>` with the host from default.conf or the system) and
/// the keytab (`[DEFAULT] keytab`, which must be readable now).
fn kerberos_auth(
    conf: &ConfigFiles,
    dc: Option<&IpaDefaultConf>,
    realm: Option<&str>,
) -> Result<IpaAuth, ConfigError> {
    let principal = match conf.string(&IPA_PRINCIPAL).filter(|p| !p.trim().is_empty()) {
        Some(p) => p.trim().to_string(),
        None => {
            let host = dc
                .and_then(|d| d.host.clone())
                .or_else(local_hostname)
                .ok_or_else(|| ConfigError::Missing {
                    group: "ipa".into(),
                    option: "principal".into(),
                    why: "the host name for nova/<host>@<realm> is unknown (no host in \
                          /etc/ipa/default.conf and gethostname failed)"
                        .into(),
                })?;
            default_principal(&host, realm)
        }
    };
    let keytab = PathBuf::from(
        conf.string(&KEYTAB)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "/etc/novajoin/krb5.keytab".into()),
    );
    if let Err(e) = keytab_readable(&keytab) {
        return Err(bad(
            conf,
            &KEYTAB,
            format!(
                "cannot read the keytab {}: {e} (auth_method = kerberos needs the keys of {principal}; \
                 `novajoin ipa-setup` fetches them)",
                keytab.display()
            ),
        ));
    }
    Ok(IpaAuth::kerberos(KerberosAuth::with_keytab(
        principal, keytab,
    )))
}

/// The configured servers, in order (at least one); see the module
/// documentation for how URLs and FQDNs pair.
fn server_addrs(
    conf: &ConfigFiles,
    dc: Option<&IpaDefaultConf>,
) -> Result<Vec<ServerAddr>, ConfigError> {
    let join_servers = conf.list(&IPA_SERVER);
    let join_urls = conf.list(&URL);
    let servers: Vec<String> = if join_servers.is_empty() {
        dc.and_then(IpaDefaultConf::server_fqdn)
            .into_iter()
            .collect()
    } else {
        join_servers
    };
    let (urls, url_source) = if join_urls.is_empty() {
        let dc_url: Vec<String> = dc.and_then(IpaDefaultConf::json_url).into_iter().collect();
        let source = if dc_url.is_empty() {
            ServerSource::Configured
        } else {
            ServerSource::DefaultConf
        };
        (dc_url, source)
    } else {
        (join_urls, ServerSource::Configured)
    };
    let server_source = if conf.raw(&IPA_SERVER).is_some() {
        ServerSource::Configured
    } else {
        ServerSource::DefaultConf
    };
    let mut out = Vec::new();
    for i in 0..urls.len().max(servers.len()) {
        let (text, source) = match (urls.get(i), servers.get(i)) {
            (Some(u), _) => (u.clone(), url_source),
            (None, Some(s)) => (format!("https://{s}/ipa/json"), server_source),
            (None, None) => unreachable!("i is below the longer list"),
        };
        let spec = if urls.get(i).is_some() {
            &URL
        } else {
            &IPA_SERVER
        };
        let url = Url::parse(&text)
            .map_err(|e| bad(conf, spec, format!("{text:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(bad(
                conf,
                spec,
                format!("{text:?} must be https://<ipa server fqdn>/ipa/json"),
            ));
        }
        out.push(ServerAddr {
            url,
            fqdn: servers.get(i).cloned(),
            source,
        });
    }
    if out.is_empty() {
        return Err(ConfigError::Missing {
            group: "DEFAULT".into(),
            option: "url".into(),
            why: "no IPA server is known: set [DEFAULT] url or [ipa] server, or make this host an IPA \
                  client (/etc/ipa/default.conf, see [ipa] default_conf)"
                .into(),
        });
    }
    Ok(out)
}

/// `[ipa] discover_servers`: where to look for more servers, or `None`.
fn discovery(
    conf: &ConfigFiles,
    dc: Option<&IpaDefaultConf>,
    timeout: f64,
) -> Result<Option<DiscoveryConfig>, ConfigError> {
    let mode = conf
        .choice(&IPA_DISCOVER_SERVERS)?
        .unwrap_or_else(|| "auto".into());
    let domain = conf
        .string(&IPA_DOMAIN)
        .filter(|d| !d.trim().is_empty())
        .or_else(|| dc.and_then(|d| d.domain.clone()));
    let on = match mode.as_str() {
        "true" => true,
        "false" => false,
        // ipa-client relies on DNS when no server is fixed.
        _ => {
            conf.raw(&IPA_SERVER).is_none()
                && conf.raw(&URL).is_none()
                && dc.is_some_and(|d| d.server.is_none())
                && domain.is_some()
        }
    };
    if !on {
        return Ok(None);
    }
    let Some(domain) = domain else {
        return Err(bad(
            conf,
            &IPA_DISCOVER_SERVERS,
            "DNS discovery needs the IPA domain: set [ipa] domain (or domain in \
             /etc/ipa/default.conf)"
                .into(),
        ));
    };
    let mut nameservers: Vec<SocketAddr> = Vec::new();
    for n in conf.list(&IPA_DISCOVERY_NAMESERVERS) {
        nameservers
            .push(parse_nameserver(&n).map_err(|p| bad(conf, &IPA_DISCOVERY_NAMESERVERS, p))?);
    }
    Ok(Some(DiscoveryConfig {
        domain,
        nameservers,
        timeout: Duration::from_secs_f64(timeout.min(5.0)),
    }))
}

impl IpaClientConfig {
    /// The client configuration from join.conf and default.conf (read by
    /// [`load_default_conf`]).
    pub fn from_conf_with(
        conf: &ConfigFiles,
        dc: Option<&IpaDefaultConf>,
    ) -> Result<Self, IpaConfigError> {
        let mut src = conf;
        let addrs = server_addrs(conf, dc)?;
        let url = addrs[0].url.clone();
        let server = addrs[0].fqdn.clone();
        let realm = conf
            .string(&IPA_REALM)
            .filter(|s| !s.is_empty())
            .or_else(|| dc.and_then(|d| d.realm.clone()));

        let auth = match conf.choice(&IPA_AUTH_METHOD)?.as_deref() {
            Some("password") => {
                let why = "[ipa] auth_method = password needs it";
                IpaAuth::password(
                    conf.required(&IPA_USERNAME, why)?,
                    Secret::new(conf.required(&IPA_PASSWORD, why)?),
                )
            }
            _ => kerberos_auth(conf, dc, realm.as_deref())?,
        };

        let ca_file = (url.scheme() == "https")
            .then(|| conf.string(&IPA_CA_FILE).map(PathBuf::from))
            .flatten();

        let api_version = conf.string(&IPA_API_VERSION).unwrap_or_default();
        let valid_version = api_version.split_once('.').is_some_and(|(a, b)| {
            a == "2" && !b.is_empty() && b.chars().all(|c| c.is_ascii_digit())
        });
        if !valid_version {
            return Err(bad(
                conf,
                &IPA_API_VERSION,
                format!("{api_version:?} is not an IPA API version of the form 2.N (e.g. 2.146)"),
            )
            .into());
        }

        let timeout = src.float_or_default(&IPA_TIMEOUT)?;
        if timeout <= 0.0 {
            return Err(bad(conf, &IPA_TIMEOUT, "must be more than 0 seconds".into()).into());
        }
        let detached = src.float_or_default(&IPA_DETACHED_CALL_TIMEOUT)?;
        if detached < timeout {
            return Err(bad(
                conf,
                &IPA_DETACHED_CALL_TIMEOUT,
                format!("must be at least [ipa] timeout ({timeout} s)"),
            )
            .into());
        }
        let discovery = discovery(conf, dc, timeout)?;
        let open_time = src.float_or_default(&IPA_BREAKER_OPEN_TIME)?;
        let breaker = BreakerPolicy {
            failures: src.int_or_default(&IPA_BREAKER_FAILURES)? as u32,
            open_for: Duration::from_secs_f64(open_time),
        };
        let url_source = addrs[0].source;
        let mut cfg = IpaClientConfig::new(url, auth);
        cfg.server_fqdn = server;
        cfg.url_source = url_source;
        cfg.replicas = addrs.into_iter().skip(1).collect();
        cfg.discovery = discovery;
        cfg.breaker = breaker;
        cfg.realm = realm;
        cfg.ca_file = ca_file;
        cfg.api_version = api_version;
        cfg.timeout = Duration::from_secs_f64(timeout);
        cfg.detached_call_timeout = Duration::from_secs_f64(detached);
        cfg.connect_retries = src.int_or_default(&CONNECT_RETRIES)? as u32;
        cfg.max_concurrent_calls = src.int_or_default(&IPA_MAX_CONCURRENT)? as usize;
        let queue_deadline = src.float_or_default(&IPA_QUEUE_DEADLINE)?;
        if !(queue_deadline >= 0.0 && queue_deadline.is_finite()) {
            return Err(bad(
                conf,
                &IPA_QUEUE_DEADLINE,
                "must be 0 (never refuse) or more seconds".into(),
            )
            .into());
        }
        cfg.queue = QueueSettings {
            batch_max: src.int_or_default(&IPA_BATCH_MAX)? as usize,
            window: Duration::from_millis(src.int_or_default(&IPA_BATCH_WINDOW_MS)? as u64),
            deadline: (queue_deadline > 0.0).then(|| Duration::from_secs_f64(queue_deadline)),
        };
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipa::kerberos::CredentialSource;
    use std::path::Path;

    fn conf(text: &str) -> ConfigFiles {
        let mut c = ConfigFiles::default();
        c.add_text(Path::new("/etc/novajoin/join.conf"), text)
            .unwrap();
        c
    }

    fn dc() -> IpaDefaultConf {
        IpaDefaultConf::parse(
            Path::new("/etc/ipa/default.conf"),
            "[global]\nrealm = EXAMPLE.COM\ndomain = example.com\nserver = ipa.example.com\n\
             xmlrpc_uri = https://ipa.example.com/ipa/xml\n",
        )
        .unwrap()
    }

    #[test]
    fn password_login_from_join_conf_and_server_from_default_conf() {
        let c = conf("[DEFAULT]\nconnect_retries = 4\n[ipa]\nauth_method = password\nusername = admin\npassword = Secret123\n");
        let cfg = IpaClientConfig::from_conf_with(&c, Some(&dc())).unwrap();
        assert_eq!(cfg.url.as_str(), "https://ipa.example.com/ipa/json");
        assert_eq!(cfg.server_fqdn.as_deref(), Some("ipa.example.com"));
        assert_eq!(cfg.realm.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(cfg.api_version, "2.146");
        assert_eq!(cfg.connect_retries, 4);
        assert_eq!(cfg.max_concurrent_calls, 16);
        assert_eq!(cfg.queue, QueueSettings::default());
        assert_eq!(cfg.ca_file.as_deref(), Some(Path::new("/etc/ipa/ca.crt")));
        assert!(!format!("{cfg:?}").contains("Secret123"));
    }

    #[test]
    fn missing_password_names_the_option() {
        let c = conf("[ipa]\nauth_method = password\nusername = admin\n");
        let e = IpaClientConfig::from_conf_with(&c, Some(&dc()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[ipa] password"), "{e}");
    }

    #[test]
    fn bad_version_names_file_and_line() {
        let c =
            conf("[ipa]\nauth_method = password\nusername = a\npassword = b\napi_version = 4.12\n");
        let e = IpaClientConfig::from_conf_with(&c, Some(&dc()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("join.conf:5") && e.contains("api_version"),
            "{e}"
        );
    }

    #[test]
    fn no_server_anywhere_is_a_clear_error() {
        let c = conf("[ipa]\nauth_method = password\nusername = a\npassword = b\n");
        let e = IpaClientConfig::from_conf_with(&c, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[DEFAULT] url"), "{e}");
    }

    #[test]
    fn url_option_wins_and_http_has_no_ca() {
        let c = conf(
            "[DEFAULT]\nurl = http://127.0.0.1:8080/ipa/json\n[ipa]\nserver = ipa.example.test\n\
                      auth_method = password\nusername = a\npassword = b\n",
        );
        let cfg = IpaClientConfig::from_conf_with(&c, Some(&dc())).unwrap();
        assert_eq!(cfg.url.as_str(), "http://127.0.0.1:8080/ipa/json");
        assert_eq!(cfg.server_fqdn.as_deref(), Some("ipa.example.test"));
        assert_eq!(cfg.ca_file, None);
    }

    #[test]
    fn kerberos_principal_from_default_conf_host_and_realm() {
        let kt = tempfile::NamedTempFile::new().unwrap();
        let c = conf(&format!("[DEFAULT]\nkeytab = {}\n", kt.path().display()));
        let dc = IpaDefaultConf::parse(
            Path::new("/etc/ipa/default.conf"),
            "[global]\nrealm = EXAMPLE.COM\nserver = ipa.example.com\nhost = uc.example.com\n",
        )
        .unwrap();
        let cfg = IpaClientConfig::from_conf_with(&c, Some(&dc)).unwrap();
        let IpaAuth::Kerberos(k) = &cfg.auth else {
            panic!("{:?}", cfg.auth)
        };
        assert_eq!(
            k.source(),
            &CredentialSource::Keytab {
                principal: "nova/uc.example.com@EXAMPLE.COM".into(),
                keytab: kt.path().to_path_buf()
            }
        );
    }

    #[test]
    fn kerberos_principal_option_wins() {
        let kt = tempfile::NamedTempFile::new().unwrap();
        let c = conf(&format!(
            "[DEFAULT]\nkeytab = {}\n[ipa]\nauth_method = kerberos\nprincipal = svc/x@R\n",
            kt.path().display()
        ));
        let cfg = IpaClientConfig::from_conf_with(&c, Some(&dc())).unwrap();
        assert!(
            cfg.auth.describe().contains("svc/x@R"),
            "{}",
            cfg.auth.describe()
        );
    }

    #[test]
    fn unreadable_keytab_names_file_line_and_option() {
        let c = conf("[DEFAULT]\nurl = https://ipa.example.com/ipa/json\nkeytab = /nonexistent/nova.keytab\n");
        let e = IpaClientConfig::from_conf_with(&c, Some(&dc()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("join.conf:3")
                && e.contains("keytab")
                && e.contains("/nonexistent/nova.keytab"),
            "{e}"
        );
    }
}
