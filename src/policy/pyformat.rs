//! Python's old-style `%` formatting of a check's match against the target.
//!
//! oslo.policy expands a match with `match % target`: `%(key)s` inserts
//! `str(target[key])`. A missing key makes the check deny; other format
//! mistakes (a stray `%`, an unknown conversion) raise. The template is
//! parsed once, when the rule is loaded, and applied per request.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::{EvalError, EvalErrorKind as K};
use super::pyvalue::{big_int_text, py_float, py_repr_with, py_str, type_name};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    minus: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    Fixed(usize),
    Star,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    key: Option<String>,
    flags: Flags,
    width: Option<Num>,
    precision: Option<Num>,
    conversion: char,
    /// Code-point index of the conversion character (for messages).
    index: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Spec(Spec),
    /// The format string ends in the middle of a specification (after an
    /// optional key, which Python looks up first).
    Incomplete(Option<String>, &'static str),
}

/// A parsed `%`-format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

/// The result of applying a template.
#[derive(Debug, PartialEq, Eq)]
pub enum Expanded<'a> {
    /// The expanded text.
    Text(Cow<'a, str>),
    /// `%(key)s` named a key the target lacks: the check denies.
    MissingKey(String),
}

impl Template {
    /// Parses `text`. Never fails: mistakes are reported when the template
    /// is applied, in the order Python would meet them.
    pub fn parse(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != '%' {
                lit.push(c);
                i += 1;
                continue;
            }
            if chars.get(i + 1) == Some(&'%') {
                lit.push('%');
                i += 2;
                continue;
            }
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            i += 1;
            let mut spec = Spec {
                key: None,
                flags: Flags::default(),
                width: None,
                precision: None,
                conversion: '\0',
                index: 0,
            };
            if chars.get(i) == Some(&'(') {
                let mut depth = 1;
                let start = i + 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                if depth > 0 {
                    parts.push(Part::Incomplete(None, "incomplete format key"));
                    return Self {
                        text: text.to_string(),
                        parts,
                    };
                }
                spec.key = Some(chars[start..i - 1].iter().collect());
            }
            while let Some(&f) = chars.get(i) {
                match f {
                    '-' => spec.flags.minus = true,
                    '+' => spec.flags.plus = true,
                    ' ' => spec.flags.space = true,
                    '#' => spec.flags.alt = true,
                    '0' => spec.flags.zero = true,
                    _ => break,
                }
                i += 1;
            }
            spec.width = read_num(&chars, &mut i);
            if chars.get(i) == Some(&'.') {
                i += 1;
                spec.precision = Some(read_num(&chars, &mut i).unwrap_or(Num::Fixed(0)));
            }
            while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
                i += 1;
            }
            match chars.get(i) {
                None => {
                    parts.push(Part::Incomplete(spec.key, "incomplete format"));
                    return Self {
                        text: text.to_string(),
                        parts,
                    };
                }
                Some(&conv) => {
                    spec.conversion = conv;
                    spec.index = i;
                    i += 1;
                    parts.push(Part::Spec(spec));
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Self {
            text: text.to_string(),
            parts,
        }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether applying the template may read one of `keys` from the
    /// target: a named `%(key)s` among them, or a specification without a
    /// key (`%s` formats the whole mapping).
    pub fn may_read_any(&self, keys: &[&str]) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Literal(_) | Part::Incomplete(None, _) => false,
            Part::Incomplete(Some(k), _) => keys.contains(&k.as_str()),
            Part::Spec(s) => s.key.as_deref().is_none_or(|k| keys.contains(&k)),
        })
    }

    /// A mistake that would raise whatever the target holds, found at load
    /// time (a stray `%`, an unknown conversion, `%s` twice): the enforcer
    /// refuses such rules instead of failing per request.
    pub fn static_error(&self) -> Option<String> {
        let mut consumed = false;
        for p in &self.parts {
            match p {
                Part::Literal(_) => {}
                Part::Incomplete(_, m) => return Some((*m).to_string()),
                Part::Spec(s) => {
                    if s.key.is_none() {
                        if consumed {
                            return Some("not enough arguments for format string".into());
                        }
                        consumed = true;
                    } else {
                        consumed = true;
                    }
                    if matches!(s.width, Some(Num::Star)) || matches!(s.precision, Some(Num::Star))
                    {
                        return Some("* wants int".into());
                    }
                    if !"sradiuxXoeEfFgGc".contains(s.conversion) {
                        return Some(unsupported(s));
                    }
                    if s.key.is_none() {
                        return Some(
                            "a '%' without a (key) formats the whole target; write %(key)s".into(),
                        );
                    }
                }
            }
        }
        None
    }

    /// Applies the template to `target` (`match % target`).
    pub fn expand<'a>(&'a self, target: &Map<String, Value>) -> Result<Expanded<'a>, EvalError> {
        if let [Part::Literal(s)] = self.parts.as_slice() {
            return Ok(Expanded::Text(Cow::Borrowed(s)));
        }
        if self.parts.is_empty() {
            return Ok(Expanded::Text(Cow::Borrowed("")));
        }
        let mut out = String::new();
        let mut consumed = false;
        let mut whole: Option<Value> = None;
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Incomplete(key, m) => {
                    if let Some(k) = key {
                        if !target.contains_key(k) {
                            return Ok(Expanded::MissingKey(k.clone()));
                        }
                    }
                    return Err(EvalError::new(K::ValueError, *m));
                }
                Part::Spec(s) => {
                    let value: &Value = match &s.key {
                        Some(k) => match target.get(k) {
                            Some(v) => v,
                            None => return Ok(Expanded::MissingKey(k.clone())),
                        },
                        None => whole.get_or_insert_with(|| Value::Object(target.clone())),
                    };
                    if matches!(s.width, Some(Num::Star)) || matches!(s.precision, Some(Num::Star))
                    {
                        return Err(EvalError::new(K::TypeError, "* wants int"));
                    }
                    if s.key.is_none() && consumed {
                        return Err(EvalError::new(
                            K::TypeError,
                            "not enough arguments for format string",
                        ));
                    }
                    consumed = true;
                    if fixed(s.width).is_some_and(|w| w > MAX_FORMAT_WIDTH)
                        || fixed(s.precision).is_some_and(|p| p > MAX_FORMAT_WIDTH)
                    {
                        // Python would try to build the string and raise
                        // MemoryError (or ValueError past sys.maxsize).
                        return Err(EvalError::new(K::MemoryError, "width too big"));
                    }
                    out.push_str(&convert(s, value)?);
                }
            }
        }
        Ok(Expanded::Text(Cow::Owned(out)))
    }
}

