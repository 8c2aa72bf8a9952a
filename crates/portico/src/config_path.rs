//! Which config file a command uses.

use std::path::{Path, PathBuf};

/// `--config` / `$PORTICO_CONFIG`, else `./portico.toml`, else the demo config of the
/// repository this binary was built from (so `cargo run -- up` in a fresh clone works).
pub fn resolve(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let local = PathBuf::from("portico.toml");
    if local.is_file() {
        return Ok(local);
    }
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/portico.toml");
    if demo.is_file() {
        return Ok(std::fs::canonicalize(&demo).unwrap_or(demo));
    }
    Err("no config file: pass --config FILE, set PORTICO_CONFIG, or create ./portico.toml (docs/configuration.md shows one)".into())
}
