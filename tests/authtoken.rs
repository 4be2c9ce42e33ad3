//! authtoken + keystonecontext against the real keystone (fernet and JWS),
//! through the filters' registry build functions and a handler that echoes
//! the request context it receives.

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use novajoin::config::ConfigFiles;
use novajoin::context::RequestContext;
use novajoin::health::HealthRegistry;
use novajoin::keystone::cache_crypt::{CacheSecret, Strategy};
use novajoin::pipeline::build::{BuildContext, FilterOptions};
use novajoin::pipeline::{authtoken, boxed, keystonecontext, HttpService, ReqBody, RespBody};
use serde_json::{json, Value};
use support::keystone::{Keystone, Provider};
use support::memcached::PrivateMemcached;
use tower::{Layer, ServiceExt};

const BODY_401: &str = r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;

/// The handler: echoes the context and the identity headers it was given.
fn echo_app() -> HttpService {
    boxed(tower::service_fn(|req: Request<ReqBody>| async move {
        let ctx = req
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .expect("keystonecontext ran");
        let h = |n: &str| {
            req.headers()
                .get(n)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
        };
        let body = json!({
            "user": ctx.identity.user_name,
            "user_id": ctx.identity.user_id,
            "project": ctx.identity.project_name,
            "roles": ctx.identity.roles,
            "service_roles": ctx.identity.service_roles,
            "is_admin": ctx.is_admin,
            "request_id": ctx.request_id,
            "x_roles": h("x-roles"),
            "x_user_name": h("x-user-name"),
            "x_project_name": h("x-project-name"),
            "x_identity_status": h("x-identity-status"),
            "x_service_roles": h("x-service-roles"),
            "x_service_catalog": h("x-service-catalog").is_some(),
        });
        Ok::<_, Infallible>(novajoin::pipeline::response::json(StatusCode::OK, &body))
    }))
}

fn base_conf(ks: &Keystone, extra: &str) -> String {
    let u = ks.user("novajoin");
    let mut s = format!(
        "[keystone_authtoken]\nauth_type = password\nauth_url = {}\nusername = novajoin\npassword = {}\n\
         user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n\
         www_authenticate_uri = {}\nhttp_request_max_retries = 1\n",
        ks.auth_url(),
        u.password,
        ks.public_url()
    );
    if ks.provider == Provider::Jws {
        s.push_str(&format!(
            "jws_public_key_repository = {}\n",
            ks.jws_public_key_dir().display()
        ));
    }
    s.push_str(extra);
    s
}

async fn try_stack(conf: &str) -> Result<(HttpService, HealthRegistry), String> {
    // Log lines are shown for failing tests only.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("novajoin=debug")
        .with_test_writer()
        .try_init();
    let mut cfg = ConfigFiles::default();
    cfg.add_text(std::path::Path::new("join.conf"), conf)
        .map_err(|e| e.to_string())?;
    cfg.validate(&novajoin::option_catalog::CATALOG)
        .map_err(|e| e.to_string())?;
    let config = Arc::new(cfg);
    let health = HealthRegistry::default();
    let ctx = BuildContext {
        config: config.clone(),
        health: health.clone(),
    };
    let opts = |name: &str| {
        FilterOptions::new(
            name,
            "pipeline.toml".into(),
            BTreeMap::new(),
            config.clone(),
        )
    };
    let auth = authtoken::build(opts("authtoken"), &ctx).map_err(|e| e.to_string())?;
    let kc = keystonecontext::build(opts("keystonecontext"), &ctx).map_err(|e| e.to_string())?;
    Ok((auth.layer(kc.layer(echo_app())), health))
}

async fn stack(conf: &str) -> HttpService {
    try_stack(conf).await.expect("stack builds").0
}

fn req(token: Option<&str>, extra: &[(&str, &str)]) -> Request<ReqBody> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/v1/")
        .header("accept", "application/json");
    if let Some(t) = token {
        b = b.header("x-auth-token", t);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(novajoin::pipeline::body::full(Bytes::from_static(b"{}")))
        .unwrap()
}

async fn send(svc: &HttpService, r: Request<ReqBody>) -> (StatusCode, http::HeaderMap, String) {
    let resp: Response<RespBody> = svc.clone().oneshot(r).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    )
}

