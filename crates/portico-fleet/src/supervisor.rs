//! One supervisor task per app. Its life:
//!
//! ```text
//! building ──env ok──▶ starting ──probe ok──▶ running ──exit or hung──▶ starting (after backoff)
//!    │                    │  ▲                                    │
//!    └─install failed─▶ failed ◀── too many consecutive crashes ──┘
//! ```
//!
//! Every transition is written to the store (status and an event with its reason) and to
//! the route table (status and ready endpoints), so the CLI, the portal and the edge agree.

mod instances;
mod rollout;

use rollout::{Release, Rollouts};

use crate::deploy::{Deployments, Rollout};
use crate::probe::Prober;
use crate::runtime::{Adoptable, Exit, InstanceSpec, Replica, ReplicaSpec, Runtime, StartError};
use crate::scaler::{Decision, Scaler};
use portico_build::detect::DOCKERFILE;
use portico_build::{
    launch_spec, Detected, EnvBuilder, ImageBuilder, LaunchSpec, Place, PythonEnv,
};
use portico_core::config::{FleetConfig, RuntimeKind};
use portico_core::routes::update_app;
use portico_core::routes::RECENT_WINDOWS;
use portico_core::{
    AppSpec, AppStatus, Demand, Endpoint, Framework, PublicUrls, ReplicaState, ScaleSpec,
    SharedRoutes,
};
use portico_store::{InstanceOwner, ReplicaRow, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// A replica that stayed ready this long is considered healthy: its crash starts the
/// backoff (and the count towards `max_restarts`) afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a liveness probe waits for an answer (at most the probe interval).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a replica is tried again while its runtime (the Docker daemon) is away.
const RUNTIME_RETRY: Duration = Duration::from_secs(5);
/// Lines of the app's output quoted when it is marked failed.
const FAILURE_LOG_LINES: usize = 15;

/// An app ready to be supervised: its config and what detection found.
#[derive(Debug, Clone)]
pub struct PreparedApp {
    pub spec: AppSpec,
    pub detected: Detected,
}

/// The runtimes apps run on, each chosen by the app's `runtime`.
pub struct Runtimes {
    pub process: Arc<dyn Runtime>,
    pub docker: Arc<dyn Runtime>,
}

impl Runtimes {
    pub fn of(&self, kind: RuntimeKind) -> &Arc<dyn Runtime> {
        match kind {
            RuntimeKind::Process => &self.process,
            RuntimeKind::Docker => &self.docker,
        }
    }

    /// The runtime a replica row names.
    fn named(&self, name: &str) -> Option<&Arc<dyn Runtime>> {
        [&self.process, &self.docker]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Everything the supervisors share.
struct Context {
    runtimes: Runtimes,
    /// Builds container apps' images.
    images: Arc<ImageBuilder>,
    store: Store,
    routes: SharedRoutes,
    envs: Arc<EnvBuilder>,
    fleet: FleetConfig,
    urls: PublicUrls,
    logs_dir: PathBuf,
    /// Portico's data folder: the process runtime keeps volumes under it.
    data_dir: PathBuf,
    runners_dir: PathBuf,
    prober: Prober,
    /// Replica slots across all apps, for `fleet.max_replicas`.
    slots: std::sync::atomic::AtomicU32,
    /// Private instances each person runs across apps, for `fleet.max_instances_per_user`.
    instances_per_user: std::sync::Mutex<HashMap<i64, u32>>,
    /// Set when Portico exits with `fleet.keep_replicas_on_exit`: serving replicas are left
    /// running for the next start to adopt.
    leaving: std::sync::atomic::AtomicBool,
    /// Where deploys come from; each supervised app registers its queue.
    deployments: Arc<Deployments>,
}

/// The running fleet: one supervisor per app.
pub struct Fleet {
    context: Arc<Context>,
    supervisors: HashMap<String, Supervised>,
}

/// A supervisor task, the switch that stops it, and its scaling rules (changed in place by
/// a reload).
struct Supervised {
    stop: watch::Sender<bool>,
    scale: watch::Sender<ScaleSpec>,
    task: JoinHandle<()>,
}

impl Fleet {
    /// Starts a supervisor for each app. Apps are supervised independently: one that fails
    /// to build or start does not hold up the others. `inherited` are the replicas an
    /// earlier run left serving: each app adopts its own (if they run its current release),
    /// and the rest are stopped.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        apps: Vec<PreparedApp>,
        inherited: Vec<ReplicaRow>,
        runtimes: Runtimes,
        images: Arc<ImageBuilder>,
        store: Store,
        routes: SharedRoutes,
        envs: Arc<EnvBuilder>,
        fleet: FleetConfig,
        urls: PublicUrls,
        data_dir: &Path,
        deployments: Arc<Deployments>,
    ) -> Fleet {
        let context = Arc::new(Context {
            runtimes,
            images,
            store,
            routes,
            runners_dir: envs.cache_dir().join("runners"),
            envs,
            fleet,
            urls,
            logs_dir: data_dir.join("logs"),
            data_dir: data_dir.to_owned(),
            prober: Prober::default(),
            slots: Default::default(),
            instances_per_user: Default::default(),
            leaving: Default::default(),
            deployments,
        });
        let mut fleet = Fleet {
            context,
            supervisors: HashMap::new(),
        };
        let mut inherited_by_app: HashMap<String, Vec<ReplicaRow>> = HashMap::new();
        for row in inherited {
            inherited_by_app
                .entry(row.app.clone())
                .or_default()
                .push(row);
        }
        for app in apps {
            let inherited = inherited_by_app.remove(&app.spec.name).unwrap_or_default();
            fleet.supervise_inheriting(app, inherited);
        }
        let orphaned: Vec<ReplicaRow> = inherited_by_app.into_values().flatten().collect();
        if !orphaned.is_empty() {
            tokio::spawn(stop_inherited(
                fleet.context.clone(),
                orphaned,
                "its app is no longer in the config",
            ));
        }
        fleet
    }

    /// Starts supervising an app (at start-up, or added by a reload). An app of that name
    /// must not be supervised already: [`Fleet::release`] it first.
    pub fn supervise(&mut self, app: PreparedApp) {
        self.supervise_inheriting(app, Vec::new());
    }

    fn supervise_inheriting(&mut self, app: PreparedApp, inherited: Vec<ReplicaRow>) {
        let name = app.spec.name.clone();
        debug_assert!(!self.supervisors.contains_key(&name));
        let (stop, stop_rx) = watch::channel(false);
        let (scale, scale_rx) = watch::channel(app.spec.scale.clone());
        let deploys = self.context.deployments.register(&app.spec);
        let supervisor = Supervisor {
            context: self.context.clone(),
            app: Arc::new(app),
            stop: stop_rx,
            slot_replica: Arc::default(),
            instance: None,
            first_ready: None,
        };
        let task = tokio::spawn(supervisor.run(scale_rx, inherited, deploys));
        self.supervisors
            .insert(name, Supervised { stop, scale, task });
    }

    /// The deploy service the supervised apps take their deploys from.
    pub fn deployments(&self) -> &Arc<Deployments> {
        &self.context.deployments
    }

    /// Puts new scaling rules in force for a running app without restarting anything: the
    /// autoscaler moves towards them at its next look. `false` if the app is not supervised.
    pub fn rescale(&self, name: &str, spec: ScaleSpec) -> bool {
        match self.supervisors.get(name) {
            Some(supervised) => {
                supervised.scale.send_replace(spec);
                true
            }
            None => false,
        }
    }

    /// Stops supervising these apps (removed or changed by a reload): their replicas are
    /// stopped gracefully, all at once, and awaited. Unknown names are ignored.
    pub async fn release(&mut self, names: &[&str]) {
        for name in names {
            self.context.deployments.unregister(name);
        }
        let stopping: Vec<Supervised> = names
            .iter()
            .filter_map(|name| self.supervisors.remove(*name))
            .collect();
        stop_all(stopping).await;
    }

    /// Stops every replica (gracefully, within the configured grace) and waits for it; with
    /// `fleet.keep_replicas_on_exit`, leaves the serving ones running instead.
    pub async fn shutdown(self) {
        if self.context.fleet.keep_replicas_on_exit {
            self.context.leaving.store(true, Ordering::Relaxed);
        }
        stop_all(self.supervisors.into_values().collect()).await;
    }
}

/// Stops replicas an earlier run left running that will not be adopted, for `reason`.
async fn stop_inherited(context: Arc<Context>, rows: Vec<ReplicaRow>, reason: &str) {
    for row in rows {
        let runtime = context.runtimes.named(&row.runtime);
        if let (Some(candidate), Some(runtime)) = (adoptable(&row), runtime) {
            if runtime.adopt(&candidate).await.is_ok() {
                runtime.stop(&row.id, context.fleet.stop_grace).await;
            }
        }
        logged(
            context
                .store
                .set_replica_state(&row.id, ReplicaState::Stopped, Some(reason))
                .await,
        );
        tracing::info!(app = %row.app, replica = %row.id, "stopped a replica left running by an earlier run: {reason}");
    }
}

/// What the runtime needs to adopt a replica the store recorded; `None` without an endpoint.
fn adoptable(row: &ReplicaRow) -> Option<Adoptable> {
    Some(Adoptable {
        id: row.id.clone(),
        pid: row.pid,
        endpoint: row.endpoint.as_deref()?.parse().ok()?,
        log_path: PathBuf::from(&row.log_path),
    })
}

/// Signals every supervisor first, then waits, so the grace periods run side by side.
async fn stop_all(supervisors: Vec<Supervised>) {
    for supervised in &supervisors {
        let _ = supervised.stop.send(true);
    }
    for supervised in supervisors {
        if let Err(e) = supervised.task.await {
            tracing::error!("an app's supervisor failed: {e}");
        }
    }
}

/// Supervises one app; cloned once per replica it keeps running.
#[derive(Clone)]
struct Supervisor {
    context: Arc<Context>,
    app: Arc<PreparedApp>,
    stop: watch::Receiver<bool>,
    /// In a slot's copy: the id of the replica it runs now.
    slot_replica: Arc<std::sync::Mutex<Option<String>>>,
    /// In a per-user app's slot: whose private instance it keeps.
    instance: Option<Arc<OwnedInstance>>,
    /// In a rollout's slot: where it tells the rollout whether its replica became ready.
    first_ready: Option<Arc<FirstReady>>,
}

/// Whether a rollout's slot got its first replica ready, or why not; the rollout waits on
/// `notify`.
struct FirstReady {
    outcome: std::sync::Mutex<Option<Result<(), String>>>,
    notify: Arc<tokio::sync::Notify>,
}

impl FirstReady {
    fn new(notify: &Arc<tokio::sync::Notify>) -> Arc<FirstReady> {
        Arc::new(FirstReady {
            outcome: std::sync::Mutex::new(None),
            notify: notify.clone(),
        })
    }

    /// Records the first outcome only.
    fn report(&self, outcome: Result<(), String>) {
        if let Ok(mut current) = self.outcome.lock() {
            if current.is_none() {
                *current = Some(outcome);
                self.notify.notify_one();
            }
        }
    }

    fn outcome(&self) -> Option<Result<(), String>> {
        self.outcome.lock().ok().and_then(|o| o.clone())
    }
}

/// A person's private instance as its slot keeps it.
struct OwnedInstance {
    owner: InstanceOwner,
    spec: InstanceSpec,
}

/// A replica taken over from an earlier run, and whose instance it is (per-user apps).
struct Adopted {
    replica: Replica,
    owner: Option<InstanceOwner>,
}

/// One replica's restart loop, as the scaler holds it.
struct Slot {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    replica: Arc<std::sync::Mutex<Option<String>>>,
    /// In a rollout's slot: whether its first replica became ready.
    first_ready: Option<Arc<FirstReady>>,
}

impl Slot {
    /// The id of the replica it runs now.
    fn replica_id(&self) -> Option<String> {
        self.replica.lock().ok().and_then(|r| r.clone())
    }
}

/// How often the autoscaler looks at the sessions.
const SCALE_TICK: Duration = Duration::from_secs(1);

/// How one replica's life ended.
enum Ending {
    /// Portico is shutting down; the replica has been stopped.
    Shutdown,
    /// It crashed or never became ready; restart it.
    Crashed { reason: String, was_healthy: bool },
    /// It cannot run; do not retry.
    Fatal(String),
    /// What runs it (the Docker daemon) is away: wait for it, without counting a crash.
    Unavailable(String),
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.app.spec.name
    }

    /// What runs this app's replicas.
    fn runtime(&self) -> &Arc<dyn Runtime> {
        self.context.runtimes.of(self.app.spec.runtime)
    }

    async fn run(
        self,
        scale: watch::Receiver<ScaleSpec>,
        inherited: Vec<ReplicaRow>,
        mut deploys: mpsc::Receiver<Rollout>,
    ) {
        self.set_status(AppStatus::Building, None).await;
        let (release, inherited, pending) = match self.initial_release().await {
            Ok(release) => (release, inherited, None),
            Err((reason, kind)) => {
                if kind == rollout::NO_RELEASE {
                    tracing::info!(app = %self.name(), "{reason}");
                } else {
                    self.fail(&reason, kind).await;
                }
                stop_inherited(
                    self.context.clone(),
                    inherited,
                    "its app could not be prepared",
                )
                .await;
                match self.wait_for_fixing_deploy(&mut deploys).await {
                    Some((release, row)) => (release, Vec::new(), Some(row)),
                    None => return self.abandon_queued(&mut deploys).await,
                }
            }
        };
        update_app(&self.context.routes, self.name(), |route| {
            route.current_release = release.id;
        });

        let adopted = self.adopt_inherited(inherited, release.id).await;
        match self.app.spec.per_user.clone() {
            Some(rules) => {
                // No replica proves a per-user release: it is live once built.
                if let Some(row) = &pending {
                    self.first_release_settled(row, &[]).await;
                }
                self.serve_owners(release, &rules, adopted, &mut deploys)
                    .await
            }
            None => {
                let mut shared = Vec::new();
                for adopted in adopted {
                    match adopted.owner {
                        // The app was per-user when the replica started.
                        Some(_) => {
                            self.stop_replica(&adopted.replica).await;
                        }
                        None => shared.push(adopted.replica),
                    }
                }
                self.scale(release, pending, scale, shared, &mut deploys)
                    .await
            }
        }
        self.abandon_queued(&mut deploys).await;
        if !matches!(self.route_status(), Some(AppStatus::Failed(_))) {
            self.set_status(AppStatus::Stopped, None).await;
        }
    }

    /// Keeps `min` replicas, each in its own restart loop (a slot), and between `min` and
    /// `max` adds and removes slots as the autoscaler decides, until shutdown. With `min = 0`
    /// the app sleeps without replicas until a request wants it. Deploys arrive on
    /// `deploys` and are rolled out one at a time (see `rollout.rs`).
    async fn scale(
        &self,
        release: Release,
        mut pending: Option<portico_store::ReleaseRow>,
        mut rules: watch::Receiver<ScaleSpec>,
        mut adopted: Vec<Replica>,
        deploys: &mut mpsc::Receiver<Rollout>,
    ) {
        let mut serving = release;
        let demand = self.demand();
        let mut scaler = Scaler::new(rules.borrow_and_update().clone());
        let spec = scaler.spec();
        for extra in adopted.split_off(adopted.len().min(spec.max as usize)) {
            self.stop_replica(&extra).await;
        }
        // `min` always runs, whatever the cap: it is what the operator asked for; so do the
        // replicas adopted from an earlier run.
        let initial = spec.min.max(adopted.len() as u32);
        self.context.slots.fetch_add(initial, Ordering::Relaxed);
        let (mut rollout, mut built) = Rollouts::new();
        let progress = rollout.progress.clone();
        let mut slots: Vec<Slot> = adopted
            .into_iter()
            .map(|replica| serving.spawn_slot(Some(replica)))
            .collect();
        while (slots.len() as u32) < initial {
            // A first release goes live when one of these is ready.
            let first = pending.as_ref().map(|_| FirstReady::new(&progress));
            slots.push(
                serving
                    .sup
                    .spawn_slot(&serving.launch, serving.id, None, first),
            );
        }
        if slots.is_empty() && scaler.spec().warm == 0 {
            self.set_status(AppStatus::Sleeping, None).await;
            self.event(
                None,
                "sleeping",
                "asleep until the first request (scale.min = 0)",
            )
            .await;
        }
        let mut retired = JoinSet::new();
        // Said once each time the cap is reached, not every second while it holds.
        let mut at_cap = false;
        let mut stop = self.stop.clone();
        let mut tick = tokio::time::interval(SCALE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut window_started = Instant::now();
        loop {
            let mut wanted = false;
            let mut rules_changed = false;
            let mut finished = None;
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = tick.tick() => {}
                _ = demand.wanted() => wanted = true,
                Ok(()) = rules.changed() => rules_changed = true,
                Some(next) = deploys.recv(), if rollout.is_idle() => {
                    self.begin_build(next, &mut rollout);
                }
                Some(done) = built.recv() => finished = Some(done),
                _ = progress.notified() => {}
            }
            // Awaited outside `select!`, whose branch outputs (a watch guard) are not Send.
            if let Some(done) = finished {
                self.built(done, &mut rollout, slots.len()).await;
            }
            if let Some(release) = &pending {
                if self.first_release_settled(release, &slots).await {
                    pending = None;
                }
            }
            if let Some(switched) = self
                .advance_rollout(&mut rollout, &mut slots, &serving, &mut retired)
                .await
            {
                serving = switched;
            }
            self.drain(&mut rollout, &mut retired).await;
            if rules_changed {
                let spec = rules.borrow_and_update().clone();
                let message = format!(
                    "scaling rules changed: min {}, max {}, {} sessions per replica, {} warm",
                    spec.min, spec.max, spec.sessions_per_replica, spec.warm
                );
                self.event(None, "rescaled", &message).await;
                scaler = Scaler::new(spec);
            }
            if window_started.elapsed() >= scaler.spec().idle_timeout / RECENT_WINDOWS as u32 {
                self.forget_oldest_clients();
                window_started = Instant::now();
            }
            let mut sessions = self.sessions(&demand);
            // Someone asked for it just now, or scripts used it lately: it must not sleep.
            if wanted || self.recently_used() {
                sessions = sessions.max(1);
            }
            let running = slots.len() as u32;
            match scaler.decide(sessions, running, Instant::now()) {
                Decision::Hold => {}
                Decision::Out(wanted) => {
                    let to = self.grow_to(running, wanted, scaler.spec().min);
                    if to <= running {
                        if !at_cap {
                            at_cap = true;
                            let message = format!(
                                "not scaling out to {}: {sessions} sessions, but fleet.max_replicas ({}) replicas already run across all apps",
                                replicas(wanted as usize),
                                self.context.fleet.max_replicas
                            );
                            self.event(None, "at-capacity", &message).await;
                        }
                        continue;
                    }
                    at_cap = false;
                    while (slots.len() as u32) < to {
                        slots.push(serving.spawn_slot(None));
                    }
                    let spec = scaler.spec();
                    let message = if running == 0 && sessions > 0 {
                        "waking up: a request arrived while it slept".to_owned()
                    } else {
                        let warm = if spec.warm > 0 {
                            format!(", {} kept warm", spec.warm)
                        } else {
                            String::new()
                        };
                        format!(
                            "scaled out to {}: {sessions} sessions, {} per replica at {:.0} % target{warm}",
                            replicas(to as usize),
                            spec.sessions_per_replica,
                            spec.target_utilization * 100.0
                        )
                    };
                    self.event(None, "scaled-out", &message).await;
                }
                Decision::In => {
                    let Some(index) = self.idle_slot(&slots) else {
                        continue;
                    };
                    let slot = slots.swap_remove(index);
                    self.context.slots.fetch_sub(1, Ordering::Relaxed);
                    if slots.is_empty() {
                        // Out of the route before it stops, so that the next request wakes
                        // the app instead of reaching a replica on its way out.
                        if let Some(id) = slot.replica_id() {
                            self.remove_endpoint(&id);
                        }
                        self.set_status(AppStatus::Sleeping, None).await;
                    }
                    let _ = slot.stop.send(true);
                    retired.spawn(slot.task);
                    let message = if slots.is_empty() {
                        format!(
                            "asleep: nobody used it for {}s; the next request starts it",
                            (scaler.spec().idle_timeout + scaler.spec().scale_down_delay).as_secs()
                        )
                    } else {
                        format!(
                            "scaled in to {}: {sessions} sessions",
                            replicas(slots.len())
                        )
                    };
                    self.event(None, "scaled-in", &message).await;
                }
            }
            while retired.try_join_next().is_some() {}
        }
        let leftover = self.end_rollouts(&mut rollout).await;
        for slot in slots.iter().chain(&leftover) {
            let _ = slot.stop.send(true);
        }
        self.context
            .slots
            .fetch_sub((slots.len() + leftover.len()) as u32, Ordering::Relaxed);
        for slot in slots.into_iter().chain(leftover) {
            let _ = slot.task.await;
        }
        while retired.join_next().await.is_some() {}
    }

    /// Grows from `running` towards `wanted`: up to `min` always, beyond it within the
    /// global cap. Returns the size it may grow to, with the places reserved.
    fn grow_to(&self, running: u32, wanted: u32, min: u32) -> u32 {
        let floor = running.max(min.min(wanted));
        self.context
            .slots
            .fetch_add(floor - running, Ordering::Relaxed);
        self.within_global_cap(floor, wanted)
    }

    /// Reserves room for the app to grow from `running` towards `wanted` without the fleet
    /// exceeding `fleet.max_replicas` (atomically: two apps scaling at once cannot both take
    /// the last place). Returns the size it may grow to.
    fn within_global_cap(&self, running: u32, wanted: u32) -> u32 {
        let cap = self.context.fleet.max_replicas;
        let mut granted = 0;
        let _ = self
            .context
            .slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                granted = wanted
                    .saturating_sub(running)
                    .min(cap.saturating_sub(total));
                Some(total + granted)
            });
        running + granted
    }

    /// Starts a slot: a copy of this supervisor with its own stop switch, keeping one replica.
    /// The caller has counted it in `Context::slots`. `first_ready`: a rollout's slot,
    /// which reports whether its first replica became ready.
    fn spawn_slot(
        &self,
        launch: &LaunchSpec,
        release: i64,
        adopted: Option<Replica>,
        first_ready: Option<Arc<FirstReady>>,
    ) -> Slot {
        let (stop, stop_rx) = watch::channel(false);
        let replica = Arc::new(std::sync::Mutex::new(None));
        let mut supervisor = self.clone();
        supervisor.stop = stop_rx;
        supervisor.slot_replica = replica.clone();
        supervisor.first_ready = first_ready.clone();
        Slot {
            stop,
            task: tokio::spawn(supervisor.keep_replica(launch.clone(), release, adopted)),
            replica,
            first_ready,
        }
    }

    /// Where requests wait for this app while no replica is ready.
    fn demand(&self) -> Arc<Demand> {
        let table = self.context.routes.load();
        table
            .get(self.name())
            .map(|route| route.demand.clone())
            .unwrap_or_default()
    }

    /// Sessions on the app now: each replica's open WebSockets or recently active browsers
    /// (whichever is more), and the requests waiting for a replica.
    fn sessions(&self, demand: &Demand) -> usize {
        let table = self.context.routes.load();
        // Sessions on replicas draining after a deploy end there; they are not this
        // release's to serve.
        let serving = table.get(self.name()).map_or(0, |route| {
            route
                .endpoints
                .iter()
                .filter(|e| e.takes_new_sessions(route))
                .map(|e| e.load.sessions())
                .sum()
        });
        serving + demand.waiting()
    }

    /// Whether any request (cookie or not) reached it within the idle timeout.
    fn recently_used(&self) -> bool {
        let table = self.context.routes.load();
        table
            .get(self.name())
            .is_some_and(|route| route.endpoints.iter().any(|e| e.load.recent.active()))
    }

    /// Moves every replica's record of recent clients on by one window.
    fn forget_oldest_clients(&self) {
        let table = self.context.routes.load();
        if let Some(route) = table.get(self.name()) {
            for endpoint in route.endpoints.iter() {
                endpoint.load.recent.advance();
            }
        }
    }

    /// A slot that may be stopped without cutting anyone off: one whose replica is not
    /// serving (starting, or waiting to restart), else the one with the fewest recent
    /// clients among those with no WebSocket and no request in flight.
    fn idle_slot(&self, slots: &[Slot]) -> Option<usize> {
        let table = self.context.routes.load();
        let route = table.get(self.name())?;
        let endpoint_of = |slot: &Slot| {
            let id = slot.replica.lock().ok()?.clone()?;
            route.endpoints.iter().find(|e| *e.replica == *id).cloned()
        };
        slots
            .iter()
            .position(|slot| endpoint_of(slot).is_none())
            .or_else(|| {
                slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, slot)| Some((i, endpoint_of(slot)?)))
                    .filter(|(_, e)| e.load.total() == 0)
                    .min_by_key(|(_, e)| e.load.recent.count())
                    .map(|(i, _)| i)
            })
    }

    /// Keeps one replica running: starts it, restarts it with backoff when it dies, until
    /// shutdown or too many crashes in a row.
    async fn keep_replica(
        mut self,
        launch: LaunchSpec,
        release: i64,
        mut adopted: Option<Replica>,
    ) {
        let mut consecutive_crashes: u32 = 0;
        let mut waiting_for_runtime = false;
        loop {
            // While the runtime is away the status keeps saying so.
            if self.ready_replicas() == 0 && !waiting_for_runtime {
                self.set_status(AppStatus::Starting, None).await;
            }
            let ending = self.run_replica(&launch, release, adopted.take()).await;
            if let Some(first) = &self.first_ready {
                match &ending {
                    Ending::Crashed { reason, .. }
                    | Ending::Fatal(reason)
                    | Ending::Unavailable(reason) => first.report(Err(reason.clone())),
                    Ending::Shutdown => {}
                }
            }
            let was_waiting = std::mem::replace(
                &mut waiting_for_runtime,
                matches!(ending, Ending::Unavailable(_)),
            );
            match ending {
                Ending::Shutdown => break,
                Ending::Unavailable(reason) => {
                    // Said once per outage; the app recovers on its own when it returns.
                    if !was_waiting {
                        let message = format!(
                            "{reason}. Portico tries again every {}s",
                            RUNTIME_RETRY.as_secs()
                        );
                        self.fail(&message, "runtime-unavailable").await;
                    }
                    if self.sleep_or_shutdown(RUNTIME_RETRY).await {
                        break;
                    }
                }
                Ending::Fatal(reason) if self.instance.is_some() => {
                    return self.instance_failed(&reason).await
                }
                Ending::Fatal(reason) => {
                    self.fail(&reason, "failed").await;
                    return self.idle_until_shutdown().await;
                }
                Ending::Crashed {
                    reason,
                    was_healthy,
                } => {
                    consecutive_crashes = if was_healthy {
                        1
                    } else {
                        consecutive_crashes + 1
                    };
                    if consecutive_crashes > self.context.fleet.max_restarts {
                        let message = format!(
                            "stopped restarting after {consecutive_crashes} failures in a row; the last: {reason}"
                        );
                        if self.instance.is_some() {
                            return self.instance_failed(&message).await;
                        }
                        self.fail(&message, "gave-up").await;
                        return self.idle_until_shutdown().await;
                    }
                    let backoff = backoff(consecutive_crashes);
                    self.event(
                        None,
                        "restarting",
                        &format!("{reason}; restarting in {}s", backoff.as_secs()),
                    )
                    .await;
                    logged(
                        self.context
                            .store
                            .record_restart(self.name(), &reason)
                            .await,
                    );
                    if self.sleep_or_shutdown(backoff).await {
                        break;
                    }
                }
            }
        }
    }

    /// Builds the environment and the launch spec, the installer's output going to
    /// `build_log`. `keep_previous_image`: a container app whose build fails starts on its
    /// latest image instead (at start-up; a deploy's failed build fails the deploy).
    /// Errors are the user-facing reason.
    async fn prepare(
        &self,
        build_log: &Path,
        keep_previous_image: bool,
    ) -> Result<(LaunchSpec, Option<PythonEnv>), String> {
        let app = &self.app;
        logged(
            self.context
                .store
                .set_app_framework(self.name(), app.detected.framework)
                .await,
        );
        let app_logs = self.context.logs_dir.join(self.name());
        std::fs::create_dir_all(&app_logs)
            .map_err(|e| format!("cannot create {}: {e}", app_logs.display()))?;
        if app.spec.runtime == RuntimeKind::Docker {
            return self
                .prepare_image(build_log, keep_previous_image)
                .await
                .map(|launch| (launch, None));
        }
        let runners = portico_build::install_runners(&self.context.runners_dir)
            .map_err(|e| format!("cannot write Portico's runner scripts: {e}"))?;
        let python = if app.detected.framework.is_python() {
            let requirements = EnvBuilder::requirements_text(
                app.detected.framework,
                app.detected.requirements.as_deref(),
            )
            .map_err(|e| e.to_string())?;
            let started = Instant::now();
            let env = self
                .context
                .envs
                .ensure(&requirements, &app.spec.source, build_log)
                .await
                .map_err(|e| e.to_string())?;
            self.event(
                None,
                "environment",
                &format!(
                    "Python environment {} ready in {:.1}s",
                    env.digest,
                    started.elapsed().as_secs_f64()
                ),
            )
            .await;
            Some(env)
        } else {
            None
        };
        let hosts = self.context.urls.app_hosts(self.name());
        Ok((
            launch_spec(
                Place::Host,
                &app.spec,
                &app.detected,
                python.as_ref(),
                &hosts,
                &runners,
            ),
            python,
        ))
    }

    /// The image a container app runs: its own, or one built from its folder. A build that
    /// fails leaves the app on the image of its latest release, when there is one.
    async fn prepare_image(
        &self,
        build_log: &Path,
        keep_previous_image: bool,
    ) -> Result<LaunchSpec, String> {
        let spec = &self.app.spec;
        if let Some(image) = &spec.image {
            return Ok(portico_build::image_launch(spec, image));
        }
        let started = Instant::now();
        let built = match self
            .context
            .images
            .build(spec, &self.app.detected, build_log)
            .await
        {
            Ok(built) => {
                let message = format!(
                    "image {} ready in {:.1}s",
                    built.tag,
                    started.elapsed().as_secs_f64()
                );
                self.event(None, "image", &message).await;
                built
            }
            Err(e) if !keep_previous_image => return Err(e.to_string()),
            Err(e) => {
                let previous = self.previous_image().await.ok_or_else(|| e.to_string())?;
                let message = format!(
                    "{e}\nStill serving the latest release's image {}; the build log is {}",
                    previous.tag,
                    build_log.display()
                );
                self.event(None, "build-failed", &message).await;
                previous
            }
        };
        Ok(self.image_launch_spec(&built))
    }

    /// How a built image starts: with its own command (the app's Dockerfile), or with the
    /// framework's command inside Portico's template.
    fn image_launch_spec(&self, built: &portico_build::BuiltImage) -> LaunchSpec {
        let spec = &self.app.spec;
        if built.own_dockerfile {
            return portico_build::image_launch(spec, &built.tag);
        }
        let venv = PythonEnv {
            dir: PathBuf::from("/opt/venv"),
            digest: String::new(),
        };
        let python = self.app.detected.framework.is_python().then_some(&venv);
        let hosts = self.context.urls.app_hosts(self.name());
        let mut launch = launch_spec(
            Place::Container,
            spec,
            &self.app.detected,
            python,
            &hosts,
            Path::new("/opt/portico"),
        );
        launch.image = Some(built.tag.clone());
        launch
    }

    /// The image of the app's latest release, when it was built by Portico and is still on
    /// the daemon.
    async fn previous_image(&self) -> Option<portico_build::BuiltImage> {
        let environment = self
            .context
            .store
            .latest_environment(self.name())
            .await
            .ok()??;
        let tag = environment.strip_prefix("image ")?;
        let own_dockerfile = self.app.spec.source.join(DOCKERFILE).is_file();
        self.context
            .images
            .exists(tag)
            .await
            .then(|| portico_build::BuiltImage {
                tag: tag.to_owned(),
                own_dockerfile,
            })
    }

    async fn record_release(
        &self,
        launch: &(LaunchSpec, Option<PythonEnv>),
    ) -> Result<i64, String> {
        self.context
            .store
            .release_for(
                self.name(),
                self.app.detected.framework,
                &self.app.detected.entrypoint,
                &environment_label(launch),
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Takes over the replicas an earlier run left serving: those of the current release
    /// that are still the processes recorded (the runtime checks) are adopted; those of an
    /// earlier release are stopped (the app changed while Portico was down); the rest are
    /// recorded as lost.
    async fn adopt_inherited(&self, inherited: Vec<ReplicaRow>, release: i64) -> Vec<Adopted> {
        let mut adopted = Vec::new();
        for row in inherited {
            let taken = match adoptable(&row) {
                Some(_) if row.runtime != self.runtime().name() => {
                    Err(format!("it ran under the {} runtime", row.runtime))
                }
                Some(candidate) => self.runtime().adopt(&candidate).await,
                None => Err("no address was recorded for it".into()),
            };
            match taken {
                Ok(replica) if row.release_id == release => {
                    let message = format!(
                        "replica {} (pid {}) adopted on {} after Portico restarted",
                        replica.id,
                        replica.pid.unwrap_or_default(),
                        replica.endpoint
                    );
                    self.event(Some(&replica.id), "adopted", &message).await;
                    adopted.push(Adopted {
                        replica,
                        owner: row.owner.clone(),
                    });
                }
                Ok(replica) => {
                    self.stop_replica(&replica).await;
                    let message = format!(
                        "replica {} ran an earlier release of the app, changed while Portico was down; stopped",
                        replica.id
                    );
                    self.event(Some(&replica.id), "replaced", &message).await;
                }
                Err(reason) => {
                    let reason = format!("could not be adopted after Portico restarted: {reason}");
                    logged(
                        self.context
                            .store
                            .set_replica_state(&row.id, ReplicaState::Exited, Some(&reason))
                            .await,
                    );
                    self.event(
                        Some(&row.id),
                        "lost",
                        &format!("replica {} {reason}", row.id),
                    )
                    .await;
                }
            }
        }
        adopted
    }

    /// Starts a new replica and records it.
    async fn start_replica(
        &mut self,
        launch: &LaunchSpec,
        release: i64,
    ) -> Result<Replica, Ending> {
        let id = format!("{}-{:06x}", self.name(), rand::random::<u32>() & 0xff_ffff);
        if let Ok(mut current) = self.slot_replica.lock() {
            *current = Some(id.clone());
        }
        let spec = ReplicaSpec {
            id: id.clone(),
            app: self.name().to_owned(),
            release,
            launch: launch.clone(),
            log_path: self
                .context
                .logs_dir
                .join(self.name())
                .join(format!("{id}.log")),
            instance: self.instance.as_ref().map(|i| i.spec.clone()),
            container: self.app.spec.container.clone(),
            volumes: crate::storage::replica_volumes(
                self.name(),
                &self.app.spec.volumes,
                self.instance.as_ref().map(|i| i.owner.id),
                &self.context.data_dir,
            ),
        };
        let replica = match self.runtime().start(&spec).await {
            Ok(replica) => replica,
            Err(StartError::ProgramMissing { program }) => {
                let hint = if self.app.detected.framework == Framework::RShiny {
                    "; install R and Shiny (Debian: apt-get install r-base-core r-cran-shiny)"
                } else {
                    ""
                };
                return Err(Ending::Fatal(format!(
                    "`{program}` was not found on the PATH{hint}"
                )));
            }
            Err(StartError::Unavailable(reason)) => return Err(Ending::Unavailable(reason)),
            Err(e) => {
                return Err(Ending::Crashed {
                    reason: e.to_string(),
                    was_healthy: false,
                })
            }
        };
        logged(
            self.context
                .store
                .insert_replica(&ReplicaRow {
                    id: id.clone(),
                    app: self.name().to_owned(),
                    release_id: release,
                    runtime: self.runtime().name().to_owned(),
                    pid: replica.pid,
                    endpoint: Some(replica.endpoint.to_string()),
                    state: ReplicaState::Starting,
                    exit_reason: None,
                    log_path: spec.log_path.to_string_lossy().into_owned(),
                    started_at: portico_store::timestamp(),
                    owner: self.instance.as_ref().map(|i| i.owner.clone()),
                })
                .await,
        );
        let whose = match &self.instance {
            Some(instance) => format!(" for {}", instance.owner.email),
            None => String::new(),
        };
        self.event(
            Some(&id),
            "started",
            &format!("replica {id}{whose} started on {}", replica.endpoint),
        )
        .await;

        Ok(replica)
    }

    /// Starts one replica (or takes over one adopted from an earlier run) and follows it
    /// until it ends.
    async fn run_replica(
        &mut self,
        launch: &LaunchSpec,
        release: i64,
        adopted: Option<Replica>,
    ) -> Ending {
        let replica = match adopted {
            Some(replica) => {
                if let Ok(mut current) = self.slot_replica.lock() {
                    *current = Some(replica.id.clone());
                }
                replica
            }
            None => match self.start_replica(launch, release).await {
                Ok(replica) => replica,
                Err(ending) => return ending,
            },
        };
        let id = replica.id.clone();

        match self.wait_ready(&replica, &launch.health_path).await {
            Readiness::Ready => {}
            Readiness::Exited(exit) => {
                return self.crashed(&replica, &exit.description, false).await
            }
            Readiness::TimedOut => {
                let reason = format!(
                    "did not answer on {} within {}s",
                    launch.health_path,
                    self.context.fleet.start_timeout.as_secs()
                );
                return self.crashed(&replica, &reason, false).await;
            }
            Readiness::Shutdown => return self.stop_replica(&replica).await,
        }

        let ready_at = Instant::now();
        logged(
            self.context
                .store
                .set_replica_state(&id, ReplicaState::Ready, None)
                .await,
        );
        let mut endpoint = Endpoint::new(&id, replica.endpoint);
        endpoint.owner = self.instance.as_ref().map(|i| i.owner.id);
        endpoint.release = release;
        self.add_endpoint(endpoint);
        if let Some(first) = &self.first_ready {
            first.report(Ok(()));
        }
        logged(
            self.context
                .store
                .set_app_status(self.name(), &AppStatus::Running)
                .await,
        );
        self.event(Some(&id), "ready", &format!("replica {id} is ready"))
            .await;

        let reason = match self.serve(&replica, &launch.health_path).await {
            Served::Shutdown if self.context.leaving.load(Ordering::Relaxed) => {
                return self.leave_running(&replica).await
            }
            Served::Shutdown => return self.stop_replica(&replica).await,
            Served::Exited(exit) => exit.description,
            Served::Unhealthy(reason) => {
                self.event(Some(&id), "unhealthy", &format!("replica {id} {reason}"))
                    .await;
                reason
            }
        };
        self.crashed(&replica, &reason, ready_at.elapsed() >= HEALTHY_AFTER)
            .await
    }

    /// While the replica serves: its liveness, probed every `probe_interval` on its health
    /// path. A replica that misses `probe_failures` probes in a row is hung (or wedged in a
    /// computation longer than an operator allows) and is replaced.
    async fn serve(&mut self, replica: &Replica, path: &str) -> Served {
        let fleet = &self.context.fleet;
        let timeout = fleet.probe_interval.min(PROBE_TIMEOUT);
        let mut exited = replica.exited.clone();
        let mut failures = 0;
        loop {
            tokio::select! {
                exit = exited.wait_for(Option::is_some) => {
                    let exit = exit.ok().and_then(|e| e.clone());
                    return Served::Exited(exit.unwrap_or(Exit { description: "exited".into() }));
                }
                _ = self.stop.wait_for(|stop| *stop) => return Served::Shutdown,
                _ = tokio::time::sleep(fleet.probe_interval) => {}
            }
            if self
                .context
                .prober
                .ready(replica.endpoint, path, timeout)
                .await
            {
                failures = 0;
                continue;
            }
            failures += 1;
            if failures >= fleet.probe_failures {
                return Served::Unhealthy(format!(
                    "stopped answering on {path}: {failures} health checks in a row got no answer within {}s",
                    timeout.as_secs()
                ));
            }
        }
    }

    async fn wait_ready(&mut self, replica: &Replica, path: &str) -> Readiness {
        let deadline = Instant::now() + self.context.fleet.start_timeout;
        let mut interval = Duration::from_millis(100);
        let mut exited = replica.exited.clone();
        loop {
            if let Some(exit) = exited.borrow().clone() {
                return Readiness::Exited(exit);
            }
            if Instant::now() >= deadline {
                return Readiness::TimedOut;
            }
            if self
                .context
                .prober
                .ready(replica.endpoint, path, Duration::from_secs(2))
                .await
            {
                return Readiness::Ready;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = exited.wait_for(Option::is_some) => {}
                _ = self.stop.wait_for(|stop| *stop) => return Readiness::Shutdown,
            }
            interval = (interval * 2).min(Duration::from_secs(1));
        }
    }

    async fn crashed(&self, replica: &Replica, reason: &str, was_healthy: bool) -> Ending {
        self.remove_endpoint(&replica.id);
        logged(
            self.context
                .store
                .set_replica_state(&replica.id, ReplicaState::Exited, Some(reason))
                .await,
        );
        let tail = self.runtime().log_tail(&replica.id, FAILURE_LOG_LINES);
        // Returns at once for a replica that exited; stops one that never became ready.
        self.runtime()
            .stop(&replica.id, self.context.fleet.stop_grace)
            .await;
        self.event(
            Some(&replica.id),
            "exited",
            &format!("replica {} {reason}", replica.id),
        )
        .await;
        let reason = if tail.is_empty() || was_healthy {
            reason.to_owned()
        } else {
            format!("{reason}\nIts last output:\n{}", tail.join("\n"))
        };
        Ending::Crashed {
            reason,
            was_healthy,
        }
    }

    /// Portico exits with `fleet.keep_replicas_on_exit`: the replica keeps serving (its row
    /// stays `ready`) for the next start to adopt.
    async fn leave_running(&self, replica: &Replica) -> Ending {
        self.remove_endpoint(&replica.id);
        let message = format!(
            "replica {} left running for the next start of Portico",
            replica.id
        );
        self.event(Some(&replica.id), "kept", &message).await;
        Ending::Shutdown
    }

    async fn stop_replica(&self, replica: &Replica) -> Ending {
        self.remove_endpoint(&replica.id);
        logged(
            self.context
                .store
                .set_replica_state(&replica.id, ReplicaState::Stopping, None)
                .await,
        );
        self.runtime()
            .stop(&replica.id, self.context.fleet.stop_grace)
            .await;
        logged(
            self.context
                .store
                .set_replica_state(&replica.id, ReplicaState::Stopped, None)
                .await,
        );
        self.event(
            Some(&replica.id),
            "stopped",
            &format!("replica {} stopped", replica.id),
        )
        .await;
        Ending::Shutdown
    }

    /// Marks the app failed, unless other replicas of it are still serving (then the
    /// failure is an event, and the app stays up on the others).
    async fn fail(&self, reason: &str, kind: &str) {
        tracing::error!(app = %self.name(), "{reason}");
        if self.ready_replicas() == 0 {
            self.set_status(AppStatus::Failed(reason.to_owned()), Some(kind))
                .await;
        } else {
            self.event(None, kind, reason).await;
        }
    }

    async fn set_status(&self, status: AppStatus, event_kind: Option<&str>) {
        if let (Some(kind), AppStatus::Failed(reason)) = (event_kind, &status) {
            self.event(None, kind, reason).await;
        }
        logged(
            self.context
                .store
                .set_app_status(self.name(), &status)
                .await,
        );
        update_app(&self.context.routes, self.name(), |route| {
            route.status = status.clone();
        });
        self.demand().changed();
    }

    /// The app's status as the route table has it.
    fn route_status(&self) -> Option<AppStatus> {
        let table = self.context.routes.load();
        table.get(self.name()).map(|route| route.status.clone())
    }

    fn ready_replicas(&self) -> usize {
        let table = self.context.routes.load();
        table
            .get(self.name())
            .map_or(0, |route| route.endpoints.len())
    }

    /// Puts a ready replica into the route: from now on the edge sends it traffic.
    fn add_endpoint(&self, mut endpoint: Endpoint) {
        endpoint.mount = self.app_mount();
        update_app(&self.context.routes, self.name(), |route| {
            let mut endpoints: Vec<Endpoint> = route
                .endpoints
                .iter()
                .filter(|e| e.replica != endpoint.replica)
                .cloned()
                .collect();
            endpoints.push(endpoint.clone());
            route.endpoints = endpoints.into();
            route.status = AppStatus::Running;
            route.framework = Some(self.app.detected.framework);
        });
        self.demand().changed();
        gauge(self.name(), self.ready_replicas());
    }

    /// Takes a replica out of the route; the app is starting again when none is left.
    fn remove_endpoint(&self, replica: &str) {
        update_app(&self.context.routes, self.name(), |route| {
            let endpoints: Vec<Endpoint> = route
                .endpoints
                .iter()
                .filter(|e| &*e.replica != replica)
                .cloned()
                .collect();
            if endpoints.is_empty() && route.status == AppStatus::Running {
                route.status = AppStatus::Starting;
            }
            route.endpoints = endpoints.into();
        });
        gauge(self.name(), self.ready_replicas());
    }

    fn app_mount(&self) -> portico_core::MountStyle {
        // A property of the framework, fixed for the app's life.
        portico_build::mount_style(self.app.detected.framework)
    }

    async fn event(&self, replica: Option<&str>, kind: &str, message: &str) {
        tracing::info!(app = %self.name(), replica, kind, "{message}");
        logged(
            self.context
                .store
                .add_event(self.name(), replica, kind, message)
                .await,
        );
    }

    /// After a fatal failure: keep the task (and the app's failed status) until shutdown.
    async fn idle_until_shutdown(mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    /// Sleeps, returning `true` early if Portico is shutting down.
    async fn sleep_or_shutdown(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => false,
            _ = self.stop.wait_for(|stop| *stop) => true,
        }
    }
}

/// How a serving replica's service ended.
enum Served {
    Shutdown,
    Exited(Exit),
    Unhealthy(String),
}

enum Readiness {
    Ready,
    Exited(Exit),
    TimedOut,
    Shutdown,
}

/// What a release's build made, as the store records it: the Python environment's digest,
/// `image <tag>`, or `system` (R, a command).
fn environment_label(launch: &(LaunchSpec, Option<PythonEnv>)) -> String {
    match (&launch.1, &launch.0.image) {
        (Some(env), _) => env.digest.clone(),
        (None, Some(image)) => format!("image {image}"),
        (None, None) => "system".to_owned(),
    }
}

/// 1s, 2s, 4s, … up to 30s.
fn backoff(consecutive_crashes: u32) -> Duration {
    let exponent = consecutive_crashes.saturating_sub(1).min(5);
    (Duration::from_secs(1) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

/// Store writes never stop supervision (the app keeps running if the disk is full), but an
/// operator must hear about them.
fn logged<T>(result: portico_store::Result<T>) {
    if let Err(e) = result {
        tracing::warn!("could not record in the database: {e}");
    }
}

fn replicas(count: usize) -> String {
    match count {
        1 => "1 replica".into(),
        n => format!("{n} replicas"),
    }
}

fn gauge(app: &str, ready: usize) {
    metrics::gauge!("portico_replicas", "app" => app.to_owned(), "state" => "ready")
        .set(ready as f64);
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(1), Duration::from_secs(1));
    }
}
