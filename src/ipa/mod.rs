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
//! * [`EnrollmentBatch`] ([`enrollment`]): one instance's enrollment in one
//!   round trip.
//! * [`IpaClientConfig::from_conf`] ([`settings`]) and [`default_conf`]:
//!   configuration from join.conf and `/etc/ipa/default.conf`.
//! * [`Secret`] ([`secret`]): passwords and OTPs, redacted in `Debug`.
//! * [`IpaHealth`] ([`health`]): the client's state for `healthcheck`.
//! * [`HostLocks`] ([`host_lock`]): one write at a time per host, so that an
//!   enrollment IPA finishes late cannot replace a newer OTP.
//!
//! # One enrollment, one round trip
//!
//! [`IpaClient::enroll`] sends a single `batch` whose items run in this
//! order (IPA runs batch items one after another, without a transaction,
//! and reports each item's result separately):
//!
//! 1. `host_mod <fqdn> userpassword=<otp>`
//! 2. `host_add <fqdn> userpassword=<otp> description=... force [userclass]
//!    [nsosversion] [nshostlocation]`
//! 3. `host_add <subhost> force` for each sub-host (compact/managed services)
//! 4. `service_add <principal> force` for each service
//! 5. `service_add_host <principal> host=[<managing host>]` for each link
//!
//! What items 1 and 2 do in each state of the instance host:
//!
//! | host before | 1. `host_mod` | 2. `host_add` | outcome |
//! |---|---|---|---|
//! | absent | `NotFound` (no change) | creates it with the OTP | [`HostOutcome::Created`], OTP valid |
//! | present, not enrolled | replaces the OTP | `DuplicateEntry` (no change) | [`HostOutcome::OtpReset`], OTP valid |
//! | enrolled (has keytab) | `ValidationError` (no change) | `DuplicateEntry` (no change) | [`HostOutcome::AlreadyEnrolled`], no OTP |
//! | absent, created by someone else between 1 and 2 | `NotFound` | `DuplicateEntry` | [`HostOutcome::LostRace`], no OTP |
//!
//! Why `host_mod` comes first and not `host_add`: on a new host `host_mod`
//! fails with `NotFound` and changes nothing, so the pair means exactly one
//! thing in every row. The other order (`host_add` then `host_mod`) would
//! set the same password twice on a new host, and whether IPA answers the
//! second with success or `EmptyModlist` depends on how it compares hashed
//! passwords; it also gives a new host's attributes no way to differ from
//! an update. This is also the original novajoin's order (`host_mod`, then
//! `host_add` on `NotFound`), only without the second round trip, and it
//! keeps its rule that an enrolled host gets no OTP.
//!
//! Why the service items can share the batch: each only needs the hosts
//! created before it. Sub-hosts (3) precede the services on them (4), and
//! the instance host (2) precedes the links that name it (5). Every one of
//! them is idempotent in IPA's terms: `DuplicateEntry` on 3 and 4 and
//! "already a member" on 5 mean the desired state already holds, and are
//! not reported as failures. If the instance host could not be created,
//! item 5 reports "no such entry" in `failed`, which is reported.
//!
//! Why the batch may be sent again after a lost answer (the client retries
//! connection failures and 502/503/504; the caller may retry a timeout):
//! a second run finds the host present, so row 2 applies with the *same*
//! OTP (still valid), and items 3–5 are idempotent. A single `host_add`
//! sent twice would instead report `DuplicateEntry` and lose the OTP.
//!
//! So a new host with two compact services costs exactly one round trip:
//! `[host_mod, host_add, host_add sub1, host_add sub2, service_add svc1,
//! service_add svc2, service_add_host svc1, service_add_host svc2]`.

pub mod auth;
pub mod client;
pub mod command;
pub mod default_conf;
pub mod enrollment;
pub mod error;
pub mod health;
pub mod host_lock;
pub mod kerberos;
pub mod secret;
pub mod settings;
pub mod wire;

pub use auth::{Endpoints, IpaAuth};
pub use client::{IpaClient, IpaClientConfig, DEFAULT_API_VERSION};
pub use command::{
    CommandOutput, DnsRecordEntry, HostEntry, IpaCommand, MemberAddResult, NewHost, ServiceEntry,
};
pub use default_conf::IpaDefaultConf;
pub use enrollment::{EnrollmentBatch, EnrollmentOutcome, HostOutcome, ItemFailure};
pub use error::{IpaError, RemoteError};
pub use health::IpaHealth;
pub use host_lock::HostLocks;
pub use kerberos::{KerberosAuth, KerberosError};
pub use secret::Secret;
pub use settings::{load_default_conf, IpaConfigError};
