//! Two-step verification: a person signs in with a password and a code from an authenticator
//! app (the harness's `Authenticator` plays the phone), recovery codes work once, and wrong,
//! replayed or absurd codes get clear answers and count towards the lockout.

use portico_testkit::{
    audit_actions, AppConfig, Authenticator, Browser, Portico, PorticoConfig, Visitor,
};

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const ADA: (&str, &str) = ("ada@example.com", "analytical-engine-1843");

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_a_person_signs_in_with_password_and_totp_and_uses_only_their_dashboards() {
    let config = PorticoConfig {
        sections: "[auth]\nrequire_mfa = \"everyone\"\n".into(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::example("streamlit").with("access = { groups = [\"analysts\"] }"))
    .with_app(AppConfig::example("flask").with("access = { groups = [\"finance\"] }"));
    let portico = Portico::start(BIN, config).await;
    portico.add_user(ADA.0, ADA.1, &["analysts"]);
    let browser = Browser::start().await;

    // First sign-in: the policy requires MFA, so Ada sets up her app right there.
    browser
        .open_and_wait_for(
            &format!("{}_portico/sign-in", portico.portal_url()),
            "E-mail",
        )
        .await;
    browser.sign_in(ADA.0, ADA.1).await;
    browser.wait_for_text("Set up two-step verification").await;
    let shown_key = browser
        .client
        .find(fantoccini::Locator::Css("#secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let qr = browser
        .client
        .find(fantoccini::Locator::Css("figure.qr svg"))
        .await;
    assert!(qr.is_ok(), "the page shows a QR code");
    let mut phone = Authenticator::new(&shown_key);
    browser.type_into("#code", &phone.code().await).await;
    browser.click("main button[type=submit]").await;
    browser.wait_for_text("Save your recovery codes").await;
    let codes = browser
        .client
        .find_all(fantoccini::Locator::Css("#recovery-codes code"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    browser.click("#continue").await;
    browser.wait_for_text("streamlit app").await;
    let portal = browser
        .client
        .find(fantoccini::Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !portal.contains("flask app"),
        "the portal lists only what Ada may open: {portal}"
    );

    // Signed out, the dashboard's own host asks for password and code again.
    browser.click("nav form button").await;
    browser.wait_for_text("E-mail").await;
    let streamlit = portico.app_host_url("streamlit");
    browser.open_and_wait_for(&streamlit, "E-mail").await;
    browser.sign_in(ADA.0, ADA.1).await;
    browser
        .wait_for_text("Code from your authenticator app")
        .await;
    browser.type_into("#code", &phone.code().await).await;
    browser.click("main button[type=submit]").await;
    browser.wait_for_text("Hello from Streamlit").await;
    assert_eq!(browser.current_url().await, streamlit);
    browser
        .type_into("input[aria-label='Your name']", "Ada\n")
        .await;
    browser.wait_for_text("Hello, Ada, from Streamlit!").await;

    // Signing out at the portal closes the dashboard.
    browser
        .open_and_wait_for(&portico.portal_url(), "Signed in as")
        .await;
    browser.click("nav form button").await;
    browser.wait_for_text("E-mail").await;
    browser.wait_until_signed_out_of(&streamlit).await;
    let audit = portico.cli(&["audit", "--json"]);
    let actions = audit_actions(&audit.stdout);
    assert!(actions.contains(&"mfa.enrol".to_owned()), "{actions:?}");
}

/// Ada, signed in with only her password, sets up an authenticator from her account page.
async fn enrol(ada: &Visitor) -> (Authenticator, Vec<String>) {
    let page = ada.page("/_portico/account/mfa").await;
    let mut phone = Authenticator::from_enrolment_page(&page);
    let wrong = ada
        .post_form("/_portico/account/mfa", &[("code", "12")])
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("That code is not right"));
    let done = ada
        .post_form("/_portico/account/mfa", &[("code", &phone.code().await)])
        .await;
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("Save your recovery codes"), "{html}");
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest[..rest.find("</code>").unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{html}");
    (phone, codes)
}

async fn sign_out(v: &Visitor) {
    let out = v.post_form("/_portico/sign-out", &[]).await;
    assert_eq!(out.status(), 303);
}

async fn verify(v: &Visitor, code: &str) -> (u16, String, String) {
    let response = v
        .post_form("/_portico/sign-in/verify", &[("code", code)])
        .await;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

async fn portico_without_apps() -> Portico {
    let portico = Portico::start(BIN, PorticoConfig::default()).await;
    portico.add_user(ADA.0, ADA.1, &[]);
    portico
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_replayed_and_absurd_codes_are_refused_clearly_and_a_recovery_code_works_once() {
    let portico = portico_without_apps().await;
    let ada = Visitor::new(&portico, &[]);
    ada.sign_in(ADA.0, ADA.1).await;
    let (phone, recovery) = enrol(&ada).await;
    sign_out(&ada).await;

    // The password alone makes no session: only the way to the second step.
    let half = ada.submit_sign_in(ADA.0, ADA.1, "/_portico/account").await;
    assert_eq!(half.status(), 303);
    assert_eq!(half.headers()["location"], "/_portico/sign-in/verify");
    assert_eq!(ada.session_cookie("localhost"), None);
    let account = ada.get(&format!("{}/_portico/account", ada.portal())).await;
    assert_eq!(account.status(), 303, "not signed in yet");

    let (status, _, page) = verify(&ada, &phone.last_code()).await;
    assert_eq!(status, 401);
    assert!(page.contains("That code was already used"), "{page}");
    let (status, _, page) = verify(&ada, "123").await;
    assert_eq!(status, 401);
    assert!(page.contains("That code is not right"), "{page}");
    let (status, _, page) = verify(&ada, &"7".repeat(5000)).await;
    assert_eq!(status, 401, "an absurd code is a clear refusal, not a 500");
    assert!(page.contains("That code is not right"), "{page}");

    // A code posted from another site is refused whatever it is.
    let forged = ada
        .client
        .post(format!("{}/_portico/sign-in/verify", ada.portal()))
        .header("origin", "http://evil.example")
        .form(&[("code", recovery[0].as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let (status, location, _) = verify(&ada, &recovery[0]).await;
    assert_eq!(status, 303);
    assert_eq!(location, "/_portico/account", "where the sign-in started");
    assert!(ada.session_cookie("localhost").is_some());
    let account = ada.page("/_portico/account").await;
    assert!(account.contains("9 recovery codes left"), "{account}");

    // The same recovery code a second time is refused.
    sign_out(&ada).await;
    ada.submit_sign_in(ADA.0, ADA.1, "/").await;
    let (status, _, page) = verify(&ada, &recovery[0]).await;
    assert_eq!(status, 401);
    assert!(page.contains("That code is not right"), "{page}");
    let (status, location, _) = verify(&ada, &recovery[1]).await;
    assert_eq!((status, location.as_str()), (303, "/"));

    // Turning MFA off needs a current code; after that the password alone signs in.
    let refused = ada
        .post_form("/_portico/account/mfa/remove", &[("code", "000000")])
        .await;
    assert_eq!(refused.status(), 400);
    let off = ada
        .post_form("/_portico/account/mfa/remove", &[("code", &recovery[2])])
        .await;
    assert!(off
        .text()
        .await
        .unwrap()
        .contains("Two-step verification is off"));
    sign_out(&ada).await;
    let direct = ada.submit_sign_in(ADA.0, ADA.1, "/").await;
    assert_eq!(direct.headers()["location"], "/");

    let audit = portico.cli(&["audit", "--json"]);
    let actions = audit_actions(&audit.stdout);
    for expected in [
        "mfa.enrol",
        "sign-in.mfa-failure",
        "mfa.recovery-code-used",
        "mfa.remove",
    ] {
        assert!(
            actions.contains(&expected.to_owned()),
            "{expected} in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_codes_after_a_right_password_locks_the_account() {
    let portico = portico_without_apps().await;
    let ada = Visitor::new(&portico, &[]);
    ada.sign_in(ADA.0, ADA.1).await;
    enrol(&ada).await;
    sign_out(&ada).await;

    let mut last = (0, String::new(), String::new());
    for guess in ["111111", "222222", "333333", "444444", "555555"] {
        if ada.submit_sign_in(ADA.0, ADA.1, "/").await.status() == 429 {
            break;
        }
        last = verify(&ada, guess).await;
    }
    assert_eq!(
        (last.0, last.1.as_str()),
        (303, "/_portico/sign-in"),
        "after five wrong codes the password is needed again"
    );
    let locked = ada.submit_sign_in(ADA.0, ADA.1, "/").await;
    assert_eq!(locked.status(), 429);
    assert!(locked
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-ins"));
}
