//! The route table: what the request path knows about each app. The fleet publishes a new
//! immutable snapshot whenever a replica becomes ready or goes away; the edge reads the
//! current snapshot without locks or database round-trips.

use crate::model::{AppStatus, Framework, MountStyle, User};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One app as the edge and the portal see it.
#[derive(Debug, Clone)]
pub struct AppRoute {
    pub name: Arc<str>,
    pub title: Arc<str>,
    pub description: Arc<str>,
    pub framework: Option<Framework>,
    pub status: AppStatus,
    /// Ready replicas; empty while none is ready. During a rollout it holds the replicas of
    /// more than one release: new sessions go only to [`AppRoute::current_release`]'s, and
    /// a session stuck to another release's replica stays there while it drains.
    pub endpoints: Arc<[Endpoint]>,
    /// The release new sessions are sent to (`0` before the first is known: any).
    pub current_release: i64,
    /// Who may open it.
    pub access: Arc<crate::access::Access>,
    /// Who may deploy it besides admins.
    pub owners: Arc<crate::config::Owners>,
    /// Which addresses may reach it.
    pub firewall: Arc<crate::IpRules>,
    /// Largest request body accepted for it.
    pub max_body_bytes: u64,
    /// `Content-Security-Policy: frame-ancestors …` added to its responses (who may frame
    /// it), shared so that adding it copies nothing; `None`: anyone may.
    pub frame_policy: Option<bytes::Bytes>,
    /// Requests waiting for a replica, shared by every snapshot of the app's route (a reload
    /// that keeps the app keeps it).
    pub demand: Arc<Demand>,
    /// How long a request waits for a replica of a sleeping or starting app.
    pub start_wait: std::time::Duration,
    /// `mode = "per-user"`: each endpoint belongs to one person, and only they reach it.
    pub per_user: bool,
    /// Per-user apps with `per_user.admin_access`: administrators may open anyone's.
    pub admin_access: bool,
}

impl AppRoute {
    /// The endpoint of `owner`'s private instance (per-user apps).
    pub fn instance_of(&self, owner: i64) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.owner == Some(owner))
    }
}

/// Where the edge and the app's supervisor meet while no replica is ready: requests that
/// find none wait here, and their arrival wakes a sleeping app at once (no polling on either
/// side).
#[derive(Debug, Default)]
pub struct Demand {
    waiting: AtomicUsize,
    wanted: Notify,
    ready: Notify,
    /// Per-user apps: whose instance the waiting requests want. Touched only by requests
    /// that found no instance of their owner, never on the path to a running one.
    owners: Mutex<HashMap<i64, OwnerWait>>,
}

/// Requests of one person waiting for their instance.
#[derive(Debug)]
struct OwnerWait {
    user: Arc<User>,
    waiting: usize,
    /// Whether the supervisor has read this wish since the last request arrived. A page
    /// load answered at once with the waiting page must still start the instance, so an
    /// entry stays until it has been seen, even after its requests have gone.
    seen: bool,
    /// Why their instance cannot start (a limit, no size profile for them), and when that
    /// was decided: said to each of their requests for [`REFUSAL_KEPT`] (so that the
    /// waiting page's reload shows it), after which a visit asks again.
    refused: Option<(Arc<str>, std::time::Instant)>,
}

/// How long a refusal answers a person's requests before their next visit asks again.
pub const REFUSAL_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

impl OwnerWait {
    fn refused_now(&self) -> bool {
        self.refused
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < REFUSAL_KEPT)
    }
}

impl Demand {
    /// Counts a request as waiting until the guard is dropped, and tells the supervisor.
    pub fn wait(self: &Arc<Self>) -> WaitGuard {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.wanted.notify_one();
        WaitGuard {
            demand: self.clone(),
            owner: None,
        }
    }

    /// Like [`Demand::wait`], for a request of `user` waiting for their own instance.
    pub fn wait_as(self: &Arc<Self>, user: &Arc<User>) -> WaitGuard {
        if let Ok(mut owners) = self.owners.lock() {
            owners
                .entry(user.id)
                .and_modify(|wait| {
                    if !wait.refused_now() {
                        wait.refused = None;
                        wait.seen = false;
                    }
                })
                .or_insert_with(|| OwnerWait {
                    user: user.clone(),
                    waiting: 0,
                    seen: false,
                    refused: None,
                })
                .waiting += 1;
        }
        let mut guard = self.wait();
        guard.owner = Some(user.id);
        guard
    }

