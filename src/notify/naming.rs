//! Host and service names: exactly the vendordata service's rules
//! (`join::fqdn`, `join::services`), so the listener removes the hosts the
//! service created.

pub use crate::join::decision::HOST_DESCRIPTION;
pub use crate::join::fqdn::FqdnPolicy;
pub use crate::join::services::{managed_services, requested_services, ServiceRequest};
