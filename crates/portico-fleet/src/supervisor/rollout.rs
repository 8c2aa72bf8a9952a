//! Rolling out a release without cutting anyone off. One deploy at a time per app:
//!
//! ```text
//! queued ─▶ building ─ok─▶ starting ──all ready──▶ live: new sessions go to it
//!              │              │                      └▶ old replicas drain: each stops when
//!              └─failed◀──────┘ (a replica crashed         its last session ended, or at
//!                 the live release keeps serving      or never answered)   deploy.drain_timeout
//! ```
//!
//! While a release builds and starts, the live one serves everything. Its replicas join
//! the route as soon as they are ready but take no new session (the route's
//! `current_release` is still the old one); switching is one route-table swap. A session
//! stuck to an old replica (its sticky cookie) stays there while that replica drains.

use super::{environment_label, logged, replicas, FirstReady, Slot, Supervisor};
use crate::deploy::Rollout;
use portico_build::LaunchSpec;
use portico_core::routes::update_app;
use portico_core::AppStatus;
use portico_store::{ReleaseRow, ReleaseState};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

/// Slots being stopped, awaited by the scale loop.
type Retired = JoinSet<Result<(), tokio::task::JoinError>>;

/// A built release, ready to start replicas of: the supervisor as that release runs the
/// app (its files, what detection found), how its replicas start, and its ids.
#[derive(Clone)]
pub(super) struct Release {
    pub(super) sup: Supervisor,
    pub(super) launch: LaunchSpec,
    pub(super) id: i64,
    pub(super) number: i64,
}

impl Release {
    /// A slot running this release (an adopted replica, or a new one).
    pub(super) fn spawn_slot(&self, adopted: Option<crate::runtime::Replica>) -> Slot {
        self.sup.spawn_slot(&self.launch, self.id, adopted, None)
    }
}

/// A release's build, finished.
pub(super) struct Built {
    release: ReleaseRow,
    rollback: bool,
    outcome: Result<Release, String>,
}

/// The deploy in progress, if any.
enum Deploying {
    Building {
        release: ReleaseRow,
        rollback: bool,
    },
    Starting {
        release: ReleaseRow,
        rollback: bool,
        // Boxed: far larger than the other variant, and made once per deploy.
        next: Box<Release>,
        slots: Vec<Slot>,
    },
}

/// A replica of an earlier release, serving only the sessions already on it.
struct Draining {
    slot: Slot,
    release: i64,
    number: i64,
    until: Instant,
}

/// What the scale loop keeps about deploys.
pub(super) struct Rollouts {
    current: Option<Deploying>,
    draining: Vec<Draining>,
    /// Rollout slots report their first readiness here.
    pub(super) progress: Arc<Notify>,
    pub(super) built_tx: mpsc::UnboundedSender<Built>,
}

impl Rollouts {
    pub(super) fn new() -> (Rollouts, mpsc::UnboundedReceiver<Built>) {
        let (built_tx, built_rx) = mpsc::unbounded_channel();
        let rollouts = Rollouts {
            current: None,
            draining: Vec::new(),
            progress: Arc::new(Notify::new()),
            built_tx,
        };
        (rollouts, built_rx)
    }

    /// No deploy is being built or started: the next may begin.
    pub(super) fn is_idle(&self) -> bool {
        self.current.is_none()
    }
}

/// Appends a line to a release's build log, which `portico deploy` and `git push` show.
fn note(log: &Path, line: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{line}");
    }
}

impl Supervisor {
    /// This supervisor as it runs `app` (a release's files and detection).
    fn for_app(&self, app: super::PreparedApp) -> Supervisor {
        let mut next = self.clone();
        next.app = Arc::new(app);
        next
    }

    /// Where the build of the app's folder in the config logs.
    fn config_build_log(&self) -> PathBuf {
        self.context.logs_dir.join(self.name()).join("build.log")
    }

