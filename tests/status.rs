//! `novajoin-status upgrade check` against real parts: the real keystone,
//! RabbitMQ, Redis and an MIT KDC (tests/support), and the IPA double. The
//! binary is run under its `novajoin-status` name (a symlink, as the
//! packages install it) with `--json`; every test asserts the exit status
//! and the result of the check that names the broken part.
//!
//! "IPA privileges" reads 389-ds's effective rights (`host_show --all
//! --rights`), which the double reports, without `w` on hosts a rule denies
//! `host_mod` on; see src/status/ipa.rs for why nothing else proves the
//! write privilege without writing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use lapin::options::ExchangeDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::ExchangeKind;
use novajoin::config::ConfigFiles;
use novajoin::notify::topology::Topology;
use novajoin::notify::ListenerSettings;
use serde_json::Value;
use support::ipa::IpaDouble;
use support::keystone::{Keystone, Provider};
use support::rabbit::RabbitNames;
use support::redis::RedisNamespace;

const POLICY: &str = "\"join:create\": \"rule:compute_service_user\"\n";

/// One test's parts and files.
struct Env {
    ipa: IpaDouble,
    names: RabbitNames,
    redis: RedisNamespace,
    keystone: &'static Keystone,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(label: &str) -> Env {
        let keystone = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
            .await
            .unwrap();
        let env = Env {
            ipa: support::ipa::start().await,
            names: RabbitNames::new(label),
            redis: RedisNamespace::new(label),
            keystone,
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("pipeline.toml"), support::server::repo_pipeline()).unwrap();
        std::fs::write(env.path("policy.yaml"), POLICY).unwrap();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A join.conf of a working deployment.
    fn conf(&self) -> String {
        let ks = self.keystone;
        let novajoin = ks.user("novajoin");
        let nova = ks.user("nova");
        format!(
            "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = 9090\napi_paste_config = {pipeline}\n\
             url = {ipa_url}\ndomain = {domain}\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
             notifications_topic = {topic}\ncontrol_exchange = {control}\n\n\
             [notify]\npublisher_exchanges = {nova_exchange}\n\n\
             [ipa]\nauth_method = password\nusername = {admin}\npassword = {password}\nserver = {fqdn}\n\
             realm = {realm}\ntimeout = 10\n\n\
             [oslo_policy]\npolicy_file = {policy}\n\n\
             [keystone_authtoken]\nauth_type = password\nauth_url = {auth_url}\nusername = novajoin\n\
             password = {nj_password}\nuser_domain_name = Default\nproject_name = service\n\
             project_domain_name = Default\nwww_authenticate_uri = {public}\n\n\
             [service_credentials]\nauth_type = password\nauth_url = {auth_url}\nusername = nova\n\
             password = {nova_password}\nproject_name = service\nuser_domain_name = Default\n\
             project_domain_name = Default\n\n\
             [cache]\nbackend = redis\nredis_url = {redis}\nsecret_key = status-test-secret-0123456789abcdef0123\n\
             key_prefix = {prefix}\n",
            pipeline = self.path("pipeline.toml").display(),
            ipa_url = self.ipa.json_url(),
            domain = self.ipa.domain(),
            topic = self.names.topic,
            control = self.names.control_exchange,
            nova_exchange = self.names.nova_exchange,
            admin = support::ipa::ADMIN,
            password = support::ipa::ADMIN_PASSWORD,
            fqdn = self.ipa.fqdn(),
            realm = self.ipa.realm(),
            policy = self.path("policy.yaml").display(),
            auth_url = ks.auth_url(),
            nj_password = novajoin.password,
            public = ks.public_url(),
            nova_password = nova.password,
            redis = self.redis.url,
            prefix = self.redis.prefix,
        )
    }

    /// Declares what nova's notifier and a started listener leave on the
    /// broker: nova's exchange, and the listener's exchange, queue and
    /// bindings (the listener's own topology code).
    async fn declare_queue(&self, conf: &str) {
        let mut cfg = ConfigFiles::default();
        cfg.add_text(Path::new("join.conf"), conf).unwrap();
        let topology = Topology::new(&ListenerSettings::from_config(&cfg).unwrap());
        let conn = support::rabbit::connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            ShortString::from(self.names.nova_exchange.as_str()),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: false,
                ..topology.exchange_options()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        topology.declare(&conn, &ch).await.unwrap();
        let _ = conn.close(200, ShortString::from("declared")).await;
    }

