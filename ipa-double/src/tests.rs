//! Unit tests: the commands run in-process through IPA's executor
//! ([`IpaDouble::call`]), and over HTTP where the wire shape matters.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{DoubleOptions, IpaDouble, IpaErr};

async fn double() -> IpaDouble {
    IpaDouble::start(DoubleOptions::default())
        .await
        .expect("start the double")
}

impl IpaDouble {
    /// Runs one JSON-RPC command as `/ipa/session/json` would, without
    /// HTTP.
    fn call(&self, method: &str, args: Value, options: Value) -> Result<Value, IpaErr> {
        let mut st = self.state();
        crate::commands::execute(
            &mut st,
            &self.shared.cfg,
            method,
            args.as_array().expect("args list"),
            options.as_object().expect("options dict"),
        )
    }
}

/// One HTTP/1.1 request on a fresh connection: status, headers, body.
async fn http(
    ipa: &IpaDouble,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(ipa.addr())
        .await
        .expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        ipa.addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    let raw = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_string(), body.to_string())
}

/// Logs in as admin; returns the `ipa_session` cookie.
async fn login(ipa: &IpaDouble) -> String {
    let referer = ipa.referer();
    let (status, head, _) = http(
        ipa,
        "/ipa/session/login_password",
        &[
            ("Referer", &referer),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "user=admin&password=Secret123",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    head.lines()
        .find_map(|l| {
            l.to_lowercase()
                .starts_with("set-cookie:")
                .then(|| l.to_string())
        })
        .and_then(|l| l.split_once("ipa_session=").map(|(_, c)| c.to_string()))
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("session cookie")
}

/// A JSON-RPC call over HTTP; returns the whole answer.
async fn rpc(ipa: &IpaDouble, cookie: &str, method: &str, args: Value, options: Value) -> Value {
    let referer = ipa.referer();
    let cookie = format!("ipa_session={cookie}");
    let body = json!({"method": method, "params": [args, options], "id": 0}).to_string();
    let (status, _, body) = http(
        ipa,
        "/ipa/session/json",
        &[
            ("Referer", &referer),
            ("Cookie", &cookie),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON answer")
}

const V: &str = "2.254";

fn fqdns(found: &Value) -> Vec<String> {
    found["result"]
        .as_array()
        .expect("result list")
        .iter()
        .map(|e| e["fqdn"][0].as_str().expect("fqdn").to_string())
        .collect()
}

fn find(ipa: &IpaDouble, options: Value) -> Vec<String> {
    let mut o = options;
    o["version"] = json!(V);
    fqdns(&ipa.call("host_find", json!([]), o).expect("host_find"))
}

fn add_host(ipa: &IpaDouble, fqdn: &str, options: Value) {
    let mut o = options;
    o["version"] = json!(V);
    o["force"] = json!(true);
    ipa.call("host_add", json!([fqdn]), o).expect("host_add");
}

// ---- host_find attribute options ----

#[tokio::test]
async fn host_find_filters_on_each_attribute_option_by_equality() {
    let ipa = double().await;
    add_host(
        &ipa,
        "vm1.example.test",
        json!({"nshardwareplatform": "OpenStack-Binding-A", "l": "Lyon",
               "nshostlocation": "rack 1", "nsosversion": "9.4", "description": "web"}),
    );
    add_host(
        &ipa,
        "vm2.example.test",
        json!({"nshardwareplatform": "OpenStack-Binding-B", "l": "Paris",
               "nshostlocation": "rack 2", "nsosversion": "9.4"}),
    );
    add_host(&ipa, "vm3.example.test", json!({}));

    assert_eq!(
        find(&ipa, json!({"nshardwareplatform": "OpenStack-Binding-A"})),
        ["vm1.example.test"]
    );
    // caseIgnoreMatch: case and insignificant spaces do not count.
    assert_eq!(
        find(&ipa, json!({"nshardwareplatform": "openstack-binding-b"})),
        ["vm2.example.test"]
    );
    assert_eq!(
        find(&ipa, json!({"nshostlocation": " RACK   1 "})),
        ["vm1.example.test"]
    );
    // An equality filter, not a substring one.
    assert!(find(&ipa, json!({"nshardwareplatform": "OpenStack"})).is_empty());
    assert_eq!(find(&ipa, json!({"l": "paris"})), ["vm2.example.test"]);
    assert_eq!(
        find(&ipa, json!({"nsosversion": "9.4"})),
        ["vm1.example.test", "vm2.example.test"]
    );
    assert_eq!(
        find(&ipa, json!({"description": "WEB"})),
        ["vm1.example.test"]
    );
    // Several options: every filter must match.
    assert_eq!(
        find(&ipa, json!({"nsosversion": "9.4", "l": "Lyon"})),
        ["vm1.example.test"]
    );
    assert!(find(&ipa, json!({"nsosversion": "9.4", "l": "Rome"})).is_empty());
    assert_eq!(
        find(
            &ipa,
            json!({"fqdn": "VM3.example.test.", "pkey_only": true})
        ),
        ["vm3.example.test"]
    );
    // The criteria searches the host's search attributes as substrings.
    let found = ipa
        .call("host_find", json!(["binding-b"]), json!({"version": V}))
        .unwrap();
    assert_eq!(fqdns(&found), ["vm2.example.test"]);
    assert_eq!(found["summary"], "1 host matched");
    // A single-valued option takes one value.
    let e = ipa
        .call(
            "host_find",
            json!([]),
            json!({"version": V, "nshardwareplatform": ["a", "b"]}),
        )
        .unwrap_err();
    assert_eq!((e.code, e.name), (3009, "ValidationError"));
    // Options the table does not know are still refused.
    let e = ipa
        .call(
            "host_find",
            json!([]),
            json!({"version": V, "platform": "x"}),
        )
        .unwrap_err();
    assert_eq!((e.code, e.name), (3005, "OptionError"));
}

#[tokio::test]
async fn host_view_shows_platform_and_locality() {
    let ipa = double().await;
    add_host(
        &ipa,
        "vm1.example.test",
        json!({"nshardwareplatform": "OpenStack-Binding-A", "l": "Lyon"}),
    );
    let h = ipa.host("vm1.example.test").unwrap();
    assert_eq!(h.platform.as_deref(), Some("OpenStack-Binding-A"));
    assert_eq!(h.locality.as_deref(), Some("Lyon"));
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "nshardwareplatform": "OpenStack-Binding-B", "l": null}),
    )
    .unwrap();
    let h = ipa.host("vm1.example.test").unwrap();
    assert_eq!(h.platform.as_deref(), Some("OpenStack-Binding-B"));
    assert_eq!(h.locality, None);
}

// ---- seed_host_with ----

#[tokio::test]
async fn seed_host_with_makes_hosts_as_older_tools_did() {
    let ipa = double().await;
    // The Python novajoin: a description, no platform, an OTP.
    ipa.seed_host_with(
        "py.example.test",
        Some("IPA host for OpenStack"),
        None,
        false,
        Some("otp-1"),
    );
    let h = ipa.host("py.example.test").unwrap();
    assert_eq!(h.description.as_deref(), Some("IPA host for OpenStack"));
    assert_eq!(h.platform, None);
    assert_eq!(h.otp.as_deref(), Some("otp-1"));
    assert!(h.has_password && !h.enrolled);
    assert_eq!(h.krbprincipalname, None);
    assert_eq!(h.managed_by, ["py.example.test"]);
    assert!(find(&ipa, json!({"nshardwareplatform": "OpenStack-Binding-A"})).is_empty());
    ipa.ipa_join("py.example.test", "otp-1").unwrap();

    // Enrolled: a principal and a keytab, no OTP (ignored when given).
    ipa.seed_host_with(
        "Done.Example.Test.",
        None,
        Some("OpenStack-Binding-A"),
        true,
        Some("ignored"),
    );
    let h = ipa.host("done.example.test").unwrap();
    assert!(h.enrolled && !h.has_password && h.otp.is_none());
    assert_eq!(
        h.krbprincipalname.as_deref(),
        Some("host/done.example.test@EXAMPLE.TEST")
    );
    assert_eq!(
        find(&ipa, json!({"nshardwareplatform": "OpenStack-Binding-A"})),
        ["done.example.test"]
    );

    // Neither enrolled nor an OTP: the principal exists, as host_add makes it.
    ipa.seed_host_with("bare.example.test", None, None, false, None);
    let h = ipa.host("bare.example.test").unwrap();
    assert!(!h.enrolled && !h.has_password);
    assert_eq!(
        h.krbprincipalname.as_deref(),
        Some("host/bare.example.test@EXAMPLE.TEST")
    );

    // An existing host is left as it is.
    ipa.seed_host_with(
        "py.example.test",
        Some("other"),
        Some("x"),
        false,
        Some("otp-2"),
    );
    let h = ipa.host("py.example.test").unwrap();
    assert_eq!(h.description.as_deref(), Some("IPA host for OpenStack"));
    assert!(h.enrolled);
}

// ---- retrieve_keytab ----

#[tokio::test]
async fn retrieve_keytab_follows_the_default_acis() {
    let ipa = double().await;
    ipa.seed_host_with("a.example.test", None, None, true, None);
    ipa.seed_host_with("b.example.test", None, None, true, None);
    ipa.seed_host_with("new.example.test", None, None, false, Some("otp"));
    ipa.seed_service("HTTP/a.example.test");

    // Itself: only once enrolled (and only if it exists).
    assert_eq!(
        ipa.retrieve_keytab("a.example.test", "host/a.example.test"),
        Ok(())
    );
    assert_eq!(
        ipa.retrieve_keytab("a.example.test.", "host/A.example.test@EXAMPLE.TEST"),
        Ok(())
    );
    assert!(ipa
        .retrieve_keytab("new.example.test", "host/new.example.test")
        .is_err());
    assert!(ipa
        .retrieve_keytab("gone.example.test", "host/gone.example.test")
        .is_err());

    // Another host: only when managing it.
    let e = ipa
        .retrieve_keytab("b.example.test", "host/a.example.test")
        .unwrap_err();
    assert!(e.contains("Insufficient access rights"), "{e}");
    // (No `host_add_managedby` in the double: set `managedby` directly.)
    ipa.state()
        .hosts
        .get_mut("new.example.test")
        .unwrap()
        .managedby
        .insert("b.example.test".into());
    assert_eq!(
        ipa.retrieve_keytab("b.example.test", "host/new.example.test"),
        Ok(())
    );
    assert!(ipa.host("new.example.test").unwrap().enrolled);

    // A service: only a managing, enrolled host; then it has keys.
    let e = ipa
        .retrieve_keytab("b.example.test", "HTTP/a.example.test")
        .unwrap_err();
    assert!(e.contains("Insufficient access rights"), "{e}");
    assert!(!ipa.service("HTTP/a.example.test").unwrap().has_keytab);
    assert_eq!(
        ipa.retrieve_keytab("a.example.test", "HTTP/a.example.test"),
        Ok(())
    );
    assert!(ipa.service("HTTP/a.example.test").unwrap().has_keytab);
    let shown = ipa
        .call(
            "service_show",
            json!(["HTTP/a.example.test"]),
            json!({"version": V}),
        )
        .unwrap();
    assert_eq!(shown["result"]["has_keytab"], true);
    ipa.call(
        "service_add_host",
        json!(["HTTP/a.example.test"]),
        json!({"version": V, "host": ["b.example.test"]}),
    )
    .unwrap();
    assert_eq!(
        ipa.retrieve_keytab("b.example.test", "HTTP/a.example.test"),
        Ok(())
    );
    // A managing host that is not enrolled cannot authenticate.
    ipa.seed_host_with("c.example.test", None, None, false, Some("otp"));
    ipa.call(
        "service_add_host",
        json!(["HTTP/a.example.test"]),
        json!({"version": V, "host": ["c.example.test"]}),
    )
    .unwrap();
    assert!(ipa
        .retrieve_keytab("c.example.test", "HTTP/a.example.test")
        .is_err());
    // No such service, another realm.
    let e = ipa
        .retrieve_keytab("a.example.test", "nfs/a.example.test")
        .unwrap_err();
    assert!(e.contains("PrincipalName not found"), "{e}");
    assert!(ipa
        .retrieve_keytab("a.example.test", "HTTP/a.example.test@OTHER.TEST")
        .is_err());
}

// ---- access control ----

const HOST_DN: &str = "fqdn=vm1.example.test,cn=computers,cn=accounts,dc=example,dc=test";

#[tokio::test]
async fn a_denied_host_del_is_an_aci_error_and_deletes_nothing() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({}));
    add_host(&ipa, "vm2.example.test", json!({}));
    ipa.deny("host_del", Some("VM1.Example.Test."));

    let e = ipa
        .call(
            "host_del",
            json!(["vm1.example.test"]),
            json!({"version": V}),
        )
        .unwrap_err();
    let info = format!("Insufficient 'delete' privilege to delete the entry '{HOST_DN}'.");
    assert_eq!(e.code, 2100);
    assert_eq!(e.name, "ACIError");
    assert_eq!(e.message, format!("Insufficient access: {info}"));
    assert_eq!(e.data, json!({"info": info}));
    assert!(ipa.host("vm1.example.test").is_some());
    // `continue` does not skip an ACIError (it is no ExecutionError).
    let e = ipa
        .call(
            "host_del",
            json!([["vm1.example.test"]]),
            json!({"version": V, "continue": true}),
        )
        .unwrap_err();
    assert_eq!(e.name, "ACIError");
    // The object is matched case-insensitively, trailing dot ignored.
    let e = ipa
        .call(
            "host_del",
            json!(["vm1.example.test."]),
            json!({"version": V}),
        )
        .unwrap_err();
    assert_eq!(e.name, "ACIError");
    // NotFound comes before the rights.
    ipa.deny("host_del", Some("gone.example.test"));
    let e = ipa
        .call(
            "host_del",
            json!(["gone.example.test"]),
            json!({"version": V}),
        )
        .unwrap_err();
    assert_eq!(e.name, "NotFound");
    // Other objects are not concerned.
    ipa.call(
        "host_del",
        json!(["vm2.example.test"]),
        json!({"version": V}),
    )
    .unwrap();
    assert!(ipa.host("vm2.example.test").is_none());

    ipa.allow_all();
    ipa.call(
        "host_del",
        json!(["vm1.example.test"]),
        json!({"version": V}),
    )
    .unwrap();
    assert!(ipa.host("vm1.example.test").is_none());
}

