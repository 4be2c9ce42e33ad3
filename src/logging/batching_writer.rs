//! Log lines gathered for a few milliseconds and written together by a
//! logging thread.
//!
//! A thread that logs only appends its line to a shared buffer; the logging
//! thread wakes when the buffer stops being empty, waits [`WINDOW`] for more
//! lines, and writes them all with one call. Under load that is one wake-up
//! and one `write` per window instead of one per line (waking a thread per
//! line costs more than formatting the line). A line is on its way to
//! stderr at most [`WINDOW`] after it was logged, plus the time to write
//! what came before it.
//!
//! Nothing is dropped: when [`CAPACITY`] bytes wait unwritten (stderr is
//! slower than the service logs), a thread that logs waits until the
//! logging thread has taken them. [`FlushGuard`] writes out what is left
//! and stops the thread when dropped, waiting at most [`FLUSH_TIMEOUT`] (as
//! tracing-appender's guard did) so that a stderr nobody reads cannot hold
//! up the exit.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the logging thread gathers lines before writing them.
pub(crate) const WINDOW: Duration = Duration::from_millis(5);

/// Unwritten bytes at which threads that log wait for the logging thread.
pub(crate) const CAPACITY: usize = 1024 * 1024;

/// Longest [`FlushGuard`] waits at exit for the rest to be written (stderr
/// may be a pipe nobody reads).
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Appends lines to the shared buffer; cheap to clone.
#[derive(Clone)]
pub struct BatchingWriter {
    shared: Arc<Shared>,
}

/// Writes out what is buffered and stops the logging thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the buffer stops being empty, or on close.
    filled: Condvar,
    /// Signalled when the logging thread has taken the buffer.
    drained: Condvar,
    capacity: usize,
    window: Duration,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    closed: bool,
    /// The logging thread has written everything and stopped.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BatchingWriter {
    /// Starts a logging thread named `thread_name` writing to `sink`.
    pub fn new<W: Write + Send + 'static>(
        sink: W,
        thread_name: &str,
    ) -> std::io::Result<(Self, FlushGuard)> {
        Self::with_limits(sink, thread_name, CAPACITY, WINDOW)
    }

    fn with_limits<W: Write + Send + 'static>(
        mut sink: W,
        thread_name: &str,
        capacity: usize,
        window: Duration,
    ) -> std::io::Result<(Self, FlushGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            filled: Condvar::new(),
            drained: Condvar::new(),
            capacity,
            window,
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || worker.run(&mut sink))?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Appends one whole line (or several); never splits or drops it.
    fn append(&self, line: &[u8]) {
        let shared = &*self.shared;
        let mut state = shared.lock();
        while state.lines.len() >= shared.capacity && !state.closed {
            state = shared
                .drained
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        let was_empty = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        // Only an empty buffer can have the logging thread waiting for it.
        if was_empty {
            shared.filled.notify_one();
        }
    }
}

impl Shared {
    fn run(&self, sink: &mut dyn Write) {
        let mut taken = Vec::new();
        loop {
            let mut state = self.lock();
            while state.lines.is_empty() && !state.closed {
                state = self.filled.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if !state.closed {
                // Gather what else arrives in the window.
                drop(state);
                std::thread::sleep(self.window);
                state = self.lock();
            }
            let closed = state.closed;
            std::mem::swap(&mut state.lines, &mut taken);
            drop(state);
            self.drained.notify_all();
            // Nowhere to report a failed write to stderr.
            let _ = sink.write_all(&taken).and_then(|()| sink.flush());
            taken.clear();
            if closed {
                let mut state = self.lock();
                if state.lines.is_empty() {
                    state.finished = true;
                    drop(state);
                    self.drained.notify_all();
                    return;
                }
            }
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let shared = &*self.shared;
        let mut state = shared.lock();
        state.closed = true;
        shared.filled.notify_one();
        shared.drained.notify_all();
        let (state, _) = shared
            .drained
            .wait_timeout_while(state, FLUSH_TIMEOUT, |s| !s.finished)
            .unwrap_or_else(|p| p.into_inner());
        let finished = state.finished;
        drop(state);
        if let Some(t) = self.thread.take() {
            // A thread still blocked writing is left behind, not waited for.
            if finished {
                let _ = t.join();
            }
        }
    }
}

impl Write for BatchingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for &BatchingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Borrowed per event: no reference count shared by every thread that logs.
impl<'a> MakeWriter<'a> for BatchingWriter {
    type Writer = &'a BatchingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Collects what the logging thread writes; counts the writes, and can
    /// be made slow.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.delay);
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_together() {
        let sink = Sink::default();
        let (writer, guard) = BatchingWriter::new(sink.clone(), "test-log").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..500).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected, "each thread's lines whole and in order");
        }
        assert!(
            sink.writes.load(Ordering::SeqCst) < 2000,
            "lines were written together, not one write each"
        );
    }

    #[test]
    fn a_line_is_written_without_waiting_for_shutdown() {
        let sink = Sink::default();
        let (mut writer, _guard) = BatchingWriter::new(sink.clone(), "test-log").unwrap();
        writer.write_all(b"hello\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.bytes.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*sink.bytes.lock().unwrap(), b"hello\n");
    }

    #[test]
    fn a_full_buffer_makes_the_logger_wait_and_loses_nothing() {
        let sink = Sink {
            delay: Duration::from_millis(20),
            ..Sink::default()
        };
        let (writer, guard) =
            BatchingWriter::with_limits(sink.clone(), "test-log", 64, Duration::ZERO).unwrap();
        let line = [b'x'; 31];
        let mut w = writer.clone();
        for _ in 0..40 {
            w.write_all(&line).unwrap();
            assert!(
                writer.shared.lock().lines.len() <= 64 + line.len(),
                "the buffer grows at most one line past its capacity"
            );
        }
        drop(guard);
        assert_eq!(sink.bytes.lock().unwrap().len(), 40 * line.len());
    }

    /// A sink whose write never returns (a pipe nobody reads).
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn exit_is_not_held_up_by_a_stuck_stderr() {
        let (mut writer, guard) = BatchingWriter::new(Stuck, "test-log").unwrap();
        writer.write_all(b"never written\n").unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(guard);
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(FLUSH_TIMEOUT * 10)
            .expect("the guard gave up waiting for the stuck logging thread");
    }
}
