//! `portico replicas`: every live replica with what it is doing now. The store says which
//! replicas run (state, pid, address, since when); the running Portico adds their load over
//! the control socket (sessions, open WebSockets, requests in flight), which only it knows.
//! Without a running Portico, the recorded state is shown and said to be so.

use crate::{apps::open_store, control, instance_lock};
use portico_core::{LiveApp, ReplicaState};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Replicas read per app (the newest), enough for any `max`.
const MAX_LISTED: i64 = 200;

#[derive(Serialize)]
struct ReplicaLine {
    app: String,
    id: String,
    state: String,
    pid: Option<u32>,
    address: Option<String>,
    started_at: String,
    /// `None` when Portico is not running (nobody knows the load then).
    sessions: Option<usize>,
    websockets: Option<usize>,
    recent_clients: Option<usize>,
    in_flight: Option<usize>,
    /// Per-user apps: whose private instance it is.
    owner: Option<String>,
}

#[derive(Serialize)]
struct Listing {
    running: bool,
    replicas: Vec<ReplicaLine>,
    /// Requests waiting for a replica, per app (sleeping or starting apps).
    waiting: Vec<(String, usize)>,
}

pub async fn run(explicit: Option<PathBuf>, app: Option<String>, json: bool) -> ExitCode {
    match listing(explicit, app.as_deref()).await {
        Ok(listing) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&listing).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(listing) => {
            print_table(&listing);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn listing(explicit: Option<PathBuf>, only: Option<&str>) -> Result<Listing, String> {
    let (data_dir, store) = open_store(explicit).await?;
    let apps = store.apps().await.map_err(|e| e.to_string())?;
    if let Some(name) = only {
        if !apps.iter().any(|a| a.name == name) {
            let known: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
            return Err(format!(
                "there is no app \"{name}\"; the apps are: {}",
                known.join(", ")
            ));
        }
    }
    let running = instance_lock::is_held(&data_dir);
    let live: Vec<LiveApp> = if running {
        control::request_live(&data_dir).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut replicas = Vec::new();
    for app in apps.iter().filter(|a| only.is_none_or(|o| o == a.name)) {
        let rows = store
            .replicas(&app.name, MAX_LISTED)
            .await
            .map_err(|e| e.to_string())?;
        let load_of = |id: &str| {
            live.iter()
                .filter(|l| l.name == app.name)
                .flat_map(|l| &l.replicas)
                .find(|r| r.id == id)
        };
        for row in rows.into_iter().rev().filter(|r| r.state.is_live()) {
            let load = load_of(&row.id);
            // Serving replicas have a load (zero when idle); starting ones have none yet.
            let known = running && row.state == ReplicaState::Ready;
            let count =
                |f: fn(&portico_core::LiveReplica) -> usize| known.then(|| load.map_or(0, f));
            replicas.push(ReplicaLine {
                app: app.name.clone(),
                state: row.state.as_str().to_owned(),
                pid: row.pid,
                address: row.endpoint.clone(),
                started_at: row.started_at.clone(),
                sessions: count(|l| l.sessions),
                websockets: count(|l| l.websockets),
                recent_clients: count(|l| l.recent_clients),
                in_flight: count(|l| l.in_flight),
                owner: row.owner.map(|o| o.email),
                id: row.id,
            });
        }
    }
    let waiting = live
        .iter()
        .filter(|l| l.waiting > 0 && only.is_none_or(|o| o == l.name))
        .map(|l| (l.name.clone(), l.waiting))
        .collect();
    Ok(Listing {
        running,
        replicas,
        waiting,
    })
}

fn print_table(listing: &Listing) {
    if !listing.running {
        println!("Portico is not running; this is the state it last recorded.\n");
    }
    if listing.replicas.is_empty() {
        println!("No replica is running.");
    } else {
        println!(
            "{:<16} {:<22} {:<9} {:<8} {:<22} {:>8} {:>10} {:>9}  {:<27} OWNER",
            "APP",
            "REPLICA",
            "STATE",
            "PID",
            "ADDRESS",
            "SESSIONS",
            "WEBSOCKETS",
            "IN FLIGHT",
            "STARTED"
        );
    }
    let shown = |n: Option<usize>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for r in &listing.replicas {
        println!(
            "{:<16} {:<22} {:<9} {:<8} {:<22} {:>8} {:>10} {:>9}  {:<27} {}",
            r.app,
            r.id,
            r.state,
            r.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            r.address.as_deref().unwrap_or("-"),
            shown(r.sessions),
            shown(r.websockets),
            shown(r.in_flight),
            r.started_at,
            r.owner.as_deref().unwrap_or("-")
        );
    }
    for (app, waiting) in &listing.waiting {
        println!("{app}: {waiting} request(s) waiting for a replica");
    }
}