#[tokio::test]
async fn denied_adds_and_mods_name_the_right_they_lack() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({"description": "old"}));
    ipa.deny("host_mod", None);
    ipa.deny("host_add", None);
    ipa.deny("service_add", Some("HTTP/vm1.example.test@EXAMPLE.TEST"));

    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "description": "new"}),
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "Insufficient access: Insufficient 'write' privilege to the 'description' \
             attribute of entry '{HOST_DN}'."
        )
    );
    assert_eq!(
        ipa.host("vm1.example.test").unwrap().description.as_deref(),
        Some("old")
    );
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "userpassword": "otp"}),
        )
        .unwrap_err();
    assert!(
        e.message.contains("'userpassword' attribute"),
        "{}",
        e.message
    );
    assert!(ipa.host("vm1.example.test").unwrap().otp.is_none());
    // EmptyModlist is found before LDAP is asked.
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "description": "old"}),
        )
        .unwrap_err();
    assert_eq!(e.name, "EmptyModlist");

    let e = ipa
        .call(
            "host_add",
            json!(["vm2.example.test"]),
            json!({"version": V, "force": true}),
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        "Insufficient access: Insufficient 'add' privilege to add the entry \
         'fqdn=vm2.example.test,cn=computers,cn=accounts,dc=example,dc=test'."
    );
    assert!(ipa.host("vm2.example.test").is_none());
    // DuplicateEntry is found first.
    let e = ipa
        .call(
            "host_add",
            json!(["vm1.example.test"]),
            json!({"version": V, "force": true}),
        )
        .unwrap_err();
    assert_eq!(e.name, "DuplicateEntry");

    // A service matches with or without its realm.
    let e = ipa
        .call(
            "service_add",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "force": true}),
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        "Insufficient access: Insufficient 'add' privilege to add the entry \
         'krbprincipalname=HTTP/vm1.example.test@EXAMPLE.TEST,cn=services,cn=accounts,dc=example,dc=test'."
    );
    assert!(ipa.service("HTTP/vm1.example.test").is_none());
    ipa.call(
        "service_add",
        json!(["nfs/vm1.example.test"]),
        json!({"version": V, "force": true}),
    )
    .unwrap();
}

