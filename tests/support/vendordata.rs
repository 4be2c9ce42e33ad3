//! The whole vendordata service as nova sees it, for load, fault and
//! bad-input tests: the real `novajoin server` binary with a join.conf that
//! points at the IPA double, the real keystone (authtoken, service
//! credentials) and the glance double, behind a pipeline of the test's
//! choice (the repository's `pipeline.toml` by default).
//!
//! ```ignore
//! let env = support::vendordata::ServiceEnv::builder().ipa_cap(4).start().await;
//! let (status, body) = env.post(&nova_body("vm1", &new_instance_id(), json!({"ipa_enroll": "True"}))).await;
//! ```

use std::ops::Deref;
use std::time::Duration;

use serde_json::{json, Value};

use super::glance::GlanceDouble;
use super::ipa::{DoubleOptions, IpaDouble, ADMIN, ADMIN_PASSWORD};
use super::keystone::{Keystone, Provider};
use super::server::{NovajoinServer, ServerFiles};

/// The body nova POSTs (spec/nova-vendordata.md §4), in nova's key order
/// and with Python's `json.dumps` separators.
pub fn nova_body(hostname: &str, instance_id: &str, metadata: Value) -> String {
    nova_body_with(hostname, instance_id, None, None, metadata)
}

/// [`nova_body`] with an image and a project.
pub fn nova_body_with(
    hostname: &str,
    instance_id: &str,
    image: Option<&str>,
    project: Option<&str>,
    metadata: Value,
) -> String {
    let mut m = serde_json::Map::new();
    m.insert(
        "project-id".into(),
        project.map_or(Value::Null, Value::from),
    );
    m.insert("instance-id".into(), json!(instance_id));
    m.insert("image-id".into(), image.map_or(Value::Null, Value::from));
    m.insert("user-data".into(), Value::Null);
    m.insert("hostname".into(), json!(hostname));
    m.insert("metadata".into(), metadata);
    m.insert("boot-roles".into(), json!("member,reader"));
    serde_json::to_string(&Value::Object(m))
        .expect("JSON")
        .replace("\":", "\": ")
        .replace(",\"", ", \"")
}

/// A fresh instance UUID.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The metadata that asks for enrollment.
pub fn enroll() -> Value {
    json!({"ipa_enroll": "True"})
}

/// The keystone a test uses: the binary's shared one, or its own (which it
/// may stop).
pub enum KeystoneRef {
    /// [`Keystone::shared`].
    Shared(&'static Keystone),
    /// A private instance, stopped on drop.
    Own(Keystone),
}

impl Deref for KeystoneRef {
    type Target = Keystone;
    fn deref(&self) -> &Keystone {
        match self {
            KeystoneRef::Shared(k) => k,
            KeystoneRef::Own(k) => k,
        }
    }
}

/// How to start a [`ServiceEnv`].
pub struct EnvBuilder {
    pipeline: String,
    default_lines: String,
    sections: String,
    ipa_timeout: f64,
    ipa_cap: usize,
    ipa_latency: Duration,
    ipa_lines: String,
    private_keystone: bool,
    rust_log: String,
    env: Vec<(String, String)>,
    ipa_replica: bool,
}

impl EnvBuilder {
    /// The pipeline.toml text (default: the repository's).
    pub fn pipeline(mut self, text: &str) -> Self {
        self.pipeline = text.to_string();
        self
    }

    /// Extra `key = value` lines for `[DEFAULT]`.
    pub fn default_lines(mut self, lines: &str) -> Self {
        self.default_lines.push_str(lines);
        self.default_lines.push('\n');
        self
    }

    /// Extra whole sections (`[cache]\nbackend = redis\n...`).
    pub fn sections(mut self, text: &str) -> Self {
        self.sections.push_str(text);
        self.sections.push('\n');
        self
    }

    /// `[ipa] timeout` in seconds (default 20, the shipped default).
    pub fn ipa_timeout(mut self, seconds: f64) -> Self {
        self.ipa_timeout = seconds;
        self
    }

    /// `[ipa] max_concurrent_calls` (default 16, the shipped default).
    pub fn ipa_cap(mut self, cap: usize) -> Self {
        self.ipa_cap = cap;
        self
    }

    /// Extra `key = value` lines for `[ipa]` (e.g. `batch_max = 1`).
    pub fn ipa_lines(mut self, lines: &str) -> Self {
        self.ipa_lines.push_str(lines);
        self.ipa_lines.push('\n');
        self
    }

