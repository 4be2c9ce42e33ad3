//! A double of the nova and neutron API calls the notification listener
//! makes with the service credentials: `GET /v2.1/servers/{id}` and
//! `GET /v2.1/servers/detail` (nova) and `GET /v2.0/ports?id=<port>`
//! (neutron), answered in their APIs' JSON shapes. It is registered as the
//! `compute` and `network` endpoints of the real keystone's catalog, so the
//! listener finds it the way it finds the real services. Requests without
//! `X-Auth-Token` get 401, unknown servers 404, as nova answers.
//!
//! The server list follows nova's API and DB layer:
//!
//! * order: newest first (nova's default sort `created_at desc, id desc`;
//!   here the order servers were added in, reversed);
//! * `all_tenants`: present and empty or true-ish (`1`, `true`, `yes`...)
//!   lists every project, false-ish (`0`, `false`...) only the caller's,
//!   anything else is a 400 (nova's `is_all_tenants`, a strict
//!   `bool_from_string`). Without it only the caller's project is listed;
//!   the double does not validate tokens and takes every caller to be in
//!   the project of keystone's `nova` service user;
//! * `hostname`: a regular expression, matched anywhere in the hostname
//!   (Python `re.search`, as nova's regex filters); an invalid one is a 400;
//! * `limit` (capped at nova's `max_limit`, 1000) and `marker` (the id of
//!   the last server of the previous page; any server ever known, deleted
//!   ones included, as nova looks it up with `read_deleted=yes`; an unknown
//!   one is a 400 `marker [<id>] not found`). A full page carries
//!   `servers_links` with a `next` link: the request's query, sorted, with
//!   `marker` set to the page's last id (nova's `_get_next_link`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use super::keystone::Keystone;

/// The project `add_server` puts servers in.
pub const DEFAULT_PROJECT: &str = "c97027dd880d4c129ae7a4ba7edade05";

/// nova's `[api] max_limit` default.
const MAX_LIMIT: usize = 1000;

struct Server {
    id: String,
    name: String,
    hostname: String,
    project_id: String,
    /// Soft-deleted: gone from the API, still found as a marker.
    deleted: bool,
}

impl Server {
    fn to_json(&self) -> serde_json::Value {
        let status = if self.deleted { "DELETED" } else { "ACTIVE" };
        json!({"id": self.id, "name": self.name, "status": status,
               "tenant_id": self.project_id, "metadata": {},
               "OS-EXT-SRV-ATTR:hostname": self.hostname})
    }
}

#[derive(Default)]
struct State {
    /// In creation order (oldest first).
    servers: Vec<Server>,
    ports: HashMap<String, String>,
    requests: Vec<String>,
    /// The project every caller is taken to be in (keystone's `nova`
    /// user's, set on registration).
    caller_project: Option<String>,
    /// Server-list pages still answered before every further one fails
    /// with a 500 (`None`: never fail).
    pages_before_failure: Option<usize>,
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

    /// nova knows a server `id` named `name`, in project
    /// [`DEFAULT_PROJECT`], its hostname `name` lower-cased.
    pub fn add_server(&self, id: &str, name: &str) {
        self.add_server_with(id, name, &name.to_lowercase(), DEFAULT_PROJECT);
    }

    /// nova knows a server `id` named `name` with hostname `hostname`
    /// (`OS-EXT-SRV-ATTR:hostname`) in project `project_id`. A server with
    /// that id is replaced (and back if it was removed), keeping its place
    /// in the creation order.
    pub fn add_server_with(&self, id: &str, name: &str, hostname: &str, project_id: &str) {
        let server = Server {
            id: id.into(),
            name: name.into(),
            hostname: hostname.into(),
            project_id: project_id.into(),
            deleted: false,
        };
        let mut st = self.state.lock().unwrap();
        match st.servers.iter_mut().find(|s| s.id == id) {
            Some(s) => *s = server,
            None => st.servers.push(server),
        }
    }

    /// The server `id` is deleted: `GET` gets 404 and lists leave it out,
    /// but it still works as a `marker`, as in nova. Returns false when
    /// there was no such server.
    pub fn remove_server(&self, id: &str) -> bool {
        let mut st = self.state.lock().unwrap();
        match st.servers.iter_mut().find(|s| s.id == id && !s.deleted) {
            Some(s) => {
                s.deleted = true;
                true
            }
            None => false,
        }
    }

