//! The vendordata join handler: nova POSTs an instance's facts, we decide
//! whether it enrolls, create or update its host (and any requested
//! sub-hosts and services) in IPA, and answer
//! `{"hostname", "krb_realm", "ipaotp"}` (or `{}` when it does not enroll).
//!
//! * [`request`]: the body nova sends and its validation;
//! * [`fqdn`]: host name rules (shared with the notification listener);
//! * [`services`]: `managed_service_*` / `compact_service_*` metadata;
//! * [`decision`]: the decision sequence, in the original's order;
//! * `enrollment`: the IPA writes, each checked against the host's owner
//!   first ([`crate::ownership`]).
//!
//! The tower service that answers HTTP with it is the pipeline's
//! `join_app`.

pub mod decision;
pub mod directory;
mod enrollment;
pub mod fqdn;
pub mod host_classes;
pub mod options;
pub mod request;
pub mod services;
pub mod setup;

use http::StatusCode;

pub use decision::{EnrollmentDecision, JoinHandler, JoinResponse};

/// Why a join request was not answered with 200. Each variant maps to the
/// status and fault body the original (or, where it crashed, a sensible
/// operator) would expect.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// 400 with WebOb's default message (the original's bare `HTTPBadRequest`).
    #[error("The server could not comply with the request since it is either malformed or otherwise incorrect.")]
    BadRequestDefault,
    /// 400 with a specific message.
    #[error("{0}")]
    BadRequest(String),
    /// 403 with a specific message.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the IPA host (or a sub-host) belongs to another instance or was
    /// not created by novajoin; nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// 503: a dependency (IPA, keystone, glance) is down; nova may retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault of ours or of the deployment's configuration.
    #[error("{0}")]
    Internal(String),
    /// 503 with `Retry-After`: the queue for IPA cannot serve this request
    /// within `[ipa] queue_deadline`; nothing was sent to IPA.
    #[error("{message}")]
    Overloaded {
        /// What to tell nova.
        message: String,
        /// Seconds after which asking again is worthwhile.
        retry_after_secs: u64,
    },
}

impl JoinError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            JoinError::BadRequestDefault | JoinError::BadRequest(_) => StatusCode::BAD_REQUEST,
            JoinError::Forbidden(_) => StatusCode::FORBIDDEN,
            JoinError::Conflict(_) => StatusCode::CONFLICT,
            JoinError::Unavailable(_) | JoinError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            JoinError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` seconds to answer with, when there is one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            JoinError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// A fresh one-time password: 32 lower-case hex characters (128 bits) from
/// the operating system's CSPRNG, the same shape as the original's
/// `uuid4().hex` without UUID's fixed version bits.
pub fn new_otp() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn otps_are_32_hex_and_distinct() {
        let a = super::new_otp();
        let b = super::new_otp();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