/// Largest width or precision a format may ask for. A policy match never
/// needs more; a larger one would make evaluation allocate without bound
/// (found by fuzzing: `%(user_id)4444444444444444r`), and Rust's own float
/// formatting panics on a precision above `u16::MAX` (also found by
/// fuzzing: `%(n).999999f`); `%g` adds up to 324 digits for tiny numbers,
/// hence the margin.
pub const MAX_FORMAT_WIDTH: usize = 65_000;

fn read_num(chars: &[char], i: &mut usize) -> Option<Num> {
    if chars.get(*i) == Some(&'*') {
        *i += 1;
        return Some(Num::Star);
    }
    let start = *i;
    while chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
        *i += 1;
    }
    if *i == start {
        return None;
    }
    // Digits past usize::MAX are still a width (too big), not its absence.
    let digits: String = chars[start..*i].iter().collect();
    Some(Num::Fixed(digits.parse().unwrap_or(usize::MAX)))
}

fn unsupported(s: &Spec) -> String {
    format!(
        "unsupported format character '{}' (0x{:x}) at index {}",
        s.conversion, s.conversion as u32, s.index
    )
}

fn fixed(n: Option<Num>) -> Option<usize> {
    match n {
        Some(Num::Fixed(v)) => Some(v),
        _ => None,
    }
}

fn pad(s: &Spec, sign: &str, prefix: &str, body: String, numeric: bool) -> String {
    let width = fixed(s.width).unwrap_or(0);
    let len = sign.chars().count() + prefix.chars().count() + body.chars().count();
    if len >= width {
        return format!("{sign}{prefix}{body}");
    }
    let fill = width - len;
    if s.flags.minus {
        format!("{sign}{prefix}{body}{}", " ".repeat(fill))
    } else if s.flags.zero && numeric {
        format!("{sign}{prefix}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{prefix}{body}", " ".repeat(fill))
    }
}

