//! The Runtime contract (DESIGN.md): start a replica from a launch spec and get an endpoint;
//! stop it (gracefully, then forcibly); learn when it exits; read its recent log; list what
//! is running. Process, Docker and Kubernetes runtimes implement the same trait.

use async_trait::async_trait;
use portico_build::LaunchSpec;
use portico_core::config::ContainerOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// What to start.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// Unique across restarts: `<app>-<random>`.
    pub id: String,
    pub app: String,
    /// The release it runs.
    pub release: i64,
    pub launch: LaunchSpec,
    /// Where the replica's stdout and stderr go (size-bounded).
    pub log_path: PathBuf,
    /// Per-user apps: whose private instance it is.
    pub instance: Option<InstanceSpec>,
    /// Limits and security of its container (runtimes without containers ignore them).
    pub container: ContainerOptions,
}

/// A person's private instance: their home and its size.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Their e-mail, given to the instance as `PORTICO_USER`.
    pub owner: String,
    /// Their home folder (kept across instances); the instance's `HOME`.
    pub home: PathBuf,
    /// CPUs and memory (MiB) from the size profile; `None`: no limit.
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
}

impl InstanceSpec {
    /// The environment every runtime gives a private instance. `CPU_LIMIT` and `MEM_LIMIT`
    /// (bytes) are the names JupyterHub's spawners use, which Jupyter's resource display
    /// reads.
    pub fn env(&self, home: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("HOME", home.to_owned()),
            ("PORTICO_HOME", home.to_owned()),
            ("PORTICO_USER", self.owner.clone()),
        ];
        if let Some(cpus) = self.cpus {
            env.push(("CPU_LIMIT", cpus.to_string()));
        }
        if let Some(memory) = self.memory_mb {
            env.push(("MEM_LIMIT", (memory * 1024 * 1024).to_string()));
        }
        env
    }
}

/// How a replica ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// "exited with status 1", "killed by signal 9 (SIGKILL)".
    pub description: String,
}

/// A started replica.
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    pub endpoint: SocketAddr,
    /// The operating-system process, where the runtime has one.
    pub pid: Option<u32>,
    /// Becomes `Some` when the replica has exited, for whatever reason.
    pub exited: watch::Receiver<Option<Exit>>,
}

/// Why a replica could not be started at all.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("`{program}` was not found on the PATH")]
    ProgramMissing { program: String },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the replica: {0}")]
    Prepare(String),
    /// What runs replicas (the Docker daemon) is away; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
}

/// A replica an earlier run of Portico started and left running, as the store recorded it.
#[derive(Debug, Clone)]
pub struct Adoptable {
    pub id: String,
    pub pid: Option<u32>,
    pub endpoint: SocketAddr,
    pub log_path: PathBuf,
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Short name recorded with each replica ("process", "docker", …).
    fn name(&self) -> &'static str;
    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, StartError>;
    /// Takes charge of a replica left running by an earlier run of Portico, after checking
    /// that it is still that replica. `Err` says why it cannot be adopted.
    async fn adopt(&self, replica: &Adoptable) -> Result<Replica, String> {
        let _ = replica;
        Err(format!("the {} runtime cannot adopt replicas", self.name()))
    }
    /// Asks the replica to stop, and forces it after `grace`. Returns once it is gone.
    async fn stop(&self, id: &str, grace: Duration);
    /// The last `lines` lines the replica printed.
    fn log_tail(&self, id: &str, lines: usize) -> Vec<String>;
    /// Ids of replicas this runtime is running.
    fn list(&self) -> Vec<String>;
}
