//! What the left side of a generic check (`kind:match`) means.
//!
//! oslo.policy first tries the kind as a Python literal
//! (`ast.literal_eval`): `True`, `None`, `5`, `'member'` compare their
//! `str()` with the match. A kind that is valid Python but not a literal
//! (`user_name`, `target.project.id`, `project-id`) is a dotted path into
//! the credentials. A kind that is not valid Python at all (`1abc`, `a..b`)
//! raises SyntaxError. This module answers that question once per check,
//! at load time, with a small recogniser of Python 3.11's expression syntax.
//! A check's kind never holds `:` (the check is split at the first colon),
//! which rules out slices, lambdas, dict entries and `:=`.

use super::error::{EvalError, EvalErrorKind as K};
use super::pyvalue::{float_repr, float_repr_no_dot0, repr_bytes, repr_str};

/// How a check kind is evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindClass {
    /// A Python literal; holds `str(literal)`.
    Literal(String),
    /// A dotted path into the credentials (the kind split on `.`).
    Path(Vec<String>),
    /// Evaluating the kind raises (syntax error, unhashable set element).
    Raises(EvalError),
}

/// Classifies a check kind as oslo.policy 6 on CPython 3.11 would.
pub fn classify(kind: &str) -> KindClass {
    let src = kind.trim_start_matches([' ', '\t']);
    if src.contains('\0') {
        return KindClass::Raises(syntax("source code string cannot contain null bytes"));
    }
    let toks = match tokenize(src) {
        Ok(t) => t,
        Err(msg) => return KindClass::Raises(syntax(&msg)),
    };
    let mut p = Parser { toks, pos: 0 };
    let node = match p.parse_eval() {
        Ok(n) => n,
        Err(()) => {
            let line = if src.trim().is_empty() { 0 } else { 1 };
            return KindClass::Raises(EvalError::new(
                K::SyntaxError,
                format!("invalid syntax (<unknown>, line {line})"),
            ));
        }
    };
    match convert(&node) {
        Ok(v) => KindClass::Literal(v.to_str()),
        Err(Conv::Malformed) => KindClass::Path(kind.split('.').map(str::to_string).collect()),
        Err(Conv::Type(m)) => KindClass::Raises(EvalError::new(K::TypeError, m)),
        Err(Conv::Overflow(m)) => KindClass::Raises(EvalError::new(K::OverflowError, m)),
    }
}

fn syntax(msg: &str) -> EvalError {
    EvalError::new(K::SyntaxError, format!("{msg} (<unknown>, line 1)"))
}

// ---------------------------------------------------------------- tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    Kw(&'static str),
    Int(String),
    Float(f64),
    Imag(f64),
    Str(StrLit),
    Op(&'static str),
    Newline,
    End,
}

#[derive(Clone, Debug, PartialEq)]
enum StrLit {
    Text(String),
    Bytes(Vec<u8>),
    Format,
}

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", ":=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", "+", "-", "*", "/", "%", "@", "<", ">",
    "&", "|", "^", "~", "(", ")", "[", "]", "{", "}", ",", ".", ";", "=", ":",
];

fn id_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn id_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\x0c' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
            }
            '\n' | '\r' => {
                if depth == 0 {
                    out.push(Tok::Newline);
                }
                i += 1;
            }
            '\\' => {
                if matches!(chars.get(i + 1), Some('\n')) {
                    i += 2;
                } else {
                    return Err("unexpected character after line continuation character".into());
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let (tok, next) = number(&chars, i)?;
                out.push(tok);
                i = next;
            }
            c if id_start(c) => {
                let start = i;
                while i < chars.len() && id_continue(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if matches!(chars.get(i), Some('\'' | '"'))
                    && ["r", "u", "b", "br", "rb", "f", "fr", "rf"]
                        .contains(&word.to_lowercase().as_str())
                {
                    let (lit, next) = string(&chars, i, &word.to_lowercase())?;
                    out.push(Tok::Str(lit));
                    i = next;
                } else if let Some(k) = KEYWORDS.iter().find(|k| **k == word) {
                    out.push(Tok::Kw(k));
                } else {
                    out.push(Tok::Name(word));
                }
            }
            '\'' | '"' => {
                let (lit, next) = string(&chars, i, "")?;
                out.push(Tok::Str(lit));
                i = next;
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
                let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) else {
                    if c.is_ascii() {
                        return Err("invalid syntax".into());
                    }
                    return Err(format!("invalid character '{c}' (U+{:04X})", c as u32));
                };
                match *op {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => {
                        if depth == 0 {
                            return Err(format!("unmatched '{op}'"));
                        }
                        depth -= 1;
                    }
                    _ => {}
                }
                out.push(Tok::Op(op));
                i += op.len();
            }
        }
    }
    if depth > 0 {
        return Err("'(' was never closed".into());
    }
    out.push(Tok::End);
    Ok(out)
}