async fn json_of(svc: &HttpService, token: &str) -> Value {
    let (status, _, body) = send(svc, req(Some(token), &[])).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn assert_401(ks: &Keystone, status: StatusCode, headers: &http::HeaderMap, body: &str) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, BODY_401);
    let all: Vec<_> = headers.get_all("www-authenticate").iter().collect();
    assert_eq!(all.len(), 1, "exactly one WWW-Authenticate");
    assert_eq!(
        all[0].to_str().unwrap(),
        format!("Keystone uri=\"{}\"", ks.public_url())
    );
}

fn shared(p: Provider) -> &'static Keystone {
    Keystone::shared(p)
}

async fn shared_async(p: Provider) -> &'static Keystone {
    tokio::task::spawn_blocking(move || Keystone::shared(p))
        .await
        .unwrap()
}

// ---- acceptance 1: accepted, refused, forged headers ----

async fn nova_token_is_accepted(p: Provider) {
    let ks = shared_async(p).await;
    let svc = stack(&base_conf(ks, "")).await;
    let token = ks.issue_token("nova").await;
    let v = json_of(&svc, &token).await;
    assert_eq!(v["user"], "nova");
    assert_eq!(v["user_id"], ks.user("nova").id);
    assert_eq!(v["project"], "service");
    let roles: Vec<String> = serde_json::from_value(v["roles"].clone()).unwrap();
    for r in ["service", "admin"] {
        assert!(roles.contains(&r.to_string()), "{roles:?}");
    }
    assert_eq!(v["x_roles"], roles.join(","));
    assert_eq!(v["x_user_name"], "nova");
    assert_eq!(v["x_project_name"], "service");
    assert_eq!(v["x_identity_status"], "Confirmed");
    assert_eq!(v["x_service_catalog"], true);
    assert_eq!(
        v["is_admin"], true,
        "nova has the admin role: context_is_admin (role:admin) holds"
    );
    assert!(v["request_id"].as_str().unwrap().starts_with("req-"));
}

#[tokio::test]
async fn the_service_validates_tokens_with_an_application_credential() {
    let ks = shared_async(Provider::Fernet).await;
    let cred = ks.create_application_credential("novajoin", None).await;
    let conf = format!(
        "[keystone_authtoken]\nauth_type = v3applicationcredential\nauth_url = {}\n\
         application_credential_id = {}\napplication_credential_secret = {}\n\
         www_authenticate_uri = {}\nhttp_request_max_retries = 1\n",
        ks.auth_url(),
        cred.id,
        cred.secret,
        ks.public_url()
    );
    let svc = stack(&conf).await;
    let token = ks.issue_token("nova").await;
    let v = json_of(&svc, &token).await;
    assert_eq!(v["user"], "nova");
    assert_eq!(v["x_identity_status"], "Confirmed");
    let (status, headers, body) = send(&svc, req(Some("not-a-token"), &[])).await;
    assert_401(ks, status, &headers, &body);
    // The same credential through auth_section, as keystonemiddleware reads it.
    let conf = format!(
        "[keystone_authtoken]\nauth_section = novajoin_auth\nwww_authenticate_uri = {}\n\
         [novajoin_auth]\nauth_type = v3applicationcredential\nauth_url = {}\n\
         application_credential_id = {}\napplication_credential_secret = {}\n",
        ks.public_url(),
        ks.auth_url(),
        cred.id,
        cred.secret,
    );
    let svc = stack(&conf).await;
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
}

#[tokio::test]
async fn fernet_nova_token_is_accepted() {
    nova_token_is_accepted(Provider::Fernet).await;
}

#[tokio::test]
async fn jws_nova_token_is_accepted() {
    nova_token_is_accepted(Provider::Jws).await;
}

