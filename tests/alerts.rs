//! The Prometheus rules and the Grafana dashboard in packaging/:
//! `promtool check rules` and `promtool test rules` pass (promtool comes
//! with Debian's `prometheus` package, see scripts/install-test-deps.sh),
//! every alert has a unit test, and every PromQL expression (rules and
//! dashboard panels and variables) names only metrics the service exports
//! (`novajoin::metrics::EXPORTED`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const RULES: &str = "packaging/prometheus/novajoin-alerts.yaml";
const RULE_TESTS: &str = "packaging/prometheus/novajoin-alerts.test.yaml";
const DASHBOARD: &str = "packaging/grafana/novajoin.json";

/// Runs promtool with `args` in `dir`; panics with a clear message when
/// promtool is missing or fails.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is not available ({e}): install Debian's `prometheus` package \
                 (scripts/install-test-deps.sh does)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules() {
    let text = promtool(&repo(), &["check", "rules", RULES]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_unit_tests_the_rules() {
    // rule_files in the test file are relative to its directory.
    let dir = repo().join("packaging/prometheus");
    let file = Path::new(RULE_TESTS).file_name().unwrap().to_str().unwrap();
    let text = promtool(&dir, &["test", "rules", file]);
    assert!(text.contains("SUCCESS"), "{text}");
}

fn rules() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo().join(RULES)).unwrap()).unwrap()
}

/// `(alert name, expression)` of every rule.
fn rule_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in rules()["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .unwrap()
                .to_string();
            out.push((name, rule["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn every_alert_has_a_unit_test() {
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join(RULE_TESTS)).unwrap()).unwrap();
    let mut fired = Vec::new();
    for t in tests["tests"].as_sequence().unwrap() {
        for a in t["alert_rule_test"].as_sequence().unwrap() {
            if a["exp_alerts"].as_sequence().is_some_and(|s| !s.is_empty()) {
                fired.push(a["alertname"].as_str().unwrap().to_string());
            }
        }
    }
    for (name, _) in rule_exprs() {
        assert!(
            fired.contains(&name),
            "{name} has no test in {RULE_TESTS} that makes it fire"
        );
    }
}

/// Every PromQL expression of the dashboard: panel targets and the
/// variables' queries.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(DASHBOARD)).unwrap()).unwrap();
    let mut out = Vec::new();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(e) = m.get("expr").and_then(Value::as_str) {
                    out.push((title.to_string(), e.to_string()));
                }
                for child in m.values() {
                    walk(child, title, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, title, out)),
            _ => {}
        }
    }
    walk(&dash["panels"], "", &mut out);
    for var in dash["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap();
            out.push((format!("variable {}", var["name"]), q.to_string()));
        }
    }
    out
}

#[test]
fn every_expression_names_only_exported_metrics() {
    let exported = novajoin::metrics::exported_series();
    let mut all = rule_exprs();
    let dash = dashboard_exprs();
    assert!(
        dash.len() >= 20,
        "dashboard expressions found: {}",
        dash.len()
    );
    all.extend(dash);
    let mut used = std::collections::BTreeSet::new();
    for (where_, expr) in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{where_}: no metric found in {expr:?}");
        for n in names {
            assert!(
                exported.contains(&n),
                "{where_}: {n} is not a metric novajoin exports (src/metrics/mod.rs EXPORTED)\n{expr}"
            );
            used.insert(n);
        }
    }
    // The two counters of the tenant-isolation work are alerted on.
    for n in [
        "novajoin_ownership_refusals_total",
        "novajoin_notify_ipa_access_denied_total",
    ] {
        assert!(used.contains(n), "{n} is used nowhere");
    }
}

/// The metric names an expression selects. `label_values(metric, label)`
/// (a Grafana variable query) names `metric`.
fn metric_names(expr: &str) -> Vec<String> {
    let lv = regex::Regex::new(r"^\s*label_values\(\s*([^,{)]+)").unwrap();
    if let Some(c) = lv.captures(expr) {
        return vec![c[1].trim().to_string()];
    }
    let strings = regex::Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).unwrap();
    let matchers = regex::Regex::new(r"\{[^}]*\}").unwrap();
    let ranges = regex::Regex::new(r"\[[^\]]*\]").unwrap();
    let grouping =
        regex::Regex::new(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
            .unwrap();
    let e = strings.replace_all(expr, "\"\"");
    let e = matchers.replace_all(&e, " ");
    let e = ranges.replace_all(&e, " ");
    let e = grouping.replace_all(&e, " ");
    let ident = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "Inf",
        "NaN",
    ];
    let mut out = Vec::new();
    for m in ident.find_iter(&e) {
        let before = e[..m.start()].chars().last();
        if before.is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '$') {
            continue; // part of a number, a duration or a variable
        }
        let after = e[m.end()..].trim_start().chars().next();
        if after == Some('(') || KEYWORDS.contains(&m.as_str()) {
            continue; // a function or a keyword
        }
        out.push(m.as_str().to_string());
    }
    out
}

#[test]
fn metric_names_are_parsed_from_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le, method) (rate(novajoin_ipa_call_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))"#
        ),
        ["novajoin_ipa_call_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "sum(rate(a_total{x=\"y}\"}[5m])) / on(job) group_left(v) b > 0.1 and c offset 5m"
        ),
        ["a_total", "b", "c"]
    );
    assert_eq!(
        metric_names("label_values(novajoin_build_info, job)"),
        ["novajoin_build_info"]
    );
}
