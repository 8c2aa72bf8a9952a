//! `portico up`: validate, bind, recover, start the fleet and the edge, print the addresses,
//! and on SIGINT/SIGTERM stop accepting, stop every replica, and exit.

use crate::check::{self, Validated};
use crate::control;
use crate::instance_lock;
use crate::output::{init_logging, LogFormat};
use crate::reload::{self, Reloader};
use portico_build::EnvBuilder;
use portico_console::ConsoleState;
use portico_core::{AcmeChallenge, PublicUrls, RouteTable};
use portico_edge::acme::Challenges;
use portico_edge::{Edge, EdgeOptions, ListenerKind, ListenerSettings, UpstreamTimeouts};
use portico_fleet::{
    process::recover_orphans, Deployments, DockerRuntime, Fleet, ProcessRuntime, Runtimes,
};
use portico_identity::sso::ldap::LdapProvider;
use portico_identity::sso::oidc::OidcProvider;
use portico_identity::sso::saml::SamlProvider;
use portico_identity::{
    ensure_admin, Accounts, AssertionSigner, Bootstrap, Handoffs, Links, Mailer, Mfa,
    PendingSignIns, SecretBox, SessionPolicy, Sessions,
};
use portico_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub async fn run(explicit: Option<PathBuf>, log_format: LogFormat) -> ExitCode {
    let validated = match check::validate(explicit) {
        Ok(v) => v,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    init_logging(log_format);
    for warning in &validated.warnings {
        tracing::warn!("{warning}");
    }
    match serve(validated).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(validated: Validated) -> Result<(), String> {
    let Validated { config, apps, .. } = validated;
    let server = &config.server;

    // Bind first: a port in use is the commonest start-up failure and should cost nothing.
    let main_listener = portico_edge::bind(server.listen, "server.listen")
        .await
        .map_err(|e| e.to_string())?;
    let metrics_listener = match server.metrics_listen {
        Some(addr) => Some(
            portico_edge::bind(addr, "server.metrics_listen")
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };

    let redirect_listener = match server.redirect_listen {
        Some(addr) => Some(
            portico_edge::bind(addr, "server.redirect_listen")
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };

    std::fs::create_dir_all(&server.data_dir).map_err(|e| {
        format!(
            "cannot create the data folder {}: {e}",
            server.data_dir.display()
        )
    })?;
    let data_dir =
        std::fs::canonicalize(&server.data_dir).unwrap_or_else(|_| server.data_dir.clone());
    let _lock = instance_lock::acquire(&data_dir)?;
    let instance = data_dir.to_string_lossy().into_owned();
    let store = Store::open(&data_dir).await.map_err(|e| e.to_string())?;
    // Replicas an earlier run left serving are set aside for their apps to adopt; any other
    // process or container of this instance is a leftover. Without keep_replicas_on_exit
    // nothing is adopted: containers survive a crash of Portico (processes do not), and the
    // operator asked for replicas not to outlive it.
    let inherited = if config.fleet.keep_replicas_on_exit {
        store.serving_replicas().await.map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let inherited_ids: Vec<&str> = inherited.iter().map(|r| r.id.as_str()).collect();
    let orphans = recover_orphans(&instance, &inherited_ids);
    if !orphans.is_empty() {
        tracing::warn!(pids = ?orphans, "stopped {} process(es) left over from an earlier run", orphans.len());
    }
    // The daemon is reached lazily: Portico starts (and serves its other apps) without it.
    let docker_client = Arc::new(portico_build::DockerClient::new(&config.docker));
    let docker = Arc::new(DockerRuntime::new(docker_client.clone(), instance.clone()));
    let images = Arc::new(portico_build::ImageBuilder::new(
        docker_client,
        config.docker.clone(),
    ));
    if config.uses_docker() {
        match docker.remove_orphans(&inherited_ids).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(containers = ?removed, "removed {} container(s) left over from an earlier run", removed.len());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}; container apps wait for it"),
        }
    }
    store
        .close_stale_replicas(&inherited_ids)
        .await
        .map_err(|e| e.to_string())?;
    let mut apps = apps;
    apps.extend(crate::created_apps::load(&store, &config).await);
    let registered: Vec<_> = apps.iter().map(reload::store_row).collect();
    store
        .register_apps(&registered)
        .await
        .map_err(|e| e.to_string())?;

    bootstrap_admin(&store, &server.domain).await?;
    for app in &config.apps {
        if let Some(Err(why)) = app.webhook.as_ref().map(|w| w.secret()) {
            tracing::warn!(app = %app.name, "its webhook refuses every message until fixed: {why}");
        }
    }

    let metrics = portico_edge::install_metrics_recorder()
        .map_err(|e| format!("cannot set up metrics: {e}"))?;
    let port = main_listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(server.listen.port());
    let urls = PublicUrls::new(&server.domain, port, config.tls.is_some());
    let certificates = match &config.tls {
        Some(tls) => {
            let names = reload::certificate_names(&config, &apps);
            let keys =
                portico_edge::tls::load(tls, &names, &data_dir).map_err(|e| format!("tls: {e}"))?;
            Some(portico_edge::tls::Certificates::new(keys))
        }
        None => None,
    };
    let acme = reload::acme_of(&config);
    let challenges = acme.map(|_| Arc::new(Challenges::default()));
    let challenge_kind = acme.map(|a| a.challenge);
    let tls = certificates.clone().map(|certificates| {
        // TLS-ALPN-01 answers are certificates, so the resolver needs them.
        let alpn = challenges
            .clone()
            .filter(|_| challenge_kind == Some(AcmeChallenge::TlsAlpn01));
        portico_edge::tls::server_config(certificates, alpn)
    });
    let routes = Arc::new(arc_swap::ArcSwap::from_pointee(RouteTable::new(
        apps.iter()
            .map(|a| reload::app_route(a, &config.limits, &urls))
            .collect(),
    )));

    let envs = Arc::new(EnvBuilder::new(config.build.clone()));
    let runtimes = Runtimes {
        process: Arc::new(ProcessRuntime::new(
            instance,
            config.fleet.keep_replicas_on_exit,
        )),
        docker,
    };
    let interrupted = store
        .fail_interrupted_releases()
        .await
        .map_err(|e| e.to_string())?;
    if interrupted > 0 {
        tracing::warn!("{interrupted} deploy(s) were under way when Portico stopped; marked failed, deploy them again");
    }
    let deployments = Arc::new(Deployments::new(
        store.clone(),
        &data_dir,
        config.deploy.clone(),
        config.fleet.runtime,
    ));
    let fleet = Fleet::start(
        apps.clone(),
        inherited,
        runtimes,
        images,
        store.clone(),
        routes.clone(),
        envs,
        config.fleet.clone(),
        urls.clone(),
        &data_dir,
        deployments.clone(),
    );

    let accounts = Accounts::new(store.clone());
    let policy = SessionPolicy {
        idle_timeout: config.auth.session_idle_timeout,
        lifetime: config.auth.session_lifetime,
    };
    let sessions = Sessions::load(store.clone(), policy)
        .await
        .map_err(|e| format!("cannot load sessions: {e}"))?;
    sessions.spawn_sync(std::time::Duration::from_secs(1));
    let handoffs = Arc::new(Handoffs::default());
    let secrets = SecretBox::for_data_dir(&data_dir).map_err(|e| e.to_string())?;
    let assertions = Arc::new(
        AssertionSigner::load(&store, &secrets, &urls.portal())
            .await
            .map_err(|e| format!("cannot load the assertion signing key: {e}"))?,
    );
    let mailer = match &config.smtp {
        Some(smtp) => Some(Mailer::new(smtp).map_err(|e| e.to_string())?),
        None => None,
    };
    let ldap = config
        .auth
        .ldap
        .iter()
        .map(|l| {
            LdapProvider::new(l.clone()).map_err(|e| format!("auth.ldap \"{}\": {e}", l.common.id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let oidc = config
        .auth
        .oidc
        .iter()
        .map(|o| {
            OidcProvider::new(o.clone(), &urls.portal())
                .map(Arc::new)
                .map_err(|e| format!("auth.oidc \"{}\": {e}", o.common.id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let saml = config
        .auth
        .saml
        .iter()
        .map(|p| {
            SamlProvider::new(p.clone(), &urls.portal())
                .map_err(|e| format!("auth.saml \"{}\": {e}", p.common.id))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let portal = portico_console::router(Arc::new(ConsoleState {
        routes: routes.clone(),
        urls: urls.clone(),
        accounts,
        sessions: sessions.clone(),
        handoffs: handoffs.clone(),
        assertions: assertions.clone(),
        throttle: portico_identity::Throttle::default(),
        mfa: Mfa::new(
            store.clone(),
            secrets.clone(),
            &format!("Portico ({})", config.server.domain),
        ),
        mfa_policy: config.auth.require_mfa,
        pending: PendingSignIns::default(),
        links: Links::new(
            store.clone(),
            &urls.portal(),
            config.auth.invitation_lifetime,
            config.auth.password_reset_lifetime,
        ),
        mailer,
        contact: config.auth.contact.clone(),
        cookies: portico_identity::web::CookieRules::for_scheme(urls.scheme()),
        password_sign_in: config.auth.password_sign_in,
        ldap,
        oidc: oidc.clone(),
        saml,
        sso_flows: Default::default(),
        secrets: secrets.clone(),
        tokens: portico_identity::ApiTokens::new(store.clone()),
        deployments: deployments.clone(),
    }));
    let sticky_key = secrets.subkey("sticky replica cookies");
    portico_identity::sso::refresh::spawn(store.clone(), secrets, oidc);
    let options = EdgeOptions {
        urls: urls.clone(),
        metrics_on_main_listener: metrics_listener.is_none(),
        upstream: UpstreamTimeouts {
            connect: config.limits.upstream_connect_timeout,
            response: config.limits.upstream_response_timeout,
        },
        sessions,
        handoffs,
        assertions,
        audit: Arc::new(portico_identity::AuditSink::start(store.clone())),
        contact: config.auth.contact.clone(),
        guards: reload::guard_config(&config),
        acme_challenges: challenges
            .clone()
            .filter(|_| challenge_kind == Some(AcmeChallenge::Http01)),
        sticky_key,
    };
    let edge = Arc::new(Edge::new(routes.clone(), portal, options, Some(metrics)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = ListenerSettings {
        max_header_bytes: server.max_header_bytes,
        header_read_timeout: config.limits.header_read_timeout,
        drain_timeout: server.shutdown_timeout,
    };
    let server = server.clone();
    let watch_config = server.watch_config;
    // The ACME manager starts after the listeners (the CA's checks need them) and learns of
    // new app hosts from reloads.
    let mut acme_manager = None;
    let mut acme_names = None;
    if let (Some(acme), Some(certificates), Some(challenges)) = (acme, &certificates, challenges) {
        let (names_tx, names) = watch::channel(reload::acme_names(&config, &apps));
        acme_names = Some(names_tx);
        acme_manager = Some(portico_edge::acme::Manager {
            config: acme.clone(),
            data_dir: data_dir.clone(),
            certificates: certificates.clone(),
            challenges,
            names,
        });
    }
    let reloader = Arc::new(Reloader::new(reload::Parts {
        config,
        apps,
        fleet,
        edge: edge.clone(),
        routes: routes.clone(),
        certificates,
        store: store.clone(),
        urls: urls.clone(),
        data_dir: data_dir.clone(),
        acme_names,
    }));
    let creator: Arc<dyn portico_fleet::deploy::AppCreator> = reloader.clone();
    deployments.set_creator(Arc::downgrade(&creator));
    let mut background = vec![tokio::spawn(reload_on_sighup(reloader.clone()))];
    match control::bind(&data_dir) {
        Ok(socket) => background.push(tokio::spawn(control::serve(socket, reloader.clone()))),
        // Not fatal: SIGHUP and the file watcher still reload.
        Err(e) => tracing::warn!("{e}; `portico reload` will not work, SIGHUP still does"),
    }
    if watch_config {
        background.push(tokio::spawn(crate::watch::watch(reloader.clone())));
    }
    let mut servers = vec![tokio::spawn(portico_edge::serve(
        main_listener,
        edge.clone(),
        ListenerKind::Main,
        settings,
        tls,
        stop_rx.clone(),
    ))];
    if let Some(listener) = redirect_listener {
        servers.push(tokio::spawn(portico_edge::serve(
            listener,
            edge.clone(),
            ListenerKind::Redirect,
            settings,
            None,
            stop_rx.clone(),
        )));
    }
    if let Some(listener) = metrics_listener {
        servers.push(tokio::spawn(portico_edge::serve(
            listener,
            edge.clone(),
            ListenerKind::Metrics,
            settings,
            None,
            stop_rx.clone(),
        )));
    }

    if let Some(manager) = acme_manager {
        background.push(tokio::spawn(manager.run()));
    }

    println!("Portico is up. Portal: {}", urls.portal());
    for route in routes.load().iter() {
        println!(
            "  {:<20} {}  {}",
            route.name,
            urls.app_host(&route.name),
            urls.app_path(&route.name)
        );
    }
    if let Some(addr) = server.metrics_listen {
        println!("Metrics: http://{addr}/metrics");
    }
    println!("Press Ctrl-C to stop.");

    let signal_name = wait_for_stop_signal().await;
    tracing::info!("{signal_name} received: stopping");
    let _ = stop_tx.send(true);
    // A second signal while draining means "now": replicas still die with us (PDEATHSIG).
    tokio::spawn(async {
        wait_for_stop_signal().await;
        eprintln!("portico: stopping immediately");
        std::process::exit(130);
    });
    for task in background {
        task.abort();
    }
    let _ = std::fs::remove_file(control::socket_path(&data_dir));
    // Requests in flight finish (up to server.shutdown_timeout_secs) before the replicas
    // answering them are stopped.
    for server in servers {
        let _ = server.await;
    }
    reloader.shutdown().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the first admin on the first start (see `portico_identity::bootstrap`). A generated
/// password goes to the console once, through stdout and never through the log.
async fn bootstrap_admin(store: &Store, domain: &str) -> Result<(), String> {
    let email = std::env::var("PORTICO_ADMIN_EMAIL").ok();
    let password = std::env::var("PORTICO_ADMIN_PASSWORD").ok();
    let accounts = Accounts::new(store.clone());
    match ensure_admin(&accounts, domain, email.as_deref(), password.as_deref()).await {
        Ok(Bootstrap::Existing) => {}
        Ok(Bootstrap::FromEnvironment { email }) => {
            tracing::info!("created the admin account {email} from PORTICO_ADMIN_EMAIL and PORTICO_ADMIN_PASSWORD");
        }
        Ok(Bootstrap::Generated { email, password }) => {
            println!(
                "First start: created the administrator {email}.\nIts password is shown only this once:\n    {password}\n\
                 Keep it safe, or set your own with `portico users reset-password {email} --password-stdin`."
            );
        }
        Err(e) => {
            return Err(format!(
                "cannot create the first administrator from PORTICO_ADMIN_EMAIL / PORTICO_ADMIN_PASSWORD: {e}"
            ))
        }
    }
    Ok(())
}

/// Reloads on every SIGHUP, as nginx and most Unix daemons do.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; use `portico reload`");
        return;
    };
    while hangup.recv().await.is_some() {
        // The outcome is logged by the reloader.
        let _ = reloader.reload("SIGHUP").await;
    }
}

async fn wait_for_stop_signal() -> &'static str {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers we cannot stop cleanly; wait forever rather than exit now.
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
