//! Running dashboards: runtimes that start and stop replicas, and a supervisor per app that
//! builds its environment, starts a replica, gates traffic on readiness, restarts it with
//! backoff when it crashes, and publishes what is ready to the route table.
//!
//! The fleet knows nothing of HTTP requests or cookies; the edge knows nothing of processes.
//! They meet only in the route table (`portico_core::routes`).

pub mod deploy;
pub mod docker;
pub mod logs;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod scaler;
pub mod storage;
pub mod supervisor;

pub use deploy::{DeployError, Deployments, RolledBack, Rollout};
pub use docker::DockerRuntime;
pub use process::ProcessRuntime;
pub use runtime::{Adoptable, Exit, Replica, ReplicaSpec, Runtime, StartError};
pub use supervisor::{Fleet, PreparedApp, Runtimes};
