//! The shared test environment: one module per real server or test double.
//! Every integration test starts what it needs through these helpers.
#![allow(dead_code)]
pub mod glance;
pub mod ipa;
pub mod keystone;
pub mod redis;
pub mod server;
pub mod vendordata;
