//! Differential test: `novajoin policy-check` against the real
//! `oslopolicy-checker` (PyPI oslo.policy in the test venv) on every example
//! of spec/oslo-policy.md and on at least 500 seeded random cases: random
//! policies (precedence, `not`, parentheses, parse errors, literals, target
//! substitution, dotted and list-valued credentials, missing and cyclic
//! rules, list-of-lists, JSON and YAML), random tokens and targets.
//!
//! Every `passed:`/`failed:`/`exception:` line must be identical, every
//! other line (the exception's message, which is novajoin's own wording)
//! must stand at the same place, and the exit status must agree on zero or
//! not.
//!
//! The random cases run through oslo.policy's checker entry point
//! (`oslo_policy.shell.main`, what the console script calls) in one Python
//! process; the spec's examples also run through the console script itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

const RANDOM_CASES: usize = 520;
const SEED: u64 = 0x005e_ed0f_0510;

fn venv() -> PathBuf {
    let v = std::env::var_os("NOVAJOIN_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    assert!(
        v.join("bin/oslopolicy-checker").is_file(),
        "oslopolicy-checker not found in {} (set NOVAJOIN_TEST_VENV or run scripts/install-test-deps.sh)",
        v.display()
    );
    v
}

#[derive(Clone, Debug)]
struct Case {
    label: String,
    /// File name (extension decides nothing: both are read as YAML) and text.
    policy: (String, String),
    access: Value,
    target: Option<Value>,
    rule: Option<String>,
    /// None: no flag; Some(true): --is_admin; Some(false): --nois_admin.
    admin_flag: Option<bool>,
}

impl Case {
    fn write(&self, dir: &Path) -> Vec<String> {
        std::fs::create_dir_all(dir).unwrap();
        let policy = dir.join(&self.policy.0);
        std::fs::write(&policy, &self.policy.1).unwrap();
        let access = dir.join("access.json");
        std::fs::write(&access, serde_json::to_string(&self.access).unwrap()).unwrap();
        let mut argv = vec![
            format!("--policy={}", policy.display()),
            format!("--access={}", access.display()),
        ];
        if let Some(t) = &self.target {
            let p = dir.join("target.json");
            std::fs::write(&p, serde_json::to_string(t).unwrap()).unwrap();
            argv.push(format!("--target={}", p.display()));
        }
        if let Some(r) = &self.rule {
            argv.push(format!("--rule={r}"));
        }
        match self.admin_flag {
            Some(true) => argv.push("--is_admin".into()),
            Some(false) => argv.push("--nois_admin".into()),
            None => {}
        }
        argv
    }
}

#[derive(Debug)]
struct Outcome {
    out: String,
    rc: i32,
}

fn run_novajoin(argv: &[String]) -> Outcome {
    let o = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .arg("policy-check")
        .args(argv)
        .output()
        .expect("run novajoin");
    Outcome {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        rc: o.status.code().unwrap_or(-1),
    }
}

fn run_oslo_batch(venv: &Path, work: &Path, argvs: &[Vec<String>]) -> Vec<Outcome> {
    let cases: Vec<Value> = argvs.iter().map(|a| json!({ "argv": a })).collect();
    let cases_file = work.join("cases.json");
    let results_file = work.join("results.json");
    std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_check/oslo_driver.py");
    let st = Command::new(venv.join("bin/python"))
        .arg(driver)
        .arg(&cases_file)
        .arg(&results_file)
        .status()
        .expect("run the oslo.policy driver");
    assert!(st.success(), "the oslo.policy driver failed: {st}");
    let results: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&results_file).unwrap()).unwrap();
    results
        .into_iter()
        .map(|r| Outcome {
            out: r["out"].as_str().unwrap().to_string(),
            rc: r["rc"].as_i64().unwrap() as i32,
        })
        .collect()
}

fn run_oslo_script(venv: &Path, argv: &[String]) -> Outcome {
    let o = Command::new(venv.join("bin/oslopolicy-checker"))
        .args(argv)
        .output()
        .expect("run oslopolicy-checker");
    Outcome {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        rc: o.status.code().unwrap_or(-1),
    }
}

/// Compares two runs; `None` when they agree.
fn compare(ours: &Outcome, theirs: &Outcome) -> Option<String> {
    if (ours.rc == 0) != (theirs.rc == 0) {
        return Some(format!(
            "exit status: novajoin {} vs oslo {}",
            ours.rc, theirs.rc
        ));
    }
    let a: Vec<&str> = ours.out.lines().collect();
    let b: Vec<&str> = theirs.out.lines().collect();
    if a.len() != b.len() {
        return Some(format!("{} lines vs {} lines", a.len(), b.len()));
    }
    let decisive = |l: &str| {
        l.starts_with("passed: ") || l.starts_with("failed: ") || l.starts_with("exception: ")
    };
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if (decisive(x) || decisive(y)) && x != y {
            return Some(format!("line {}: {x:?} vs {y:?}", i + 1));
        }
    }
    None
}