#[tokio::test]
async fn denied_member_changes_are_reported_under_failed_as_ipa_does() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({}));
    add_host(&ipa, "vm2.example.test", json!({}));
    ipa.seed_service("HTTP/vm1.example.test");
    ipa.deny("service_add_host", Some("http/VM1.example.test"));
    ipa.deny("service_remove_host", None);

    let info = "Insufficient access: Insufficient 'write' privilege to the 'managedby' attribute \
                of entry 'krbprincipalname=HTTP/vm1.example.test@EXAMPLE.TEST,cn=services,\
                cn=accounts,dc=example,dc=test'.";
    let out = ipa
        .call(
            "service_add_host",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "host": ["vm2.example.test", "gone.example.test"]}),
        )
        .unwrap();
    assert_eq!(out["completed"], 0);
    assert_eq!(
        out["failed"],
        json!({"managedby": {"host": [["vm2.example.test", info], ["gone.example.test", "no such entry"]]}})
    );
    assert_eq!(
        ipa.service("HTTP/vm1.example.test").unwrap().managed_by,
        ["vm1.example.test"]
    );

    let out = ipa
        .call(
            "service_remove_host",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "host": ["vm1.example.test"]}),
        )
        .unwrap();
    assert_eq!(out["completed"], 0);
    assert_eq!(
        out["failed"],
        json!({"managedby": {"host": [["vm1.example.test", info]]}})
    );
    assert_eq!(
        ipa.service("HTTP/vm1.example.test").unwrap().managed_by,
        ["vm1.example.test"]
    );

    ipa.allow_all();
    let out = ipa
        .call(
            "service_add_host",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "host": ["vm2.example.test"]}),
        )
        .unwrap();
    assert_eq!(out["completed"], 1);
}

