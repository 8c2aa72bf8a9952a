//! The Docker runtime: each replica is a container on the app's own network.
//!
//! - **Reaching it**: no port is published on the host. Every app has a bridge network of
//!   its own (`portico-<app>-<instance hash>`, containers on it cannot talk to each other
//!   either), and Portico, on the host, connects to the container's address on it. Docker's
//!   isolation rules keep one app's containers from reaching another's.
//! - **Limits**: memory (without extra swap), CPUs and a process count; every capability
//!   dropped and no privilege escalation unless the app's config says otherwise; an init
//!   process, so signals reach the dashboard and zombies are reaped.
//! - **Restarts are Portico's**: no Docker restart policy. When a container ends, its exit
//!   status (and whether the kernel killed it for memory) is read, the container removed,
//!   and the supervisor decides.
//! - **Logs** are read from the daemon as they come and appended to the replica's log file.
//! - **Labels** mark every container with this Portico (its data folder), the app, the
//!   release, the replica and the owner of a private instance: a restarted Portico finds
//!   its containers by label and adopts them, or removes those it no longer wants.
//! - **Volumes** ([`volumes`]): named Docker volumes for an app's data, people's homes and
//!   team drives, created on first use and kept.

mod volumes;
pub use volumes::LABEL_VOLUME;

