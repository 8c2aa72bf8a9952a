//! Apps made by a first deploy (`[deploy] creators`): loaded beside the config's apps at
//! start-up and at every reload (so a reload does not remove them), and added to the running
//! Portico when a deploy makes one. An app of the same name in the config takes over: the
//! config's rules apply, and its releases carry on.

use crate::reload::{app_route, store_row, Reloader};
use portico_core::{AppSpec, Config};
use portico_fleet::PreparedApp;
use portico_store::Store;
use std::path::PathBuf;

/// The apps made by deploys that the config does not declare, each as its latest release
/// with files runs it. One whose files are gone is left out, with a warning.
pub async fn load(store: &Store, config: &Config) -> Vec<PreparedApp> {
    let created = match store.created_apps().await {
        Ok(created) => created,
        Err(e) => {
            tracing::warn!("cannot read the apps made by deploys: {e}");
            return Vec::new();
        }
    };
    let mut apps = Vec::new();
    for app in created {
        if config.apps.iter().any(|a| a.name == app.name) {
            continue;
        }
        let releases = store.releases(&app.name).await.unwrap_or_default();
        let live_first = releases
            .iter()
            .filter(|r| r.state == portico_store::ReleaseState::Live)
            .chain(&releases);
        let Some(source) = live_first
            .filter_map(|r| r.source_dir.as_deref().map(PathBuf::from))
            .find(|dir| dir.is_dir())
        else {
            tracing::warn!(app = %app.name, "made by a deploy, but none of its releases has files left; deploy it again");
            continue;
        };
        let spec = AppSpec::deployed(&app.name, &app.created_by, source, config.fleet.runtime);
        match portico_build::detect(&spec) {
            Ok(detected) => apps.push(PreparedApp { spec, detected }),
            Err(e) => {
                tracing::warn!(app = %app.name, "made by a deploy, but its files hold no app: {e}")
            }
        }
    }
    apps
}

#[async_trait::async_trait]
impl portico_fleet::deploy::AppCreator for Reloader {
    async fn create(&self, app: PreparedApp) -> Result<(), String> {
        self.add_app(app).await
    }
}

impl Reloader {
    /// Starts serving an app made by a deploy: recorded, routed and supervised, like an app
    /// a reload adds.
    pub async fn add_app(&self, app: PreparedApp) -> Result<(), String> {
        let mut guard = self.live.lock().await;
        let live = guard.as_mut().ok_or("Portico is stopping")?;
        let name = app.spec.name.clone();
        if live.apps.iter().any(|a| a.spec.name == name) {
            return Err(format!("an app \"{name}\" exists already"));
        }
        if let Err(e) = self.store.change_apps(&[store_row(&app)], &[], &[]).await {
            tracing::warn!(app = %name, "cannot record the new app in the database: {e}");
        }
        let route = app_route(&app, &live.config.limits, &self.urls);
        self.routes.rcu(|table| table.with_route(route.clone()));
        live.fleet.supervise(app.clone());
        live.apps.push(app);
        tracing::info!(app = %name, "app \"{name}\" made by a deploy");
        Ok(())
    }
}
