//! Deploys: turning an uploaded bundle (or an earlier release, for a rollback) into a
//! release the app's supervisor rolls out.
//!
//! ```text
//! upload ─▶ unpack (refusing escapes, bombs) ─▶ detect ─▶ release row (queued) ─▶ app's queue
//!                                                                                    │
//!   supervisor, one release at a time: build ─▶ start replicas ─▶ ready ─▶ switch new sessions
//!                                                                       └▶ old replicas drain
//! ```
//!
//! Each app has one queue, read by its supervisor one release at a time, so two deploys of
//! an app never interleave. Everything a deploy can get wrong before the build (a bad
//! archive, no recognisable app) is refused here, synchronously, with nothing left behind.

use crate::supervisor::PreparedApp;
use portico_build::bundle;
pub use portico_build::bundle::BundleError;
use portico_core::config::{AppSpec, DeployConfig};
use portico_store::{NewRelease, ReleaseRow, ReleaseState, Store, StoreError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Deploys of one app waiting for its supervisor, at most.
const QUEUE_DEPTH: usize = 8;

/// A release for the supervisor to roll out.
#[derive(Debug)]
pub struct Rollout {
    pub release: ReleaseRow,
    /// The app as the release runs it: its files and what detection found in them.
    pub app: PreparedApp,
    /// Going back to an earlier release: if it fails, that release stays `superseded`
    /// (it was good once) instead of becoming `failed`.
    pub rollback: bool,
}

/// A rollback queued: its release, and where in the release's build log (which holds its
/// earlier builds) what this rollout writes begins.
#[derive(Debug)]
pub struct RolledBack {
    pub release: ReleaseRow,
    pub log_from: u64,
}

/// Why a deploy or rollback was refused. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "there is no app \"{0}\"; apps are declared in portico.toml ([[apps]] with this name)"
    )]
    UnknownApp(String),
    #[error("app \"{0}\" runs a ready-made image (image = …); deploy by changing the image in the config instead")]
    ImageApp(String),
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    NotAnApp(String),
    #[error("{QUEUE_DEPTH} deploys of \"{0}\" are already waiting; try again when they are done")]
    QueueFull(String),
    #[error("app \"{app}\" has no release {number}; `portico releases {app}` lists them")]
    NoSuchRelease { app: String, number: i64 },
    #[error("app \"{0}\" has no earlier release to roll back to")]
    NothingToRollBackTo(String),
    #[error("release {number} of \"{app}\" cannot be rolled back to: it is {state}; {hint}")]
    NotRunnable {
        app: String,
        number: i64,
        state: &'static str,
        hint: &'static str,
    },
    #[error(
        "an app \"{0}\" was made by another deploy just now; deploy again to add a release to it"
    )]
    AppExists(String),
    #[error("release {number} of \"{app}\" is already live")]
    AlreadyLive { app: String, number: i64 },
    #[error("cannot store the release: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// One app as the deploy service knows it: its config and its supervisor's queue.
struct Queue {
    spec: AppSpec,
    sender: mpsc::Sender<Rollout>,
}

/// The deploy service, shared by the fleet (which registers each supervised app) and the
/// API (which submits deploys and rollbacks).
pub struct Deployments {
    store: Store,
    /// `<data dir>/releases`: one folder per app, one per release inside it.
    root: PathBuf,
    config: DeployConfig,
    /// What runs apps made by deploys.
    runtime: portico_core::config::RuntimeKind,
    apps: Mutex<HashMap<String, Queue>>,
    /// Held from numbering a release to queueing it, so that releases queue in the order
    /// of their numbers.
    numbering: tokio::sync::Mutex<()>,
    /// Adds an app made by a first deploy to the running Portico (its config, route and
    /// supervisor); set once Portico is up. Weak: it owns the fleet that owns this.
    creator: std::sync::OnceLock<std::sync::Weak<dyn AppCreator>>,
}

/// What adds an app made by a first deploy to the running Portico.
#[async_trait::async_trait]
pub trait AppCreator: Send + Sync {
    /// Starts serving `app` (supervised, routed, recorded); `Err` says why it cannot be.
    async fn create(&self, app: PreparedApp) -> Result<(), String>;
}

impl Deployments {
    /// `runtime`: what runs apps made by deploys (`[fleet] runtime`).
    pub fn new(
        store: Store,
        data_dir: &Path,
        config: DeployConfig,
        runtime: portico_core::config::RuntimeKind,
    ) -> Deployments {
        Deployments {
            runtime,
            store,
            root: data_dir.join("releases"),
            config,
            apps: Mutex::default(),
            numbering: tokio::sync::Mutex::new(()),
            creator: std::sync::OnceLock::new(),
        }
    }

