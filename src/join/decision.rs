//! The decision sequence of a join request, in the original's order (see
//! spec/novajoin-behaviour.md §3), with its defects fixed where the README
//! says so.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::enrollment::{Enrollment, Issued};
use super::fqdn::FqdnPolicy;
use super::host_classes::HostClassRules;
use super::request::{is_enroll_flag, VendordataRequest};
use super::services::requested_services;
use super::{new_otp, JoinError};
use crate::context::RequestContext;
use crate::ipa::{IpaClient, NewHost, Secret};
use crate::join::directory::CloudDirectory;
use crate::otp_lifetime::{unix_seconds, OtpLifetime, OTPS_ISSUED};
use crate::ownership::HostBinding;
use crate::policy::Enforcer;

/// Why (or why not) an instance enrolls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnrollmentDecision {
    /// Instance metadata `ipa_enroll` is true.
    FromInstanceMetadata,
    /// The image's `ipa_enroll` property is true; the image's properties
    /// are kept for `nsosversion`.
    FromImage(Map<String, Value>),
    /// Neither asks for it: answer `{}`.
    NotRequested,
}

/// A successful answer.
#[derive(Debug)]
pub enum JoinResponse {
    /// The instance enrolls: its FQDN, the realm and, when IPA holds it, the OTP.
    Enrolled {
        /// The host's FQDN.
        hostname: String,
        /// The Kerberos realm.
        krb_realm: String,
        /// The OTP IPA now holds for the host; `None` when the host is
        /// already enrolled (a password cannot be set on it).
        ipaotp: Option<Secret>,
        /// When `ipaotp` expires ([`OtpLifetime`]): the answer must not be
        /// served after that.
        otp_expires_at: Option<SystemTime>,
    },
    /// Enrollment not requested: `{}`.
    NotRequested,
}

impl JoinResponse {
    /// The JSON body, keys in the original's order.
    pub fn to_json(&self) -> Value {
        match self {
            JoinResponse::NotRequested => Value::Object(Map::new()),
            JoinResponse::Enrolled {
                hostname,
                krb_realm,
                ipaotp,
                ..
            } => {
                let mut m = Map::new();
                m.insert("hostname".into(), Value::String(hostname.clone()));
                m.insert("krb_realm".into(), Value::String(krb_realm.clone()));
                if let Some(otp) = ipaotp {
                    m.insert("ipaotp".into(), Value::String(otp.expose().to_string()));
                }
                Value::Object(m)
            }
        }
    }
}

/// Everything the handler needs, built once at start-up.
pub struct JoinHandler {
    /// FQDN rules.
    pub fqdn: FqdnPolicy,
    /// The IPA realm returned as `krb_realm`.
    pub realm: String,
    /// The IPA client.
    pub ipa: IpaClient,
    /// Keystone (project names) and glance (image properties).
    pub directory: CloudDirectory,
    /// The host classes each project may use.
    pub host_classes: HostClassRules,
    /// `[DEFAULT] region_name`, recorded in every binding.
    pub region: Option<String>,
    /// The policy, for managed services on hosts the instance does not own.
    pub enforcer: Arc<Enforcer>,
    /// `[DEFAULT] otp_lifetime`.
    pub otp_lifetime: OtpLifetime,
}

pub use crate::ownership::HOST_DESCRIPTION;

impl JoinHandler {
    /// Decides whether the instance enrolls (steps 5-8 of the original).
    pub async fn decide(&self, req: &VendordataRequest) -> Result<EnrollmentDecision, JoinError> {
        if is_enroll_flag(req.metadata_str("ipa_enroll")?) {
            return Ok(EnrollmentDecision::FromInstanceMetadata);
        }
        let image_id = match req.image_id.as_deref() {
            None => return Err(JoinError::BadRequestDefault),
            // Boot from volume: there is no image to ask, and the instance
            // did not ask for enrollment itself (the original answered 400).
            Some("") => return Ok(EnrollmentDecision::NotRequested),
            Some(id) => id,
        };
        let props = self.directory.image_properties(image_id).await?;
        let flag = props.get("ipa_enroll").and_then(Value::as_str);
        if is_enroll_flag(flag) {
            Ok(EnrollmentDecision::FromImage(props))
        } else {
            Ok(EnrollmentDecision::NotRequested)
        }
    }

