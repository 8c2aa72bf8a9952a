//! Accounts and groups from the terminal, and the first administrator.

use portico_testkit::{audit_actions, fixtures_dir, run_cli, AppConfig, Portico, PorticoConfig};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// A config (and its folder) for CLI commands; no Portico is started.
struct Terminal {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Terminal {
    fn new() -> Terminal {
        let (dir, config, _) = Portico::prepare(&PorticoConfig::default());
        Terminal { _dir: dir, config }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_cli(BIN.as_ref(), &self.config, args, stdin, &[("USER", "ops")])
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    fn refused(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run_with_stdin(args, stdin);
        assert_eq!(output.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8(output.stderr).unwrap()
    }

    fn users(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["users", "list", "--json"])).unwrap()
    }

    /// `portico tokens list [EMAIL] --json`, parsed.
    fn tokens(&self, email: Option<&str>) -> serde_json::Value {
        let mut args = vec!["tokens", "list", "--json"];
        args.extend(email);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

#[test]
fn an_operator_manages_users_and_groups_and_every_change_is_audited() {
    let t = Terminal::new();
    let added = t.run_with_stdin(
        &[
            "users",
            "add",
            "Ada@Example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
        ],
        "analytical-engine-1843\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&added.stdout),
        "Added ada@example.com.\n"
    );

    let boss = t.ok(&["users", "add", "boss@example.com", "--admin"]);
    assert!(
        boss.contains("Added boss@example.com as an administrator."),
        "{boss}"
    );
    let password = boss.lines().last().unwrap().trim();
    assert_eq!(
        password.len(),
        20,
        "a generated password is shown once: {boss}"
    );

    t.ok(&["groups", "add", "sales"]);
    assert!(t
        .ok(&["groups", "add-member", "sales", "ADA@example.com"])
        .contains("ada@example.com is in \"sales\""));
    let users = t.users();
    let ada = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .unwrap();
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["groups"], serde_json::json!(["sales"]));
    assert!(t.ok(&["groups", "list"]).contains("sales"));

    t.ok(&["users", "disable", "ada@example.com"]);
    assert_eq!(t.users()[0]["disabled"], true);
    t.ok(&["users", "enable", "ada@example.com"]);
    t.ok(&["users", "set-admin", "ada@example.com"]);
    t.ok(&["users", "set-admin", "boss@example.com", "--revoke"]);
    let reset = t.ok(&["users", "reset-password", "ada@example.com"]);
    assert!(reset.contains("shown only this once"), "{reset}");
    t.ok(&["groups", "remove-member", "sales", "ada@example.com"]);

    let audit_json = t.ok(&["audit", "--json"]);
    let audit: serde_json::Value = serde_json::from_str(&audit_json).unwrap();
    let actions = audit_actions(audit_json.as_bytes());
    assert_eq!(
        actions,
        [
            "user.add",
            "user.add",
            "group.add",
            "group.add-member",
            "user.disable",
            "user.enable",
            "user.grant-admin",
            "user.revoke-admin",
            "user.reset-password",
            "group.remove-member"
        ]
    );
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["actor"] == "cli:ops"));
    let text = t.ok(&["audit"]);
    assert!(!text.contains(password), "no password in the audit log");
}

#[test]
fn bad_account_input_gets_a_clear_refusal_and_changes_nothing() {
    let t = Terminal::new();
    t.ok(&["users", "add", "boss@example.com", "--admin"]);
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["users", "add", "not-an-address"],
            "",
            "\"not-an-address\" is not an e-mail address; write it as name@example.com",
        ),
        (
            &["users", "add", &format!("{}@example.com", "a".repeat(300))],
            "",
            "at most 254 characters",
        ),
        (
            &["users", "add", "ada@example.com", "--password-stdin"],
            "short\n",
            "too short: use at least 12 characters",
        ),
        (
            &["users", "add", "ada@example.com", "--password-stdin"],
            &format!("{}\n", "x".repeat(300)),
            "too long",
        ),
        (
            &["users", "add", "ada@example.com", "--password-stdin"],
            "Password2024!\n",
            "most common passwords",
        ),
        (
            &["users", "add", "ada@example.com", "--password-stdin"],
            "",
            "no password on standard input",
        ),
        (
            &["users", "add", "BOSS@example.com"],
            "",
            "a user with the e-mail boss@example.com already exists",
        ),
        (
            &["users", "disable", "nobody@example.com"],
            "",
            "there is no user with the e-mail nobody@example.com",
        ),
        (
            &["users", "disable", "boss@example.com"],
            "",
            "boss@example.com is the last enabled admin",
        ),
        (
            &["users", "set-admin", "boss@example.com", "--revoke"],
            "",
            "last enabled admin",
        ),
        (
            &["groups", "add-member", "ghosts", "boss@example.com"],
            "",
            "there is no group named \"ghosts\"; create it with `portico groups add ghosts`",
        ),
        (&["groups", "add", "../etc"], "", "is not a group name"),
    ];
    for (args, stdin, expected) in cases {
        let message = t.refused(args, stdin);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    let users = t.users();
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "nothing was added: {users}"
    );
    assert_eq!(users[0]["admin"], true);
    assert_eq!(users[0]["disabled"], false);
}