    /// The people who asked for their instance since the last call, or still wait for it,
    /// and have not been refused.
    pub fn wanted_owners(&self) -> Vec<Arc<User>> {
        let Ok(mut owners) = self.owners.lock() else {
            return Vec::new();
        };
        let wanted = owners
            .values_mut()
            .filter(|w| w.refused.is_none())
            .map(|w| {
                w.seen = true;
                w.user.clone()
            })
            .collect();
        owners.retain(|_, w| w.waiting > 0 || w.refused_now());
        wanted
    }

    /// Tells `owner`'s requests that their instance will not start, and why.
    pub fn refuse(&self, owner: i64, reason: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            if let Some(wait) = owners.get_mut(&owner) {
                wait.refused = Some((reason.into(), std::time::Instant::now()));
            }
        }
        self.changed();
    }

    /// Why `owner`'s instance will not start, if it was refused lately.
    pub fn refusal(&self, owner: i64) -> Option<Arc<str>> {
        let owners = self.owners.lock().ok()?;
        let wait = owners.get(&owner)?;
        wait.refused_now()
            .then(|| wait.refused.as_ref().map(|(reason, _)| reason.clone()))
            .flatten()
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Resolves when a request starts waiting (or has since the last call).
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// A future that resolves at the next [`Demand::changed`]. Enabled at once, so that a
    /// change between creating it and checking the route table is not missed.
    pub fn next_change(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut notified = Box::pin(self.ready.notified());
        notified.as_mut().enable();
        notified
    }

    /// The app gained a ready replica or its status changed: waiting requests look again.
    pub fn changed(&self) {
        self.ready.notify_waiters();
    }
}

/// One request waiting for a replica (see [`Demand::wait`]).
#[derive(Debug)]
pub struct WaitGuard {
    demand: Arc<Demand>,
    owner: Option<i64>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.demand.waiting.fetch_sub(1, Ordering::Relaxed);
        if let (Some(owner), Ok(mut owners)) = (self.owner, self.demand.owners.lock()) {
            if let Some(wait) = owners.get_mut(&owner) {
                wait.waiting -= 1;
                if wait.waiting == 0 && wait.seen && wait.refused.is_none() {
                    owners.remove(&owner);
                }
            }
        }
    }
}

/// A ready replica as the edge sees it. Its load is shared by every snapshot of the table,
/// so counting it never writes the table.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub replica: Arc<str>,
    pub addr: SocketAddr,
    pub load: Arc<ReplicaLoad>,
    /// Per-user apps: the id of the person whose private instance this is.
    pub owner: Option<i64>,
    /// The release the replica runs.
    pub release: i64,
    /// How it expects paths (its release's framework decides; a deploy may change it, and
    /// a draining replica keeps its own).
    pub mount: MountStyle,
}

impl Endpoint {
    pub fn new(replica: &str, addr: SocketAddr) -> Endpoint {
        Endpoint {
            replica: replica.into(),
            addr,
            load: Arc::default(),
            owner: None,
            release: 0,
            mount: MountStyle::Root,
        }
    }

    /// Whether new sessions may be sent to it: it runs the app's current release.
    pub fn takes_new_sessions(&self, route: &AppRoute) -> bool {
        route.current_release == 0 || self.release == route.current_release
    }

    /// Nobody is on it: no request in flight, no WebSocket open, and no client seen within
    /// the app's idle timeout (the autoscaler's definition of a session having ended).
    pub fn is_idle(&self) -> bool {
        self.load.total() == 0 && !self.load.recent.active()
    }
}

/// What a replica is doing right now, counted by the edge: the balancer sends new sessions
/// to the least loaded replica, and the autoscaler reads the sessions.
#[derive(Debug, Default)]
pub struct ReplicaLoad {
    /// Requests being forwarded (until their response headers arrive).
    pub in_flight: AtomicUsize,
    /// Open WebSockets.
    pub websockets: AtomicUsize,
    /// Browsers (and other sticky clients) it served lately.
    pub recent: RecentClients,
}

impl ReplicaLoad {
    pub fn total(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) + self.websockets.load(Ordering::Relaxed)
    }

    /// Its sessions: open WebSockets or recently active clients, whichever is more. (A
    /// dashboard with a WebSocket is also a recent HTTP client for a while after its page
    /// loaded; taking the larger count does not count it twice.)
    pub fn sessions(&self) -> usize {
        self.websockets
            .load(Ordering::Relaxed)
            .max(self.recent.count())
    }
}

/// Time windows the idle timeout is divided into: a client is forgotten between 7/8 and all
/// of the idle timeout after its last request.
pub const RECENT_WINDOWS: usize = 8;
const RECENT_BITS: usize = 1024;
const RECENT_WORDS: usize = RECENT_BITS / 64;