/// After a number: an identifier character is an error unless it starts
/// one of the keywords Python 3.11 still accepts there (with a warning).
fn end_of_number(chars: &[char], i: usize, what: &str) -> Result<(), String> {
    match chars.get(i) {
        Some(&c) if id_continue(c) => {
            let rest: String = chars[i..].iter().take(5).collect();
            let ok = ["and", "else", "for", "if", "in", "is", "not", "or"]
                .iter()
                .any(|k| rest.starts_with(k));
            if ok {
                Ok(())
            } else {
                Err(format!("invalid {what} literal"))
            }
        }
        _ => Ok(()),
    }
}

fn digits(chars: &[char], mut i: usize, ok: impl Fn(char) -> bool) -> (usize, bool) {
    // digit (_? digit)*; returns (end, well_formed)
    let start = i;
    while i < chars.len() {
        let underscore = chars[i] == '_' && i > start && chars.get(i + 1).is_some_and(|c| ok(*c));
        if !ok(chars[i]) && !underscore {
            break;
        }
        i += 1;
    }
    let bad = chars.get(i) == Some(&'_');
    (i, i > start && !bad)
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), String> {
    let c0 = chars[start];
    if c0 == '0' {
        if let Some(&b) = chars.get(start + 1) {
            let (radix, what) = match b {
                'x' | 'X' => (16, "hexadecimal"),
                'o' | 'O' => (8, "octal"),
                'b' | 'B' => (2, "binary"),
                _ => (0, ""),
            };
            if radix != 0 {
                let mut i = start + 2;
                if chars.get(i) == Some(&'_') {
                    i += 1;
                }
                let (end, ok) = digits(chars, i, |c| c.is_digit(radix));
                if !ok {
                    if let Some(&d) = chars.get(end) {
                        if d.is_ascii_digit() {
                            return Err(format!("invalid digit '{d}' in {what} literal"));
                        }
                    }
                    return Err(format!("invalid {what} literal"));
                }
                if let Some(&d) = chars.get(end) {
                    if d.is_ascii_digit() {
                        return Err(format!("invalid digit '{d}' in {what} literal"));
                    }
                }
                end_of_number(chars, end, what)?;
                let text: String = chars[i..end].iter().filter(|c| **c != '_').collect();
                return Ok((Tok::Int(to_decimal(&text, radix)), end));
            }
        }
    }
    // Decimal integer, float or imaginary.
    let mut i = start;
    let mut is_float = false;
    let int_part_end;
    if chars[i] == '.' {
        int_part_end = i;
    } else {
        let (end, ok) = digits(chars, i, |c| c.is_ascii_digit());
        if !ok {
            return Err("invalid decimal literal".into());
        }
        int_part_end = end;
        i = end;
    }
    if chars.get(i) == Some(&'.') {
        is_float = true;
        i += 1;
        if chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
            let (end, ok) = digits(chars, i, |c| c.is_ascii_digit());
            if !ok {
                return Err("invalid decimal literal".into());
            }
            i = end;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        let (end, ok) = digits(chars, j, |c| c.is_ascii_digit());
        if ok {
            is_float = true;
            i = end;
        } else if !chars[i..].iter().take(4).copied().eq("else".chars()) {
            return Err("invalid decimal literal".into());
        }
    }
    let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
    if matches!(chars.get(i), Some('j' | 'J')) {
        i += 1;
        end_of_number(chars, i, "imaginary")?;
        return Ok((Tok::Imag(text.parse().unwrap_or(f64::INFINITY)), i));
    }
    end_of_number(chars, i, "decimal")?;
    if is_float {
        return Ok((Tok::Float(text.parse().unwrap_or(f64::INFINITY)), i));
    }
    let int_text: String = chars[start..int_part_end]
        .iter()
        .filter(|c| **c != '_')
        .collect();
    if int_text.len() > 1 && int_text.starts_with('0') {
        if int_text.chars().all(|c| c == '0') {
            return Ok((Tok::Int("0".into()), i));
        }
        return Err("leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers".into());
    }
    Ok((Tok::Int(int_text), i))
}

