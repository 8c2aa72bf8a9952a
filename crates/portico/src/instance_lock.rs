//! One Portico per data folder. A second `portico up` on the same folder would fight the
//! first over its database and, worse, its orphan recovery would kill the first one's apps.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::Path;

pub struct InstanceLock {
    _lock: Flock<File>,
}

/// Takes the lock, or says who holds it.
pub fn acquire(data_dir: &Path) -> Result<InstanceLock, String> {
    let path = data_dir.join("portico.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let _ = std::fs::write(&path, format!("{}\n", std::process::id()));
            Ok(InstanceLock { _lock: lock })
        }
        Err(_) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            Err(format!(
                "another Portico (pid {}) is already running with the data folder {}. Stop it first, or give this one its own server.data_dir.",
                pid.trim(),
                data_dir.display()
            ))
        }
    }
}

/// Whether a Portico is running on this data folder right now.
pub fn is_held(data_dir: &Path) -> bool {
    let Ok(file) = File::options()
        .read(true)
        .write(true)
        .open(data_dir.join("portico.lock"))
    else {
        return false;
    };
    Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
}