use crate::logs::{keep_log_bounded, prune_old_logs, LogSink, KEEP_LOGS};
use crate::runtime::{Adoptable, Exit, Replica, ReplicaSpec, Runtime, StartError};
use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigLogConfig,
    NetworkCreateRequest, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use portico_build::{substitute_port, DockerClient, DockerError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The labels Portico puts on what it creates.
pub const LABEL_INSTANCE: &str = "portico.instance";
pub const LABEL_APP: &str = "portico.app";
pub const LABEL_RELEASE: &str = "portico.release";
pub const LABEL_REPLICA: &str = "portico.replica";
pub const LABEL_OWNER: &str = "portico.owner";

/// Per-container log kept by the daemon (Portico keeps its own copy).
const DAEMON_LOG_MAX_SIZE: &str = "10m";

struct Running {
    app: String,
    exited: watch::Receiver<Option<Exit>>,
    log: Arc<LogSink>,
}

/// Runs replicas as containers on a Docker daemon.
pub struct DockerRuntime {
    client: Arc<DockerClient>,
    /// This Portico (its data folder), the value of [`LABEL_INSTANCE`].
    instance: String,
    /// Short hash of `instance`, so that two Porticos sharing a daemon keep apart.
    instance_tag: String,
    replicas: Mutex<HashMap<String, Running>>,
}

impl DockerRuntime {
    pub fn new(client: Arc<DockerClient>, instance: impl Into<String>) -> DockerRuntime {
        let instance = instance.into();
        let instance_tag = hex::encode(&Sha256::digest(instance.as_bytes())[..4]);
        DockerRuntime {
            client,
            instance,
            instance_tag,
            replicas: Mutex::new(HashMap::new()),
        }
    }

    /// The container of a replica.
    pub fn container_name(replica: &str) -> String {
        format!("portico-{replica}")
    }

    /// The network of an app's containers.
    pub fn network_name(&self, app: &str) -> String {
        format!("portico-{app}-{}", self.instance_tag)
    }

    /// Removes every container of this Portico that is not one of `keep` (left over from an
    /// earlier run); returns their names.
    pub async fn remove_orphans(&self, keep: &[&str]) -> Result<Vec<String>, DockerError> {
        let docker = self.client.get().await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_INSTANCE}={}", self.instance)],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = match docker.list_containers(Some(options)).await {
            Ok(list) => list,
            Err(e) => return Err(self.client.fail(e).await),
        };
        let mut removed = Vec::new();
        let mut kept_apps = std::collections::HashSet::new();
        for container in containers {
            let replica = container
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_REPLICA))
                .cloned()
                .unwrap_or_default();
            if keep.contains(&replica.as_str()) {
                if let Some(app) = container.labels.as_ref().and_then(|l| l.get(LABEL_APP)) {
                    kept_apps.insert(app.clone());
                }
                continue;
            }
            let name = container
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default();
            if let Some(id) = container.id {
                if docker.remove_container(&id, Some(force())).await.is_ok() {
                    removed.push(name.trim_start_matches('/').to_owned());
                }
            }
        }
        // Networks of apps with no container left (an earlier run was killed).
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_INSTANCE}={}", self.instance)],
        )]);
        let options = bollard::query_parameters::ListNetworksOptions {
            filters: Some(filters),
        };
        if let Ok(networks) = docker.list_networks(Some(options)).await {
            for network in networks {
                let app = network.labels.as_ref().and_then(|l| l.get(LABEL_APP));
                if app.is_some_and(|a| !kept_apps.contains(a)) {
                    if let Some(name) = network.name {
                        let _ = docker.remove_network(&name).await;
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Creates the app's network unless it exists.
    async fn ensure_network(&self, app: &str) -> Result<String, StartError> {
        let docker = self.docker().await?;
        let name = self.network_name(app);
        match docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(name),
            Err(e) => match self.client.fail(e).await {
                e if e.is_not_found() => {}
                e => return Err(start_error(e)),
            },
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            // Replicas never need each other; private instances must not reach each other.
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_owned(),
                "false".to_owned(),
            )])),
            labels: Some(HashMap::from([
                (LABEL_INSTANCE.to_owned(), self.instance.clone()),
                (LABEL_APP.to_owned(), app.to_owned()),
            ])),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => Ok(name),
            // Another replica of the app created it meanwhile.
            Err(e) => match self.client.fail(e).await {
                e if e.is_conflict() => Ok(name),
                e => Err(start_error(e)),
            },
        }
    }

    /// Why a container of `image` could not be created.
    async fn create_error(&self, error: bollard::errors::Error, image: &str) -> StartError {
        match self.client.fail(error).await {
            e if e.is_not_found() => StartError::Prepare(format!(
                "the image {image} is not on the Docker daemon at {}: build it, or pull it (`docker pull {image}`)",
                self.client.endpoint()
            )),
            e => start_error(e),
        }
    }

    async fn docker(&self) -> Result<bollard::Docker, StartError> {
        self.client.get().await.map_err(start_error)
    }

    fn create_body(
        &self,
        spec: &ReplicaSpec,
        image: &str,
        network: &str,
        mounts: Vec<bollard::models::Mount>,
    ) -> ContainerCreateBody {
        let launch = &spec.launch;
        let options = &spec.container;
        let port = options.port;
        let fill = |s: &str| substitute_port(s, port);
        let cmd = (!launch.program.as_os_str().is_empty()).then(|| {
            std::iter::once(launch.program.to_string_lossy().into_owned())
                .chain(launch.args.iter().map(|a| fill(a)))
                .collect::<Vec<_>>()
        });
        let mut env: Vec<String> = launch
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", fill(v)))
            .collect();
        env.push(format!("PORT={port}"));
        env.push(format!("{}={}", crate::process::REPLICA_VAR, spec.id));
        let mut labels = HashMap::from([
            (LABEL_INSTANCE.to_owned(), self.instance.clone()),
            (LABEL_APP.to_owned(), spec.app.clone()),
            (LABEL_RELEASE.to_owned(), spec.release.to_string()),
            (LABEL_REPLICA.to_owned(), spec.id.clone()),
        ]);
        let mut memory_mb = options.memory_mb;
        let mut cpus = options.cpus;
        if let Some(instance) = &spec.instance {
            labels.insert(LABEL_OWNER.to_owned(), instance.owner.clone());
            // The person's size profile decides over the app's defaults.
            memory_mb = instance.memory_mb.or(memory_mb);
            cpus = instance.cpus.or(cpus);
            env.extend(instance.env().into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        for volume in &spec.volumes {
            env.extend(volume.env.iter().map(|k| format!("{k}={}", volume.mount)));
        }
        let memory = memory_mb.map(|mb| (mb * 1024 * 1024) as i64);
        let host_config = HostConfig {
            network_mode: Some(network.to_owned()),
            mounts: (!mounts.is_empty()).then_some(mounts),
            memory,
            // The same as `memory`: no swap beyond it, so the limit is the limit.
            memory_swap: memory,
            nano_cpus: cpus.map(|c| (c * 1e9) as i64),
            pids_limit: Some(i64::from(options.pids_limit)),
            readonly_rootfs: Some(options.read_only),
            tmpfs: options.read_only.then(|| {
                HashMap::from([("/tmp".to_owned(), "rw,nosuid,nodev,size=256m".to_owned())])
            }),
            init: Some(true),
            cap_drop: options.drop_capabilities.then(|| vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), DAEMON_LOG_MAX_SIZE.to_owned()),
                    ("max-file".to_owned(), "2".to_owned()),
                ])),
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd,
            env: Some(env),
            user: options.user.clone(),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    fn register(
        &self,
        id: &str,
        app: &str,
        exited: watch::Receiver<Option<Exit>>,
        log: Arc<LogSink>,
    ) {
        let running = Running {
            app: app.to_owned(),
            exited,
            log,
        };
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), running);
    }

    /// Removes an app's network once none of its replicas runs (the daemon refuses while a
    /// container is attached). Networks come from a small address pool (about 30 on a
    /// default daemon), so they must not pile up.
    async fn remove_network_if_unused(&self, app: &str) {
        let in_use = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|r| r.app == app);
        if !in_use {
            if let Ok(docker) = self.client.get().await {
                let _ = docker.remove_network(&self.network_name(app)).await;
            }
        }
    }

    /// Follows a started container: its output into the log, then its end.
    fn follow(&self, name: String, log: Arc<LogSink>, since: i32) -> watch::Receiver<Option<Exit>> {
        let (exit_tx, exit_rx) = watch::channel(None);
        let client = self.client.clone();
        tokio::spawn(async move {
            let relay = tokio::spawn(relay_output(
                client.clone(),
                name.clone(),
                log.clone(),
                since,
            ));
            let description = keep_log_bounded(wait_for_end(&client, &name), &log).await;
            // The rest of its output arrives before the stream ends; then the container goes.
            let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
            if let Ok(docker) = client.get().await {
                let _ = docker.remove_container(&name, Some(force())).await;
            }
            log.line(&format!("[portico] {description}"));
            let _ = exit_tx.send(Some(Exit { description }));
        });
        exit_rx
    }

    fn replica_of(
        &self,
        id: &str,
        inspected: &ContainerInspectResponse,
        network: &str,
        port: u16,
        exited: watch::Receiver<Option<Exit>>,
    ) -> Result<Replica, String> {
        let address = inspected
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(network))
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| format!("the container has no address on the network {network}"))?;
        Ok(Replica {
            id: id.to_owned(),
            endpoint: SocketAddr::new(address, port),
            pid: inspected
                .state
                .as_ref()
                .and_then(|s| s.pid)
                .filter(|pid| *pid > 0)
                .map(|pid| pid as u32),
            exited,
        })
    }
}

