//! Storage that outlives containers, on a real Docker daemon: an app's data volume keeps
//! what a dashboard wrote when its container crashes and when Portico restarts; each
//! person's home is theirs alone and comes back with their next instance; a team drive one
//! app writes is read by another that mounts it read-only. Every dashboard runs as uid
//! 1000 on a read-only root, so a write to a volume proves Portico gave it the right owner.

use portico_testkit::docker::{test_server_image, volume_owner_and_mode, volumes_labelled};
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig, Visitor};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const PASSWORD: &str = "a-long-enough-password-1";
const LOCKED_DOWN: &str = "[apps.container]\nuser = \"1000\"\nread_only = true";

/// An app of the test server's image; `keys` go before its tables.
fn container_app(name: &str, keys: &str) -> AppConfig {
    AppConfig::new(name, fixtures_dir())
        .with("runtime = \"docker\"")
        .with(&format!("image = \"{}\"", test_server_image()))
        .with(keys)
        .with(LOCKED_DOWN)
}

async fn get(portico: &Portico, app: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", portico.app_host_url(app));
    let response = portico.client().get(&url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The one volume of this Portico whose name ends with `suffix`.
fn volume_named(portico: &Portico, suffix: &str) -> String {
    let volumes = volumes_labelled(&portico.instance_label());
    volumes
        .iter()
        .find(|v| v.ends_with(suffix))
        .unwrap_or_else(|| panic!("no volume *{suffix} among {volumes:?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apps_data_volume_outlives_its_containers_and_portico() {
    let config = PorticoConfig::default()
        .with_app(container_app("keeper", "").with("[apps.volumes]\ndata = \"/data\""));
    let mut portico = Portico::start(BIN, config).await;
    assert_eq!(
        get(&portico, "keeper", "env?name=PORTICO_DATA").await.1,
        "/data"
    );
    let (status, body) = get(&portico, "keeper", "write?path=/data/note&text=kept").await;
    assert_eq!(status, 200, "{body}");
    let volume = volume_named(&portico, "-data-keeper");
    assert_eq!(volume_owner_and_mode(&volume), "1000:0 750");

    // The container crashes; its replacement finds the file.
    let before = portico.ready_replicas("keeper")[0].0.clone();
    let _ = get(&portico, "keeper", "exit?code=3").await;
    eventually("a new ready replica", Duration::from_secs(60), || async {
        let ready = portico.ready_replicas("keeper");
        (ready.len() == 1 && ready[0].0 != before).then_some(())
    })
    .await;
    assert_eq!(
        get(&portico, "keeper", "read?path=/data/note").await.1,
        "kept"
    );

    // Portico stops (its containers go with it) and starts again: the data is still there.
    portico.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(portico.wait_exit(Duration::from_secs(60)).await.success());
    assert!(portico_testkit::docker::containers_labelled(&portico.instance_label()).is_empty());
    portico.start_again().await;
    assert_eq!(
        get(&portico, "keeper", "read?path=/data/note").await.1,
        "kept"
    );
    assert_eq!(volumes_labelled(&portico.instance_label()), [volume]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_person_has_a_home_of_their_own_that_comes_back() {
    let app = container_app(
        "notes",
        "access = \"signed-in\"\nmode = \"per-user\"\nper_user = { idle_timeout_secs = 600 }",
    );
    let mut portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    for email in ["ada@example.com", "bob@example.com"] {
        portico.add_user(email, PASSWORD, &[]);
    }
    let app_url = portico.app_host_url("notes");
    let visit = |visitor: &Visitor, path: &str| {
        let url = format!("{app_url}{path}");
        let client = visitor.client.clone();
        async move {
            // The request is held while the person's instance starts.
            let response = client.get(&url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let ada = Visitor::new(&portico, &["notes"]);
    ada.sign_in("ada@example.com", PASSWORD).await;
    let _ = ada.open(&portico.app_host_url("notes")).await;
    assert_eq!(visit(&ada, "env?name=HOME").await.1, "/home/portico");
    let (status, body) = visit(&ada, "write?path=/home/portico/plan&text=ada's plan").await;
    assert_eq!(status, 200, "{body}");

    let bob = Visitor::new(&portico, &["notes"]);
    bob.sign_in("bob@example.com", PASSWORD).await;
    let _ = bob.open(&portico.app_host_url("notes")).await;
    let (status, body) = visit(&bob, "read?path=/home/portico/plan").await;
    assert_eq!(status, 404, "Bob's home is not Ada's: {body}");
    assert!(body.contains("No such file"), "{body}");

    // Two homes, each closed to everyone but its owner's instance.
    let homes: Vec<String> = volumes_labelled(&portico.instance_label())
        .into_iter()
        .filter(|v| v.contains("-home-"))
        .collect();
    assert_eq!(homes.len(), 2, "{homes:?}");
    for home in &homes {
        assert_eq!(volume_owner_and_mode(home), "1000:0 700");
    }

    // Portico restarts: Ada's new instance has her plan.
    portico.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(portico.wait_exit(Duration::from_secs(60)).await.success());
    portico.start_again().await;
    let _ = ada.open(&portico.app_host_url("notes")).await;
    let (status, body) = visit(&ada, "read?path=/home/portico/plan").await;
    assert_eq!((status, body.as_str()), (200, "ada's plan"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_drive_is_shared_and_read_only_where_the_config_says() {
    let config = PorticoConfig {
        sections: "[drives.shared]\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(
        container_app("writer", "").with("[apps.volumes]\ndrives = { shared = \"/mnt/shared\" }"),
    )
    .with_app(
        container_app("reader", "")
            .with("[apps.volumes]\ndrives = { shared = \"/mnt/shared:ro\" }"),
    );
    let portico = Portico::start(BIN, config).await;
    assert_eq!(
        get(&portico, "writer", "env?name=PORTICO_DRIVE_SHARED")
            .await
            .1,
        "/mnt/shared"
    );
    let (status, body) = get(&portico, "writer", "write?path=/mnt/shared/report&text=q3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(&portico, "reader", "read?path=/mnt/shared/report")
            .await
            .1,
        "q3"
    );
    let (status, body) = get(&portico, "reader", "write?path=/mnt/shared/report&text=x").await;
    assert_eq!(status, 500);
    assert!(body.contains("Read-only file system"), "{body}");
    let drive = volume_named(&portico, "-drive-shared");
    assert_eq!(volume_owner_and_mode(&drive), "1000:0 770");
}
