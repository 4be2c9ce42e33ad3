//! Replays every saved fuzz input through the fuzz targets' checks
//! (`fuzz/checks.rs`), in the ordinary test run: the seeds
//! (`fuzz/seeds/TARGET/`) and every crash or hang the fuzzer ever found
//! (`fuzz/regressions/TARGET/`, one file each). A crash once found stays
//! fixed without a libFuzzer build.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap();
            // A panic names the input that caused it.
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{} fails {target}", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn vendordata_request_inputs() {
    assert!(replay("vendordata_request", checks::vendordata_request) >= 4);
}

#[test]
fn policy_rule_inputs() {
    assert!(replay("policy_rule", checks::policy_rule) >= 10);
}

#[test]
fn policy_file_inputs() {
    assert!(replay("policy_file", checks::policy_file) >= 3);
}

#[test]
fn notification_envelope_inputs() {
    assert!(replay("notification_envelope", checks::notification_envelope) >= 4);
}