#[tokio::test]
async fn service_remove_host_of_a_non_member_fails_that_member() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({}));
    add_host(&ipa, "vm2.example.test", json!({}));
    ipa.seed_service("HTTP/vm1.example.test");
    let out = ipa
        .call(
            "service_remove_host",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "host": ["vm2.example.test"]}),
        )
        .unwrap();
    assert_eq!(out["completed"], 0);
    assert_eq!(
        out["failed"],
        json!({"managedby": {"host": [["vm2.example.test", "This entry is not a member"]]}})
    );
    assert_eq!(out["result"]["managedby_host"], json!(["vm1.example.test"]));
    // A member is removed.
    let out = ipa
        .call(
            "service_remove_host",
            json!(["HTTP/vm1.example.test"]),
            json!({"version": V, "host": "vm1.example.test"}),
        )
        .unwrap();
    assert_eq!(out["completed"], 1);
    assert_eq!(out["failed"], json!({"managedby": {"host": []}}));
    assert!(ipa
        .service("HTTP/vm1.example.test")
        .unwrap()
        .managed_by
        .is_empty());
}

#[tokio::test]
async fn unreadable_entries_are_not_found_and_left_out_of_searches() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({"nsosversion": "9"}));
    add_host(&ipa, "vm2.example.test", json!({"nsosversion": "9"}));
    ipa.deny("host_show", Some("vm1.example.test"));
    ipa.deny("host_find", Some("vm1.example.test"));
    let e = ipa
        .call(
            "host_show",
            json!(["vm1.example.test"]),
            json!({"version": V}),
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (4001, "vm1.example.test: host not found")
    );
    ipa.call(
        "host_show",
        json!(["vm2.example.test"]),
        json!({"version": V}),
    )
    .unwrap();
    assert_eq!(
        find(&ipa, json!({"nsosversion": "9"})),
        ["vm2.example.test"]
    );
}

#[tokio::test]
async fn denied_dns_changes_and_setup_objects() {
    let ipa = double().await;
    ipa.add_a_record("example.test", "www", "192.0.2.1");
    ipa.deny("dnsrecord_del", Some("example.test."));
    ipa.deny("dnsrecord_add", None);
    ipa.deny("role_add", None);
    let rdn = "idnsname=www,idnsname=example.test.,cn=dns,dc=example,dc=test";
    let e = ipa
        .call(
            "dnsrecord_del",
            json!(["example.test", "www"]),
            json!({"version": V, "del_all": true}),
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "Insufficient access: Insufficient 'delete' privilege to delete the entry '{rdn}'."
        )
    );
    let e = ipa
        .call(
            "dnsrecord_del",
            json!(["example.test", "www"]),
            json!({"version": V, "arecord": "192.0.2.1"}),
        )
        .unwrap_err();
    assert!(
        e.message
            .contains("'write' privilege to the 'arecord' attribute"),
        "{}",
        e.message
    );
    let e = ipa
        .call(
            "dnsrecord_add",
            json!(["example.test", "www"]),
            json!({"version": V, "arecord": "192.0.2.2"}),
        )
        .unwrap_err();
    assert!(
        e.message
            .contains("'write' privilege to the 'arecord' attribute"),
        "{}",
        e.message
    );
    let e = ipa
        .call(
            "dnsrecord_add",
            json!(["example.test", "new"]),
            json!({"version": V, "arecord": "192.0.2.2"}),
        )
        .unwrap_err();
    assert!(
        e.message
            .contains("'add' privilege to add the entry 'idnsname=new,"),
        "{}",
        e.message
    );
    let recs = ipa.dns_records("example.test").unwrap();
    assert_eq!(recs["www"].a, ["192.0.2.1"]);
    assert!(!recs.contains_key("new"));
    let e = ipa
        .call(
            "role_add",
            json!(["Nova Host Manager"]),
            json!({"version": V}),
        )
        .unwrap_err();
    assert_eq!(e.name, "ACIError");
    assert!(ipa.role("Nova Host Manager").is_none());
}

