//! The HTTP side: routing, Apache's session check, IPA's Referer checks,
//! password and (proxy-asserted) Kerberos login, the JSON-RPC envelope, and
//! the injected faults.
//!
//! One route is a TEST DOUBLE FEATURE that no IPA server has:
//! `POST /ipa/test/join` (see [`test_join`]), the enrolment `ipa-join -w OTP`
//! performs, so that a demo can prove over the wire that an OTP is the one
//! IPA holds (`host_show` only tells `has_password`, as real IPA does).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, REFERER, SET_COOKIE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::commands::{execute, ServerConfig};
use crate::state::{Session, State, UserState};
use crate::Fault;

/// Injected faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub latency: Duration,
    pub fail_next: u32,
    pub fail_rate: f64,
    pub mode: Option<Fault>,
    /// Run a request to the end even when its client has gone away.
    pub finish_abandoned: bool,
    /// What a JSON-RPC call costs (see [`crate::IpaDouble::set_cost_model`]).
    pub cost: CostModel,
}

/// The time a JSON-RPC call takes, shaped like IPA's: a fixed cost per
/// call (Apache, session, API dispatch) and a cost per command it carries
/// (one, or each item of a `batch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostModel {
    /// Per call.
    pub per_call: Duration,
    /// Per command.
    pub per_item: Duration,
}

/// Request counters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub http_requests: u64,
    pub round_trips: u64,
    pub round_trips_by_method: BTreeMap<String, u64>,
    pub logins: u64,
    pub failed_logins: u64,
    pub injected: u64,
    pub in_flight: u64,
    pub max_in_flight: u64,
    /// Commands carried by JSON-RPC calls (each `batch` item counts).
    pub commands: u64,
}

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub cfg: ServerConfig,
    pub session_lifetime: Duration,
    pub trusted_user_header: Option<String>,
    /// The directory; replicas share it ([`crate::IpaDouble::start_replica`]).
    pub state: Arc<Mutex<State>>,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<Counters>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

type Resp = Response<Full<Bytes>>;

/// Accepts connections until aborted; dropping the task drops the listener
/// and (through the `JoinSet`) every open connection.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Answers are small: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        while conns.try_join_next().is_some() {}
        let shared = shared.clone();
        let acceptor = shared.tls.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                }
            }
        });
    }
}

/// The error a handler returns to make hyper drop the connection without
/// an answer (the `Drop` fault).
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

fn html(status: StatusCode, title: &str, message: &str) -> Resp {
    let body = format!(
        "<html>\n<head>\n<title>{} {title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<p>\n<strong>{message}</strong>\n</p>\n</body>\n</html>",
        status.as_u16()
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn bad_request(message: &str) -> Resp {
    html(StatusCode::BAD_REQUEST, "Bad Request", message)
}

/// What Apache's mod_auth_gssapi answers when there is no valid session:
/// 401 with a Negotiate challenge and IPA's unauthorized page.
fn negotiate_challenge() -> Resp {
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Invalid Authentication",
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
    r
}

fn unauthorized(reason: &str) -> Resp {
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        "Invalid Authentication",
        "Authentication failed",
    );
    if let Ok(v) = HeaderValue::from_str(reason) {
        r.headers_mut().insert("x-ipa-rejection-reason", v);
    }
    r
}

/// IPA's `check_referer()` (the CVE-2023-5455 check on session endpoints).
fn check_referer(cfg: &ServerConfig, referer: Option<&str>) -> bool {
    let Some(r) = referer else { return false };
    if r.matches("://").count() > 1 {
        return false;
    }
    let Some(rest) = r.strip_prefix("https://") else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or_default();
    let path = path.split(['?', '#']).next().unwrap_or_default();
    host.eq_ignore_ascii_case(&cfg.fqdn) && (path == "/ipa" || path.starts_with("/ipa/"))
}

fn header(req: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn session_token(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .find_map(|c| c.trim().strip_prefix("ipa_session=").map(str::to_string))
        })
}

fn new_session(shared: &Shared, principal: String) -> HeaderValue {
    let token = format!(
        "MagBearerToken={}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    shared.state.lock().expect("state").sessions.insert(
        token.clone(),
        Session {
            principal,
            expires: Instant::now() + shared.session_lifetime,
            server: shared.cfg.fqdn.clone(),
        },
    );
    shared.counters.lock().expect("counters").logins += 1;
    HeaderValue::from_str(&format!(
        "ipa_session={token}; path=/ipa; httponly; secure; SameSite=strict"
    ))
    .expect("cookie is ASCII")
}

