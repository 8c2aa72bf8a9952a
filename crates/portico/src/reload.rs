//! Reloading the config while serving (`portico reload`, SIGHUP, or an edit of the file).
//!
//! The new file is validated exactly as `up` validates it, and its certificates are loaded,
//! before anything changes: a config that fails changes nothing, and the error says why.
//! Then, in this order: certificates, firewall and limits, and apps — added apps start,
//! removed apps stop, apps whose program changed restart, and apps whose address rules,
//! access or limits changed keep their replicas and get the new rules at once. Connections and
//! WebSockets stay open throughout; listeners are not touched. What cannot change while
//! running (listen addresses, the domain, the data folder, sign-in providers, …) is named in the
//! outcome as waiting for a restart.

use crate::check::{self, Validated};
use portico_core::{
    AppRoute, AppStatus, Config, Framework, LimitsConfig, PublicUrls, RouteTable, SharedRoutes,
    TlsSource,
};
use portico_edge::tls::Certificates;
use portico_edge::{Edge, GuardConfig};
use portico_fleet::{Fleet, PreparedApp};
use portico_store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{watch, Mutex};

/// What a reload did, in words for the log and for `portico reload`.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Applied changes, e.g. `app "sales" added`.
    pub applied: Vec<String>,
    /// Changed settings that take effect only when Portico restarts.
    pub needs_restart: Vec<String>,
}

/// The config in force and the fleet running it.
pub(crate) struct Live {
    pub(crate) config: Config,
    pub(crate) apps: Vec<PreparedApp>,
    pub(crate) fleet: Fleet,
}

pub struct Reloader {
    path: PathBuf,
    /// `None` once Portico is stopping: a reload then changes nothing. The lock also queues
    /// reloads that arrive together.
    pub(crate) live: Mutex<Option<Live>>,
    edge: Arc<Edge>,
    pub(crate) routes: SharedRoutes,
    /// `None` without `[tls]`.
    certificates: Option<Arc<Certificates>>,
    pub(crate) store: Store,
    pub(crate) urls: PublicUrls,
    data_dir: PathBuf,
    /// With ACME: tells the certificate manager which names to order.
    acme_names: Option<watch::Sender<Vec<String>>>,
}

/// The parts of `up` a reload changes.
pub struct Parts {
    pub config: Config,
    pub apps: Vec<PreparedApp>,
    pub fleet: Fleet,
    pub edge: Arc<Edge>,
    pub routes: SharedRoutes,
    pub certificates: Option<Arc<Certificates>>,
    pub store: Store,
    pub urls: PublicUrls,
    pub data_dir: PathBuf,
    pub acme_names: Option<watch::Sender<Vec<String>>>,
}

impl Reloader {
    pub fn new(parts: Parts) -> Reloader {
        Reloader {
            path: parts.config.path.clone(),
            live: Mutex::new(Some(Live {
                config: parts.config,
                apps: parts.apps,
                fleet: parts.fleet,
            })),
            edge: parts.edge,
            routes: parts.routes,
            certificates: parts.certificates,
            store: parts.store,
            urls: parts.urls,
            data_dir: parts.data_dir,
            acme_names: parts.acme_names,
        }
    }

