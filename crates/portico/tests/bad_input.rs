//! Bad input gets a clear message naming the problem and the fix, and breaks nothing else.

use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// Runs `portico <command> --config <config>`; returns (exit code, stderr).
fn run(command: &str, config: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(BIN)
        .args([command, "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `portico check` on a config file with this text; returns (exit code, stderr).
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/app.py"), "import streamlit as st\n").unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/readme.txt"), "not an app").unwrap();
    let path = dir.path().join("portico.toml");
    std::fs::write(&path, text).unwrap();
    let (code, message) = run("check", &path);
    (code.unwrap_or(-1), message)
}

#[test]
fn unknown_config_key_is_named_with_its_line_and_the_fix() {
    let (code, message) = check("[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n");
    assert_eq!(code, 2);
    assert!(message.contains("portico.toml"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("unknown field `lisen`"), "{message}");
    assert!(message.contains("Fix:"), "{message}");
}

#[test]
fn duplicate_app_names_are_refused() {
    let (code, message) = check("[[apps]]\nname = \"sales\"\nsource = \"app\"\n[[apps]]\nname = \"sales\"\nsource = \"app\"\n");
    assert_eq!(code, 2);
    assert!(
        message.contains("apps[1].name = \"sales\" is already the name of apps[0]"),
        "{message}"
    );
}

#[test]
fn app_name_that_is_not_a_dns_label_is_refused_with_a_suggestion() {
    let (code, message) = check("[[apps]]\nname = \"Sales_2024\"\nsource = \"app\"\n");
    assert_eq!(code, 2);
    assert!(
        message.contains("apps[0].name = \"Sales_2024\" is not a DNS label"),
        "{message}"
    );
    assert!(message.contains("\"sales-2024\""), "{message}");
}

#[test]
fn missing_app_folder_is_named() {
    let (code, message) = check("[[apps]]\nname = \"sales\"\nsource = \"missing\"\n");
    assert_eq!(code, 2);
    assert!(
        message.contains("apps[0].source = \"missing\""),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn undetectable_framework_lists_what_was_looked_for() {
    let (code, message) = check("[[apps]]\nname = \"notes\"\nsource = \"notes\"\n");
    assert_eq!(code, 2);
    assert!(message.contains("apps[0].source"), "{message}");
    assert!(message.contains("cannot tell which framework"), "{message}");
    assert!(
        message.contains("app.R, or ui.R with server.R"),
        "{message}"
    );
    assert!(
        message.contains("set framework and entrypoint"),
        "{message}"
    );
}

#[test]
fn up_refuses_the_same_config_that_check_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.toml");
    std::fs::write(&path, "[[apps]]\nname = \"x\"\nsource = \"missing\"\n").unwrap();
    let (code, message) = run("up", &path);
    assert_eq!(code, Some(2));
    assert!(message.contains("apps[0].source = \"missing\""));
    assert!(
        !dir.path().join(".portico").exists(),
        "a refused config creates nothing"
    );
}

#[test]
fn listen_address_in_use_is_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (dir, path, generated) = Portico::prepare(&PorticoConfig::default());
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("127.0.0.1:{generated}"),
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(&path, text).unwrap();
    let (code, message) = run("up", &path);
    assert_eq!(code, Some(1), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{port} is already in use")),
        "{message}"
    );
    assert!(message.contains("server.listen"), "{message}");
    drop(dir);
}

/// Sends raw bytes (so no client library normalises the path first) and returns the reply.
async fn raw_request(port: u16, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await;
    String::from_utf8_lossy(&reply).into_owned()
}

fn files_app() -> AppConfig {
    AppConfig::new("files", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"python3\", \"-m\", \"http.server\", \"$PORT\", \"--bind\", \"127.0.0.1\"]")
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_clear_refusals() {
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(files_app())).await;
    let port = portico.port;
    let get = |path: &str, host: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };

    for path in [
        "/apps/../etc/passwd",
        "/apps/files/../../x",
        "/apps/%2e%2e/x",
        "/apps/files/%2E%2e/%2e%2e/x",
        "/apps/files/%252e%252e/x",
    ] {
        let reply = raw_request(port, &get(path, "localhost")).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{path}: {reply}");
        assert!(
            reply.contains("segment, which Portico does not forward"),
            "{path}: {reply}"
        );
    }
    let reply = raw_request(port, &get("/apps/files%2f..%2f/x", "localhost")).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");

    let reply = raw_request(port, &get("/", "nosuchapp.localhost")).await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.contains("no dashboard called “nosuchapp”"), "{reply}");
    let reply = raw_request(port, &get("/", "evil.example.com")).await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(
        reply.contains("serves no site at “evil.example.com”"),
        "{reply}"
    );

    let big = "a".repeat(32 * 1024);
    let reply = raw_request(
        port,
        &format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    // None of that disturbed the app.
    let ok = portico
        .client()
        .get(portico.app_host_url("files"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn a_missing_config_file_is_named_with_the_fix() {
    let output = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/portico.toml"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        message.contains("/nonexistent/portico.toml: cannot read the config file"),
        "{message}"
    );
    assert!(message.contains("--config FILE"), "{message}");
}

#[test]
fn apps_before_portico_ever_ran_says_how_to_start_it() {
    let (dir, path, _) = Portico::prepare(&PorticoConfig::default());
    let (code, message) = run("apps", &path);
    assert_eq!(code, Some(1));
    assert!(
        message.contains("Portico has not run with the data folder"),
        "{message}"
    );
    assert!(message.contains("portico up"), "{message}");
    assert!(
        !dir.path().join("data/portico.db").exists(),
        "looking creates nothing"
    );
}

#[test]
fn sign_in_and_mail_settings_that_make_no_sense_are_refused_all_at_once() {
    let (code, message) = check(
        "[auth]\nrequire_mfa = \"sometimes\"\npassword_reset_lifetime_secs = 5\n\
         [smtp]\nhost = \"smtp.example.com\"\nsecurity = \"none\"\nfrom = \"nobody\"\n",
    );
    assert_eq!(code, 2);
    for expected in [
        "auth.require_mfa = \"sometimes\" is not a policy",
        "auth.password_reset_lifetime_secs = 5 is out of range",
        "smtp.security = \"none\" would send links that sign people in unencrypted",
        "smtp.from = \"nobody\" is not an e-mail sender",
    ] {
        assert!(message.contains(expected), "{expected} in:\n{message}");
    }
}

#[test]
fn reload_without_a_running_portico_says_so_and_an_invalid_file_changes_nothing() {
    let (dir, path, _) = Portico::prepare(&PorticoConfig::default());
    let (code, message) = run("reload", &path);
    assert_eq!(code, Some(1), "{message}");
    assert!(message.contains("no Portico is running"), "{message}");
    assert!(message.contains("portico up"), "{message}");

    std::fs::write(&path, "[server\n").unwrap();
    let (code, message) = run("reload", &path);
    assert_eq!(code, Some(2), "{message}");
    assert!(message.contains("stays in force"), "{message}");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_of_an_unknown_app_names_the_apps_there_are() {
    let app = AppConfig::new("sales", fixtures_dir().join("echo"));
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    let output = portico.cli(&["replicas", "saless"]);
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        message.contains("there is no app \"saless\"; the apps are: sales"),
        "{message}"
    );
    // Before Portico ever ran on a data folder, it says how to start it, as `apps` does.
    let (_dir, path, _) = Portico::prepare(&PorticoConfig::default());
    let (code, message) = run("replicas", &path);
    assert_eq!(code, Some(1));
    assert!(message.contains("start it with `portico up`"), "{message}");
}