// ------------------------------------------------------------ the spec

fn base_token() -> Value {
    // After the checker's transformation these are the spec's base creds.
    json!({"token": {
        "user": {"id": "u1"}, "user_name": "nova", "project_id": "p1", "project_name": "service",
        "roles": [{"name": "Admin"}, {"name": "member"}], "is_admin": false, "domain_id": null,
        "nested": {"a": {"b": "x"}}, "list": [{"id": "1"}, {"id": "2"}]
    }})
}

fn base_target() -> Value {
    json!({"project_id":"p1","user.id":"u1","name":"service","num":5,"enabled":true,
           "flag":"True","role_name":"MEMBER","none_val":null})
}

fn json_policy(rules: &[(&str, Value)]) -> (String, String) {
    let mut m = Map::new();
    for (k, v) in rules {
        m.insert(k.to_string(), v.clone());
    }
    (
        "policy.json".into(),
        serde_json::to_string_pretty(&Value::Object(m)).unwrap(),
    )
}

fn spec_cases() -> Vec<Case> {
    let s = |x: &str| Value::String(x.to_string());
    let nj = || {
        vec![
            ("service_project", s("project_name:service")),
            (
                "compute_service_user",
                s("user_name:nova and rule:service_project"),
            ),
        ]
    };
    // (row, rule, other rules, token change, target change, is_admin)
    type Change = fn(&mut Value);
    type Row = (
        u32,
        Value,
        Vec<(&'static str, Value)>,
        Option<Change>,
        Option<Value>,
        bool,
    );
    let rows: Vec<Row> = vec![
        (1, s(""), vec![], None, None, false),
        (2, s("@"), vec![], None, None, false),
        (3, s("!"), vec![], None, None, false),
        (4, s("role:admin"), vec![], None, None, false),
        (5, s("role:ADMIN"), vec![], None, None, false),
        (6, s("user_name:nova"), vec![], None, None, false),
        (7, s("user_name:Nova"), vec![], None, None, false),
        (8, s("project_id:%(project_id)s"), vec![], None, None, false),
        (9, s("project_id:%(missing)s"), vec![], None, None, false),
        (10, s("not role:admin"), vec![], None, None, false),
        (
            11,
            s("role:admin or role:foo and role:bar"),
            vec![],
            None,
            None,
            false,
        ),
        (
            12,
            s("(role:admin or role:foo) and role:bar"),
            vec![],
            None,
            None,
            false,
        ),
        (
            13,
            s("not role:foo and role:bar"),
            vec![],
            None,
            None,
            false,
        ),
        (
            14,
            s("not (role:foo or role:member)"),
            vec![],
            None,
            None,
            false,
        ),
        (15, s("True:%(enabled)s"), vec![], None, None, false),
        (16, s("'service':%(name)s"), vec![], None, None, false),
        (17, s("is_admin:True"), vec![], None, None, false),
        (18, s("is_admin:True"), vec![], None, None, true),
        (19, s("nested.a.b:x"), vec![], None, None, false),
        (20, s("list.id:2"), vec![], None, None, false),
        (21, s("roles:member"), vec![], None, None, false),
        (22, s("roles:member2"), vec![], None, None, false),
        (23, s("roles:admin"), vec![], None, None, false),
        (24, s("rule:nope"), vec![], None, None, false),
        (
            25,
            s("rule:nope"),
            vec![("default", s("@"))],
            None,
            None,
            false,
        ),
        (26, s("role:admin or"), vec![], None, None, false),
        (27, s("admin"), vec![], None, None, false),
        (28, s("role:foo OR role:admin"), vec![], None, None, false),
        (29, s("((role:admin))"), vec![], None, None, false),
        (30, s("role:%(role_name)s"), vec![], None, None, false),
        (
            31,
            json!([["role:foo"], ["role:admin", "user_name:nova"]]),
            vec![],
            None,
            None,
            false,
        ),
        (32, json!([]), vec![], None, None, false),
        (33, json!([[]]), vec![], None, None, false),
        (
            34,
            json!(["role:foo", "role:admin"]),
            vec![],
            None,
            None,
            false,
        ),
        (35, s("5:%(num)s"), vec![], None, None, false),
        (36, s("123:%(num)s"), vec![], None, None, false),
        (37, s("project_id:p1"), vec![], None, None, false),
        (38, s("user_id:%(user.id)s"), vec![], None, None, false),
        (
            39,
            s("user_id:%(user.id)s"),
            vec![],
            None,
            Some(json!({"user": {"id": "u1"}})),
            false,
        ),
        (40, s("domain_id:None"), vec![], None, None, false),
        (41, s("domain_id:%(none_val)s"), vec![], None, None, false),
        (42, s("not"), vec![], None, None, false),
        (43, s("@ and role:foo"), vec![], None, None, false),
        (44, s("! or role:admin"), vec![], None, None, false),
        (
            45,
            s("rule:a"),
            vec![("a", s("rule:b")), ("b", s("role:admin"))],
            None,
            None,
            false,
        ),
        (46, s("'role:admin'"), vec![], None, None, false),
        (47, s("true:%(flag)s"), vec![], None, None, false),
        (48, s("1abc:x"), vec![], None, None, false),
        (49, s("name:100%"), vec![], None, None, false),
        (
            50,
            s("role:admin"),
            vec![],
            Some(|t| t["token"]["roles"] = json!([])),
            None,
            false,
        ),
        (51, s("role:foo\tor\nrole:admin"), vec![], None, None, false),
        (
            52,
            s("role:admin and role:member and user_name:nova"),
            vec![],
            None,
            None,
            false,
        ),
        (
            53,
            s("role:foo or role:bar and role:admin or user_name:nova"),
            vec![],
            None,
            None,
            false,
        ),
        (54, s("not not role:admin"), vec![], None, None, false),
        (55, s("user_name:nova:x"), vec![], None, None, false),
        (
            56,
            s("role:compute:admin"),
            vec![],
            Some(|t| t["token"]["roles"] = json!([{"name": "compute:admin"}])),
            None,
            false,
        ),
        (57, s("role:"), vec![], None, None, false),
        (
            58,
            s("num:5"),
            vec![],
            Some(|t| t["token"]["num"] = json!(5)),
            None,
            false,
        ),
        (59, s("is_admin:False"), vec![], None, None, false),
        (60, s("is_admin:true"), vec![], None, None, true),
        (61, s("(role:foo or role:admin)"), vec![], None, None, false),
        (62, s("(role:admin"), vec![], None, None, false),
        (63, s("rule:compute_service_user"), nj(), None, None, false),
        (
            64,
            s("rule:compute_service_user"),
            nj(),
            Some(|t| t["token"]["project_name"] = json!("services")),
            None,
            false,
        ),
    ];
    let mut out = Vec::new();
    for (row, rule, others, change, target, admin) in rows {
        let mut rules = others.clone();
        rules.push(("t", rule));
        let mut access = base_token();
        if let Some(f) = change {
            f(&mut access);
        }
        out.push(Case {
            label: format!("spec §8 row {row}"),
            policy: json_policy(&rules),
            access,
            target: Some(target.unwrap_or_else(base_target)),
            rule: Some("t".into()),
            admin_flag: Some(admin),
        });
    }
    // §8, more verified behaviour that the checker can show.
    let more: Vec<(&str, (String, String), Option<&str>)> = vec![
        (
            "http check",
            json_policy(&[("a:http", s("http://127.0.0.1:18123/yes"))]),
            None,
        ),
        (
            "https check with a missing key",
            json_policy(&[("a:https", s("https://x/%(missing)s"))]),
            None,
        ),
        (
            "default rule for an unknown name",
            json_policy(&[("default", s("role:member"))]),
            Some("no:such"),
        ),
        (
            "no default for an unknown name",
            json_policy(&[("a:b", s("@"))]),
            Some("no:such"),
        ),
        (
            "duplicate YAML key, last wins",
            ("p.yaml".into(), "\"a\": \"!\"\n\"a\": \"@\"\n".into()),
            Some("a"),
        ),
        (
            "JSON allow-all",
            json_policy(&[("join:create", s(""))]),
            None,
        ),
        ("empty file", ("p.yaml".into(), String::new()), None),
        (
            "bare YAML boolean",
            ("p.yaml".into(), "\"join:create\": true\n".into()),
            None,
        ),
        (
            "YAML override",
            ("p.yaml".into(), "\"join:create\": \"role:member\"\n".into()),
            None,
        ),
    ];
    for (label, policy, rule) in more {
        out.push(Case {
            label: format!("spec §8: {label}"),
            policy,
            access: base_token(),
            target: None,
            rule: rule.map(str::to_string),
            admin_flag: None,
        });
    }
    // §9, the observed checker runs.
    let p9 = (
        "policy.yaml".to_string(),
        [
            "\"context_is_admin\": \"role:admin\"",
            "\"service_project\": \"project_name:service\"",
            "\"compute_service_user\": \"user_name:nova and rule:service_project\"",
            "\"join:create\": \"rule:compute_service_user\"",
            "\"join:member\": \"role:member\"",
            "\"join:admin\": \"is_admin:True\"",
            "\"join:owner\": \"project_id:%(project_id)s\"",
            "\"join:user\": \"user.name:nova\"",
            "\"join:target\": \"project_id:%(target.project.id)s\"",
            "\"join:broken\": \"name:100%\"",
        ]
        .join("\n")
            + "\n",
    );
    let a9 = json!({"token": {"user": {"id": "u1", "name": "nova"}, "project": {"id": "p1", "name": "service"},
                              "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}]}});
    let t9 = json!({"target": {"project": {"id": "p1"}}, "project_id": "zzz"});
    for (label, target, rule, admin) in [
        ("all rules", None, None, None),
        (
            "--is_admin --rule join:admin",
            None,
            Some("join:admin"),
            Some(true),
        ),
        (
            "--rule service_project",
            None,
            Some("service_project"),
            None,
        ),
        ("--target", Some(t9.clone()), None, None),
    ] {
        out.push(Case {
            label: format!("spec §9: {label}"),
            policy: p9.clone(),
            access: a9.clone(),
            target,
            rule: rule.map(str::to_string),
            admin_flag: admin,
        });
    }
    // Integers beyond 64 bits in the target: Python's json keeps them exact.
    let big: Value = serde_json::from_str(
        r#"{"n": 1180591620717411303424, "m": -99999999999999999999999,
            "deep": {"x": 340282366920938463463374607431768211457}, "l": [18446744073709551616], "huge": 1e400}"#,
    )
    .unwrap();
    let big_policy = (
        "policy.yaml".to_string(),
        [
            "\"b:s\": \"1180591620717411303424:%(n)s\"",
            "\"b:neg\": \"'-99999999999999999999999':%(m)s\"",
            "\"b:d\": \"'1180591620717411303424':%(n)d\"",
            "\"b:x\": \"'0x400000000000000000':%(n)#x\"",
            "\"b:o\": \"'200000000000000000000000':%(n)o\"",
            "\"b:pad\": \"'      -99999999999999999999999':%(m)30d\"",
            "\"b:deep\": \"340282366920938463463374607431768211457:%(deep.x)s\"",
            "\"b:list\": \"'[18446744073709551616]':%(l)s\"",
            "\"b:role\": \"role:%(n)s\"",
            "\"b:c\": \"'x':%(n)c\"",
            "\"b:f\": \"'1.1805916207174113e+21':%(n)s\"",
            "\"b:inf\": \"'inf':%(huge)s\"",
            "\"b:infd\": \"'x':%(huge)d\"",
            "\"b:inff\": \"'inf':%(huge)f\"",
        ]
        .join("\n")
            + "\n",
    );
    out.push(Case {
        label: "integers beyond 64 bits in the target".into(),
        policy: big_policy,
        access: base_token(),
        target: Some(big),
        rule: None,
        admin_flag: None,
    });
    // Rule names that are not text: no lookup by name reaches them; listing
    // every rule fails, checking one works.
    let odd = (
        "policy.yaml".to_string(),
        "1: \"role:admin\"\n\"t\": \"rule:1\"\n\"u\": \"rule:True\"\n\"a:b\": \"@\"\n\
         \"default\": \"!\"\ntrue: \"@\"\n2026-01-01: \"@\"\n~: \"@\"\n"
            .to_string(),
    );
    for rule in [
        Some("t"),
        Some("u"),
        Some("1"),
        Some("a:b"),
        Some("True"),
        None,
    ] {
        out.push(Case {
            label: format!("rule names that are not text, --rule {rule:?}"),
            policy: odd.clone(),
            access: base_token(),
            target: None,
            rule: rule.map(str::to_string),
            admin_flag: None,
        });
    }
    out.push(Case {
        label: "spec §9: default rule and --rule nope".into(),
        policy: (
            "policy.yaml".into(),
            "\"default\": \"role:member\"\n".into(),
        ),
        access: a9,
        target: None,
        rule: Some("nope".into()),
        admin_flag: None,
    });
    out
}

// ------------------------------------------------------------ random cases

struct Gen {
    rng: StdRng,
    names: Vec<String>,
}

impl Gen {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap()
    }

    fn ws(&mut self) -> &'static str {
        match self.rng.gen_range(0..20) {
            0 => "\t",
            1 => "  ",
            2 => "\n",
            _ => " ",
        }
    }

    fn op(&mut self, word: &str) -> String {
        match self.rng.gen_range(0..8) {
            0 => word.to_uppercase(),
            1 => {
                let mut c = word.chars();
                let f = c.next().unwrap().to_uppercase().collect::<String>();
                f + c.as_str()
            }
            _ => word.to_string(),
        }
    }

    fn kind(&mut self) -> String {
        let paths = [
            "user.name",
            "user.id",
            "user.domain.id",
            "project.name",
            "project.id",
            "roles",
            "user_id",
            "project_id",
            "is_admin",
            "system_scope",
            "nested.a.b",
            "list.id",
            "list",
            "tags",
            "num",
            "flag",
            "nothing",
            "missing",
            "user_id.x",
            "roles.name",
            "catalog.endpoints.interface",
            "user",
            "project-id",
            "a-b",
            "f(x)",
            "x[0]",
            "methods",
            "is_domain",
        ];
        let literals = [
            "True", "False", "None", "5", "'member'", "\"nova\"", "0x5", "-5", "1.5", "(1,)", "[]",
            "'True'", "b'x'", "1e3", "True", "'u1'",
        ];
        let bad = ["1abc", "a..b", "$x", "", "a.1", "class"];
        match self.rng.gen_range(0..20) {
            0..=12 => self.pick(&paths).to_string(),
            13..=17 => self.pick(&literals).to_string(),
            _ => self.pick(&bad).to_string(),
        }
    }

    fn matcher(&mut self) -> String {
        let consts = [
            "nova",
            "member",
            "admin",
            "True",
            "False",
            "None",
            "5",
            "p1",
            "u1",
            "service",
            "2",
            "x",
            "Nova",
            "all",
            "default",
            "1500.0",
            "[]",
            "public",
            "password",
            "['a', 'b']",
            "1.5",
            "b'x'",
        ];
        let subs = [
            "%(project_id)s",
            "%(user_id)s",
            "%(target.project.id)s",
            "%(missing)s",
            "%(num)s",
            "%(flag)s",
            "%(enabled)s",
            "%(name)s",
            "%(tags)s",
            "%(none_val)s",
            "pre-%(user_id)s",
        ];
        let bad = [
            "100%",
            "%z",
            "%(num)d",
            "%(name)d",
            "%(num)05d",
            "%s",
            "%(a",
            "%%",
        ];
        match self.rng.gen_range(0..20) {
            0..=10 => self.pick(&consts).to_string(),
            11..=17 => self.pick(&subs).to_string(),
            _ => self.pick(&bad).to_string(),
        }
    }

    fn check(&mut self) -> String {
        match self.rng.gen_range(0..40) {
            0..=1 => "@".into(),
            2..=3 => "!".into(),
            4..=13 => {
                let r = self.pick(&[
                    "admin",
                    "Admin",
                    "ADMIN",
                    "member",
                    "reader",
                    "service",
                    "nova",
                    "compute:admin",
                    "%(role_name)s",
                    "%(missing)s",
                    "MEMBER",
                    "",
                ]);
                format!("role:{r}")
            }
            14..=19 => {
                let mut pool: Vec<String> = self.names.clone();
                pool.extend(["missing".to_string(), "default".to_string()]);
                format!("rule:{}", pool.choose(&mut self.rng).unwrap())
            }
            20 => self
                .pick(&["admin", "'role:admin'", "\"x:y\"", "role:x)y"])
                .to_string(),
            _ => format!("{}:{}", self.kind(), self.matcher()),
        }
    }

    fn expr(&mut self, depth: u32) -> String {
        if depth == 0 {
            return self.check();
        }
        match self.rng.gen_range(0..12) {
            0..=3 => self.check(),
            4 => format!("{}{}{}", self.op("not"), self.ws(), self.expr(depth - 1)),
            5 => {
                let inner = self.expr(depth - 1);
                if self.rng.gen_bool(0.8) {
                    format!("({inner})")
                } else {
                    format!("( {inner} )")
                }
            }
            6..=8 => {
                let (a, b) = (self.expr(depth - 1), self.expr(depth - 1));
                format!("{a}{}{}{}{b}", self.ws(), self.op("and"), self.ws())
            }
            _ => {
                let (a, b) = (self.expr(depth - 1), self.expr(depth - 1));
                format!("{a}{}{}{}{b}", self.ws(), self.op("or"), self.ws())
            }
        }
    }

    fn rule_value(&mut self) -> Value {
        match self.rng.gen_range(0..30) {
            0 => json!(""),
            1 => json!("@"),
            2 => json!("!"),
            3..=4 => {
                let n = self.rng.gen_range(0..3);
                let outer: Vec<Value> = (0..n)
                    .map(|_| match self.rng.gen_range(0..4) {
                        0 => json!([]),
                        1 => json!(self.check()),
                        _ => {
                            let k = self.rng.gen_range(1..3);
                            json!((0..k).map(|_| self.check()).collect::<Vec<_>>())
                        }
                    })
                    .collect();
                Value::Array(outer)
            }
            5..=6 => {
                // Deliberate parse errors.
                let e = self.expr(1);
                let broken = match self.rng.gen_range(0..5) {
                    0 => format!("{e} or"),
                    1 => format!("and {e}"),
                    2 => format!("({e}"),
                    3 => format!("{e})"),
                    _ => format!("not {e} not"),
                };
                json!(broken)
            }
            _ => {
                let depth = self.rng.gen_range(0..4);
                json!(self.expr(depth))
            }
        }
    }

    fn policy(&mut self) -> (String, String) {
        let pool = [
            "join:create",
            "join:member",
            "a:b",
            "x:y:z",
            "base",
            "helper",
            "context_is_admin",
            "Join:Upper",
            "service_project",
            "compute:x",
            "zz:last",
        ];
        let n = self.rng.gen_range(1..7);
        let mut names: Vec<String> = pool
            .choose_multiple(&mut self.rng, n)
            .map(|s| s.to_string())
            .collect();
        if self.rng.gen_bool(0.2) {
            names.push("default".into());
        }
        self.names = names.clone();
        let rules: Vec<(String, Value)> = names
            .iter()
            .map(|n| (n.clone(), self.rule_value()))
            .collect();
        if self.rng.gen_bool(0.5) {
            let mut m = Map::new();
            for (k, v) in rules {
                m.insert(k, v);
            }
            (
                "policy.json".into(),
                serde_json::to_string_pretty(&Value::Object(m)).unwrap(),
            )
        } else {
            let mut text = String::from("# generated\n");
            for (k, v) in rules {
                let plain = v.as_str().is_some_and(|s| {
                    !s.is_empty()
                        && s.chars().next().unwrap().is_ascii_alphabetic()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c))
                        && !s.ends_with(':')
                });
                let value = if plain && self.rng.gen_bool(0.5) {
                    v.as_str().unwrap().to_string()
                } else {
                    v.to_string()
                };
                text.push_str(&format!("{}: {value}\n", Value::String(k)));
            }
            ("policy.yaml".into(), text)
        }
    }

    fn access(&mut self) -> Value {
        let roles_pool = [
            "admin",
            "Admin",
            "member",
            "reader",
            "service",
            "nova",
            "compute:admin",
            "MEMBER",
        ];
        let k = self.rng.gen_range(0..4);
        let roles: Vec<Value> = roles_pool
            .choose_multiple(&mut self.rng, k)
            .map(|r| json!({"id": format!("id-{r}"), "name": r}))
            .collect();
        let user = self.pick(&["nova", "admin", "demo"]);
        let mut token = json!({
            "user": {"id": self.pick(&["u1", "u2"]), "name": user, "domain": {"id": "default", "name": "Default"}},
            "roles": roles,
            "methods": ["password"],
            "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
            "expires_at": "2030-01-01T00:00:00.000000Z",
            "is_domain": false,
        });
        match self.rng.gen_range(0..10) {
            0 => token["system"] = json!({"all": true}),
            1 => {}
            _ => {
                token["project"] = json!({"id": self.pick(&["p1", "p2"]), "name": self.pick(&["service", "services", "demo"]),
                                          "domain": {"id": "default", "name": "Default"}})
            }
        }
        for (key, value) in [
            ("num", json!(5)),
            ("flag", json!(true)),
            ("nothing", json!(null)),
            ("tags", json!(["a", "b"])),
            ("nested", json!({"a": {"b": "x"}})),
            ("list", json!([{"id": "1"}, {"id": "2"}])),
            (
                "catalog",
                json!([{"type": "identity", "endpoints": [{"interface": "public"}]}]),
            ),
        ] {
            if self.rng.gen_bool(0.3) {
                token[key] = value;
            }
        }
        json!({ "token": token })
    }

    fn target(&mut self) -> Option<Value> {
        if self.rng.gen_bool(0.4) {
            return None;
        }
        let mut t = Map::new();
        for (key, value) in [
            ("project_id", json!(self.pick(&["p1", "p2"]))),
            ("user_id", json!("u1")),
            (
                "target",
                json!({"project": {"id": self.pick(&["p1", "zzz"])}}),
            ),
            ("num", json!(5)),
            ("flag", json!("True")),
            ("enabled", json!(true)),
            ("none_val", json!(null)),
            ("tags", json!(["a"])),
            ("name", json!("service")),
            ("role_name", json!("MEMBER")),
        ] {
            if self.rng.gen_bool(0.6) {
                t.insert(key.into(), value);
            }
        }
        Some(Value::Object(t))
    }

    fn case(&mut self, i: usize) -> Case {
        let policy = self.policy();
        let rule = match self.rng.gen_range(0..8) {
            0 => Some(self.names.choose(&mut self.rng).unwrap().clone()),
            1 => Some(self.pick(&["missing:rule", "nope"]).to_string()),
            _ => None,
        };
        let admin_flag = match self.rng.gen_range(0..10) {
            0..=2 => Some(true),
            3 => Some(false),
            _ => None,
        };
        Case {
            label: format!("random #{i}"),
            policy,
            access: self.access(),
            target: self.target(),
            rule,
            admin_flag,
        }
    }
}

