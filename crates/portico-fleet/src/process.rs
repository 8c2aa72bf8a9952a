//! The process runtime: each replica is a child process in its own process group, listening
//! on a free loopback port.
//!
//! No replica may outlive Portico, however Portico ends:
//! - a clean stop sends SIGTERM to the replica's whole group, then SIGKILL after the grace;
//! - each child asks the kernel for SIGKILL when Portico dies (`PR_SET_PDEATHSIG`), which
//!   covers `kill -9` of Portico;
//! - every replica carries `PORTICO_INSTANCE=<data dir>` in its environment, and at start-up
//!   [`recover_orphans`] kills any process still carrying this instance's mark (grandchildren
//!   that escaped the first two, for instance after a power cut of the parent only).

use crate::logs::{prune_old_logs, LogSink};
use crate::runtime::{Exit, Replica, ReplicaSpec, Runtime, StartError};
use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use portico_build::substitute_port;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

/// The variable that marks a process as belonging to one Portico instance.
pub const INSTANCE_VAR: &str = "PORTICO_INSTANCE";
/// The variable that names the replica a process belongs to.
pub const REPLICA_VAR: &str = "PORTICO_REPLICA";
/// Variables passed from Portico's own environment to replicas; everything else (Portico's
/// secrets, for one) is withheld. Proxy and CA-bundle settings pass so that dashboards can
/// reach data sources from behind a corporate proxy.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "R_HOME",
    "R_LIBS",
    "R_LIBS_USER",
    "UV_CACHE_DIR",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
];
/// Replica logs kept per app folder.
const KEEP_LOGS: usize = 10;

struct Running {
    pgid: Pid,
    exited: watch::Receiver<Option<Exit>>,
    log: LogSink,
}

/// Runs replicas as local processes.
pub struct ProcessRuntime {
    instance: String,
    replicas: Mutex<HashMap<String, Running>>,
}

impl ProcessRuntime {
    /// `instance` identifies this Portico (its data folder) for orphan recovery.
    pub fn new(instance: impl Into<String>) -> ProcessRuntime {
        ProcessRuntime {
            instance: instance.into(),
            replicas: Mutex::new(HashMap::new()),
        }
    }

    fn entry<T>(&self, id: &str, f: impl FnOnce(&Running) -> T) -> Option<T> {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(f)
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, StartError> {
        let launch = &spec.launch;
        let program = launch.program.to_string_lossy().into_owned();
        if !program.contains('/') && portico_build::env::which(&program).is_none() {
            return Err(StartError::ProgramMissing { program });
        }
        let port =
            free_port().map_err(|e| StartError::Prepare(format!("no free loopback port: {e}")))?;
        let port_text = port.to_string();
        let fill = |s: &str| substitute_port(s, port);

        if let Some(dir) = spec.log_path.parent() {
            prune_old_logs(dir, KEEP_LOGS);
        }
        let log = LogSink::create(&spec.log_path).map_err(|e| {
            StartError::Prepare(format!("cannot open {}: {e}", spec.log_path.display()))
        })?;

        let mut command = Command::new(&launch.program);
        command
            .args(launch.args.iter().map(|a| fill(a)))
            .current_dir(&launch.cwd)
            .env_clear()
            .envs(
                INHERITED_ENV
                    .iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
            )
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), fill(v))))
            .env("PORT", &port_text)
            .env(INSTANCE_VAR, &self.instance)
            .env(REPLICA_VAR, &spec.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: only async-signal-safe calls (prctl, getppid, kill) between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // Portico may have died between fork and prctl: then do not run at all.
                if nix::unistd::getppid() == Pid::from_raw(1) {
                    let _ = nix::sys::signal::raise(Signal::SIGKILL);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StartError::ProgramMissing {
                program: program.clone(),
            },
            _ => StartError::Spawn {
                program: program.clone(),
                source,
            },
        })?;
        let pid = child
            .id()
            .ok_or_else(|| StartError::Prepare("the process exited at once".into()))?;
        let pgid = Pid::from_raw(pid as i32);
        log.line(&format!(
            "[portico] started {} (pid {pid}) on 127.0.0.1:{port}",
            spec.id
        ));

        // The exit is reported only after the output readers have drained the pipes, so a
        // crash's last words are in the log (and the failure reason) when it is noticed.
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(copy_lines(out, log.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(copy_lines(err, log.clone())));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let waiter_log = log.clone();
        tokio::spawn(async move {
            let description = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("lost track of the process: {e}"),
            };
            // The app's own children (gunicorn workers, say) go with it, closing the pipes.
            let _ = killpg(pgid, Signal::SIGKILL);
            for reader in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            }
            waiter_log.line(&format!("[portico] {description}"));
            let _ = exit_tx.send(Some(Exit { description }));
        });

        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                spec.id.clone(),
                Running {
                    pgid,
                    exited: exit_rx.clone(),
                    log,
                },
            );
        Ok(Replica {
            id: spec.id.clone(),
            endpoint: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            pid: Some(pid),
            exited: exit_rx,
        })
    }

    async fn stop(&self, id: &str, grace: Duration) {
        let Some((pgid, mut exited)) = self.entry(id, |r| (r.pgid, r.exited.clone())) else {
            return;
        };
        let running = exited.borrow().is_none();
        if running {
            let _ = killpg(pgid, Signal::SIGTERM);
            let gone = tokio::time::timeout(grace, exited.wait_for(Option::is_some))
                .await
                .is_ok();
            if !gone {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), exited.wait_for(Option::is_some))
                        .await
                        .is_ok();
            }
        }
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        self.entry(id, |r| r.log.tail(lines)).unwrap_or_default()
    }

    fn list(&self) -> Vec<String> {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

async fn copy_lines(stream: impl AsyncRead + Unpin, log: LogSink) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.line(&line);
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        match Signal::try_from(signal) {
            Ok(named) => format!("killed by signal {signal} ({})", named.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        }
    } else {
        "exited".into()
    }
}

