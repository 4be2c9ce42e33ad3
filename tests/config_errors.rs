//! `novajoin server` refuses a broken join.conf or pipeline.toml at start,
//! naming the file, the line and the problem; an existing novajoin 1.1.1
//! join.conf (with its sections for other libraries) starts with warnings.

mod support;

use support::server::{repo_pipeline, start_failure, NovajoinServer, ServerFiles};

const GOOD_DEFAULT: &str = "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = 0\ndomain = example.test\napi_paste_config = {dir}/pipeline.toml\nurl = http://127.0.0.1:9/ipa/json\n[ipa]\nauth_method = password\nusername = admin\npassword = x\nrealm = EXAMPLE.TEST\n";

const NOAUTH: &str = "filters = [\"request_id\", \"sizelimit\"]\n[[route]]\npath = \"/v1\"\nfilters = [\"noauth\"]\napp = \"join\"\n";

fn fails_with(conf: &str, pipeline: &str, needles: &[&str]) {
    let (code, stderr) = start_failure(conf, pipeline);
    assert_ne!(code, 0, "must not start:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in:\n{stderr}");
    }
}

#[test]
fn ini_syntax_error_names_file_and_line() {
    fails_with(
        "[DEFAULT]\ndomain = example.test\nthis line is wrong\n",
        NOAUTH,
        &["join.conf:3:", "expected 'name = value'"],
    );
}

#[test]
fn option_before_any_section() {
    fails_with(
        "domain = example.test\n",
        NOAUTH,
        &["join.conf:1:", "[DEFAULT]"],
    );
}

#[test]
fn bad_integer_names_the_option() {
    let conf = GOOD_DEFAULT.replace("join_listen_port = 0", "join_listen_port = ninety");
    fails_with(
        &conf,
        NOAUTH,
        &["join.conf:3:", "join_listen_port", "not a whole number"],
    );
}

#[test]
fn port_out_of_range() {
    let conf = GOOD_DEFAULT.replace("join_listen_port = 0", "join_listen_port = 70000");
    fails_with(
        &conf,
        NOAUTH,
        &["join.conf:3:", "join_listen_port", "between 0 and 65535"],
    );
}

#[test]
fn bad_boolean_names_the_option() {
    let conf = format!("{GOOD_DEFAULT}[DEFAULT]\nproject_subdomain = perhaps\n");
    fails_with(
        &conf,
        NOAUTH,
        &["join.conf:13:", "project_subdomain", "not a boolean"],
    );
}

#[test]
fn bad_choice_lists_the_choices() {
    let conf = format!("{GOOD_DEFAULT}[DEFAULT]\nauth_strategy = trust-me\n");
    fails_with(
        &conf,
        NOAUTH,
        &["join.conf:13:", "auth_strategy", "keystone, noauth"],
    );
}

#[test]
fn unknown_filter_names_the_pipeline_line() {
    let p = NOAUTH.replace("\"noauth\"", "\"noauth\", \"gzip\"");
    fails_with(
        GOOD_DEFAULT,
        &p,
        &["pipeline.toml:4:", "unknown filter 'gzip'"],
    );
}

#[test]
fn impossible_order_says_what_to_put_first() {
    let p = "filters = [\"sizelimit\"]\n[[route]]\npath = \"/v1\"\nfilters = [\"keystonecontext\", \"authtoken\"]\napp = \"join\"\n";
    fails_with(
        GOOD_DEFAULT,
        p,
        &["pipeline.toml:4:", "'keystonecontext' needs authtoken"],
    );
}

#[test]
fn app_without_a_body_limit_is_refused() {
    let p = "[[route]]\npath = \"/v1\"\nfilters = [\"noauth\"]\napp = \"join\"\n";
    fails_with(GOOD_DEFAULT, p, &["pipeline.toml:4:", "needs sizelimit"]);
}