    /// The server list answers `pages` more pages, then fails every
    /// request with nova's 500 until [`Self::heal`] (a nova going down in
    /// the middle of a paged listing).
    pub fn fail_after_pages(&self, pages: usize) {
        self.state.lock().unwrap().pages_before_failure = Some(pages);
    }

    /// The server list answers again.
    pub fn heal(&self) {
        self.state.lock().unwrap().pages_before_failure = None;
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
    if path == "/v2.1/servers/detail" {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let base = format!("http://{host}/v2.1");
        return list_servers(&mut st, &base, &query);
    }
    if let Some(id) = path.strip_prefix("/v2.1/servers/") {
        return match st.servers.iter().find(|s| s.id == id && !s.deleted) {
            Some(server) => reply(200, json!({"server": server.to_json()})),
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

fn bad_request(message: &str) -> http::Response<Full<Bytes>> {
    reply(
        400,
        json!({"badRequest": {"code": 400, "message": message}}),
    )
}

/// oslo's `strutils.bool_from_string(value, strict=True)`.
fn bool_from_string(value: &str) -> Result<bool, String> {
    match value.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(format!(
            "Unrecognized value '{value}', acceptable values are: '0', '1', 'f', 'false', \
             'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
        )),
    }
}

/// `GET /v2.1/servers/detail` (see the module docs).
fn list_servers(st: &mut State, base: &str, query: &str) -> http::Response<Full<Bytes>> {
    if let Some(left) = st.pages_before_failure.as_mut() {
        if *left == 0 {
            return reply(
                500,
                json!({"computeFault": {"code": 500, "message": "Unexpected API Error."}}),
            );
        }
        *left -= 1;
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    // A repeated parameter: the last one counts.
    let param = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    // nova's `is_all_tenants`: present and empty means yes.
    let all_tenants = match param("all_tenants") {
        None => false,
        Some("") => true,
        Some(v) => match bool_from_string(v) {
            Ok(b) => b,
            Err(why) => return bad_request(&format!("Invalid input received: {why}")),
        },
    };
    let hostname = match param("hostname").map(regex::Regex::new) {
        None => None,
        Some(Ok(re)) => Some(re),
        Some(Err(e)) => {
            return bad_request(&format!("Invalid input for query parameters hostname. {e}"))
        }
    };
    let limit = match param("limit") {
        None => MAX_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n.min(MAX_LIMIT),
            _ => {
                return bad_request(&format!(
                    "Invalid input for query parameters limit. Value: {v}. \
                     '{v}' does not match '^[0-9]*$'"
                ))
            }
        },
    };
    // Newest first.
    let ordered: Vec<&Server> = st.servers.iter().rev().collect();
    let start = match param("marker") {
        None => 0,
        Some(m) => match ordered.iter().position(|s| s.id == m) {
            Some(i) => i + 1,
            None => return bad_request(&format!("marker [{m}] not found")),
        },
    };
    // With `changes-since` nova lists deleted servers too (as DELETED).
    let with_deleted = param("changes-since").is_some();
    let page: Vec<&Server> = ordered[start..]
        .iter()
        .copied()
        .filter(|s| with_deleted || !s.deleted)
        .filter(|s| all_tenants || st.caller_project.as_deref() == Some(s.project_id.as_str()))
        .filter(|s| hostname.as_ref().is_none_or(|re| re.is_match(&s.hostname)))
        .take(limit)
        .collect();
    let mut body = json!({"servers": page.iter().map(|s| s.to_json()).collect::<Vec<_>>()});
    // nova's `_get_collection_links`: a full page links to the next one,
    // `_get_next_link`: `OrderedDict(sorted(params))` (one value a key,
    // the last), then `marker` set (in place, or appended).
    if let Some(last) = page.last().filter(|_| limit > 0 && page.len() == limit) {
        let mut sorted = params.clone();
        sorted.sort();
        let mut next: Vec<(String, String)> = Vec::new();
        for (k, v) in sorted {
            match next.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = v,
                None => next.push((k, v)),
            }
        }
        match next.iter_mut().find(|(n, _)| n == "marker") {
            Some(slot) => slot.1 = last.id.clone(),
            None => next.push(("marker".into(), last.id.clone())),
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&next)
            .finish();
        body["servers_links"] = json!([{"rel": "next",
            "href": format!("{base}/servers/detail?{query}")}]);
    }
    reply(200, body)
}

async fn register(keystone: &Keystone, double: &NovaNeutron) {
    double.state.lock().unwrap().caller_project = Some(keystone.user("nova").project_id.clone());
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