async fn bad_tokens_get_401(p: Provider) {
    let ks = shared_async(p).await;
    let svc = stack(&base_conf(ks, "")).await;
    // No token at all.
    let (s, h, b) = send(&svc, req(None, &[])).await;
    assert_401(ks, s, &h, &b);
    // A random string: keystone is asked and says 404.
    let random = format!("not-a-token-{}", uuid::Uuid::new_v4());
    let (s, h, b) = send(&svc, req(Some(&random), &[])).await;
    assert_401(ks, s, &h, &b);
    assert_eq!(ks.validations_of(&random), 1);
    // A token revoked through keystone's API.
    let revoked = ks.issue_token("nova").await;
    ks.revoke(&revoked).await;
    let (s, h, b) = send(&svc, req(Some(&revoked), &[])).await;
    assert_401(ks, s, &h, &b);
    assert_eq!(ks.validations_of(&revoked), 1);
}

#[tokio::test]
async fn fernet_random_missing_and_revoked_tokens_get_401() {
    bad_tokens_get_401(Provider::Fernet).await;
}

#[tokio::test]
async fn jws_random_missing_and_revoked_tokens_get_401() {
    bad_tokens_get_401(Provider::Jws).await;
}

async fn expired_token_gets_401(p: Provider) {
    let ks = shared_async(p).await;
    let svc = stack(&base_conf(ks, "")).await;
    // Tokens capped by application credentials that expire soon (generous:
    // on a loaded machine keystone takes seconds per login).
    let (used, used_expires) = ks.issue_short_lived_token("nova", 40).await;
    assert_eq!(json_of(&svc, &used).await["user"], "nova");
    // This one is never used before it expires.
    let (unused, unused_expires) = ks.issue_short_lived_token("nova", 25).await;
    let until = used_expires.max(unused_expires);
    let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_secs(2)).await;
    for t in [&used, &unused] {
        let (s, h, b) = send(&svc, req(Some(t), &[])).await;
        assert_401(ks, s, &h, &b);
    }
    match p {
        // keystone was asked (and said 404) for the expired fernet token.
        Provider::Fernet => {
            assert_eq!(ks.validations_of(&used), 2);
            assert_eq!(ks.validations_of(&unused), 1);
        }
        // The local check refused the expired JWS tokens without a call.
        Provider::Jws => {
            assert_eq!(ks.validations_of(&used), 1, "only the first, valid use");
            assert_eq!(ks.validations_of(&unused), 0);
        }
    }
}

#[tokio::test]
async fn fernet_expired_token_gets_401() {
    expired_token_gets_401(Provider::Fernet).await;
}

#[tokio::test]
async fn jws_expired_token_gets_401_without_asking_keystone() {
    expired_token_gets_401(Provider::Jws).await;
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// A JWS with keystone's claims, signed with a key keystone never had.
fn forge_jws(claims: &Value) -> String {
    let py = support::keystone::venv().join("bin/python");
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import jwt, sys, json\nfrom cryptography.hazmat.primitives.asymmetric import ec\n\
             k = ec.generate_private_key(ec.SECP256R1())\n\
             print(jwt.encode(json.loads(sys.argv[1]), k, algorithm='ES256'))",
            &claims.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn tampered_and_forged_jws_tokens_get_401_without_asking_keystone() {
    let ks = shared_async(Provider::Jws).await;
    let svc = stack(&base_conf(ks, "")).await;
    let real = ks.issue_token("demo").await;
    let parts: Vec<&str> = real.split('.').collect();
    assert_eq!(parts.len(), 3, "keystone's JWS shape");
    // Payload changed to claim nova's user id; the signature no longer matches.
    let mut claims: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    claims["sub"] = json!(ks.user("nova").id);
    claims["openstack_project_id"] = json!(ks.user("nova").project_id);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );
    // Same claims, signed with a stranger's P-256 key.
    let forged = forge_jws(&claims);
    // Signature bytes flipped.
    let mut sig = b64url_decode(parts[2]);
    sig[10] ^= 0x55;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
    for t in [&tampered, &forged, &flipped] {
        let (s, h, b) = send(&svc, req(Some(t), &[])).await;
        assert_401(ks, s, &h, &b);
        assert_eq!(
            ks.validations_of(t),
            0,
            "refused locally, keystone never asked"
        );
    }
    // Without the local check the same forged token is still refused, by keystone.
    let no_local = stack(&base_conf(ks, "").replace("jws_public_key_repository", "#")).await;
    let (s, h, b) = send(&no_local, req(Some(&forged), &[])).await;
    assert_401(ks, s, &h, &b);
    assert_eq!(ks.validations_of(&forged), 1);
    // The untouched token still works.
    assert_eq!(json_of(&svc, &real).await["user"], "demo");
}

#[tokio::test]
async fn tampered_fernet_token_gets_401() {
    let ks = shared_async(Provider::Fernet).await;
    let svc = stack(&base_conf(ks, "")).await;
    let real = ks.issue_token("demo").await;
    let mut chars: Vec<char> = real.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let (s, h, b) = send(&svc, req(Some(&tampered), &[])).await;
    assert_401(ks, s, &h, &b);
}

async fn forged_identity_headers_are_ignored(p: Provider) {
    let ks = shared_async(p).await;
    let svc = stack(&base_conf(ks, "")).await;
    let demo = ks.issue_token("demo").await;
    let forged = [
        ("x-roles", "admin,service"),
        ("x-user-name", "nova"),
        ("x-user-id", "someone"),
        ("x-project-name", "service"),
        ("x-identity-status", "Confirmed"),
        ("x-service-roles", "service"),
        ("openstack-system-scope", "all"),
    ];
    let (s, _, b) = send(&svc, req(Some(&demo), &forged)).await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["user"], "demo");
    assert_eq!(v["x_user_name"], "demo");
    assert_eq!(v["project"], "demo");
    let roles: Vec<String> = serde_json::from_value(v["roles"].clone()).unwrap();
    assert!(!roles.contains(&"admin".to_string()), "{roles:?}");
    assert!(!v["x_roles"].as_str().unwrap().contains("admin"));
    assert_eq!(v["x_service_roles"], Value::Null);
    assert_eq!(
        v["is_admin"], false,
        "forged X-Roles: admin does not make demo an admin"
    );
    // Forged headers with no token at all: 401, nothing passes.
    let (s, h, b) = send(&svc, req(None, &forged)).await;
    assert_401(ks, s, &h, &b);
}

