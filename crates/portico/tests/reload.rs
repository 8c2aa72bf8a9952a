//! Hot reload: `portico reload`, SIGHUP and saving the file apply new apps and rules while
//! established WebSockets stay open; an invalid config changes nothing and says why.

use nix::sys::signal::Signal;
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig, ShinySession};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

fn echo_app(name: &str, extra: &str) -> String {
    format!(
        "\n[[apps]]\nname = \"{name}\"\nsource = {:?}\naccess = \"public\"\n{extra}\n",
        fixtures_dir().join("echo").to_string_lossy()
    )
}

async fn status(client: &reqwest::Client, url: &str) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_an_app_while_a_websocket_to_another_stays_open() {
    let config = PorticoConfig {
        // Only `portico reload` and SIGHUP here; the watcher has its own test.
        server_extra: "watch_config = false".into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::example("r-shiny"));
    let portico = Portico::start(BIN, config).await;
    let url = format!("ws://r-shiny.localhost:{}/websocket/", portico.port);
    let mut session = ShinySession::open(portico.port, &url).await;
    session.greet("Ada", "Hello, Ada, from R-Shiny!").await;
    let r_shiny_pids = portico.replica_pids();

    // Add an app and reload through the CLI: it says what it applied.
    let original = std::fs::read_to_string(&portico.config_path).unwrap();
    std::fs::write(
        &portico.config_path,
        format!("{original}{}", echo_app("sales", "")),
    )
    .unwrap();
    let reloaded = portico.cli(&["reload"]);
    let stdout = String::from_utf8_lossy(&reloaded.stdout);
    assert!(
        reloaded.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&reloaded.stderr)
    );
    assert!(stdout.contains("app \"sales\" added"), "{stdout}");

    let client = portico.client();
    // Its path address: the test client resolves only the host names known at start.
    let sales = format!("{}apps/sales/", portico.portal_url());
    eventually(
        "the added app to serve",
        Duration::from_secs(180),
        || async { (status(&client, &sales).await == 200).then_some(()) },
    )
    .await;
    // The WebSocket opened before the reload still carries messages both ways, to the same
    // R process.
    session.greet("Grace", "Hello, Grace, from R-Shiny!").await;
    let now = portico.replica_pids();
    assert!(
        r_shiny_pids.iter().all(|pid| now.contains(pid)),
        "R-Shiny's replica was not restarted: {r_shiny_pids:?} still in {now:?}"
    );

    // An invalid config is refused with the key and the fix; everything keeps serving.
    let good = std::fs::read_to_string(&portico.config_path).unwrap();
    std::fs::write(
        &portico.config_path,
        good.replace("name = \"sales\"", "name = \"Sales Team\""),
    )
    .unwrap();
    let refused = portico.cli(&["reload"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("apps[1].name"), "{stderr}");
    assert!(stderr.contains("stays in force"), "{stderr}");
    assert_eq!(status(&client, &sales).await, 200);
    session.greet("Linus", "Hello, Linus, from R-Shiny!").await;

    // SIGHUP applies a per-app firewall rule; the other app and the WebSocket are untouched.
    std::fs::write(
        &portico.config_path,
        good.replace(
            "name = \"sales\"",
            "name = \"sales\"\nfirewall = { deny = [\"127.0.0.0/8\"] }",
        ),
    )
    .unwrap();
    portico.signal(Signal::SIGHUP);
    eventually(
        "SIGHUP to apply the rule",
        Duration::from_secs(20),
        || async { (status(&client, &sales).await == 403).then_some(()) },
    )
    .await;
    assert!(
        portico.log().contains("reload (SIGHUP)"),
        "{}",
        portico.log()
    );
    assert_eq!(status(&client, &portico.app_host_url("r-shiny")).await, 200);
    session.greet("Ada", "Hello, Ada, from R-Shiny!").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_the_config_file_reloads_it_and_a_broken_save_changes_nothing() {
    let config =
        PorticoConfig::default().with_app(AppConfig::new("sales", fixtures_dir().join("echo")));
    let portico = Portico::start(BIN, config).await;
    let sales = portico.app_host_url("sales");
    let neighbour = portico.client_from("127.0.0.2");
    assert_eq!(status(&neighbour, &sales).await, 200);

    let original = std::fs::read_to_string(&portico.config_path).unwrap();
    let denied = format!("{original}\n[firewall]\ndeny = [\"127.0.0.2\"]\n");
    std::fs::write(&portico.config_path, &denied).unwrap();
    eventually(
        "the saved firewall rule",
        Duration::from_secs(20),
        || async { (status(&neighbour, &sales).await == 403).then_some(()) },
    )
    .await;
    assert_eq!(status(&portico.client_from("127.0.0.1"), &sales).await, 200);

    // A half-written file: refused, logged with the reason, the rule above still holds.
    std::fs::write(&portico.config_path, format!("{denied}\n[firewall\n")).unwrap();
    eventually(
        "the refusal in the log",
        Duration::from_secs(20),
        || async {
            portico
                .log()
                .contains("reload (a watched file changed) refused")
                .then_some(())
        },
    )
    .await;
    assert_eq!(status(&neighbour, &sales).await, 403);
    assert_eq!(status(&portico.client_from("127.0.0.1"), &sales).await, 200);
}
