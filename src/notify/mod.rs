//! `novajoin notify`: the RabbitMQ notification listener that keeps IPA in
//! step with the cloud.
//!
//! It consumes nova's and neutron's notifications exactly as oslo.messaging
//! publishes them (spec notifications.md), and for each one does the IPA
//! work (spec novajoin-behaviour.md §8): deleted instances lose their host,
//! sub-hosts, orphaned managed services and DNS records; instance updates
//! add managed and compact services; floating-IP changes add or remove DNS
//! A records.
//!
//! * [`options`]: the join.conf options (oslo names where oslo has them);
//! * [`transport`]: `transport_url` parsing;
//! * [`settings`]: the validated settings;
//! * [`topology`]: exchange/queue declarations matching oslo.messaging;
//! * [`envelope`]: the oslo message envelope;
//! * [`events`]: from a notification to an [`events::Event`];
//! * [`listener`]: connection, consumption, retries, acks, shutdown;
//! * [`cleanup`]: the handler and its clients, from join.conf;
//! * [`failure`]: why handling failed, and IPA errors classified;
//! * [`handlers`]: the IPA work per instance event;
//! * [`floating_ip`]: floating-IP DNS records;
//! * [`naming`]: FQDNs and requested services, as the vendordata service
//!   computes them.

pub mod cleanup;
pub mod envelope;
pub mod events;
pub mod failure;
pub mod floating_ip;
pub mod handlers;
pub mod listener;
pub mod naming;
pub mod options;
pub mod settings;
pub mod topology;
pub mod transport;

pub use failure::HandlerError;
pub use listener::{EventHandler, Listener};
pub use settings::ListenerSettings;