    /// The files whose change means a reload: the config file and the certificate and key
    /// files it names.
    pub async fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        if let Some(live) = self.live.lock().await.as_ref() {
            if let Some(TlsSource::Files(pairs)) = live.config.tls.as_ref().map(|t| &t.source) {
                for pair in pairs {
                    files.push(pair.cert.clone());
                    files.push(pair.key.clone());
                }
            }
        }
        files
    }

    /// Reads the config file again and applies it; `trigger` says why, for the log.
    /// What the replicas are doing now (for `portico replicas`).
    pub fn live(&self) -> Vec<portico_core::LiveApp> {
        self.routes.load().live()
    }

    pub async fn reload(&self, trigger: &str) -> Result<Outcome, String> {
        let result = self.try_reload().await;
        match &result {
            Ok(outcome) if outcome.applied.is_empty() && outcome.needs_restart.is_empty() => {
                tracing::info!("reload ({trigger}): nothing changed");
            }
            Ok(outcome) => {
                for change in &outcome.applied {
                    tracing::info!("reload ({trigger}): {change}");
                }
                for setting in &outcome.needs_restart {
                    tracing::warn!("reload ({trigger}): {setting}");
                }
            }
            Err(message) => {
                tracing::error!(
                    "reload ({trigger}) refused, the running config stays in force: {message}"
                );
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<Outcome, String> {
        let Validated {
            config, mut apps, ..
        } = check::validate(Some(self.path.clone()))?;
        // Apps made by deploys stay, unless the config now declares them.
        apps.extend(crate::created_apps::load(&self.store, &config).await);
        let mut guard = self.live.lock().await;
        let Some(live) = guard.as_mut() else {
            return Err("Portico is stopping".into());
        };
        let mut outcome = Outcome {
            needs_restart: needs_restart(&live.config, &config),
            ..Outcome::default()
        };

        // Everything that can fail comes before the first change.
        let keys = match (&self.certificates, &config.tls) {
            // ACME certificates are the manager's: it hears of new names below.
            (_, Some(tls)) if matches!(tls.source, TlsSource::Acme(_)) => None,
            (Some(_), Some(tls)) => {
                let names = certificate_names(&config, &apps);
                let keys = portico_edge::tls::load(tls, &names, &self.data_dir)
                    .map_err(|e| format!("tls: {e}"))?;
                Some(keys)
            }
            _ => None,
        };

        if let (Some(certificates), Some(keys)) = (&self.certificates, keys) {
            if certificates.replace_if_changed(keys) {
                outcome.applied.push("certificates replaced".into());
            }
        }
        let old_guards = guard_config(&live.config);
        let new_guards = guard_config(&config);
        if old_guards != new_guards {
            outcome
                .applied
                .extend(guard_changes(&old_guards, &new_guards));
            self.edge.reconfigure(new_guards);
        }
        self.apply_apps(live, &apps, &config.limits, &mut outcome)
            .await;
        if let Some(names) = &self.acme_names {
            let wanted = acme_names(&config, &apps);
            if names
                .send_if_modified(|current| std::mem::replace(current, wanted.clone()) != wanted)
            {
                outcome
                    .applied
                    .push("ACME: ordering a certificate for the new names".into());
            }
        }
        live.config = config;
        live.apps = apps;
        Ok(outcome)
    }

    async fn apply_apps(
        &self,
        live: &mut Live,
        apps: &[PreparedApp],
        limits: &LimitsConfig,
        outcome: &mut Outcome,
    ) {
        let old: HashMap<&str, &PreparedApp> = live
            .apps
            .iter()
            .map(|a| (a.spec.name.as_str(), a))
            .collect();
        let mut to_stop: Vec<&str> = Vec::new();
        let mut to_start: Vec<&PreparedApp> = Vec::new();
        let mut retitled: Vec<(&str, &str)> = Vec::new();
        for app in apps {
            let name = app.spec.name.as_str();
            match old.get(name) {
                None => {
                    outcome.applied.push(format!("app \"{name}\" added"));
                    to_start.push(app);
                }
                Some(before) if runs_differently(before, app) => {
                    outcome
                        .applied
                        .push(format!("app \"{name}\" changed: restarting it"));
                    to_stop.push(name);
                    to_start.push(app);
                }
                Some(before) => {
                    if before.spec.webhook != app.spec.webhook {
                        outcome
                            .applied
                            .push(format!("app \"{name}\": new webhook settings"));
                    }
                    live.fleet.deployments().update_spec(&app.spec);
                    if route_differs(before, app, &live.config.limits, limits) {
                        outcome.applied.push(format!(
                            "app \"{name}\": new access, owners, address or size rules"
                        ));
                        if before.spec.title != app.spec.title {
                            retitled.push((name, &app.spec.title));
                        }
                    }
                    if before.spec.scale != app.spec.scale
                        && live.fleet.rescale(name, app.spec.scale.clone())
                    {
                        outcome
                            .applied
                            .push(format!("app \"{name}\": new scaling rules"));
                    }
                }
            }
        }
        let removed: Vec<&str> = live
            .apps
            .iter()
            .map(|a| a.spec.name.as_str())
            .filter(|name| !apps.iter().any(|a| a.spec.name == *name))
            .collect();
        for name in &removed {
            outcome.applied.push(format!("app \"{name}\" removed"));
        }
        to_stop.extend(&removed);

        live.fleet.release(&to_stop).await;
        let started: Vec<_> = to_start.iter().map(|a| store_row(a)).collect();
        // The database only informs `portico apps`; a failed write must not leave the
        // reload half done (apps already stopped above), so it is reported and passed over.
        if let Err(e) = self.store.change_apps(&started, &retitled, &removed).await {
            tracing::warn!("reload: cannot record the changed apps in the database: {e}");
        }

        // Apps that keep running keep their status and ready replicas; the rest start over.
        let fresh: Vec<&str> = to_start.iter().map(|a| a.spec.name.as_str()).collect();
        self.routes.rcu(|table| {
            RouteTable::new(
                apps.iter()
                    .map(|app| {
                        let mut route = app_route(app, limits, &self.urls);
                        if let Some(running) = table
                            .get(&app.spec.name)
                            .filter(|_| !fresh.contains(&app.spec.name.as_str()))
                        {
                            route.status = running.status.clone();
                            route.endpoints = running.endpoints.clone();
                            route.current_release = running.current_release;
                            // The supervisor listens on it.
                            route.demand = running.demand.clone();
                        }
                        route
                    })
                    .collect(),
            )
        });
        for app in to_start {
            live.fleet.supervise(app.clone());
        }
    }

    /// Stops every app; later reloads change nothing.
    pub async fn shutdown(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.fleet.shutdown().await;
        }
    }
}

/// How the database registers an app: name, title, framework, folder.
pub fn store_row(app: &PreparedApp) -> (&str, &str, Option<Framework>, &std::path::Path) {
    (
        app.spec.name.as_str(),
        app.spec.title.as_str(),
        Some(app.detected.framework),
        app.spec.source.as_path(),
    )
}

/// An app's route as its config defines it, before any replica is ready.
pub fn app_route(app: &PreparedApp, limits: &LimitsConfig, urls: &PublicUrls) -> AppRoute {
    let spec = &app.spec;
    AppRoute {
        name: spec.name.as_str().into(),
        title: spec.title.as_str().into(),
        description: spec.description.as_str().into(),
        framework: Some(app.detected.framework),
        status: AppStatus::Building,
        endpoints: Arc::from(Vec::new()),
        current_release: 0,
        access: Arc::new(spec.access.clone()),
        owners: Arc::new(spec.owners.clone()),
        firewall: Arc::new(spec.firewall.clone()),
        max_body_bytes: spec.max_body_bytes.unwrap_or(limits.max_body_bytes),
        frame_policy: urls
            .frame_policy(&spec.frame_ancestors)
            .map(bytes::Bytes::from),
        demand: Arc::default(),
        start_wait: spec.start_wait(),
        per_user: spec.per_user.is_some(),
        admin_access: spec.per_user.as_ref().is_some_and(|p| p.admin_access),
    }
}

/// The names an ACME certificate covers: the portal and each app's host (ACME's HTTP and TLS
/// challenges cannot prove a wildcard).
pub fn acme_names(config: &Config, apps: &[PreparedApp]) -> Vec<String> {
    let domain = &config.server.domain;
    let mut names = vec![domain.clone()];
    names.extend(apps.iter().map(|a| format!("{}.{domain}", a.spec.name)));
    names
}

/// The names a development certificate must cover.
pub fn certificate_names(config: &Config, apps: &[PreparedApp]) -> Vec<String> {
    let domain = &config.server.domain;
    let mut names = vec![domain.clone(), format!("*.{domain}")];
    names.extend(apps.iter().map(|a| format!("{}.{domain}", a.spec.name)));
    names
}

pub fn guard_config(config: &Config) -> GuardConfig {
    GuardConfig {
        firewall: config.firewall.clone(),
        limits: config.limits.clone(),
        hsts: config.tls.as_ref().and_then(|t| t.hsts_header()),
    }
}

fn guard_changes(old: &GuardConfig, new: &GuardConfig) -> Vec<String> {
    let mut changes = Vec::new();
    if old.firewall != new.firewall {
        changes.push("firewall rules replaced".into());
    }
    if old.limits != new.limits {
        changes.push("limits replaced".into());
    }
    if old.hsts != new.hsts {
        changes.push("HSTS header changed".into());
    }
    changes
}

/// Whether the app's replicas must be replaced: anything but its route rules changed.
fn runs_differently(old: &PreparedApp, new: &PreparedApp) -> bool {
    let mut old_spec = old.spec.clone();
    let new_spec = &new.spec;
    // What only the edge reads; changing it needs no new replica.
    old_spec.title.clone_from(&new_spec.title);
    old_spec.description.clone_from(&new_spec.description);
    old_spec.access = new_spec.access.clone();
    old_spec.owners = new_spec.owners.clone();
    // Read by the deploy service, which a kept app's new config reaches in place.
    old_spec.webhook = new_spec.webhook.clone();
    old_spec.firewall = new_spec.firewall.clone();
    old_spec.max_body_bytes = new_spec.max_body_bytes;
    old_spec
        .frame_ancestors
        .clone_from(&new_spec.frame_ancestors);
    // The supervisor takes new scaling rules in place.
    old_spec.scale = new_spec.scale.clone();
    old_spec != *new_spec || old.detected != new.detected
}

fn route_differs(
    old: &PreparedApp,
    new: &PreparedApp,
    old_limits: &LimitsConfig,
    new_limits: &LimitsConfig,
) -> bool {
    let (a, b) = (&old.spec, &new.spec);
    a.title != b.title
        || a.description != b.description
        || a.access != b.access
        || a.owners != b.owners
        || a.firewall != b.firewall
        || a.frame_ancestors != b.frame_ancestors
        || a.start_wait() != b.start_wait()
        || a.max_body_bytes.unwrap_or(old_limits.max_body_bytes)
            != b.max_body_bytes.unwrap_or(new_limits.max_body_bytes)
}

fn tls_source_kind(config: &Config) -> Option<std::mem::Discriminant<TlsSource>> {
    config
        .tls
        .as_ref()
        .map(|t| std::mem::discriminant(&t.source))
}

/// `[tls.acme]`, when certificates come from ACME.
pub fn acme_of(config: &Config) -> Option<&portico_core::AcmeConfig> {
    match &config.tls.as_ref()?.source {
        TlsSource::Acme(acme) => Some(acme),
        _ => None,
    }
}

/// Settings that changed but are read only at start-up, named for the operator.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let (a, b) = (&old.server, &new.server);
    let server = [
        ("server.listen", a.listen != b.listen),
        ("server.domain", a.domain != b.domain),
        ("server.data_dir", a.data_dir != b.data_dir),
        (
            "server.metrics_listen",
            a.metrics_listen != b.metrics_listen,
        ),
        (
            "server.max_header_bytes",
            a.max_header_bytes != b.max_header_bytes,
        ),
        (
            "server.redirect_listen",
            a.redirect_listen != b.redirect_listen,
        ),
        ("[build]", old.build != new.build),
        ("[fleet]", old.fleet != new.fleet),
        ("[deploy]", old.deploy != new.deploy),
        ("[auth]", old.auth != new.auth),
        ("[smtp]", old.smtp != new.smtp),
        ("[tls] on or off", old.tls.is_some() != new.tls.is_some()),
        (
            "[tls] certificate source (ACME, files or self-signed)",
            tls_source_kind(old) != tls_source_kind(new),
        ),
        ("[tls.acme]", acme_of(old) != acme_of(new)),
        (
            "limits.header_read_timeout_secs",
            old.limits.header_read_timeout != new.limits.header_read_timeout,
        ),
        (
            "limits.max_connections",
            old.limits.max_connections != new.limits.max_connections,
        ),
        (
            "limits.upstream_connect_timeout_secs",
            old.limits.upstream_connect_timeout != new.limits.upstream_connect_timeout,
        ),
        (
            "limits.upstream_response_timeout_secs",
            old.limits.upstream_response_timeout != new.limits.upstream_response_timeout,
        ),
        ("server.watch_config", a.watch_config != b.watch_config),
        (
            "server.shutdown_timeout_secs",
            a.shutdown_timeout != b.shutdown_timeout,
        ),
    ];
    for (key, differs) in server {
        if differs {
            changed.push(format!(
                "{key} changed: it takes effect when Portico restarts"
            ));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config read as if it sat in `examples/`, so `source = "flask"` is the demo app.
    fn config(text: &str) -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/t.toml");
        Config::parse(&path, text).unwrap()
    }

    fn app(extra: &str) -> PreparedApp {
        let config = config(&format!(
            "[[apps]]\nname = \"sales\"\nsource = \"flask\"\n{extra}\n"
        ));
        let spec = config.apps[0].clone();
        let detected = portico_build::detect(&spec).unwrap();
        PreparedApp { spec, detected }
    }

    #[test]
    fn route_rules_change_in_place_and_anything_else_restarts_the_app() {
        let base = app("");
        let limits = LimitsConfig::default();
        for rules in [
            "access = \"public\"",
            "owners = { groups = [\"analysts\"] }",
            "title = \"Sales 2026\"",
            "firewall = { deny = [\"10.0.0.0/8\"] }",
            "max_body_bytes = 1024",
            "frame_ancestors = [\"https://intranet.example.com\"]",
        ] {
            let changed = app(rules);
            assert!(!runs_differently(&base, &changed), "{rules}");
            assert!(route_differs(&base, &changed, &limits, &limits), "{rules}");
        }
        for program in ["env = { MODE = \"live\" }", "health_path = \"/ready\""] {
            assert!(runs_differently(&base, &app(program)), "{program}");
        }
        assert!(!route_differs(&base, &app(""), &limits, &limits));
        let smaller = LimitsConfig {
            max_body_bytes: 10,
            ..LimitsConfig::default()
        };
        assert!(
            route_differs(&base, &app(""), &limits, &smaller),
            "the global body limit reaches apps without their own"
        );
    }

    #[test]
    fn settings_read_at_start_up_are_named_and_the_rest_are_not() {
        let old = config("[server]\nlisten = \"127.0.0.1:8080\"\n");
        let new = config(
            "[server]\nlisten = \"127.0.0.1:9090\"\n[firewall]\ndeny = [\"10.0.0.0/8\"]\n[limits]\nmax_connections = 10\n",
        );
        let named = needs_restart(&old, &new);
        assert_eq!(named.len(), 2, "{named:?}");
        assert!(named[0].starts_with("server.listen changed"), "{named:?}");
        assert!(
            named[1].starts_with("limits.max_connections changed"),
            "{named:?}"
        );
        assert!(needs_restart(&old, &old).is_empty());
        assert_eq!(
            guard_changes(&guard_config(&old), &guard_config(&new)),
            vec!["firewall rules replaced", "limits replaced"]
        );
    }
}
