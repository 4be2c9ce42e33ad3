//! Every filter and app this binary knows, by the name pipeline.toml uses.
//!
//! An entry says what the filter needs from filters outside it and what it
//! provides to filters inside it; the builder refuses orders that break
//! those needs (for example `policy` before `keystonecontext`).

use super::build::{AppBuild, FilterBuild};

/// What a filter puts in the request for inner filters, or needs from outer
/// ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// A bounded request body (`sizelimit`): required before anything reads it.
    BodyLimit,
    /// A token validation outcome (`IdentityStatus`).
    Identity,
    /// A `RequestContext`.
    Context,
    /// A positive policy decision (`Authorized`).
    Authorized,
}

impl Capability {
    /// The filter(s) an operator would add to provide this.
    pub fn provided_by(self) -> &'static str {
        match self {
            Capability::BodyLimit => "sizelimit",
            Capability::Identity => "authtoken",
            Capability::Context => "keystonecontext (or noauth)",
            Capability::Authorized => "policy",
        }
    }
}

/// A filter this binary knows.
pub struct FilterEntry {
    /// Name in pipeline.toml.
    pub name: &'static str,
    /// What must be provided by filters outside it.
    pub requires: &'static [Capability],
    /// What it provides to filters inside it.
    pub provides: &'static [Capability],
    /// How to build it; `None` for a slot reserved for a later release.
    pub build: Option<FilterBuild>,
}

/// An app this binary knows.
pub struct AppEntry {
    /// Name in pipeline.toml.
    pub name: &'static str,
    /// What must be provided by the filters in front of it.
    pub requires: &'static [Capability],
    /// How to build it.
    pub build: AppBuild,
}

use Capability::*;

/// Every filter, by name.
pub fn filters() -> Vec<FilterEntry> {
    vec![
        FilterEntry {
            name: "http_proxy_to_wsgi",
            requires: &[],
            provides: &[],
            build: Some(super::http_proxy_to_wsgi::build),
        },
        FilterEntry {
            name: "request_id",
            requires: &[],
            provides: &[],
            build: Some(super::request_id::build),
        },
        FilterEntry {
            name: "healthcheck",
            requires: &[],
            provides: &[],
            build: Some(super::healthcheck::build),
        },
        FilterEntry {
            name: "sizelimit",
            requires: &[],
            provides: &[BodyLimit],
            build: Some(super::sizelimit::build),
        },
        FilterEntry {
            name: "cors",
            requires: &[],
            provides: &[],
            build: Some(super::cors::build),
        },
        FilterEntry {
            name: "noauth",
            requires: &[],
            provides: &[Identity, Context],
            build: Some(super::noauth::build),
        },
        FilterEntry {
            name: "authtoken",
            requires: &[],
            provides: &[Identity],
            build: Some(super::authtoken::build),
        },
        FilterEntry {
            name: "keystonecontext",
            requires: &[Identity],
            provides: &[Context],
            build: Some(super::keystonecontext::build),
        },
        FilterEntry {
            name: "policy",
            requires: &[Context],
            provides: &[Authorized],
            build: Some(super::policy::build),
        },
        FilterEntry {
            name: "cache",
            requires: &[BodyLimit, Authorized],
            provides: &[],
            build: Some(super::cache::build),
        },
    ]
}

/// Every app, by name.
pub fn apps() -> Vec<AppEntry> {
    vec![AppEntry {
        name: "join",
        requires: &[BodyLimit, Context],
        build: super::join_app::build_app,
    }]
}
