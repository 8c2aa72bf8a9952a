//! The admin pages: only administrators reach them, forms need the CSRF token, and each change
//! does what it says and is audited with the administrator as actor.

use portico_testkit::{eventually, Authenticator, Portico, PorticoConfig, Visitor};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const ROOT: (&str, &str) = ("root@example.com", "keeper-of-the-keys-7");
const ADA: (&str, &str) = ("ada@example.com", "analytical-engine-1843");
const BOB: (&str, &str) = ("bob@example.com", "difference-engine-1822");

async fn act(admin: &Visitor, fields: &[(&str, &str)]) -> (u16, String) {
    let response = admin
        .post_form("/_portico/admin/users/action", fields)
        .await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_reach_the_admin_pages_and_every_change_is_audited() {
    let portico = Portico::start(BIN, PorticoConfig::default()).await;
    portico.add_user(ROOT.0, ROOT.1, &[]);
    assert!(portico
        .cli(&["users", "set-admin", ROOT.0])
        .status
        .success());
    portico.add_user(ADA.0, ADA.1, &[]);
    portico.add_user(BOB.0, BOB.1, &[]);
    let users_page = |v: &Visitor| format!("{}/_portico/admin/users", v.portal());

    // Anonymous: sign in first. Bob: a 403 that says why, and his forms change nothing.
    let stranger = Visitor::new(&portico, &[]);
    let first = stranger.get(&users_page(&stranger)).await;
    assert_eq!(first.status(), 303);
    assert_eq!(
        first.headers()["location"],
        "/_portico/sign-in?return=%2F_portico%2Fadmin%2Fusers"
    );
    let bob = Visitor::new(&portico, &[]);
    bob.sign_in(BOB.0, BOB.1).await;
    let refused = bob.get(&users_page(&bob)).await;
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Only administrators can open this page"));
    let (status, _) = act(&bob, &[("email", ADA.0), ("action", "disable")]).await;
    assert_eq!(status, 403);
    for path in [
        "/_portico/admin/groups",
        "/_portico/admin/audit",
        "/_portico/admin/apps",
    ] {
        let response = bob.get(&format!("{}{path}", bob.portal())).await;
        assert_eq!(response.status(), 403, "{path}");
    }

    // Ada turns on MFA (the admin will reset it).
    let ada = Visitor::new(&portico, &[]);
    ada.sign_in(ADA.0, ADA.1).await;
    let enrol_page = ada.page("/_portico/account/mfa").await;
    let mut phone = Authenticator::from_enrolment_page(&enrol_page);
    let enrolled = ada
        .post_form("/_portico/account/mfa", &[("code", &phone.code().await)])
        .await;
    assert_eq!(enrolled.status(), 200);

    let root = Visitor::new(&portico, &[]);
    root.sign_in(ROOT.0, ROOT.1).await;
    let page = root.get(&users_page(&root)).await.text().await.unwrap();
    assert!(page.contains(ADA.0) && page.contains(BOB.0), "{page}");
    assert!(page.contains("Reset MFA"), "Ada's row offers it: {page}");

    let added = root
        .post_form("/_portico/admin/groups", &[("name", "finance")])
        .await;
    assert!(added.text().await.unwrap().contains("Added the group"));
    let (status, page) = act(
        &root,
        &[
            ("email", BOB.0),
            ("action", "add-group"),
            ("group", "finance"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let groups = root.page("/_portico/admin/groups").await;
    assert!(
        groups.contains("<td>finance</td><td>bob@example.com</td>"),
        "{groups}"
    );

    // A form without the token or from elsewhere changes nothing.
    let forged = root
        .client
        .post(format!("{}/_portico/admin/users/action", root.portal()))
        .header("origin", "http://evil.example")
        .form(&[("email", BOB.0), ("action", "disable"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        bob.get(&format!("{}/_portico/account", bob.portal()))
            .await
            .status(),
        200
    );

    // Disabling Bob ends his session within seconds.
    let (status, page) = act(&root, &[("email", BOB.0), ("action", "disable")]).await;
    assert_eq!(status, 200);
    assert!(page.contains("Disabled bob@example.com"), "{page}");
    let bob = &bob;
    eventually(
        "Bob's session to end",
        Duration::from_secs(5),
        || async move {
            let account = bob.get(&format!("{}/_portico/account", bob.portal())).await;
            (account.status() == 303).then_some(())
        },
    )
    .await;

    // Resetting Ada's MFA: her password alone signs her in again.
    let (_, page) = act(&root, &[("email", ADA.0), ("action", "reset-mfa")]).await;
    assert!(
        page.contains("Removed the authenticator of ada@example.com"),
        "{page}"
    );
    let again = Visitor::new(&portico, &[]);
    let signed_in = again.submit_sign_in(ADA.0, ADA.1, "/").await;
    assert_eq!(signed_in.headers()["location"], "/");

    // Inviting without a mail server shows the link to hand over; it works.
    let invited = root
        .post_form(
            "/_portico/admin/users/invite",
            &[("email", "carol@example.com")],
        )
        .await
        .text()
        .await
        .unwrap();
    let start = invited.find("<code id=\"link\">").expect("the link") + "<code id=\"link\">".len();
    let link = &invited[start..start + invited[start..].find("</code>").unwrap()];
    assert_eq!(again.get(link).await.status(), 200, "{link}");

    // The last admin cannot be disabled (the one made at first start goes first); an unknown
    // action is a clear error.
    let (status, page) = act(
        &root,
        &[("email", "admin@localhost"), ("action", "disable")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = act(&root, &[("email", ROOT.0), ("action", "disable")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("last enabled admin"), "{page}");
    let (status, page) = act(&root, &[("email", ADA.0), ("action", "explode")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("is not an action"), "{page}");

    // The audit page filters; a nonsense limit is explained, not a 500.
    let audit = root.page("/_portico/admin/audit?action=user.disable").await;
    assert!(
        audit.contains("<td>root@example.com</td><td>user.disable</td><td>bob@example.com</td>"),
        "{audit}"
    );
    assert!(!audit.contains("sign-in.success"), "{audit}");
    let denied = root
        .page("/_portico/admin/audit?actor=bob%40example.com")
        .await;
    assert!(denied.contains("admin.denied"), "{denied}");
    let nonsense = root
        .get(&format!(
            "{}/_portico/admin/audit?limit=lots",
            root.portal()
        ))
        .await;
    assert_eq!(nonsense.status(), 400);
    assert!(nonsense
        .text()
        .await
        .unwrap()
        .contains("Show between 1 and 5000 entries"));
    for action in ["group.add", "mfa.remove", "user.invite"] {
        let found = root
            .page(&format!(
                "/_portico/admin/audit?action={action}&actor=root%40example.com"
            ))
            .await;
        assert!(
            found.contains(&format!("<td>{action}</td>")),
            "{action}: {found}"
        );
    }
}