    /// Lets deploys make new apps (`[deploy] creators`) through `creator`.
    pub fn set_creator(&self, creator: std::sync::Weak<dyn AppCreator>) {
        let _ = self.creator.set(creator);
    }

    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    /// An app's release by number.
    pub async fn release(&self, app: &str, number: i64) -> Result<Option<ReleaseRow>, DeployError> {
        Ok(self.store.release(app, number).await?)
    }

    /// Where a release's build log is: its own, or (for the app's folder in the config)
    /// the app's build log, which every build of that folder appends to.
    pub fn build_log(&self, release: &ReleaseRow) -> PathBuf {
        match &release.build_log {
            Some(path) => PathBuf::from(path),
            None => self
                .root
                .parent()
                .unwrap_or(&self.root)
                .join("logs")
                .join(&release.app)
                .join("build.log"),
        }
    }

    /// An app's releases, newest first.
    pub async fn releases(&self, app: &str) -> Result<Vec<ReleaseRow>, DeployError> {
        Ok(self.store.releases(app).await?)
    }

    /// A fresh path for an upload to be written to before it is deployed (inside the
    /// app's releases folder, so that taking it over is a rename).
    pub fn upload_path(&self, app: &str) -> Result<PathBuf, DeployError> {
        let dir = self.app_dir(app).join(".uploads");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("{}.tar.gz", release_folder_name())))
    }

    /// Where the apps' git repositories are (`<data dir>/git/<app>.git`).
    pub fn git_root(&self) -> PathBuf {
        self.root.parent().unwrap_or(&self.root).join("git")
    }

    /// Where an app's releases are kept.
    pub fn app_dir(&self, app: &str) -> PathBuf {
        self.root.join(app)
    }

    /// A new app's supervisor starts: it reads its deploys from the returned queue.
    pub(crate) fn register(&self, spec: &AppSpec) -> mpsc::Receiver<Rollout> {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        if let Ok(mut apps) = self.apps.lock() {
            apps.insert(
                spec.name.clone(),
                Queue {
                    spec: spec.clone(),
                    sender,
                },
            );
        }
        receiver
    }

    /// A reload changed what only deploys read (owners, the webhook) of a supervised app.
    pub fn update_spec(&self, spec: &AppSpec) {
        if let Ok(mut apps) = self.apps.lock() {
            if let Some(queue) = apps.get_mut(&spec.name) {
                queue.spec = spec.clone();
            }
        }
    }

    /// The app's `[apps.webhook]`, if it has one.
    pub fn webhook(&self, app: &str) -> Option<portico_core::config::WebhookSpec> {
        let apps = self.apps.lock().ok()?;
        apps.get(app)?.spec.webhook.clone()
    }

    /// The app's supervisor stopped (the app was removed, or is restarting with a new
    /// config and registers again).
    pub(crate) fn unregister(&self, app: &str) {
        if let Ok(mut apps) = self.apps.lock() {
            apps.remove(app);
        }
    }

    fn spec(&self, app: &str) -> Result<AppSpec, DeployError> {
        let apps = self
            .apps
            .lock()
            .map_err(|_| DeployError::UnknownApp(app.to_owned()))?;
        let queue = apps
            .get(app)
            .ok_or_else(|| DeployError::UnknownApp(app.to_owned()))?;
        if queue.spec.image.is_some() {
            return Err(DeployError::ImageApp(app.to_owned()));
        }
        Ok(queue.spec.clone())
    }

    /// Deploys the gzip-compressed tar at `upload` (which this takes over: it is kept as
    /// the release's bundle, or removed) as a new release of `app`, by `who`. Returns the
    /// queued release; its build and rollout follow in the app's supervisor.
    pub async fn deploy_bundle(
        &self,
        app: &str,
        upload: &Path,
        who: &str,
        origin: &str,
        commit: Option<&str>,
    ) -> Result<ReleaseRow, DeployError> {
        let result = match self.spec(app) {
            Ok(spec) => {
                self.unpack_and_queue(spec, upload, who, origin, commit)
                    .await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(upload);
        result
    }

    /// Like [`Deployments::deploy_bundle`] for a name no app has: the bundle becomes the
    /// first release of a new app (see [`AppSpec::deployed`]). Whether `who` may create apps
    /// is the caller's question.
    pub async fn create_app(
        &self,
        app: &str,
        upload: &Path,
        who: &str,
        commit: Option<&str>,
    ) -> Result<ReleaseRow, DeployError> {
        let result = self.create_and_queue(app, upload, who, commit).await;
        let _ = std::fs::remove_file(upload);
        result
    }

    async fn create_and_queue(
        &self,
        app: &str,
        upload: &Path,
        who: &str,
        commit: Option<&str>,
    ) -> Result<ReleaseRow, DeployError> {
        let creator = self
            .creator
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or_else(|| DeployError::UnknownApp(app.to_owned()))?;
        // Placeholder source: the release's files replace it once unpacked.
        let spec = AppSpec::deployed(app, who, self.app_dir(app), self.runtime);
        let (dir, prepared) = self.unpack_release(spec, upload).await?;
        // A row may be there already: an app whose files were lost, made again.
        let recorded = self.store.add_created_app(app, who).await?;
        if let Err(reason) = creator.create(prepared.clone()).await {
            if recorded {
                let _ = self.store.remove_created_app(app).await;
            }
            let _ = std::fs::remove_dir_all(&dir);
            tracing::warn!(app, "a deploy could not make the app: {reason}");
            return Err(DeployError::AppExists(app.to_owned()));
        }
        self.queue_release(prepared, &dir, upload, who, "upload", commit)
            .await
    }

    /// Unpacks the bundle into a new release folder and detects the app in it; on any
    /// error nothing is left behind.
    async fn unpack_release(
        &self,
        spec: AppSpec,
        upload: &Path,
    ) -> Result<(PathBuf, PreparedApp), DeployError> {
        let dir = self.app_dir(&spec.name).join(release_folder_name());
        std::fs::create_dir_all(dir.join("src"))?;
        let unpacked = self.unpack(upload, &dir).await;
        let detected = unpacked.and_then(|()| {
            let mut spec = spec;
            spec.source = dir.join("src");
            let detected = portico_build::detect(&spec).map_err(|e| {
                // The folder is Portico's, not the deployer's: name it as they know it.
                DeployError::NotAnApp(
                    e.to_string()
                        .replace(&spec.source.display().to_string(), "the uploaded folder"),
                )
            })?;
            Ok(PreparedApp { spec, detected })
        });
        match detected {
            Ok(prepared) => Ok((dir, prepared)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    async fn unpack_and_queue(
        &self,
        spec: AppSpec,
        upload: &Path,
        who: &str,
        origin: &str,
        commit: Option<&str>,
    ) -> Result<ReleaseRow, DeployError> {
        let (dir, prepared) = self.unpack_release(spec, upload).await?;
        self.queue_release(prepared, &dir, upload, who, origin, commit)
            .await
    }

    /// Records an unpacked release and queues it for the app's supervisor.
    async fn queue_release(
        &self,
        prepared: PreparedApp,
        dir: &Path,
        upload: &Path,
        who: &str,
        origin: &str,
        commit: Option<&str>,
    ) -> Result<ReleaseRow, DeployError> {
        let app = prepared.spec.name.clone();
        let app = app.as_str();
        std::fs::rename(upload, dir.join("bundle.tar.gz"))?;
        let source_dir = prepared.spec.source.to_string_lossy().into_owned();
        let build_log = dir.join("build.log").to_string_lossy().into_owned();
        let _in_order = self.numbering.lock().await;
        let release = self
            .store
            .add_release(&NewRelease {
                app,
                origin,
                framework: prepared.detected.framework,
                entrypoint: &prepared.detected.entrypoint,
                source_dir: &source_dir,
                commit_id: commit,
                deployed_by: who,
                build_log: &build_log,
            })
            .await?;
        self.submit(Rollout {
            release: release.clone(),
            app: prepared,
            rollback: false,
        })
        .await?;
        Ok(release)
    }

    async fn unpack(&self, upload: &Path, dir: &Path) -> Result<(), DeployError> {
        let limits = bundle::Limits {
            max_unpacked_bytes: self.config.max_unpacked_bytes,
            ..bundle::Limits::default()
        };
        let upload = upload.to_owned();
        let dest = dir.join("src");
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&upload)?;
            bundle::unpack(std::io::BufReader::new(file), &dest, &limits)?;
            Ok::<(), DeployError>(())
        })
        .await
        .map_err(|e| DeployError::Io(std::io::Error::other(e)))?
    }

    /// Rolls `app` back to release `number`, or to the latest release before the live one.
    pub async fn rollback(
        &self,
        app: &str,
        number: Option<i64>,
    ) -> Result<RolledBack, DeployError> {
        let spec = self.spec(app)?;
        let releases = self.store.releases(app).await?;
        let live = releases.iter().find(|r| r.state == ReleaseState::Live);
        let target = match number {
            Some(number) => releases
                .iter()
                .find(|r| r.number == number)
                .ok_or_else(|| DeployError::NoSuchRelease {
                    app: app.to_owned(),
                    number,
                })?,
            None => releases
                .iter()
                .filter(|r| live.is_none_or(|l| r.number < l.number))
                .find(|r| r.state == ReleaseState::Superseded)
                .ok_or_else(|| DeployError::NothingToRollBackTo(app.to_owned()))?,
        };
        let refuse = |hint| DeployError::NotRunnable {
            app: app.to_owned(),
            number: target.number,
            state: target.state.as_str(),
            hint,
        };
        match target.state {
            ReleaseState::Superseded => {}
            ReleaseState::Live => {
                return Err(DeployError::AlreadyLive {
                    app: app.to_owned(),
                    number: target.number,
                })
            }
            ReleaseState::Failed => return Err(refuse("it never ran; deploy a fixed version")),
            ReleaseState::Pruned => {
                return Err(refuse(
                    "its files were removed (deploy.keep_releases); deploy it again",
                ))
            }
            _ => return Err(refuse("wait until its deploy is done")),
        }
        let mut spec = spec;
        if let Some(dir) = &target.source_dir {
            spec.source = PathBuf::from(dir);
        }
        let detected = portico_build::detect(&spec)
            .map_err(|e| DeployError::NotAnApp(format!("release {}: {e}", target.number)))?;
        // What the log holds before this rollout writes to it: its follower starts there.
        let log_from = std::fs::metadata(self.build_log(target)).map_or(0, |m| m.len());
        self.store
            .set_release_state(target.id, ReleaseState::Queued, None)
            .await?;
        let mut release = target.clone();
        release.state = ReleaseState::Queued;
        self.submit(Rollout {
            release: release.clone(),
            app: PreparedApp { spec, detected },
            rollback: true,
        })
        .await?;
        Ok(RolledBack { release, log_from })
    }

    async fn submit(&self, rollout: Rollout) -> Result<(), DeployError> {
        let app = rollout.release.app.clone();
        let id = rollout.release.id;
        let rollback = rollout.rollback;
        let sender = self
            .apps
            .lock()
            .ok()
            .and_then(|apps| apps.get(&app).map(|q| q.sender.clone()));
        let refused = match sender {
            Some(sender) => match sender.try_send(rollout) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => DeployError::QueueFull(app),
                Err(mpsc::error::TrySendError::Closed(_)) => DeployError::UnknownApp(app),
            },
            None => DeployError::UnknownApp(app),
        };
        let state = if rollback {
            ReleaseState::Superseded
        } else {
            ReleaseState::Failed
        };
        self.store
            .set_release_state(id, state, Some(&refused.to_string()))
            .await?;
        Err(refused)
    }

    /// Removes the files of the app's releases beyond the newest `keep` that are not live
    /// (nor in `in_use`, still draining), marking them pruned. The app's folder in the
    /// config is never touched. Returns the images (`image <tag>`) only pruned releases
    /// used, for the caller to remove.
    pub(crate) async fn prune(&self, app: &str, in_use: &[i64]) -> Vec<String> {
        let Ok(releases) = self.store.releases(app).await else {
            return Vec::new();
        };
        let mut pruned = Vec::new();
        let keep = self.config.keep_releases as usize;
        // The newest `keep` releases one could roll back to are kept, and (apart) the newest
        // `keep` failed ones, for their files to be looked at: failures take no good one's
        // place. One still draining is never pruned, kept or not (a later prune may).
        let beyond_kept = |state: ReleaseState| {
            releases
                .iter()
                .filter(move |r| r.source_dir.is_some() && r.state == state)
                .skip(keep)
                .filter(|r| !in_use.contains(&r.id))
        };
        let candidates: Vec<&ReleaseRow> = beyond_kept(ReleaseState::Superseded)
            .chain(beyond_kept(ReleaseState::Failed))
            .collect();
        for release in candidates {
            let Some(src) = release.source_dir.as_deref().map(Path::new) else {
                continue;
            };
            // Only ever inside Portico's own releases folder.
            if !src.starts_with(&self.root) {
                continue;
            }
            let _ = std::fs::remove_dir_all(src);
            if let Some(dir) = src.parent() {
                let _ = std::fs::remove_file(dir.join("bundle.tar.gz"));
            }
            if let Err(e) = self
                .store
                .set_release_state(release.id, ReleaseState::Pruned, None)
                .await
            {
                tracing::warn!(app, "could not record a pruned release: {e}");
            }
            pruned.push(release.id);
        }
        // An image is shared by every release built from the same content.
        let still_used = |environment: &str| {
            releases.iter().any(|r| {
                !pruned.contains(&r.id)
                    && r.state != ReleaseState::Pruned
                    && r.environment == environment
            })
        };
        let mut images: Vec<String> = releases
            .iter()
            .filter(|r| pruned.contains(&r.id))
            .filter_map(|r| {
                r.environment
                    .strip_prefix("image ")
                    .map(|_| r.environment.clone())
            })
            .filter(|environment| !still_used(environment))
            .collect();
        images.dedup();
        images
            .into_iter()
            .filter_map(|e| e.strip_prefix("image ").map(str::to_owned))
            .collect()
    }
}

/// A release's folder: unique without asking the database (its number comes later), and
/// sorting by time.
fn release_folder_name() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{:08x}", since_epoch.as_millis(), rand::random::<u32>())
}