/// A loopback port nobody is listening on right now. The app binds it a moment later; if
/// something else took it meanwhile, the app fails to start and is restarted on a new port.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Kills every process left over from an earlier run of this instance (see the module
/// comment); returns their pids.
pub fn recover_orphans(instance: &str) -> Vec<u32> {
    let marker = format!("{INSTANCE_VAR}={instance}");
    let me = std::process::id();
    let mut killed = Vec::new();
    for pid in processes_with_env(&marker) {
        if pid != me && nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed.push(pid);
        }
    }
    killed
}

/// Pids of processes whose environment holds exactly `entry` (`NAME=value`).
pub fn processes_with_env(entry: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == entry.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_build::LaunchSpec;
    use portico_core::MountStyle;

    fn spec(dir: &std::path::Path, script: &str) -> ReplicaSpec {
        ReplicaSpec {
            id: "t-1".into(),
            app: "t".into(),
            launch: LaunchSpec {
                program: "sh".into(),
                args: vec!["-c".into(), script.into()],
                cwd: dir.to_owned(),
                env: vec![("GREETING".into(), "port $PORT".into())],
                health_path: "/".into(),
                mount: MountStyle::Root,
            },
            log_path: dir.join("logs/t-1.log"),
        }
    }

    #[tokio::test]
    async fn output_is_logged_port_is_substituted_and_secrets_are_withheld() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("PORTICO_TEST_SECRET", "hunter2");
        let runtime = ProcessRuntime::new("test-instance-a");
        let replica = runtime
            .start(&spec(
                dir.path(),
                "echo \"$GREETING $PORT\"; echo \"secret=$PORTICO_TEST_SECRET\"; exit 3",
            ))
            .await
            .unwrap();
        let mut exited = replica.exited.clone();
        let exit = exited
            .wait_for(Option::is_some)
            .await
            .unwrap()
            .clone()
            .unwrap();
        assert_eq!(exit.description, "exited with status 3");
        let port = replica.endpoint.port();
        let log = std::fs::read_to_string(dir.path().join("logs/t-1.log")).unwrap();
        assert!(log.contains(&format!("port {port} {port}")), "{log}");
        assert!(
            log.contains("secret=\n"),
            "Portico's environment leaked: {log}"
        );
    }

    #[tokio::test]
    async fn stop_ends_the_whole_process_group_even_if_sigterm_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = ProcessRuntime::new("test-instance-b");
        // A child that ignores SIGTERM and has a grandchild of its own.
        let replica = runtime
            .start(&spec(dir.path(), "trap '' TERM; sleep 300 & sleep 300"))
            .await
            .unwrap();
        let marker = format!("{INSTANCE_VAR}=test-instance-b");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while processes_with_env(&marker).len() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(processes_with_env(&marker).len(), 3);
        runtime.stop(&replica.id, Duration::from_millis(300)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !processes_with_env(&marker).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(processes_with_env(&marker).is_empty());
        assert!(replica
            .exited
            .borrow()
            .as_ref()
            .unwrap()
            .description
            .contains("SIGKILL"));
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = ProcessRuntime::new("test-instance-c");
        let mut s = spec(dir.path(), "");
        s.launch.program = "portico-no-such-program".into();
        let error = runtime.start(&s).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "`portico-no-such-program` was not found on the PATH"
        );
    }
}