#[test]
fn unknown_filter_option_names_its_line() {
    let p = format!("{NOAUTH}\n[filter.sizelimit]\nmax_body = 10\n");
    fails_with(
        GOOD_DEFAULT,
        &p,
        &[
            "pipeline.toml:8:",
            "unknown option 'max_body' for filter 'sizelimit'",
        ],
    );
}

#[test]
fn filter_option_of_the_wrong_type() {
    let p = format!("{NOAUTH}\n[filter.sizelimit]\nmax_request_body_size = \"big\"\n");
    fails_with(
        GOOD_DEFAULT,
        &p,
        &["pipeline.toml:8:", "must be a whole number"],
    );
}

#[test]
fn broken_toml_names_the_line() {
    fails_with(
        GOOD_DEFAULT,
        "filters = [\"request_id\"\n[[route]]\n",
        &["pipeline.toml:"],
    );
}

#[test]
fn missing_pipeline_file_says_which_option_to_set() {
    let conf = GOOD_DEFAULT.replace("{dir}/pipeline.toml", "/nonexistent/pipeline.toml");
    fails_with(
        &conf,
        NOAUTH,
        &["/nonexistent/pipeline.toml", "api_paste_config"],
    );
}

#[test]
fn unknown_domain_is_a_start_up_error() {
    let conf = GOOD_DEFAULT.replace("domain = example.test\n", "").replace(
        "[ipa]\n",
        "[ipa]\ndefault_conf = /nonexistent/default.conf\n",
    );
    fails_with(&conf, NOAUTH, &["[DEFAULT] domain is not set"]);
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    let conf = GOOD_DEFAULT
        .replace("password = x", "password = hunter2-secret")
        .replace("join_listen_port = 0", "join_listen_port = x");
    let (_, stderr) = start_failure(&conf, NOAUTH);
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

/// A join.conf as novajoin 1.1.1 deployments have it: keytab, paste ini,
/// oslo.log and oslo.messaging options, sections for other libraries.
/// Only an [ipa] password login is added (Kerberos has its own tests),
/// with a CA bundle this machine has.
const NOVAJOIN_111_CONF: &str = "\
[DEFAULT]
join_listen = 127.0.0.1
join_listen_port = {port}
domain = example.test
debug = True
keytab = /etc/novajoin/krb5.keytab
url = https://ipa.example.test/ipa/json
api_paste_config = {dir}/join-api-paste.ini
log_file = /var/log/novajoin/novajoin-server.log
transport_url = rabbit://guest:guest@127.0.0.1:5672/
connect_retries = 2
project_subdomain = False
normalize_project = True
notifications_topic = novajoin_notifications
notification_format = unversioned

[service_credentials]
auth_type = password
auth_url = http://127.0.0.1:5000/v3
password = service-secret
username = nova
project_name = service
user_domain_id = default
project_domain_name = Default

[oslo_concurrency]
lock_path = /var/lib/novajoin/tmp

[oslo_messaging_notifications]
driver = messagingv2

[ipa]
auth_method = password
username = admin
password = Secret123
realm = EXAMPLE.TEST
ca_file = /etc/ssl/certs/ca-certificates.crt

[tenant1]
allowed_classes = web,db
";

#[test]
fn a_novajoin_1_1_1_join_conf_starts_with_warnings_only() {
    // The pipeline file sits where the old paste file was named.
    let server = NovajoinServer::start(ServerFiles {
        join_conf: NOVAJOIN_111_CONF.to_string(),
        pipeline: repo_pipeline().replace(
            "\"authtoken\", \"keystonecontext\", \"policy\", \"cache\"",
            "\"noauth\"",
        ),
        env: vec![],
    });
    let logs = server.logs();
    assert!(
        logs.contains("join-api-paste.ini"),
        "the paste path is mapped, with a warning:\n{logs}"
    );
    assert!(
        logs.contains("[oslo_concurrency] is not used by novajoin"),
        "{logs}"
    );
    assert!(!logs.contains("ERROR"), "{logs}");
    assert!(
        !logs.contains("service-secret") && !logs.contains("Secret123"),
        "{logs}"
    );
}