#[tokio::test]
async fn fernet_forged_x_roles_are_ignored() {
    forged_identity_headers_are_ignored(Provider::Fernet).await;
}

#[tokio::test]
async fn jws_forged_x_roles_are_ignored() {
    forged_identity_headers_are_ignored(Provider::Jws).await;
}

// ---- acceptance 2: keystone stopped ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_down_cached_token_works_until_cache_time_uncached_gets_503() {
    let ks = tokio::task::spawn_blocking(|| Keystone::start(Provider::Fernet))
        .await
        .unwrap();
    let (svc, health) = try_stack(&base_conf(&ks, "token_cache_time = 10\n"))
        .await
        .unwrap();
    let delayed = stack(&base_conf(
        &ks,
        "token_cache_time = 10\ndelay_auth_decision = true\n",
    ))
    .await;
    let cached = ks.issue_token("nova").await;
    let uncached = ks.issue_token("nova").await;
    assert_eq!(json_of(&svc, &cached).await["user"], "nova");
    let validated_at = std::time::Instant::now();
    tokio::task::block_in_place(|| ks.stop());
    assert!(!ks.is_running());
    // Cached: still accepted with keystone gone.
    assert_eq!(json_of(&svc, &cached).await["user"], "nova");
    // Not cached: 503 with WebOb's JSON body, no WWW-Authenticate.
    let (s, h, b) = send(&svc, req(Some(&uncached), &[])).await;
    assert_eq!(s, 503, "{b}");
    assert!(h.get("www-authenticate").is_none());
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["code"], "503 Service Unavailable");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("The Keystone service is temporarily unavailable."));
    // The health check says so.
    let states = health.check_all().await;
    assert!(
        states.iter().any(|(n, s)| n == "keystone"
            && matches!(s, novajoin::health::HealthState::Degraded(m) if m.contains("cannot be reached"))),
        "{states:?}"
    );
    // With delay_auth_decision the request goes on as Invalid; keystonecontext
    // then answers 401 and authtoken adds WWW-Authenticate.
    let (s, h, b) = send(&delayed, req(Some(&uncached), &[])).await;
    assert_401(&ks, s, &h, &b);
    // After token_cache_time the cached token is no longer served.
    assert!(
        validated_at.elapsed() < Duration::from_secs(10),
        "test too slow to show the cached case"
    );
    let wait = Duration::from_secs(11).saturating_sub(validated_at.elapsed());
    tokio::time::sleep(wait).await;
    let (s, _, b) = send(&svc, req(Some(&cached), &[])).await;
    assert_eq!(s, 503, "cache time over, keystone still down: {b}");
}