/// Which clients a replica served within the idle timeout, counted without locks or
/// allocation on the request path: each window is a 1024-bit set that a request marks with
/// one atomic OR (client ids are random, so a bit is a fair hash), and the count is estimated
/// from the union's empty bits by linear counting (Whang et al., 1990), exact in practice
/// for tens of clients and within a few percent for thousands. The autoscaler moves to the
/// next window every `idle_timeout / RECENT_WINDOWS`, clearing the oldest.
#[derive(Debug, Default)]
pub struct RecentClients {
    current: AtomicUsize,
    windows: [RecentWindow; RECENT_WINDOWS],
}

#[derive(Debug, Default)]
struct RecentWindow {
    clients: [AtomicU64; RECENT_WORDS],
    /// Requests from clients without a sticky cookie (scripts): they keep the app awake
    /// but are not counted as sessions, since each of their requests would look new.
    anonymous: AtomicBool,
}

impl RecentClients {
    fn window(&self) -> &RecentWindow {
        &self.windows[self.current.load(Ordering::Relaxed) % RECENT_WINDOWS]
    }

    /// A request from the client with this id.
    pub fn touch(&self, client: u64) {
        let bit = (client % RECENT_BITS as u64) as usize;
        let word = &self.window().clients[bit / 64];
        let mask = 1u64 << (bit % 64);
        // Read first: a client's many requests then share the cache line instead of
        // writing it each time.
        if word.load(Ordering::Relaxed) & mask == 0 {
            word.fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// A request from a client without a sticky cookie.
    pub fn touch_anonymous(&self) {
        let flag = &self.window().anonymous;
        if !flag.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Starts the next window, forgetting what the oldest saw.
    pub fn advance(&self) {
        let next = (self.current.load(Ordering::Relaxed) + 1) % RECENT_WINDOWS;
        let window = &self.windows[next];
        for word in &window.clients {
            word.store(0, Ordering::Relaxed);
        }
        window.anonymous.store(false, Ordering::Relaxed);
        self.current.store(next, Ordering::Relaxed);
    }

    /// Estimated distinct clients over the windows.
    pub fn count(&self) -> usize {
        let ones: u32 = (0..RECENT_WORDS)
            .map(|i| {
                self.windows
                    .iter()
                    .fold(0u64, |union, w| {
                        union | w.clients[i].load(Ordering::Relaxed)
                    })
                    .count_ones()
            })
            .sum();
        let m = RECENT_BITS as f64;
        let zeros = (RECENT_BITS as u32 - ones).max(1) as f64;
        (-m * (zeros / m).ln()).round() as usize
    }

    /// Whether anyone, with or without a cookie, was served within the windows.
    pub fn active(&self) -> bool {
        self.windows.iter().any(|w| {
            w.anonymous.load(Ordering::Relaxed)
                || w.clients
                    .iter()
                    .any(|word| word.load(Ordering::Relaxed) != 0)
        })
    }
}

/// Counts one unit of load while alive (a request in flight, an open WebSocket).
#[derive(Debug)]
pub struct LoadGuard {
    load: Arc<ReplicaLoad>,
    websocket: bool,
}

impl LoadGuard {
    pub fn request(load: &Arc<ReplicaLoad>) -> LoadGuard {
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        LoadGuard {
            load: load.clone(),
            websocket: false,
        }
    }

    pub fn websocket(load: &Arc<ReplicaLoad>) -> LoadGuard {
        load.websockets.fetch_add(1, Ordering::Relaxed);
        LoadGuard {
            load: load.clone(),
            websocket: true,
        }
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let counter = if self.websocket {
            &self.load.websockets
        } else {
            &self.load.in_flight
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An immutable snapshot of every app's route.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    apps: HashMap<Arc<str>, Arc<AppRoute>>,
    /// Config order, so that the portal lists apps the way the operator wrote them.
    order: Vec<Arc<str>>,
}

impl RouteTable {
    pub fn new(routes: Vec<AppRoute>) -> RouteTable {
        let order = routes.iter().map(|r| r.name.clone()).collect();
        let apps = routes
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        RouteTable { apps, order }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<AppRoute>> {
        self.apps.get(name)
    }

    /// Apps in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AppRoute>> {
        self.order.iter().filter_map(|name| self.apps.get(name))
    }

    /// What each app's ready replicas are doing now, in config order (for `portico
    /// replicas` and the admin status page).
    pub fn live(&self) -> Vec<LiveApp> {
        self.iter()
            .map(|route| LiveApp {
                name: route.name.to_string(),
                status: route.status.label().to_owned(),
                waiting: route.demand.waiting(),
                replicas: route
                    .endpoints
                    .iter()
                    .map(|e| LiveReplica {
                        id: e.replica.to_string(),
                        address: e.addr.to_string(),
                        sessions: e.load.sessions(),
                        websockets: e.load.websockets.load(Ordering::Relaxed),
                        recent_clients: e.load.recent.count(),
                        in_flight: e.load.in_flight.load(Ordering::Relaxed),
                        owner: e.owner,
                    })
                    .collect(),
            })
            .collect()
    }

    /// A copy of this table with `route` added after the others (or replacing one of its
    /// name).
    pub fn with_route(&self, route: AppRoute) -> RouteTable {
        let mut next = self.clone();
        if !next.apps.contains_key(&route.name) {
            next.order.push(route.name.clone());
        }
        next.apps.insert(route.name.clone(), Arc::new(route));
        next
    }

    /// A copy of this table with one app's route replaced through `change`.
    pub fn with_app(&self, name: &str, change: impl FnOnce(&mut AppRoute)) -> RouteTable {
        let mut next = self.clone();
        if let Some(route) = next.apps.get_mut(name) {
            change(Arc::make_mut(route));
        }
        next
    }
}

/// An app as [`RouteTable::live`] reports it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LiveApp {
    pub name: String,
    pub status: String,
    /// Requests waiting for a replica to be ready.
    pub waiting: usize,
    pub replicas: Vec<LiveReplica>,
}

/// A ready replica's load now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LiveReplica {
    pub id: String,
    pub address: String,
    /// As the autoscaler counts them.
    pub sessions: usize,
    pub websockets: usize,
    /// Browsers active within the idle timeout.
    pub recent_clients: usize,
    pub in_flight: usize,
    /// Per-user apps: the user id whose instance it is.
    #[serde(default)]
    pub owner: Option<i64>,
}

/// The shared, atomically swapped route table.
pub type SharedRoutes = Arc<ArcSwap<RouteTable>>;

/// Applies `change` to one app in the shared table (retrying if another writer raced).
pub fn update_app(routes: &SharedRoutes, name: &str, change: impl Fn(&mut AppRoute)) {
    routes.rcu(|table| table.with_app(name, &change));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> Arc<User> {
        Arc::new(User {
            id,
            email: format!("user{id}@example.com"),
            display_name: String::new(),
            groups: Vec::new(),
            admin: false,
        })
    }

    #[test]
    fn a_wish_for_an_instance_outlives_its_request_until_the_supervisor_reads_it() {
        let demand = Arc::new(Demand::default());
        // A page load, answered at once with the waiting page.
        drop(demand.wait_as(&user(1)));
        let wanted: Vec<i64> = demand.wanted_owners().iter().map(|u| u.id).collect();
        assert_eq!(wanted, [1]);
        assert!(demand.wanted_owners().is_empty(), "read once");

        let held = demand.wait_as(&user(2));
        assert_eq!(demand.wanted_owners().len(), 1);
        assert_eq!(demand.wanted_owners().len(), 1, "still waiting");
        demand.refuse(2, "no profile for you");
        assert_eq!(demand.refusal(2).as_deref(), Some("no profile for you"));
        assert!(demand.wanted_owners().is_empty(), "refused is not wanted");
        drop(held);
        assert_eq!(
            demand.refusal(2).as_deref(),
            Some("no profile for you"),
            "the waiting page's reload is told"
        );
        assert_eq!(demand.waiting(), 0);
    }

    #[test]
    fn recent_clients_are_counted_once_and_forgotten_after_all_windows() {
        let recent = RecentClients::default();
        assert_eq!(recent.count(), 0);
        assert!(!recent.active());
        for client in [11u64, 12, 13, 11, 11, 12] {
            recent.touch(client.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert_eq!(recent.count(), 3, "repeat requests are one client");
        for _ in 0..RECENT_WINDOWS - 1 {
            recent.advance();
        }
        assert_eq!(recent.count(), 3, "still within the idle timeout");
        recent.advance();
        assert_eq!(recent.count(), 0);
        assert!(!recent.active());
        recent.touch_anonymous();
        assert!(recent.active());
        assert_eq!(
            recent.count(),
            0,
            "scripts keep it awake but are not sessions"
        );
    }

    #[test]
    fn many_clients_are_estimated_closely() {
        let recent = RecentClients::default();
        let mut state = 0x1234_5678_u64;
        for _ in 0..500 {
            // splitmix64: ids as random as the cookie's.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            recent.touch(z ^ (z >> 31));
        }
        let count = recent.count() as f64;
        assert!((count - 500.0).abs() < 50.0, "{count}");
    }
}