#[tokio::test]
async fn a_denied_batch_item_is_a_batch_item_error_on_the_wire() {
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({}));
    add_host(&ipa, "vm2.example.test", json!({}));
    ipa.deny("host_del/1", Some("vm1.example.test"));
    let cookie = login(&ipa).await;
    let out = rpc(
        &ipa,
        &cookie,
        "batch",
        json!([
            {"method": "host_del", "params": [["vm1.example.test"], {}]},
            {"method": "host_del", "params": [["vm2.example.test"], {}]},
            {"method": "host_show", "params": [["gone.example.test"], {}]},
        ]),
        json!({"version": V}),
    )
    .await;
    assert_eq!(out["error"], Value::Null);
    let results = out["result"]["results"].as_array().unwrap();
    let info = format!("Insufficient 'delete' privilege to delete the entry '{HOST_DN}'.");
    assert_eq!(
        results[0],
        json!({"error": format!("Insufficient access: {info}"), "error_code": 2100,
               "error_name": "ACIError", "error_kw": {"info": info}})
    );
    assert_eq!(results[1]["error"], Value::Null);
    assert_eq!(results[1]["value"], json!(["vm2.example.test"]));
    // The same shape as any other failed item.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&results[0]), keys(&results[2]));
    assert_eq!(results[2]["error_name"], "NotFound");
    assert!(ipa.host("vm1.example.test").is_some());
    assert!(ipa.host("vm2.example.test").is_none());

    // Outside a batch: the JSON-RPC error object.
    let out = rpc(
        &ipa,
        &cookie,
        "host_del",
        json!(["vm1.example.test"]),
        json!({"version": V}),
    )
    .await;
    assert_eq!(out["result"], Value::Null);
    assert_eq!(
        out["error"],
        json!({"code": 2100, "name": "ACIError",
               "message": format!("Insufficient access: {info}"), "data": {"info": info}})
    );
}

// ---- TXT records and dnsrecord_show ----

#[tokio::test]
async fn txt_values_are_stored_as_given_and_shown_by_dnsrecord_show() {
    let ipa = double().await;
    let text = "ip=192.0.2.7 host=vm1.example.test port=p-1";
    let v = json!({"version": V});
    let add = |value: &str| {
        ipa.call(
            "dnsrecord_add",
            json!(["example.test.", "_novajoin-fip-f1"]),
            json!({"version": V, "txtrecord": value}),
        )
    };
    add(text).expect("add");
    // The same value again changes nothing.
    let e = add(text).unwrap_err();
    assert_eq!((e.code, e.name), (4202, "EmptyModlist"));
    add("fip=f2").expect("a second value");
    let shown = ipa
        .call(
            "dnsrecord_show",
            json!(["example.test.", "_novajoin-fip-f1"]),
            v.clone(),
        )
        .expect("show");
    assert_eq!(shown["result"]["txtrecord"], json!([text, "fip=f2"]));
    assert_eq!(
        shown["result"]["dn"],
        "idnsname=_novajoin-fip-f1,idnsname=example.test.,cn=dns,dc=example,dc=test"
    );
    assert!(shown["result"].get("objectclass").is_none());
    assert_eq!(shown["summary"], Value::Null);
    let all = ipa
        .call(
            "dnsrecord_show",
            json!(["example.test", "_novajoin-fip-f1"]),
            json!({"version": V, "all": true}),
        )
        .expect("show --all");
    assert!(all["result"].get("objectclass").is_some());
    // Deleting one value keeps the others; a value that is not there is
    // AttrValueNotFound; the name goes with its last value.
    let del = |value: &str| {
        ipa.call(
            "dnsrecord_del",
            json!(["example.test.", "_novajoin-fip-f1"]),
            json!({"version": V, "txtrecord": value}),
        )
    };
    del(text).expect("del");
    let e = del(text).unwrap_err();
    assert_eq!(
        (e.code, e.name, e.message.as_str()),
        (
            4026,
            "AttrValueNotFound",
            "TXT record does not contain 'ip=192.0.2.7 host=vm1.example.test port=p-1'"
        )
    );
    assert_eq!(
        ipa.dns_records("example.test").unwrap()["_novajoin-fip-f1"].txt,
        ["fip=f2"]
    );
    del("fip=f2").expect("del the last value");
    let e = ipa
        .call(
            "dnsrecord_show",
            json!(["example.test.", "_novajoin-fip-f1"]),
            v.clone(),
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (4001, "_novajoin-fip-f1: DNS resource record not found")
    );
    let e = ipa
        .call("dnsrecord_show", json!(["other.test.", "x"]), v.clone())
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (4001, "other.test.: DNS zone not found")
    );
    let e = ipa
        .call("dnsrecord_show", json!(["example.test."]), v.clone())
        .unwrap_err();
    assert_eq!(e.name, "RequirementError");
}

