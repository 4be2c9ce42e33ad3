//! Progress of a long operator command, and the summary table at its end.
//!
//! On a terminal (stderr is a TTY) a progress bar with the step in hand,
//! redrawn in place ([`indicatif`]); otherwise (a log, CI, a pipe) plain
//! lines on stderr: one when a step starts and one every
//! [`PLAIN_TICK`] while it runs, so a slow step is visibly alive. The
//! command's own result lines go to stdout through [`Progress::println`],
//! which keeps them from tearing the bar.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line says the step in hand is still running.
pub const PLAIN_TICK: Duration = Duration::from_secs(10);

/// The progress display of one command.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: usize,
    state: Arc<Mutex<StepState>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

struct StepState {
    index: usize,
    what: String,
    since: Instant,
}

impl Progress {
    /// A display for `total` steps of the command `label`: a bar when
    /// stderr is a terminal, plain lines otherwise.
    pub fn new(label: &str, total: usize) -> Self {
        Self::with_bar(label, total, std::io::stderr().is_terminal())
    }

    /// As [`Self::new`], choosing the bar explicitly.
    pub fn with_bar(label: &str, total: usize, bar: bool) -> Self {
        let bar = bar.then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            bar,
            label: label.to_string(),
            total,
            state: Arc::new(Mutex::new(StepState {
                index: 0,
                what: String::new(),
                since: Instant::now(),
            })),
            ticker: None,
        }
    }

    /// Whether a bar is drawn.
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Step `what` starts (the previous one, if any, is done).
    pub fn step(&mut self, what: &str) {
        let index = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.index += 1;
            st.what = what.to_string();
            st.since = Instant::now();
            st.index
        };
        match &self.bar {
            Some(b) => {
                b.set_position(index.saturating_sub(1) as u64);
                b.set_message(what.to_string());
            }
            None => {
                eprintln!("{}: [{index}/{}] {what}", self.label, self.total);
                self.start_ticker();
            }
        }
    }

    /// Writes one result line to `out` without tearing the bar.
    pub fn println(&self, out: &mut impl Write, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }),
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// Every step is done (or the command stops): clears the bar.
    pub fn finish(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Plain mode: one line every [`PLAIN_TICK`] while a step runs.
    fn start_ticker(&mut self) {
        if self.ticker.is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let state = self.state.clone();
        let label = self.label.clone();
        let total = self.total;
        self.ticker = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PLAIN_TICK);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (index, what, since) = {
                    let st = state.lock().unwrap_or_else(|p| p.into_inner());
                    (st.index, st.what.clone(), st.since)
                };
                eprintln!(
                    "{label}: [{index}/{total}] still working on {what} ({} s)",
                    since.elapsed().as_secs()
                );
            }
        }));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The table printed at the end: one row per step and what came of it.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    rows: Vec<(String, String)>,
}

impl Summary {
    /// Adds a row.
    pub fn row(&mut self, step: impl Into<String>, result: impl Into<String>) {
        self.rows.push((step.into(), result.into()));
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, with `Step` and `Result` columns.
    pub fn render(&self) -> String {
        let w0 = self
            .rows
            .iter()
            .map(|r| r.0.chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let w1 = self
            .rows
            .iter()
            .map(|r| r.1.chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        let rule = format!("+{}+{}+", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
        let line = |a: &str, b: &str| {
            format!(
                "| {a}{} | {b}{} |",
                " ".repeat(w0 - a.chars().count()),
                " ".repeat(w1 - b.chars().count())
            )
        };
        let mut out = vec![rule.clone(), line("Step", "Result"), rule.clone()];
        out.extend(self.rows.iter().map(|(a, b)| line(a, b)));
        out.push(rule);
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_a_table() {
        let mut s = Summary::default();
        s.row("service nova/h.example.test", "in place");
        s.row("permission \"Modify host password\"", "new");
        assert_eq!(
            s.render(),
            "\
+-----------------------------------+----------+
| Step                              | Result   |
+-----------------------------------+----------+
| service nova/h.example.test       | in place |
| permission \"Modify host password\" | new      |
+-----------------------------------+----------+"
        );
    }

    #[test]
    fn bar_mode_writes_lines_past_the_bar() {
        let mut p = Progress::with_bar("t", 2, true);
        assert!(p.is_bar());
        p.step("one");
        let mut out = Vec::new();
        p.println(&mut out, "done one");
        p.step("two");
        p.finish();
        assert_eq!(String::from_utf8(out).unwrap(), "done one\n");
    }

    #[test]
    fn plain_mode_writes_lines_through() {
        let mut p = Progress::with_bar("t", 2, false);
        assert!(!p.is_bar());
        p.step("one");
        let mut out = Vec::new();
        p.println(&mut out, "done one");
        p.finish();
        assert_eq!(String::from_utf8(out).unwrap(), "done one\n");
    }
}
