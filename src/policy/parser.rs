//! The oslo.policy rule language: tokenizer, the greedy shift-reduce parser
//! (reproduced step for step, so odd inputs parse exactly as in oslo.policy),
//! the legacy list-of-lists form, and the check tree with oslo's string form.

use std::fmt;

use super::file::Yaml;
use super::pyformat::Template;
use super::pyliteral::{classify, KindClass};

/// A parsed rule: a tree of checks.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// `@` or the empty rule: always allows.
    True,
    /// `!`, or a rule that failed to parse: always denies.
    False,
    /// `not X`.
    Not(Box<Check>),
    /// `X and Y and ...`.
    And(Vec<Check>),
    /// `X or Y or ...`.
    Or(Vec<Check>),
    /// `rule:NAME`.
    Rule(String),
    /// `role:NAME` (case-insensitive, `%(key)s` from the target).
    Role(Template),
    /// `kind:match`: a literal or a credentials path compared with the match.
    Generic {
        /// The text left of the colon.
        kind: String,
        /// What the kind means (literal, path, or an error).
        class: KindClass,
        /// The text right of the colon.
        matcher: Template,
    },
    /// `http:...` / `https:...` remote checks.
    Http {
        /// `https:` rather than `http:`.
        https: bool,
        /// The URL after the scheme's colon.
        url: Template,
    },
}

impl fmt::Display for Check {
    /// oslo.policy's `str()` of the check tree (what `exception:` lines show).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::True => f.write_str("@"),
            Check::False => f.write_str("!"),
            Check::Not(c) => write!(f, "not {c}"),
            Check::And(cs) | Check::Or(cs) => {
                let op = if matches!(self, Check::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
            Check::Rule(n) => write!(f, "rule:{n}"),
            Check::Role(t) => write!(f, "role:{}", t.as_str()),
            Check::Generic { kind, matcher, .. } => write!(f, "{kind}:{}", matcher.as_str()),
            Check::Http { https, url } => write!(
                f,
                "{}:{}",
                if *https { "https" } else { "http" },
                url.as_str()
            ),
        }
    }
}

impl Check {
    /// Every `rule:` name this tree refers to.
    pub fn referenced_rules(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Check::Rule(n) = c {
                out.push(n.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Check)) {
        f(self);
        match self {
            Check::Not(c) => c.walk(f),
            Check::And(cs) | Check::Or(cs) => cs.iter().for_each(|c| c.walk(f)),
            _ => {}
        }
    }

    /// Problems that would make this rule raise or misbehave at evaluation
    /// whatever the request holds, for the strict (service) loader.
    pub fn lint(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut |c| match c {
            Check::Generic { kind, class, matcher } => {
                if let KindClass::Raises(e) = class {
                    out.push(format!("check '{c}': the part before ':' ({kind:?}) is neither a credentials path nor a literal: {e}"));
                }
                if let Some(e) = matcher.static_error() {
                    out.push(format!("check '{c}': bad %-substitution: {e} (write %% for a literal %)"));
                }
            }
            Check::Role(t) => {
                if let Some(e) = t.static_error() {
                    out.push(format!("check '{c}': bad %-substitution: {e} (write %% for a literal %)"));
                }
            }
            Check::Http { .. } => out.push(format!(
                "check '{c}': remote http/https checks are not supported by novajoin; \
                 evaluate the condition locally (role:, rule: or generic checks)")),
            _ => {}
        });
        out
    }
}

/// A place in a rule where parsing gave up or a check had to fail closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleProblem {
    /// 1-based character column inside the rule text (0 for list rules).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A rule with the problems met while parsing it. oslo.policy turns each
/// problem into a deny (and a log line); the service refuses to load such
/// a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRule {
    /// The tree (`Check::False` where parsing failed).
    pub check: Check,
    /// The problems, in order.
    pub problems: Vec<RuleProblem>,
}

/// Parses one `kind:match` piece.
pub fn parse_check(text: &str, column: usize, problems: &mut Vec<RuleProblem>) -> Check {
    match text {
        "!" => return Check::False,
        "@" => return Check::True,
        _ => {}
    }
    let Some((kind, matcher)) = text.split_once(':') else {
        problems.push(RuleProblem {
            column,
            message: format!(
                "{text:?} is not a check: expected kind:match (e.g. role:admin), '@' or '!'"
            ),
        });
        return Check::False;
    };
    match kind {
        "rule" => Check::Rule(matcher.to_string()),
        "role" => Check::Role(Template::parse(matcher)),
        "http" | "https" => Check::Http {
            https: kind == "https",
            url: Template::parse(matcher),
        },
        _ => Check::Generic {
            kind: kind.to_string(),
            class: classify(kind),
            matcher: Template::parse(matcher),
        },
    }
}