/// An integer conversion's text from its magnitude's digits: precision,
/// `#` prefix, sign and padding.
fn int_body(s: &Spec, negative: bool, mut digits: String) -> String {
    if let Some(p) = fixed(s.precision) {
        if digits.len() < p {
            digits = format!("{}{}", "0".repeat(p - digits.len()), digits);
        }
    }
    let prefix = match (s.flags.alt, s.conversion) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') => "0o",
        _ => "",
    };
    pad(s, sign_of(s, negative), prefix, digits, true)
}

/// Decimal digits of any length in base `radix` (lower-case letters).
fn decimal_to_radix(decimal: &str, radix: u32) -> String {
    let mut num: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut out = Vec::new();
    while num.iter().any(|d| *d != 0) {
        let mut rem = 0u32;
        let mut next = Vec::with_capacity(num.len());
        for d in &num {
            let cur = rem * 10 + d;
            let q = cur / radix;
            rem = cur % radix;
            if !(next.is_empty() && q == 0) {
                next.push(q);
            }
        }
        out.push(char::from_digit(rem, radix).unwrap_or('?'));
        num = next;
    }
    if out.is_empty() {
        return "0".into();
    }
    out.iter().rev().collect()
}

fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Bool(b) => Some(*b as i128),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => Some(py_float(n)),
        _ => None,
    }
}

fn sign_of(s: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if s.flags.plus {
        "+"
    } else if s.flags.space {
        " "
    } else {
        ""
    }
}

fn convert(s: &Spec, v: &Value) -> Result<String, EvalError> {
    match s.conversion {
        's' | 'r' | 'a' => {
            let mut text = match s.conversion {
                's' => py_str(v),
                'r' => py_repr_with(v, false),
                _ => py_repr_with(v, true),
            };
            if let Some(p) = fixed(s.precision) {
                text = text.chars().take(p).collect();
            }
            Ok(pad(s, "", "", text, false))
        }
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
            let n = match (as_int(v), v) {
                (Some(n), _) => n,
                (None, Value::Number(num)) if big_int_text(num).is_some() => {
                    let text = big_int_text(num).unwrap_or_default();
                    let (negative, decimal) = match text.strip_prefix('-') {
                        Some(mag) => (true, mag),
                        None => (false, text.as_str()),
                    };
                    let digits = match s.conversion {
                        'x' => decimal_to_radix(decimal, 16),
                        'X' => decimal_to_radix(decimal, 16).to_ascii_uppercase(),
                        'o' => decimal_to_radix(decimal, 8),
                        _ => decimal.to_string(),
                    };
                    return Ok(int_body(s, negative, digits));
                }
                (None, Value::Number(f)) if matches!(s.conversion, 'd' | 'i' | 'u') => {
                    let f = py_float(f);
                    if f.is_nan() {
                        return Err(EvalError::new(
                            K::ValueError,
                            "cannot convert float NaN to integer",
                        ));
                    }
                    if f.is_infinite() {
                        return Err(EvalError::new(
                            K::OverflowError,
                            "cannot convert float infinity to integer",
                        ));
                    }
                    f.trunc() as i128
                }
                (None, _) if matches!(s.conversion, 'd' | 'i' | 'u') => {
                    return Err(EvalError::new(
                        K::TypeError,
                        format!(
                            "%{} format: a real number is required, not {}",
                            s.conversion,
                            type_name(v)
                        ),
                    ));
                }
                (None, _) => {
                    return Err(EvalError::new(
                        K::TypeError,
                        format!(
                            "%{} format: an integer is required, not {}",
                            s.conversion,
                            type_name(v)
                        ),
                    ));
                }
            };
            let mag = n.unsigned_abs();
            let digits = match s.conversion {
                'x' => format!("{mag:x}"),
                'X' => format!("{mag:X}"),
                'o' => format!("{mag:o}"),
                _ => mag.to_string(),
            };
            Ok(int_body(s, n < 0, digits))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let Some(f) = as_float(v) else {
                return Err(EvalError::new(
                    K::TypeError,
                    format!("must be real number, not {}", type_name(v)),
                ));
            };
            let body = format_float(
                f.abs(),
                s.conversion,
                fixed(s.precision).unwrap_or(6),
                s.flags.alt,
            );
            let numeric = f.is_finite();
            Ok(pad(
                s,
                sign_of(s, f.is_sign_negative() && !f.is_nan()),
                "",
                body,
                numeric,
            ))
        }
        'c' => {
            let c = match v {
                Value::String(t) if t.chars().count() == 1 => t.clone(),
                Value::Number(num) if big_int_text(num).is_some() => {
                    return Err(EvalError::new(
                        K::OverflowError,
                        "%c arg not in range(0x110000)",
                    ))
                }
                other => match as_int(other) {
                    Some(n) => match u32::try_from(n).ok().and_then(char::from_u32) {
                        Some(c) => c.to_string(),
                        None => {
                            return Err(EvalError::new(
                                K::OverflowError,
                                "%c arg not in range(0x110000)",
                            ))
                        }
                    },
                    None => return Err(EvalError::new(K::TypeError, "%c requires int or char")),
                },
            };
            Ok(pad(s, "", "", c, false))
        }
        _ => Err(EvalError::new(K::ValueError, unsupported(s))),
    }
}