// ---- acceptance 3: counted keystone calls ----

#[tokio::test]
async fn later_requests_with_a_token_make_zero_keystone_calls() {
    let ks = shared_async(Provider::Fernet).await;
    let svc = stack(&base_conf(ks, "")).await;
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1);
    for _ in 0..25 {
        assert_eq!(json_of(&svc, &token).await["user"], "nova");
    }
    assert_eq!(ks.validations_of(&token), 1, "served from the cache");
}

#[tokio::test]
async fn without_a_cache_every_request_asks_keystone() {
    let ks = shared_async(Provider::Fernet).await;
    let svc = stack(&base_conf(ks, "token_cache_time = -1\n")).await;
    let token = ks.issue_token("nova").await;
    for _ in 0..3 {
        assert_eq!(json_of(&svc, &token).await["user"], "nova");
    }
    assert_eq!(ks.validations_of(&token), 3);
}

async fn concurrent_first_requests(p: Provider) {
    let ks = shared_async(p).await;
    let svc = stack(&base_conf(ks, "")).await;
    let token = ks.issue_token("nova").await;
    let posts_before = ks.calls().iter().filter(|c| c.method == "POST").count();
    let all = futures::future::join_all((0..100).map(|_| {
        // Our filters are always ready; call() gives a 'static boxed future.
        let fut = tower::Service::call(&mut svc.clone(), req(Some(&token), &[]));
        tokio::spawn(async move { fut.await.map(|r| r.status()).unwrap() })
    }))
    .await;
    for s in all {
        assert_eq!(s.unwrap(), 200);
    }
    assert_eq!(
        ks.validations_of(&token),
        1,
        "100 concurrent first requests, one validation call"
    );
    // This stack's service token was obtained once too (other tests may add their own).
    let posts = ks.calls().iter().filter(|c| c.method == "POST").count() - posts_before;
    assert!(posts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fernet_100_concurrent_first_requests_make_one_validation_call() {
    concurrent_first_requests(Provider::Fernet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jws_100_concurrent_first_requests_make_one_validation_call() {
    concurrent_first_requests(Provider::Jws).await;
}

// ---- acceptance 4: Redis shared by two servers ----

fn redis_conf(prefix: &str, strategy: &str, secret: &str) -> String {
    format!(
        "redis_url = redis://127.0.0.1:6379/0\nredis_key_prefix = {prefix}\n\
         memcache_security_strategy = {strategy}\nmemcache_secret_key = {secret}\n"
    )
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379")
}

async fn redis_cleanup(prefix: &str) {
    let mut c = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL").arg(k).query_async(&mut c).await.unwrap();
    }
}

async fn two_servers_share_redis(strategy: &str) {
    let ks = shared_async(Provider::Fernet).await;
    let prefix = format!("novajoin-test-{}:", uuid::Uuid::new_v4());
    let conf = base_conf(ks, &redis_conf(&prefix, strategy, "shared-secret-1"));
    let server_a = stack(&conf).await;
    let server_b = stack(&conf).await;
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&server_a, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1);
    // B has never seen the token: its memory cache is empty, Redis has it.
    let v = json_of(&server_b, &token).await;
    assert_eq!(v["user"], "nova");
    assert_eq!(v["project"], "service");
    assert_eq!(ks.validations_of(&token), 1, "B was served from Redis");
    // What is in Redis: one entry under a keyed hash, never the token itself.
    let mut c = redis_conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains(&token));
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 300, "ttl {ttl}");
    if strategy == "ENCRYPT" {
        use base64::Engine;
        let inner = base64::engine::general_purpose::STANDARD
            .decode(&raw[64..])
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&inner).contains("nova"),
            "ENCRYPT leaves no plaintext"
        );
    }
    redis_cleanup(&prefix).await;
}

#[tokio::test]
async fn two_servers_share_the_redis_cache_mac() {
    two_servers_share_redis("MAC").await;
}

