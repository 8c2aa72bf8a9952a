//! `portico git-hook`: the `pre-receive` hook of the repositories Portico serves for
//! `git push`. git runs it with the pushed refs on stdin; it hands them to the Portico that
//! is serving the push (over the Unix socket named in its environment), prints what Portico
//! answers (git shows it as `remote:` lines) and accepts the push only if the deploy went
//! live.

use portico_console::api::git::{HookRequest, HOOK_SOCKET_VAR, RESULT_PREFIX};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

pub fn run() -> ExitCode {
    match hook() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            println!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

fn hook() -> Result<bool, String> {
    let socket = std::env::var(HOOK_SOCKET_VAR).map_err(|_| {
        "this repository deploys through Portico: push to Portico's address (https://<domain>/git/<app>.git), not to the folder".to_owned()
    })?;
    let mut refs = String::new();
    std::io::stdin()
        .take(1024 * 1024)
        .read_to_string(&mut refs)
        .map_err(|e| format!("cannot read the pushed refs: {e}"))?;
    let request = HookRequest {
        refs,
        object_directory: std::env::var("GIT_OBJECT_DIRECTORY").ok(),
        alternate_object_directories: std::env::var("GIT_ALTERNATE_OBJECT_DIRECTORIES").ok(),
    };
    let mut stream =
        UnixStream::connect(&socket).map_err(|e| format!("cannot reach Portico: {e}"))?;
    let line = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("cannot reach Portico: {e}"))?;
    let mut stdout = std::io::stdout();
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("Portico stopped answering: {e}"))?;
        if let Some(result) = line.strip_prefix(RESULT_PREFIX) {
            return Ok(result == "ok");
        }
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
    Err("Portico ended the push without a result".into())
}
