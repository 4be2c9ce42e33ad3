//! The rest of the cloud, asked with the `[service_credentials]` session: a
//! project's name (keystone, for `project_subdomain`), servers (nova), a
//! port's device and floating IPs (neutron). Used by the notification
//! listener and, for hosts of the Python novajoin, by the join handler.

use serde::Deserialize;

use crate::keystone::{KeystoneError, ServiceSession};

/// Why a lookup failed. All are worth retrying: an outage or a
/// configuration the operator can fix; the notification is kept meanwhile.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// Keystone (token, catalog or project) failed.
    #[error(transparent)]
    Keystone(#[from] KeystoneError),
    /// nova or neutron could not be reached.
    #[error("{service} at {url} cannot be reached: {detail}")]
    Unreachable {
        /// `nova` or `neutron`.
        service: &'static str,
        /// The URL (no query).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// nova or neutron answered with an unexpected status.
    #[error("{service} answered HTTP {status} to {what}")]
    Status {
        /// `nova` or `neutron`.
        service: &'static str,
        /// The operation.
        what: String,
        /// The status.
        status: u16,
    },
    /// The answer did not parse.
    #[error("{service}'s answer to {what} is malformed: {detail}")]
    BadResponse {
        /// `nova` or `neutron`.
        service: &'static str,
        /// The operation.
        what: String,
        /// What is wrong.
        detail: String,
    },
}

/// A nova server, as much as novajoin needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Server {
    /// Server id.
    pub id: String,
    /// Display name (what the original used for floating-IP A records).
    pub name: String,
    /// The owning project.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The host name nova gave the guest (admin-visible attribute).
    #[serde(default, rename = "OS-EXT-SRV-ATTR:hostname")]
    pub hostname: Option<String>,
    /// `ACTIVE`, `SHUTOFF`, ... or `DELETED` (in a `changes-since` list).
    #[serde(default)]
    pub status: Option<String>,
}

impl Server {
    /// Whether nova reports the server deleted.
    pub fn is_deleted(&self) -> bool {
        self.status.as_deref().is_some_and(|s| {
            s.eq_ignore_ascii_case("DELETED") || s.eq_ignore_ascii_case("SOFT_DELETED")
        })
    }
}

/// The most pages of servers one lookup follows; a name shared by more
/// servers than that is not a question a lookup can settle.
const MAX_SERVER_PAGES: usize = 20;

/// Lookups against keystone, nova and neutron.
#[derive(Clone, Debug)]
pub struct CloudLookups {
    session: ServiceSession,
}

impl CloudLookups {
    /// Lookups through this session.
    pub fn new(session: ServiceSession) -> Self {
        Self { session }
    }

    /// The project's name; `None` when keystone does not know the project.
    pub async fn project_name(&self, project_id: &str) -> Result<Option<String>, LookupError> {
        Ok(self.session.project_name(project_id).await?)
    }

    /// `GET /servers/{id}` on the catalog's compute endpoint; `None` on 404.
    pub async fn server(&self, server_id: &str) -> Result<Option<Server>, LookupError> {
        let base = self.session.endpoint("compute", None, None).await?;
        let url = join(&base, &["servers", server_id]);
        let what = "GET /servers/{id}".to_string();
        let resp = self.get("nova", &url).await?;
        match resp.status() {
            s if s.is_success() => {
                #[derive(Deserialize)]
                struct Body {
                    server: Server,
                }
                let b: Body = resp.json().await.map_err(|e| LookupError::BadResponse {
                    service: "nova",
                    what,
                    detail: e.to_string(),
                })?;
                Ok(Some(b.server))
            }
            http::StatusCode::NOT_FOUND => Ok(None),
            s => Err(LookupError::Status {
                service: "nova",
                what,
                status: s.as_u16(),
            }),
        }
    }

    /// Every server of every project whose host name is exactly
    /// `hostname` (nova's admin-only `hostname` filter, a regular
    /// expression, anchored here), following nova's pages.
    pub async fn servers_with_hostname(&self, hostname: &str) -> Result<Vec<Server>, LookupError> {
        let pattern = format!("^{}$", regex::escape(hostname));
        self.list_servers(
            &[("all_tenants", "1"), ("hostname", &pattern)],
            Some(MAX_SERVER_PAGES),
        )
        .await
    }

    /// Every server of every project, page by page (nova's `limit` and
    /// `marker`). With `changes_since` (an ISO 8601 time), nova lists the
    /// servers changed since then *including deleted ones* (status
    /// `DELETED`), which is how a deletion is confirmed rather than
    /// inferred from absence. Any failure on any page is an error: a
    /// partial list is never returned.
    pub async fn all_servers(
        &self,
        changes_since: Option<&str>,
    ) -> Result<Vec<Server>, LookupError> {
        let mut query = vec![("all_tenants", "1"), ("limit", "1000")];
        if let Some(t) = changes_since {
            query.push(("changes-since", t));
        }
        self.list_servers(&query, None).await
    }