    fn build_log_of(&self, release: &ReleaseRow) -> PathBuf {
        release
            .build_log
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.config_build_log())
    }

    /// The release to serve at start-up: the live one when it was deployed, else the
    /// app's folder in the config. A deployed release whose files are gone falls back to
    /// the folder, and says so.
    pub(super) async fn initial_release(&self) -> Result<Release, (String, &'static str)> {
        let live = self
            .context
            .store
            .live_release(self.name())
            .await
            .ok()
            .flatten();
        if let Some(row) = live.filter(|r| r.source_dir.is_some()) {
            match self.deployed_app(&row) {
                Ok(app) => {
                    let next = self.for_app(app);
                    let launch = next
                        .prepare(&self.build_log_of(&row), true)
                        .await
                        .map_err(|reason| (reason, "build-failed"))?;
                    logged(
                        self.context
                            .store
                            .set_release_environment(row.id, &environment_label(&launch))
                            .await,
                    );
                    return Ok(Release {
                        sup: next,
                        launch: launch.0,
                        id: row.id,
                        number: row.number,
                    });
                }
                Err(reason) => {
                    let message = format!(
                        "release {} cannot be served ({reason}); serving the app's folder from the config instead",
                        row.number
                    );
                    self.event(None, "release-missing", &message).await;
                }
            }
        }
        if self.app.spec.deployed_only {
            // Made by a deploy: there is no folder in the config to fall back to.
            return Err((
                "it has no release to serve yet; deploy one".to_owned(),
                NO_RELEASE,
            ));
        }
        let launch = self
            .prepare(&self.config_build_log(), true)
            .await
            .map_err(|reason| (reason, "build-failed"))?;
        let id = self
            .record_release(&launch)
            .await
            .map_err(|reason| (reason, "store-failed"))?;
        let number = self
            .context
            .store
            .live_release(self.name())
            .await
            .ok()
            .flatten()
            .map_or(0, |r| r.number);
        Ok(Release {
            sup: self.clone(),
            launch: launch.0,
            id,
            number,
        })
    }

    /// The app as a deployed release runs it.
    fn deployed_app(&self, release: &ReleaseRow) -> Result<super::PreparedApp, String> {
        let dir = PathBuf::from(release.source_dir.as_deref().unwrap_or_default());
        if !dir.is_dir() {
            return Err(format!("its files at {} are gone", dir.display()));
        }
        let mut spec = self.app.spec.clone();
        spec.source = dir;
        let detected = portico_build::detect(&spec).map_err(|e| e.to_string())?;
        Ok(super::PreparedApp { spec, detected })
    }

    /// Builds a release's environment or image, unless Portico stops first.
    async fn build_release(&self, rollout: Rollout) -> Built {
        let next = self.for_app(rollout.app);
        let row = rollout.release;
        let log = self.build_log_of(&row);
        logged(
            self.context
                .store
                .set_release_state(row.id, ReleaseState::Building, None)
                .await,
        );
        let verb = if rollout.rollback {
            "rolling back to"
        } else {
            "deploying"
        };
        let by = row
            .deployed_by
            .as_deref()
            .map(|who| format!(" by {who}"))
            .unwrap_or_default();
        let message = format!(
            "{verb} release {} ({}{by}): building",
            row.number, row.framework
        );
        self.event(None, "deploying", &message).await;
        note(
            &log,
            &format!("Building release {} ({})", row.number, row.framework),
        );
        let started = Instant::now();
        let mut stop = self.stop.clone();
        let built = tokio::select! {
            built = next.prepare(&log, false) => built,
            _ = stop.wait_for(|stop| *stop) => Err("Portico stopped during the build".to_owned()),
        };
        let outcome = match built {
            Ok(launch) => {
                logged(
                    self.context
                        .store
                        .set_release_environment(row.id, &environment_label(&launch))
                        .await,
                );
                note(
                    &log,
                    &format!("Built in {:.1}s", started.elapsed().as_secs_f64()),
                );
                Ok(Release {
                    sup: next,
                    launch: launch.0,
                    id: row.id,
                    number: row.number,
                })
            }
            Err(reason) => Err(reason),
        };
        Built {
            release: row,
            rollback: rollout.rollback,
            outcome,
        }
    }

    /// Starts building a deploy in its own task; the result arrives on `built_tx`.
    pub(super) fn begin_build(&self, rollout: Rollout, rollouts: &mut Rollouts) {
        rollouts.current = Some(Deploying::Building {
            release: rollout.release.clone(),
            rollback: rollout.rollback,
        });
        let supervisor = self.clone();
        let done = rollouts.built_tx.clone();
        tokio::spawn(async move {
            let _ = done.send(supervisor.build_release(rollout).await);
        });
    }

    /// A build finished: start the release's replicas (as many as serve now, at least
    /// one, so that it is proven healthy before it takes a session), or fail the deploy.
    pub(super) async fn built(&self, built: Built, rollouts: &mut Rollouts, running: usize) {
        let release = match built.outcome {
            Ok(release) => release,
            Err(reason) => {
                rollouts.current = None;
                let reason = format!("the build failed: {reason}");
                return self
                    .deploy_failed(&built.release, built.rollback, &reason)
                    .await;
            }
        };
        let count = running.max(1);
        self.context
            .slots
            .fetch_add(count as u32, Ordering::Relaxed);
        logged(
            self.context
                .store
                .set_release_state(release.id, ReleaseState::Starting, None)
                .await,
        );
        note(
            &self.build_log_of(&built.release),
            &format!(
                "Starting {} of release {}; sessions stay on the live release until then",
                replicas(count),
                release.number
            ),
        );
        let slots = (0..count)
            .map(|_| {
                let first = FirstReady::new(&rollouts.progress);
                release
                    .sup
                    .spawn_slot(&release.launch, release.id, None, Some(first))
            })
            .collect();
        rollouts.current = Some(Deploying::Starting {
            release: built.release,
            rollback: built.rollback,
            next: Box::new(release),
            slots,
        });
    }

    /// Looks at the starting release: when all its replicas are ready, it goes live and
    /// `slots` (the live release's) start draining; if one failed, the deploy fails and
    /// its replicas stop. Returns the release now live, when it switched.
    pub(super) async fn advance_rollout(
        &self,
        rollouts: &mut Rollouts,
        slots: &mut Vec<Slot>,
        serving: &Release,
        retired: &mut Retired,
    ) -> Option<Release> {
        let Some(Deploying::Starting {
            slots: starting, ..
        }) = &rollouts.current
        else {
            return None;
        };
        let outcomes: Vec<Option<Result<(), String>>> = starting
            .iter()
            .map(|s| s.first_ready.as_ref().and_then(|f| f.outcome()))
            .collect();
        let failure = outcomes
            .iter()
            .find_map(|o| o.as_ref().and_then(|o| o.clone().err()));
        if failure.is_none() && !outcomes.iter().all(|o| matches!(o, Some(Ok(())))) {
            return None;
        }
        let Some(Deploying::Starting {
            release,
            rollback,
            next,
            slots: started,
        }) = rollouts.current.take()
        else {
            return None;
        };
        if let Some(reason) = failure {
            for slot in started {
                self.retire(slot, retired);
            }
            let reason = format!("its replica did not become ready: {reason}");
            self.deploy_failed(&release, rollback, &reason).await;
            return None;
        }

        update_app(&self.context.routes, self.name(), |route| {
            route.current_release = next.id;
        });
        self.demand().changed();
        logged(self.context.store.make_live(next.id).await);
        let drain = self.context.deployments.config().drain_timeout;
        let until = Instant::now() + drain;
        let old = std::mem::replace(slots, started);
        let message = if old.is_empty() {
            format!("release {} is live", next.number)
        } else {
            let verb = if old.len() == 1 { "drains" } else { "drain" };
            format!(
                "release {} is live: new sessions go to it; {} of release {} {verb} until their sessions end (at most {}s)",
                next.number,
                replicas(old.len()),
                serving.number,
                drain.as_secs()
            )
        };
        rollouts
            .draining
            .extend(old.into_iter().map(|slot| Draining {
                slot,
                release: serving.id,
                number: serving.number,
                until,
            }));
        note(
            &self.build_log_of(&release),
            &format!("Release {} is live", next.number),
        );
        self.event(None, "live", &message).await;
        let in_use: Vec<i64> = rollouts
            .draining
            .iter()
            .map(|d| d.release)
            .chain([next.id])
            .collect();
        let unused = self.context.deployments.prune(self.name(), &in_use).await;
        for image in unused {
            self.context.images.remove(&image).await;
        }
        Some(*next)
    }

    /// Stops the draining replicas nobody is on any more (no request in flight, no
    /// WebSocket, no client within the idle timeout), and those past the drain deadline.
    pub(super) async fn drain(&self, rollouts: &mut Rollouts, retired: &mut Retired) {
        if rollouts.draining.is_empty() {
            return;
        }
        let now = Instant::now();
        let done: Vec<(usize, bool)> = {
            let table = self.context.routes.load();
            let route = table.get(self.name());
            rollouts
                .draining
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let id = d.slot.replica_id();
                    let endpoint = route.and_then(|route| {
                        route
                            .endpoints
                            .iter()
                            .find(|e| Some(&*e.replica) == id.as_deref())
                    });
                    // Gone from the route: it crashed, and is not restarted.
                    let ended = endpoint.is_none_or(|e| e.is_idle());
                    (ended || now >= d.until).then_some((i, ended))
                })
                .collect()
        };
        for (i, ended) in done.into_iter().rev() {
            let draining = rollouts.draining.remove(i);
            let id = draining.slot.replica_id().unwrap_or_default();
            let message = if ended {
                format!(
                    "replica {id} of release {} stopped: its last session ended",
                    draining.number
                )
            } else {
                format!(
                    "replica {id} of release {} stopped: sessions were still on it when deploy.drain_timeout_secs passed",
                    draining.number
                )
            };
            self.retire(draining.slot, retired);
            self.event(None, "drained", &message).await;
        }
    }

    /// Stops a slot that is no longer wanted, out of the route first.
    fn retire(&self, slot: Slot, retired: &mut Retired) {
        if let Some(id) = slot.replica_id() {
            self.remove_endpoint(&id);
        }
        let _ = slot.stop.send(true);
        self.context.slots.fetch_sub(1, Ordering::Relaxed);
        retired.spawn(slot.task);
    }

    /// The app is stopping: a deploy in progress fails, and the slots of the starting and
    /// draining releases are handed back to be stopped with the rest (counted in
    /// `Context::slots`).
    pub(super) async fn end_rollouts(&self, rollouts: &mut Rollouts) -> Vec<Slot> {
        let mut leftover: Vec<Slot> = rollouts.draining.drain(..).map(|d| d.slot).collect();
        match rollouts.current.take() {
            Some(Deploying::Building { release, rollback }) => {
                self.deploy_failed(&release, rollback, STOPPED_DURING_DEPLOY)
                    .await
            }
            Some(Deploying::Starting {
                release,
                rollback,
                slots,
                ..
            }) => {
                leftover.extend(slots);
                self.deploy_failed(&release, rollback, STOPPED_DURING_DEPLOY)
                    .await;
            }
            None => {}
        }
        leftover
    }

    /// Records a deploy that did not go live; the live release keeps serving. A rollback's
    /// release stays `superseded` (it served before), with the reason.
    async fn deploy_failed(&self, release: &ReleaseRow, rollback: bool, reason: &str) {
        let state = if rollback {
            ReleaseState::Superseded
        } else {
            ReleaseState::Failed
        };
        logged(
            self.context
                .store
                .set_release_state(release.id, state, Some(reason))
                .await,
        );
        note(
            &self.build_log_of(release),
            &format!(
                "Release {} failed: {}\nThe live release keeps serving.",
                release.number,
                reason.lines().next().unwrap_or_default()
            ),
        );
        let message = format!(
            "release {} failed, the live release keeps serving: {reason}",
            release.number
        );
        tracing::warn!(app = %self.name(), "{message}");
        self.event(None, "deploy-failed", &message).await;
    }

    /// The app could not start from its live release (or has none yet): deploys are how
    /// an analyst fixes that, so each is built in turn until one builds. Its replicas then
    /// start, and it goes live once one is ready (see [`Supervisor::first_release_settled`]).
    /// `None` when Portico stops first.
    pub(super) async fn wait_for_fixing_deploy(
        &self,
        deploys: &mut mpsc::Receiver<Rollout>,
    ) -> Option<(Release, ReleaseRow)> {
        let mut stop = self.stop.clone();
        loop {
            let rollout = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return None,
                rollout = deploys.recv() => rollout?,
            };
            self.set_status(AppStatus::Building, None).await;
            let built = self.build_release(rollout).await;
            match built.outcome {
                Ok(release) => {
                    logged(
                        self.context
                            .store
                            .set_release_state(release.id, ReleaseState::Starting, None)
                            .await,
                    );
                    return Some((release, built.release));
                }
                Err(reason) => {
                    let reason = format!("the build failed: {reason}");
                    self.deploy_failed(&built.release, built.rollback, &reason)
                        .await;
                    self.set_status(AppStatus::Failed(reason), None).await;
                }
            }
        }
    }

    /// The first release of an app that had none serving: live once one of its first
    /// replicas is ready, failed when all of them failed to become ready. Returns whether
    /// it is settled (and so no longer pending). With no replica to wait for (`min = 0`) it
    /// is live at once.
    pub(super) async fn first_release_settled(&self, release: &ReleaseRow, slots: &[Slot]) -> bool {
        let outcomes: Vec<Option<Result<(), String>>> = slots
            .iter()
            .filter_map(|s| s.first_ready.as_ref().map(|f| f.outcome()))
            .collect();
        let live = outcomes.is_empty() || outcomes.iter().any(|o| matches!(o, Some(Ok(()))));
        if live {
            logged(self.context.store.make_live(release.id).await);
            note(
                &self.build_log_of(release),
                &format!("Release {} is live", release.number),
            );
            let message = format!("release {} is live", release.number);
            self.event(None, "live", &message).await;
            return true;
        }
        if outcomes.iter().all(Option::is_some) {
            let reason = outcomes
                .into_iter()
                .find_map(|o| o.and_then(Result::err))
                .unwrap_or_default();
            let reason = format!("its replica did not become ready: {reason}");
            self.deploy_failed(release, false, &reason).await;
            return true;
        }
        false
    }

    /// The app stopped: deploys still queued for it will not run.
    pub(super) async fn abandon_queued(&self, deploys: &mut mpsc::Receiver<Rollout>) {
        deploys.close();
        while let Ok(rollout) = deploys.try_recv() {
            self.deploy_failed(&rollout.release, rollout.rollback, STOPPED_DURING_DEPLOY)
                .await;
        }
    }

    /// Per-user apps: a built release goes live at once; running instances keep their
    /// release until they are culled, new ones start on the new release.
    pub(super) async fn instance_release_built(&self, built: Built) -> Option<Release> {
        match built.outcome {
            Ok(release) => {
                update_app(&self.context.routes, self.name(), |route| {
                    route.current_release = release.id;
                });
                logged(self.context.store.make_live(release.id).await);
                note(
                    &self.build_log_of(&built.release),
                    &format!("Release {} is live", release.number),
                );
                let message = format!(
                    "release {} is live: new instances start on it; running ones keep theirs until they are culled",
                    release.number
                );
                self.event(None, "live", &message).await;
                Some(release)
            }
            Err(reason) => {
                let reason = format!("the build failed: {reason}");
                self.deploy_failed(&built.release, built.rollback, &reason)
                    .await;
                None
            }
        }
    }

    /// Per-user apps: the build in progress (if any) is done.
    pub(super) fn settle_build(rollouts: &mut Rollouts) {
        rollouts.current = None;
    }
}

/// `initial_release`'s error kind for an app made by a deploy that has no release yet.
pub(super) const NO_RELEASE: &str = "no-release";

const STOPPED_DURING_DEPLOY: &str =
    "the app stopped during the deploy (Portico stopped, or its config changed); deploy again";
