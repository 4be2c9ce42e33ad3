//! The cloud-init enroll script shipped in cloud-config-novajoin.json:
//! shellcheck, and runs against a fake config drive and a fake metadata
//! service with a stub `ipa-client-install`.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::packaging::shipped;

/// The script as shipped inside cloud-config-novajoin.json.
fn shipped_enroll_script() -> (String, String) {
    let v: Value = serde_json::from_str(&shipped("packaging/cloud-config-novajoin.json")).unwrap();
    let cc = v["cloud-init"]
        .as_str()
        .expect("key cloud-init")
        .to_string();
    assert!(cc.starts_with("#cloud-config\n"));
    let y: serde_yaml::Value = serde_yaml::from_str(&cc).unwrap();
    let file = &y["write_files"][0];
    let path = file["path"].as_str().unwrap().to_string();
    assert_eq!(file["permissions"].as_str(), Some("0700"));
    let runcmd = y["runcmd"][0][0].as_str().unwrap();
    assert_eq!(runcmd, path, "runcmd runs the script it writes");
    (file["content"].as_str().unwrap().to_string(), path)
}

#[test]
fn enroll_script_passes_shellcheck() {
    let (script, _) = shipped_enroll_script();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("novajoin-enroll");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("shellcheck")
        .arg("--severity=style")
        .arg(&path)
        .output()
        .expect("shellcheck (Debian package shellcheck)");
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A throwaway instance: the script, stub commands first on PATH, a
/// recording stub `ipa-client-install`, and fake `blkid`/`mount`/`umount`
/// that present `drive/` as the config drive when `device` is set.
struct Instance {
    dir: tempfile::TempDir,
    script: PathBuf,
}

const VENDOR_DATA: &str = r##"{"static": {"cloud-init": "#cloud-config\n"}, "join": {"hostname": "vm7.example.test", "krb_realm": "EXAMPLE.TEST", "ipaotp": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}}"##;
const OTP: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct Run {
    status: i32,
    output: String,
    ipa_args: Option<Vec<String>>,
    calls: String,
}

impl Instance {
    fn new() -> Self {
        let (script_text, _) = shipped_enroll_script();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        stub(
            "ipa-client-install",
            "printf '%s\\n' \"$@\" > \"$STUB_DIR/ipa-client-install.args\"\nexit \"${STUB_IPA_EXIT:-0}\"",
        );
        stub(
            "blkid",
            "echo \"blkid $*\" >> \"$STUB_DIR/calls\"\n\
             if [ -n \"${STUB_DEVICE:-}\" ] && [[ \" $* \" == *' LABEL=config-2 '* ]]; then echo \"$STUB_DEVICE\"; exit 0; fi\nexit 2",
        );
        stub(
            "mount",
            "echo \"mount $*\" >> \"$STUB_DIR/calls\"\n\
             [ \"$1\" = -o ] && [ \"$2\" = ro ] && [ \"$3\" = \"$STUB_DEVICE\" ] || exit 32\n\
             cp -r \"$STUB_DIR/drive/.\" \"$4\"",
        );
        stub("umount", "echo \"umount $*\" >> \"$STUB_DIR/calls\"");
        let script = dir.path().join("novajoin-enroll");
        std::fs::write(&script, script_text).unwrap();
        Instance { dir, script }
    }

    fn put_drive(&self, vendor_data: &str) {
        let d = self.dir.path().join("drive/openstack/latest");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor_data2.json"), vendor_data).unwrap();
    }

    fn run(&self, env: &[(&str, String)], args: &[&str]) -> Run {
        let d = self.dir.path();
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    d.join("bin").display()
                ),
            )
            .env("STUB_DIR", d)
            .env("HOME", d)
            .env("NOVAJOIN_IPA_DEFAULT_CONF", d.join("ipa-default.conf"))
            .env("NOVAJOIN_METADATA_URL", "http://127.0.0.1:9/nothing-here")
            .env("NOVAJOIN_METADATA_TIMEOUT", "1")
            .env("NOVAJOIN_RETRY_BASE", "1")
            .env("NOVAJOIN_RETRY_MAX", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let ipa_args = std::fs::read_to_string(d.join("ipa-client-install.args"))
            .ok()
            .map(|t| t.lines().map(str::to_string).collect());
        Run {
            status: out.status.code().unwrap_or(-1),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            ipa_args,
            calls: std::fs::read_to_string(d.join("calls")).unwrap_or_default(),
        }
    }
}

