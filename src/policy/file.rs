//! Reading policy files: YAML (and JSON, which is read as YAML) into rule
//! entries with their line numbers.
//!
//! oslo.policy reads files with PyYAML's safe loader, which follows YAML 1.1:
//! a plain (unquoted) `yes`, `on` or `1:30` is a boolean or a number, not
//! text. Rule values must be text or lists, so such a value is an error at
//! load; resolving plain scalars the same way keeps those errors where
//! oslo.policy has them. Duplicate keys: the last one wins.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::PolicyError;

/// A YAML value as PyYAML's safe loader would construct it.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    /// `~`, `null`, or nothing.
    Null,
    /// `true`, `yes`, `on`, ... (YAML 1.1).
    Bool(bool),
    /// An integer, as written without underscores; `zero` says whether it is 0.
    Int {
        /// The text.
        text: String,
        /// Whether the value is zero (falsy).
        zero: bool,
    },
    /// A float.
    Float(f64),
    /// Text.
    Str(String),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping: key, value and the line of the key, in file order.
    Map(Vec<(Yaml, Yaml, usize)>),
    /// A date or timestamp (Python `datetime`).
    Timestamp(String),
    /// The merge key `<<` (only meaningful as a mapping key).
    MergeKey,
}

impl Yaml {
    /// Python's type name of the constructed value.
    pub fn python_type(&self) -> &'static str {
        match self {
            Yaml::Null => "NoneType",
            Yaml::Bool(_) => "bool",
            Yaml::Int { .. } => "int",
            Yaml::Float(_) => "float",
            Yaml::Str(_) | Yaml::MergeKey => "str",
            Yaml::Seq(_) => "list",
            Yaml::Map(_) => "dict",
            Yaml::Timestamp(_) => "datetime.datetime",
        }
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Yaml::Null => false,
            Yaml::Bool(b) => *b,
            Yaml::Int { zero, .. } => !zero,
            Yaml::Float(f) => *f != 0.0,
            Yaml::Str(s) => !s.is_empty(),
            Yaml::Seq(v) => !v.is_empty(),
            Yaml::Map(v) => !v.is_empty(),
            Yaml::Timestamp(_) | Yaml::MergeKey => true,
        }
    }

    /// What iterating it yields in Python (items of a list, keys of a dict).
    pub fn iter_items(&self) -> Vec<&Yaml> {
        match self {
            Yaml::Seq(v) => v.iter().collect(),
            Yaml::Map(v) => v.iter().map(|(k, _, _)| k).collect(),
            _ => Vec::new(),
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Yaml::Null => "null".into(),
            Yaml::Bool(b) => b.to_string(),
            Yaml::Int { text, .. } => text.clone(),
            Yaml::Float(f) => f.to_string(),
            Yaml::Str(s) => format!("{s:?}"),
            Yaml::Seq(_) => "a list".into(),
            Yaml::Map(_) => "a mapping".into(),
            Yaml::Timestamp(t) => t.clone(),
            Yaml::MergeKey => "<<".into(),
        }
    }

    /// The same value from JSON (for tests and callers holding JSON).
    pub fn from_json(v: &serde_json::Value) -> Yaml {
        use serde_json::Value as J;
        match v {
            J::Null => Yaml::Null,
            J::Bool(b) => Yaml::Bool(*b),
            J::Number(n) if n.is_f64() => Yaml::Float(n.as_f64().unwrap_or(0.0)),
            J::Number(n) => Yaml::Int {
                text: n.to_string(),
                zero: n.as_f64() == Some(0.0),
            },
            J::String(s) => Yaml::Str(s.clone()),
            J::Array(a) => Yaml::Seq(a.iter().map(Yaml::from_json).collect()),
            J::Object(m) => Yaml::Map(
                m.iter()
                    .map(|(k, v)| (Yaml::Str(k.clone()), Yaml::from_json(v), 0))
                    .collect(),
            ),
        }
    }
}