/// Converts digits in `radix` to decimal, for integers of any size.
fn to_decimal(digits: &str, radix: u32) -> String {
    // Little-endian limbs in base 1e9.
    let mut limbs: Vec<u64> = vec![0];
    for c in digits.chars() {
        let mut carry = c.to_digit(radix).unwrap_or(0) as u64;
        for l in limbs.iter_mut() {
            let v = *l * radix as u64 + carry;
            *l = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }
    let mut out = limbs.last().copied().unwrap_or(0).to_string();
    for l in limbs.iter().rev().skip(1) {
        out.push_str(&format!("{l:09}"));
    }
    out
}

fn string(chars: &[char], start: usize, prefix: &str) -> Result<(StrLit, usize), String> {
    let raw = prefix.contains('r');
    let bytes = prefix.contains('b');
    let fstr = prefix.contains('f');
    let q = chars[start];
    let triple = chars.get(start + 1) == Some(&q) && chars.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    let mut body = String::new();
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(if triple {
                "unterminated triple-quoted string literal".into()
            } else {
                "unterminated string literal".into()
            });
        };
        if c == q {
            if !triple {
                i += 1;
                break;
            }
            if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                i += 3;
                break;
            }
        }
        if (c == '\n' || c == '\r') && !triple {
            return Err("unterminated string literal".into());
        }
        if c == '\\' {
            if let Some(&n) = chars.get(i + 1) {
                body.push(c);
                body.push(n);
                i += 2;
                continue;
            }
        }
        body.push(c);
        i += 1;
    }
    if fstr {
        return Ok((StrLit::Format, i));
    }
    if bytes && !body.is_ascii() {
        return Err("bytes can only contain ASCII literal characters".into());
    }
    let text = if raw { body } else { unescape(&body, bytes)? };
    if bytes {
        Ok((
            StrLit::Bytes(text.chars().map(|c| c as u32 as u8).collect()),
            i,
        ))
    } else {
        Ok((StrLit::Text(text), i))
    }
}