fn random_cases() -> Vec<Case> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(SEED),
        names: Vec::new(),
    };
    (0..RANDOM_CASES).map(|i| g.case(i)).collect()
}

fn report(case: &Case, argv: &[String], ours: &Outcome, theirs: &Outcome, why: &str) -> String {
    format!(
        "{}: {why}\n  argv: {argv:?}\n  policy ({}):\n{}\n  novajoin (rc {}):\n{}  oslo (rc {}):\n{}",
        case.label, case.policy.0, case.policy.1, ours.rc, ours.out, theirs.rc, theirs.out
    )
}

#[test]
fn policy_check_matches_oslopolicy_checker() {
    let venv = venv();
    let work = tempfile::tempdir().unwrap();
    let spec = spec_cases();
    let random = random_cases();
    assert!(random.len() >= 500);
    let all: Vec<Case> = spec.iter().chain(&random).cloned().collect();
    let argvs: Vec<Vec<String>> = all
        .iter()
        .enumerate()
        .map(|(i, c)| c.write(&work.path().join(format!("case-{i}"))))
        .collect();
    let theirs = run_oslo_batch(&venv, work.path(), &argvs);
    assert_eq!(theirs.len(), all.len());
    let mut failures = Vec::new();
    let (mut passed_lines, mut exception_lines, mut nonzero) = (0, 0, 0);
    for ((case, argv), theirs) in all.iter().zip(&argvs).zip(&theirs) {
        let ours = run_novajoin(argv);
        passed_lines += ours
            .out
            .lines()
            .filter(|l| l.starts_with("passed: "))
            .count();
        exception_lines += ours
            .out
            .lines()
            .filter(|l| l.starts_with("exception: "))
            .count();
        nonzero += (ours.rc != 0) as usize;
        if let Some(why) = compare(&ours, theirs) {
            failures.push(report(case, argv, &ours, theirs, &why));
        }
    }
    eprintln!("{} cases: {passed_lines} passed lines, {exception_lines} exception lines, {nonzero} failed runs", all.len());
    // The generator must exercise every outcome, or the comparison is hollow.
    assert!(passed_lines > 100 && exception_lines > 20 && nonzero > 5,
        "generator too narrow: {passed_lines} passed lines, {exception_lines} exception lines, {nonzero} failed runs");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        all.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn spec_examples_match_the_console_script() {
    let venv = venv();
    let work = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, case) in spec_cases()
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.label.contains("row"))
    {
        let argv = case.write(&work.path().join(format!("case-{i}")));
        let ours = run_novajoin(&argv);
        let theirs = run_oslo_script(&venv, &argv);
        if let Some(why) = compare(&ours, &theirs) {
            failures.push(report(case, &argv, &ours, &theirs, &why));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_options_and_missing_required_ones_fail_like_the_original() {
    let venv = venv();
    let ours = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["policy-check", "--enforce_scope"])
        .output()
        .unwrap();
    let theirs = Command::new(venv.join("bin/oslopolicy-checker"))
        .arg("--enforce_scope")
        .output()
        .unwrap();
    assert!(!ours.status.success() && !theirs.status.success());
    let ours = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["policy-check", "--policy", "x"])
        .output()
        .unwrap();
    let theirs = Command::new(venv.join("bin/oslopolicy-checker"))
        .args(["--policy", "x"])
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
}

