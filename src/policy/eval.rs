//! Evaluating a check tree against a target and credentials, with
//! oslo.policy's semantics (see the module documentation of [`super`]).

use serde_json::{Map, Value};

use super::error::{EvalError, EvalErrorKind as K};
use super::parser::Check;
use super::pyformat::Expanded;
use super::pyliteral::KindClass;
use super::pyvalue::{py_str, type_name};

/// Where `rule:NAME` references are resolved.
pub trait RuleLookup {
    /// The rule `name` refers to, with the name it resolved to (the default
    /// rule's name when `name` is undefined and a default rule exists).
    fn lookup(&self, name: &str) -> Option<(&str, &Check)>;
}

/// How deep `rule:` references may nest before evaluation stops. Cycles
/// are detected exactly; this only bounds absurdly long chains.
const MAX_DEPTH: usize = 200;

struct Eval<'a> {
    rules: &'a dyn RuleLookup,
    target: &'a Map<String, Value>,
    creds: &'a Map<String, Value>,
    stack: Vec<&'a str>,
}

/// Evaluates `check` (the rule named `name`, or `None` for an anonymous
/// check) for `target` and `creds`.
pub fn evaluate<'a>(
    check: &'a Check,
    name: Option<&'a str>,
    rules: &'a dyn RuleLookup,
    target: &'a Map<String, Value>,
    creds: &'a Map<String, Value>,
) -> Result<bool, EvalError> {
    let mut e = Eval {
        rules,
        target,
        creds,
        stack: name.into_iter().collect(),
    };
    e.check(check)
}