#[derive(Debug)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Str,
    Check(Check),
    AndExpr(Vec<Check>),
    OrExpr(Vec<Check>),
}

/// Python's `\s` for str patterns: Unicode white space plus the
/// information separators U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn tokenize(rule: &str, problems: &mut Vec<RuleProblem>) -> Vec<(Tok, usize)> {
    let mut out = Vec::new();
    let mut col = 0usize;
    let mut piece = String::new();
    let mut piece_col = 0usize;
    let mut pieces = Vec::new();
    for c in rule.chars() {
        col += 1;
        if py_space(c) {
            if !piece.is_empty() {
                pieces.push((std::mem::take(&mut piece), piece_col));
            }
        } else {
            if piece.is_empty() {
                piece_col = col;
            }
            piece.push(c);
        }
    }
    if !piece.is_empty() {
        pieces.push((piece, piece_col));
    }
    for (tok, col) in pieces {
        let clean = tok.trim_start_matches('(');
        let lead = tok.chars().count() - clean.chars().count();
        for k in 0..lead {
            out.push((Tok::LParen, col + k));
        }
        if clean.is_empty() {
            continue;
        }
        let ccol = col + lead;
        let stripped = clean.trim_end_matches(')');
        let trail = clean.chars().count() - stripped.chars().count();
        let lowered = stripped.to_lowercase();
        match lowered.as_str() {
            "and" => out.push((Tok::And, ccol)),
            "or" => out.push((Tok::Or, ccol)),
            "not" => out.push((Tok::Not, ccol)),
            _ if !stripped.is_empty() => {
                let b = clean.as_bytes();
                if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
                    out.push((Tok::Str, ccol));
                } else {
                    out.push((Tok::Check(parse_check(stripped, ccol, problems)), ccol));
                }
            }
            _ => {}
        }
        let scol = ccol + stripped.chars().count();
        for k in 0..trail {
            out.push((Tok::RParen, scol + k));
        }
    }
    out
}

fn reduce(stack: &mut Vec<(Tok, usize)>) {
    loop {
        let n = stack.len();
        if n >= 3 {
            let shape = (&stack[n - 3].0, &stack[n - 2].0, &stack[n - 1].0);
            let col = stack[n - 3].1;
            match shape {
                (Tok::LParen, Tok::Check(_) | Tok::AndExpr(_) | Tok::OrExpr(_), Tok::RParen) => {
                    stack.pop();
                    let (mid, _) = stack.pop().expect("three tokens");
                    stack.pop();
                    let c = match mid {
                        Tok::Check(c) => c,
                        Tok::AndExpr(v) => Check::And(v),
                        Tok::OrExpr(v) => Check::Or(v),
                        _ => unreachable!("matched above"),
                    };
                    stack.push((Tok::Check(c), col));
                    continue;
                }
                (Tok::Check(_) | Tok::AndExpr(_) | Tok::OrExpr(_), Tok::And, Tok::Check(_)) => {
                    let Some((Tok::Check(c), _)) = stack.pop() else {
                        unreachable!()
                    };
                    stack.pop();
                    let (left, _) = stack.pop().expect("three tokens");
                    let tok = match left {
                        Tok::Check(a) => Tok::AndExpr(vec![a, c]),
                        Tok::AndExpr(mut v) => {
                            v.push(c);
                            Tok::AndExpr(v)
                        }
                        Tok::OrExpr(mut v) => {
                            // 'A or B and C': C joins B, not the 'or'.
                            let last = v.pop().expect("or has operands");
                            let joined = match last {
                                Check::And(mut inner) => {
                                    inner.push(c);
                                    Check::And(inner)
                                }
                                other => Check::And(vec![other, c]),
                            };
                            v.push(joined);
                            Tok::OrExpr(v)
                        }
                        _ => unreachable!(),
                    };
                    stack.push((tok, col));
                    continue;
                }
                (Tok::Check(_) | Tok::AndExpr(_) | Tok::OrExpr(_), Tok::Or, Tok::Check(_)) => {
                    let Some((Tok::Check(c), _)) = stack.pop() else {
                        unreachable!()
                    };
                    stack.pop();
                    let (left, _) = stack.pop().expect("three tokens");
                    let tok = match left {
                        Tok::Check(a) => Tok::OrExpr(vec![a, c]),
                        Tok::AndExpr(v) => Tok::OrExpr(vec![Check::And(v), c]),
                        Tok::OrExpr(mut v) => {
                            v.push(c);
                            Tok::OrExpr(v)
                        }
                        _ => unreachable!(),
                    };
                    stack.push((tok, col));
                    continue;
                }
                _ => {}
            }
        }
        if n >= 2 {
            if let (Tok::Not, Tok::Check(_)) = (&stack[n - 2].0, &stack[n - 1].0) {
                let Some((Tok::Check(c), _)) = stack.pop() else {
                    unreachable!()
                };
                let (_, col) = stack.pop().expect("two tokens");
                stack.push((Tok::Check(Check::Not(Box::new(c))), col));
                continue;
            }
        }
        return;
    }
}

