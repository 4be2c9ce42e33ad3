//! Glance: the one call novajoin makes, `GET /v2/images/{id}`, to read an
//! image's custom properties (`ipa_enroll`, `os_distro`, `os_version`).

use std::time::Duration;

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};
use serde_json::{Map, Value};
use url::Url;

/// The image schema's own keys; every other key of a v2 image is a custom
/// property (what the original passed on as `image_metadata`).
const SCHEMA_KEYS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "container_format",
    "disk_format",
    "direct_url",
    "locations",
    "os_hidden",
    "stores",
];

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    /// 404: no such image (or not visible to the service user).
    #[error("Image {0} could not be found.")]
    NotFound(String),
    /// 401/403.
    #[error("Not authorized for image {0}.")]
    NotAuthorized(String),
    /// 400 from glance (e.g. a malformed id).
    #[error("glance refused the request for image {id}: {status}")]
    BadRequest {
        /// The image id.
        id: String,
        /// The HTTP status.
        status: u16,
    },
    /// Glance could not be reached, timed out or answered 5xx.
    #[error(
        "the image service is unavailable ({0}); check glance and [DEFAULT] glance_api_servers"
    )]
    Unavailable(String),
    /// No glance endpoint is known.
    #[error("no glance endpoint: set [DEFAULT] glance_api_servers or give [service_credentials] a catalog with an image service")]
    NoEndpoint,
}

/// A glance v2 client over a fixed list of API servers (tried in turn).
#[derive(Clone, Debug)]
pub struct GlanceClient {
    http: reqwest::Client,
    retries: u32,
}

impl GlanceClient {
    /// A client with `retries` extra attempts (`glance_num_retries`, 1 s
    /// apart) on connection failures and 503.
    pub fn new(http: reqwest::Client, retries: u32) -> Self {
        Self { http, retries }
    }

    /// The custom properties of image `id`, from the first server that
    /// answers. `token` is the service token; it is sent, never logged.
    pub async fn image_properties(
        &self,
        servers: &[Url],
        token: &str,
        id: &str,
    ) -> Result<Map<String, Value>, GlanceError> {
        if servers.is_empty() {
            return Err(GlanceError::NoEndpoint);
        }
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let base = &servers[attempt as usize % servers.len()];
            let url = image_url(base, id);
            let resp = match self
                .http
                .get(url)
                .header("X-Auth-Token", token)
                .header("Accept", "application/json")
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{base}: {}", e.without_url());
                    continue;
                }
            };
            match resp.status().as_u16() {
                200 => {
                    let v: Value = resp.json().await.map_err(|e| {
                        GlanceError::Unavailable(format!("bad image JSON: {}", e.without_url()))
                    })?;
                    return Ok(custom_properties(v));
                }
                404 => return Err(GlanceError::NotFound(id.to_string())),
                401 | 403 => return Err(GlanceError::NotAuthorized(id.to_string())),
                400 => {
                    return Err(GlanceError::BadRequest {
                        id: id.to_string(),
                        status: 400,
                    })
                }
                s => last = format!("{base}: HTTP {s}"),
            }
        }
        Err(GlanceError::Unavailable(last))
    }
}

fn image_url(base: &Url, id: &str) -> Url {
    let mut u = base.clone();
    let path = base.path().trim_end_matches('/');
    let path = path.strip_suffix("/v2").unwrap_or(path);
    // Everything but RFC 3986's unreserved characters is escaped.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(id, SEGMENT).to_string();
    u.set_path(&format!("{path}/v2/images/{encoded}"));
    u
}

/// Keeps the non-schema keys of a v2 image document.
pub fn custom_properties(image: Value) -> Map<String, Value> {
    match image {
        Value::Object(m) => m
            .into_iter()
            .filter(|(k, _)| !SCHEMA_KEYS.contains(&k.as_str()))
            .collect(),
        _ => Map::new(),
    }
}

/// `glance_api_servers`.
pub const GLANCE_API_SERVERS: O = O::new(
    "DEFAULT",
    "glance_api_servers",
    K::List,
    None,
    "Glance API URLs to use instead of the catalog's image endpoint.",
);
/// `glance_num_retries`.
pub const GLANCE_NUM_RETRIES: O = O::new(
    "DEFAULT",
    "glance_num_retries",
    K::Int { min: 0, max: 100 },
    Some("0"),
    "Retries of a Glance call that failed to connect or got 503, 1 s apart.",
);

/// The `[DEFAULT]` options for glance.
pub const GLANCE_OPTIONS: OptionGroup = &[GLANCE_API_SERVERS, GLANCE_NUM_RETRIES];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_properties() {
        let u = image_url(&Url::parse("http://g:9292/").unwrap(), "155d900f-4e14");
        assert_eq!(u.as_str(), "http://g:9292/v2/images/155d900f-4e14");
        let u = image_url(&Url::parse("http://g/image/v2").unwrap(), "a/b");
        assert_eq!(u.as_str(), "http://g/image/v2/images/a%2Fb");
        let p = custom_properties(
            serde_json::json!({"id": "x", "name": "n", "ipa_enroll": "True", "os_distro": "rhel"}),
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p["ipa_enroll"], "True");
    }
}
