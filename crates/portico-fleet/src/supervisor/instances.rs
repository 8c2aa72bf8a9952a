//! Per-user apps (`mode = "per-user"`): one private instance per person, started when
//! their first request waits for it, stopped when it has been idle for the idle timeout.
//! The person's home (a volume: `<data dir>/homes/<user id>` for the process runtime)
//! outlives every instance.

use super::rollout::{Release, Rollouts};
use super::{Adopted, OwnedInstance, Slot, Supervisor, SCALE_TICK};
use crate::deploy::Rollout;
use crate::runtime::InstanceSpec;
use portico_build::LaunchSpec;
use portico_core::routes::RECENT_WINDOWS;
use portico_core::{AppStatus, PerUserSpec, User};
use portico_store::InstanceOwner;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

/// One person's instance as the app's supervisor holds it.
struct Running {
    slot: Slot,
    email: String,
    /// Not culled before it had an idle timeout's chance to be used.
    since: Instant,
}

impl Supervisor {
    /// Runs the app's private instances until shutdown: starts one for each person whose
    /// request waits (within the limits), culls idle ones, and forgets those that ended.
    /// A deployed release goes live once built: new instances start on it.
    pub(super) async fn serve_owners(
        &self,
        release: Release,
        rules: &PerUserSpec,
        adopted: Vec<Adopted>,
        deploys: &mut tokio::sync::mpsc::Receiver<Rollout>,
    ) {
        let mut serving = release;
        let (mut rollout, mut built) = Rollouts::new();
        let demand = self.demand();
        let mut running: HashMap<i64, Running> = HashMap::new();
        for Adopted { replica, owner } in adopted {
            match owner {
                Some(owner) if !running.contains_key(&owner.id) => {
                    self.context.slots.fetch_add(1, Ordering::Relaxed);
                    self.count_instance(owner.id, 1);
                    let instance = OwnedInstance {
                        spec: InstanceSpec {
                            owner: owner.email.clone(),
                            cpus: None,
                            memory_mb: None,
                        },
                        owner: owner.clone(),
                    };
                    let slot = serving.sup.spawn_owned_slot(
                        &serving.launch,
                        serving.id,
                        instance,
                        Some(replica),
                    );
                    running.insert(
                        owner.id,
                        Running {
                            slot,
                            email: owner.email,
                            since: Instant::now(),
                        },
                    );
                }
                // Shared before (the app changed mode while Portico was down), or a second
                // instance of one person.
                _ => {
                    self.stop_replica(&replica).await;
                }
            }
        }
        if running.is_empty() {
            self.set_status(AppStatus::Sleeping, None).await;
        }
        let mut retired = JoinSet::new();
        let mut stop = self.stop.clone();
        let mut tick = tokio::time::interval(SCALE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut window_started = Instant::now();
        loop {
            let mut finished = None;
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = tick.tick() => {}
                _ = demand.wanted() => {}
                Some(next) = deploys.recv(), if rollout.is_idle() => {
                    self.begin_build(next, &mut rollout);
                }
                Some(done) = built.recv() => finished = Some(done),
            }
            // Awaited outside `select!`, whose branch outputs (a watch guard) are not Send.
            if let Some(done) = finished {
                Supervisor::settle_build(&mut rollout);
                if let Some(release) = self.instance_release_built(done).await {
                    serving = release;
                }
            }
            if window_started.elapsed() >= rules.idle_timeout / RECENT_WINDOWS as u32 {
                self.forget_oldest_clients();
                window_started = Instant::now();
            }
            // Instances whose slot ended by itself (it could not start and gave up).
            let ended: Vec<i64> = running
                .iter()
                .filter(|(_, r)| r.slot.task.is_finished())
                .map(|(owner, _)| *owner)
                .collect();
            for owner in ended {
                running.remove(&owner);
                self.release_instance(owner);
            }
            for user in demand.wanted_owners() {
                if running.contains_key(&user.id) {
                    continue;
                }
                match self.admit(&user, rules, running.len()) {
                    Ok(instance) => {
                        let slot = serving.sup.spawn_owned_slot(
                            &serving.launch,
                            serving.id,
                            instance,
                            None,
                        );
                        running.insert(
                            user.id,
                            Running {
                                slot,
                                email: user.email.clone(),
                                since: Instant::now(),
                            },
                        );
                    }
                    Err(reason) => {
                        self.event(None, "refused", &format!("{}: {reason}", user.email))
                            .await;
                        demand.refuse(user.id, &reason);
                    }
                }
            }
            for owner in self.idle_instances(&running, rules) {
                let Some(instance) = running.remove(&owner) else {
                    continue;
                };
                // Out of the route first: a request arriving now starts a new instance
                // instead of reaching one on its way out.
                if let Some(id) = instance.slot.replica.lock().ok().and_then(|r| r.clone()) {
                    self.remove_endpoint(&id);
                }
                let _ = instance.slot.stop.send(true);
                retired.spawn(instance.slot.task);
                self.release_instance(owner);
                let message = format!(
                    "culled {}'s instance: unused for {}s; their home folder stays",
                    instance.email,
                    rules.idle_timeout.as_secs()
                );
                self.event(None, "culled", &message).await;
            }
            if running.is_empty() && self.route_status() != Some(AppStatus::Sleeping) {
                self.set_status(AppStatus::Sleeping, None).await;
            }
            while retired.try_join_next().is_some() {}
        }
        // A build in progress fails; per-user rollouts start no slots of their own.
        let _ = self.end_rollouts(&mut rollout).await;
        for instance in running.values() {
            let _ = instance.slot.stop.send(true);
        }
        for (owner, instance) in running {
            let _ = instance.slot.task.await;
            self.release_instance(owner);
        }
        while retired.join_next().await.is_some() {}
    }

