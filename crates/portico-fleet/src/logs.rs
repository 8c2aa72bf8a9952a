//! A replica's output: written to a size-bounded file (one rotation) for `portico logs`, and
//! the last lines kept in memory so that a failure can say what the app printed.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A log file reaching this size is moved to `<name>.1` and a new one begun.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
const TAIL_LINES: usize = 200;

struct Inner {
    file: Option<std::fs::File>,
    written: u64,
    tail: VecDeque<String>,
}

/// Shared by the stdout and stderr readers of one replica.
#[derive(Clone)]
pub struct LogSink {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl LogSink {
    pub fn create(path: &Path) -> std::io::Result<LogSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogSink {
            path: path.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                file: Some(file),
                written,
                tail: VecDeque::new(),
            })),
        })
    }

    /// Appends one line (without its newline).
    pub fn line(&self, line: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.written >= MAX_LOG_BYTES {
            inner.file = None;
            let rotated = self.path.with_extension("log.1");
            let _ = std::fs::rename(&self.path, rotated);
            inner.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
            inner.written = 0;
        }
        if let Some(file) = inner.file.as_mut() {
            if file
                .write_all(line.as_bytes())
                .and_then(|_| file.write_all(b"\n"))
                .is_ok()
            {
                inner.written += line.len() as u64 + 1;
            }
        }
        if inner.tail.len() == TAIL_LINES {
            inner.tail.pop_front();
        }
        inner.tail.push_back(line.to_owned());
    }

    pub fn tail(&self, lines: usize) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .tail
            .iter()
            .skip(inner.tail.len().saturating_sub(lines))
            .cloned()
            .collect()
    }
}

/// Keeps the newest `keep` replica logs in a folder and removes the rest.
pub fn prune_old_logs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| n != "build.log") && p.to_string_lossy().contains(".log")
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for (_, path) in logs.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_at_its_limit_and_keeps_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let sink = LogSink::create(&path).unwrap();
        let line = "x".repeat(1023);
        for _ in 0..(MAX_LOG_BYTES / 1024 + 10) {
            sink.line(&line);
        }
        assert!(std::fs::metadata(&path).unwrap().len() < MAX_LOG_BYTES);
        assert!(dir.path().join("r.log.1").exists());
        assert_eq!(sink.tail(3).len(), 3);
    }
}
