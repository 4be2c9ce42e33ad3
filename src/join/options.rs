//! The `[DEFAULT]` options of enrollment: host names, the binding's
//! region and the OTP's reuse window and lifetime.

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// `domain`.
pub const DOMAIN: O = O::new(
    "DEFAULT",
    "domain",
    K::Str,
    None,
    "DNS domain of enrolled hosts. Defaults to IPA's domain from /etc/ipa/default.conf.",
);
/// `project_subdomain`.
pub const PROJECT_SUBDOMAIN: O = O::new(
    "DEFAULT",
    "project_subdomain",
    K::Bool,
    Some("false"),
    "Put the project name in the FQDN: <host>.<project>.<domain>.",
);
/// `normalize_project`.
pub const NORMALIZE_PROJECT: O = O::new(
    "DEFAULT",
    "normalize_project",
    K::Bool,
    Some("true"),
    "With project_subdomain, replace every run of characters outside [0-9A-Za-z] in the project \
     name by '-' and strip leading and trailing '-' (the documented rule; 1.1.1 never applied it).",
);
/// `otp_lifetime`: new option.
pub const OTP_LIFETIME: O = O::new(
    "DEFAULT",
    "otp_lifetime",
    K::Int {
        min: 0,
        max: 2_592_000,
    },
    Some("3600"),
    "Seconds an enrollment OTP stays valid if no guest enrolls with it. After that the listener \
     (novajoin notify) replaces it in IPA by one nobody knows, the response cache stops serving \
     it, and the instance's next vendordata request gets a new one. The issue time is kept in the \
     host's binding in IPA, so every replica agrees. 0 keeps OTPs until they are used, as the \
     Python novajoin did.",
);
/// `region_name`: new option.
pub const REGION_NAME: O = O::new(
    "DEFAULT",
    "region_name",
    K::Str,
    None,
    "Region recorded, with the instance uuid and project id, in the binding of every IPA host \
     this service creates; hosts bound in another region are never changed. Defaults to \
     [service_credentials] region_name. Letters, digits, '-' and '_' only.",
);

/// The `[DEFAULT]` options of enrollment.
pub const JOIN_OPTIONS: OptionGroup = &[
    DOMAIN,
    PROJECT_SUBDOMAIN,
    NORMALIZE_PROJECT,
    OTP_LIFETIME,
    REGION_NAME,
];
