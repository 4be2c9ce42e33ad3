//! A double of the two nova and neutron API calls the notification listener
//! makes with the service credentials: `GET /v2.1/servers/{id}` (nova) and
//! `GET /v2.0/ports?id=<port>` (neutron), answered in their APIs' JSON
//! shapes. It is registered as the `compute` and `network` endpoints of the
//! real keystone's catalog, so the listener finds it the way it finds the
//! real services. Requests without `X-Auth-Token` get 401, unknown servers
//! 404, as nova answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use super::keystone::Keystone;

#[derive(Default)]
struct State {
    servers: HashMap<String, String>,
    ports: HashMap<String, String>,
    requests: Vec<String>,
}

/// The running double (one per test binary).
pub struct NovaNeutron {
    /// nova's endpoint, with its version prefix (`http://127.0.0.1:P/v2.1`).
    pub nova_url: String,
    /// neutron's endpoint (`http://127.0.0.1:P/network`, no version, as
    /// deployments register it).
    pub neutron_url: String,
    state: Arc<Mutex<State>>,
}

impl NovaNeutron {
    /// The double of this test binary, registered in `keystone`'s catalog
    /// (started and registered on first use).
    pub async fn shared(keystone: &'static Keystone) -> &'static NovaNeutron {
        static SHARED: OnceLock<NovaNeutron> = OnceLock::new();
        static REGISTERED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let double = SHARED.get_or_init(start);
        REGISTERED.get_or_init(|| register(keystone, double)).await;
        double
    }

    /// nova knows a server `id` named `name`.
    pub fn add_server(&self, id: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .servers
            .insert(id.into(), name.into());
    }

    /// neutron knows port `port` of device (instance) `device_id`.
    pub fn add_port(&self, port: &str, device_id: &str) {
        self.state
            .lock()
            .unwrap()
            .ports
            .insert(port.into(), device_id.into());
    }

    /// `METHOD path?query` of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn start() -> NovaNeutron {
    let state = Arc::new(Mutex::new(State::default()));
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::Builder::new()
        .name("nova-neutron-double".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { Ok::<_, Infallible>(answer(&st, req)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            });
        })
        .unwrap();
    let addr = rx.recv().unwrap();
    NovaNeutron {
        nova_url: format!("http://{addr}/v2.1"),
        neutron_url: format!("http://{addr}/network"),
        state,
    }
}

fn reply(status: u16, body: serde_json::Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn answer(
    state: &Mutex<State>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let mut st = state.lock().unwrap();
    st.requests.push(format!(
        "{} {path}{}{query}",
        req.method(),
        if query.is_empty() { "" } else { "?" }
    ));
    if req
        .headers()
        .get("x-auth-token")
        .is_none_or(|t| t.is_empty())
    {
        return reply(
            401,
            json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}}),
        );
    }
    if let Some(id) = path.strip_prefix("/v2.1/servers/") {
        return match st.servers.get(id) {
            Some(name) => reply(
                200,
                json!({"server": {"id": id, "name": name, "status": "ACTIVE",
                "tenant_id": "c97027dd880d4c129ae7a4ba7edade05", "metadata": {}}}),
            ),
            None => reply(
                404,
                json!({"itemNotFound": {"code": 404,
                "message": format!("Instance {id} could not be found.")}}),
            ),
        };
    }
    if path == "/network/v2.0/ports" {
        let wanted = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned());
        let ports: Vec<_> = st
            .ports
            .iter()
            .filter(|(id, _)| wanted.as_deref().is_none_or(|w| w == id.as_str()))
            .map(|(id, dev)| json!({"id": id, "device_id": dev, "device_owner": "compute:nova", "status": "ACTIVE"}))
            .collect();
        return reply(200, json!({"ports": ports}));
    }
    reply(404, json!({"error": "not found"}))
}

async fn register(keystone: &Keystone, double: &NovaNeutron) {
    let admin = keystone.issue_token("admin").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = keystone.public_url();
    for (kind, name, url) in [
        ("compute", "nova", &double.nova_url),
        ("network", "neutron", &double.neutron_url),
    ] {
        let r = http
            .post(format!("{base}/v3/services"))
            .header("x-auth-token", &admin)
            .json(&json!({"service": {"type": kind, "name": name, "enabled": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create service {kind}");
        let id = r.json::<serde_json::Value>().await.unwrap()["service"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        for interface in ["public", "internal"] {
            let r = http
                .post(format!("{base}/v3/endpoints"))
                .header("x-auth-token", &admin)
                .json(
                    &json!({"endpoint": {"service_id": id, "interface": interface, "url": url,
                                           "region_id": "RegionOne", "enabled": true}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "create {interface} endpoint for {kind}");
        }
    }
}
