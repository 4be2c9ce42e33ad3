//! `/etc/ipa/default.conf`: the IPA client configuration that
//! `ipa-client-install` writes on an enrolled host. novajoin reads `host`,
//! `realm`, `domain`, `server` and `xmlrpc_uri` from its `[global]` section.

use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};

/// The `[global]` values novajoin uses; each is `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpaDefaultConf {
    /// The file read.
    pub path: PathBuf,
    /// `host`: this machine's FQDN (the `nova/<host>` principal's host).
    pub host: Option<String>,
    /// `realm`: the Kerberos realm (`krb_realm` in the vendordata answer).
    pub realm: Option<String>,
    /// `domain`: the DNS domain (default of `[DEFAULT] domain`).
    pub domain: Option<String>,
    /// `server`: the IPA server FQDN (older installs).
    pub server: Option<String>,
    /// `xmlrpc_uri`: `https://<server>/ipa/xml`.
    pub xmlrpc_uri: Option<String>,
}

/// Why default.conf could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DefaultConfError {
    /// The file could not be read.
    #[error("cannot read {}: {source} (set [ipa] default_conf, or [ipa] server and realm)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not INI.
    #[error("{}: {problem}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line).
        problem: String,
    },
}

impl IpaDefaultConf {
    /// Reads the file.
    pub fn load(path: &Path) -> Result<Self, DefaultConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| DefaultConfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a default.conf (no escapes or quotes, as
    /// Python's configparser reads it).
    pub fn parse(path: &Path, text: &str) -> Result<Self, DefaultConfError> {
        let opt = ParseOption {
            enabled_escape: false,
            enabled_quote: false,
            ..ParseOption::default()
        };
        let ini = Ini::load_from_str_opt(text, opt).map_err(|e| DefaultConfError::Syntax {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let get = |k: &str| {
            ini.section(Some("global"))
                .and_then(|s| s.get(k))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            path: path.to_path_buf(),
            host: get("host"),
            realm: get("realm"),
            domain: get("domain"),
            server: get("server"),
            xmlrpc_uri: get("xmlrpc_uri"),
        })
    }

    /// The IPA server's FQDN: `server`, else the host of `xmlrpc_uri`.
    pub fn server_fqdn(&self) -> Option<String> {
        self.server.clone().or_else(|| {
            let uri = url::Url::parse(self.xmlrpc_uri.as_deref()?).ok()?;
            uri.host_str().map(str::to_string)
        })
    }

    /// The JSON-RPC URL: `xmlrpc_uri` with `/xml` replaced by `/json`, else
    /// `https://<server>/ipa/json`.
    pub fn json_url(&self) -> Option<String> {
        if let Some(x) = &self.xmlrpc_uri {
            if let Some(stem) = x.strip_suffix("/xml") {
                return Some(format!("{stem}/json"));
            }
        }
        self.server_fqdn().map(|s| format!("https://{s}/ipa/json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "#File modified by ipa-client-install\n\n[global]\nbasedn = dc=example,dc=com\n\
        realm = EXAMPLE.COM\ndomain = example.com\nserver = ipa.example.com\nhost = undercloud.example.com\n\
        xmlrpc_uri = https://ipa.example.com/ipa/xml\nenable_ra = True\n";

    #[test]
    fn reads_the_global_section() {
        let c = IpaDefaultConf::parse(Path::new("/etc/ipa/default.conf"), SAMPLE).unwrap();
        assert_eq!(c.realm.as_deref(), Some("EXAMPLE.COM"));
        assert_eq!(c.domain.as_deref(), Some("example.com"));
        assert_eq!(c.host.as_deref(), Some("undercloud.example.com"));
        assert_eq!(c.server_fqdn().as_deref(), Some("ipa.example.com"));
        assert_eq!(
            c.json_url().as_deref(),
            Some("https://ipa.example.com/ipa/json")
        );
    }

    #[test]
    fn server_from_xmlrpc_uri_when_server_is_absent() {
        let c = IpaDefaultConf::parse(
            Path::new("x"),
            "[global]\nxmlrpc_uri = https://ipa2.example.com/ipa/xml\n",
        )
        .unwrap();
        assert_eq!(c.server_fqdn().as_deref(), Some("ipa2.example.com"));
        assert_eq!(c.realm, None);
    }

    #[test]
    fn missing_file_names_the_path_and_the_fix() {
        let e = IpaDefaultConf::load(Path::new("/nonexistent/default.conf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/default.conf") && e.contains("[ipa] default_conf"),
            "{e}"
        );
    }
}