    /// `GET /servers/detail` with `query`, following `next` links up to
    /// `max_pages` (no limit: until nova has no next page).
    async fn list_servers(
        &self,
        query: &[(&str, &str)],
        max_pages: Option<usize>,
    ) -> Result<Vec<Server>, LookupError> {
        let base = self.session.endpoint("compute", None, None).await?;
        let what = "GET /servers/detail".to_string();
        let mut url = join(&base, &["servers", "detail"]);
        url.query_pairs_mut().extend_pairs(query);
        let mut out: Vec<Server> = Vec::new();
        let mut pages = 0usize;
        loop {
            if max_pages.is_some_and(|m| pages >= m) {
                return Err(LookupError::BadResponse {
                    service: "nova",
                    what,
                    detail: format!("more than {pages} pages of servers"),
                });
            }
            pages += 1;
            let resp = self.get("nova", &url).await?;
            if !resp.status().is_success() {
                return Err(LookupError::Status {
                    service: "nova",
                    what,
                    status: resp.status().as_u16(),
                });
            }
            #[derive(Deserialize)]
            struct Link {
                rel: String,
                href: String,
            }
            #[derive(Deserialize)]
            struct Body {
                servers: Vec<Server>,
                #[serde(default)]
                servers_links: Vec<Link>,
            }
            let b: Body = resp.json().await.map_err(|e| LookupError::BadResponse {
                service: "nova",
                what: what.clone(),
                detail: e.to_string(),
            })?;
            let last = b.servers.last().map(|s| s.id.clone());
            out.extend(b.servers);
            let Some(next) = b.servers_links.into_iter().find(|l| l.rel == "next") else {
                return Ok(out);
            };
            // Keep the configured endpoint's address; take only the query
            // (marker) of nova's link.
            let next = url::Url::parse(&next.href).map_err(|e| LookupError::BadResponse {
                service: "nova",
                what: what.clone(),
                detail: format!("next link: {e}"),
            })?;
            let marker = next
                .query_pairs()
                .find(|(k, _)| k == "marker")
                .map(|(_, v)| v.into_owned());
            if marker.is_none() || marker != last {
                return Err(LookupError::BadResponse {
                    service: "nova",
                    what,
                    detail: "the next page's marker is not the last server of this page".into(),
                });
            }
            url.set_query(next.query());
        }
    }

    /// neutron `GET /v2.0/ports?id=<port>`: the port's `device_id` when
    /// exactly one port matches and it has a device.
    pub async fn port_device(&self, port_id: &str) -> Result<Option<String>, LookupError> {
        let base = self.session.endpoint("network", None, None).await?;
        let mut url = join(&base, &["v2.0", "ports"]);
        if base.path().trim_end_matches('/').ends_with("/v2.0") {
            url = join(&base, &["ports"]);
        }
        url.query_pairs_mut().append_pair("id", port_id);
        let what = "GET /v2.0/ports?id={port}".to_string();
        let resp = self.get("neutron", &url).await?;
        if !resp.status().is_success() {
            return Err(LookupError::Status {
                service: "neutron",
                what,
                status: resp.status().as_u16(),
            });
        }
        #[derive(Deserialize)]
        struct Port {
            #[serde(default)]
            device_id: String,
        }
        #[derive(Deserialize)]
        struct Body {
            ports: Vec<Port>,
        }
        let b: Body = resp.json().await.map_err(|e| LookupError::BadResponse {
            service: "neutron",
            what,
            detail: e.to_string(),
        })?;
        match b.ports.as_slice() {
            [one] if !one.device_id.is_empty() => Ok(Some(one.device_id.clone())),
            _ => Ok(None),
        }
    }

    async fn get(
        &self,
        service: &'static str,
        url: &url::Url,
    ) -> Result<reqwest::Response, LookupError> {
        let mut plain = url.clone();
        plain.set_query(None);
        let plain = plain.to_string();
        self.session
            .send_authenticated(url, |http, token| {
                http.get(url.clone())
                    .header("x-auth-token", token.expose())
                    .header("accept", "application/json")
            })
            .await
            .map_err(|e| match e {
                // The session reports any transport failure as keystone's;
                // name the service when it was the call to it that failed.
                KeystoneError::Unreachable { url, detail } if url == plain => {
                    LookupError::Unreachable {
                        service,
                        url,
                        detail,
                    }
                }
                other => LookupError::Keystone(other),
            })
    }
}

/// Appends path segments to a base URL (keeping its path, e.g. `/v2.1`).
fn join(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut u = base.clone();
    u.set_query(None);
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty();
        p.extend(segments);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_keep_the_version_prefix() {
        let b = url::Url::parse("http://nova:8774/v2.1/").unwrap();
        assert_eq!(
            join(&b, &["servers", "abc"]).as_str(),
            "http://nova:8774/v2.1/servers/abc"
        );
        let b = url::Url::parse("http://neutron:9696").unwrap();
        assert_eq!(
            join(&b, &["v2.0", "ports"]).as_str(),
            "http://neutron:9696/v2.0/ports"
        );
        let b = url::Url::parse("http://n/x?y=1").unwrap();
        assert_eq!(join(&b, &["a/b"]).as_str(), "http://n/x/a%2Fb");
    }
}
