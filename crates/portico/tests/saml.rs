//! Single sign-on with SAML 2.0 against a real identity provider (Auth0's npm `samlp`, started
//! by the harness on loopback): sign-in end to end in a browser with groups deciding access,
//! both request bindings, and unsigned, expired, tampered, mis-addressed and replayed
//! assertions refused, as is one signed by a key other than the provider's (carrying its own
//! certificate, the classic attack on services that believe the certificate in the message).

use portico_testkit::{
    fixtures_dir, AppConfig, Browser, Portico, PorticoConfig, SamlAccount, SamlIdp, Visitor,
};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

const PEOPLE: &[SamlAccount] = &[
    SamlAccount {
        login: "ada",
        password: "ada-password",
        email: "ada@example.com",
        name: "Ada Lovelace",
        groups: &["analysts", "staff"],
    },
    SamlAccount {
        login: "bob",
        password: "bob-password",
        email: "bob@example.com",
        name: "Bob Babbage",
        groups: &["staff"],
    },
];

/// Portico with an echo app for `analysts`, and the provider it trusts.
async fn portico_and_provider(extra: &str) -> (Portico, SamlIdp) {
    let idp_port = SamlIdp::reserve_port();
    let config = PorticoConfig {
        sections: SamlIdp::config(idp_port, "corp", extra),
        ..PorticoConfig::default()
    }
    .with_app(
        AppConfig::new("sales", fixtures_dir().join("echo"))
            .with("access = { groups = [\"analysts\"] }"),
    );
    let portico = Portico::start(BIN, config).await;
    let acs = format!("{}_portico/saml/corp/acs", portico.portal_url());
    let idp = SamlIdp::start(idp_port, &acs, PEOPLE).await;
    (portico, idp)
}