impl<'a> Eval<'a> {
    fn check(&mut self, c: &'a Check) -> Result<bool, EvalError> {
        match c {
            Check::True => Ok(true),
            Check::False => Ok(false),
            Check::Not(inner) => Ok(!self.check(inner)?),
            Check::And(cs) => {
                for c in cs {
                    if !self.check(c)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Check::Or(cs) => {
                for c in cs {
                    if self.check(c)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Check::Rule(name) => {
                let Some((resolved, rule)) = self.rules.lookup(name) else {
                    return Ok(false);
                };
                if self.stack.contains(&resolved) || self.stack.len() >= MAX_DEPTH {
                    return Err(EvalError::new(K::RecursionError, format!(
                        "maximum recursion depth exceeded: rule {resolved:?} refers back to itself")));
                }
                self.stack.push(resolved);
                let r = self.check(rule);
                self.stack.pop();
                match r {
                    // oslo's RuleCheck treats any KeyError below it as "no such rule".
                    Err(e) if e.kind == K::KeyError => Ok(false),
                    other => other,
                }
            }
            Check::Role(t) => {
                let matched = match t.expand(self.target)? {
                    Expanded::Text(s) => s,
                    Expanded::MissingKey(_) => return Ok(false),
                };
                let Some(roles) = self.creds.get("roles") else {
                    return Ok(false);
                };
                let want = matched.to_lowercase();
                let mut found = false;
                let mut check_one = |r: &str| found |= r.to_lowercase() == want;
                match roles {
                    Value::Array(items) => {
                        for r in items {
                            match r {
                                Value::String(s) => check_one(s),
                                other => {
                                    return Err(EvalError::new(
                                        K::AttributeError,
                                        format!(
                                            "'{}' object has no attribute 'lower'",
                                            type_name(other)
                                        ),
                                    ))
                                }
                            }
                        }
                    }
                    Value::Object(m) => m.keys().for_each(|k| check_one(k)),
                    Value::String(s) => {
                        let mut buf = [0u8; 4];
                        s.chars().for_each(|ch| check_one(ch.encode_utf8(&mut buf)))
                    }
                    other => {
                        return Err(EvalError::new(
                            K::TypeError,
                            format!("'{}' object is not iterable", type_name(other)),
                        ))
                    }
                }
                Ok(found)
            }
            Check::Generic { class, matcher, .. } => {
                let matched = match matcher.expand(self.target)? {
                    Expanded::Text(s) => s,
                    Expanded::MissingKey(_) => return Ok(false),
                };
                match class {
                    KindClass::Raises(e) => Err(e.clone()),
                    KindClass::Literal(s) => Ok(*s == matched),
                    KindClass::Path(segs) => {
                        let (first, rest) = segs.split_first().expect("split yields one segment");
                        match self.creds.get(first) {
                            Some(v) => step(v, rest, &matched),
                            None => Ok(false),
                        }
                    }
                }
            }
            Check::Http { https, url } => {
                if *https {
                    if let Expanded::MissingKey(k) = url.expand(self.target)? {
                        return Err(EvalError::new(K::KeyError, format!("'{k}'")));
                    }
                }
                Err(EvalError::new(K::AttributeError,
                    "remote http/https checks are not evaluated by novajoin (oslo.policy needs --enforcer_config for them)"))
            }
        }
    }
}

/// Whether evaluating `check` may read one of `keys` from the target or the
/// credentials, following `rule:` references through `rules`. Errs towards
/// "yes": a reference cycle or an overlong chain counts as reading them. A
/// "no" lets a caller reuse a decision for inputs that differ only in
/// those keys.
pub fn may_read_any(check: &Check, rules: &dyn RuleLookup, keys: &[&str]) -> bool {
    fn walk<'a>(
        c: &'a Check,
        rules: &'a dyn RuleLookup,
        keys: &[&str],
        stack: &mut Vec<&'a str>,
    ) -> bool {
        match c {
            Check::True | Check::False => false,
            Check::Not(inner) => walk(inner, rules, keys, stack),
            Check::And(cs) | Check::Or(cs) => cs.iter().any(|c| walk(c, rules, keys, stack)),
            Check::Rule(name) => {
                let Some((resolved, rule)) = rules.lookup(name) else {
                    return false;
                };
                if stack.contains(&resolved) || stack.len() >= MAX_DEPTH {
                    return true;
                }
                stack.push(resolved);
                let reads = walk(rule, rules, keys, stack);
                stack.pop();
                reads
            }
            Check::Role(t) => keys.contains(&"roles") || t.may_read_any(keys),
            Check::Generic { class, matcher, .. } => {
                let reads_creds = match class {
                    KindClass::Path(segs) => {
                        segs.first().is_some_and(|k| keys.contains(&k.as_str()))
                    }
                    KindClass::Literal(_) | KindClass::Raises(_) => false,
                };
                reads_creds || matcher.may_read_any(keys)
            }
            Check::Http { url, .. } => url.may_read_any(keys),
        }
    }
    walk(check, rules, keys, &mut Vec::new())
}

/// oslo's `_find_in_dict`: follow `path` into `value`; a list anywhere on
/// the way matches if any element matches the rest of the path.
fn find_in(value: &Value, path: &[String], matched: &str) -> Result<bool, EvalError> {
    let Some((key, rest)) = path.split_first() else {
        return Ok(match value {
            Value::String(s) => s == matched,
            other => py_str(other) == matched,
        });
    };
    let next = match value {
        Value::Object(m) => match m.get(key) {
            Some(v) => v,
            None => return Ok(false),
        },
        Value::String(_) => {
            return Err(EvalError::new(
                K::TypeError,
                "string indices must be integers, not 'str'",
            ))
        }
        Value::Array(_) => {
            return Err(EvalError::new(
                K::TypeError,
                "list indices must be integers or slices, not str",
            ))
        }
        other => {
            return Err(EvalError::new(
                K::TypeError,
                format!("'{}' object is not subscriptable", type_name(other)),
            ))
        }
    };
    step(next, rest, matched)
}

/// After a lookup: a list matches if any element matches the rest.
fn step(next: &Value, rest: &[String], matched: &str) -> Result<bool, EvalError> {
    if let Value::Array(items) = next {
        for item in items {
            if find_in(item, rest, matched)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    find_in(next, rest, matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parser::parse_text;
    use serde_json::json;
    use std::collections::HashMap;

    struct Rules(HashMap<String, Check>, Option<String>);

    impl RuleLookup for Rules {
        fn lookup(&self, name: &str) -> Option<(&str, &Check)> {
            if let Some((k, v)) = self.0.get_key_value(name) {
                return Some((k.as_str(), v));
            }
            let d = self.1.as_ref()?;
            self.0.get_key_value(d).map(|(k, v)| (k.as_str(), v))
        }
    }

    fn rules(pairs: &[(&str, &str)]) -> Rules {
        Rules(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), parse_text(v).check))
                .collect(),
            Some("default".into()),
        )
    }

    fn creds() -> Value {
        json!({"user_id":"u1","user_name":"nova","project_id":"p1","project_name":"service",
               "roles":["Admin","member"],"is_admin":false,"domain_id":null,
               "nested":{"a":{"b":"x"}},"list":[{"id":"1"},{"id":"2"}]})
    }

    fn target() -> Map<String, Value> {
        json!({"project_id":"p1","user.id":"u1","name":"service","num":5,"enabled":true,
               "flag":"True","role_name":"MEMBER","none_val":null})
        .as_object()
        .unwrap()
        .clone()
    }

    /// Evaluates `rule` as `t` with `others` defined, like the spec's table.
    fn run(
        rule: &str,
        others: &[(&str, &str)],
        creds: Value,
        target: Map<String, Value>,
    ) -> Result<bool, EvalError> {
        let mut all: Vec<(&str, &str)> = others.to_vec();
        all.push(("t", rule));
        let r = rules(&all);
        let check = r.0.get("t").unwrap().clone();
        evaluate(&check, Some("t"), &r, &target, creds.as_object().unwrap())
    }

    fn ok(rule: &str) -> bool {
        run(rule, &[], creds(), target()).unwrap()
    }

    #[test]
    fn the_spec_table() {
        let allow = [
            "",
            "@",
            "role:admin",
            "role:ADMIN",
            "user_name:nova",
            "project_id:%(project_id)s",
            "role:admin or role:foo and role:bar",
            "True:%(enabled)s",
            "'service':%(name)s",
            "nested.a.b:x",
            "list.id:2",
            "roles:member",
            "role:foo OR role:admin",
            "((role:admin))",
            "role:%(role_name)s",
            "5:%(num)s",
            "project_id:p1",
            "user_id:%(user.id)s",
            "domain_id:None",
            "domain_id:%(none_val)s",
            "! or role:admin",
            "role:foo\tor\nrole:admin",
            "role:admin and role:member and user_name:nova",
            "role:foo or role:bar and role:admin or user_name:nova",
            "not not role:admin",
            "is_admin:False",
            "(role:foo or role:admin)",
        ];
        for r in allow {
            assert!(ok(r), "{r:?} should allow");
        }
        let deny = [
            "!",
            "user_name:Nova",
            "project_id:%(missing)s",
            "not role:admin",
            "(role:admin or role:foo) and role:bar",
            "not role:foo and role:bar",
            "not (role:foo or role:member)",
            "is_admin:True",
            "roles:member2",
            "roles:admin",
            "rule:nope",
            "role:admin or",
            "admin",
            "123:%(num)s",
            "not",
            "@ and role:foo",
            "'role:admin'",
            "true:%(flag)s",
            "user_name:nova:x",
            "role:",
            "(role:admin",
        ];
        for r in deny {
            assert!(!ok(r), "{r:?} should deny");
        }
    }

    #[test]
    fn the_spec_table_with_changes() {
        let mut c = creds();
        c["is_admin"] = json!(true);
        assert!(run("is_admin:True", &[], c.clone(), target()).unwrap());
        assert!(!run("is_admin:true", &[], c, target()).unwrap());
        assert!(run("rule:nope", &[("default", "@")], creds(), target()).unwrap());
        assert!(run(
            "rule:a",
            &[("a", "rule:b"), ("b", "role:admin")],
            creds(),
            target()
        )
        .unwrap());
        let nested = json!({"user": {"id": "u1"}}).as_object().unwrap().clone();
        assert!(!run("user_id:%(user.id)s", &[], creds(), nested).unwrap());
        assert!(!run("role:admin", &[], json!({"user_id": "u1"}), target()).unwrap());
        let mut c = creds();
        c["roles"] = json!(["compute:admin"]);
        assert!(run("role:compute:admin", &[], c, target()).unwrap());
        let mut c = creds();
        c["num"] = json!(5);
        assert!(run("num:5", &[], c, target()).unwrap());
        let nj = [
            ("service_project", "project_name:service"),
            (
                "compute_service_user",
                "user_name:nova and rule:service_project",
            ),
        ];
        assert!(run("rule:compute_service_user", &nj, creds(), target()).unwrap());
        let mut c = creds();
        c["project_name"] = json!("services");
        assert!(!run("rule:compute_service_user", &nj, c, target()).unwrap());
    }

    #[test]
    fn raising_cases() {
        assert_eq!(
            run("1abc:x", &[], creds(), target()).unwrap_err().kind,
            K::SyntaxError
        );
        assert_eq!(
            run("name:100%", &[], creds(), target())
                .unwrap_err()
                .message,
            "incomplete format"
        );
        // A missing target key wins over a later format error, as in Python.
        assert!(!run("name:%(missing)s%", &[], creds(), target()).unwrap());
        // Paths through a string raise TypeError.
        assert_eq!(
            run("user_name.x:y", &[], creds(), target())
                .unwrap_err()
                .kind,
            K::TypeError
        );
        // Cycles raise; unreached cycles do not.
        assert_eq!(
            run(
                "rule:a",
                &[("a", "rule:b"), ("b", "rule:a")],
                creds(),
                target()
            )
            .unwrap_err()
            .kind,
            K::RecursionError
        );
        assert!(run("@ or rule:t", &[], creds(), target()).unwrap());
        assert_eq!(
            run("rule:t or @", &[], creds(), target()).unwrap_err().kind,
            K::RecursionError
        );
        // Non-text roles raise AttributeError.
        let mut c = creds();
        c["roles"] = json!(["a", 5]);
        assert_eq!(
            run("role:a", &[], c, target()).unwrap_err().kind,
            K::AttributeError
        );
    }

    #[test]
    fn missing_credentials_and_lists() {
        assert!(!ok("no_such_key:x"));
        assert!(!ok("nested.zz.b:x"));
        assert!(!ok("list.id:3"));
        let c = json!({"l": [["a"], "b"], "n": [1, 2]});
        assert!(run("l:b", &[], c.clone(), target()).unwrap());
        assert!(run("n:2", &[], c.clone(), target()).unwrap());
        assert!(run("l:['a']", &[], c, target()).unwrap());
    }

    #[test]
    fn may_read_any_follows_rules_and_both_sides() {
        let keys = ["request_id", "global_request_id"];
        let set = rules(&[
            ("admin", "role:admin or is_admin:True"),
            ("traced", "request_id:req-1"),
            ("matched", "user_id:%(global_request_id)s"),
            ("whole", "user_id:%s"),
            ("loop_a", "rule:loop_b"),
            ("loop_b", "rule:loop_a"),
            ("default", "rule:traced"),
        ]);
        let reads = |text: &str| may_read_any(&parse_text(text).check, &set, &keys);
        assert!(!reads("rule:admin and user_name:nova"));
        assert!(!reads("'request_id':x"), "a literal kind reads nothing");
        assert!(reads("rule:traced"), "a credentials path");
        assert!(reads("rule:matched"), "a target key in the match");
        assert!(reads("rule:whole"), "the whole target");
        assert!(reads("rule:undefined"), "the default rule stands in");
        assert!(reads("rule:loop_a"), "a cycle counts as reading");
        assert!(reads("role:%(request_id)s"));
        assert!(may_read_any(
            &parse_text("role:admin").check,
            &set,
            &["roles"]
        ));
    }
}