/// A metadata service: `vendor_data2.json` gets the listed (status, body)
/// pairs in order, then the last one forever; `meta_data.json` gets `meta`
/// (404 when `None`). Counts the vendor_data2.json requests.
struct FakeMetadata {
    url: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl FakeMetadata {
    fn start(answers: Vec<(u16, String)>) -> Self {
        Self::with_meta(answers, None)
    }

    fn with_meta(answers: Vec<(u16, String)>, meta: Option<&str>) -> Self {
        Self::with_header_on_errors(answers, meta, "")
    }

    /// Like [`with_meta`](Self::with_meta); every answer that is not a 200
    /// also carries `header` (a whole header line with its CRLF).
    fn with_header_on_errors(
        answers: Vec<(u16, String)>,
        meta: Option<&str>,
        header: &str,
    ) -> Self {
        let header = header.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (h, p) = (hits.clone(), paths.clone());
        let meta = meta.map(str::to_string);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { break };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                p.lock().unwrap().push(path.clone());
                let (status, body) = if path.ends_with("/meta_data.json") {
                    match &meta {
                        Some(m) => (200, m.clone()),
                        None => (404, "not found".to_string()),
                    }
                } else {
                    let i = h.fetch_add(1, Ordering::SeqCst);
                    answers[i.min(answers.len() - 1)].clone()
                };
                let extra = if status == 200 { "" } else { header.as_str() };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeMetadata {
            url: format!("http://127.0.0.1:{port}/openstack/latest/vendor_data2.json"),
            hits,
            paths,
        }
    }
}

fn expected_ipa_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-U",
        "-w",
        OTP,
        "--hostname",
        "vm7.example.test",
        "--realm",
        "EXAMPLE.TEST",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn enroll_reads_the_config_drive_and_runs_ipa_client_install() {
    let inst = Instance::new();
    inst.put_drive(VENDOR_DATA);
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("STUB_DEVICE", "/dev/sr0".into()),
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
        ],
        &["--mkhomedir"],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(
        run.ipa_args,
        Some(expected_ipa_args(&["--mkhomedir"])),
        "{}",
        run.output
    );
    assert!(run.calls.contains("mount -o ro /dev/sr0 "), "{}", run.calls);
    assert!(run.calls.contains("umount "), "unmounted: {}", run.calls);
    assert_eq!(
        metadata.hits.load(Ordering::SeqCst),
        0,
        "the config drive wins"
    );
    assert!(!run.output.contains(OTP), "OTP printed: {}", run.output);
    assert!(run.output.contains("config drive"), "{}", run.output);
}

#[test]
fn enroll_reads_a_mounted_config_drive_directory() {
    let inst = Instance::new();
    inst.put_drive(VENDOR_DATA);
    let drive = inst.dir.path().join("drive").display().to_string();
    let run = inst.run(&[("NOVAJOIN_CONFIG_DRIVE_DIR", drive)], &[]);
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])));
    assert!(
        !run.calls.contains("mount"),
        "nothing to mount: {}",
        run.calls
    );
}

#[test]
fn enroll_falls_back_to_the_metadata_service_and_retries() {
    let inst = Instance::new();
    // Not ready, then a server error, then the answer.
    let metadata = FakeMetadata::start(vec![
        (404, "not yet".into()),
        (500, "{}".into()),
        (200, VENDOR_DATA.into()),
    ]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 3);
    assert!(metadata
        .paths
        .lock()
        .unwrap()
        .iter()
        .all(|p| p == "/openstack/latest/vendor_data2.json"));
    assert!(run.calls.contains("blkid"), "looked for a config drive");
    assert!(!run.output.contains(OTP), "OTP printed: {}", run.output);
    assert!(run.output.contains("attempt 3"), "{}", run.output);
}