/// Routes one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    if shared.faults.lock().expect("faults").finish_abandoned {
        // IPA behind Apache runs a command to the end whether or not the
        // client still waits: detach it from the connection.
        return tokio::spawn(handle_attached(shared, req))
            .await
            .unwrap_or(Err(Dropped));
    }
    handle_attached(shared, req).await
}

async fn handle_attached(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    {
        let mut c = shared.counters.lock().expect("counters");
        c.http_requests += 1;
        c.in_flight += 1;
        c.max_in_flight = c.max_in_flight.max(c.in_flight);
    }
    // Decrements even when hyper drops the future (client went away).
    struct InFlight<'a>(&'a Shared);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            if let Ok(mut c) = self.0.counters.lock() {
                c.in_flight -= 1;
            }
        }
    }
    let _guard = InFlight(&shared);
    handle_counted(&shared, req).await
}

async fn handle_counted(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let (latency, fault) = {
        let mut f = shared.faults.lock().expect("faults");
        let fail = if f.fail_next > 0 {
            f.fail_next -= 1;
            true
        } else {
            f.fail_rate > 0.0 && rand::random::<f64>() < f.fail_rate
        };
        (f.latency, if fail { f.mode } else { None })
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(mode) = fault {
        shared.counters.lock().expect("counters").injected += 1;
        match mode {
            Fault::Http503 => {
                return Ok(html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "Retry later: the directory server is not available",
                ))
            }
            Fault::Drop => return Err(Dropped),
            Fault::LoseAnswer => {}
        }
    }
    let resp = match req.uri().path() {
        "/ipa/session/login_password" => login_password(shared, req).await,
        "/ipa/session/login_kerberos" => login_kerberos(shared, req),
        "/ipa/session/json" => session_json(shared, req).await,
        "/ipa/json" => kerberos_json(shared, req).await,
        "/ipa/test/join" => test_join(shared, req).await,
        other => html(
            StatusCode::NOT_FOUND,
            "Not Found",
            &format!("The requested URL {other} was not found on this server."),
        ),
    };
    if fault == Some(Fault::LoseAnswer) {
        return Err(Dropped);
    }
    Ok(resp)
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

async fn login_password(shared: &Shared, req: Request<Incoming>) -> Resp {
    if req.method() != Method::POST {
        return bad_request("Only the POST method is accepted");
    }
    if !check_referer(&shared.cfg, header(&req, REFERER)) {
        return bad_request("denied");
    }
    if header(&req, CONTENT_TYPE).map(|c| c.split(';').next().unwrap_or("").trim())
        != Some("application/x-www-form-urlencoded")
    {
        return bad_request("Content-Type must be application/x-www-form-urlencoded");
    }
    let body = read_body(req).await;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    // The problem with a form field, as IPA words it.
    let one = |k: &str| -> Result<String, String> {
        let v: Vec<_> = pairs.iter().filter(|(n, _)| n == k).collect();
        match v.as_slice() {
            [] => Err(format!("Missing {k} parameter")),
            [(_, v)] => Ok(v.clone()),
            _ => Err(format!("More than one {k} parameter")),
        }
    };
    let (user, password) = match (one("user"), one("password")) {
        (Ok(u), Ok(p)) => (u, p),
        (Err(why), _) | (_, Err(why)) => return bad_request(&why),
    };
    let uid = match user.rsplit_once('@') {
        Some((u, realm)) if realm == shared.cfg.realm => u.to_string(),
        Some(_) => {
            shared.counters.lock().expect("counters").failed_logins += 1;
            return unauthorized("denied");
        }
        None => user.clone(),
    };
    let outcome = {
        let st = shared.state.lock().expect("state");
        match st.users.get(&uid) {
            None => Err("invalid-password"),
            Some(u) if u.password != password => Err("invalid-password"),
            Some(u) => match u.state {
                UserState::Active => Ok(()),
                UserState::Locked => Err("user-locked"),
                UserState::PasswordExpired => Err("password-expired"),
                UserState::PrincipalExpired => Err("krbprincipal-expired"),
            },
        }
    };
    if let Err(reason) = outcome {
        shared.counters.lock().expect("counters").failed_logins += 1;
        return unauthorized(reason);
    }
    let cookie = new_session(shared, format!("{uid}@{}", shared.cfg.realm));
    let mut r = Response::new(Full::new(Bytes::new()));
    r.headers_mut().insert(SET_COOKIE, cookie);
    r
}

/// TEST DOUBLE ONLY (no IPA server has this route): `POST /ipa/test/join`
/// with form fields `fqdn` and `otp` enrols the host with its one-time
/// password, as `ipa-join -w OTP` does on a new client. Real IPA checks the
/// OTP through an LDAP bind as the host, which the double does not speak;
/// as there, the OTP is the only credential (no session, no Referer).
///
/// * `200` + `{"result": {"fqdn", "krbprincipalname"}}`: the host existed,
///   was not enrolled and `otp` was its current OTP; it now has a keytab
///   and no OTP (`host_show`: `has_keytab` true, `has_password` false;
///   with `all`, `krblastpwdchange` is now).
/// * `401` (wrong OTP, or the host has none), `404` (no such host), `409`
///   (already enrolled), each with `{"error": "..."}`; nothing changes.
async fn test_join(shared: &Shared, req: Request<Incoming>) -> Resp {
    if req.method() != Method::POST {
        return bad_request("Only the POST method is accepted");
    }
    let body = read_body(req).await;
    let mut fqdn = None;
    let mut otp = None;
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "fqdn" => fqdn = Some(v.into_owned()),
            "otp" => otp = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(fqdn), Some(otp)) = (fqdn, otp) else {
        return bad_request("Form fields fqdn and otp are required");
    };
    let fqdn = fqdn.trim_end_matches('.').to_lowercase();
    let realm = shared.cfg.realm.clone();
    let outcome = {
        let mut st = shared.state.lock().expect("state");
        match st.hosts.get_mut(&fqdn) {
            None => Err((StatusCode::NOT_FOUND, format!("{fqdn}: host not found"))),
            Some(h) => match &h.password {
                None if h.has_keytab => {
                    Err((StatusCode::CONFLICT, format!("{fqdn} is already enrolled")))
                }
                None => Err((StatusCode::UNAUTHORIZED, format!("{fqdn} has no OTP"))),
                Some(p) if *p != otp => {
                    Err((StatusCode::UNAUTHORIZED, format!("{fqdn}: wrong OTP")))
                }
                Some(_) => {
                    h.password = None;
                    h.got_keys();
                    let principal = h
                        .krbprincipalname
                        .get_or_insert_with(|| format!("host/{}@{realm}", h.fqdn))
                        .clone();
                    Ok(json!({"result": {"fqdn": fqdn, "krbprincipalname": principal}}))
                }
            },
        }
    };
    let (status, body) = match outcome {
        Ok(v) => (StatusCode::OK, v),
        Err((status, message)) => (status, json!({"error": message})),
    };
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&body).expect("json"),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// The principal the fronting Apache (mod_auth_gssapi) authenticated, from
/// the configured trusted header.
fn proxy_principal(shared: &Shared, req: &Request<Incoming>) -> Option<String> {
    let name = shared.trusted_user_header.as_deref()?;
    header(req, name)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

fn login_kerberos(shared: &Shared, req: Request<Incoming>) -> Resp {
    let Some(principal) = proxy_principal(shared, &req) else {
        return negotiate_challenge();
    };
    if !check_referer(&shared.cfg, header(&req, REFERER)) {
        return bad_request("denied");
    }
    let cookie = new_session(shared, principal);
    let mut r = Response::new(Full::new(Bytes::new()));
    r.headers_mut().insert(SET_COOKIE, cookie);
    r
}

async fn session_json(shared: &Shared, req: Request<Incoming>) -> Resp {
    // Apache (mod_auth_gssapi) checks the session before IPA sees anything.
    let principal = {
        let mut st = shared.state.lock().expect("state");
        let token = session_token(&req);
        let own = token
            .as_ref()
            .and_then(|t| st.sessions.get(t).cloned())
            .filter(|s| s.server == shared.cfg.fqdn);
        match own {
            Some(s) if s.expires > Instant::now() => Some(s.principal),
            Some(_) => {
                st.sessions.remove(token.as_deref().unwrap_or_default());
                None
            }
            None => None,
        }
    };
    let Some(principal) = principal else {
        return negotiate_challenge();
    };
    if !check_referer(&shared.cfg, header(&req, REFERER)) {
        return bad_request("denied");
    }
    json_rpc(shared, req, principal).await
}

async fn kerberos_json(shared: &Shared, req: Request<Incoming>) -> Resp {
    let Some(principal) = proxy_principal(shared, &req) else {
        return negotiate_challenge();
    };
    // mod_auth_gssapi with GssapiUseSessions hands out a session cookie.
    let cookie = new_session(shared, principal.clone());
    let mut r = json_rpc(shared, req, principal).await;
    r.headers_mut().insert(SET_COOKIE, cookie);
    r
}

/// IPA's `wsgi_execute` + `jsonserver.marshal`.
async fn json_rpc(shared: &Shared, req: Request<Incoming>, principal: String) -> Resp {
    let referer = header(&req, REFERER).map(str::to_string);
    let is_json_post = req.method() == Method::POST
        && header(&req, CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json"));
    let path_name = req
        .uri()
        .path()
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let body = read_body(req).await;
    let mut id = Value::Null;
    let mut method_name = "<invalid>".to_string();
    let outcome = (|| {
        let referer = referer.ok_or_else(|| crate::errors::IpaErr::referer("missing"))?;
        if !referer.starts_with(&format!("https://{}/ipa", shared.cfg.fqdn)) {
            return Err(crate::errors::IpaErr::referer(&referer));
        }
        if !is_json_post {
            method_name = path_name.clone();
            return Err(crate::errors::IpaErr::command(&path_name));
        }
        let (method, args, options, rid) = unmarshal(&body)?;
        id = rid;
        method_name = method.clone();
        Ok((method, args, options))
    })();
    let outcome = match outcome {
        Ok((method, args, options)) => {
            // `methods*` arrives as one list argument or as the items.
            let items = match (method.as_str(), args.as_slice()) {
                ("batch", [Value::Array(calls)]) => calls.len() as u64,
                ("batch", calls) => calls.len() as u64,
                _ => 1,
            };
            shared.counters.lock().expect("counters").commands += items;
            let cost = shared.faults.lock().expect("faults").cost;
            let spent = cost.per_call + cost.per_item * items as u32;
            if !spent.is_zero() {
                tokio::time::sleep(spent).await;
            }
            let mut st = shared.state.lock().expect("state");
            execute(&mut st, &shared.cfg, &method, &args, &options)
        }
        Err(e) => Err(e),
    };
    {
        let mut c = shared.counters.lock().expect("counters");
        c.round_trips += 1;
        *c.round_trips_by_method.entry(method_name).or_default() += 1;
    }
    let (result, error) = match outcome {
        Ok(v) => (v, Value::Null),
        Err(e) => (Value::Null, e.to_json()),
    };
    let body = json!({"result": result, "error": error, "id": id, "principal": principal,
                      "version": shared.cfg.package_version});
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&body).expect("json"),
    )));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

