//! The shared test environment: one module per real server or test double.
//! Every integration test starts what it needs through these helpers.
#![allow(dead_code)]
pub mod apache;
pub mod glance;
pub mod ipa;
pub mod kdc;
pub mod keystone;
pub mod nova_neutron;
pub mod rabbit;
pub mod redis;
pub mod server;
pub mod vendordata;