#[test]
fn enroll_waits_as_long_as_a_busy_service_asks_with_retry_after() {
    let inst = Instance::new();
    let busy = r#"{"serviceUnavailable": {"code": 503, "message": "busy"}}"#.to_string();
    let metadata = FakeMetadata::with_header_on_errors(
        vec![(503, busy), (200, VENDOR_DATA.into())],
        None,
        "Retry-After: 1\r\n",
    );
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            // The back-off's first pause (20 s or more) would pass the
            // deadline and end the script: only the header's 1 s lets it
            // ask again.
            ("NOVAJOIN_METADATA_TIMEOUT", "15".into()),
            ("NOVAJOIN_RETRY_BASE", "40".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 2);
    assert!(
        run.output.contains("asks to retry after 1 s"),
        "{}",
        run.output
    );
}

#[test]
fn enroll_does_nothing_when_enrollment_was_not_requested() {
    let inst = Instance::new();
    let metadata = FakeMetadata::with_meta(
        vec![(200, r#"{"static": {}, "join": {}}"#.into())],
        Some(r#"{"uuid": "u", "meta": {"role": "web"}}"#),
    );
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(run.output.contains("no IPA enrollment was requested"));
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 1, "asked once");
}

#[test]
fn enroll_asks_again_while_novajoin_fails_for_a_requested_instance() {
    let inst = Instance::new();
    // nova stores {} for the target while novajoin answers with an error.
    let failed = r#"{"static": {}, "join": {}}"#.to_string();
    let metadata = FakeMetadata::with_meta(
        vec![
            (200, failed.clone()),
            (200, failed),
            (200, VENDOR_DATA.into()),
        ],
        Some(r#"{"uuid": "u", "meta": {"ipa_enroll": "True"}}"#),
    );
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 3);
    assert!(metadata
        .paths
        .lock()
        .unwrap()
        .iter()
        .any(|p| p == "/openstack/latest/meta_data.json"));
    assert!(run.output.contains("asking again"), "{}", run.output);
}

#[test]
fn enroll_uses_the_metadata_service_when_the_drive_was_built_while_novajoin_failed() {
    let inst = Instance::new();
    inst.put_drive(r#"{"static": {}, "join": {}}"#);
    std::fs::write(
        inst.dir
            .path()
            .join("drive/openstack/latest/meta_data.json"),
        r#"{"uuid": "u", "meta": {"ipa_enroll": "true"}}"#,
    )
    .unwrap();
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("STUB_DEVICE", "/dev/sr0".into()),
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 1);
    assert!(run.calls.contains("umount "), "{}", run.calls);
}

#[test]
fn enroll_skips_a_host_that_is_already_enrolled() {
    let inst = Instance::new();
    std::fs::write(inst.dir.path().join("ipa-default.conf"), "[global]\n").unwrap();
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", metadata.url.clone())], &[]);
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn enroll_fails_clearly_without_metadata_or_with_a_bad_answer() {
    let inst = Instance::new();
    let down = FakeMetadata::start(vec![(503, "".into())]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", down.url.clone()),
            // Pauses are 0-1 s here: at least two attempts fit in 5 s.
            ("NOVAJOIN_METADATA_TIMEOUT", "5".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("FATAL: no vendor_data2.json"),
        "{}",
        run.output
    );
    assert!(down.hits.load(Ordering::SeqCst) >= 2, "retried");

    // A hostname that would be an option, and no OTP: refused, not run.
    let inst = Instance::new();
    let bad = FakeMetadata::start(vec![(
        200,
        r#"{"join": {"hostname": "--server=evil", "krb_realm": "X", "ipaotp": "abc"}}"#.into(),
    )]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", bad.url.clone())], &[]);
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("not a fully qualified domain name"),
        "{}",
        run.output
    );

    let inst = Instance::new();
    let no_otp = FakeMetadata::start(vec![(
        200,
        r#"{"join": {"hostname": "vm7.example.test", "krb_realm": "EXAMPLE.TEST"}}"#.into(),
    )]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", no_otp.url.clone())], &[]);
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("no usable one-time password"),
        "{}",
        run.output
    );

    // ipa-client-install failing is reported as a failure.
    let inst = Instance::new();
    let ok = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", ok.url.clone()),
            ("STUB_IPA_EXIT", "1".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 1, "{}", run.output);
    assert!(
        run.output.contains("ipa-client-install failed"),
        "{}",
        run.output
    );
    assert!(!run.output.contains(OTP));
}
