//! Reloading when the config file, or a certificate or key file it names, changes on disk
//! (an edit, a `certbot renew`, a Kubernetes ConfigMap update). The files are polled: it works
//! the same on every filesystem and through symlink swaps, and the files are small.

use crate::reload::Reloader;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the files are read.
const POLL: Duration = Duration::from_secs(2);
/// A change must hold still this long before it is applied: editors and `cp` write in steps.
const SETTLE: Duration = Duration::from_millis(300);
/// Give up waiting for a file that keeps changing after this many settles (and try anyway).
const MAX_SETTLES: u32 = 10;

/// Watches until the task is dropped.
pub async fn watch(reloader: Arc<Reloader>) {
    let mut seen = fingerprint(&reloader.watched_files().await);
    loop {
        tokio::time::sleep(POLL).await;
        let files = reloader.watched_files().await;
        let mut now = fingerprint(&files);
        if now == seen {
            continue;
        }
        for _ in 0..MAX_SETTLES {
            tokio::time::sleep(SETTLE).await;
            let settled = fingerprint(&files);
            if settled == now {
                break;
            }
            now = settled;
        }
        seen = now;
        // The outcome, and a refusal's reason, are logged by the reloader.
        let _ = reloader.reload("a watched file changed").await;
    }
}

/// A hash of the files' contents (a missing file counts as empty: deleting it is a change).
fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}
