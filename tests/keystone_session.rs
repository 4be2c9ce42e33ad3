//! The service's own keystone session against the real keystone.

mod support;

use novajoin::config::ConfigFiles;
use novajoin::keystone::{KeystoneError, ServiceSession};
use support::keystone::{Keystone, Provider};

fn session_for(ks: &Keystone, user: &str) -> ServiceSession {
    let u = ks.user(user);
    let text = format!(
        "[service_credentials]\nauth_type = password\nauth_url = {}\nusername = {user}\npassword = {}\n\
         user_domain_name = Default\nproject_name = {}\nproject_domain_name = Default\n",
        ks.auth_url(),
        u.password,
        u.project
    );
    let mut cfg = ConfigFiles::default();
    cfg.add_text(std::path::Path::new("join.conf"), &text)
        .unwrap();
    ServiceSession::from_config(&cfg)
        .unwrap()
        .expect("configured")
}

#[tokio::test]
async fn token_is_obtained_once_and_reused() {
    let ks = Keystone::shared(Provider::Fernet);
    let s = session_for(ks, "nova");
    let before = ks.calls().iter().filter(|c| c.method == "POST").count();
    let (a, b) = tokio::join!(s.auth_state(), s.auth_state());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "concurrent callers share one token"
    );
    let again = s.auth_state().await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &again));
    let posts = ks.calls().iter().filter(|c| c.method == "POST").count() - before;
    // Other tests share the instance; at most this test's one POST plus theirs,
    // but this session's token must have come from exactly one.
    assert!(posts >= 1);
    assert_eq!(a.user_id, ks.user("nova").id);
    let dbg = format!("{s:?} {a:?}");
    assert!(
        !dbg.contains(a.token.expose()),
        "token leaked in Debug: {dbg}"
    );
    assert!(
        !dbg.contains("nova-secret"),
        "password leaked in Debug: {dbg}"
    );
}

#[tokio::test]
async fn project_names_are_looked_up() {
    let ks = Keystone::shared(Provider::Fernet);
    let s = session_for(ks, "nova");
    let demo = &ks.credentials().projects["demo"];
    assert_eq!(s.project_name(demo).await.unwrap().as_deref(), Some("demo"));
    assert_eq!(
        s.project_name("0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
        None
    );
    // A path trick in the id stays one path segment.
    assert_eq!(s.project_name("../users").await.unwrap(), None);
    let url = s
        .endpoint("identity", Some("internal"), None)
        .await
        .unwrap();
    assert_eq!(
        format!("{}/v3", ks.public_url()),
        url.as_str().trim_end_matches('/')
    );
}

#[tokio::test]
async fn a_user_without_admin_gets_a_clear_403() {
    let ks = Keystone::shared(Provider::Fernet);
    let s = session_for(ks, "novajoin");
    let demo = &ks.credentials().projects["demo"];
    let e = s.project_name(demo).await.unwrap_err();
    assert!(matches!(e, KeystoneError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("admin role"), "{e}");
}

#[tokio::test]
async fn wrong_password_names_the_section() {
    let ks = Keystone::shared(Provider::Fernet);
    let text = format!(
        "[service_credentials]\nauth_type = password\nauth_url = {}\nusername = nova\npassword = wrong\n\
         user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n",
        ks.auth_url()
    );
    let mut cfg = ConfigFiles::default();
    cfg.add_text(std::path::Path::new("join.conf"), &text)
        .unwrap();
    let s = ServiceSession::from_config(&cfg).unwrap().unwrap();
    let e = s.project_name("x").await.unwrap_err();
    assert!(
        matches!(e, KeystoneError::CredentialsRefused { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("[service_credentials]"), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
}

#[tokio::test]
async fn no_auth_type_means_no_session() {
    let mut cfg = ConfigFiles::default();
    cfg.add_text(
        std::path::Path::new("join.conf"),
        "[service_credentials]\nusername = nova\n",
    )
    .unwrap();
    assert!(ServiceSession::from_config(&cfg).unwrap().is_none());
}

#[tokio::test]
async fn stopped_keystone_is_unreachable_not_a_hang() {
    let ks = tokio::task::spawn_blocking(|| Keystone::start(Provider::Fernet))
        .await
        .unwrap();
    let s = session_for(&ks, "nova");
    s.auth_state().await.unwrap();
    ks.stop();
    let fresh = session_for(&ks, "nova");
    let e = fresh.auth_state().await.unwrap_err();
    assert!(matches!(e, KeystoneError::Unreachable { .. }), "{e}");
}

fn session_from(text: &str) -> ServiceSession {
    let mut cfg = ConfigFiles::default();
    cfg.add_text(std::path::Path::new("join.conf"), text)
        .unwrap();
    cfg.validate(&novajoin::option_catalog::CATALOG).unwrap();
    ServiceSession::from_config(&cfg)
        .unwrap()
        .expect("configured")
}

#[tokio::test]
async fn an_application_credential_authenticates_by_id_and_by_name() {
    let ks = Keystone::shared(Provider::Fernet);
    let nova = ks.user("nova");
    let cred = ks.create_application_credential("nova", None).await;
    let by_id = session_from(&format!(
        "[service_credentials]\nauth_type = v3applicationcredential\nauth_url = {}\n\
         application_credential_id = {}\napplication_credential_secret = {}\n",
        ks.auth_url(),
        cred.id,
        cred.secret
    ));
    let st = by_id.auth_state().await.unwrap();
    assert_eq!(st.user_id, nova.id);
    assert_eq!(
        st.project_id.as_deref(),
        Some(nova.project_id.as_str()),
        "keystone scopes the token to the credential's project"
    );
    // The token works like the password one: catalog and project lookups.
    let demo = &ks.credentials().projects["demo"];
    assert_eq!(
        by_id.project_name(demo).await.unwrap().as_deref(),
        Some("demo")
    );
    let dbg = format!("{by_id:?} {st:?}");
    assert!(!dbg.contains(&cred.secret), "secret leaked in Debug: {dbg}");

    let by_name = session_from(&format!(
        "[service_credentials]\nauth_type = v3applicationcredential\nauth_url = {}\n\
         application_credential_name = {}\napplication_credential_secret = {}\n\
         username = nova\nuser_domain_name = Default\n",
        ks.auth_url(),
        cred.name,
        cred.secret
    ));
    assert_eq!(by_name.auth_state().await.unwrap().user_id, nova.id);
}

#[tokio::test]
async fn a_wrong_application_credential_secret_is_refused_without_echoing_it() {
    let ks = Keystone::shared(Provider::Fernet);
    let cred = ks.create_application_credential("nova", None).await;
    let s = session_from(&format!(
        "[service_credentials]\nauth_type = v3applicationcredential\nauth_url = {}\n\
         application_credential_id = {}\napplication_credential_secret = not-the-secret\n",
        ks.auth_url(),
        cred.id
    ));
    let e = s.auth_state().await.unwrap_err();
    assert!(
        matches!(e, KeystoneError::CredentialsRefused { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("[service_credentials]"), "{e}");
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
}

#[tokio::test]
async fn application_credential_options_are_checked_at_start() {
    let mut cfg = ConfigFiles::default();
    cfg.add_text(
        std::path::Path::new("join.conf"),
        "[service_credentials]\nauth_type = v3applicationcredential\nauth_url = http://ks/v3\n\
         application_credential_id = x\napplication_credential_secret = s\nproject_name = service\n",
    )
    .unwrap();
    let e = ServiceSession::from_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("project_name"), "{e}");
    assert!(e.contains("application credential"), "{e}");
}
