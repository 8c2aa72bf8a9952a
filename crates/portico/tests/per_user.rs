//! Per-user instances (`mode = "per-user"`): each person who opens the app gets a private
//! instance, started on their first visit, that nobody else reaches; it is stopped when it
//! has been unused for the idle timeout, and the files in the person's home folder outlive
//! it and a restart of Portico. Administrators may open someone's instance only where the
//! app allows it, and that is audited. The app is a real Flask notebook that keeps notes in
//! `$HOME/notes.txt`.

use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig, Visitor};
use reqwest::header::{ACCEPT, COOKIE};
use serde_json::Value;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const PASSWORD: &str = "a-long-enough-password-1";

fn config() -> PorticoConfig {
    let app = AppConfig::new("notes", fixtures_dir().join("notes")).with(
        "access = \"signed-in\"\nmode = \"per-user\"\nper_user = { idle_timeout_secs = 8, profiles = [\"standard\"], admin_access = true }",
    );
    PorticoConfig {
        sections: "[profiles.standard]\ncpus = 1\nmemory_mb = 512\ngroups = [\"analysts\"]\n"
            .into(),
        ..PorticoConfig::default()
    }
    .with_app(app)
}

async fn signed_in(portico: &Portico, email: &str) -> Visitor {
    let visitor = Visitor::new(portico, &["notes"]);
    visitor.sign_in(email, PASSWORD).await;
    visitor
}

