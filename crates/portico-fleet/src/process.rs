//! The process runtime: each replica is a child process in its own process group, listening
//! on a free loopback port.
//!
//! Replicas write their output straight into their log file, so they can outlive Portico.
//! Whether they may (`fleet.keep_replicas_on_exit`) is the operator's choice:
//! - by default none outlives Portico: a clean stop sends SIGTERM to each replica's whole
//!   group, then SIGKILL after the grace, and each child asks the kernel for SIGKILL when
//!   Portico dies (`PR_SET_PDEATHSIG`), which covers `kill -9` of Portico;
//! - when kept, replicas run on through a stop or a crash of Portico, and the next start
//!   [adopts](ProcessRuntime::adopt) them: the process must still carry this instance's
//!   mark and the replica's id in its environment (a reused pid does not), and its exit is
//!   then watched through a pidfd, since it is no longer Portico's child.
//! - every replica carries `PORTICO_INSTANCE=<data dir>` in its environment, and at start-up
//!   [`recover_orphans`] kills any process still carrying this instance's mark that is not
//!   a replica about to be adopted (grandchildren that escaped, for instance).

use crate::logs::{keep_log_bounded, prune_old_logs, LogSink, KEEP_LOGS};
use crate::runtime::{Adoptable, Exit, Replica, ReplicaSpec, Runtime, StartError};
use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use portico_build::substitute_port;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
struct Running {
    pgid: Pid,
    exited: watch::Receiver<Option<Exit>>,
    log: Arc<LogSink>,
}

/// Runs replicas as local processes.
pub struct ProcessRuntime {
    instance: String,
    /// Whether replicas may outlive Portico (no parent-death signal).
    outlive_portico: bool,
    replicas: Mutex<HashMap<String, Running>>,
}

impl ProcessRuntime {
    /// `instance` identifies this Portico (its data folder) for orphan recovery;
    /// `outlive_portico`: whether replicas keep running when Portico ends.
    pub fn new(instance: impl Into<String>, outlive_portico: bool) -> ProcessRuntime {
        ProcessRuntime {
            instance: instance.into(),
            outlive_portico,
            replicas: Mutex::new(HashMap::new()),
        }
    }

