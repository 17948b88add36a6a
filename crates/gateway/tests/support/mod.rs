//! Helpers shared by the demo's integration tests: child processes that cannot outlive their
//! test, and reading a child's output line by line with a deadline.

use std::{
    io::{BufRead, BufReader, Read},
    process::Child,
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

/// A child process that is killed and reaped when dropped, so a failing test leaves no orphan.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Takes ownership of `child`.
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// The child, e.g. to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Either may fail only because the child already exited, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a pipe, read on a thread so that waiting for one can time out.
///
/// The thread reads the pipe to its end even after this is dropped, so the child never blocks on
/// a full pipe.
pub struct Lines {
    receiver: Receiver<String>,
}

impl Lines {
    /// Starts reading `pipe`; each line is also copied to stderr when `echo` is set.
    pub fn spawn(pipe: impl Read + Send + 'static, echo: Option<&'static str>) -> Self {
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(prefix) = echo {
                    eprintln!("{prefix}{line}");
                }
                // The receiver may be gone; keep draining anyway.
                let _ = sender.send(line);
            }
        });
        Self { receiver }
    }

    /// The first line for which `find` returns `Some`, if one comes within `timeout`.
    pub fn find<T>(&self, timeout: Duration, mut find: impl FnMut(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = find(&line) {
                        return Some(found);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}
