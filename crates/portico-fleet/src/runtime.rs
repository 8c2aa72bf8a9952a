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
    /// Storage kept across its restarts: the app's data, its owner's home, team drives.
    pub volumes: Vec<Volume>,
}

/// Storage a replica uses that outlives it. Each runtime decides what backs it: the
/// process runtime a folder (`host_dir`), the Docker runtime a volume named after `key`
/// (or, for an operator's folder, that folder mounted).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Stable and unique within this Portico: `data-<app>`, `home-<user id>`,
    /// `drive-<name>`.
    pub key: String,
    pub kind: VolumeKind,
    /// The folder that backs it where a runtime uses folders.
    pub host_dir: PathBuf,
    /// `host_dir` is the operator's (a drive's `host_path`): every runtime uses that folder,
    /// and Portico neither creates it nor changes its owner.
    pub operator_folder: bool,
    /// Where it appears inside a container.
    pub mount: String,
    pub read_only: bool,
    /// Variables that tell the replica where it is (the mount path in a container, the
    /// folder for a process).
    pub env: Vec<String>,
}

/// Who a volume belongs to, which decides who may use what is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// The app's own data, shared by its replicas: owned by the user they run as.
    AppData,
    /// A person's home: owned by the user their instance runs as, closed to anyone else.
    Home,
    /// A team drive several apps share: writable by the user and group replicas run as.
    Drive,
}

impl Volume {
    /// Unix permissions of the volume's top folder.
    pub fn mode(&self) -> u32 {
        match self.kind {
            VolumeKind::Home => 0o700,
            VolumeKind::AppData => 0o750,
            VolumeKind::Drive => 0o770,
        }
    }
}

/// A person's private instance: whose, and its size. (Their home is one of the replica's
/// volumes.)
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Their e-mail, given to the instance as `PORTICO_USER`.
    pub owner: String,
    /// CPUs and memory (MiB) from the size profile; `None`: no limit.
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
}

impl InstanceSpec {
    /// The environment every runtime gives a private instance. `CPU_LIMIT` and `MEM_LIMIT`
    /// (bytes) are the names JupyterHub's spawners use, which Jupyter's resource display
    /// reads.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PORTICO_USER", self.owner.clone())];
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