fn start_url(visitor: &Visitor) -> String {
    format!(
        "{}/_portico/sso/corp?return=%2Fapps%2Fsales%2F",
        visitor.portal()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_person_signs_in_through_the_saml_provider_and_its_groups_decide_access() {
    // The POST binding: Portico's own page carries the request on with its script, under
    // the pages' Content-Security-Policy.
    let (portico, idp) = portico_and_provider("binding = \"post\"").await;
    let browser = Browser::start().await;
    let app = format!("{}apps/sales/", portico.portal_url());
    browser
        .open_and_wait_for(&app, "Sign in with Example SAML")
        .await;
    browser.click("ul.sso a").await;
    browser.wait_for_text("Test IdP: sign in").await;
    browser.type_into("input[name=username]", "ada").await;
    browser
        .type_into("input[name=password]", "ada-password")
        .await;
    browser.click("button[type=submit]").await;
    // The provider's page posts the answer to Portico by itself.
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
    let landing = idp
        .sign_in(&bob, &start_url(&bob), "bob", "bob-password")
        .await;
    assert_eq!(landing.status, 403, "{}", landing.body);
    let users =
        String::from_utf8_lossy(&portico.cli(&["users", "list", "--json"]).stdout).into_owned();
    assert!(
        users.contains("ada@example.com") && users.contains("bob@example.com"),
        "{users}"
    );
    // A wrong password at the provider gets nobody in.
    let eve = Visitor::new(&portico, &[]);
    let landing = idp.sign_in(&eve, &start_url(&eve), "ada", "guess").await;
    assert_eq!(landing.status, 401);
    assert_eq!(eve.session_cookie("localhost"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_post_binding_and_a_signed_response_instead_of_a_signed_assertion_work_too() {
    let (portico, idp) = portico_and_provider("binding = \"post\"").await;
    let ada = Visitor::new(&portico, &[]);
    let first = ada.open(&start_url(&ada)).await;
    assert!(
        first.body.contains("name=\"SAMLRequest\"")
            && first.body.contains("Continue to Example SAML"),
        "the POST binding's page: {}",
        first.body
    );
    let landing = idp
        .sign_in(&ada, &start_url(&ada), "ada", "ada-password")
        .await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    assert!(landing.body.contains("ada@example.com"), "{}", landing.body);

    idp.mode("sign-response").await;
    let again = Visitor::new(&portico, &[]);
    let landing = idp
        .sign_in(&again, &start_url(&again), "ada", "ada-password")
        .await;
    assert_eq!(landing.status, 200, "{}", landing.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_expired_tampered_misaddressed_and_replayed_assertions_are_refused() {
    let (portico, idp) = portico_and_provider("").await;

    // Faults a correct provider never makes, made by the test provider on purpose.
    for (mode, logged) in [
        ("unsigned", "carries no XML signature"),
        ("expired", "expired"),
        ("tampered", "does not verify"),
        ("foreign-key", "does not verify"),
        ("audience", "Audience"),
    ] {
        idp.mode(mode).await;
        let mallory = Visitor::new(&portico, &[]);
        let landing = idp
            .sign_in(&mallory, &start_url(&mallory), "ada", "ada-password")
            .await;
        assert_eq!(landing.status, 400, "{mode}: {}", landing.body);
        assert!(
            landing
                .body
                .contains("Sign-in with Example SAML did not work"),
            "{mode}: {}",
            landing.body
        );
        assert_eq!(
            mallory.session_cookie("localhost"),
            None,
            "{mode}: no session"
        );
        let log = portico.log();
        assert!(
            log.contains(logged),
            "{mode}: the log says why ({logged}):\n{log}"
        );
    }
    idp.mode("normal").await;
    let users =
        String::from_utf8_lossy(&portico.cli(&["users", "list", "--json"]).stdout).into_owned();
    assert!(
        !users.contains("mallory"),
        "no account from a refused assertion: {users}"
    );

    // A good sign-in; its answer cannot be used again, neither where it was posted...
    let ada = Visitor::new(&portico, &[]);
    let landing = idp
        .sign_in(&ada, &start_url(&ada), "ada", "ada-password")
        .await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    let (answer, relay_state) = idp.last_answer().await;
    let acs = format!("{}/_portico/saml/corp/acs", ada.portal());
    let mallory = Visitor::new(&portico, &[]);
    let replay = mallory
        .client
        .post(&acs)
        .form(&[
            ("SAMLResponse", answer.as_str()),
            ("RelayState", relay_state.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .unwrap()
        .contains("expired or was already used"));
    // ...nor for a sign-in started afresh (it answers another request).
    let login_page = mallory.open(&start_url(&mallory)).await;
    let fresh_relay = login_page
        .url
        .split("RelayState=")
        .nth(1)
        .expect("RelayState in the redirect to the provider")
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let replay = mallory
        .client
        .post(&acs)
        .form(&[
            ("SAMLResponse", answer.as_str()),
            ("RelayState", fresh_relay.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(mallory.session_cookie("localhost"), None);
    let audit = String::from_utf8_lossy(&portico.cli(&["audit", "--json"]).stdout).into_owned();
    assert!(audit.contains("sign-in.refused"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn portico_publishes_its_metadata_and_an_unreachable_provider_gets_a_friendly_page() {
    let idp_port = SamlIdp::reserve_port();
    let config = PorticoConfig {
        sections: SamlIdp::config(idp_port, "corp", "timeout_secs = 3"),
        ..PorticoConfig::default()
    };
    let portico = Portico::start(BIN, config).await;
    let v = Visitor::new(&portico, &[]);
    let base = format!("{}_portico/saml/corp", portico.portal_url());

    // Metadata is public: the provider's administrator imports it.
    let metadata = v.get(&format!("{base}/metadata")).await;
    assert_eq!(metadata.status(), 200);
    let xml = metadata.text().await.unwrap();
    assert!(
        xml.contains(&format!("entityID=\"{base}/metadata\"")),
        "{xml}"
    );
    assert!(xml.contains(&format!("Location=\"{base}/acs\"")), "{xml}");
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"),
        "{xml}"
    );
    let check = String::from_utf8_lossy(&portico.cli(&["check"]).stdout).into_owned();
    assert!(check.contains(&format!("ACS {base}/acs")), "{check}");

    let page = v.open(&start_url(&v)).await;
    assert_eq!(page.status, 503);
    assert!(
        page.body
            .contains("Sign-in with Example SAML is unavailable right now"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("127.0.0.1"), "no internals on the page");
    assert!(portico
        .log()
        .contains("cannot read the provider's metadata"));

    // An answer posted without any sign-in waiting for it is refused.
    let stray = v
        .client
        .post(format!("{base}/acs"))
        .form(&[("SAMLResponse", "PHNhbWw+"), ("RelayState", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 400);
}
