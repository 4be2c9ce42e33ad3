//! Python's `str()` and `repr()` of JSON values.
//!
//! oslo.policy compares a generic check's match with `str(value)` and
//! substitutes `%(key)s` with `str(target[key])`, so `True`, `None`, `5` and
//! `['a', 'b']` must be rendered exactly as CPython renders them.

use serde_json::Value;

/// Python's type name of a JSON value, as error messages print it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `str(v)`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// `repr(v)` (`ascii(v)` when `ascii` is set).
pub fn py_repr_with(v: &Value, ascii: bool) -> String {
    let mut out = String::new();
    write_repr(&mut out, v, ascii);
    out
}

/// `repr(v)`.
pub fn py_repr(v: &Value) -> String {
    py_repr_with(v, false)
}

fn write_repr(out: &mut String, v: &Value, ascii: bool) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(big) = big_int_text(n) {
                out.push_str(&big);
            } else {
                out.push_str(&float_repr(py_float(n)));
            }
        }
        Value::String(s) => out.push_str(&repr_str(s, ascii)),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, x, ascii);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_str(k, ascii));
                out.push_str(": ");
                write_repr(out, x, ascii);
            }
            out.push('}');
        }
    }
}

/// The float Python's json makes of a number: beyond the range of a
/// float, `1e400` is `inf` (serde_json's `as_f64` has no value for it).
pub fn py_float(n: &serde_json::Number) -> f64 {
    n.as_f64()
        .or_else(|| n.to_string().parse().ok())
        .unwrap_or(f64::NAN)
}

/// An integer beyond 64 bits as its decimal text (`-` and digits), as
/// JSON wrote it: Python's json keeps such integers exact, and so does
/// serde_json with `arbitrary_precision`. `None` for other numbers.
pub fn big_int_text(n: &serde_json::Number) -> Option<String> {
    if n.as_i64().is_some() || n.as_u64().is_some() {
        return None;
    }
    let t = n.to_string();
    let digits = t.strip_prefix('-').unwrap_or(&t);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(t)
}

/// Whether CPython's `str.isprintable()` holds for a non-ASCII character.
/// Covers the control, format, separator and private-use ranges; unassigned
/// code points are treated as printable (no Unicode tables here).
fn printable(c: char) -> bool {
    let u = c as u32;
    if c.is_control() {
        return false;
    }
    if c != ' ' && c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0001 | 0xE0020..=0xE007F | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// `repr()` of a Python str: single quotes unless the text holds `'` and
/// no `"`, with CPython's escapes.
pub fn repr_str(s: &str, ascii: bool) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if !ascii && printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u <= 0xffff {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

/// `repr()` of Python bytes.
pub fn repr_bytes(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            c if !(0x20..0x7f).contains(&c) => out.push_str(&format!("\\x{c:02x}")),
            c => out.push(c as char),
        }
    }
    out.push(quote as char);
    out
}

/// Shortest round-trip digits and decimal exponent of a finite, non-zero
/// magnitude: `value = 0.d1d2... * 10^decpt`.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and
/// from 1e16, `.0` on integral values.
pub fn float_repr(f: f64) -> String {
    float_repr_opts(f, true)
}

/// `repr()` as complex numbers print their parts: like [`float_repr`]
/// but without the `.0`.
pub fn float_repr_no_dot0(f: f64) -> String {
    float_repr_opts(f, false)
}

fn float_repr_opts(f: f64, dot0: bool) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0{}", if dot0 { ".0" } else { "" });
    }
    let (digits, decpt) = shortest_digits(f);
    let e = decpt - 1;
    let body = if (-4..16).contains(&e) {
        let n = digits.len() as i32;
        if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= n {
            format!(
                "{}{}{}",
                digits,
                "0".repeat((decpt - n) as usize),
                if dot0 { ".0" } else { "" }
            )
        } else {
            format!(
                "{}.{}",
                &digits[..decpt as usize],
                &digits[decpt as usize..]
            )
        }
    } else {
        let rest = &digits[1..];
        let esign = if e < 0 { '-' } else { '+' };
        format!(
            "{}{}{}e{}{:02}",
            &digits[..1],
            if rest.is_empty() { "" } else { "." },
            rest,
            esign,
            e.abs()
        )
    };
    format!("{sign}{body}")
}

/// Python truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => py_float(n) != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn str_of_scalars_is_pythons() {
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(false)), "False");
        assert_eq!(py_str(&json!(5)), "5");
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!(1.0)), "1.0");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!(1e16)), "1e+16");
        assert_eq!(py_str(&json!(1e-5)), "1e-05");
        assert_eq!(py_str(&json!(0.0001)), "0.0001");
        assert_eq!(py_str(&json!(123456.789)), "123456.789");
        assert_eq!(py_str(&json!(-2.5e-7)), "-2.5e-07");
    }

    #[test]
    fn str_of_containers_uses_repr_inside() {
        assert_eq!(py_str(&json!(["a", 1, null, true])), "['a', 1, None, True]");
        assert_eq!(
            py_str(&json!({"k": "v", "n": [1.5]})),
            "{'k': 'v', 'n': [1.5]}"
        );
        assert_eq!(py_str(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(py_str(&json!(["a\"b'c"])), "['a\"b\\'c']");
        assert_eq!(py_str(&json!(["\n\u{1}é"])), "['\\n\\x01é']");
        assert_eq!(py_repr_with(&json!("é"), true), "'\\xe9'");
    }

    #[test]
    fn integers_beyond_64_bits_stay_exact() {
        let v: Value = serde_json::from_str(
            "[1180591620717411303424, -99999999999999999999999, 1.5, 1e400, -1e400]",
        )
        .unwrap();
        assert_eq!(
            py_str(&v),
            "[1180591620717411303424, -99999999999999999999999, 1.5, inf, -inf]"
        );
        assert_eq!(type_name(&v[0]), "int");
        assert!(truthy(&v[0]));
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!({})));
        assert!(truthy(&json!([0])));
    }
}