type Unmarshalled = (String, Vec<Value>, serde_json::Map<String, Value>, Value);

fn unmarshal(body: &[u8]) -> Result<Unmarshalled, crate::errors::IpaErr> {
    use crate::errors::IpaErr;
    let d: Value = serde_json::from_slice(body).map_err(|e| IpaErr::json(&e.to_string()))?;
    let Value::Object(d) = d else {
        return Err(IpaErr::json("Request must be a dict"));
    };
    let Some(method) = d.get("method") else {
        return Err(IpaErr::json("Request is missing \"method\""));
    };
    let Some(params) = d.get("params") else {
        return Err(IpaErr::json("Request is missing \"params\""));
    };
    let Value::Array(params) = params else {
        return Err(IpaErr::json("params must be a list"));
    };
    if params.len() != 2 {
        return Err(IpaErr::json("params must contain [args, options]"));
    }
    let Value::Array(args) = &params[0] else {
        return Err(IpaErr::json("params[0] (aka args) must be a list"));
    };
    let Value::Object(options) = &params[1] else {
        return Err(IpaErr::json("params[1] (aka options) must be a dict"));
    };
    let method = match method {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok((
        method,
        args.clone(),
        options.clone(),
        d.get("id").cloned().unwrap_or(Value::Null),
    ))
}

/// Binds a listener on `addr`.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