#[tokio::test]
async fn dnsrecord_show_over_http_wraps_names_and_hides_unreadable_records() {
    let ipa = double().await;
    ipa.add_a_record("example.test", "www", "192.0.2.1");
    ipa.add_record("example.test", "www", "aaaarecord", "2001:db8::1");
    let cookie = login(&ipa).await;
    let out = rpc(
        &ipa,
        &cookie,
        "dnsrecord_show",
        json!(["example.test.", "www"]),
        json!({"version": V}),
    )
    .await;
    assert_eq!(out["error"], Value::Null, "{out}");
    assert_eq!(out["result"]["value"], json!({"__dns_name__": "www"}));
    assert_eq!(
        out["result"]["result"]["idnsname"],
        json!([{"__dns_name__": "www"}])
    );
    assert_eq!(out["result"]["result"]["arecord"], json!(["192.0.2.1"]));
    assert_eq!(
        out["result"]["result"]["aaaarecord"],
        json!(["2001:db8::1"])
    );
    ipa.deny("dnsrecord_show", Some("example.test."));
    let e = ipa
        .call(
            "dnsrecord_show",
            json!(["example.test.", "www"]),
            json!({"version": V}),
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (4001, "www: DNS resource record not found")
    );
}

// ---- host_mod --setattr/--addattr/--delattr ----

const PLATFORM_OLD: &str = "novajoin/1 instance=abc project=p otp-issued=1700000000";
const PLATFORM_NEW: &str = "novajoin/1 instance=abc project=p otp-issued=1700000600";

fn cas_options(old: &str, new: &str, otp: &str) -> Value {
    json!({"version": V,
           "delattr": [format!("nshardwareplatform={old}")],
           "addattr": [format!("nshardwareplatform={new}")],
           "userpassword": otp})
}

#[tokio::test]
async fn delattr_and_addattr_swap_a_value_with_the_otp_in_one_host_mod() {
    let ipa = double().await;
    add_host(
        &ipa,
        "vm1.example.test",
        json!({"nshardwareplatform": PLATFORM_OLD, "userpassword": "otp1"}),
    );
    let out = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            cas_options(PLATFORM_OLD, PLATFORM_NEW, "otp2"),
        )
        .expect("the old value is there");
    assert_eq!(out["result"]["nshardwareplatform"], json!([PLATFORM_NEW]));
    assert_eq!(out["result"]["has_password"], json!(true));
    let h = ipa.host("vm1.example.test").unwrap();
    assert_eq!(h.platform.as_deref(), Some(PLATFORM_NEW));
    assert_eq!(h.otp.as_deref(), Some("otp2"));

    // setattr replaces; whitespace around '=' does not count; the first
    // '=' splits.
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "setattr": ["description = a=b c"]}),
    )
    .unwrap();
    assert_eq!(
        ipa.host("vm1.example.test").unwrap().description.as_deref(),
        Some("a=b c")
    );
    // addattr + delattr of the same value: nothing to do.
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "addattr": [format!("nshardwareplatform={PLATFORM_NEW}")],
                   "delattr": [format!("nshardwareplatform={PLATFORM_NEW}")]}),
        )
        .unwrap_err();
    assert_eq!((e.code, e.name), (4202, "EmptyModlist"));
    // delattr of the only value removes the attribute.
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "delattr": "description=a=b c"}),
    )
    .unwrap();
    assert_eq!(ipa.host("vm1.example.test").unwrap().description, None);
    // userclass is multi-valued.
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "addattr": ["userclass=a", "userclass=b"]}),
    )
    .unwrap();
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "delattr": ["userclass=a"], "addattr": ["userclass=c"]}),
    )
    .unwrap();
    assert_eq!(ipa.host("vm1.example.test").unwrap().userclass, ["b", "c"]);
    // A denied write names the attribute.
    ipa.deny("host_mod", None);
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "addattr": ["nsosversion=9"]}),
        )
        .unwrap_err();
    assert!(
        e.message.contains("'nsosversion' attribute"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_stale_delattr_is_attr_value_not_found_and_changes_nothing() {
    let ipa = double().await;
    add_host(
        &ipa,
        "vm1.example.test",
        json!({"nshardwareplatform": PLATFORM_NEW, "userpassword": "otp1"}),
    );
    let before = ipa.host("vm1.example.test").unwrap();
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            cas_options(PLATFORM_OLD, "novajoin/1 other", "otp2"),
        )
        .unwrap_err();
    assert_eq!(e.code, 4026);
    assert_eq!(e.name, "AttrValueNotFound");
    assert_eq!(
        e.message,
        format!("nshardwareplatform does not contain '{PLATFORM_OLD}'")
    );
    assert_eq!(
        e.data,
        json!({"attr": "nshardwareplatform", "value": PLATFORM_OLD})
    );
    assert_eq!(ipa.host("vm1.example.test").unwrap(), before);
    assert_eq!(before.otp.as_deref(), Some("otp1"));
    // Exact comparison, as Python's list.remove: case counts.
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            cas_options(&PLATFORM_NEW.to_uppercase(), "x", "otp2"),
        )
        .unwrap_err();
    assert_eq!(e.code, 4026);
    assert_eq!(ipa.host("vm1.example.test").unwrap(), before);

    // On the wire.
    let cookie = login(&ipa).await;
    let answer = rpc(
        &ipa,
        &cookie,
        "host_mod",
        json!(["vm1.example.test"]),
        cas_options(PLATFORM_OLD, "x", "otp2"),
    )
    .await;
    assert_eq!(
        answer["error"],
        json!({"code": 4026, "name": "AttrValueNotFound",
               "message": format!("nshardwareplatform does not contain '{PLATFORM_OLD}'"),
               "data": {"attr": "nshardwareplatform", "value": PLATFORM_OLD}})
    );
    assert_eq!(ipa.host("vm1.example.test").unwrap(), before);
}

