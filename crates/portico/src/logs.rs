//! `portico logs APP [--follow]`: the current replica's output from its log file, following
//! the app across restarts; or its environment build log.

use crate::apps::open_store;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(250);

pub async fn run(
    explicit: Option<PathBuf>,
    app: &str,
    follow: bool,
    lines: usize,
    build: bool,
) -> ExitCode {
    match print(explicit, app, follow, lines, build).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn print(
    explicit: Option<PathBuf>,
    app: &str,
    follow: bool,
    lines: usize,
    build: bool,
) -> Result<(), String> {
    let (data_dir, store) = open_store(explicit).await?;
    let known = store.apps().await.map_err(|e| e.to_string())?;
    if !known.iter().any(|a| a.name == app) {
        let names: Vec<&str> = known.iter().map(|a| a.name.as_str()).collect();
        return Err(format!(
            "there is no app called \"{app}\"; the apps are: {}",
            names.join(", ")
        ));
    }
    let build_log = data_dir.join("logs").join(app).join("build.log");
    let current = || async {
        if build {
            // The newest deploy's log (its release may still be building, or have failed),
            // else the build of the app's folder in the config.
            let deployed = store
                .releases(app)
                .await
                .ok()
                .and_then(|releases| releases.into_iter().find_map(|r| r.build_log))
                .map(PathBuf::from)
                .filter(|p| p.is_file());
            return Some(deployed.unwrap_or_else(|| build_log.clone()));
        }
        let newest = store.replicas(app, 1).await.ok()?.into_iter().next();
        newest
            .map(|r| PathBuf::from(r.log_path))
            .or_else(|| build_log.is_file().then(|| build_log.clone()))
    };
    let Some(mut path) = current().await else {
        return Err(format!("\"{app}\" has not written any log yet"));
    };
    let mut offset = print_tail(&path, lines)?;
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(POLL).await;
        if let Some(newer) = current().await.filter(|p| *p != path) {
            let _ = print_from(&path, offset);
            println!(
                "--- {} ---",
                newer.file_name().unwrap_or_default().to_string_lossy()
            );
            path = newer;
            offset = 0;
        }
        offset = print_from(&path, offset).unwrap_or(offset);
    }
}

/// Prints the last `lines` lines; returns the file length.
fn print_tail(path: &Path, lines: usize) -> Result<u64, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for line in &all[all.len().saturating_sub(lines)..] {
        let _ = writeln!(out, "{line}");
    }
    Ok(text.len() as u64)
}

/// Prints what was appended after `offset`; returns the new offset. A file that shrank was
/// rotated: start again from its beginning.
fn print_from(path: &Path, offset: u64) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&buffer)?;
    out.flush()?;
    Ok(start + buffer.len() as u64)
}