    fn register(
        &self,
        id: &str,
        pgid: Pid,
        exited: watch::Receiver<Option<Exit>>,
        log: Arc<LogSink>,
    ) {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), Running { pgid, exited, log });
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
        prepare_folders(&spec.volumes)?;
        let port =
            free_port().map_err(|e| StartError::Prepare(format!("no free loopback port: {e}")))?;
        let port_text = port.to_string();
        let fill = |s: &str| substitute_port(s, port);

        if let Some(dir) = spec.log_path.parent() {
            prune_old_logs(dir, KEEP_LOGS);
        }
        let cannot_open = |e: std::io::Error| {
            StartError::Prepare(format!("cannot open {}: {e}", spec.log_path.display()))
        };
        let log = Arc::new(LogSink::create(&spec.log_path).map_err(cannot_open)?);
        let stdout = log.output().map_err(cannot_open)?;
        let stderr = log.output().map_err(cannot_open)?;

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
            .envs(spec.instance.iter().flat_map(|i| i.env()))
            .envs(spec.volumes.iter().flat_map(|v| {
                v.env
                    .iter()
                    .map(|name| (name.as_str(), v.host_dir.as_os_str()))
            }))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        if !self.outlive_portico {
            // SAFETY: only async-signal-safe calls (prctl, getppid, kill) between fork and
            // exec.
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

        let exit_rx = follow(pgid, log.clone(), async move {
            match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("lost track of the process: {e}"),
            }
        });
        self.register(&spec.id, pgid, exit_rx.clone(), log);
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

    async fn adopt(&self, replica: &Adoptable) -> Result<Replica, String> {
        let pid = replica.pid.ok_or("no process was recorded for it")?;
        let marks = [
            format!("{INSTANCE_VAR}={}", self.instance),
            format!("{REPLICA_VAR}={}", replica.id),
        ];
        // The replica's id is random per start: a reused pid does not carry it.
        let environment = std::fs::read(format!("/proc/{pid}/environ"))
            .map_err(|_| format!("its process {pid} is gone"))?;
        let carries = |mark: &String| {
            environment
                .split(|b| *b == 0)
                .any(|var| var == mark.as_bytes())
        };
        if !marks.iter().all(carries) {
            return Err(format!("process {pid} is no longer this replica"));
        }
        let exit = ExitWatch::open(pid).map_err(|e| format!("cannot watch process {pid}: {e}"))?;
        let log = Arc::new(
            LogSink::create(&replica.log_path)
                .map_err(|e| format!("cannot open {}: {e}", replica.log_path.display()))?,
        );
        log.line(&format!(
            "[portico] adopted {} (pid {pid}) after a restart of Portico",
            replica.id
        ));
        let pgid = Pid::from_raw(pid as i32);
        let exit_rx = follow(pgid, log.clone(), async move {
            match exit.exited().await {
                Ok(()) => "exited (its exit status is unknown: it was started by an earlier run of Portico)".to_owned(),
                Err(e) => format!("lost track of the process: {e}"),
            }
        });
        self.register(&replica.id, pgid, exit_rx.clone(), log);
        Ok(Replica {
            id: replica.id.clone(),
            endpoint: replica.endpoint,
            pid: Some(pid),
            exited: exit_rx,
        })
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

/// Follows a replica until `exit` resolves with how it ended, keeping its log within its
/// size meanwhile; then its whole group goes (the app's own children, gunicorn workers say),
/// the log says how it ended, and the returned channel reports it.
fn follow(
    pgid: Pid,
    log: Arc<LogSink>,
    exit: impl std::future::Future<Output = String> + Send + 'static,
) -> watch::Receiver<Option<Exit>> {
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(async move {
        let description = keep_log_bounded(exit, &log).await;
        let _ = killpg(pgid, Signal::SIGKILL);
        log.line(&format!("[portico] {description}"));
        let _ = exit_tx.send(Some(Exit { description }));
    });
    exit_rx
}

/// The exit of a process that is not Portico's child, through a pidfd (Linux 5.3): it
/// becomes readable when the process ends, so nothing polls.
struct ExitWatch {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl ExitWatch {
    fn open(pid: u32) -> std::io::Result<ExitWatch> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just created and is owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: an OwnedFd stays open, and is the same descriptor, for as long as it lives.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)?;
        Ok(ExitWatch { fd })
    }

    async fn exited(self) -> std::io::Result<()> {
        self.fd.readable().await.map(|_| ())
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        killed_by(signal)
    } else {
        "exited".into()
    }
}