    /// Whether `user` may have an instance now, and with which size and home; `Err` says
    /// why not, in words for them.
    fn admit(
        &self,
        user: &User,
        rules: &PerUserSpec,
        instances: usize,
    ) -> Result<OwnedInstance, String> {
        let Ok(profile) = rules.profile_for(&user.groups) else {
            let names: Vec<&str> = rules.profiles.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "none of its size profiles ({}) is for your groups; an administrator can add you to one",
                names.join(", ")
            ));
        };
        if instances >= rules.max_instances as usize {
            return Err(format!(
                "all {} of its instances are in use (per_user.max_instances); try again when someone has finished",
                rules.max_instances
            ));
        }
        let per_user = self.context.fleet.max_instances_per_user;
        let mut counts = self
            .context
            .instances_per_user
            .lock()
            .map_err(|_| "Portico's instance count is unavailable".to_owned())?;
        let yours = counts.entry(user.id).or_default();
        if *yours >= per_user {
            return Err(format!(
                "you already run {yours} private instances, the most one person may (fleet.max_instances_per_user); leave one unused and it stops after its idle timeout"
            ));
        }
        if self.within_global_cap(0, 1) == 0 {
            return Err(format!(
                "Portico already runs {} replicas, the most it may (fleet.max_replicas)",
                self.context.fleet.max_replicas
            ));
        }
        *yours += 1;
        Ok(OwnedInstance {
            owner: InstanceOwner {
                id: user.id,
                email: user.email.clone(),
            },
            spec: InstanceSpec {
                owner: user.email.clone(),
                cpus: profile.and_then(|p| p.cpus),
                memory_mb: profile.and_then(|p| p.memory_mb),
            },
        })
    }

    /// Starts the slot that keeps `instance` running. The caller has counted it in the
    /// global and per-person counts.
    fn spawn_owned_slot(
        &self,
        launch: &LaunchSpec,
        release: i64,
        instance: OwnedInstance,
        adopted: Option<crate::runtime::Replica>,
    ) -> Slot {
        let mut owned = self.clone();
        owned.instance = Some(Arc::new(instance));
        owned.spawn_slot(launch, release, adopted, None)
    }

    /// Frees an ended instance's places in the global and per-person counts.
    fn release_instance(&self, owner: i64) {
        self.context.slots.fetch_sub(1, Ordering::Relaxed);
        self.count_instance(owner, -1);
    }

    fn count_instance(&self, owner: i64, change: i32) {
        if let Ok(mut counts) = self.context.instances_per_user.lock() {
            let count = counts.entry(owner).or_default();
            *count = count.saturating_add_signed(change);
            if *count == 0 {
                counts.remove(&owner);
            }
        }
    }

    /// Owners whose ready instance served no request and held no WebSocket within the
    /// idle timeout (and has been up at least that long).
    fn idle_instances(&self, running: &HashMap<i64, Running>, rules: &PerUserSpec) -> Vec<i64> {
        let table = self.context.routes.load();
        let Some(route) = table.get(self.name()) else {
            return Vec::new();
        };
        running
            .iter()
            .filter(|(_, r)| r.since.elapsed() >= rules.idle_timeout)
            .filter(|(owner, _)| {
                route
                    .instance_of(**owner)
                    .is_some_and(|e| e.load.total() == 0 && !e.load.recent.active())
            })
            .map(|(owner, _)| *owner)
            .collect()
    }

    /// A person's instance could not be started or kept running: their waiting requests
    /// are told why, and the slot ends (their next visit tries again). The app stays up for
    /// everyone else.
    pub(super) async fn instance_failed(&self, reason: &str) {
        let Some(instance) = &self.instance else {
            return;
        };
        let message = format!("{}'s instance failed: {reason}", instance.owner.email);
        tracing::error!(app = %self.name(), "{message}");
        self.event(None, "failed", &message).await;
        let first_line = reason.lines().next().unwrap_or(reason);
        self.demand().refuse(
            instance.owner.id,
            &format!("your instance could not start: {first_line}"),
        );
    }
}