#[tokio::test]
async fn two_servers_share_the_redis_cache_encrypt() {
    two_servers_share_redis("ENCRYPT").await;
}

#[tokio::test]
async fn redis_entries_written_without_the_key_are_refused() {
    let ks = shared_async(Provider::Fernet).await;
    let prefix = format!("novajoin-test-{}:", uuid::Uuid::new_v4());
    let secret = "shared-secret-2";
    let svc = stack(&base_conf(ks, &redis_conf(&prefix, "MAC", secret))).await;
    let demo_token = ks.issue_token("demo").await;
    // An attacker who can write to Redis, and even knows which key the
    // service reads for this token, plants nova's identity for it.
    let name = CacheSecret::new(secret, Strategy::Mac)
        .keys(&demo_token)
        .name;
    let key = format!("{prefix}tokens/{name}");
    let nova_token = ks.issue_token("nova").await;
    let nova_body = ks
        .issue_with(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": nova_token}},
        "scope": {"project": {"id": ks.user("nova").project_id}}}}),
        )
        .await
        .1;
    let entry = json!({"v": 1, "cache_until": chrono::Utc::now().timestamp() + 300, "token": nova_body["token"]});
    let plain = serde_json::to_vec(&entry).unwrap();
    let mut c = redis_conn().await;
    for forged in [
        // Sealed with a guessed secret.
        CacheSecret::new("guessed", Strategy::Mac)
            .keys(&demo_token)
            .seal(&plain),
        // No MAC at all.
        plain.clone(),
    ] {
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(forged)
            .arg("EX")
            .arg(300)
            .query_async(&mut c)
            .await
            .unwrap();
        let fresh = stack(&base_conf(ks, &redis_conf(&prefix, "MAC", secret))).await;
        let v = json_of(&fresh, &demo_token).await;
        assert_eq!(v["user"], "demo", "the planted identity must not be used");
    }
    // Each refusal fell through to keystone.
    assert_eq!(ks.validations_of(&demo_token), 2);
    // A planted entry for a token keystone does not know: still 401.
    let bogus = format!("bogus-{}", uuid::Uuid::new_v4());
    let bkey = format!(
        "{prefix}tokens/{}",
        CacheSecret::new(secret, Strategy::Mac).keys(&bogus).name
    );
    let _: () = redis::cmd("SET")
        .arg(&bkey)
        .arg(&plain)
        .arg("EX")
        .arg(300)
        .query_async(&mut c)
        .await
        .unwrap();
    let (s, h, b) = send(&svc, req(Some(&bogus), &[])).await;
    assert_401(ks, s, &h, &b);
    redis_cleanup(&prefix).await;
}

#[tokio::test]
async fn redis_down_degrades_to_memory_and_reports_it() {
    let ks = shared_async(Provider::Fernet).await;
    // Nothing listens on this port.
    let port = support::server::free_port();
    let conf = base_conf(ks, &format!(
        "redis_url = redis://127.0.0.1:{port}/0\nmemcache_security_strategy = MAC\nmemcache_secret_key = k\n\
         memcache_pool_socket_timeout = 1\n"));
    let (svc, health) = try_stack(&conf).await.unwrap();
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1, "the memory cache still works");
    let states = health.check_all().await;
    assert!(
        states.iter().any(|(n, s)| n == "redis-token-cache"
            && matches!(s, novajoin::health::HealthState::Degraded(_))),
        "{states:?}"
    );
}

// ---- memcached shared by two servers (keystonemiddleware's memcached_servers) ----

fn memcached_conf(mc: &PrivateMemcached, prefix: &str, strategy: &str, secret: &str) -> String {
    format!(
        "memcached_servers = {}\nredis_key_prefix = {prefix}\n\
         memcache_security_strategy = {strategy}\nmemcache_secret_key = {secret}\n",
        mc.addr()
    )
}

