//! novajoin: enrolls OpenStack instances into FreeIPA.
//!
//! The library holds every part of the service; `main.rs` only parses the
//! command line and calls into [`cli`].

pub mod cache;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod context;
pub mod glance;
pub mod health;
pub mod ipa;
pub mod join;
pub mod keystone;
pub mod logging;
pub mod memcache;
pub mod metrics;
pub mod notify;
pub mod option_catalog;
pub mod otp_lifetime;
pub mod ownership;
pub mod pipeline;
pub mod policy;
pub mod progress;
pub mod reconcile;
pub mod server;
pub mod status;