    /// Latency the IPA double adds to every request from the start.
    pub fn ipa_latency(mut self, latency: Duration) -> Self {
        self.ipa_latency = latency;
        self
    }

    /// Starts a replica of the IPA double ([`super::ipa::REPLICA_FQDN`],
    /// sharing its directory) and lists both servers in join.conf, the
    /// first one first.
    pub fn ipa_replica(mut self) -> Self {
        self.ipa_replica = true;
        self
    }

    /// Start a keystone of the test's own (it may stop it) instead of the
    /// shared one.
    pub fn private_keystone(mut self) -> Self {
        self.private_keystone = true;
        self
    }

    /// The server's `RUST_LOG` (default `info`: load tests must not be
    /// slowed down by trace logging).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_string();
        self
    }

    /// An extra environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts keystone (shared or own), the IPA and glance doubles, and the
    /// server; issues nova's token.
    pub async fn start(self) -> ServiceEnv {
        let keystone = if self.private_keystone {
            KeystoneRef::Own(
                tokio::task::spawn_blocking(|| Keystone::start(Provider::Fernet))
                    .await
                    .expect("keystone start"),
            )
        } else {
            KeystoneRef::Shared(
                tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
                    .await
                    .expect("keystone start"),
            )
        };
        let ipa = super::ipa::start_with(DoubleOptions::default()).await;
        ipa.set_latency(self.ipa_latency);
        let ipa_replica = if self.ipa_replica {
            let r = super::ipa::start_replica(&ipa).await;
            r.set_latency(self.ipa_latency);
            Some(r)
        } else {
            None
        };
        let glance = GlanceDouble::start().await;
        let join_conf = join_conf(&self, &ipa, ipa_replica.as_ref(), &glance, &keystone);
        let mut env = vec![("RUST_LOG".to_string(), self.rust_log.clone())];
        env.extend(self.env.iter().cloned());
        let pipeline = self.pipeline.clone();
        let server = tokio::task::spawn_blocking(move || {
            NovajoinServer::start(ServerFiles {
                join_conf,
                pipeline,
                env,
            })
        })
        .await
        .expect("server start");
        let nova_token = keystone.issue_token("nova").await;
        let env = ServiceEnv {
            http: client(),
            nova_token,
            server,
            glance,
            ipa,
            ipa_replica,
            keystone,
        };
        if env.server_validates_tokens() {
            env.warm_up().await;
        }
        env
    }
}

/// A reqwest client for the server under test (no proxy from the
/// environment, generous pool).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("client")
}

/// nova's `vendordata_dynamic_connect_timeout` and
/// `vendordata_dynamic_read_timeout` defaults (5 s each).
pub const NOVA_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A client that gives up as nova does: after [`NOVA_READ_TIMEOUT`]
/// (nova's read timeout is per socket read; our answers come in one read,
/// so a total limit is the same thing here).
pub fn nova_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(NOVA_READ_TIMEOUT)
        .timeout(NOVA_READ_TIMEOUT)
        .build()
        .expect("client")
}

fn join_conf(
    b: &EnvBuilder,
    ipa: &IpaDouble,
    replica: Option<&IpaDouble>,
    glance: &GlanceDouble,
    ks: &Keystone,
) -> String {
    let (url, fqdn) = match replica {
        Some(r) => (
            format!("{}, {}", ipa.json_url(), r.json_url()),
            format!("{}, {}", ipa.fqdn(), r.fqdn()),
        ),
        None => (ipa.json_url(), ipa.fqdn().to_string()),
    };
    let nova = ks.user("nova");
    let novajoin = ks.user("novajoin");
    format!(
        "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {{port}}\nurl = {url}\ndomain = {domain}\n\
         glance_api_servers = {glance}\n{default_lines}\n\
         [ipa]\nauth_method = password\nusername = {ADMIN}\npassword = {ADMIN_PASSWORD}\nserver = {fqdn}\n\
         realm = {realm}\ntimeout = {timeout}\nmax_concurrent_calls = {cap}\n{ipa_lines}\n\
         [service_credentials]\nauth_type = password\nauth_url = {auth_url}\nusername = nova\npassword = {nova_pw}\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\n\
         [keystone_authtoken]\nauth_type = password\nauth_url = {auth_url}\nusername = novajoin\npassword = {nj_pw}\n\
         user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n\
         www_authenticate_uri = {public}\n\n\
         [demo]\nallowed_classes = web,db\n\n[service]\nallowed_classes = *\n\n{sections}",
        url = url,
        domain = ipa.domain(),
        glance = glance.url,
        default_lines = b.default_lines,
        fqdn = fqdn,
        realm = ipa.realm(),
        timeout = b.ipa_timeout,
        cap = b.ipa_cap,
        ipa_lines = b.ipa_lines,
        auth_url = ks.auth_url(),
        nova_pw = nova.password,
        nj_pw = novajoin.password,
        public = ks.public_url(),
        sections = b.sections,
    )
}