fn is_expr(t: &Tok) -> bool {
    matches!(t, Tok::Check(_) | Tok::AndExpr(_) | Tok::OrExpr(_))
}

/// Says where an unreducible token stack went wrong.
fn diagnose(stack: &[(Tok, usize)]) -> RuleProblem {
    if stack.is_empty() {
        return RuleProblem {
            column: 1,
            message: "the rule is only white space; write \"\" to allow or \"!\" to deny".into(),
        };
    }
    let opens: Vec<usize> = {
        let mut v = Vec::new();
        for (t, c) in stack {
            match t {
                Tok::LParen => v.push(*c),
                Tok::RParen if v.pop().is_none() => {
                    return RuleProblem {
                        column: *c,
                        message: "')' has no matching '('".into(),
                    };
                }
                _ => {}
            }
        }
        v
    };
    for (i, (t, c)) in stack.iter().enumerate() {
        let message = match t {
            Tok::Str => "a quoted string is not a check; remove the quotes".to_string(),
            Tok::And | Tok::Or => {
                let w = if matches!(t, Tok::And) { "and" } else { "or" };
                let left_ok = i > 0 && is_expr(&stack[i - 1].0);
                if left_ok {
                    format!("'{w}' has no check on its right")
                } else {
                    format!("'{w}' has no check on its left")
                }
            }
            Tok::Not => "'not' has no check after it".to_string(),
            t if is_expr(t) && i > 0 && is_expr(&stack[i - 1].0) => {
                "two checks in a row; join them with 'and' or 'or'".to_string()
            }
            _ => continue,
        };
        return RuleProblem {
            column: *c,
            message,
        };
    }
    if let Some(c) = opens.first() {
        return RuleProblem {
            column: *c,
            message: "'(' is never closed".into(),
        };
    }
    RuleProblem {
        column: stack[0].1,
        message: "the rule cannot be parsed".into(),
    }
}

/// Parses a rule in the policy language. An empty string allows; anything
/// that does not reduce to one expression denies, with a problem saying
/// where.
pub fn parse_text(rule: &str) -> ParsedRule {
    let mut problems = Vec::new();
    if rule.is_empty() {
        return ParsedRule {
            check: Check::True,
            problems,
        };
    }
    let mut stack: Vec<(Tok, usize)> = Vec::new();
    for tok in tokenize(rule, &mut problems) {
        stack.push(tok);
        reduce(&mut stack);
    }
    if stack.len() == 1 && is_expr(&stack[0].0) {
        let check = match stack.pop().expect("one token").0 {
            Tok::Check(c) => c,
            Tok::AndExpr(v) => Check::And(v),
            Tok::OrExpr(v) => Check::Or(v),
            _ => unreachable!(),
        };
        return ParsedRule { check, problems };
    }
    problems.push(diagnose(&stack));
    ParsedRule {
        check: Check::False,
        problems,
    }
}

fn not_iterable(v: &Yaml) -> String {
    format!("'{}' object is not iterable", v.python_type())
}

