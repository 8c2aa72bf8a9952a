//! A replica's output: the process writes straight into its log file (not through a pipe to
//! Portico), so that a replica kept across a restart of Portico never writes into a closed
//! pipe. The file is kept to a bounded size by copy-and-truncate (as logrotate's
//! `copytruncate`: the app appends, so it carries on at the start of the emptied file), with
//! one older copy. A failure quotes the file's last lines.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Replica logs kept per app folder.
pub const KEEP_LOGS: usize = 10;

/// How often a replica's log file is checked against its size limit.
const LOG_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// A log file reaching this size is copied to `<name>.1` and emptied.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// How much of the file's end is read for its last lines.
const TAIL_BYTES: u64 = 64 * 1024;

/// One replica's log file.
pub struct LogSink {
    path: PathBuf,
    file: File,
}

impl LogSink {
    /// Opens (appending to) the replica's log file.
    pub fn create(path: &Path) -> std::io::Result<LogSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogSink {
            path: path.to_owned(),
            file,
        })
    }

    /// A handle for the process's standard output or error (appending, like Portico's own).
    pub fn output(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// Appends one line of Portico's own (without its newline).
    pub fn line(&self, line: &str) {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        // One write, so that it is not interleaved with the app's output.
        let _ = (&self.file).write_all(text.as_bytes());
    }

    /// Appends output as the replica wrote it (a runtime that relays output, rather than
    /// handing the replica the file).
    pub fn write(&self, bytes: &[u8]) {
        let _ = (&self.file).write_all(bytes);
    }

    /// Copies the file to `<name>.1` and empties it once it has reached [`MAX_LOG_BYTES`].
    /// Lines the app writes between the copy and the truncation are lost (rarely a few).
    pub fn rotate_if_large(&self) {
        let large = self.file.metadata().is_ok_and(|m| m.len() >= MAX_LOG_BYTES);
        if large && std::fs::copy(&self.path, self.path.with_extension("log.1")).is_ok() {
            let _ = self.file.set_len(0);
        }
    }

    /// The last `lines` lines of the file.
    pub fn tail(&self, lines: usize) -> Vec<String> {
        last_lines(&self.path, lines).unwrap_or_default()
    }
}

fn last_lines(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    let start = length.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        // The first line read is probably cut.
        all.remove(0);
    }
    Ok(all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect())
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

/// Waits for `exit`, keeping the replica's log within its size meanwhile.
pub async fn keep_log_bounded<T>(exit: impl std::future::Future<Output = T>, log: &LogSink) -> T {
    tokio::pin!(exit);
    loop {
        tokio::select! {
            done = &mut exit => return done,
            _ = tokio::time::sleep(LOG_CHECK_INTERVAL) => log.rotate_if_large(),
        }
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
        // The app writes through its own handle, as a child process would.
        let mut app = sink.output().unwrap();
        let line = "x".repeat(1023);
        for _ in 0..(MAX_LOG_BYTES / 1024 + 10) {
            writeln!(app, "{line}").unwrap();
        }
        sink.rotate_if_large();
        assert!(std::fs::metadata(dir.path().join("r.log.1")).unwrap().len() >= MAX_LOG_BYTES);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        writeln!(app, "after").unwrap();
        sink.line("[portico] exited");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "after\n[portico] exited\n",
            "the app carries on at the start of the emptied file"
        );
        assert_eq!(sink.tail(1), vec!["[portico] exited"]);
        assert_eq!(sink.tail(5).len(), 2);
    }
}