    /// A good environment: queue declared, join.conf written.
    async fn good(label: &str) -> (Env, String) {
        let env = Env::start(label).await;
        let conf = env.conf();
        env.declare_queue(&conf).await;
        (env, conf)
    }

    /// Runs `novajoin-status upgrade check --json` with `conf`.
    fn run(&self, conf: &str, extra: &[&str], envs: &[(String, String)]) -> Outcome {
        self.run_as(conf, extra, envs, None)
    }

    fn run_as(
        &self,
        conf: &str,
        extra: &[&str],
        envs: &[(String, String)],
        uid: Option<u32>,
    ) -> Outcome {
        let conf_path = self.path("join.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(status_binary());
        cmd.args(["upgrade", "check", "--json", "--config-file"])
            .arg(&conf_path)
            .args(extra)
            .envs(envs.iter().cloned());
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid);
        }
        let out = cmd.output().expect("run novajoin-status");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Outcome {
            code: out.status.code().expect("exit status"),
            json,
        }
    }
}

/// The binary under the name the packages install (a symlink).
fn status_binary() -> PathBuf {
    let real = PathBuf::from(env!("CARGO_BIN_EXE_novajoin"));
    let dir = std::env::temp_dir().join(format!("novajoin-status-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("novajoin-status");
    if !link.exists() {
        let _ = std::os::unix::fs::symlink(&real, &link);
    }
    link
}

struct Outcome {
    code: i32,
    json: Value,
}

impl Outcome {
    /// `(result, details)` of the check `name`.
    fn check(&self, name: &str) -> (i64, String) {
        let c = self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {}", self.json));
        (
            c["result"].as_i64().unwrap(),
            c["details"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Asserts that `name` failed (2) with `needle` in its details and that
    /// the exit status says failure.
    fn assert_failure(&self, name: &str, needle: &str) {
        let (result, details) = self.check(name);
        eprintln!("{name}: {details}");
        assert_eq!(result, 2, "{name}: {}", self.json);
        assert!(
            details.contains(needle),
            "{name}: {needle:?} not in {details:?}"
        );
        assert_eq!(self.code, 2, "{}", self.json);
    }

    /// Every check but `except` succeeded.
    fn assert_others_succeed(&self, except: &[&str]) {
        for c in self.json["checks"].as_array().unwrap() {
            let name = c["check"].as_str().unwrap();
            if except.contains(&name) {
                continue;
            }
            assert_eq!(c["result"], 0, "{name}: {}", self.json);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_environment_passes_every_check() {
    let (env, conf) = Env::good("status-good").await;
    let nova_conf = env.path("nova.conf");
    std::fs::write(
        &nova_conf,
        "[api]\nvendordata_providers = StaticJSON,DynamicJSON\n\
         vendordata_dynamic_targets = join@http://127.0.0.1:9090/v1/\n\n\
         [vendordata_dynamic_auth]\nauth_type = password\nauth_url = http://keystone/v3\n",
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        env.run(&conf, &["--nova-conf", nova_conf.to_str().unwrap()], &[])
    });
    assert_eq!(out.json["name"], "Upgrade Check Results");
    let names: Vec<&str> = out.json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Configuration",
            "Policy",
            "Keystone service credentials",
            "Keystone token validation",
            "IPA login",
            "IPA privileges",
            "Python novajoin hosts",
            "RabbitMQ notifications",
            "Shared cache",
            "nova vendordata"
        ]
    );
    out.assert_others_succeed(&[]);
    let (result, details) = out.check("IPA privileges");
    assert_eq!(result, 0, "{}", out.json);
    assert!(details.contains("effective rights"), "{details}");
    assert_eq!(out.code, 0, "{}", out.json);
    assert!(out
        .check("Keystone token validation")
        .1
        .contains("validated the [service_credentials] user's token"));
    assert!(out
        .check("RabbitMQ notifications")
        .1
        .contains(&env.names.queue()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_is_printed_without_json() {
    let (env, conf) = Env::good("status-table").await;
    std::fs::write(env.path("join.conf"), &conf).unwrap();
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .args(["status", "upgrade", "check", "--config-file"])
            .arg(env.path("join.conf"))
            .output()
            .unwrap()
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("+---"), "{text}");
    assert!(text.contains("| Upgrade Check Results "), "{text}");
    assert!(text.contains("| Check: IPA login "), "{text}");
    assert!(text.contains("| Result: Success "), "{text}");
    assert!(
        !text.contains(support::ipa::ADMIN_PASSWORD),
        "no secrets: {text}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_may_not_modify_hosts_fails_the_privilege_check() {
    let (env, conf) = Env::good("status-aci").await;
    env.ipa.deny("host_mod", None);
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    out.assert_failure("IPA privileges", "System: Modify Hosts");
    out.assert_others_succeed(&["IPA privileges"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ipa_password_fails_the_login_check() {
    let (env, conf) = Env::good("status-pw").await;
    let conf = conf.replace(
        &format!("password = {}\n", support::ipa::ADMIN_PASSWORD),
        "password = not-the-password\n",
    );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    out.assert_failure("IPA login", "check [ipa] username and password");
    assert!(
        !out.json.to_string().contains("not-the-password"),
        "no secrets"
    );
    out.assert_others_succeed(&["IPA login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_with_stale_keys_fails_the_login_check() {
    use support::kdc::{Kdc, KdcOptions};
    const NOVA: &str = "nova/compute.example.test";
    let (env, conf) = Env::good("status-keytab").await;
    let (kdc, keytab) = tokio::task::spawn_blocking(|| {
        let kdc = Kdc::start(KdcOptions::default());
        kdc.add_principal(NOVA, None);
        let keytab = kdc.keytab(NOVA);
        // ipa-getkeytab run again elsewhere: this keytab's keys are old.
        kdc.rotate_keys(NOVA);
        (kdc, keytab)
    })
    .await
    .unwrap();
    let ipa_section = format!(
        "[ipa]\nauth_method = kerberos\nprincipal = {}\nserver = {}\n",
        kdc.full(NOVA),
        env.ipa.fqdn()
    );
    let conf = conf
        .replace(
            &format!(
                "[ipa]\nauth_method = password\nusername = {}\npassword = {}\nserver = {}\n",
                support::ipa::ADMIN,
                support::ipa::ADMIN_PASSWORD,
                env.ipa.fqdn()
            ),
            &ipa_section,
        )
        .replace(
            "[DEFAULT]\n",
            &format!("[DEFAULT]\nkeytab = {}\n", keytab.display()),
        );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &kdc.client_env()));
    out.assert_failure("IPA login", &keytab.display().to_string());
    assert!(out.check("IPA login").1.contains(NOVA), "{}", out.json);
    out.assert_others_succeed(&["IPA login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_broker_fails_the_rabbitmq_check() {
    let (env, conf) = Env::good("status-broker").await;
    // Nothing listens there (the shared broker keeps running for others).
    let port = support::server::free_port();
    let conf = conf.replace(
        "rabbit://guest:guest@127.0.0.1:5672/",
        &format!("rabbit://guest:guest@127.0.0.1:{port}/"),
    );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    out.assert_failure("RabbitMQ notifications", &format!("127.0.0.1:{port}"));
    out.assert_others_succeed(&["RabbitMQ notifications"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_cache_check_asks_every_memcached_server() {
    let (env, conf) = Env::good("status-memcached").await;
    let mc = support::memcached::PrivateMemcached::start();
    let cache = |servers: &str| {
        let start = conf.find("[cache]").unwrap();
        format!(
            "{}[cache]\nbackend = memcached\nmemcache_servers = {servers}\n\
             secret_key = status-test-secret-0123456789abcdef0123\n",
            &conf[..start]
        )
    };
    let out = tokio::task::block_in_place(|| env.run(&cache(&mc.addr()), &[], &[]));
    let (result, details) = out.check("Shared cache");
    assert_eq!(result, 0, "{details}");
    assert!(details.contains(&mc.addr()), "{details}");
    // A second server where nothing listens: named, and a failure.
    let down = format!("127.0.0.1:{}", support::server::free_port());
    let out = tokio::task::block_in_place(|| {
        env.run(&cache(&format!("{}, {down}", mc.addr())), &[], &[])
    });
    out.assert_failure("Shared cache", &down);
    assert!(out.check("Shared cache").1.contains("1 of 2"));
    out.assert_others_succeed(&["Shared cache"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_cache_with_memcached_servers_configured_is_a_warning() {
    let (env, conf) = Env::good("status-memory").await;
    let start = conf.find("[cache]").unwrap();
    let conf = format!(
        "{}[cache]\nbackend = memory\n",
        &conf[..start].replace(
            "[keystone_authtoken]\n",
            "[keystone_authtoken]\nmemcached_servers = 127.0.0.1:11211\n"
        )
    );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    let (result, details) = out.check("Shared cache");
    assert_eq!(result, 1, "{details}");
    assert!(
        details.contains("memcached_servers") && details.contains("two different OTPs"),
        "{details}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_policy_file_fails_the_policy_check() {
    let (env, conf) = Env::good("status-policy").await;
    let policy = env.path("policy.yaml");
    support::kdc::set_mode(&policy, 0o000);
    // root reads any file: run the check as nobody, as a service user
    // that cannot read the policy would.
    let uid = unsafe { libc::geteuid() };
    let out = tokio::task::block_in_place(|| {
        if uid == 0 {
            support::kdc::set_mode(env.dir.path(), 0o755);
            support::kdc::set_mode(&env.path("pipeline.toml"), 0o644);
            env.run_as(&conf, &[], &[], Some(65534))
        } else {
            env.run(&conf, &[], &[])
        }
    });
    out.assert_failure("Policy", &policy.display().to_string());
    out.assert_others_succeed(&["Policy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_exist_fails_the_rabbitmq_check() {
    let (env, conf) = Env::good("status-queue").await;
    // The exchanges exist, but nothing declared or bound this topic's queue.
    let conf = conf.replace(
        &format!("notifications_topic = {}\n", env.names.topic),
        &format!("notifications_topic = {}-unbound\n", env.names.topic),
    );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    out.assert_failure(
        "RabbitMQ notifications",
        &format!("{}-unbound.info", env.names.topic),
    );
    out.assert_others_succeed(&["RabbitMQ notifications"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_of_the_python_novajoin_are_a_warning_with_a_count() {
    let (env, conf) = Env::good("status-legacy").await;
    for h in ["old1.example.test", "old2.example.test"] {
        env.ipa.seed_host_with(
            h,
            Some(novajoin::ownership::HOST_DESCRIPTION),
            None,
            true,
            None,
        );
    }
    // A host novajoin made and bound to its instance.
    let binding = novajoin::ownership::HostBinding::for_instance(Some("i-1"), Some("p-1"), None)
        .unwrap()
        .to_attribute();
    env.ipa.seed_host_with(
        "new.example.test",
        Some(novajoin::ownership::HOST_DESCRIPTION),
        Some(&binding),
        true,
        None,
    );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    let (result, details) = out.check("Python novajoin hosts");
    assert_eq!(result, 1, "{}", out.json);
    assert!(details.starts_with("2 host(s)"), "{details}");
    assert!(details.contains("old1.example.test"), "{details}");
    assert!(!details.contains("new.example.test"), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authtoken_user_without_the_service_role_cannot_validate_tokens() {
    let (env, conf) = Env::good("status-role").await;
    // demo is a member of project demo, not a service: keystone's
    // identity:validate_token refuses it other users' tokens.
    let demo = env.keystone.user("demo");
    let novajoin = env.keystone.user("novajoin");
    let conf = conf.replace(
        &format!(
            "username = novajoin\npassword = {}\nuser_domain_name = Default\nproject_name = service\n",
            novajoin.password
        ),
        &format!(
            "username = demo\npassword = {}\nuser_domain_name = Default\nproject_name = {}\n",
            demo.password, demo.project
        ),
    );
    assert!(conf.contains("username = demo"));
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    out.assert_failure("Keystone token validation", "HTTP 403");
    out.assert_others_succeed(&["Keystone token validation"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_ipa_replica_is_a_warning_naming_it() {
    let (env, conf) = Env::good("status-replicas").await;
    let replica = support::ipa::start_replica(&env.ipa).await;
    let conf = conf
        .replace(
            &format!("url = {}\n", env.ipa.json_url()),
            &format!("url = {}, {}\n", env.ipa.json_url(), replica.json_url()),
        )
        .replace(
            &format!("server = {}\n", env.ipa.fqdn()),
            &format!("server = {}, {}\n", env.ipa.fqdn(), replica.fqdn()),
        );
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    let (result, details) = out.check("IPA servers");
    assert_eq!(result, 0, "{details}");
    assert!(
        details.contains("ipa.example.test (join.conf)")
            && details.contains("ipa2.example.test (join.conf)"),
        "{details}"
    );
    out.assert_others_succeed(&[]);

    env.ipa.go_down().await;
    let out = tokio::task::block_in_place(|| env.run(&conf, &[], &[]));
    let (result, details) = out.check("IPA servers");
    eprintln!("IPA servers: {details}");
    assert_eq!(result, 1, "{details}");
    assert!(
        details.contains("ipa.example.test (join.conf): FAILED")
            && !details.contains("ipa2.example.test (join.conf): FAILED"),
        "{details}"
    );
    assert_eq!(out.code, 1, "{}", out.json);
    out.assert_others_succeed(&["IPA servers"]);
}