fn files_app() -> AppConfig {
    AppConfig::new("files", fixtures_dir().join("echo"))
        .with("framework = \"command\"")
        .with("command = [\"python3\", \"-m\", \"http.server\", \"$PORT\", \"--bind\", \"127.0.0.1\"]")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_start_creates_an_administrator_and_shows_the_password_once_outside_the_log() {
    let portico = Portico::start(BIN, PorticoConfig::default().with_app(files_app())).await;
    let output = portico.log();
    let banner = output
        .lines()
        .position(|l| l.contains("Its password is shown only this once"))
        .expect(&output);
    let password = output.lines().nth(banner + 1).unwrap().trim().to_owned();
    assert_eq!(password.len(), 20, "{output}");
    assert_eq!(output.matches(&password).count(), 1, "shown once: {output}");
    assert!(
        output.contains("First start: created the administrator admin@localhost."),
        "{output}"
    );
    let users: serde_json::Value =
        serde_json::from_slice(&portico.cli(&["users", "list", "--json"]).stdout).unwrap();
    assert_eq!(users[0]["email"], "admin@localhost");
    assert_eq!(users[0]["admin"], true);
    let db = std::fs::read(portico.data_path("portico.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&password),
        "only the hash is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_administrator_can_come_from_the_environment() {
    let config = PorticoConfig {
        env: vec![
            ("PORTICO_ADMIN_EMAIL".into(), "ops@example.com".into()),
            ("PORTICO_ADMIN_PASSWORD".into(), "four-words-make-it".into()),
        ],
        ..Default::default()
    }
    .with_app(files_app());
    let portico = Portico::start(BIN, config).await;
    let output = portico.log();
    assert!(!output.contains("four-words-make-it"), "{output}");
    assert!(
        output.contains("created the admin account ops@example.com"),
        "{output}"
    );
    let users: serde_json::Value =
        serde_json::from_slice(&portico.cli(&["users", "list", "--json"]).stdout).unwrap();
    assert_eq!(users[0]["email"], "ops@example.com");
}

#[test]
fn a_weak_administrator_password_from_the_environment_stops_the_start_with_the_reason() {
    let (dir, path, _) = Portico::prepare(&PorticoConfig::default());
    let output = Command::new(BIN)
        .args(["up", "--config"])
        .arg(&path)
        .env("PORTICO_ADMIN_PASSWORD", "secret")
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("cannot create the first administrator"),
        "{message}"
    );
    assert!(message.contains("too short"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password is not repeated: {message}"
    );
    drop(dir);
}

#[test]
fn an_operator_makes_lists_and_revokes_api_tokens_shown_only_once() {
    let terminal = Terminal::new();
    terminal.run_with_stdin(
        &["users", "add", "ada@example.com", "--password-stdin"],
        "a-long-enough-password-1\n",
    );
    let made = terminal.ok(&[
        "tokens",
        "create",
        "ada@example.com",
        "--name",
        "laptop",
        "--scope",
        "deploy:sales",
        "--expires-in-days",
        "30",
    ]);
    assert!(made.contains("shown only this once"), "{made}");
    let token = made
        .split_whitespace()
        .find(|w| w.starts_with("portico_"))
        .expect("the token is printed")
        .to_owned();

    let listed = terminal.tokens(None);
    let entry = &listed["tokens"][0];
    assert_eq!(entry["user"], "ada@example.com");
    assert_eq!(entry["name"], "laptop");
    assert_eq!(entry["scopes"], serde_json::json!(["deploy:sales"]));
    assert_eq!(entry["state"], "active");
    assert!(token.starts_with(entry["prefix"].as_str().unwrap()));
    // Neither the list nor the database holds the token itself.
    assert!(!listed.to_string().contains(&token));
    let database =
        std::fs::read(terminal.config.parent().unwrap().join("data/portico.db")).unwrap();
    assert!(!String::from_utf8_lossy(&database).contains(&token));

    let id = entry["id"].to_string();
    assert!(terminal.ok(&["tokens", "revoke", &id]).contains("revoked"));
    let listed = terminal.tokens(Some("ada@example.com"));
    assert_eq!(listed["tokens"][0]["state"], "revoked");
    let actions = audit_actions(&terminal.ok(&["audit", "--json"]).into_bytes());
    assert!(actions.contains(&"token.create".to_owned()), "{actions:?}");
    assert!(actions.contains(&"token.revoke".to_owned()), "{actions:?}");

    // Bad input is refused with the fix, and makes nothing.
    for (args, expected) in [
        (
            vec![
                "tokens",
                "create",
                "ada@example.com",
                "--name",
                "x",
                "--scope",
                "admin",
            ],
            "is not a scope; write `deploy`",
        ),
        (
            vec!["tokens", "create", "nobody@example.com", "--name", "x"],
            "there is no user with the e-mail nobody@example.com",
        ),
        (
            vec![
                "tokens",
                "create",
                "ada@example.com",
                "--name",
                "x",
                "--expires-in-days",
                "999",
            ],
            "give 1 to 366, or --no-expiry",
        ),
        (vec!["tokens", "revoke", &id], "revoked already"),
    ] {
        let refusal = terminal.refused(&args, "");
        assert!(refusal.contains(expected), "{args:?}: {refusal}");
    }
    assert_eq!(terminal.tokens(None)["tokens"].as_array().unwrap().len(), 1);
}