/// What the person's instance says about itself (the request is held while it starts).
async fn notebook(portico: &Portico, visitor: &Visitor) -> Value {
    let url = portico.app_host_url("notes");
    // A page load goes through the sign-in handshake to the app's host first.
    let landing = visitor.open(&url).await;
    assert!(
        landing.status == 200 || landing.status == 503,
        "{} {}",
        landing.status,
        landing.body
    );
    let response = visitor
        .client
        .get(&url)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn status(portico: &Portico) -> String {
    let apps = portico.apps_json();
    apps["apps"][0]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn everyone_gets_a_private_instance_culled_when_idle_with_a_home_that_stays() {
    let mut portico = Portico::start(BIN, config()).await;
    assert_eq!(
        status(&portico),
        "sleeping",
        "no instance before anyone asks"
    );
    for email in ["ada@example.com", "bob@example.com"] {
        portico.add_user(email, PASSWORD, &["analysts"]);
    }
    portico.add_user("carol@example.com", PASSWORD, &[]);
    portico.add_user("root@example.com", PASSWORD, &["analysts"]);
    assert!(portico
        .cli(&["users", "set-admin", "root@example.com"])
        .status
        .success());

    // Ada's first visit: the waiting page says it is her own instance starting.
    let ada = signed_in(&portico, "ada@example.com").await;
    let first = ada.open(&portico.app_host_url("notes")).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert!(
        first.body.contains("Starting your notes app"),
        "{}",
        first.body
    );
    let hers = notebook(&portico, &ada).await;
    assert_eq!(hers["owner"], "ada@example.com");
    assert_eq!(hers["forwarded_user"], "ada@example.com");
    assert_eq!(hers["memory_limit"], "536870912", "the profile's size");
    let home = std::path::PathBuf::from(hers["home"].as_str().unwrap());
    assert!(
        home.starts_with(std::fs::canonicalize(portico.data_path("homes")).unwrap())
            || home.starts_with(portico.data_path("homes")),
        "{home:?}"
    );
    let saved = ada
        .client
        .post(format!("{}notes", portico.app_host_url("notes")))
        .body("ada's secret plan")
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);

    // Bob gets another instance, which knows nothing of Ada's notes.
    let bob = signed_in(&portico, "bob@example.com").await;
    let his = notebook(&portico, &bob).await;
    assert_eq!(his["owner"], "bob@example.com");
    assert_ne!(his["replica"], hers["replica"]);
    assert_eq!(his["notes"], "");
    assert_eq!(portico.ready_replicas("notes").len(), 2);

    // The attack: Bob sends Ada's replica cookie (as if he had copied it) with his own
    // session; he still reaches only his own instance.
    let host = format!("http://notes.localhost:{}/", portico.port);
    let cookies_of = |visitor: &Visitor| {
        use reqwest::cookie::CookieStore;
        visitor
            .jar
            .cookies(&host.parse().unwrap())
            .map(|c| c.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let adas_replica_cookie = cookies_of(&ada)
        .split("; ")
        .find(|c| c.starts_with("portico_replica_"))
        .expect("Ada holds a replica cookie")
        .to_owned();
    let bobs_session = cookies_of(&bob)
        .split("; ")
        .find(|c| c.starts_with("portico_session="))
        .expect("Bob is signed in on the app's host")
        .to_owned();
    let forged = reqwest::Client::builder()
        .resolve("notes.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap()
        .get(portico.app_host_url("notes"))
        .header(COOKIE, format!("{bobs_session}; {adas_replica_cookie}"))
        .send()
        .await
        .unwrap();
    let answer: Value = forged.json().await.unwrap();
    assert_eq!(answer["owner"], "bob@example.com", "{answer}");
    assert_eq!(answer["notes"], "");

    // Nor by asking for it by name: only administrators may open someone's instance.
    let adas_replica = hers["replica"].as_str().unwrap();
    let open_hers = format!(
        "{}_portico/instance/{adas_replica}",
        portico.app_host_url("notes")
    );
    assert_eq!(bob.get(&open_hers).await.status(), 403);
    assert_eq!(notebook(&portico, &bob).await["owner"], "bob@example.com");

    // An administrator may (per_user.admin_access = true), and is audited; then back to
    // their own instance.
    let root = signed_in(&portico, "root@example.com").await;
    root.open(&portico.app_host_url("notes")).await;
    assert_eq!(root.get(&open_hers).await.status(), 303);
    let visited = notebook(&portico, &root).await;
    assert_eq!(visited["owner"], "ada@example.com");
    assert_eq!(visited["forwarded_user"], "root@example.com");
    let audit = String::from_utf8(portico.cli(&["audit"]).stdout).unwrap();
    assert!(audit.contains("instance.opened"), "{audit}");
    let unknown = format!("{}_portico/instance/notes-0", portico.app_host_url("notes"));
    let missing = root.get(&unknown).await;
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("No such instance is running"));
    let mine = format!("{}_portico/instance/mine", portico.app_host_url("notes"));
    assert_eq!(root.get(&mine).await.status(), 303);
    assert_eq!(notebook(&portico, &root).await["owner"], "root@example.com");

    // Carol is allowed in, but no size profile is for her groups: she is told so at once.
    let carol = signed_in(&portico, "carol@example.com").await;
    carol.open(&portico.app_host_url("notes")).await;
    let refused = carol
        .client
        .get(portico.app_host_url("notes"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("None of its size profiles (standard) is for your groups"),
        "{page}"
    );
    // The waiting page reloads itself after such an answer: the reload shows the reason.
    let reloaded = carol.open(&portico.app_host_url("notes")).await;
    assert_eq!(reloaded.status, 503);
    assert!(
        reloaded.body.contains("None of its size profiles"),
        "{}",
        reloaded.body
    );
    let listing = String::from_utf8(portico.cli(&["replicas", "notes"]).stdout).unwrap();
    assert!(
        !listing.contains("carol@"),
        "none started for her: {listing}"
    );
    assert!(listing.contains("root@example.com"), "{listing}");

    // Nobody uses them for the idle timeout: all are culled, and the app sleeps.
    eventually("every instance culled", Duration::from_secs(60), || async {
        (portico.ready_replicas("notes").is_empty() && status(&portico) == "sleeping").then_some(())
    })
    .await;
    let log = portico.log();
    assert!(
        log.contains("culled ada@example.com's instance: unused for 8s; their home folder stays"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("notes.txt")).unwrap(),
        "ada's secret plan\n",
        "her home outlives the instance"
    );

    // Her next visit starts a new instance that finds her notes.
    let again = notebook(&portico, &ada).await;
    assert_ne!(again["replica"], hers["replica"], "a new instance");
    assert_eq!(again["notes"], "ada's secret plan\n");

    // And so does the first visit after Portico restarts.
    portico.signal(nix::sys::signal::Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(60)).await;
    portico.start_again().await;
    let after_restart = notebook(&portico, &ada).await;
    assert_eq!(after_restart["owner"], "ada@example.com");
    assert_eq!(after_restart["notes"], "ada's secret plan\n");
    let listing = String::from_utf8(portico.cli(&["replicas", "notes"]).stdout).unwrap();
    assert!(listing.contains("ada@example.com"), "{listing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_reaches_new_instances_while_a_running_one_keeps_its_release() {
    let portico = Portico::start(BIN, config()).await;
    for email in ["ada@example.com", "bob@example.com", "root@example.com"] {
        portico.add_user(email, PASSWORD, &["analysts"]);
    }
    assert!(portico
        .cli(&["users", "set-admin", "root@example.com"])
        .status
        .success());
    let ada = signed_in(&portico, "ada@example.com").await;
    let before = notebook(&portico, &ada).await;
    assert_eq!(before["version"], Value::Null);

    // Release 2 says which it is.
    let work = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(fixtures_dir().join("notes/app.py")).unwrap();
    std::fs::write(
        work.path().join("app.py"),
        source.replace(
            "return jsonify(\n",
            "return jsonify(\n        version=\"v2\",\n",
        ),
    )
    .unwrap();
    std::fs::copy(
        fixtures_dir().join("notes/requirements.txt"),
        work.path().join("requirements.txt"),
    )
    .unwrap();
    let made = portico.cli(&["tokens", "create", "root@example.com", "--name", "t"]);
    let token = String::from_utf8_lossy(&made.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("portico_"))
        .unwrap()
        .to_owned();
    let deployed = portico_testkit::run_cli(
        std::path::Path::new(BIN),
        &portico.config_path,
        &["deploy", work.path().to_str().unwrap(), "--app", "notes"],
        "",
        &[("PORTICO_TOKEN", &token)],
    );
    let output = String::from_utf8_lossy(&deployed.stdout).into_owned();
    assert!(
        deployed.status.success(),
        "{output}{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert!(output.contains("Release 2 of notes is live"), "{output}");
    assert!(portico.log().contains("new instances start on it"));

    // Ada's instance runs on, on release 1; Bob's new one is release 2.
    let still = notebook(&portico, &ada).await;
    assert_eq!(still["replica"], before["replica"]);
    assert_eq!(still["version"], Value::Null);
    let bob = signed_in(&portico, "bob@example.com").await;
    assert_eq!(notebook(&portico, &bob).await["version"], "v2");
}
