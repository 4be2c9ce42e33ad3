//! The FreeIPA test double (crate `ipa-double`) for integration tests, and
//! clients configured for it.
//!
//! ```ignore
//! let ipa = support::ipa::start().await;
//! let client = support::ipa::client(&ipa);
//! client.ping().await?;
//! assert!(ipa.host("vm1.example.test").is_some());
//! ```

#[allow(unused_imports)]
pub use ipa_double::{DoubleOptions, Fault, HostView, IpaDouble, ServiceView, UserState};
use std::time::Duration;

use novajoin::ipa::{IpaAuth, IpaClient, IpaClientConfig, Secret, ServerAddr, ServerSource};

/// The password-login user every double has.
pub const ADMIN: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "Secret123";

/// Starts a double with the defaults: FQDN `ipa.example.test`, realm
/// `EXAMPLE.TEST`, domain and DNS zone `example.test`, user `admin`.
pub async fn start() -> IpaDouble {
    start_with(DoubleOptions::default()).await
}

/// Starts a double with the given options (loopback, port 0).
pub async fn start_with(opts: DoubleOptions) -> IpaDouble {
    IpaDouble::start(opts).await.expect("start the IPA double")
}

/// The FQDN of the replica [`start_replica`] starts.
pub const REPLICA_FQDN: &str = "ipa2.example.test";

/// Starts a replica of `ipa` named [`REPLICA_FQDN`]: its own address and
/// sessions, the same directory (replication without lag).
pub async fn start_replica(ipa: &IpaDouble) -> IpaDouble {
    ipa.start_replica(DoubleOptions {
        fqdn: REPLICA_FQDN.into(),
        ..DoubleOptions::default()
    })
    .await
    .expect("start the IPA replica double")
}

/// A client configuration for the double: password login as admin, short
/// back-off so retry tests stay fast.
pub fn client_config(ipa: &IpaDouble) -> IpaClientConfig {
    let url = url::Url::parse(&ipa.json_url()).expect("double URL");
    let mut cfg = IpaClientConfig::new(url, IpaAuth::password(ADMIN, Secret::new(ADMIN_PASSWORD)));
    cfg.server_fqdn = Some(ipa.fqdn().to_string());
    cfg.realm = Some(ipa.realm().to_string());
    cfg.timeout = Duration::from_secs(10);
    cfg.retry_backoff = Duration::from_millis(10);
    cfg.retry_backoff_max = Duration::from_millis(50);
    cfg
}

/// A client configuration for `ipa` and its replicas, in that order.
pub fn replicated_client_config(ipa: &IpaDouble, replicas: &[&IpaDouble]) -> IpaClientConfig {
    let mut cfg = client_config(ipa);
    cfg.replicas = replicas
        .iter()
        .map(|r| ServerAddr {
            url: url::Url::parse(&r.json_url()).expect("double URL"),
            fqdn: Some(r.fqdn().to_string()),
            source: ServerSource::Configured,
        })
        .collect();
    cfg
}

/// A client for the double.
pub fn client(ipa: &IpaDouble) -> IpaClient {
    IpaClient::new(client_config(ipa)).expect("IPA client")
}

/// Seeds the enrolled instance host novajoin creates for `instance_id` of
/// project `project` (no region: the tests configure none): novajoin's
/// description and the owner binding in `nshardwareplatform`.
pub fn seed_bound_host(ipa: &IpaDouble, fqdn: &str, instance_id: &str, project: &str) {
    let binding =
        novajoin::ownership::HostBinding::for_instance(Some(instance_id), Some(project), None)
            .expect("a binding")
            .to_attribute();
    ipa.seed_host_with(
        fqdn,
        Some(novajoin::ownership::HOST_DESCRIPTION),
        Some(&binding),
        true,
        None,
    );
}

/// join.conf lines that point novajoin at the double (password login).
pub fn join_conf(ipa: &IpaDouble) -> String {
    format!(
        "[DEFAULT]\nurl = {}\ndomain = {}\n\n[ipa]\nauth_method = password\nusername = {ADMIN}\n\
         password = {ADMIN_PASSWORD}\nserver = {}\nrealm = {}\n",
        ipa.json_url(),
        ipa.domain(),
        ipa.fqdn(),
        ipa.realm()
    )
}

/// The text of an `/etc/ipa/default.conf` for a host enrolled in the
/// double's realm (for `[ipa] default_conf`).
pub fn default_conf(ipa: &IpaDouble, host: &str) -> String {
    format!(
        "[global]\nbasedn = dc=example,dc=test\nrealm = {}\ndomain = {}\nserver = {}\nhost = {host}\n\
         xmlrpc_uri = https://{}/ipa/xml\n",
        ipa.realm(),
        ipa.domain(),
        ipa.fqdn(),
        ipa.fqdn()
    )
}

/// Logs in with raw HTTP and returns the `ipa_session` cookie value, for
/// tests that must send requests the client never would.
pub async fn raw_login(ipa: &IpaDouble) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/ipa/session/login_password", ipa.url()))
        .header("Referer", ipa.referer())
        .form(&[("user", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200, "login to the double");
    let sc = resp
        .headers()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .unwrap()
        .to_string();
    sc.split(';')
        .next()
        .unwrap()
        .strip_prefix("ipa_session=")
        .unwrap()
        .to_string()
}

/// POSTs a raw JSON-RPC body to `/ipa/session/json` with the cookie and
/// the given Referer (none when `None`); returns status and body text.
pub async fn raw_rpc(
    ipa: &IpaDouble,
    cookie: &str,
    referer: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/ipa/session/json", ipa.url()))
        .header("Cookie", format!("ipa_session={cookie}"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(r) = referer {
        req = req.header("Referer", r);
    }
    let resp = req.send().await.expect("raw rpc");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}