/// One top-level entry of a policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEntry {
    /// The rule's name.
    pub name: String,
    /// Its value: text in the policy language or a list-of-lists.
    pub value: Yaml,
    /// 1-based line of the name in the file.
    pub line: usize,
}

struct Resolvers {
    bool_: Regex,
    int: Regex,
    float: Regex,
    null: Regex,
    timestamp: Regex,
}

fn resolvers() -> &'static Resolvers {
    static R: OnceLock<Resolvers> = OnceLock::new();
    R.get_or_init(|| Resolvers {
        bool_: Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$").expect("regex"),
        int: Regex::new(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$").expect("regex"),
        float: Regex::new(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$").expect("regex"),
        null: Regex::new(r"^(?:~|null|Null|NULL|)$").expect("regex"),
        timestamp: Regex::new(r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$").expect("regex"),
    })
}

/// Resolves a plain scalar as PyYAML's implicit resolvers do.
fn resolve_plain(s: &str) -> Result<Yaml, String> {
    let r = resolvers();
    if r.null.is_match(s) {
        return Ok(Yaml::Null);
    }
    if r.bool_.is_match(s) {
        return Ok(Yaml::Bool(matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "true" | "on"
        )));
    }
    if r.int.is_match(s) {
        let digits = s.trim_start_matches(['-', '+']);
        let digits = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0b"))
            .unwrap_or(digits);
        let zero = digits.chars().all(|c| c == '0' || c == '_');
        return Ok(Yaml::Int {
            text: s.replace('_', ""),
            zero,
        });
    }
    if r.float.is_match(s) {
        let f = s.replace('_', "").to_ascii_lowercase();
        let v = if f.contains("nan") {
            f64::NAN
        } else if f.contains("inf") {
            if f.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        } else if f.contains(':') {
            1.0 // sexagesimal floats: only truthiness matters here
        } else {
            f.parse().unwrap_or(1.0)
        };
        return Ok(Yaml::Float(v));
    }
    if r.timestamp.is_match(s) {
        return Ok(Yaml::Timestamp(s.to_string()));
    }
    if s == "=" {
        return Err(
            "could not determine a constructor for the tag 'tag:yaml.org,2002:value'".into(),
        );
    }
    Ok(Yaml::Str(s.to_string()))
}

fn scalar(value: String, style: TScalarStyle, tag: Option<Tag>) -> Result<Yaml, String> {
    if let Some(t) = tag {
        let full = format!("{}{}", t.handle, t.suffix);
        return match full.as_str() {
            "tag:yaml.org,2002:str" => Ok(Yaml::Str(value)),
            "tag:yaml.org,2002:null"
            | "tag:yaml.org,2002:bool"
            | "tag:yaml.org,2002:int"
            | "tag:yaml.org,2002:float" => resolve_plain(&value),
            "!" => Ok(Yaml::Str(value)),
            other => Err(format!(
                "could not determine a constructor for the tag '{other}'"
            )),
        };
    }
    if style == TScalarStyle::Plain {
        resolve_plain(&value)
    } else {
        Ok(Yaml::Str(value))
    }
}

enum Frame {
    Seq(Vec<Yaml>, usize),
    Map(Vec<(Yaml, Yaml, usize)>, Option<(Yaml, usize)>, usize),
}

/// The integer a bool, int or integral float key equals in Python, where
/// `1`, `1.0` and `True` are one dict key.
fn numeric_key(k: &Yaml) -> Option<i128> {
    match k {
        Yaml::Bool(b) => Some(i128::from(*b)),
        Yaml::Int { text, .. } => int_value(text),
        Yaml::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Some(*f as i128),
        _ => None,
    }
}

/// The value of a YAML 1.1 integer as PyYAML constructs it (binary, octal
/// with a leading 0, hex, decimal, sexagesimal); `None` beyond i128.
fn int_value(text: &str) -> Option<i128> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = if let Some(h) = t.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(b) = t.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if t.contains(':') {
        t.split(':').try_fold(0i128, |acc, part| {
            acc.checked_mul(60)?.checked_add(part.parse().ok()?)
        })?
    } else if t.len() > 1 && t.starts_with('0') {
        i128::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Python dict key equality of two constructed keys.
fn same_key(a: &Yaml, b: &Yaml) -> bool {
    match (numeric_key(a), numeric_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Applies `<<` merges and makes the last duplicate key win (keeping the
/// first one's position, as a Python dict does).
fn finish_map(pairs: Vec<(Yaml, Yaml, usize)>) -> Result<Yaml, String> {
    let mut merged: Vec<(Yaml, Yaml, usize)> = Vec::new();
    let mut explicit = Vec::new();
    for (k, v, line) in pairs {
        if k == Yaml::MergeKey {
            match v {
                Yaml::Map(m) => merged.extend(m),
                Yaml::Seq(items) => {
                    for item in items.into_iter().rev() {
                        match item {
                            Yaml::Map(m) => merged.extend(m),
                            _ => return Err("expected a mapping for merging".into()),
                        }
                    }
                }
                _ => return Err("expected a mapping or list of mappings for merging".into()),
            }
        } else {
            explicit.push((k, v, line));
        }
    }
    let mut out: Vec<(Yaml, Yaml, usize)> = Vec::new();
    for (k, v, line) in merged.into_iter().chain(explicit) {
        if let Some(slot) = out.iter_mut().find(|(ek, _, _)| same_key(ek, &k)) {
            slot.1 = v;
            slot.2 = line;
        } else {
            out.push((k, v, line));
        }
    }
    Ok(Yaml::Map(out))
}

/// Parses YAML text into one document (`Yaml::Null` when empty).
pub fn parse_yaml(text: &str) -> Result<Yaml, (usize, usize, String)> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Yaml> = std::collections::HashMap::new();
    let mut root: Option<Yaml> = None;
    let mut documents = 0;
    let at = |m: &Marker, msg: String| (m.line(), m.col() + 1, msg);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| at(e.marker(), e.info().to_string()))?;
        let complete: Option<(Yaml, usize)> = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(at(
                        &mark,
                        "expected a single document in the stream, but found another document"
                            .into(),
                    ));
                }
                None
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => None,
            Event::Alias(id) => match anchors.get(&id) {
                Some(v) => Some((v.clone(), 0)),
                None => return Err(at(&mark, "found undefined alias".into())),
            },
            Event::Scalar(value, style, anchor, tag) => {
                let is_key = matches!(stack.last(), Some(Frame::Map(_, None, _)));
                let v = if is_key && style == TScalarStyle::Plain && value == "<<" {
                    Yaml::MergeKey
                } else {
                    scalar(value, style, tag).map_err(|m| at(&mark, m))?
                };
                Some((v, anchor))
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag {
                    if t.suffix != "seq" {
                        return Err(at(
                            &mark,
                            format!(
                                "could not determine a constructor for the tag '{}{}'",
                                t.handle, t.suffix
                            ),
                        ));
                    }
                }
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag {
                    if t.suffix != "map" {
                        return Err(at(
                            &mark,
                            format!(
                                "could not determine a constructor for the tag '{}{}'",
                                t.handle, t.suffix
                            ),
                        ));
                    }
                }
                stack.push(Frame::Map(Vec::new(), None, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Yaml::Seq(items), anchor)),
                _ => return Err(at(&mark, "unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(pairs, _, anchor)) => {
                    Some((finish_map(pairs).map_err(|m| at(&mark, m))?, anchor))
                }
                _ => return Err(at(&mark, "unbalanced mapping".into())),
            },
        };
        let Some((value, anchor)) = complete else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(pairs, pending, _)) => match pending.take() {
                None => {
                    if matches!(value, Yaml::Seq(_) | Yaml::Map(_)) {
                        return Err(at(&mark, "found unhashable key".into()));
                    }
                    *pending = Some((value, mark.line()));
                }
                Some((k, line)) => pairs.push((k, value, line)),
            },
            None => root = Some(value),
        }
    }
    Ok(root.unwrap_or(Yaml::Null))
}

