//! The shared test environment: one module per real server or test double.
//! Every integration test starts what it needs through these helpers.
// Each test binary includes this module privately and uses a part of it:
// `pub` here means "shared between test files", not library API.
#![allow(dead_code, unreachable_pub)]
pub mod apache;
pub mod dns;
pub mod glance;
pub mod ipa;
pub mod kdc;
pub mod keystone;
pub mod memcached;
pub mod notify;
pub mod nova_neutron;
pub mod packaging;
pub mod rabbit;
pub mod redis;
pub mod server;
pub mod vendordata;

/// What a novajoin process has logged to `path` so far. The process writes
/// its log from a logging thread, a moment after the event; this waits
/// until the file has stopped growing (30 ms without change, at most 2 s)
/// so that a line for a request that was just answered is there.
pub fn settled_log(path: &std::path::Path) -> String {
    let read = || std::fs::read(path).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut last = read();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(30));
        let now = read();
        if now.len() == last.len() || std::time::Instant::now() > deadline {
            return String::from_utf8_lossy(&now).into_owned();
        }
        last = now;
    }
}

/// Polls `f` every 50 ms until it gives a value; panics naming `what`
/// after 10 s.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Checks `cond` every 100 ms until it holds; panics naming `what` after
/// `timeout`. For async tests.
pub async fn wait_until(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The value of one series (`name` or `name{labels}`, exactly as the
/// exporter writes it) in a Prometheus text exposition.
pub fn prometheus_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}