// ------------------------------------------------ validator, list-redundant

/// One run of `policy-validate` / `policy-list-redundant` against
/// oslopolicy-validator / oslopolicy-list-redundant: a join.conf naming
/// the policy file (and directories), and the files.
struct ToolCase {
    label: &'static str,
    /// join.conf's [oslo_policy] lines (`{dir}` stands for the case's directory).
    oslo_policy: &'static str,
    /// Files of the case: relative path and text.
    files: Vec<(&'static str, &'static str)>,
    namespace: &'static str,
}

fn tool_cases() -> Vec<ToolCase> {
    let c = |label, oslo_policy, files: Vec<(&'static str, &'static str)>| ToolCase {
        label,
        oslo_policy,
        files,
        namespace: "novajoin",
    };
    vec![
        c(
            "clean override, default file name",
            "",
            vec![("policy.yaml", "\"service_project\": \"project_name:services\"\n")],
        ),
        c(
            "redundant rules, in file order",
            "policy_file = policy.yaml\n",
            vec![(
                "policy.yaml",
                "\"context_is_admin\": \"(role:admin)\"\n\"service_project\": \"project_name:services\"\n\
                 \"join:create\": \"rule:compute_service_user\"\n\"join:create:service_on_other_host\": \"!\"\n",
            )],
        ),
        c(
            "JSON content in policy.yaml",
            "",
            vec![(
                "policy.yaml",
                "{\"join:create\": \"rule:compute_service_user\", \"compute_service_user\": \"user_name:nova\"}",
            )],
        ),
        c(
            "the shipped sample (comments only)",
            "",
            vec![("policy.yaml", "# every rule commented out\n#\"join:create\": \"@\"\n")],
        ),
        c(
            "unknown rule",
            "",
            vec![("policy.yaml", "\"a:b\": \"@\"\n\"join:create\": \"@\"\n")],
        ),
        c(
            "unparsable rule",
            "",
            vec![("policy.yaml", "\"join:create\": \"role:admin or\"\n")],
        ),
        c(
            "a parenthesised deny reads as unparsable, as oslo.policy tells it",
            "",
            vec![("policy.yaml", "\"join:create\": \"( ! )\"\n\"x:y\": \"!\"\n")],
        ),
        c(
            "list-of-lists rules",
            "",
            vec![(
                "policy.yaml",
                "\"context_is_admin\": [[\"role:admin\"]]\n\"join:create\": [[\"!\"]]\n\"service_project\": []\n",
            )],
        ),
        c(
            "undefined reference",
            "",
            vec![("policy.yaml", "\"join:create\": \"rule:nope or role:admin\"\n")],
        ),
        c(
            "undefined reference under not",
            "",
            vec![("policy.yaml", "\"join:create\": \"not rule:nope\"\n")],
        ),
        c(
            "cycle",
            "",
            vec![(
                "policy.yaml",
                "\"join:create\": \"rule:compute_service_user\"\n\"compute_service_user\": \"rule:service_project and rule:join:create\"\n",
            )],
        ),
        c(
            "self reference under not",
            "",
            vec![("policy.yaml", "\"join:create\": \"not rule:join:create\"\n")],
        ),
        c(
            "everything at once",
            "",
            vec![(
                "policy.yaml",
                "\"z:z\": \"rule:missing\"\n\"join:create\": \"(role:a\"\n\"context_is_admin\": \"role:admin\"\n\"b\": \"role:x or\"\n",
            )],
        ),
        c(
            "missing policy file",
            "policy_file = missing.yaml\n",
            vec![],
        ),
        c(
            "only policy.json, default name",
            "",
            vec![("policy.json", "{\"join:create\": \"@\"}")],
        ),
        c(
            "policy.json named explicitly",
            "policy_file = policy.json\n",
            vec![("policy.json", "{\"join:create\": \"rule:compute_service_user\", \"a\": \"!\"}")],
        ),
        c(
            "absolute policy_file",
            "policy_file = {dir}/p.yaml\n",
            vec![("p.yaml", "\"context_is_admin\": \"role:admin\"\n")],
        ),
        c(
            "policy directory overrides the file in place",
            "policy_dirs = policy.d\n",
            vec![
                ("policy.yaml", "\"join:create\": \"rule:compute_service_user\"\n\"service_project\": \"project_name:service\"\n"),
                ("policy.d/10-a.yaml", "\"join:create\": \"role:admin\"\n\"extra:rule\": \"@\"\n"),
                ("policy.d/.hidden", "\"join:create\": \"role:hidden\"\n"),
            ],
        ),
        c(
            "YAML syntax error",
            "",
            vec![("policy.yaml", "\"join:create\": [\n")],
        ),
        c(
            "a rule that is not text or a list",
            "",
            vec![("policy.yaml", "\"join:create\": true\n")],
        ),
        ToolCase {
            label: "another namespace",
            oslo_policy: "",
            files: vec![("policy.yaml", "\"join:create\": \"@\"\n")],
            namespace: "nova",
        },
    ]
}