fn unescape(body: &str, bytes: bool) -> Result<String, String> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let hex = |s: &[char], n: usize, what: &str| -> Result<u32, String> {
        if s.len() < n || !s[..n].iter().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "(unicode error) 'unicodeescape' codec can't decode bytes: truncated {what} escape"
            ));
        }
        Ok(u32::from_str_radix(&s[..n].iter().collect::<String>(), 16).unwrap_or(0))
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        i += 2;
        match n {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(n),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut v = n.to_digit(8).unwrap_or(0);
                let mut k = 0;
                while k < 2 && i < chars.len() && chars[i].is_digit(8) {
                    v = v * 8 + chars[i].to_digit(8).unwrap_or(0);
                    i += 1;
                    k += 1;
                }
                let v = if bytes { v & 0xff } else { v };
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            'x' => {
                let v = hex(&chars[i..], 2, "\\xXX")?;
                i += 2;
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            'u' | 'U' if !bytes => {
                let len = if n == 'u' { 4 } else { 8 };
                let v = hex(
                    &chars[i..],
                    len,
                    if n == 'u' { "\\uXXXX" } else { "\\UXXXXXXXX" },
                )?;
                i += len;
                match char::from_u32(v) {
                    Some(c) => out.push(c),
                    None if v > 0x10ffff => {
                        return Err("(unicode error) 'unicodeescape' codec can't decode bytes: illegal Unicode character".into())
                    }
                    None => out.push('\u{fffd}'),
                }
            }
            'N' if !bytes => {
                return Err(
                    "(unicode error) \\N{...} escapes are not supported in policy check kinds"
                        .into(),
                )
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Int(String),
    Float(f64),
    Imag(f64),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
    None,
    Ellipsis,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Const(Lit),
    Tuple(Vec<Node>),
    List(Vec<Node>),
    Set(Vec<Node>),
    EmptyDict,
    Unary(char, Box<Node>),
    AddSub(char, Box<Node>, Box<Node>),
    EmptySetCall,
    Name(String),
    Starred,
    Other,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

type P = Result<Node, ()>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Kw(k) if *k == kw)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<(), ()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(())
        }
    }

    fn starts_expression(&self) -> bool {
        match self.peek() {
            Tok::Name(_) | Tok::Int(_) | Tok::Float(_) | Tok::Imag(_) | Tok::Str(_) => true,
            Tok::Kw(k) => matches!(*k, "True" | "False" | "None" | "not" | "lambda" | "await"),
            Tok::Op(o) => matches!(*o, "(" | "[" | "{" | "-" | "+" | "~" | "..." | "*"),
            _ => false,
        }
    }

    fn parse_eval(&mut self) -> P {
        let e = self.expressions()?;
        while matches!(self.peek(), Tok::Newline) {
            self.pos += 1;
        }
        if !matches!(self.peek(), Tok::End) {
            return Err(());
        }
        Ok(e)
    }

    fn expressions(&mut self) -> P {
        let first = self.expression()?;
        if !self.is_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if !self.starts_expression() || self.is_op("*") {
                break;
            }
            items.push(self.expression()?);
        }
        Ok(Node::Tuple(items))
    }

    fn expression(&mut self) -> P {
        if self.is_kw("lambda") {
            return Err(());
        }
        let d = self.disjunction()?;
        if self.eat_kw("if") {
            self.disjunction()?;
            if !self.eat_kw("else") {
                return Err(());
            }
            self.expression()?;
            return Ok(Node::Other);
        }
        Ok(d)
    }

    fn disjunction(&mut self) -> P {
        let mut n = self.conjunction()?;
        while self.eat_kw("or") {
            self.conjunction()?;
            n = Node::Other;
        }
        Ok(n)
    }

    fn conjunction(&mut self) -> P {
        let mut n = self.inversion()?;
        while self.eat_kw("and") {
            self.inversion()?;
            n = Node::Other;
        }
        Ok(n)
    }

    fn inversion(&mut self) -> P {
        if self.eat_kw("not") {
            self.inversion()?;
            return Ok(Node::Other);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> P {
        let mut n = self.bitor()?;
        loop {
            let is_cmp = match self.peek() {
                Tok::Op(o) => matches!(*o, "==" | "!=" | "<" | ">" | "<=" | ">="),
                Tok::Kw("in") | Tok::Kw("is") => true,
                Tok::Kw("not") => matches!(self.peek_at(1), Tok::Kw("in")),
                _ => false,
            };
            if !is_cmp {
                return Ok(n);
            }
            if self.eat_kw("not") {
                self.bump();
            } else if self.eat_kw("is") {
                self.eat_kw("not");
            } else {
                self.bump();
            }
            self.bitor()?;
            n = Node::Other;
        }
    }

    fn binary(&mut self, ops: &[&str], next: fn(&mut Self) -> P) -> P {
        let mut n = next(self)?;
        while ops.iter().any(|o| self.is_op(o)) {
            self.bump();
            next(self)?;
            n = Node::Other;
        }
        Ok(n)
    }

    fn bitor(&mut self) -> P {
        self.binary(&["|"], Self::xor)
    }
    fn xor(&mut self) -> P {
        self.binary(&["^"], Self::band)
    }
    fn band(&mut self) -> P {
        self.binary(&["&"], Self::shift)
    }
    fn shift(&mut self) -> P {
        self.binary(&["<<", ">>"], Self::sum)
    }

    fn sum(&mut self) -> P {
        let mut n = self.term()?;
        loop {
            let op = if self.is_op("+") {
                '+'
            } else if self.is_op("-") {
                '-'
            } else {
                return Ok(n);
            };
            self.bump();
            let r = self.term()?;
            n = Node::AddSub(op, Box::new(n), Box::new(r));
        }
    }

    fn term(&mut self) -> P {
        self.binary(&["*", "/", "//", "%", "@"], Self::factor)
    }

    fn factor(&mut self) -> P {
        for (op, c) in [("+", '+'), ("-", '-'), ("~", '~')] {
            if self.eat_op(op) {
                let f = self.factor()?;
                return Ok(Node::Unary(c, Box::new(f)));
            }
        }
        self.power()
    }

    fn power(&mut self) -> P {
        let p = if self.eat_kw("await") {
            self.primary()?;
            Node::Other
        } else {
            self.primary()?
        };
        if self.eat_op("**") {
            self.factor()?;
            return Ok(Node::Other);
        }
        Ok(p)
    }

    fn primary(&mut self) -> P {
        let mut n = self.atom()?;
        loop {
            if self.eat_op(".") {
                match self.bump() {
                    Tok::Name(_) => n = Node::Other,
                    _ => return Err(()),
                }
            } else if self.eat_op("(") {
                let empty = self.is_op(")");
                self.call_args()?;
                n = if empty && n == Node::Name("set".into()) {
                    Node::EmptySetCall
                } else {
                    Node::Other
                };
            } else if self.eat_op("[") {
                self.subscript()?;
                n = Node::Other;
            } else {
                return Ok(n);
            }
        }
    }

    fn call_args(&mut self) -> Result<(), ()> {
        let mut first = true;
        while !self.is_op(")") {
            if !first {
                self.expect_op(",")?;
                if self.is_op(")") {
                    break;
                }
            }
            if self.eat_op("*") || self.eat_op("**") {
                self.expression()?;
            } else if matches!(self.peek(), Tok::Name(_)) && matches!(self.peek_at(1), Tok::Op("="))
            {
                self.pos += 2;
                self.expression()?;
            } else {
                self.expression()?;
                if self.is_kw("for") || self.is_kw("async") {
                    self.comprehension()?;
                }
            }
            first = false;
        }
        self.expect_op(")")
    }

    fn subscript(&mut self) -> Result<(), ()> {
        loop {
            if self.eat_op("*") {
                self.bitor()?;
            } else {
                self.expression()?;
            }
            if !self.eat_op(",") || self.is_op("]") {
                break;
            }
        }
        self.expect_op("]")
    }

    fn star_named(&mut self) -> P {
        if self.eat_op("*") {
            self.bitor()?;
            return Ok(Node::Starred);
        }
        self.expression()
    }

    fn comprehension(&mut self) -> Result<(), ()> {
        while self.is_kw("for") || self.is_kw("async") {
            self.eat_kw("async");
            if !self.eat_kw("for") {
                return Err(());
            }
            loop {
                self.eat_op("*");
                self.bitor()?;
                if !self.eat_op(",") || self.is_kw("in") {
                    break;
                }
            }
            if !self.eat_kw("in") {
                return Err(());
            }
            self.disjunction()?;
            while self.eat_kw("if") {
                self.disjunction()?;
            }
        }
        Ok(())
    }

    /// Elements of a display up to `close`, or a comprehension.
    fn display(&mut self, close: &str, first: Node) -> Result<Option<Vec<Node>>, ()> {
        if self.is_kw("for") || self.is_kw("async") {
            if first == Node::Starred {
                return Err(());
            }
            self.comprehension()?;
            self.expect_op(close)?;
            return Ok(None);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.is_op(close) {
                break;
            }
            items.push(self.star_named()?);
        }
        self.expect_op(close)?;
        Ok(Some(items))
    }

    fn atom(&mut self) -> P {
        match self.bump() {
            Tok::Name(n) => Ok(Node::Name(n)),
            Tok::Kw("True") => Ok(Node::Const(Lit::Bool(true))),
            Tok::Kw("False") => Ok(Node::Const(Lit::Bool(false))),
            Tok::Kw("None") => Ok(Node::Const(Lit::None)),
            Tok::Int(s) => Ok(Node::Const(Lit::Int(s))),
            Tok::Float(f) => Ok(Node::Const(Lit::Float(f))),
            Tok::Imag(f) => Ok(Node::Const(Lit::Imag(f))),
            Tok::Op("...") => Ok(Node::Const(Lit::Ellipsis)),
            Tok::Str(first) => {
                let mut parts = vec![first];
                while let Tok::Str(s) = self.peek().clone() {
                    parts.push(s);
                    self.pos += 1;
                }
                let nb = parts
                    .iter()
                    .filter(|p| matches!(p, StrLit::Bytes(_)))
                    .count();
                if nb != 0 && nb != parts.len() {
                    return Err(());
                }
                if parts.iter().any(|p| matches!(p, StrLit::Format)) {
                    return Ok(Node::Other);
                }
                if nb > 0 {
                    let mut b = Vec::new();
                    for p in parts {
                        if let StrLit::Bytes(x) = p {
                            b.extend(x);
                        }
                    }
                    Ok(Node::Const(Lit::Bytes(b)))
                } else {
                    let mut s = String::new();
                    for p in parts {
                        if let StrLit::Text(x) = p {
                            s.push_str(&x);
                        }
                    }
                    Ok(Node::Const(Lit::Str(s)))
                }
            }
            Tok::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Node::Tuple(vec![]));
                }
                let first = self.star_named()?;
                if self.is_op(")") {
                    self.bump();
                    if first == Node::Starred {
                        return Err(());
                    }
                    return Ok(first);
                }
                match self.display(")", first)? {
                    Some(items) => Ok(Node::Tuple(items)),
                    None => Ok(Node::Other),
                }
            }
            Tok::Op("[") => {
                if self.eat_op("]") {
                    return Ok(Node::List(vec![]));
                }
                let first = self.star_named()?;
                match self.display("]", first)? {
                    Some(items) => Ok(Node::List(items)),
                    None => Ok(Node::Other),
                }
            }
            Tok::Op("{") => {
                if self.eat_op("}") {
                    return Ok(Node::EmptyDict);
                }
                if self.is_op("**") {
                    loop {
                        if !self.eat_op("**") {
                            return Err(());
                        }
                        self.bitor()?;
                        if !self.eat_op(",") || self.is_op("}") {
                            break;
                        }
                    }
                    self.expect_op("}")?;
                    return Ok(Node::Other);
                }
                let first = self.star_named()?;
                match self.display("}", first)? {
                    Some(items) => Ok(Node::Set(items)),
                    None => Ok(Node::Other),
                }
            }
            _ => Err(()),
        }
    }
}