async fn two_servers_share_memcached(strategy: &str) {
    let ks = shared_async(Provider::Fernet).await;
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:";
    let conf = base_conf(
        ks,
        &memcached_conf(&mc, prefix, strategy, "shared-secret-1"),
    );
    let server_a = stack(&conf).await;
    let server_b = stack(&conf).await;
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&server_a, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1);
    // B has never seen the token: its memory cache is empty, memcached has it.
    let v = json_of(&server_b, &token).await;
    assert_eq!(v["user"], "nova");
    assert_eq!(v["project"], "service");
    assert_eq!(ks.validations_of(&token), 1, "B was served from memcached");
    // What is in memcached: one entry under the name keystonemiddleware's
    // derivation gives, never the token itself.
    let keys = mc.keys();
    let st = if strategy == "ENCRYPT" {
        Strategy::Encrypt
    } else {
        Strategy::Mac
    };
    let name = CacheSecret::new("shared-secret-1", st).keys(&token).name;
    assert_eq!(keys, vec![format!("{prefix}tokens/{name}")]);
    assert!(!keys[0].contains(&token));
    let raw = mc.get(&keys[0]).expect("entry");
    assert!(!String::from_utf8_lossy(&raw).contains(&token));
    use base64::Engine;
    let inner = base64::engine::general_purpose::STANDARD
        .decode(&raw[64..])
        .unwrap();
    let inner = String::from_utf8_lossy(&inner);
    if strategy == "ENCRYPT" {
        assert!(
            !inner.contains("nova") && !inner.contains("expires_at"),
            "ENCRYPT leaves no plaintext"
        );
    } else {
        assert!(
            inner.contains("nova"),
            "MAC authenticates, it does not hide"
        );
    }
}

#[tokio::test]
async fn two_servers_share_the_memcached_cache_mac() {
    two_servers_share_memcached("MAC").await;
}

#[tokio::test]
async fn two_servers_share_the_memcached_cache_encrypt() {
    two_servers_share_memcached("ENCRYPT").await;
}

#[tokio::test]
async fn memcached_entries_written_without_the_key_are_refused() {
    let ks = shared_async(Provider::Fernet).await;
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:";
    let secret = "shared-secret-2";
    let conf = base_conf(ks, &memcached_conf(&mc, prefix, "ENCRYPT", secret));
    let demo_token = ks.issue_token("demo").await;
    // Whoever can write to memcached (every control-plane service can)
    // plants nova's identity under the key the service reads for demo's token.
    let key = format!(
        "{prefix}tokens/{}",
        CacheSecret::new(secret, Strategy::Encrypt)
            .keys(&demo_token)
            .name
    );
    let nova_token = ks.issue_token("nova").await;
    let nova_body = ks
        .issue_with(
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": nova_token}},
        "scope": {"project": {"id": ks.user("nova").project_id}}}}),
        )
        .await
        .1;
    let entry = json!({"v": 1, "cache_until": chrono::Utc::now().timestamp() + 300, "token": nova_body["token"]});
    let plain = serde_json::to_vec(&entry).unwrap();
    for forged in [
        CacheSecret::new("guessed", Strategy::Encrypt)
            .keys(&demo_token)
            .seal(&plain),
        plain.clone(),
    ] {
        mc.set(&key, &forged, 300);
        let fresh = stack(&conf).await;
        let v = json_of(&fresh, &demo_token).await;
        assert_eq!(v["user"], "demo", "the planted identity must not be used");
    }
    assert_eq!(ks.validations_of(&demo_token), 2);
}

#[tokio::test]
async fn memcached_servers_without_a_strategy_are_not_used_and_tokens_stay_in_memory() {
    let ks = shared_async(Provider::Fernet).await;
    let mc = PrivateMemcached::start();
    // A join.conf as the Python novajoin's: memcached_servers, no strategy.
    let conf = base_conf(ks, &format!("memcached_servers = {}\n", mc.addr()));
    let svc = stack(&conf).await;
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1, "the memory cache works");
    assert!(
        mc.keys().is_empty(),
        "an unprotected entry went to memcached"
    );
}