/// One top-level entry with its key as the YAML loader constructs it: a
/// name is usually text, but a plain `1`, `true` or `2026-01-01` is not.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyedEntry {
    /// The key.
    pub key: Yaml,
    /// Its value.
    pub value: Yaml,
    /// 1-based line of the key in the file.
    pub line: usize,
}

/// Reads a policy file's text into its top-level entries, whatever their
/// keys, in file order (as oslo.policy's `Rules.load` sees them).
pub fn parse_policy_entries(path: &Path, text: &str) -> Result<Vec<KeyedEntry>, PolicyError> {
    let doc = parse_yaml(text).map_err(|(line, column, problem)| PolicyError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        problem,
    })?;
    if !doc.truthy() {
        return Ok(Vec::new());
    }
    let Yaml::Map(pairs) = doc else {
        return Err(PolicyError::Shape {
            path: path.to_path_buf(),
            line: 1,
            problem: format!(
                "the file must be a mapping of rule names to rules (e.g. \"join:create\": \"rule:compute_service_user\"), not {}",
                doc.python_type()
            ),
        });
    };
    Ok(pairs
        .into_iter()
        .map(|(key, value, line)| KeyedEntry { key, value, line })
        .collect())
}

/// Reads a policy file's text into rule entries, in file order. A rule name
/// that is not text (which no rule lookup can find) is an error.
pub fn parse_policy_text(path: &Path, text: &str) -> Result<Vec<RuleEntry>, PolicyError> {
    let entries = parse_policy_entries(path, text)?;
    let mut out = Vec::with_capacity(entries.len());
    for KeyedEntry { key, value, line } in entries {
        let Yaml::Str(name) = key else {
            return Err(PolicyError::Shape {
                path: path.to_path_buf(),
                line,
                problem: format!("rule name {} is not text; quote it", key.describe()),
            });
        };
        out.push(RuleEntry { name, value, line });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<RuleEntry> {
        parse_policy_text(Path::new("p.yaml"), text).unwrap()
    }

    #[test]
    fn yaml_and_json_with_lines() {
        let r = parse("# c\n\"join:create\": \"rule:x\"\ncontext_is_admin: role:admin\n");
        assert_eq!(r[0].name, "join:create");
        assert_eq!(r[0].value, Yaml::Str("rule:x".into()));
        assert_eq!(r[0].line, 2);
        assert_eq!(r[1].line, 3);
        let r = parse("{\n  \"a:b\": \"@\",\n  \"c\": [[\"role:x\"]]\n}\n");
        assert_eq!(r[1].line, 3);
        assert!(matches!(r[1].value, Yaml::Seq(_)));
    }

    #[test]
    fn yaml_1_1_scalars_and_duplicates() {
        let r = parse("a: yes\nb: 'yes'\nc: 0\nd: ~\ne:\nf: 1:30\ng: \"!\"\ng: \"@\"\n");
        assert_eq!(r[0].value, Yaml::Bool(true));
        assert_eq!(r[1].value, Yaml::Str("yes".into()));
        assert!(!r[2].value.truthy());
        assert_eq!(r[3].value, Yaml::Null);
        assert_eq!(r[4].value, Yaml::Null);
        assert!(matches!(r[5].value, Yaml::Int { .. }));
        assert_eq!(r.len(), 7);
        assert_eq!(r[6].value, Yaml::Str("@".into()));
    }

    #[test]
    fn empty_and_wrong_shapes() {
        assert!(parse("").is_empty());
        assert!(parse("# only a comment\n").is_empty());
        assert!(parse("{}").is_empty());
        let e = parse_policy_text(Path::new("p.yaml"), "- a\n- b\n").unwrap_err();
        assert!(e.to_string().contains("mapping"), "{e}");
        let e = parse_policy_text(Path::new("p.yaml"), "a: [\nb: c\n").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        let e = parse_policy_text(Path::new("p.yaml"), "a: b\n---\nc: d\n").unwrap_err();
        assert!(e.to_string().contains("single document"), "{e}");
    }
}
