use super::*;
use std::path::Path;

#[tokio::test]
async fn apps_releases_replicas_and_events_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    store
        .register_apps(&[(
            "sales",
            "Sales",
            Some(Framework::Streamlit),
            Path::new("/srv/sales"),
        )])
        .await
        .unwrap();
    let release = store
        .release_for("sales", Framework::Streamlit, "app.py", "env-1")
        .await
        .unwrap();
    assert_eq!(
        store
            .release_for("sales", Framework::Streamlit, "app.py", "env-1")
            .await
            .unwrap(),
        release
    );
    assert_ne!(
        store
            .release_for("sales", Framework::Streamlit, "app.py", "env-2")
            .await
            .unwrap(),
        release
    );

    store
        .insert_replica(&ReplicaRow {
            id: "sales-1".into(),
            app: "sales".into(),
            release_id: release,
            runtime: "process".into(),
            pid: Some(42),
            endpoint: Some("127.0.0.1:5000".into()),
            state: ReplicaState::Starting,
            exit_reason: None,
            log_path: "/tmp/x.log".into(),
            started_at: timestamp(),
            owner: Some(InstanceOwner {
                id: 7,
                email: "ada@example.com".into(),
            }),
        })
        .await
        .unwrap();
    store
        .set_replica_state("sales-1", ReplicaState::Exited, Some("killed by SIGKILL"))
        .await
        .unwrap();
    store
        .record_restart("sales", "killed by SIGKILL")
        .await
        .unwrap();
    store
        .add_event("sales", Some("sales-1"), "exited", "killed by SIGKILL")
        .await
        .unwrap();

    let apps = store.apps().await.unwrap();
    assert_eq!(apps[0].restarts, 1);
    assert_eq!(
        apps[0].last_restart_reason.as_deref(),
        Some("killed by SIGKILL")
    );
    let replicas = store.replicas("sales", 10).await.unwrap();
    assert_eq!(replicas[0].state, ReplicaState::Exited);
    assert_eq!(replicas[0].pid, Some(42));
    assert_eq!(
        replicas[0].owner.as_ref().map(|o| o.email.as_str()),
        Some("ada@example.com")
    );
    assert_eq!(
        store.events("sales", 10).await.unwrap()[0].message,
        "killed by SIGKILL"
    );
}

#[tokio::test]
async fn apps_removed_from_the_config_are_forgotten_and_restarts_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let src = Path::new("/srv");
    store
        .register_apps(&[("a", "A", None, src), ("b", "B", None, src)])
        .await
        .unwrap();
    store.record_restart("a", "crash").await.unwrap();
    store.register_apps(&[("a", "A", None, src)]).await.unwrap();
    let apps = store.apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].restarts, 0);
}

#[tokio::test]
async fn a_saml_assertion_is_accepted_once_per_provider_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    assert!(store
        .use_saml_assertion("saml:a", "_1", 100, 200)
        .await
        .unwrap());
    assert!(!store
        .use_saml_assertion("saml:a", "_1", 150, 200)
        .await
        .unwrap());
    // Another provider's assertion with the same id is a different assertion.
    assert!(store
        .use_saml_assertion("saml:b", "_1", 150, 200)
        .await
        .unwrap());
    // Past its expiry the record is dropped (the assertion is refused as expired by then).
    assert!(store
        .use_saml_assertion("saml:a", "_1", 201, 300)
        .await
        .unwrap());
}

#[tokio::test]
async fn deployed_releases_are_numbered_and_one_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let first = store
        .release_for("sales", Framework::Dash, "app.py", "env-1")
        .await
        .unwrap();
    let new = NewRelease {
        app: "sales",
        origin: "upload",
        framework: Framework::Dash,
        entrypoint: "app.py",
        source_dir: "/data/releases/sales/2",
        commit_id: None,
        deployed_by: "ada@example.com",
        build_log: "/data/releases/sales/2/build.log",
    };
    let second = store.add_release(&new).await.unwrap();
    assert_eq!(second.number, 2);
    assert_eq!(second.state, ReleaseState::Queued);
    assert_eq!(store.add_release(&new).await.unwrap().number, 3);
    assert_eq!(store.add_release(&new).await.unwrap().number, 4);
    store
        .set_release_state(second.id, ReleaseState::Starting, None)
        .await
        .unwrap();
    assert_eq!(
        store.live_release("sales").await.unwrap().unwrap().id,
        first
    );
    store
        .set_release_environment(second.id, "env-2")
        .await
        .unwrap();
    store.make_live(second.id).await.unwrap();
    let live = store.live_release("sales").await.unwrap().unwrap();
    assert_eq!((live.number, live.environment.as_str()), (2, "env-2"));
    let listed = store.releases("sales").await.unwrap();
    let states: Vec<_> = listed.iter().map(|r| (r.number, r.state)).collect();
    assert_eq!(
        states,
        [
            (4, ReleaseState::Queued),
            (3, ReleaseState::Queued),
            (2, ReleaseState::Live),
            (1, ReleaseState::Superseded)
        ]
    );
    // Release 1 is being rolled back to when Portico stops.
    store
        .set_release_state(first, ReleaseState::Queued, None)
        .await
        .unwrap();
    assert_eq!(store.fail_interrupted_releases().await.unwrap(), 3);
    let back = store.release("sales", 1).await.unwrap().unwrap();
    assert_eq!(
        back.state,
        ReleaseState::Superseded,
        "it can still be rolled back to"
    );
    let third = store.release("sales", 3).await.unwrap().unwrap();
    assert_eq!(third.state, ReleaseState::Failed);
    assert!(third.reason.unwrap().contains("deploy again"));
    assert!(store.release("sales", 9).await.unwrap().is_none());
    assert!(store.live_release("ops").await.unwrap().is_none());
}
