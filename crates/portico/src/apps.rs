//! `portico apps`: what the store says about each app. Works whether or not Portico is
//! running (it then shows the state last recorded, and says so).

use crate::{check, config_path, instance_lock};
use portico_core::Config;
use portico_store::Store;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Serialize)]
struct AppView {
    name: String,
    title: String,
    framework: Option<String>,
    status: String,
    /// The number of the release new sessions go to.
    release: Option<i64>,
    reason: Option<String>,
    restarts: i64,
    last_restart_reason: Option<String>,
    last_restart_at: Option<String>,
    replicas: Vec<ReplicaView>,
}

#[derive(Serialize)]
struct ReplicaView {
    id: String,
    state: String,
    pid: Option<u32>,
    endpoint: Option<String>,
    started_at: String,
}

#[derive(Serialize)]
struct Overview {
    running: bool,
    apps: Vec<AppView>,
}

pub async fn run(explicit: Option<PathBuf>, json: bool) -> ExitCode {
    match overview(explicit).await {
        Ok(overview) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&overview).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(overview) => {
            print_table(&overview);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The data folder of the config the user means, without requiring the apps to be valid
/// (someone debugging a broken config still wants to see what ran).
pub fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = config_path::resolve(explicit.clone())?;
    match Config::load(&path) {
        Ok(config) => {
            Ok(std::fs::canonicalize(&config.server.data_dir).unwrap_or(config.server.data_dir))
        }
        Err(_) => check::validate(explicit).map(|v| v.config.server.data_dir),
    }
}

pub async fn open_store(explicit: Option<PathBuf>) -> Result<(PathBuf, Store), String> {
    let data_dir = data_dir(explicit)?;
    match Store::open_existing(&data_dir)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(store) => Ok((data_dir, store)),
        None => Err(format!(
            "Portico has not run with the data folder {} yet; start it with `portico up`",
            data_dir.display()
        )),
    }
}

/// Replicas listed per app at most (the newest), and how many are shown even when ended.
const MAX_LISTED: i64 = 200;
const RECENT: usize = 3;

async fn overview(explicit: Option<PathBuf>) -> Result<Overview, String> {
    let (data_dir, store) = open_store(explicit).await?;
    let mut apps = Vec::new();
    for row in store.apps().await.map_err(|e| e.to_string())? {
        // Every live replica, and the most recent ended ones (why the last one stopped),
        // at least RECENT in all.
        let mut shown = 0;
        let replicas = store
            .replicas(&row.name, MAX_LISTED)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| {
                let live = r.state.is_live();
                shown += 1;
                live || shown <= RECENT
            })
            .map(|r| ReplicaView {
                id: r.id,
                state: r.state.as_str().to_owned(),
                pid: r.pid,
                endpoint: r.endpoint,
                started_at: r.started_at,
            })
            .collect();
        let release = store
            .live_release(&row.name)
            .await
            .map_err(|e| e.to_string())?
            .map(|r| r.number);
        apps.push(AppView {
            release,
            name: row.name,
            title: row.title,
            framework: row.framework,
            status: row.status,
            reason: row.status_reason,
            restarts: row.restarts,
            last_restart_reason: row.last_restart_reason,
            last_restart_at: row.last_restart_at,
            replicas,
        });
    }
    Ok(Overview {
        running: instance_lock::is_held(&data_dir),
        apps,
    })
}

fn print_table(overview: &Overview) {
    if !overview.running {
        println!("Portico is not running; this is the state it last recorded.\n");
    }
    println!(
        "{:<18} {:<10} {:<9} {:<8} {:<9} {:<8} LAST RESTART",
        "APP", "FRAMEWORK", "STATUS", "RELEASE", "REPLICAS", "RESTARTS"
    );
    for app in &overview.apps {
        let live = app
            .replicas
            .iter()
            .filter(|r| r.state == "ready" || r.state == "starting")
            .count();
        let last = app
            .last_restart_reason
            .as_deref()
            .map(|r| r.lines().next().unwrap_or(r).to_owned())
            .unwrap_or_else(|| "-".into());
        let release = app.release.map_or("-".to_owned(), |n| n.to_string());
        println!(
            "{:<18} {:<10} {:<9} {:<8} {:<9} {:<8} {}",
            app.name,
            app.framework.as_deref().unwrap_or("?"),
            app.status,
            release,
            live,
            app.restarts,
            last
        );
        if let Some(reason) = &app.reason {
            for line in reason.lines() {
                println!("    {line}");
            }
        }
    }
}