/// C-style `%e`, `%f`, `%g` of a non-negative magnitude.
fn format_float(f: f64, conv: char, prec: usize, alt: bool) -> String {
    let upper = conv.is_ascii_uppercase();
    if f.is_nan() {
        return if upper { "NAN".into() } else { "nan".into() };
    }
    if f.is_infinite() {
        return if upper { "INF".into() } else { "inf".into() };
    }
    let exp_form = |p: usize| -> String {
        let s = format!("{:.*e}", p, f);
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let m = if alt && p == 0 {
            format!("{m}.")
        } else {
            m.to_string()
        };
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    };
    let out = match conv.to_ascii_lowercase() {
        'f' => {
            let s = format!("{:.*}", prec, f);
            if alt && prec == 0 {
                format!("{s}.")
            } else {
                s
            }
        }
        'e' => exp_form(prec),
        _ => {
            let p = if prec == 0 { 1 } else { prec };
            let probe = format!("{:.*e}", p - 1, f);
            let x: i32 = probe
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            let mut s = if x >= -4 && x < p as i32 {
                format!("{:.*}", (p as i32 - 1 - x).max(0) as usize, f)
            } else {
                exp_form(p - 1)
            };
            if !alt {
                let (mant, exp) = match s.find('e') {
                    Some(i) => (s[..i].to_string(), s[i..].to_string()),
                    None => (s.clone(), String::new()),
                };
                let mant = if mant.contains('.') {
                    mant.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    mant
                };
                s = format!("{mant}{exp}");
            }
            s
        }
    };
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t() -> Map<String, Value> {
        json!({"a": "x", "n": 5, "f": 1.5, "b": true, "z": null, "l": [1, "a"], "d": {"k": "v"}})
            .as_object()
            .unwrap()
            .clone()
    }

    fn run(fmt: &str) -> String {
        match Template::parse(fmt).expand(&t()) {
            Ok(Expanded::Text(s)) => s.into_owned(),
            Ok(Expanded::MissingKey(k)) => format!("missing {k}"),
            Err(e) => format!("error {}", e.message),
        }
    }

    #[test]
    fn integers_beyond_64_bits_format_like_python() {
        let t: Map<String, Value> =
            serde_json::from_str(r#"{"n": 1180591620717411303424, "m": -99999999999999999999999}"#)
                .unwrap();
        let run = |fmt: &str| match Template::parse(fmt).expand(&t) {
            Ok(Expanded::Text(s)) => s.into_owned(),
            Ok(Expanded::MissingKey(k)) => format!("missing {k}"),
            Err(e) => format!("error {}", e.message),
        };
        assert_eq!(run("%(n)s"), "1180591620717411303424");
        assert_eq!(run("%(n)d"), "1180591620717411303424");
        assert_eq!(run("%(n)#x"), "0x400000000000000000");
        assert_eq!(run("%(n)X"), "400000000000000000");
        assert_eq!(run("%(n)o"), "200000000000000000000000");
        assert_eq!(run("%(m)d"), "-99999999999999999999999");
        assert_eq!(run("%(m)30d"), "      -99999999999999999999999");
        assert_eq!(run("%(m)r"), "-99999999999999999999999");
        assert_eq!(run("%(n)c"), "error %c arg not in range(0x110000)");
        assert_eq!(decimal_to_radix("0", 16), "0");
        assert_eq!(decimal_to_radix("255", 16), "ff");
    }

    #[test]
    fn substitutes_like_python() {
        assert_eq!(run("%(a)s"), "x");
        assert_eq!(run("p-%(n)s-%(b)s-%(z)s"), "p-5-True-None");
        assert_eq!(run("%(l)s"), "[1, 'a']");
        assert_eq!(run("%(d)s"), "{'k': 'v'}");
        assert_eq!(run("100%%"), "100%");
        assert_eq!(run("%(n)05d"), "00005");
        assert_eq!(run("%(a)10s"), "         x");
        assert_eq!(run("%(a)-4s|"), "x   |");
        assert_eq!(run("%(f)d"), "1");
        assert_eq!(run("%(n)#x"), "0x5");
        assert_eq!(run("%(f)e"), "1.500000e+00");
        assert_eq!(run("%(f)g"), "1.5");
        assert_eq!(run("%(a)r"), "'x'");
        assert_eq!(run("%(n).3d"), "005");
        assert_eq!(run("%(n)+d"), "+5");
    }

    #[test]
    fn errors_come_in_pythons_order() {
        assert_eq!(run("%(missing)s"), "missing missing");
        assert_eq!(run("%(missing)z"), "missing missing");
        assert_eq!(run("%"), "error incomplete format");
        assert_eq!(run("name:100%"), "error incomplete format");
        assert_eq!(run("%(a"), "error incomplete format key");
        assert_eq!(
            run("%z"),
            "error unsupported format character 'z' (0x7a) at index 1"
        );
        assert_eq!(
            run("%(a)%"),
            "error unsupported format character '%' (0x25) at index 4"
        );
        assert_eq!(
            run("%(a)d"),
            "error %d format: a real number is required, not str"
        );
        assert_eq!(run("%s %s"), "error not enough arguments for format string");
        assert_eq!(
            run("%(a)s%s"),
            "error not enough arguments for format string"
        );
        assert!(run("%s %(a)s").ends_with(" x"));
    }

    #[test]
    fn huge_widths_are_an_error_not_an_allocation() {
        // Found by fuzzing (fuzz/regressions/policy_rule/huge-format-width).
        assert_eq!(run("%(a)4444444444444444r"), "error width too big");
        assert_eq!(run("%(n).99999999999999999999999d"), "error width too big");
        assert_eq!(run("%(a)65000s").len(), 65000);
        assert_eq!(run("%(a)65001s"), "error width too big");
        assert_eq!(run("%(f).999999f"), "error width too big");
        assert_eq!(run("%(f).65000f").len(), 65002);
        assert_eq!(run("%(f).65000e").len(), 65006);
        assert!(!run("%(f).65000g").starts_with("error"));
    }

    #[test]
    fn static_errors_are_found_at_load() {
        assert!(Template::parse("%(a)s").static_error().is_none());
        assert!(Template::parse("plain").static_error().is_none());
        assert_eq!(
            Template::parse("100%").static_error().unwrap(),
            "incomplete format"
        );
        assert!(Template::parse("%(a)q")
            .static_error()
            .unwrap()
            .contains("unsupported"));
    }

    #[test]
    fn may_read_any_names_the_keys_a_template_reads() {
        let keys = ["request_id"];
        assert!(!Template::parse("nova").may_read_any(&keys));
        assert!(!Template::parse("%(user_id)s and 100%%").may_read_any(&keys));
        assert!(Template::parse("x-%(request_id)s").may_read_any(&keys));
        // A keyless specification formats the whole target.
        assert!(Template::parse("%s").may_read_any(&keys));
        assert!(Template::parse("%r").may_read_any(&keys));
        // Python looks the key up before failing on the truncated spec.
        assert!(Template::parse("%(request_id)").may_read_any(&keys));
        assert!(!Template::parse("%(user_id)").may_read_any(&keys));
    }
}