// ---------------------------------------------------------- literal_eval

#[derive(Clone, Debug, PartialEq)]
enum PyLit {
    Int(String),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    Bytes(Vec<u8>),
    Bool(bool),
    None,
    Ellipsis,
    Tuple(Vec<PyLit>),
    List(Vec<PyLit>),
    Set(Vec<PyLit>),
    Dict,
}

enum Conv {
    Malformed,
    Type(String),
    Overflow(String),
}

fn int_to_f64(s: &str) -> Result<f64, Conv> {
    let f: f64 = s.parse().unwrap_or(f64::INFINITY);
    if f.is_infinite() {
        return Err(Conv::Overflow("int too large to convert to float".into()));
    }
    Ok(f)
}

impl PyLit {
    fn type_name(&self) -> &'static str {
        match self {
            PyLit::List(_) => "list",
            PyLit::Set(_) => "set",
            PyLit::Dict => "dict",
            _ => "object",
        }
    }

    fn unhashable(&self) -> Option<&'static str> {
        match self {
            PyLit::List(_) | PyLit::Set(_) | PyLit::Dict => Some(self.type_name()),
            PyLit::Tuple(items) => items.iter().find_map(|i| i.unhashable()),
            _ => None,
        }
    }

    fn numeric(&self) -> Option<(f64, f64)> {
        match self {
            PyLit::Int(s) => Some((s.parse().unwrap_or(f64::NAN), 0.0)),
            PyLit::Float(f) => Some((*f, 0.0)),
            PyLit::Complex(r, i) => Some((*r, *i)),
            PyLit::Bool(b) => Some((if *b { 1.0 } else { 0.0 }, 0.0)),
            _ => None,
        }
    }

    fn py_eq(&self, other: &PyLit) -> bool {
        match (self.numeric(), other.numeric()) {
            (Some(a), Some(b)) => return a == b,
            (Some(_), None) | (None, Some(_)) => return false,
            _ => {}
        }
        match (self, other) {
            (PyLit::Tuple(a), PyLit::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.py_eq(y))
            }
            (a, b) => a == b,
        }
    }

    fn repr(&self) -> String {
        let join = |items: &[PyLit]| {
            items
                .iter()
                .map(|i| i.repr())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            PyLit::Int(s) => s.clone(),
            PyLit::Float(f) => float_repr(*f),
            PyLit::Complex(r, i) => {
                if *r == 0.0 && r.is_sign_positive() {
                    format!("{}j", float_repr_no_dot0(*i))
                } else {
                    let sign = if i.is_sign_negative() && !i.is_nan() {
                        '-'
                    } else {
                        '+'
                    };
                    format!(
                        "({}{}{}j)",
                        float_repr_no_dot0(*r),
                        sign,
                        float_repr_no_dot0(i.abs())
                    )
                }
            }
            PyLit::Str(s) => repr_str(s, false),
            PyLit::Bytes(b) => repr_bytes(b),
            PyLit::Bool(true) => "True".into(),
            PyLit::Bool(false) => "False".into(),
            PyLit::None => "None".into(),
            PyLit::Ellipsis => "Ellipsis".into(),
            PyLit::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            PyLit::Tuple(items) => format!("({})", join(items)),
            PyLit::List(items) => format!("[{}]", join(items)),
            PyLit::Set(items) if items.is_empty() => "set()".into(),
            PyLit::Set(items) => format!("{{{}}}", join(items)),
            PyLit::Dict => "{}".into(),
        }
    }

    fn to_str(&self) -> String {
        match self {
            PyLit::Str(s) => s.clone(),
            other => other.repr(),
        }
    }
}

