//! Every option group the service declares, in the order
//! `novajoin config-sample` prints them. Each component owns its options;
//! this list, at the top of the module tree, is the only place that names
//! them all, so the configuration loader ([`crate::config`]) knows no
//! component.

use crate::config::schema::Catalog;

/// The service's options.
pub const CATALOG: Catalog = Catalog(&[
    crate::server::options::SERVER_OPTIONS,
    crate::ipa::options::DEFAULT_IPA_OPTIONS,
    crate::join::options::JOIN_OPTIONS,
    crate::cache::options::DEFAULT_CACHE_OPTIONS,
    crate::glance::GLANCE_OPTIONS,
    crate::logging::options::LOGGING_OPTIONS,
    crate::notify::options::DEFAULT_NOTIFY_OPTIONS,
    crate::keystone::options::SERVICE_CREDENTIALS_OPTIONS,
    crate::keystone::options::KEYSTONE_AUTHTOKEN_OPTIONS,
    crate::ipa::options::IPA_OPTIONS,
    crate::pipeline::sizelimit::SIZELIMIT_OPTIONS,
    crate::pipeline::http_proxy_to_wsgi::PROXY_HEADERS_OPTIONS,
    crate::pipeline::cors::CORS_OPTIONS,
    crate::pipeline::healthcheck::HEALTHCHECK_OPTIONS,
    crate::policy::OSLO_POLICY_OPTIONS,
    crate::notify::options::DEFAULT_MESSAGING_OPTIONS,
    crate::notify::options::NOTIFICATIONS_OPTIONS,
    crate::notify::options::RABBIT_OPTIONS,
    crate::notify::options::NOTIFY_OPTIONS,
    crate::cache::options::CACHE_OPTIONS,
    crate::metrics::METRICS_OPTIONS,
]);