fn force() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
    }
}

fn start_error(error: DockerError) -> StartError {
    match error {
        DockerError::Unavailable { .. } => StartError::Unavailable(error.to_string()),
        DockerError::Refused { .. } => StartError::Prepare(error.to_string()),
    }
}

/// Appends the container's output to its log until the container ends.
async fn relay_output(client: Arc<DockerClient>, name: String, log: Arc<LogSink>, since: i32) {
    let Ok(docker) = client.get().await else {
        return;
    };
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since,
        ..Default::default()
    };
    let mut output = docker.logs(&name, Some(options));
    while let Some(Ok(chunk)) = output.next().await {
        log.write(&chunk.into_bytes());
    }
}

/// Waits for the container to stop and says how it ended.
async fn wait_for_end(client: &DockerClient, name: &str) -> String {
    let docker = match client.get().await {
        Ok(docker) => docker,
        Err(e) => return format!("lost track of the container: {e}"),
    };
    let options = WaitContainerOptions {
        condition: "not-running".into(),
    };
    let waited = docker.wait_container(name, Some(options)).next().await;
    match waited {
        // A non-zero status arrives as an error of its own kind: the container did end.
        Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {}
        Some(Err(e)) => {
            let e = client.fail(e).await;
            return match e {
                DockerError::Unavailable { .. } => format!("lost contact with its container: {e}"),
                DockerError::Refused { .. } => format!("its container is gone: {e}"),
            };
        }
        None => return "lost track of the container: the daemon ended the wait".into(),
    }
    match docker.inspect_container(name, None).await {
        Ok(inspected) => describe_end(&inspected),
        Err(e) => format!(
            "ended; its exit status is unknown: {}",
            client.fail(e).await
        ),
    }
}