#[tokio::test]
async fn memcached_down_degrades_to_memory_and_reports_it() {
    let ks = shared_async(Provider::Fernet).await;
    let port = support::server::free_port();
    let conf = base_conf(ks, &format!(
        "memcached_servers = 127.0.0.1:{port}\nmemcache_security_strategy = MAC\nmemcache_secret_key = k\n\
         memcache_pool_socket_timeout = 1\n"));
    let (svc, health) = try_stack(&conf).await.unwrap();
    let token = ks.issue_token("nova").await;
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(json_of(&svc, &token).await["user"], "nova");
    assert_eq!(ks.validations_of(&token), 1, "the memory cache still works");
    let states = health.check_all().await;
    assert!(
        states.iter().any(|(n, s)| n == "memcached-token-cache"
            && matches!(s, novajoin::health::HealthState::Degraded(m) if m.contains(&port.to_string()))),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_malformed_memcached_server_is_a_start_up_error_naming_it() {
    let ks = shared_async(Provider::Fernet).await;
    let conf = base_conf(
        ks,
        "memcached_servers = mc1:http\nmemcache_security_strategy = MAC\nmemcache_secret_key = k\n",
    );
    let err = try_stack(&conf).await.err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("memcached_servers") && msg.contains("mc1:http"),
        "{msg}"
    );
}

// ---- service tokens, configuration ----

#[tokio::test]
async fn service_token_roles_are_checked() {
    let ks = shared_async(Provider::Fernet).await;
    let svc = stack(&base_conf(ks, "")).await;
    let user = ks.issue_token("demo").await;
    let with_service = ks.issue_token("novajoin").await;
    let (s, _, b) = send(
        &svc,
        req(Some(&user), &[("x-service-token", with_service.as_str())]),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["user"], "demo");
    assert_eq!(v["x_service_roles"], "service");
    assert_eq!(v["service_roles"], json!(["service"]));
    // A service token without the service role: refused (roles required by default).
    let no_role = ks.issue_token("demo").await;
    let (s, h, b) = send(
        &svc,
        req(Some(&user), &[("x-service-token", no_role.as_str())]),
    )
    .await;
    assert_401(ks, s, &h, &b);
    // ... and accepted when not required.
    let lax = stack(&base_conf(ks, "service_token_roles_required = false\n")).await;
    let (s, _, b) = send(
        &lax,
        req(Some(&user), &[("x-service-token", no_role.as_str())]),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn configuration_mistakes_are_named() {
    let ks = shared(Provider::Fernet);
    let cases = [
        (
            "redis_url = redis://127.0.0.1:6379\n",
            "memcache_security_strategy",
        ),
        ("memcache_security_strategy = MAC\n", "memcache_secret_key"),
        ("memcache_security_strategy = AES\n", "not one of"),
        (
            "jws_public_key_repository = /nonexistent/keys\n",
            "jws_public_key_repository",
        ),
        ("interface = private\n", "interface"),
    ];
    for (extra, expect) in cases {
        let e = try_stack(&base_conf(ks, extra))
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains(expect), "{extra}: {e}");
    }
    let e = try_stack("[keystone_authtoken]\nauth_url = http://127.0.0.1:1/v3\n")
        .await
        .err()
        .unwrap();
    assert!(e.contains("auth_type"), "{e}");
    // Secrets never appear in errors.
    let e = try_stack(&base_conf(
        ks,
        "redis_url = redis://:hunter2@127.0.0.1:6379\n",
    ))
    .await
    .err()
    .unwrap();
    assert!(!e.contains("hunter2"), "{e}");
}

// ---- secrets stay out of logs ----

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_token_or_password_in_logs_at_trace_level() {
    let ks = shared(Provider::Jws);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tokens, password) = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let svc = stack(&base_conf(ks, "")).await;
            let good = ks.issue_token("nova").await;
            let revoked = ks.issue_token("demo").await;
            ks.revoke(&revoked).await;
            let parts: Vec<&str> = good.split('.').collect();
            let forged = format!("{}.{}.{}", parts[0], parts[1], "AAAA");
            assert_eq!(json_of(&svc, &good).await["user"], "nova");
            for t in [&revoked, &forged] {
                assert_eq!(send(&svc, req(Some(t), &[])).await.0, 401);
            }
            (
                vec![good, revoked, forged],
                ks.user("novajoin").password.clone(),
            )
        })
    });
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        text.contains("keystone validated a token"),
        "trace logs were captured"
    );
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "a token appears in the logs");
    }
    // Not even the signature part of the valid JWS.
    assert!(!text.contains(tokens[0].rsplit('.').next().unwrap()));
    assert!(
        !text.contains(&password),
        "the service password appears in the logs"
    );
}