fn convert_num(n: &Node) -> Result<PyLit, Conv> {
    match n {
        Node::Const(Lit::Int(s)) => Ok(PyLit::Int(s.clone())),
        Node::Const(Lit::Float(f)) => Ok(PyLit::Float(*f)),
        Node::Const(Lit::Imag(f)) => Ok(PyLit::Complex(0.0, *f)),
        _ => Err(Conv::Malformed),
    }
}

fn convert_signed(n: &Node) -> Result<PyLit, Conv> {
    if let Node::Unary(op @ ('+' | '-'), inner) = n {
        let v = convert_num(inner)?;
        if *op == '+' {
            return Ok(v);
        }
        return Ok(match v {
            PyLit::Int(s) if s == "0" => PyLit::Int(s),
            PyLit::Int(s) => PyLit::Int(format!("-{s}")),
            PyLit::Float(f) => PyLit::Float(-f),
            PyLit::Complex(r, i) => PyLit::Complex(-r, -i),
            other => other,
        });
    }
    convert_num(n)
}

fn convert(n: &Node) -> Result<PyLit, Conv> {
    match n {
        Node::Const(l) => Ok(match l {
            Lit::Int(s) => PyLit::Int(s.clone()),
            Lit::Float(f) => PyLit::Float(*f),
            Lit::Imag(f) => PyLit::Complex(0.0, *f),
            Lit::Str(s) => PyLit::Str(s.clone()),
            Lit::Bytes(b) => PyLit::Bytes(b.clone()),
            Lit::Bool(b) => PyLit::Bool(*b),
            Lit::None => PyLit::None,
            Lit::Ellipsis => PyLit::Ellipsis,
        }),
        Node::Tuple(items) => Ok(PyLit::Tuple(
            items.iter().map(convert).collect::<Result<_, _>>()?,
        )),
        Node::List(items) => Ok(PyLit::List(
            items.iter().map(convert).collect::<Result<_, _>>()?,
        )),
        Node::Set(items) => {
            let mut out: Vec<PyLit> = Vec::new();
            for i in items {
                let v = convert(i)?;
                if let Some(t) = v.unhashable() {
                    return Err(Conv::Type(format!("unhashable type: '{t}'")));
                }
                if !out.iter().any(|o| o.py_eq(&v)) {
                    out.push(v);
                }
            }
            Ok(PyLit::Set(out))
        }
        Node::EmptySetCall => Ok(PyLit::Set(vec![])),
        Node::EmptyDict => Ok(PyLit::Dict),
        Node::AddSub(op, l, r) => {
            let left = convert_signed(l)?;
            let right = convert_num(r)?;
            if let PyLit::Complex(rr, ri) = right {
                let lf = match &left {
                    PyLit::Int(s) => Some(int_to_f64(s)?),
                    PyLit::Float(f) => Some(*f),
                    _ => None,
                };
                if let Some(lf) = lf {
                    return Ok(if *op == '+' {
                        PyLit::Complex(lf + rr, ri)
                    } else {
                        PyLit::Complex(lf - rr, -ri)
                    });
                }
            }
            Err(Conv::Malformed)
        }
        other => convert_signed(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(k: &str) -> String {
        match classify(k) {
            KindClass::Literal(s) => format!("LIT {s}"),
            KindClass::Path(_) => "VAL".into(),
            KindClass::Raises(e) => format!("{:?}", e.kind),
        }
    }

    #[test]
    fn literals_match_cpython() {
        for (k, want) in [
            ("True", "LIT True"),
            ("None", "LIT None"),
            ("-5", "LIT -5"),
            ("+5", "LIT 5"),
            ("1+2j", "LIT (1+2j)"),
            ("0x1F", "LIT 31"),
            ("0o17", "LIT 15"),
            ("0b11", "LIT 3"),
            ("1_000", "LIT 1000"),
            ("00", "LIT 0"),
            ("1e5", "LIT 100000.0"),
            (".5", "LIT 0.5"),
            ("5.", "LIT 5.0"),
            ("1j", "LIT 1j"),
            ("...", "LIT Ellipsis"),
            ("set()", "LIT set()"),
            ("{}", "LIT {}"),
            ("[]", "LIT []"),
            ("()", "LIT ()"),
            ("(1,)", "LIT (1,)"),
            ("[1,[2]]", "LIT [1, [2]]"),
            ("{1,2}", "LIT {1, 2}"),
            ("'a''b'", "LIT ab"),
            ("b'x'", "LIT b'x'"),
            ("u'x'", "LIT x"),
            ("r'\\d'", "LIT \\d"),
            ("'a\\x41'", "LIT aA"),
            ("1e16", "LIT 1e+16"),
            ("1e-5", "LIT 1e-05"),
            ("-0.0", "LIT -0.0"),
            ("-0", "LIT 0"),
            (
                "123456789012345678901234567890",
                "LIT 123456789012345678901234567890",
            ),
            (
                "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                "LIT 356811923176489970264571492362373784095686655",
            ),
            ("{1,True}", "LIT {1}"),
            ("'service'", "LIT service"),
            ("\"x\"", "LIT x"),
        ] {
            assert_eq!(c(k), want, "{k}");
        }
    }

    #[test]
    fn non_literals_are_paths() {
        for k in [
            "true",
            "a.b",
            "--5",
            "-True",
            "1+2",
            "Ellipsis",
            "f'x'",
            "a-b",
            "a#b",
            "a==b",
            "a@b",
            "x[0]",
            "f()",
            "await x",
            " a",
            "\ta",
            "(a)",
            "1if 1else 2",
            "a.b.c-d",
            "a,",
            "a,b",
            "~5",
            "not x",
            "x if y else z",
            "[x for x in y]",
            "{**a}",
            "a and b",
            "é",
            "a\n",
            "user_name",
            "target.project.id",
            "project-id",
        ] {
            assert_eq!(c(k), "VAL", "{k:?}");
        }
    }

    #[test]
    fn syntax_errors_raise() {
        for k in [
            "1abc", "", "a..b", "01", "a+", "$x", "#x", "a;b", "a=b", "a!b", "1.a", "a.1", "is",
            "not", "if", "class", "lambda", "yield", "a b", "a\0", "\"a\"b", "x\"a\"", "1__0",
            "1_", "0x", "1e", "0777", "1or", "a.-b", "*a", "**a", "€", "\\x", "a\\\nb", "a\nb",
            "(", ")", "'abc",
        ] {
            assert_eq!(c(k), "SyntaxError", "{k:?}");
        }
        assert_eq!(c("{[]}"), "TypeError");
    }

    #[test]
    fn paths_split_on_dots() {
        assert_eq!(
            classify("a.b.c"),
            KindClass::Path(vec!["a".into(), "b".into(), "c".into()])
        );
    }
}
