//! authtoken through the real `novajoin server` binary: nova's request with
//! a real keystone token goes through authtoken and keystonecontext to the
//! join handler (IPA double); two server processes share the Redis cache.

mod support;

use serde_json::{json, Value};
use support::ipa::IpaDouble;
use support::keystone::{Keystone, Provider};
use support::server::{NovajoinServer, ServerFiles};

const PIPELINE: &str = r#"
filters = ["request_id", "sizelimit"]
[[route]]
path = "/v1"
filters = ["authtoken", "keystonecontext"]
app = "join"
"#;

const BODY_401: &str = r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;

fn join_conf(ks: &Keystone, ipa: &IpaDouble, extra_authtoken: &str) -> String {
    let ipa_conf = support::ipa::join_conf(ipa);
    // join_conf() starts with [DEFAULT]; add ours there.
    let ipa_conf = ipa_conf.replacen(
        "[DEFAULT]\n",
        "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {port}\n",
        1,
    );
    format!(
        "{ipa_conf}\n[keystone_authtoken]\nauth_type = password\nauth_url = {}\nusername = novajoin\npassword = {}\n\
         user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n\
         www_authenticate_uri = {}\nhttp_request_max_retries = 1\n{extra_authtoken}",
        ks.auth_url(),
        ks.user("novajoin").password,
        ks.public_url()
    )
}

async fn start_server(conf: String) -> NovajoinServer {
    tokio::task::spawn_blocking(move || {
        NovajoinServer::start(ServerFiles {
            join_conf: conf,
            pipeline: PIPELINE.into(),
            env: vec![],
        })
    })
    .await
    .unwrap()
}

/// The body nova sends for an instance that asks for enrollment.
fn nova_body(hostname: &str) -> String {
    support::vendordata::nova_body_with(
        hostname,
        &support::vendordata::new_instance_id(),
        Some(""),
        None,
        support::vendordata::enroll(),
    )
}

async fn post(
    server: &NovajoinServer,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: String,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/", server.base))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body);
    if let Some(t) = token {
        r = r.header("x-auth-token", t);
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_enrolls_with_a_nova_token_and_refuses_others() {
    let ks = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
        .await
        .unwrap();
    let ipa = support::ipa::start().await;
    let server = start_server(join_conf(ks, &ipa, "")).await;
    let token = ks.issue_token("nova").await;

    let (s, _, b) = post(&server, Some(&token), &[], nova_body("vm-auth-1")).await;
    assert_eq!(s, 200, "{b}\n{}", server.logs());
    let v: Value = serde_json::from_str(&b).unwrap();
    assert!(
        v["hostname"].as_str().unwrap().starts_with("vm-auth-1."),
        "{v}"
    );
    assert!(v["ipaotp"].as_str().is_some(), "{v}");
    // A second instance with the same token: no new keystone call.
    let (s, _, _) = post(&server, Some(&token), &[], nova_body("vm-auth-2")).await;
    assert_eq!(s, 200);
    assert_eq!(ks.validations_of(&token), 1);

    let www = format!("Keystone uri=\"{}\"", ks.public_url());
    for (tok, extra) in [
        (Some("garbage-token"), vec![]),
        (
            None,
            vec![
                ("x-roles", "admin"),
                ("x-user-name", "nova"),
                ("x-identity-status", "Confirmed"),
            ],
        ),
    ] {
        let (s, h, b) = post(&server, tok, &extra, nova_body("vm-refused")).await;
        assert_eq!(s, 401, "{b}");
        assert_eq!(b, BODY_401);
        assert_eq!(h["www-authenticate"], www.as_str());
    }
    // Refused requests never reached IPA.
    assert!(
        server.logs().contains("rejecting request"),
        "{}",
        server.logs()
    );
    // No token text in the server's trace-level logs.
    assert!(!server.logs().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_the_redis_token_cache() {
    let ks = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
        .await
        .unwrap();
    let ipa = support::ipa::start().await;
    let prefix = format!("novajoin-e2e-{}:", uuid::Uuid::new_v4());
    let redis = format!(
        "redis_url = redis://127.0.0.1:6379/0\nredis_key_prefix = {prefix}\n\
         memcache_security_strategy = ENCRYPT\nmemcache_secret_key = e2e-secret\n"
    );
    let a = start_server(join_conf(ks, &ipa, &redis)).await;
    let b = start_server(join_conf(ks, &ipa, &redis)).await;
    let token = ks.issue_token("nova").await;
    let (s, _, body) = post(&a, Some(&token), &[], nova_body("vm-shared-a")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ks.validations_of(&token), 1);
    let (s, _, body) = post(&b, Some(&token), &[], nova_body("vm-shared-b")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        ks.validations_of(&token),
        1,
        "server B used server A's Redis entry"
    );

    // An entry planted without the secret is refused: B asks keystone.
    let demo = ks.issue_token("demo").await;
    let name = novajoin::keystone::cache_crypt::CacheSecret::new(
        "e2e-secret",
        novajoin::keystone::cache_crypt::Strategy::Encrypt,
    )
    .keys(&demo)
    .name;
    let mut c = redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let planted = json!({"v": 1, "cache_until": chrono::Utc::now().timestamp() + 300,
        "token": {"user": {"id": "x", "name": "nova"}, "expires_at": "2099-01-01T00:00:00Z", "roles": [{"name": "admin"}]}});
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}tokens/{name}"))
        .arg(planted.to_string())
        .arg("EX")
        .arg(300)
        .query_async(&mut c)
        .await
        .unwrap();
    let (s, _, _) = post(&b, Some(&demo), &[], nova_body("vm-planted")).await;
    assert_eq!(s, 200);
    assert_eq!(
        ks.validations_of(&demo),
        1,
        "the planted entry was not trusted"
    );
    assert!(
        b.logs().contains("refused a Redis token-cache entry"),
        "{}",
        b.logs()
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    for k in keys {
        let _: () = redis::cmd("DEL").arg(k).query_async(&mut c).await.unwrap();
    }
}
