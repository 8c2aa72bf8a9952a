//! Invitations and password resets: single-use links, e-mailed through a real SMTP server
//! (aiosmtpd) or printed by the CLI when there is none.

use portico_testkit::{
    audit_actions, eventually, link_in, Portico, PorticoConfig, SmtpSink, Visitor,
};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const ADA: (&str, &str) = ("ada@example.com", "analytical-engine-1843");

fn with_mail(sink: &SmtpSink) -> PorticoConfig {
    PorticoConfig {
        sections: format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"Portico <portico@example.com>\"\n",
            sink.port
        ),
        ..PorticoConfig::default()
    }
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The path and query of a link (the visitor talks to the portal directly).
fn path_of(link: &str, portal: &str) -> String {
    link.strip_prefix(portal)
        .unwrap_or_else(|| panic!("{link} is not on {portal}"))
        .to_owned()
}

async fn set_password(v: &Visitor, path: &str, password: &str, repeat: &str) -> (u16, String) {
    let (action, query) = path.split_once('?').unwrap();
    let token = query.strip_prefix("token=").unwrap();
    let response = v
        .post_form(
            action,
            &[
                ("token", token),
                ("name", "Grace Hopper"),
                ("password", password),
                ("repeat", repeat),
            ],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emailed_invitation_lets_someone_choose_a_password_exactly_once() {
    let sink = SmtpSink::start().await;
    let portico = Portico::start(BIN, with_mail(&sink)).await;
    let sent = stdout(&portico.cli(&["users", "invite", "Grace@Example.com"]));
    assert!(
        sent.contains("Sent an invitation to grace@example.com"),
        "{sent}"
    );
    let mail = sink.wait_for_mail_to("grace@example.com").await;
    assert_eq!(mail.subject, "You are invited to Portico");
    assert!(mail.from.contains("portico@example.com"));
    let guest = Visitor::new(&portico, &[]);
    let path = path_of(&link_in(&mail.body), &guest.portal());
    assert!(path.starts_with("/_portico/welcome?token="), "{path}");

    let page = guest.get(&format!("{}{path}", guest.portal())).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("grace@example.com"));

    let (status, page) =
        set_password(&guest, &path, "cobol-compiler-1959", "cobol-compiler-1960").await;
    assert_eq!(status, 400);
    assert!(page.contains("differ"), "{page}");
    let (status, page) = set_password(&guest, &path, "password", "password").await;
    assert_eq!(status, 400);
    assert!(page.contains("at least 12"), "{page}");
    let (status, page) =
        set_password(&guest, &path, "cobol-compiler-1959", "cobol-compiler-1959").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Your password is set"), "{page}");

    // The link worked once; opened or posted again it says so.
    let again = guest.get(&format!("{}{path}", guest.portal())).await;
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("already used"));
    let (status, page) = set_password(
        &guest,
        &path,
        "another-password-2024",
        "another-password-2024",
    )
    .await;
    assert_eq!(status, 410);
    assert!(page.contains("already used"), "{page}");
    let forged = guest
        .get(&format!(
            "{}/_portico/welcome?token=not-a-real-token",
            guest.portal()
        ))
        .await;
    assert_eq!(forged.status(), 404);

    guest
        .sign_in("grace@example.com", "cobol-compiler-1959")
        .await;
    let users: serde_json::Value =
        serde_json::from_str(&stdout(&portico.cli(&["users", "list", "--json"]))).unwrap();
    let grace = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "grace@example.com")
        .unwrap();
    assert_eq!(grace["name"], "Grace Hopper");

    // Someone who already has a password is not invited again.
    let twice = portico.cli(&["users", "invite", "grace@example.com"]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already has an account"));
    let actions = audit_actions(&portico.cli(&["audit", "--json"]).stdout);
    assert!(actions.contains(&"user.invite".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"user.accept-invitation".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_password_is_reset_by_email_without_revealing_who_has_an_account() {
    let sink = SmtpSink::start().await;
    let portico = Portico::start(BIN, with_mail(&sink)).await;
    portico.add_user(ADA.0, ADA.1, &[]);
    let laptop = Visitor::new(&portico, &[]);
    laptop.sign_in(ADA.0, ADA.1).await;

    let phone = Visitor::new(&portico, &[]);
    let sign_in_page = phone
        .get(&format!("{}/_portico/sign-in", phone.portal()))
        .await;
    assert!(sign_in_page
        .text()
        .await
        .unwrap()
        .contains("/_portico/forgot-password"));
    let ask = |email: &'static str| {
        let phone = &phone;
        async move {
            let response = phone
                .post_form("/_portico/forgot-password", &[("email", email)])
                .await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (unknown_status, unknown) = ask("nobody@example.com").await;
    let (known_status, known) = ask(ADA.0).await;
    assert_eq!((unknown_status, known_status), (200, 200));
    assert_eq!(
        unknown.replace("nobody@example.com", ADA.0),
        known,
        "the same answer for an unknown address"
    );

    let mail = sink.wait_for_mail_to(ADA.0).await;
    assert_eq!(mail.subject, "Reset your Portico password");
    assert!(sink.messages().iter().all(|m| !m.to.contains("nobody")));
    let path = path_of(&link_in(&mail.body), &phone.portal());
    assert!(
        path.starts_with("/_portico/reset-password?token="),
        "{path}"
    );
    let (status, page) =
        set_password(&phone, &path, "a-new-engine-1837", "a-new-engine-1837").await;
    assert_eq!(status, 200, "{page}");

    // The old password no longer works, and the laptop's session has ended.
    assert_eq!(phone.submit_sign_in(ADA.0, ADA.1, "/").await.status(), 401);
    phone.sign_in(ADA.0, "a-new-engine-1837").await;
    let laptop = &laptop;
    eventually(
        "the laptop's session to end",
        Duration::from_secs(5),
        || async move {
            let account = laptop
                .get(&format!("{}/_portico/account", laptop.portal()))
                .await;
            (account.status() == 303).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_mail_server_the_cli_prints_the_link_and_it_expires() {
    let config = PorticoConfig {
        sections: "[auth]\npassword_reset_lifetime_secs = 60\n".into(),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config).await;
    portico.add_user(ADA.0, ADA.1, &[]);
    let printed = stdout(&portico.cli(&["users", "reset-password", "--link", ADA.0]));
    assert!(printed.contains("it works once, for 1 minute"), "{printed}");
    let ada = Visitor::new(&portico, &[]);
    let path = path_of(&link_in(&printed), &ada.portal());
    let url = format!("{}{path}", ada.portal());
    assert_eq!(ada.get(&url).await.status(), 200);

    // A reset link is no invitation, and vice versa.
    let wrong_kind = ada
        .get(&url.replace("/_portico/reset-password", "/_portico/welcome"))
        .await;
    assert_eq!(wrong_kind.status(), 404);

    let ada = &ada;
    let url = &url;
    let page = eventually(
        "the link to expire",
        Duration::from_secs(90),
        || async move {
            let response = ada.get(url).await;
            if response.status() == 410 {
                Some(response.text().await.unwrap())
            } else {
                None
            }
        },
    )
    .await;
    assert!(page.contains("This link expired"), "{page}");
    let (status, _) =
        set_password(ada, path.as_str(), "too-late-now-2024", "too-late-now-2024").await;
    assert_eq!(status, 410);
    ada.sign_in(ADA.0, ADA.1).await;
}
