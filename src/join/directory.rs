//! What the handler asks the rest of the cloud: project names (keystone),
//! image properties (glance) and, for hosts of the Python novajoin, who has
//! a host name (nova), with the service's own credentials.

use serde_json::{Map, Value};
use url::Url;

use super::JoinError;
use crate::cloud::CloudLookups;
use crate::config::ConfigFiles;
use crate::glance::{GlanceClient, GlanceError};
use crate::glance::{GLANCE_API_SERVERS, GLANCE_NUM_RETRIES};
use crate::keystone::session::ServiceSession;

/// Keystone and glance, reached with `[service_credentials]`.
pub struct CloudDirectory {
    session: Option<ServiceSession>,
    cloud: Option<CloudLookups>,
    glance: GlanceClient,
    glance_servers: Vec<Url>,
}

impl CloudDirectory {
    /// Builds from join.conf. Without `[service_credentials]` only requests
    /// that need neither keystone nor glance can be answered; that is
    /// logged at start.
    pub fn from_config(config: &ConfigFiles) -> Result<Self, String> {
        let session = ServiceSession::from_config(config).map_err(|e| e.to_string())?;
        if session.is_none() {
            tracing::warn!("[service_credentials] is not configured: image lookups and ipa_hostclass projects cannot be resolved");
        }
        let mut glance_servers = Vec::new();
        for s in config.list(&GLANCE_API_SERVERS) {
            let with_scheme = if s.contains("://") {
                s.clone()
            } else {
                format!("http://{s}")
            };
            glance_servers.push(
                Url::parse(&with_scheme).map_err(|e| {
                    format!("[DEFAULT] glance_api_servers: {s:?} is not a URL: {e}")
                })?,
            );
        }
        let retries = config
            .int(&GLANCE_NUM_RETRIES)
            .map_err(|e| e.to_string())?
            .unwrap_or(0)
            .max(0) as u32;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            cloud: session.clone().map(CloudLookups::new),
            session,
            glance: GlanceClient::new(http, retries),
            glance_servers,
        })
    }

    /// nova and neutron lookups, when `[service_credentials]` is configured.
    pub fn cloud(&self) -> Option<&CloudLookups> {
        self.cloud.as_ref()
    }

    fn session(&self) -> Result<&ServiceSession, JoinError> {
        self.session.as_ref().ok_or_else(|| {
            JoinError::Internal(
                "[service_credentials] is not configured, so keystone and glance cannot be asked"
                    .into(),
            )
        })
    }

    /// The name of project `id`; `None` when keystone does not know it.
    pub async fn project_name(&self, id: &str) -> Result<Option<String>, JoinError> {
        self.session()?.project_name(id).await.map_err(|e| {
            JoinError::Unavailable(format!("keystone could not be asked for project {id}: {e}"))
        })
    }

    /// The custom properties of image `id`.
    pub async fn image_properties(&self, id: &str) -> Result<Map<String, Value>, JoinError> {
        let session = self.session()?;
        let auth = session.auth_state().await.map_err(|e| {
            JoinError::Unavailable(format!("cannot get a keystone token to ask glance: {e}"))
        })?;
        let servers = if self.glance_servers.is_empty() {
            match session.endpoint("image", None, None).await {
                Ok(u) => vec![u],
                Err(e) => {
                    return Err(JoinError::Unavailable(format!(
                        "no glance endpoint in the catalog: {e}"
                    )))
                }
            }
        } else {
            self.glance_servers.clone()
        };
        self.glance
            .image_properties(&servers, auth.token.expose(), id)
            .await
            .map_err(|e| match e {
                GlanceError::NotFound(_)
                | GlanceError::NotAuthorized(_)
                | GlanceError::BadRequest { .. } => {
                    JoinError::BadRequest(format!("Failed to get image: {e}"))
                }
                GlanceError::Unavailable(_) | GlanceError::NoEndpoint => {
                    JoinError::Unavailable(e.to_string())
                }
            })
    }
}