/// "exited with status 1", "killed by signal 9 (SIGKILL)", or the kernel's out-of-memory kill.
fn describe_end(inspected: &ContainerInspectResponse) -> String {
    let state = inspected.state.clone().unwrap_or_default();
    let code = state.exit_code.unwrap_or(-1);
    if state.oom_killed == Some(true) {
        let limit = inspected
            .host_config
            .as_ref()
            .and_then(|h| h.memory)
            .filter(|m| *m > 0)
            .map(|m| format!(" ({} MiB)", m / (1024 * 1024)))
            .unwrap_or_default();
        return format!("killed for using more than its memory limit{limit}: out of memory (OOM)");
    }
    if let Some(error) = state.error.filter(|e| !e.is_empty()) {
        return format!("exited with status {code}: {error}");
    }
    // The init process reports a signal the way a shell does: 128 + its number.
    if (129..=159).contains(&code) {
        return crate::process::killed_by((code - 128) as i32);
    }
    format!("exited with status {code}")
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn start(&self, spec: &ReplicaSpec) -> Result<Replica, StartError> {
        let image = spec.launch.image.as_deref().ok_or_else(|| {
            StartError::Prepare("the Docker runtime needs an image for the app".into())
        })?;
        let network = self.ensure_network(&spec.app).await?;
        if let Some(dir) = spec.log_path.parent() {
            prune_old_logs(dir, KEEP_LOGS);
        }
        let log = Arc::new(LogSink::create(&spec.log_path).map_err(|e| {
            StartError::Prepare(format!("cannot open {}: {e}", spec.log_path.display()))
        })?);
        let docker = self.docker().await?;
        let name = Self::container_name(&spec.id);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let planned = self.plan_volumes(&spec.app, &spec.volumes).await?;
        self.own_volumes(&name, image, spec.container.user.as_deref(), &planned)
            .await?;
        let body = self.create_body(spec, image, &network, planned.mounts);
        if let Err(e) = docker.create_container(Some(options), body).await {
            return Err(self.create_error(e, image).await);
        }
        let started = docker.start_container(&name, None).await;
        let inspected = match started {
            Ok(()) => docker.inspect_container(&name, None).await,
            Err(e) => Err(e),
        };
        let inspected = match inspected {
            Ok(inspected) => inspected,
            Err(e) => {
                let e = self.client.fail(e).await;
                let _ = docker.remove_container(&name, Some(force())).await;
                return Err(start_error(e));
            }
        };
        log.line(&format!(
            "[portico] started {} as container {name} from image {image}",
            spec.id
        ));
        let exited = self.follow(name.clone(), log.clone(), 0);
        let replica = self
            .replica_of(
                &spec.id,
                &inspected,
                &network,
                spec.container.port,
                exited.clone(),
            )
            .map_err(StartError::Prepare)?;
        self.register(&spec.id, &spec.app, exited, log);
        Ok(replica)
    }

    async fn adopt(&self, replica: &Adoptable) -> Result<Replica, String> {
        let docker = self.client.get().await.map_err(|e| e.to_string())?;
        let name = Self::container_name(&replica.id);
        let inspected = match docker.inspect_container(&name, None).await {
            Ok(inspected) => inspected,
            Err(e) => {
                return Err(match self.client.fail(e).await {
                    e if e.is_not_found() => format!("its container {name} is gone"),
                    e => e.to_string(),
                })
            }
        };
        let labels = inspected
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let ours = labels.get(LABEL_INSTANCE) == Some(&self.instance)
            && labels.get(LABEL_REPLICA) == Some(&replica.id);
        if !ours {
            return Err(format!("container {name} is not this Portico's replica"));
        }
        if inspected.state.as_ref().and_then(|s| s.running) != Some(true) {
            let _ = docker.remove_container(&name, Some(force())).await;
            return Err(format!("its container {name} had stopped"));
        }
        let app = labels.get(LABEL_APP).cloned().unwrap_or_default();
        let network = self.network_name(&app);
        let log = Arc::new(
            LogSink::create(&replica.log_path)
                .map_err(|e| format!("cannot open {}: {e}", replica.log_path.display()))?,
        );
        log.line(&format!(
            "[portico] adopted {} (container {name}) after a restart of Portico",
            replica.id
        ));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i32);
        let exited = self.follow(name, log.clone(), now);
        let adopted = self.replica_of(
            &replica.id,
            &inspected,
            &network,
            replica.endpoint.port(),
            exited.clone(),
        )?;
        self.register(&replica.id, &app, exited, log);
        Ok(adopted)
    }

    async fn stop(&self, id: &str, grace: Duration) {
        let running = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|r| (r.exited.clone(), r.app.clone()));
        let Some((mut exited, app)) = running else {
            return;
        };
        if exited.borrow().is_none() {
            if let Ok(docker) = self.client.get().await {
                // The daemon sends SIGTERM, and SIGKILL after the grace.
                let options = StopContainerOptions {
                    t: Some(grace.as_secs().min(i32::MAX as u64) as i32),
                    signal: None,
                };
                let name = Self::container_name(id);
                if let Err(e) = docker.stop_container(&name, Some(options)).await {
                    let _ = self.client.fail(e).await;
                }
            }
            let _ = tokio::time::timeout(
                grace + Duration::from_secs(10),
                exited.wait_for(Option::is_some),
            )
            .await;
        }
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.remove_network_if_unused(&app).await;
    }

    fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|r| r.log.tail(lines))
            .unwrap_or_default()
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
