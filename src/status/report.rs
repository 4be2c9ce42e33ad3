//! The result of one check and the report of all of them, printed the way
//! oslo.upgradecheck prints them (`<service>-status upgrade check`): a
//! one-column table titled "Upgrade Check Results" with one row per check
//! (`Check:`, `Result:`, `Details:` wrapped at 60 characters), or with
//! `--json` one line `{"name": ..., "checks": [{"check", "result",
//! "details"}]}` as Python's `json.dumps` writes it. The exit status is the
//! worst result: 0 success, 1 warning, 2 failure.

use std::io;

use serde_json::{json, Value};

/// The title oslo.upgradecheck gives the table and the JSON `name`.
pub const TITLE: &str = "Upgrade Check Results";

/// How a check came out (oslo.upgradecheck's `Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// Nothing to do.
    Success = 0,
    /// Look at it; the service may work.
    Warning = 1,
    /// The service will not work until this is fixed.
    Failure = 2,
}

impl Code {
    /// The word oslo.upgradecheck prints.
    pub fn label(self) -> &'static str {
        match self {
            Code::Success => "Success",
            Code::Warning => "Warning",
            Code::Failure => "Failure",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's name (`Check: <name>`).
    pub name: String,
    /// Its result.
    pub code: Code,
    /// What was found and what to do; `None` prints as `None`.
    pub details: Option<String>,
}

impl CheckResult {
    /// A result.
    pub fn new(name: &str, code: Code, details: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            code,
            details: Some(details.into()),
        }
    }

    /// A success.
    pub fn success(name: &str, details: impl Into<String>) -> Self {
        Self::new(name, Code::Success, details)
    }

    /// A warning.
    pub fn warning(name: &str, details: impl Into<String>) -> Self {
        Self::new(name, Code::Warning, details)
    }

    /// A failure.
    pub fn failure(name: &str, details: impl Into<String>) -> Self {
        Self::new(name, Code::Failure, details)
    }
}

/// Every check's outcome, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The results.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The worst result (oslo's return code): 0, 1 or 2.
    pub fn exit_code(&self) -> i32 {
        self.checks
            .iter()
            .map(|c| c.code)
            .max()
            .unwrap_or(Code::Success) as i32
    }

    /// The result of the check named `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The JSON line, as `json.dumps` writes it (`", "` and `": "`
    /// separators, non-ASCII escaped).
    pub fn to_json(&self) -> String {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| json!({"check": c.name, "result": c.code as i32, "details": c.details}))
            .collect();
        python_json(&json!({"name": TITLE, "checks": checks}))
    }

    /// The table, as prettytable draws it with `hrules=ALL` and left
    /// alignment.
    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .checks
            .iter()
            .map(|c| {
                let details = match &c.details {
                    Some(d) => wrap(d, 60, "  ").join("\n"),
                    None => "None".to_string(),
                };
                format!(
                    "Check: {}\nResult: {}\nDetails: {}",
                    c.name,
                    c.code.label(),
                    details
                )
                .lines()
                .map(str::to_string)
                .collect()
            })
            .collect();
        let width = cells
            .iter()
            .flatten()
            .map(|l| l.chars().count())
            .chain([TITLE.len()])
            .max()
            .unwrap_or(0);
        let rule = format!("+{}+", "-".repeat(width + 2));
        let line = |text: &str| {
            let pad = width - text.chars().count();
            format!("| {text}{} |", " ".repeat(pad))
        };
        let mut out = vec![rule.clone(), line(TITLE), rule.clone()];
        for cell in &cells {
            out.extend(cell.iter().map(|l| line(l)));
            out.push(rule.clone());
        }
        out.join("\n")
    }
}

/// Python's `textwrap.wrap(text, width, subsequent_indent=indent)`: words
/// are separated by whitespace, lines hold at most `width` characters
/// (indent included), and longer words are broken.
pub fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let prefix_len = if lines.is_empty() { 0 } else { indent.len() };
            let room = width.saturating_sub(prefix_len);
            let sep = usize::from(current_len > 0);
            if current_len + sep + word.len() <= room {
                if sep == 1 {
                    current.push(' ');
                }
                current.extend(word.iter());
                current_len += sep + word.len();
                break;
            }
            if current_len > 0 {
                lines.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // A word longer than a line: break it.
            let rest = word.split_off(room.max(1));
            current.extend(word.iter());
            lines.push(std::mem::take(&mut current));
            word = rest;
            if word.is_empty() {
                break;
            }
        }
    }
    if current_len > 0 {
        lines.push(current);
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| if i == 0 { l } else { format!("{indent}{l}") })
        .collect()
}

/// `json.dumps(value)` with Python's defaults.
fn python_json(value: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PyFormatter);
    serde::Serialize::serialize(value, &mut ser).expect("a JSON value serializes");
    let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The separators of Python's `json.dumps`: `", "` and `": "`.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str =
        "There is no placement-api endpoint in the service catalog and the upgrade cannot continue.";

    fn report() -> Report {
        Report {
            checks: vec![
                CheckResult {
                    name: "Configuration".into(),
                    code: Code::Success,
                    details: None,
                },
                CheckResult::failure("Placement API", LONG),
            ],
        }
    }

    #[test]
    fn the_table_is_prettytables() {
        // Printed by prettytable and textwrap (oslo.upgradecheck's code) in
        // the test venv.
        let expected = "\
+--------------------------------------------------------------------+
| Upgrade Check Results                                              |
+--------------------------------------------------------------------+
| Check: Configuration                                               |
| Result: Success                                                    |
| Details: None                                                      |
+--------------------------------------------------------------------+
| Check: Placement API                                               |
| Result: Failure                                                    |
| Details: There is no placement-api endpoint in the service catalog |
|   and the upgrade cannot continue.                                 |
+--------------------------------------------------------------------+";
        assert_eq!(report().to_table(), expected);
    }

    #[test]
    fn json_is_json_dumps() {
        assert_eq!(
            report().to_json(),
            r#"{"name": "Upgrade Check Results", "checks": [{"check": "Configuration", "result": 0, "details": null}, {"check": "Placement API", "result": 2, "details": "There is no placement-api endpoint in the service catalog and the upgrade cannot continue."}]}"#
        );
        let r = Report {
            checks: vec![CheckResult::warning("x", "café")],
        };
        assert!(r.to_json().contains(r#""caf\u00e9""#));
    }

    #[test]
    fn the_exit_code_is_the_worst_result() {
        assert_eq!(Report::default().exit_code(), 0);
        let mut r = report();
        assert_eq!(r.exit_code(), 2);
        r.checks.pop();
        r.checks.push(CheckResult::warning("w", "look"));
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn wrap_is_textwraps() {
        assert_eq!(
            wrap("aaa bbb ccc", 7, "  "),
            vec!["aaa bbb".to_string(), "  ccc".to_string()]
        );
        assert_eq!(wrap("abcdefghij", 4, ""), vec!["abcd", "efgh", "ij"]);
        assert!(wrap("", 60, "  ").is_empty());
    }
}