/// Parses a rule value from a policy file: a string in the policy language,
/// or the legacy list-of-lists (outer OR, inner AND, each element a single
/// check). `Err` is what oslo.policy raises at load (`TypeError`).
pub fn parse_value(value: &Yaml) -> Result<ParsedRule, String> {
    match value {
        Yaml::Str(s) => return Ok(parse_text(s)),
        v if !v.truthy() => {
            return Ok(ParsedRule {
                check: Check::True,
                problems: vec![],
            })
        }
        Yaml::Seq(_) | Yaml::Map(_) => {}
        other => return Err(not_iterable(other)),
    }
    let outer: Vec<&Yaml> = value.iter_items();
    let mut problems = Vec::new();
    let mut or_list = Vec::new();
    for inner in outer {
        if !inner.truthy() {
            continue;
        }
        let elements: Vec<&Yaml> = match inner {
            Yaml::Str(_) => vec![inner],
            Yaml::Seq(_) | Yaml::Map(_) => inner.iter_items(),
            other => return Err(not_iterable(other)),
        };
        let mut and_list: Vec<Check> = elements
            .into_iter()
            .map(|e| match e {
                Yaml::Str(s) => parse_check(s, 0, &mut problems),
                other => {
                    problems.push(RuleProblem {
                        column: 0,
                        message: format!("list element {} is not a string", other.describe()),
                    });
                    Check::False
                }
            })
            .collect();
        or_list.push(if and_list.len() == 1 {
            and_list.pop().expect("one")
        } else {
            Check::And(and_list)
        });
    }
    let check = match or_list.len() {
        0 => {
            problems.push(RuleProblem {
                column: 0,
                message: "every inner list is empty, which denies; write [] or \"\" to allow"
                    .into(),
            });
            Check::False
        }
        1 => or_list.pop().expect("one"),
        _ => Check::Or(or_list),
    };
    Ok(ParsedRule { check, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(rule: &str) -> String {
        parse_text(rule).check.to_string()
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            s("role:a or role:b and role:c"),
            "(role:a or (role:b and role:c))"
        );
        assert_eq!(
            s("(role:a or role:b) and role:c"),
            "((role:a or role:b) and role:c)"
        );
        assert_eq!(s("not role:a and role:b"), "(not role:a and role:b)");
        assert_eq!(s("not (role:a or role:b)"), "not (role:a or role:b)");
        assert_eq!(s("not not role:a"), "not not role:a");
        assert_eq!(s("((role:a))"), "role:a");
        assert_eq!(
            s("role:a and role:b or role:c and role:d"),
            "((role:a and role:b) or (role:c and role:d))"
        );
        assert_eq!(
            s("role:a or (role:b and role:c) and role:d"),
            "(role:a or (role:b and role:c and role:d))"
        );
        assert_eq!(s("role:foo OR role:admin"), "(role:foo or role:admin)");
        assert_eq!(s("role:foo\tor\nrole:admin"), "(role:foo or role:admin)");
        assert_eq!(
            s("role:a or role:b or role:c"),
            "(role:a or role:b or role:c)"
        );
        assert_eq!(s("a:1 and b:2 and c:3"), "(a:1 and b:2 and c:3)");
    }

    #[test]
    fn empty_special_and_failures() {
        assert_eq!(parse_text("").check, Check::True);
        assert_eq!(s("@"), "@");
        assert_eq!(s("!"), "!");
        for bad in [
            "role:admin or",
            "not",
            "(role:admin",
            "role:admin)",
            "'role:admin'",
            "role:a role:b",
            " ",
            "and role:a",
            "()",
        ] {
            let p = parse_text(bad);
            assert_eq!(p.check, Check::False, "{bad:?}");
            assert!(!p.problems.is_empty(), "{bad:?}");
        }
        let p = parse_text("admin");
        assert_eq!(p.check, Check::False);
        assert_eq!(p.problems[0].column, 1);
    }

    #[test]
    fn problems_point_at_the_column() {
        let p = parse_text("role:admin or");
        assert_eq!(p.problems[0].column, 12, "{:?}", p.problems);
        assert!(p.problems[0].message.contains("right"));
        let p = parse_text("role:a (role:b");
        assert_eq!(p.problems[0].column, 8, "{:?}", p.problems);
    }

    #[test]
    fn check_kinds() {
        assert!(matches!(parse_text("rule:x").check, Check::Rule(ref n) if n == "x"));
        assert!(
            matches!(parse_text("role:compute:admin").check, Check::Role(ref t) if t.as_str() == "compute:admin")
        );
        assert!(matches!(
            parse_text("http://x/%(a)s").check,
            Check::Http { https: false, .. }
        ));
        assert!(
            matches!(parse_text("user.name:nova").check, Check::Generic { ref kind, .. } if kind == "user.name")
        );
        assert_eq!(s("project_id:%(project_id)s"), "project_id:%(project_id)s");
    }

    #[test]
    fn list_of_lists() {
        let v = |j: &str| Yaml::from_json(&serde_json::from_str(j).unwrap());
        assert_eq!(
            parse_value(&v(r#"[["role:foo"], ["role:admin", "user_name:nova"]]"#))
                .unwrap()
                .check
                .to_string(),
            "(role:foo or (role:admin and user_name:nova))"
        );
        assert_eq!(parse_value(&v("[]")).unwrap().check, Check::True);
        assert_eq!(parse_value(&v("[[]]")).unwrap().check, Check::False);
        assert_eq!(
            parse_value(&v(r#"["role:foo", "role:admin"]"#))
                .unwrap()
                .check
                .to_string(),
            "(role:foo or role:admin)"
        );
        assert_eq!(
            parse_value(&v(r#"["role:a or role:b"]"#))
                .unwrap()
                .check
                .to_string(),
            "role:a or role:b"
        );
        assert_eq!(parse_value(&v("null")).unwrap().check, Check::True);
        assert!(parse_value(&v("true")).is_err());
        assert!(parse_value(&v("[5]")).is_err());
        assert_eq!(parse_value(&v("[[5]]")).unwrap().check, Check::False);
    }
}