#[tokio::test]
async fn delattr_of_an_absent_attribute_and_two_values_are_refused() {
    let ipa = double().await;
    add_host(
        &ipa,
        "vm1.example.test",
        json!({"nshardwareplatform": PLATFORM_OLD}),
    );
    add_host(&ipa, "vm2.example.test", json!({}));
    let before = ipa.host("vm2.example.test").unwrap();
    // An attribute also added is not "no such attribute": the value is
    // looked for among the added ones.
    let e = ipa
        .call(
            "host_mod",
            json!(["vm2.example.test"]),
            cas_options(PLATFORM_OLD, PLATFORM_NEW, "otp2"),
        )
        .unwrap_err();
    assert_eq!((e.code, e.name), (4026, "AttrValueNotFound"));
    let e = ipa
        .call(
            "host_mod",
            json!(["vm2.example.test"]),
            json!({"version": V, "delattr": [format!("nshardwareplatform={PLATFORM_OLD}")],
                   "userpassword": "otp2"}),
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.name, e.message.as_str()),
        (
            3009,
            "ValidationError",
            "invalid 'nshardwareplatform': No such attribute on this entry"
        )
    );
    assert_eq!(
        e.data,
        json!({"name": "nshardwareplatform", "error": "No such attribute on this entry"})
    );
    assert_eq!(ipa.host("vm2.example.test").unwrap(), before);

    // addattr without delattr leaves two values on a single-valued one.
    let before = ipa.host("vm1.example.test").unwrap();
    let e = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "addattr": [format!("nshardwareplatform={PLATFORM_NEW}")]}),
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.name, e.message.as_str()),
        (
            4207,
            "OnlyOneValueAllowed",
            "nshardwareplatform: Only one value allowed."
        )
    );
    assert_eq!(e.data, json!({"attr": "nshardwareplatform"}));
    assert_eq!(ipa.host("vm1.example.test").unwrap(), before);

    // The option's format.
    for (bad, error) in [
        ("nshardwareplatform", "Invalid format. Should be name=value"),
        (" l=x", "Leading and trailing spaces are not allowed"),
    ] {
        let e = ipa
            .call(
                "host_mod",
                json!(["vm1.example.test"]),
                json!({"version": V, "addattr": [bad]}),
            )
            .unwrap_err();
        assert_eq!((e.code, e.data["name"].as_str()), (3009, Some("addattr")));
        assert_eq!(e.data["error"], error);
    }
    // setattr is general; with an empty value it removes.
    ipa.call(
        "host_mod",
        json!(["vm1.example.test"]),
        json!({"version": V, "setattr": ["nshardwareplatform=", "l=Lyon"]}),
    )
    .unwrap();
    let h = ipa.host("vm1.example.test").unwrap();
    assert_eq!((h.platform, h.locality.as_deref()), (None, Some("Lyon")));
    // host_add takes setattr/addattr too.
    add_host(
        &ipa,
        "vm3.example.test",
        json!({"setattr": ["nshardwareplatform=p=1"], "addattr": ["userclass=x"]}),
    );
    let h = ipa.host("vm3.example.test").unwrap();
    assert_eq!(
        (h.platform.as_deref(), h.userclass),
        (Some("p=1"), vec!["x".to_string()])
    );
}

// ---- krblastpwdchange ----

#[test]
fn generalized_time_is_utc_to_the_second() {
    use crate::state::generalized_time;
    use std::time::{Duration, UNIX_EPOCH};
    assert_eq!(generalized_time(UNIX_EPOCH), "19700101000000Z");
    assert_eq!(
        generalized_time(UNIX_EPOCH + Duration::from_millis(1_700_000_000_999)),
        "20231114221320Z"
    );
    assert_eq!(
        generalized_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "20000229000000Z"
    );
    assert_eq!(
        generalized_time(UNIX_EPOCH - Duration::from_secs(1)),
        "19691231235959Z"
    );
}

