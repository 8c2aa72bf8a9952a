//! Push to deploy, as an analyst lives it: `portico deploy` ships a new version of a real
//! Dash dashboard while someone is using the old one. Their open WebSocket and their
//! sticky session stay on the old replica; new sessions get the new version; the old
//! replica goes once the last session on it has ended. A broken version never replaces a
//! working one, rollback serves an earlier release again, and neither a token without
//! rights nor a malicious archive gets anywhere.

use futures_util::{SinkExt, StreamExt};
use portico_testkit::{eventually, fixtures_dir, AppConfig, Portico, PorticoConfig};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const APP: &str = "board";

/// A copy of the versioned Dash fixture that says `version`.
fn version(parent: &Path, version: &str) -> PathBuf {
    let dir = parent.join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = fixtures_dir().join("versioned-dash");
    for file in ["app.py", "requirements.txt"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join("VERSION"), format!("{version}\n")).unwrap();
    dir
}

/// A token for `email`, made with the CLI (printed once).
fn token(portico: &Portico, email: &str, scope: &str) -> String {
    let made = portico.cli(&[
        "tokens", "create", email, "--name", "test", "--scope", scope,
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8_lossy(&made.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("portico_"))
        .expect("the token is printed")
        .to_owned()
}

/// Runs a deploy command (`deploy DIR`, `rollback`, …) as the holder of `token`.
fn as_holder(portico: &Portico, token: &str, args: &[&str]) -> Output {
    portico_testkit::run_cli(
        Path::new(BIN),
        &portico.config_path,
        args,
        "",
        &[("PORTICO_TOKEN", token)],
    )
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a client with this sticky cookie (or none) sees as the dashboard's version, and the
/// cookie it is given.
async fn layout_version(portico: &Portico, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = portico
        .client()
        .get(format!("{}_dash-layout", portico.app_host_url(APP)));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let sticky = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("portico_replica_{APP}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let layout = response.text().await.unwrap();
    let version = ["v1", "v2", "v3"]
        .into_iter()
        .find(|v| layout.contains(&format!("Release {v}")))
        .unwrap_or_else(|| panic!("no version in the layout: {layout}"));
    (version.to_owned(), sticky)
}

fn ready_replicas(portico: &Portico) -> Vec<String> {
    portico
        .ready_replicas(APP)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn start(dir: &Path) -> Portico {
    let app = AppConfig::new(APP, version(dir, "v1")).with(
        // Sessions end 4 s after their last request (the drain waits for that).
        "owners = { groups = [\"analysts\"] }\nscale = { idle_timeout_secs = 4 }",
    );
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(app)).await;
    portico.add_user("ada@example.com", "a-long-enough-password-1", &["analysts"]);
    portico.add_user("bob@example.com", "a-long-enough-password-2", &[]);
    portico
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_reaches_new_sessions_while_an_open_session_stays_on_its_release_until_it_ends() {
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    let ada = token(&portico, "ada@example.com", "deploy");

    // Someone is using release 1: a sticky session with a live WebSocket.
    let (seen, cookie) = layout_version(&portico, None).await;
    assert_eq!(seen, "v1");
    let cookie = cookie.expect("the first visit gets a sticky cookie");
    let mut request = format!("ws://{APP}.localhost:{}/ws", portico.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let mut socket = open_websocket_with(portico.port, request).await;
    assert_eq!(echo(&mut socket, "hello").await, "v1: hello");
    let old_replicas = ready_replicas(&portico);
    assert_eq!(old_replicas.len(), 1);

    let v2 = version(work.path(), "v2");
    let deployed = as_holder(
        &portico,
        &ada,
        &["deploy", v2.to_str().unwrap(), "--app", APP],
    );
    let output = printed(&deployed);
    assert!(deployed.status.success(), "{output}");
    assert!(output.contains("Release 2 of board is live"), "{output}");
    assert!(
        output.contains("Building release 2"),
        "the build log is shown: {output}"
    );

    // The open session still works, on release 1.
    assert_eq!(echo(&mut socket, "still there?").await, "v1: still there?");
    assert_eq!(layout_version(&portico, Some(&cookie)).await.0, "v1");
    assert_eq!(portico.apps_json()["apps"][0]["release"], 2);
    // A new session gets release 2.
    let (fresh, _) = layout_version(&portico, None).await;
    assert_eq!(fresh, "v2");
    let replicas = ready_replicas(&portico);
    assert_eq!(replicas.len(), 2, "the old replica drains: {replicas:?}");

    // The session ends; the old replica goes, the new one stays.
    socket.close(None).await.unwrap();
    drop(socket);
    let remaining = eventually(
        "the release 1 replica to stop once its last session ended",
        Duration::from_secs(60),
        || async {
            let replicas = ready_replicas(&portico);
            (replicas.len() == 1 && !replicas.contains(&old_replicas[0])).then_some(replicas)
        },
    )
    .await;
    assert_eq!(layout_version(&portico, None).await.0, "v2");
    assert!(!remaining.contains(&old_replicas[0]));

    let listed = printed(&as_holder(&portico, &ada, &["releases", APP]));
    assert!(listed.contains("live"), "{listed}");
    assert!(listed.contains("ada@example.com"), "{listed}");
    let json = as_holder(&portico, &ada, &["releases", APP, "--json"]);
    let releases: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let second = &releases[0];
    assert_eq!(
        (second["number"].as_i64(), second["state"].as_str()),
        (Some(2), Some("live"))
    );
    assert_eq!(second["origin"], "upload");
    assert_eq!(
        second["environment"], releases[1]["environment"],
        "the same requirements share one environment: {releases}"
    );
    assert!(!second["environment"].as_str().unwrap().is_empty());
    let audit = portico.cli(&["audit", "--json"]);
    let actions = portico_testkit::audit_actions(&audit.stdout);
    assert!(actions.contains(&"app.deploy".to_owned()), "{actions:?}");
}

async fn open_websocket_with(
    port: u16,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("the WebSocket opens through Portico");
    assert_eq!(response.status(), 101);
    socket
}

async fn echo(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    text: &str,
) -> String {
    socket.send(Message::text(text)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), socket.next())
        .await
        .expect("the dashboard answers")
        .expect("the socket is open")
        .expect("a message");
    answer.into_text().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_release_leaves_the_live_one_serving_and_rollback_brings_back_an_earlier_one() {
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    let ada = token(&portico, "ada@example.com", "deploy:board");

    let v2 = version(work.path(), "v2");
    let deployed = as_holder(
        &portico,
        &ada,
        &["deploy", v2.to_str().unwrap(), "--app", APP],
    );
    assert!(deployed.status.success(), "{}", printed(&deployed));
    assert_eq!(layout_version(&portico, None).await.0, "v2");

    // A version whose requirements cannot be installed.
    let broken = version(work.path(), "v3");
    std::fs::copy(
        fixtures_dir().join("broken-requirements/requirements.txt"),
        broken.join("requirements.txt"),
    )
    .unwrap();
    let failed = as_holder(
        &portico,
        &ada,
        &["deploy", broken.to_str().unwrap(), "--app", APP],
    );
    let output = printed(&failed);
    assert!(!failed.status.success(), "{output}");
    assert!(
        output.contains("portico-missing-package"),
        "the installer's error is shown: {output}"
    );
    assert!(output.contains("did not go live (failed)"), "{output}");
    assert_eq!(
        layout_version(&portico, None).await.0,
        "v2",
        "release 2 still serves"
    );

    // Back to release 1 (the app's folder in the config), then to the one before the live.
    let back = as_holder(&portico, &ada, &["rollback", APP, "1"]);
    assert!(back.status.success(), "{}", printed(&back));
    assert_eq!(layout_version(&portico, None).await.0, "v1");
    let refused = as_holder(&portico, &ada, &["rollback", APP, "3"]);
    assert!(!refused.status.success());
    assert!(
        printed(&refused).contains("it never ran"),
        "{}",
        printed(&refused)
    );
    let forward = as_holder(&portico, &ada, &["rollback", APP, "2"]);
    assert!(forward.status.success(), "{}", printed(&forward));
    assert_eq!(layout_version(&portico, None).await.0, "v2");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_owners_with_a_token_scoped_for_the_app_may_deploy_it() {
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    let v2 = version(work.path(), "v2");
    let v2 = v2.to_str().unwrap();

    let bob = token(&portico, "bob@example.com", "deploy");
    let refused = as_holder(&portico, &bob, &["deploy", v2, "--app", APP]);
    assert!(!refused.status.success());
    assert!(
        printed(&refused).contains("bob@example.com is not an owner of \"board\""),
        "{}",
        printed(&refused)
    );

    let elsewhere = token(&portico, "ada@example.com", "deploy:sales");
    let refused = as_holder(&portico, &elsewhere, &["deploy", v2, "--app", APP]);
    assert!(printed(&refused).contains("this token may not deploy \"board\""));

    let nobody = as_holder(
        &portico,
        "portico_not-a-real-token",
        &["deploy", v2, "--app", APP],
    );
    assert!(
        printed(&nobody).contains("not valid"),
        "{}",
        printed(&nobody)
    );

    // Straight at the API, without a token and with a session-less browser.
    let response = portico
        .client()
        .post(format!(
            "{}api/v1/apps/{APP}/releases",
            portico.portal_url()
        ))
        .body("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        layout_version(&portico, None).await.0,
        "v1",
        "nothing was deployed"
    );
}

/// A gzip-compressed tar with one entry named `name` (any bytes, `..` included), made by
/// Python's tarfile, which writes what it is told.
fn archive_with_entry(dir: &Path, name: &str, kind: &str) -> Vec<u8> {
    let path = dir.join("evil.tar.gz");
    let script = r#"
import io, sys, tarfile
path, name, kind = sys.argv[1:4]
with tarfile.open(path, "w:gz") as tar:
    info = tarfile.TarInfo(name)
    if kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc"
        tar.addfile(info)
    elif kind == "bomb":
        data = b"\0" * (64 * 1024 * 1024)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        data = b"pwned"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
"#;
    let made = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), name, kind])
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::read(path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn malicious_archives_are_refused_and_write_nothing_outside_the_release() {
    let work = tempfile::tempdir().unwrap();
    let app = AppConfig::new(APP, version(work.path(), "v1"))
        .with("owners = { users = [\"ada@example.com\"] }");
    let portico = Portico::start(
        BIN,
        PorticoConfig {
            // A bomb: 64 MiB unpacked from a few kilobytes, over this limit.
            sections: "[deploy]\nmax_upload_bytes = 1048576\nmax_unpacked_bytes = 16777216\n"
                .into(),
            ..PorticoConfig::default()
        }
        .with_app(app),
    )
    .await;
    portico.add_user("ada@example.com", "a-long-enough-password-1", &[]);
    let ada = token(&portico, "ada@example.com", "deploy");
    let cases = [
        ("../escaped.txt", "file", "refused \"../escaped.txt\""),
        (
            "/tmp/portico-absolute.txt",
            "file",
            "refused \"/tmp/portico-absolute.txt\"",
        ),
        ("link", "symlink", "refused \"link\""),
        ("zeros.bin", "bomb", "more than 16777216 bytes"),
    ];
    for (name, kind, expected) in cases {
        let archive = archive_with_entry(work.path(), name, kind);
        let response = portico
            .client()
            .post(format!(
                "{}api/v1/apps/{APP}/releases",
                portico.portal_url()
            ))
            .bearer_auth(&ada)
            .body(archive)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(status.is_client_error(), "{name}: {status} {body}");
        assert!(error.contains(expected), "{name}: {error}");
        assert!(error.contains("nothing was deployed"), "{name}: {error}");
    }
    assert!(!Path::new("/tmp/portico-absolute.txt").exists());
    let releases_dir = portico.data_path(&format!("releases/{APP}"));
    assert!(!releases_dir.join("escaped.txt").exists());
    assert!(!portico.data_path("releases/escaped.txt").exists());
    let left: Vec<_> = std::fs::read_dir(&releases_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != ".uploads")
        .collect();
    assert!(
        left.is_empty(),
        "a refused bundle leaves no release folder: {left:?}"
    );
    let uploads: Vec<_> = std::fs::read_dir(releases_dir.join(".uploads"))
        .unwrap()
        .collect();
    assert!(uploads.is_empty(), "nor its upload");

    // Too large an upload is refused before it is read.
    let response = portico
        .client()
        .post(format!(
            "{}api/v1/apps/{APP}/releases",
            portico.portal_url()
        ))
        .bearer_auth(&ada)
        .body(vec![0u8; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Not a tar.gz, and not an app.
    let response = portico
        .client()
        .post(format!(
            "{}api/v1/apps/{APP}/releases",
            portico.portal_url()
        ))
        .bearer_auth(&ada)
        .body("not an archive")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("README.md"), "no app here").unwrap();
    let output = as_holder(
        &portico,
        &ada,
        &["deploy", empty.to_str().unwrap(), "--app", APP],
    );
    assert!(!output.status.success());
    assert!(
        printed(&output)
            .contains("cannot tell which framework the app in the uploaded folder uses"),
        "{}",
        printed(&output)
    );
    assert_eq!(layout_version(&portico, None).await.0, "v1");
}

/// Runs the real git client in `dir`, with no config of the machine's or the user's.
fn git(dir: &Path, args: &[&str]) -> Output {
    let home = dir.parent().unwrap().join("git-home");
    std::fs::create_dir_all(&home).unwrap();
    std::process::Command::new("git")
        .args(["-c", "user.email=ada@example.com", "-c", "user.name=Ada"])
        .args(args)
        .current_dir(dir)
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn git_push_deploys_and_a_push_that_cannot_build_is_refused_with_the_installers_error() {
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    let ada = token(&portico, "ada@example.com", "deploy:board");
    let remote = |token: &str| {
        format!(
            "http://git:{token}@localhost:{}/git/{APP}.git",
            portico.port
        )
    };

    let repo = version(work.path(), "v2");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-qm", "v2"],
    ] {
        assert!(git(&repo, args).status.success());
    }
    let pushed = git(&repo, &["push", &remote(&ada), "main"]);
    let output = printed(&pushed);
    assert!(pushed.status.success(), "{output}");
    assert!(
        output.contains("remote: Building release 2 (dash)"),
        "{output}"
    );
    assert!(output.contains("Release 2 of board is live"), "{output}");
    assert_eq!(layout_version(&portico, None).await.0, "v2");
    let listed = printed(&as_holder(&portico, &ada, &["releases", APP]));
    let commit = String::from_utf8_lossy(&git(&repo, &["rev-parse", "HEAD"]).stdout)
        .trim()
        .to_owned();
    assert!(
        listed.contains(&commit[..10]),
        "the commit is recorded: {listed}"
    );

    // A commit whose requirements cannot be installed: the push is refused, v2 serves on.
    std::fs::write(repo.join("VERSION"), "v3\n").unwrap();
    std::fs::copy(
        fixtures_dir().join("broken-requirements/requirements.txt"),
        repo.join("requirements.txt"),
    )
    .unwrap();
    assert!(git(&repo, &["commit", "-qam", "v3, broken"])
        .status
        .success());
    let refused = git(&repo, &["push", &remote(&ada), "main"]);
    let output = printed(&refused);
    assert!(!refused.status.success(), "{output}");
    assert!(
        output.contains("portico-missing-package"),
        "the installer's error: {output}"
    );
    assert!(output.contains("pre-receive hook declined"), "{output}");
    assert_eq!(layout_version(&portico, None).await.0, "v2");

    // Neither a non-owner nor a token scoped for another app may push.
    let bob = token(&portico, "bob@example.com", "deploy");
    let output = printed(&git(&repo, &["push", &remote(&bob), "main"]));
    assert!(
        output.contains("bob@example.com is not an owner of \"board\""),
        "{output}"
    );
    let elsewhere = token(&portico, "ada@example.com", "deploy:sales");
    let output = printed(&git(&repo, &["push", &remote(&elsewhere), "main"]));
    assert!(
        output.contains("this token may not deploy \"board\""),
        "{output}"
    );
    let output = printed(&git(
        &repo,
        &[
            "push",
            &format!("http://localhost:{}/git/{APP}.git", portico.port),
            "main",
        ],
    ));
    assert!(!output.contains("Release"), "{output}");
    assert_eq!(
        layout_version(&portico, None).await.0,
        "v2",
        "nothing else was deployed"
    );
}

/// The bundle `portico deploy` would upload for `dir`.
fn bundle_of(dir: &Path) -> Vec<u8> {
    portico_build::bundle::pack(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploys_sent_at_once_are_queued_and_rolled_out_one_after_the_other() {
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    let ada = token(&portico, "ada@example.com", "deploy");
    let url = format!("{}api/v1/apps/{APP}/releases", portico.portal_url());
    let client = portico.client();
    let send = |version: &str| {
        let body = bundle_of(&self::version(work.path(), version));
        client.post(&url).bearer_auth(&ada).body(body).send()
    };
    let (second, third) = tokio::join!(send("v2"), send("v3"));
    let mut numbers = Vec::new();
    for response in [second.unwrap(), third.unwrap()] {
        assert_eq!(response.status(), 202);
        let release: serde_json::Value = response.json().await.unwrap();
        numbers.push(release["number"].as_i64().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, [2, 3], "each deploy is its own release");
    let show = |number: i64| {
        let request = client
            .get(format!("{url}/{number}"))
            .bearer_auth(&ada)
            .send();
        async move {
            let release: serde_json::Value = request.await.ok()?.json().await.ok()?;
            Some(release)
        }
    };
    eventually(
        "both deploys to settle",
        Duration::from_secs(120),
        || async {
            let (a, b) = (show(2).await?, show(3).await?);
            let settled = |r: &serde_json::Value| {
                ["live", "superseded"].contains(&r["state"].as_str().unwrap_or(""))
            };
            (settled(&a) && settled(&b)).then_some(())
        },
    )
    .await;
    assert_eq!(
        show(3).await.unwrap()["state"],
        "live",
        "the later deploy went live last"
    );
    assert_eq!(show(2).await.unwrap()["state"], "superseded");
    // The supervisor's events show one rollout finishing before the next began.
    let log = portico.log();
    let live_2 = log.find("release 2 is live").expect("release 2 went live");
    let building_3 = log
        .find("deploying release 3")
        .expect("release 3 was built");
    assert!(live_2 < building_3, "rollouts interleaved:\n{log}");
}

const WEBHOOK_SECRET: &str = "a-webhook-secret-long-enough-0123";

/// The headers GitHub sends with a push event whose body is `body`, signed with `secret`.
fn github_push(secret: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "push".into()),
        ("x-hub-signature-256", github_signature(secret, body)),
    ]
}

/// GitHub's signature of `body`: `sha256=` and the hex HMAC-SHA256 with the secret.
fn github_signature(secret: &str, body: &str) -> String {
    let script = "import hmac, hashlib, sys; print('sha256=' + hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())";
    let output = std::process::Command::new("python3")
        .args(["-c", script, secret, body])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_push_webhook_fetches_the_branch_and_deploys_it_and_an_unsigned_one_does_nothing()
{
    let work = tempfile::tempdir().unwrap();
    // The "forge": a repository on this machine that Portico fetches from.
    let upstream = version(work.path(), "v2");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-qm", "v2"],
    ] {
        assert!(git(&upstream, args).status.success());
    }
    let app = AppConfig::new(APP, version(work.path(), "v1")).with(&format!(
        "webhook = {{ repository = {:?}, secret_env = \"BOARD_WEBHOOK_SECRET\" }}",
        upstream.to_string_lossy()
    ));
    let config = PorticoConfig {
        env: vec![("BOARD_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into())],
        ..PorticoConfig::default()
    }
    .with_app(app);
    let portico = Portico::start(BIN, config).await;
    let url = format!("{}api/v1/apps/{APP}/webhook", portico.portal_url());
    let client = portico.client();
    let post = |body: &'static str, headers: Vec<(&'static str, String)>| {
        let mut request = client.post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let push = r#"{"ref": "refs/heads/main", "after": "0000000000000000000000000000000000000000"}"#;

    let unsigned = post(push, vec![("x-github-event", "push".into())])
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = post(push, github_push("another-secret-of-enough-length", push))
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("signature does not match"));
    let wrong_token = post(
        push,
        vec![
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-token", "guess".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(wrong_token.status(), 401);
    let other_branch = r#"{"ref": "refs/heads/feature"}"#;
    let ignored = post(other_branch, github_push(WEBHOOK_SECRET, other_branch))
        .await
        .unwrap();
    assert_eq!(ignored.status(), 202);
    assert!(ignored
        .text()
        .await
        .unwrap()
        .contains("only main is deployed"));
    assert_eq!(
        layout_version(&portico, None).await.0,
        "v1",
        "nothing was deployed"
    );

    let signed = post(push, github_push(WEBHOOK_SECRET, push)).await.unwrap();
    assert_eq!(signed.status(), 202);
    eventually(
        "the pushed branch to be live",
        Duration::from_secs(120),
        || async { (layout_version(&portico, None).await.0 == "v2").then_some(()) },
    )
    .await;
    // GitLab's convention works too: a new commit, announced with the token.
    std::fs::write(upstream.join("VERSION"), "v3\n").unwrap();
    assert!(git(&upstream, &["commit", "-qam", "v3"]).status.success());
    let gitlab = post(
        push,
        vec![
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-token", WEBHOOK_SECRET.into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(gitlab.status(), 202);
    eventually(
        "the second push to be live",
        Duration::from_secs(120),
        || async { (layout_version(&portico, None).await.0 == "v3").then_some(()) },
    )
    .await;
    let audit = portico.cli(&["audit", "--json"]);
    let actions = portico_testkit::audit_actions(&audit.stdout);
    assert_eq!(
        actions.iter().filter(|a| *a == "app.webhook").count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_the_portal_an_owner_makes_a_token_that_deploys_and_an_admin_rolls_back() {
    use portico_testkit::Visitor;
    let work = tempfile::tempdir().unwrap();
    let portico = start(work.path()).await;
    portico.add_user("root@example.com", "keeper-of-the-keys-7", &[]);
    assert!(portico
        .cli(&["users", "set-admin", "root@example.com"])
        .status
        .success());

    let ada = Visitor::new(&portico, &[]);
    ada.sign_in("ada@example.com", "a-long-enough-password-1")
        .await;
    let forged = portico
        .client()
        .post(format!("{}_portico/account/tokens", portico.portal_url()))
        .form(&[("name", "x"), ("scope", "deploy"), ("days", "30")])
        .send()
        .await
        .unwrap();
    assert_ne!(
        forged.status(),
        200,
        "no session and no CSRF token: nothing is made"
    );
    let bad = ada
        .post_form(
            "/_portico/account/tokens",
            &[("name", "laptop"), ("scope", "admin"), ("days", "30")],
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("is not a scope"));
    let made = ada
        .post_form(
            "/_portico/account/tokens",
            &[
                ("name", "laptop"),
                ("scope", "deploy:board"),
                ("days", "30"),
            ],
        )
        .await;
    assert_eq!(made.status(), 200);
    let page = made.text().await.unwrap();
    let start_at = page
        .find("<pre id=\"new-token\">")
        .expect("the token is shown once")
        + 20;
    let token = page[start_at..].split('<').next().unwrap().to_owned();
    assert!(token.starts_with("portico_"), "{token}");
    let listed = ada.page("/_portico/account/tokens").await;
    assert!(
        listed.contains("laptop") && listed.contains("deploy:board") && listed.contains("active")
    );
    assert!(!listed.contains(&token), "shown only once");

    let v2 = version(work.path(), "v2");
    let deployed = as_holder(
        &portico,
        &token,
        &["deploy", v2.to_str().unwrap(), "--app", APP],
    );
    assert!(deployed.status.success(), "{}", printed(&deployed));
    assert_eq!(layout_version(&portico, None).await.0, "v2");

    // Bob cannot revoke Ada's token, even knowing its id.
    let id = listed
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let bob = Visitor::new(&portico, &[]);
    bob.sign_in("bob@example.com", "a-long-enough-password-2")
        .await;
    let refused = bob
        .post_form("/_portico/account/tokens/revoke", &[("id", &id)])
        .await;
    assert_eq!(refused.status(), 404);

    // An administrator rolls back from the status page.
    let root = Visitor::new(&portico, &[]);
    root.sign_in("root@example.com", "keeper-of-the-keys-7")
        .await;
    let status_page = root.page("/_portico/admin/apps").await;
    assert!(status_page.contains("Roll back to 1"), "{status_page}");
    let refused = bob
        .post_form(
            "/_portico/admin/apps/rollback",
            &[("app", APP), ("release", "1")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let rolled = root
        .post_form(
            "/_portico/admin/apps/rollback",
            &[("app", APP), ("release", "1")],
        )
        .await;
    assert_eq!(rolled.status(), 200);
    assert!(rolled
        .text()
        .await
        .unwrap()
        .contains("Rolling board back to release 1"));
    eventually(
        "release 1 to be live again",
        Duration::from_secs(60),
        || async { (layout_version(&portico, None).await.0 == "v1").then_some(()) },
    )
    .await;

    // Ada revokes her token; it deploys no more.
    let revoked = ada
        .post_form("/_portico/account/tokens/revoke", &[("id", &id)])
        .await;
    assert!(revoked.text().await.unwrap().contains("is revoked"));
    let after = as_holder(
        &portico,
        &token,
        &["deploy", v2.to_str().unwrap(), "--app", APP],
    );
    assert!(printed(&after).contains("revoked"), "{}", printed(&after));
}

/// What a signed-in visitor sees of a new app's version, by its path address.
async fn version_seen_by(visitor: &portico_testkit::Visitor, app: &str) -> (u16, String) {
    let response = visitor
        .get(&format!("{}/apps/{app}/_dash-layout", visitor.portal()))
        .await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let version = ["v1", "v2", "v3"]
        .into_iter()
        .find(|v| body.contains(&format!("Release {v}")))
        .unwrap_or("none");
    (status, version.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creator_makes_a_new_app_by_deploying_to_a_new_name_and_it_outlives_a_restart() {
    use nix::sys::signal::Signal;
    use portico_testkit::Visitor;
    let work = tempfile::tempdir().unwrap();
    let app = AppConfig::new(APP, version(work.path(), "v1"));
    let config = PorticoConfig {
        sections: "[deploy]\ncreators = { groups = [\"analysts\"] }\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(app);
    let mut portico = Portico::start(BIN, config).await;
    portico.add_user("ada@example.com", "a-long-enough-password-1", &["analysts"]);
    portico.add_user("bob@example.com", "a-long-enough-password-2", &[]);
    let ada = token(&portico, "ada@example.com", "deploy");
    let bob = token(&portico, "bob@example.com", "deploy");
    let v2 = version(work.path(), "v2");
    let v2 = v2.to_str().unwrap();

    let refused = as_holder(&portico, &bob, &["deploy", v2, "--app", "fresh"]);
    assert!(!refused.status.success());
    assert!(
        printed(&refused).contains("bob@example.com may not make one"),
        "{}",
        printed(&refused)
    );
    let bad_name = as_holder(&portico, &ada, &["deploy", v2, "--app", "Not_A_Name"]);
    assert!(
        printed(&bad_name).contains("cannot name an app"),
        "{}",
        printed(&bad_name)
    );

    let made = as_holder(&portico, &ada, &["deploy", v2, "--app", "fresh"]);
    let output = printed(&made);
    assert!(made.status.success(), "{output}");
    assert!(output.contains("Release 1 of fresh is live"), "{output}");

    // Only its creator (and admins) may open it, until an operator declares it.
    let ada_browser = Visitor::new(&portico, &[]);
    ada_browser
        .sign_in("ada@example.com", "a-long-enough-password-1")
        .await;
    assert_eq!(
        version_seen_by(&ada_browser, "fresh").await,
        (200, "v2".into())
    );
    let bob_browser = Visitor::new(&portico, &[]);
    bob_browser
        .sign_in("bob@example.com", "a-long-enough-password-2")
        .await;
    assert_eq!(version_seen_by(&bob_browser, "fresh").await.0, 403);
    let bobs_deploy = as_holder(&portico, &bob, &["deploy", v2, "--app", "fresh"]);
    assert!(printed(&bobs_deploy).contains("is not an owner of \"fresh\""));

    // A reload keeps it; so does a restart, on its live release.
    assert!(portico.cli(&["reload"]).status.success());
    assert_eq!(
        version_seen_by(&ada_browser, "fresh").await,
        (200, "v2".into())
    );
    portico.signal(Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(30)).await;
    portico.start_again().await;
    eventually(
        "the made app to serve after a restart",
        Duration::from_secs(60),
        || async {
            (version_seen_by(&ada_browser, "fresh").await == (200, "v2".into())).then_some(())
        },
    )
    .await;
    let v3 = version(work.path(), "v3");
    let again = as_holder(
        &portico,
        &ada,
        &["deploy", v3.to_str().unwrap(), "--app", "fresh"],
    );
    assert!(
        printed(&again).contains("Release 2 of fresh is live"),
        "{}",
        printed(&again)
    );
    // Her open session stays on release 1; a new one gets release 2.
    assert_eq!(
        version_seen_by(&ada_browser, "fresh").await,
        (200, "v2".into())
    );
    let new_session = Visitor::new(&portico, &[]);
    new_session
        .sign_in("ada@example.com", "a-long-enough-password-1")
        .await;
    assert_eq!(
        version_seen_by(&new_session, "fresh").await,
        (200, "v3".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_still_on_the_old_release_at_the_drain_deadline_is_ended() {
    let work = tempfile::tempdir().unwrap();
    let app = AppConfig::new(APP, version(work.path(), "v1"))
        .with("owners = { users = [\"ada@example.com\"] }");
    let config = PorticoConfig {
        sections: "[deploy]\ndrain_timeout_secs = 2\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(app);
    let portico = Portico::start(BIN, config).await;
    portico.add_user("ada@example.com", "a-long-enough-password-1", &[]);
    let ada = token(&portico, "ada@example.com", "deploy");
    let (_, cookie) = layout_version(&portico, None).await;
    let mut request = format!("ws://{APP}.localhost:{}/ws", portico.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.unwrap().parse().unwrap());
    let mut socket = open_websocket_with(portico.port, request).await;
    assert_eq!(echo(&mut socket, "hello").await, "v1: hello");
    let old = ready_replicas(&portico);

    let v2 = version(work.path(), "v2");
    let deployed = as_holder(
        &portico,
        &ada,
        &["deploy", v2.to_str().unwrap(), "--app", APP],
    );
    assert!(deployed.status.success(), "{}", printed(&deployed));
    eventually(
        "the old replica to stop at the drain deadline",
        Duration::from_secs(30),
        || async { (!ready_replicas(&portico).contains(&old[0])).then_some(()) },
    )
    .await;
    // The session on it has ended: its socket is closed.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the WebSocket on the stopped replica was closed"
    );
    assert!(portico
        .log()
        .contains("sessions were still on it when deploy.drain_timeout_secs passed"));
}
