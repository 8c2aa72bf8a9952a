//! Single sign-on with OpenID Connect against a real provider (npm `oidc-provider`, started
//! by the harness on loopback): the code flow end to end, groups from the ID token deciding
//! access, and a tampered token, a wrong audience and a replayed state refused.

use portico_testkit::oidc_idp::CLIENT_SECRET;
use portico_testkit::{
    fixtures_dir, AppConfig, Browser, IdpAccount, OidcIdp, Portico, PorticoConfig, Visitor,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

const PEOPLE: &[IdpAccount] = &[
    IdpAccount {
        login: "ada",
        email: "ada@example.com",
        name: "Ada Lovelace",
        groups: &["analysts", "staff"],
    },
    IdpAccount {
        login: "bob",
        email: "bob@example.com",
        name: "Bob Babbage",
        groups: &["staff"],
    },
];

/// Portico with an echo app for `analysts`, and the provider it trusts.
async fn portico_and_provider(extra: &str) -> (Portico, OidcIdp) {
    let idp_port = OidcIdp::reserve_port();
    let config = PorticoConfig {
        sections: OidcIdp::config(idp_port, "corp", extra),
        env: vec![("PORTICO_OIDC_CORP_SECRET".into(), CLIENT_SECRET.into())],
        ..PorticoConfig::default()
    }
    .with_app(
        AppConfig::new("sales", fixtures_dir().join("echo"))
            .with("access = { groups = [\"analysts\"] }"),
    );
    let portico = Portico::start(BIN, config).await;
    let redirect = format!("{}_portico/sso/corp/callback", portico.portal_url());
    let idp = OidcIdp::start(idp_port, &redirect, PEOPLE).await;
    (portico, idp)
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_person_signs_in_through_the_provider_and_its_groups_decide_access() {
    let (portico, _idp) = portico_and_provider("").await;
    let browser = Browser::start().await;
    let app = format!("{}apps/sales/", portico.portal_url());
    browser
        .open_and_wait_for(&app, "Sign in with Example IdP")
        .await;
    browser.click("ul.sso a").await;
    browser.type_into("input[name=login]", "ada").await;
    browser.type_into("input[name=password]", "anything").await;
    browser.click("button[type=submit]").await;
    // The provider asks to confirm what it shares (wait for that page: its button has the
    // same selector as the login form's).
    browser.wait_for_text("Continue").await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("x-forwarded-groups").await;
    assert_eq!(
        browser.current_url().await,
        app,
        "back where the person started"
    );
    let body = browser.body_text().await;
    assert!(
        body.contains("\"x-forwarded-email\":\"ada@example.com\""),
        "{body}"
    );
    assert!(body.contains("analysts"), "{body}");

    // Bob's groups do not include analysts: signed in, but refused the app.
    let bob = Visitor::new(&portico, &[]);
    let start = format!(
        "{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F",
        bob.portal()
    );
    let landing = _idp.sign_in(&bob, &start, "bob").await;
    assert_eq!(landing.status, 403, "{}", landing.body);
    let users: Value =
        serde_json::from_slice(&portico.cli(&["users", "list", "--json"]).stdout).unwrap();
    let made: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert!(
        made.contains(&"ada@example.com") && made.contains(&"bob@example.com"),
        "{made:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_token_a_wrong_audience_and_a_replayed_state_are_refused() {
    let (portico, idp) = portico_and_provider("").await;
    let start = |v: &Visitor| format!("{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F", v.portal());

    // A normal sign-in works, and its callback URL cannot be used a second time.
    let ada = Visitor::new(&portico, &[]);
    let landing = idp.sign_in(&ada, &start(&ada), "ada").await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    let callback = landing
        .hops
        .iter()
        .find(|u| u.contains("/_portico/sso/corp/callback"))
        .expect("the callback among the hops")
        .clone();
    let replay = ada.get(&callback).await;
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));
    // Nor in another browser.
    let other = Visitor::new(&portico, &[]);
    assert_eq!(other.get(&callback).await.status(), 400);

    // Faults a correct provider never makes, made by the test provider on purpose: the ID
    // token altered after signing, then one validly signed for another client.
    for (mode, logged) in [
        ("signature", "ID token was refused"),
        ("audience", "audience"),
    ] {
        idp.tamper(mode).await;
        let mallory = Visitor::new(&portico, &[]);
        let landing = idp.sign_in(&mallory, &start(&mallory), "ada").await;
        assert_eq!(landing.status, 502, "{mode}: {}", landing.body);
        assert!(
            landing
                .body
                .contains("Sign-in with Example IdP did not work"),
            "{}",
            landing.body
        );
        assert_eq!(
            mallory.session_cookie("localhost"),
            None,
            "{mode}: no session"
        );
        let log = portico.log();
        assert!(log.contains(logged), "{mode}: the log says why:\n{log}");
    }
    idp.tamper("none").await;
    let audit = String::from_utf8_lossy(&portico.cli(&["audit", "--json"]).stdout).into_owned();
    assert!(audit.contains("sign-in.refused"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_provider_gets_a_friendly_page_and_the_log_says_why() {
    let idp_port = OidcIdp::reserve_port();
    let config = PorticoConfig {
        sections: OidcIdp::config(idp_port, "corp", "timeout_secs = 3"),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config).await;
    let v = Visitor::new(&portico, &[]);
    let page = v.open(&format!("{}/_portico/sso/corp", v.portal())).await;
    assert_eq!(page.status, 503);
    assert!(
        page.body
            .contains("Sign-in with Example IdP is unavailable right now"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("127.0.0.1"), "no internals on the page");
    assert!(portico
        .log()
        .contains("cannot read the provider's discovery document"));
    let unknown = v.open(&format!("{}/_portico/sso/nope", v.portal())).await;
    assert_eq!(unknown.status, 404);
    // `portico check` tells the operator what to register at the provider.
    let check = String::from_utf8_lossy(&portico.cli(&["check"]).stdout).into_owned();
    assert!(
        check.contains(&format!(
            "redirect URI {}_portico/sso/corp/callback",
            portico.portal_url()
        )),
        "{check}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oidc_provider_and_an_ldap_directory_work_side_by_side() {
    use portico_testkit::directory::{Directory, SERVICE_PASSWORD};
    let directory = Directory::start().await;
    directory.add_person(
        "grace",
        "Grace Hopper",
        "grace@example.com",
        "cobol-1959-nav",
    );
    directory.add_group("analysts", &["grace"]);
    let idp_port = OidcIdp::reserve_port();
    let config = PorticoConfig {
        sections: format!(
            "{}{}",
            OidcIdp::config(idp_port, "corp", ""),
            directory.config("dir", "")
        ),
        env: vec![
            ("PORTICO_OIDC_CORP_SECRET".into(), CLIENT_SECRET.into()),
            ("PORTICO_LDAP_DIR_PASSWORD".into(), SERVICE_PASSWORD.into()),
        ],
        ..PorticoConfig::default()
    }
    .with_app(
        AppConfig::new("sales", fixtures_dir().join("echo"))
            .with("access = { groups = [\"analysts\"] }"),
    );
    let portico = Portico::start(BIN, config).await;
    let redirect = format!("{}_portico/sso/corp/callback", portico.portal_url());
    let idp = OidcIdp::start(idp_port, &redirect, PEOPLE).await;

    // The sign-in page offers both: the provider's button and the directory's form.
    let grace = Visitor::new(&portico, &[]);
    let page = grace.page("/_portico/sign-in").await;
    assert!(page.contains("Sign in with Example IdP") && page.contains("E-mail or user name"));
    grace.sign_in("grace", "cobol-1959-nav").await;
    let app = grace.open(&format!("{}/apps/sales/", grace.portal())).await;
    assert_eq!(app.status, 200, "{}", app.body);

    let ada = Visitor::new(&portico, &[]);
    let start = format!(
        "{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F",
        ada.portal()
    );
    let landing = idp.sign_in(&ada, &start, "ada").await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    assert!(landing.body.contains("ada@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn group_changes_at_the_provider_reach_a_live_session_and_sign_out_ends_the_provider_session()
{
    let (portico, idp) = portico_and_provider(
        "scopes = [\"openid\", \"email\", \"profile\", \"groups\", \"offline_access\"]\nrefresh_interval_secs = 10",
    )
    .await;
    let ada = Visitor::new(&portico, &[]);
    let start = format!(
        "{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F",
        ada.portal()
    );
    let landing = idp.sign_in(&ada, &start, "ada").await;
    assert_eq!(landing.status, 200, "{}", landing.body);

    // Taken out of analysts at the provider: the live session loses the app within the
    // refresh interval, without signing in again.
    idp.set_groups("ada", &["staff"]).await;
    let ada_ref = &ada;
    portico_testkit::eventually(
        "the refreshed groups to close the app",
        std::time::Duration::from_secs(45),
        || async move {
            let status = ada_ref
                .get(&format!("{}/apps/sales/", ada_ref.portal()))
                .await
                .status();
            (status == 403).then_some(())
        },
    )
    .await;
    let account = ada.page("/_portico/account").await;
    assert!(account.contains("staff"), "still signed in: {account}");

    // Signing out also ends the session at the provider, which sends the browser back.
    let out = ada.post_form("/_portico/sign-out", &[]).await;
    assert_eq!(out.status(), 303);
    let location = out.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/session/end", OidcIdp::issuer_for(idp.port))),
        "{location}"
    );
    assert!(location.contains("id_token_hint="), "{location}");
    let after = ada.get(&format!("{}/_portico/account", ada.portal())).await;
    assert_eq!(after.status(), 303, "signed out of Portico too");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_account_is_linked_only_when_the_provider_is_allowed_to() {
    for (extra, linked) in [("", false), ("link_existing_accounts = true", true)] {
        let (portico, idp) = portico_and_provider(extra).await;
        portico.add_user("ada@example.com", "her-local-password-1", &["analysts"]);
        let ada = Visitor::new(&portico, &[]);
        let start = format!(
            "{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F",
            ada.portal()
        );
        let landing = idp.sign_in(&ada, &start, "ada").await;
        if linked {
            // The provider vouches for the address (email_verified): one account, linked.
            assert_eq!(landing.status, 200, "{}", landing.body);
            let audit = portico.cli(&["audit", "--json"]);
            assert!(String::from_utf8_lossy(&audit.stdout).contains("user.link"));
        } else {
            assert_eq!(landing.status, 403, "{}", landing.body);
            assert!(
                landing.body.contains("not linked to this sign-in method"),
                "{}",
                landing.body
            );
        }
        let users: Value =
            serde_json::from_slice(&portico.cli(&["users", "list", "--json"]).stdout).unwrap();
        let adas = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["email"] == "ada@example.com")
            .count();
        assert_eq!(adas, 1);
    }
}