#[test]
fn validate_and_list_redundant_match_the_oslo_tools() {
    let venv = venv();
    let work = tempfile::tempdir().unwrap();
    let sample = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["policy-sample", "--format", "json"])
        .output()
        .unwrap();
    assert!(sample.status.success());
    let defaults = work.path().join("defaults.json");
    std::fs::write(&defaults, &sample.stdout).unwrap();

    let cases = tool_cases();
    let mut runs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = work.path().join(format!("tools-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &case.files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let conf = dir.join("join.conf");
        let section = case
            .oslo_policy
            .replace("{dir}", &dir.display().to_string());
        std::fs::write(&conf, format!("[oslo_policy]\n{section}")).unwrap();
        for tool in ["validate", "list-redundant"] {
            let argv = vec![
                format!("--namespace={}", case.namespace),
                format!("--config-file={}", conf.display()),
            ];
            runs.push((case.label, tool, dir.clone(), argv));
        }
    }
    let batch: Vec<Value> = runs
        .iter()
        .map(|(_, tool, dir, argv)| json!({"tool": tool, "argv": argv, "cwd": dir}))
        .collect();
    let cases_file = work.path().join("tool-cases.json");
    let results_file = work.path().join("tool-results.json");
    std::fs::write(&cases_file, serde_json::to_string(&batch).unwrap()).unwrap();
    let driver =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_check/oslo_tools_driver.py");
    let st = Command::new(venv.join("bin/python"))
        .arg(driver)
        .arg(&defaults)
        .arg(&cases_file)
        .arg(&results_file)
        .status()
        .expect("run the oslo.policy tools driver");
    assert!(st.success(), "the oslo.policy tools driver failed: {st}");
    let theirs: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&results_file).unwrap()).unwrap();
    assert_eq!(theirs.len(), runs.len());

    let mut failures = Vec::new();
    let (mut printed, mut failed_runs) = (0, 0);
    for ((label, tool, dir, argv), theirs) in runs.iter().zip(&theirs) {
        let o = Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .arg(format!("policy-{tool}"))
            .args(argv)
            .current_dir(dir)
            .output()
            .expect("run novajoin");
        let ours_out = String::from_utf8_lossy(&o.stdout).into_owned();
        let ours_rc = o.status.code().unwrap_or(-1);
        let (their_out, their_rc) = (
            theirs["out"].as_str().unwrap(),
            theirs["rc"].as_i64().unwrap() as i32,
        );
        printed += ours_out.lines().count();
        failed_runs += (ours_rc != 0) as usize;
        if ours_out != their_out || ours_rc != their_rc {
            failures.push(format!(
                "{label} ({tool}):\n  novajoin (rc {ours_rc}):\n{ours_out}  stderr: {}\n  oslo (rc {their_rc}):\n{their_out}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    // Every kind of outcome is exercised, or the comparison is hollow.
    assert!(
        printed > 15 && failed_runs > 8,
        "{printed} lines, {failed_runs} failed runs"
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs differ:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}
