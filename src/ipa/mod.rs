//! The FreeIPA client: JSON-RPC over HTTPS to IPA's `/ipa/session/json`.
//!
//! * [`IpaClient`] ([`client`]): login and session cookie, Referer,
//!   `version`, retries with back-off, per-call timeout, concurrency cap,
//!   single calls ([`IpaClient::call`]), batches ([`IpaClient::batch`]) and
//!   typed helpers (`host_mod_otp`, `host_add`, `service_show`, ...).
//! * [`IpaAuth`] ([`auth`]): how to log in: password, or Kerberos with a
//!   keytab ([`kerberos`]).
//! * [`IpaError`] ([`error`]): every failure, IPA's own errors classified by
//!   code/name (never by message).
//! * [`IpaCommand`] ([`command`]): commands with IPA's API option names, and
//!   typed views of the answers.
//! * [`EnrollmentBatch`] ([`enrollment`]): one instance's writes in one
//!   round trip.
//! * [`IpaClientConfig::from_conf_with`] ([`settings`]) and [`default_conf`]:
//!   configuration from join.conf and `/etc/ipa/default.conf`.
//! * [`Secret`] ([`secret`]): passwords and OTPs, redacted in `Debug`.
//! * [`ServerPool`] ([`servers`]): several IPA servers (replicas), the
//!   current one, a circuit breaker per server; [`discovery`]: more servers
//!   from DNS SRV records, as ipa-client finds them.
//! * [`IpaHealth`] ([`health`]): the client's state for `healthcheck`.
//! * [`HostLocks`] ([`host_lock`]): one write at a time per host, so that an
//!   enrollment IPA finishes late cannot replace a newer OTP.
//! * [`batcher::CallQueue`] ([`batcher`]): enrollments of different
//!   instances waiting for a call slot go out together as one `batch`, and
//!   work the slots cannot serve within `[ipa] queue_deadline` is refused
//!   at once ([`IpaError::Overloaded`]).
//!
//! # One enrollment, one round trip per decision
//!
//! [`IpaClient::enroll`] sends a single `batch` whose items run in this
//! order (IPA runs batch items one after another, without a transaction,
//! and reports each item's result separately):
//!
//! 1. the instance host: `host_add <fqdn> userpassword=<otp>
//!    nshardwareplatform=<binding> description=... force [userclass]
//!    [nsosversion] [nshostlocation]` ([`HostWrite::Create`]), or
//!    `host_mod <fqdn> [userpassword=<otp>] [nshardwareplatform=<binding>]`
//!    ([`HostWrite::Update`]) for a host the caller has read and found to be
//!    the instance's own;
//! 2. `host_add <subhost> force nshardwareplatform=<binding>` for each
//!    sub-host (compact/managed services);
//! 3. `service_add <principal> force` for each service;
//! 4. `service_add_host <principal> host=[<managing host>]` for each link.
//!
//! What the instance-host item does:
//!
//! | write | host before | IPA answers | outcome |
//! |---|---|---|---|
//! | `host_add` | absent | created with OTP and binding | [`HostOutcome::Created`], OTP valid |
//! | `host_add` | present (anyone's) | `DuplicateEntry`, no change | [`HostOutcome::Exists`]: read it, decide |
//! | `host_mod` | present, not enrolled | OTP replaced | [`HostOutcome::Updated`] with the entry, OTP valid |
//! | `host_mod` | enrolled (has keytab) | `ValidationError`, no change | [`HostOutcome::AlreadyEnrolled`], no OTP |
//! | `host_mod` | deleted since read | `NotFound` | [`HostOutcome::Vanished`], no OTP |
//!
//! Why `host_add` alone comes first for a name nothing is known about: it
//! only ever creates, so it cannot change a host that belongs to someone
//! else, and for the common case (a new instance) it is the whole
//! enrollment in one round trip. `host_mod` is only sent after the host was
//! read and its binding checked (`crate::join`), and IPA's answer carries
//! the entry it changed, so the caller checks the binding again on the
//! entry it really wrote.
//!
//! Why sub-host and service items share the batch: each only needs the
//! hosts created before it. Sub-hosts (2) precede the services on them (3),
//! and the instance host (1) precedes the links that name it (4). Every one
//! of them is idempotent in IPA's terms: `DuplicateEntry` on 2 and 3 and
//! "already a member" on 4 mean the desired state already holds, and are
//! not reported as failures. The caller adds sub-host and service items
//! only for names it has read and found absent or its own.
//!
//! Why the batch may be sent again after a lost answer (the client retries
//! connection failures and 5xx answers; the caller may retry a timeout):
//! a second `host_add` finds the host present ([`HostOutcome::Exists`]), the
//! caller reads it, finds its own binding and the same OTP, and items 2–4
//! are idempotent.
//!
//! # Failover between replicas never yields two OTPs
//!
//! A connection failure or 5xx of one server sends the *same* request body
//! to the next server ([`servers`]). The OTP is chosen by the caller before
//! the first attempt and is part of that body, so every server that runs
//! the batch writes the same OTP: a resend cannot create a second one.
//! What the second server finds depends on whether the first one ran the
//! batch and whether that write reached the second through replication:
//!
//! | first server | second server sees | its answer | outcome |
//! |---|---|---|---|
//! | did not run it (refused connection, 503 before the command) | no host | `host_add` creates it with OTP *X* | `Created`: the caller hands out *X* |
//! | ran it, answer lost, write replicated | the host, binding *B*, OTP *X* | `DuplicateEntry` | `Exists`: the caller reads the host, finds *B* (its own) and sends `host_mod` with *X* again: `Updated`, hands out *X* |
//! | ran it, answer lost, write not replicated yet | no host | creates it with *X* | `Created`, *X*; when the first server's add replicates later, 389-ds keeps one entry and turns the other into a replication-conflict entry, both with *X* and *B* |
//!
//! In every row the directory ends with OTP *X* for the host and the
//! caller hands out *X*: one valid OTP. Two more guards hold across
//! servers because they live in this process, not in a server: the host
//! lock ([`HostLocks`]) keeps a second enrollment of the host from
//! starting while the first is running (on whichever server), and a
//! timeout is never resent by the client (the request may still run; the
//! call goes on detached and holds the host).
//!
//! The sessions are per server (IPA's session cookie is only valid on the
//! server that issued it), so a failover logs in once on the new server,
//! and calls stay there while it answers ([`servers`]).

pub mod auth;
pub mod batcher;
pub mod client;
pub mod command;
pub mod default_conf;
pub mod discovery;
pub mod enrollment;
pub mod error;
pub mod health;
pub mod host_lock;
pub mod http;
pub mod kerberos;
pub mod options;
pub mod secret;
pub mod servers;
pub mod settings;
pub mod wire;

pub use auth::IpaAuth;
pub use client::{IpaClient, IpaClientConfig, DEFAULT_API_VERSION};
pub use command::{
    CommandOutput, DnsRecordEntry, HostEntry, IpaCommand, MemberAddResult, NewHost, ServiceEntry,
};
pub use default_conf::IpaDefaultConf;
pub use enrollment::{EnrollmentBatch, EnrollmentOutcome, HostOutcome, HostWrite, ItemFailure};
pub use error::{IpaError, KerberosError, RemoteError};
pub use health::IpaHealth;
pub use host_lock::HostLocks;
pub use http::Endpoints;
pub use kerberos::KerberosAuth;
pub use secret::Secret;
pub use servers::{BreakerPolicy, BreakerState, ServerAddr, ServerPool, ServerSource};
pub use settings::{load_default_conf, IpaConfigError};