/// A running service with everything around it.
pub struct ServiceEnv {
    /// The HTTP client tests use.
    pub http: reqwest::Client,
    /// A project-scoped token of nova's service user (what nova sends).
    pub nova_token: String,
    /// The novajoin server process.
    pub server: NovajoinServer,
    /// The glance double.
    pub glance: GlanceDouble,
    /// The IPA double.
    pub ipa: IpaDouble,
    /// Its replica, when the builder asked for one.
    pub ipa_replica: Option<IpaDouble>,
    /// Keystone.
    pub keystone: KeystoneRef,
}

impl ServiceEnv {
    /// Defaults: the repository's pipeline, shared keystone, `[ipa]` timeout
    /// 20 s and cap 16, no IPA latency, `RUST_LOG=info`.
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            pipeline: super::server::repo_pipeline(),
            default_lines: String::new(),
            sections: String::new(),
            ipa_timeout: 20.0,
            ipa_cap: 16,
            ipa_latency: Duration::ZERO,
            ipa_lines: String::new(),
            private_keystone: false,
            rust_log: "info".into(),
            env: Vec::new(),
            ipa_replica: false,
        }
    }

    fn server_validates_tokens(&self) -> bool {
        std::fs::read_to_string(self.server.dir.path().join("pipeline.toml"))
            .map(|p| p.contains("\"authtoken\""))
            .unwrap_or(false)
    }

    /// Has nova's token validated once (an empty body: 400 after the
    /// pipeline let it through), as in a running deployment where nova's
    /// token is long known. Keystone on a busy test machine can take
    /// seconds per validation, which timing assertions must not see.
    pub async fn warm_up(&self) {
        let (s, text) = self.post("{}").await;
        assert_eq!(s, 400, "warm-up with nova's token: {text}");
    }

    /// `http://127.0.0.1:PORT/v1/`.
    pub fn join_url(&self) -> String {
        format!("{}/v1/", self.server.base)
    }

    /// POSTs `body` as nova does, with nova's token; returns the status
    /// and the body text.
    pub async fn post(&self, body: &str) -> (u16, String) {
        self.post_as(Some(&self.nova_token), body).await
    }

    /// POSTs `body` with `token` (none: no `X-Auth-Token`).
    pub async fn post_as(&self, token: Option<&str>, body: &str) -> (u16, String) {
        let mut req = self
            .http
            .post(self.join_url())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("User-Agent", "openstack-nova-vendordata")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req.send().await.expect("request to novajoin");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// POSTs `body` with nova's token through `client`; an `Err` is a
    /// transport failure or the client's timeout.
    pub async fn try_post(
        &self,
        client: &reqwest::Client,
        body: &str,
    ) -> Result<(u16, String), reqwest::Error> {
        let resp = client
            .post(self.join_url())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("X-Auth-Token", &self.nova_token)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// Like [`try_post`](Self::try_post), also returning the answer's
    /// `Retry-After` header.
    pub async fn try_post_retry_after(
        &self,
        client: &reqwest::Client,
        body: &str,
    ) -> Result<(u16, Option<String>, String), reqwest::Error> {
        let resp = client
            .post(self.join_url())
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("X-Auth-Token", &self.nova_token)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((status, retry_after, resp.text().await?))
    }

    /// POSTs and parses a JSON answer.
    pub async fn post_json(&self, body: &str) -> (u16, Value) {
        let (s, text) = self.post(body).await;
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({s}): {text:?}"));
        (s, v)
    }

    /// The OTP IPA holds for `host` (short name in the double's domain).
    pub fn otp_in_ipa(&self, host: &str) -> Option<String> {
        self.ipa
            .host(&format!("{host}.{}", self.ipa.domain()))
            .and_then(|h| h.otp)
    }

    /// Waits until the double has no request in flight (abandoned calls
    /// included), up to `limit`.
    pub async fn wait_ipa_idle(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.ipa_in_flight() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the IPA double still has requests in flight after {limit:?}");
    }

    fn ipa_in_flight(&self) -> u64 {
        self.ipa.in_flight()
    }
}