/// "killed by signal 9 (SIGKILL)", the same words for every runtime.
pub(crate) fn killed_by(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(named) => format!("killed by signal {signal} ({})", named.as_str()),
        Err(_) => format!("killed by signal {signal}"),
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
/// comment), except those of the replicas in `adoptable`; returns their pids.
pub fn recover_orphans(instance: &str, adoptable: &[&str]) -> Vec<u32> {
    let marker = format!("{INSTANCE_VAR}={instance}");
    let kept: Vec<String> = adoptable
        .iter()
        .map(|id| format!("{REPLICA_VAR}={id}"))
        .collect();
    let me = std::process::id();
    let mut killed = Vec::new();
    for pid in processes_with_env(&marker) {
        let adopted = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
            env.split(|b| *b == 0)
                .any(|var| kept.iter().any(|k| var == k.as_bytes()))
        });
        if pid != me
            && !adopted
            && nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
        {
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

/// Creates the folders behind a replica's volumes, open only to Portico's user (which runs
/// the replicas); an operator's folder must exist already.
fn prepare_folders(volumes: &[crate::runtime::Volume]) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    for volume in volumes {
        let dir = &volume.host_dir;
        if volume.operator_folder {
            if !dir.is_dir() {
                return Err(StartError::Prepare(format!(
                    "the folder {} of `{}` does not exist; create it or correct host_path",
                    dir.display(),
                    volume.key
                )));
            }
            continue;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StartError::Prepare(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
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
            release: 1,
            launch: LaunchSpec {
                program: "sh".into(),
                args: vec!["-c".into(), script.into()],
                cwd: dir.to_owned(),
                env: vec![("GREETING".into(), "port $PORT".into())],
                health_path: "/".into(),
                mount: MountStyle::Root,
                image: None,
            },
            log_path: dir.join("logs/t-1.log"),
            instance: None,
            container: Default::default(),
            volumes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_private_instance_gets_its_owners_home_and_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = ProcessRuntime::new("test-instance-home", false);
        let mut spec = spec(
            dir.path(),
            "echo \"$HOME|$PORTICO_USER|$CPU_LIMIT|$MEM_LIMIT\"",
        );
        spec.instance = Some(crate::runtime::InstanceSpec {
            owner: "ada@example.com".into(),
            cpus: Some(0.5),
            memory_mb: Some(2048),
        });
        spec.volumes = vec![crate::runtime::Volume {
            key: "home-7".into(),
            kind: crate::runtime::VolumeKind::Home,
            host_dir: dir.path().join("homes/7"),
            operator_folder: false,
            mount: "/home/portico".into(),
            read_only: false,
            env: vec!["HOME".into(), "PORTICO_HOME".into()],
        }];
        let replica = runtime.start(&spec).await.unwrap();
        let mut exited = replica.exited.clone();
        exited.wait_for(Option::is_some).await.unwrap();
        let log = std::fs::read_to_string(dir.path().join("logs/t-1.log")).unwrap();
        let expected = format!(
            "{}|ada@example.com|0.5|2147483648",
            dir.path().join("homes/7").display()
        );
        assert!(log.contains(&expected), "{log}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("homes/7"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "a home only its owner's instances can enter"
        );
    }

    #[tokio::test]
    async fn output_is_logged_port_is_substituted_and_secrets_are_withheld() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("PORTICO_TEST_SECRET", "hunter2");
        let runtime = ProcessRuntime::new("test-instance-a", false);
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
        // Unique, so that leftovers of an aborted earlier run are not counted.
        let instance = format!("test-instance-b-{}", rand::random::<u64>());
        let runtime = ProcessRuntime::new(instance.clone(), false);
        // A child that ignores SIGTERM and has a grandchild of its own.
        let replica = runtime
            .start(&spec(dir.path(), "trap '' TERM; sleep 300 & sleep 300"))
            .await
            .unwrap();
        let marker = format!("{INSTANCE_VAR}={instance}");
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
    async fn only_the_recorded_replica_is_adopted_and_its_exit_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let instance = format!("test-instance-d-{}", rand::random::<u64>());
        // An earlier run started it (and let it outlive itself).
        let earlier = ProcessRuntime::new(instance.clone(), true);
        let started = earlier.start(&spec(dir.path(), "sleep 300")).await.unwrap();
        let candidate = Adoptable {
            id: started.id.clone(),
            pid: started.pid,
            endpoint: started.endpoint,
            log_path: dir.path().join("logs/t-1.log"),
        };
        let now = ProcessRuntime::new(instance.clone(), true);
        // A process that is not the replica (a reused pid): refused.
        let impostor = Adoptable {
            pid: Some(std::process::id()),
            ..candidate.clone()
        };
        let refused = now.adopt(&impostor).await.unwrap_err();
        assert!(refused.contains("is no longer this replica"), "{refused}");
        let other_instance = ProcessRuntime::new("another-instance", true);
        assert!(other_instance.adopt(&candidate).await.is_err());

        let adopted = now.adopt(&candidate).await.unwrap();
        assert_eq!(now.list(), vec![started.id.clone()]);
        // Killed from outside: the pidfd reports it, though it is not our child.
        nix::sys::signal::kill(Pid::from_raw(started.pid.unwrap() as i32), Signal::SIGKILL)
            .unwrap();
        let mut exited = adopted.exited.clone();
        let exit = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(Option::is_some))
            .await
            .expect("the exit is noticed")
            .unwrap()
            .clone()
            .unwrap();
        assert!(
            exit.description.contains("exit status is unknown"),
            "{}",
            exit.description
        );
        let gone = now.adopt(&candidate).await.unwrap_err();
        assert!(gone.contains("is gone"), "{gone}");
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = ProcessRuntime::new("test-instance-c", false);
        let mut s = spec(dir.path(), "");
        s.launch.program = "portico-no-such-program".into();
        let error = runtime.start(&s).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "`portico-no-such-program` was not found on the PATH"
        );
    }
}