    /// Runs the whole sequence for one request.
    pub async fn handle(
        &self,
        req: &VendordataRequest,
        ctx: &RequestContext,
    ) -> Result<JoinResponse, JoinError> {
        let decision = self.decide(req).await?;
        let image_props = match decision {
            EnrollmentDecision::NotRequested => return Ok(JoinResponse::NotRequested),
            EnrollmentDecision::FromImage(p) => p,
            EnrollmentDecision::FromInstanceMetadata => Map::new(),
        };
        let hostclass = req
            .metadata_str("ipa_hostclass")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let needs_project = hostclass.is_some() || self.fqdn.project_subdomain;
        let project_name = if needs_project {
            let Some(project_id) = req.project_id.as_deref().filter(|p| !p.is_empty()) else {
                return Err(JoinError::BadRequestDefault);
            };
            match self.directory.project_name(project_id).await? {
                Some(n) => Some(n),
                None => {
                    return Err(JoinError::BadRequest(format!(
                        "No such project-id, {project_id}"
                    )))
                }
            }
        } else {
            None
        };
        if let (Some(hc), Some(project)) = (&hostclass, &project_name) {
            if !self.host_classes.allows(project, hc) {
                return Err(JoinError::Forbidden(format!(
                    "Not allowed to add to hostclass '{hc}'"
                )));
            }
        }
        let fqdn = self
            .fqdn
            .instance_fqdn(&req.hostname, project_name.as_deref())?;
        let services = requested_services(
            &req.metadata,
            &fqdn,
            &self.fqdn,
            project_name.as_deref(),
            &self.realm,
        )?;

        let owner = HostBinding::for_instance(
            req.instance_id.as_deref(),
            req.project_id.as_deref(),
            self.region.as_deref(),
        )
        .map_err(|e| JoinError::BadRequest(e.to_string()))?;
        let otp = Secret::new(new_otp());
        let issued_at = SystemTime::now();
        let os_version = [image_props.get("os_distro"), image_props.get("os_version")]
            .iter()
            .filter_map(|v| v.and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_string();
        let host = NewHost {
            fqdn: fqdn.clone(),
            description: Some(HOST_DESCRIPTION.to_string()),
            otp: Some(otp.clone()),
            userclass: hostclass.clone(),
            nsosversion: (!os_version.is_empty()).then_some(os_version),
            nshostlocation: req
                .metadata_str("ipa_host_location")?
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            force: true,
            binding: Some(
                owner
                    .with_otp_issued(unix_seconds(issued_at))
                    .to_attribute(),
            ),
        };
        let compact_hosts = services
            .iter()
            .filter(|s| s.principal_host != fqdn && s.compact)
            .map(|s| s.principal_host.clone())
            .collect();
        let enrollment = Enrollment {
            ipa: &self.ipa,
            owner,
            host,
            otp: otp.clone(),
            hostname: &req.hostname,
            services,
            compact_hosts,
            cloud: self.directory.cloud(),
            enforcer: &self.enforcer,
            credentials: ctx
                .policy_credentials()
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let ipaotp = match enrollment.run().await {
            Ok(Issued::Otp(otp)) => {
                metrics::counter!(OTPS_ISSUED).increment(1);
                tracing::info!(host = %fqdn, otp_sha256 = %otp.fingerprint(), request_id = %ctx.request_id, "host ready for enrollment");
                Some(otp)
            }
            Ok(Issued::AlreadyEnrolled) => {
                tracing::info!(host = %fqdn, "host is already enrolled; answering without an OTP");
                None
            }
            Err(e) => return Err(e),
        };
        let otp_expires_at = ipaotp
            .as_ref()
            .and_then(|_| self.otp_lifetime.expires_at(issued_at));
        Ok(JoinResponse::Enrolled {
            hostname: fqdn,
            krb_realm: self.realm.clone(),
            ipaotp,
            otp_expires_at,
        })
    }
}