#[tokio::test]
async fn krblastpwdchange_is_returned_with_all_once_the_host_has_keys() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let ipa = double().await;
    add_host(&ipa, "vm1.example.test", json!({"userpassword": "otp1"}));
    let show = |all: bool| {
        ipa.call(
            "host_show",
            json!(["vm1.example.test"]),
            json!({"version": V, "all": all}),
        )
        .unwrap()["result"]
            .clone()
    };
    assert!(show(true).get("krblastpwdchange").is_none());
    assert_eq!(ipa.host("vm1.example.test").unwrap().keys_changed_at, None);

    let t0 = SystemTime::now() - Duration::from_secs(1);
    let (status, _, body) = http(
        &ipa,
        "/ipa/test/join",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "fqdn=vm1.example.test&otp=otp1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at = ipa
        .host("vm1.example.test")
        .unwrap()
        .keys_changed_at
        .expect("keys time");
    assert!(at >= t0 && at <= SystemTime::now(), "{at:?}");
    assert_eq!(at.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(), 0);
    let wire = json!([{"__datetime__": crate::state::generalized_time(at)}]);

    assert!(show(false).get("krblastpwdchange").is_none());
    assert_eq!(show(true)["krblastpwdchange"], wire);
    let found = |all: bool| {
        ipa.call(
            "host_find",
            json!([]),
            json!({"version": V, "fqdn": "vm1.example.test", "all": all}),
        )
        .unwrap()["result"][0]
            .clone()
    };
    assert!(found(false).get("krblastpwdchange").is_none());
    assert_eq!(found(true)["krblastpwdchange"], wire);
    let modded = ipa
        .call(
            "host_mod",
            json!(["vm1.example.test"]),
            json!({"version": V, "all": true, "description": "x"}),
        )
        .unwrap();
    assert_eq!(modded["result"]["krblastpwdchange"], wire);

    // A test sets the time; old clients (< 2.84) get the bare text.
    assert!(ipa.set_keys_changed_at(
        "VM1.example.test.",
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)
    ));
    assert_eq!(
        ipa.host("vm1.example.test").unwrap().keys_changed_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(
        show(true)["krblastpwdchange"],
        json!([{"__datetime__": "20231114221320Z"}])
    );
    let old = ipa
        .call(
            "host_show",
            json!(["vm1.example.test"]),
            json!({"version": "2.83", "all": true}),
        )
        .unwrap();
    assert_eq!(
        old["result"]["krblastpwdchange"],
        json!(["20231114221320Z"])
    );
    assert!(!ipa.set_keys_changed_at("nope.example.test", UNIX_EPOCH));

    // host_disable removes the keys and krblastpwdchange.
    ipa.call(
        "host_disable",
        json!(["vm1.example.test"]),
        json!({"version": V}),
    )
    .unwrap();
    assert!(show(true).get("krblastpwdchange").is_none());
    assert_eq!(ipa.host("vm1.example.test").unwrap().keys_changed_at, None);

    // retrieve_keytab of a host principal and ipa_join set it too.
    ipa.retrieve_keytab(ipa.fqdn(), "host/vm1.example.test")
        .unwrap_err();
    ipa.seed_host("vm2.example.test");
    ipa.mark_enrolled("vm2.example.test");
    assert!(ipa
        .host("vm2.example.test")
        .unwrap()
        .keys_changed_at
        .is_some());
    ipa.set_keys_changed_at("vm2.example.test", UNIX_EPOCH);
    ipa.retrieve_keytab("vm2.example.test", "host/vm2.example.test")
        .unwrap();
    assert!(
        ipa.host("vm2.example.test")
            .unwrap()
            .keys_changed_at
            .unwrap()
            >= t0
    );
}

#[tokio::test]
async fn the_cost_model_charges_each_call_and_each_command() {
    let ipa = double().await;
    let cookie = login(&ipa).await;
    ipa.reset_counters();
    ipa.set_cost_model(Duration::from_millis(40), Duration::from_millis(10));
    let started = std::time::Instant::now();
    let batch = json!([[
        {"method": "ping", "params": [[], {}]},
        {"method": "ping", "params": [[], {}]},
        {"method": "ping", "params": [[], {}]},
        {"method": "ping", "params": [[], {}]}
    ]]);
    rpc(&ipa, &cookie, "batch", batch, json!({})).await;
    // A lower bound only: the double sleeps at least this long.
    assert!(started.elapsed() >= Duration::from_millis(80));
    rpc(&ipa, &cookie, "ping", json!([]), json!({})).await;
    assert_eq!(ipa.commands_carried(), 5, "four batch items and one ping");
    assert_eq!(ipa.round_trips(), 2);
}

// ---- replicas ----

#[tokio::test]
async fn a_replica_shares_the_directory_but_not_the_sessions() {
    let ipa1 = double().await;
    let ipa2 = ipa1
        .start_replica(DoubleOptions {
            fqdn: "ipa2.example.test".into(),
            ..DoubleOptions::default()
        })
        .await
        .expect("replica");
    assert!(ipa1.start_replica(DoubleOptions::default()).await.is_err());
    // A write on one is read on the other; both servers are hosts.
    let c1 = login(&ipa1).await;
    let added = rpc(
        &ipa1,
        &c1,
        "host_add",
        json!(["vm1.example.test"]),
        json!({"force": true, "userpassword": "otp-1", "version": V}),
    )
    .await;
    assert!(added["error"].is_null(), "{added}");
    assert_eq!(
        ipa2.host("vm1.example.test").and_then(|h| h.otp).as_deref(),
        Some("otp-1")
    );
    assert!(ipa2.host("ipa.example.test").is_some() && ipa1.host("ipa2.example.test").is_some());
    // The cookie of one server is refused by the other, as in IPA.
    let referer = ipa2.referer();
    let cookie = format!("ipa_session={c1}");
    let (status, head, _) = http(
        &ipa2,
        "/ipa/session/json",
        &[
            ("Referer", &referer),
            ("Cookie", &cookie),
            ("Content-Type", "application/json"),
        ],
        &json!({"method": "ping", "params": [[], {}], "id": 0}).to_string(),
    )
    .await;
    assert_eq!(status, 401, "{head}");
    assert_eq!((ipa1.session_count(), ipa2.session_count()), (1, 0));
    let c2 = login(&ipa2).await;
    let shown = rpc(
        &ipa2,
        &c2,
        "host_show",
        json!(["vm1.example.test"]),
        json!({"version": V}),
    )
    .await;
    assert_eq!(
        shown["result"]["result"]["fqdn"][0], "vm1.example.test",
        "{shown}"
    );
    // Stopping one leaves the other serving the same directory.
    ipa1.go_down().await;
    let c2b = login(&ipa2).await;
    let dup = rpc(
        &ipa2,
        &c2b,
        "host_add",
        json!(["vm1.example.test"]),
        json!({"force": true, "userpassword": "otp-2", "version": V}),
    )
    .await;
    assert_eq!(dup["error"]["name"], "DuplicateEntry", "{dup}");
    assert_eq!(
        ipa1.host("vm1.example.test").and_then(|h| h.otp).as_deref(),
        Some("otp-1")
    );
}
