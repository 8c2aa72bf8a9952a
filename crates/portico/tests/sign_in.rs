//! Sign-in, sessions and access: what a person sees, and each attack as a test that fails if
//! the attack works.

use portico_testkit::{
    audit_actions, eventually, fixtures_dir, AppConfig, Portico, PorticoConfig, Visitor,
};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const ADA: (&str, &str) = ("ada@example.com", "analytical-engine-1843");
const BOB: (&str, &str) = ("bob@example.com", "difference-engine-1822");

/// An echo app open to the `sales` group, a signed-in app and a public one; Ada is in sales,
/// Bob is not.
async fn portico() -> Portico {
    let echo = |name: &str, access: &str| {
        AppConfig::new(name, fixtures_dir().join("echo")).with(&format!("access = {access}"))
    };
    let config = PorticoConfig::default()
        .with_app(echo("sales", "{ groups = [\"sales\"] }"))
        .with_app(echo("staff", "\"signed-in\""))
        .with_app(echo("news", "\"public\""));
    let config = PorticoConfig {
        server_extra: String::new(),
        ..config
    };
    let portico = Portico::start(BIN, config).await;
    portico.add_user(ADA.0, ADA.1, &["sales"]);
    portico.add_user(BOB.0, BOB.1, &[]);
    portico
}

fn visitor(portico: &Portico) -> Visitor {
    Visitor::new(portico, &["sales", "staff", "news"])
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not the app's JSON: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_and_the_dashboard_knows_who_they_are() {
    let portico = portico().await;
    let ada = visitor(&portico);
    let url = format!("{}/apps/sales/report?q=1", ada.portal());

    let first = ada.get(&url).await;
    assert_eq!(first.status(), 303);
    assert_eq!(
        first.headers()["location"],
        "/_portico/sign-in?return=%2Fapps%2Fsales%2Freport%3Fq%3D1"
    );

    let signed_in = ada
        .submit_sign_in(ADA.0, ADA.1, "/apps/sales/report?q=1")
        .await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/apps/sales/report?q=1");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );

    let landing = ada.open(&url).await;
    assert_eq!(landing.status, 200);
    let seen = json(&landing.body);
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-user"], ADA.0);
    assert_eq!(headers["x-forwarded-email"], ADA.0);
    assert_eq!(headers["x-forwarded-groups"], "sales");
    assert_eq!(headers["x-forwarded-preferred-username"], "ada");
    let credentials: Value =
        serde_json::from_str(headers["shiny-server-credentials"].as_str().unwrap()).unwrap();
    assert_eq!(
        credentials,
        serde_json::json!({"user": ADA.0, "groups": ["sales"]})
    );
    let cookies = headers.get("cookie").and_then(Value::as_str).unwrap_or("");
    assert!(
        !cookies.contains("portico_"),
        "a Portico cookie reached the app: {cookies}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_host_gets_its_own_session_through_the_handshake_and_loses_it_at_sign_out() {
    let portico = portico().await;
    let ada = visitor(&portico);
    let app = format!("http://sales.localhost:{}/deep/link?x=1", portico.port);

    let landing = ada.open(&app).await;
    assert!(
        landing.url.contains("/_portico/sign-in?return="),
        "sent to sign in: {:?}",
        landing.hops
    );
    ada.sign_in(ADA.0, ADA.1).await;
    let landing = ada.open(&app).await;
    assert_eq!(landing.status, 200, "{:?}", landing.hops);
    assert_eq!(
        landing.url, app,
        "back where they started: {:?}",
        landing.hops
    );
    assert_eq!(json(&landing.body)["path"], "/deep/link");
    assert!(
        landing
            .hops
            .iter()
            .any(|h| h.contains("/_portico/handoff?to=")),
        "{:?}",
        landing.hops
    );

    let portal_cookie = ada.session_cookie("localhost").unwrap();
    let app_cookie = ada.session_cookie("sales.localhost").unwrap();
    assert_ne!(portal_cookie, app_cookie, "each host has its own session");

    // The one-time code cannot be used again, here or on another app's host.
    let callback = landing
        .hops
        .iter()
        .find(|h| h.contains("/_portico/callback?code="))
        .unwrap()
        .clone();
    let replay = visitor(&portico).get(&callback).await;
    assert_eq!(replay.status(), 400);
    assert!(replay
        .text()
        .await
        .unwrap()
        .contains("This sign-in link has expired"));

    let token = ada.sign_in_token().await;
    let out = ada
        .client
        .post(format!("{}/_portico/sign-out", ada.portal()))
        .header("origin", ada.portal())
        .form(&[("csrf", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("sales.localhost", ([127, 0, 0, 1], portico.port).into())
        .build()
        .unwrap();
    // The app host's session ended with the portal's (within a sync, about a second).
    eventually(
        "the app-host session to end",
        Duration::from_secs(5),
        || async {
            let response = thief
                .get(&app)
                .header("cookie", format!("portico_session={app_cookie}"))
                .send()
                .await
                .ok()?;
            (response.status() == 401).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn outsiders_get_a_403_over_http_and_on_a_websocket_upgrade() {
    let portico = portico().await;
    let bob = visitor(&portico);
    bob.sign_in(BOB.0, BOB.1).await;
    let page = bob.get(&format!("{}/apps/sales/", bob.portal())).await;
    assert_eq!(page.status(), 403);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("You do not have access to sales app"),
        "{text}"
    );
    assert!(
        text.contains("Ask your Portico administrator to give you access."),
        "{text}"
    );
    assert_eq!(
        bob.get(&format!("{}/apps/staff/", bob.portal()))
            .await
            .status(),
        200,
        "signed-in apps are open to him"
    );

    let cookie = bob.session_cookie("localhost").unwrap();
    let status = websocket_status(
        &portico,
        &format!("ws://localhost:{}/apps/sales/ws", portico.port),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let anonymous = websocket_status(
        &portico,
        &format!("ws://localhost:{}/apps/sales/ws", portico.port),
        None,
        None,
    )
    .await;
    assert_eq!(anonymous, 401);

    // Audited once (the repeats within a minute are not), without delaying the refusals.
    let denials = eventually(
        "the refusal in the audit log",
        Duration::from_secs(5),
        || async {
            let audit: Value =
                serde_json::from_slice(&portico.cli(&["audit", "--json"]).stdout).ok()?;
            let denials: Vec<Value> = audit
                .as_array()?
                .iter()
                .filter(|a| a["action"] == "access.denied")
                .cloned()
                .collect();
            (!denials.is_empty()).then_some(denials)
        },
    )
    .await;
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0]["actor"], BOB.0);
    assert_eq!(denials[0]["subject"], "sales");
    assert_eq!(denials[0]["detail"], "http");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_opened_from_another_site_is_refused() {
    let portico = portico().await;
    let ada = visitor(&portico);
    ada.sign_in(ADA.0, ADA.1).await;
    let cookie = ada.session_cookie("localhost").unwrap();
    let url = format!("ws://localhost:{}/apps/sales/ws", portico.port);
    let status = websocket_status(&portico, &url, Some(&cookie), Some("http://evil.example")).await;
    assert_eq!(status, 403);
    // The same request from the portal's own origin gets past Portico to the app (which does
    // not speak WebSocket, so it answers with an error of its own).
    let own = websocket_status(&portico, &url, Some(&cookie), Some(&ada.portal())).await;
    assert!(![401, 403].contains(&own), "refused by Portico: {own}");
}

/// The HTTP status of a WebSocket handshake through Portico (101 when it succeeds).
async fn websocket_status(
    portico: &Portico,
    url: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> u16 {
    let mut request = url.into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            "cookie",
            format!("portico_session={cookie}").parse().unwrap(),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", portico.port))
        .await
        .unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((mut socket, response)) => {
            let _ = socket.close(None).await;
            response.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_forms_from_another_site_or_without_the_token_are_refused() {
    let portico = portico().await;
    let mallory = visitor(&portico);
    let token = mallory.sign_in_token().await;
    let url = format!("{}/_portico/sign-in", mallory.portal());
    let form = [
        ("email", ADA.0),
        ("password", ADA.1),
        ("csrf", token.as_str()),
        ("return", "/"),
    ];
    let attempts = [
        ("no origin", mallory.client.post(&url).form(&form)),
        (
            "foreign origin",
            mallory
                .client
                .post(&url)
                .header("origin", "http://evil.example")
                .form(&form),
        ),
        (
            "app-host origin",
            mallory
                .client
                .post(&url)
                .header("origin", format!("http://sales.localhost:{}", portico.port))
                .form(&form),
        ),
        (
            "wrong token",
            mallory
                .client
                .post(&url)
                .header("origin", mallory.portal())
                .form(&[
                    ("email", ADA.0),
                    ("password", ADA.1),
                    ("csrf", &"0".repeat(64)),
                ]),
        ),
    ];
    for (what, request) in attempts {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        assert!(
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("portico_session")),
            "{what}"
        );
    }
    assert!(mallory.session_cookie("localhost").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_return_address_cannot_send_anyone_to_another_site() {
    let portico = portico().await;
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let ada = visitor(&portico);
        let response = ada.submit_sign_in(ADA.0, ADA.1, evil).await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/", "{evil}");
    }
    let ada = visitor(&portico);
    ada.sign_in(ADA.0, ADA.1).await;
    let to = "http://evil.example/steal";
    let handoff = ada
        .get(&format!("{}/_portico/handoff?to={}", ada.portal(), to))
        .await;
    assert_eq!(handoff.status(), 400, "no code is handed to a foreign site");
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_always_makes_a_new_session_and_ends_the_old_one() {
    let portico = portico().await;
    let browser = visitor(&portico);
    browser.sign_in(ADA.0, ADA.1).await;
    let before = browser.session_cookie("localhost").unwrap();
    browser.sign_in(ADA.0, ADA.1).await;
    let after = browser.session_cookie("localhost").unwrap();
    assert_ne!(before, after);
    let old = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/apps/staff/", portico.port))
        .header("host", format!("localhost:{}", portico.port))
        .header("cookie", format!("portico_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the session from before is over");

    // A session id chosen by an attacker and planted before sign-in is never adopted.
    let planted = "ab".repeat(32);
    let victim = visitor(&portico);
    let url: reqwest::Url = victim.portal().parse().unwrap();
    victim
        .jar
        .add_cookie_str(&format!("portico_session={planted}; Path=/"), &url);
    victim.sign_in(ADA.0, ADA.1).await;
    assert_ne!(victim.session_cookie("localhost").unwrap(), planted);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_users_live_session_stops_within_five_seconds() {
    let portico = portico().await;
    let ada = visitor(&portico);
    ada.sign_in(ADA.0, ADA.1).await;
    let url = format!("{}/apps/sales/", ada.portal());
    assert_eq!(ada.get(&url).await.status(), 200);
    assert!(portico.cli(&["users", "disable", ADA.0]).status.success());
    let started = std::time::Instant::now();
    eventually("the session to stop", Duration::from_secs(5), || async {
        (ada.get(&url).await.status() == 303).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_and_unknown_accounts_get_the_same_answer_and_bad_input_never_a_500() {
    let portico = portico().await;
    let v = visitor(&portico);
    let wrong = v.submit_sign_in(ADA.0, "not-the-password", "/").await;
    let unknown = v.submit_sign_in("nobody@example.com", ADA.1, "/").await;
    let long = v
        .submit_sign_in(
            &format!("{}@example.com", "a".repeat(5000)),
            &"p".repeat(10_000),
            "/",
        )
        .await;
    let not_an_address = v
        .submit_sign_in("<script>alert(1)</script>", ADA.1, "/")
        .await;
    let mut bodies = Vec::new();
    for response in [wrong, unknown, long, not_an_address] {
        assert_eq!(response.status(), 401);
        let body = response.text().await.unwrap();
        assert!(
            body.contains("That e-mail and password do not match an account that can sign in."),
            "{body}"
        );
        assert!(!body.contains("<script>alert"), "input is escaped: {body}");
        bodies.push(body);
    }

    let client = portico.client();
    let url = format!("{}apps/staff/", portico.portal_url());
    for cookie in [
        "portico_session=%%%",
        "portico_session=",
        &format!("portico_session={}", "f".repeat(20_000)),
        "portico_session",
        "=;;;=",
        "portico_session=\"abc\"",
    ] {
        let response = client
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 401 | 431),
            "{cookie}: {}",
            response.status()
        );
    }
    let empty_form = client
        .post(format!("{}_portico/sign-in", portico.portal_url()))
        .header("origin", format!("http://localhost:{}", portico.port))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(empty_form.status(), 403, "no token: refused, not a 500");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_portal_lists_only_what_each_person_may_open() {
    let portico = portico().await;
    let titles = |body: &str| {
        ["sales app", "staff app", "news app"]
            .into_iter()
            .filter(|t| body.contains(t))
            .collect::<Vec<_>>()
    };

    let anonymous = visitor(&portico);
    let page = anonymous
        .open(&format!("{}/", anonymous.portal()))
        .await
        .body;
    assert_eq!(titles(&page), ["news app"]);
    assert!(page.contains("to see 2 more dashboards"), "{page}");

    let bob = visitor(&portico);
    bob.sign_in(BOB.0, BOB.1).await;
    let page = bob.open(&format!("{}/", bob.portal())).await.body;
    assert_eq!(titles(&page), ["staff app", "news app"]);
    assert!(
        page.contains("Signed in as <a href=\"/_portico/account\"><strong>bob</strong></a>"),
        "{page}"
    );

    let ada = visitor(&portico);
    ada.sign_in(ADA.0, ADA.1).await;
    assert_eq!(
        titles(&ada.open(&format!("{}/", ada.portal())).await.body),
        ["sales app", "staff app", "news app"]
    );
}

/// A Python with PyJWT: an implementation independent of the one that signs.
fn python_with_pyjwt() -> std::path::PathBuf {
    portico_testkit::python_with("pyjwt", "jwt, cryptography", "pyjwt[crypto]")
}

const VERIFY_WITH_PYJWT: &str = r#"
import json, sys, jwt
jwks, token, issuer = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == kid).key
claims = jwt.decode(token, key, algorithms=["ES256"], audience="sales", issuer=issuer)
print(json.dumps(claims))
try:
    # A negative leeway moves "now" past exp; PyJWT would apply it to iat too, so only exp is checked.
    jwt.decode(token, key, algorithms=["ES256"], audience="sales", issuer=issuer,
               leeway=-(claims["exp"] - claims["iat"] + 1), options={"verify_iat": False})
    print("EXPIRED ACCEPTED")
except jwt.ExpiredSignatureError:
    print("EXPIRED REFUSED")
try:
    jwt.decode(token, key, algorithms=["ES256"], audience="staff", issuer=issuer)
    print("OTHER AUDIENCE ACCEPTED")
except jwt.InvalidAudienceError:
    print("OTHER AUDIENCE REFUSED")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_assertion_verifies_with_pyjwt_against_the_jwks_and_is_refused_once_expired() {
    let portico = portico().await;
    let ada = visitor(&portico);
    ada.sign_in(ADA.0, ADA.1).await;
    let seen = json(
        &ada.open(&format!("{}/apps/sales/", ada.portal()))
            .await
            .body,
    );
    let token = seen["headers"]["x-portico-assertion"]
        .as_str()
        .expect("an assertion reached the app")
        .to_owned();
    let jwks = reqwest::get(format!(
        "http://127.0.0.1:{}/.well-known/portico/jwks.json",
        portico.port
    ))
    .await
    .unwrap();
    assert_eq!(jwks.status(), 200, "the JWKS is public");
    let jwks = jwks.text().await.unwrap();
    assert!(
        !jwks.contains("\"d\""),
        "no private key material is published: {jwks}"
    );

    let issuer = portico.portal_url();
    let output = std::process::Command::new(python_with_pyjwt())
        .args(["-c", VERIFY_WITH_PYJWT, &jwks, &token, &issuer])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "PyJWT refused the assertion: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let claims: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(claims["sub"], ADA.0);
    assert_eq!(claims["email"], ADA.0);
    assert_eq!(claims["groups"], serde_json::json!(["sales"]));
    assert_eq!(claims["aud"], "sales");
    assert!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300,
        "{claims}"
    );
    assert!(stdout.contains("EXPIRED REFUSED"), "{stdout}");
    assert!(stdout.contains("OTHER AUDIENCE REFUSED"), "{stdout}");

    // A forged assertion sent by the client never reaches the app in its place.
    let forged = ada
        .client
        .get(format!("{}/apps/sales/", ada.portal()))
        .header("accept", "text/html")
        .header("x-portico-assertion", "forged")
        .send()
        .await
        .unwrap();
    let forged = json(&forged.text().await.unwrap());
    assert_eq!(
        forged["headers"]["x-portico-assertion"], token,
        "Portico's own, not the client's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_the_account_and_one_address_cannot_keep_guessing() {
    let portico = portico().await;
    let mallory = visitor(&portico);
    for _ in 0..5 {
        assert_eq!(
            mallory
                .submit_sign_in(ADA.0, "guess-guess-guess", "/")
                .await
                .status(),
            401
        );
    }
    let locked = mallory.submit_sign_in(ADA.0, ADA.1, "/").await;
    assert_eq!(
        locked.status(),
        429,
        "even the right password waits out the lock"
    );
    let text = locked.text().await.unwrap();
    assert!(
        text.contains("Too many failed sign-ins for this account. Try again in 1 minute."),
        "{text}"
    );

    // An address without an account locks the same way: the lock reveals nothing.
    for _ in 0..5 {
        mallory
            .submit_sign_in("ghost@example.com", "guess-guess-guess", "/")
            .await;
    }
    let ghost = mallory
        .submit_sign_in("ghost@example.com", "guess-guess-guess", "/")
        .await;
    assert_eq!(ghost.status(), 429);
    assert!(ghost
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-ins for this account."));

    // Bob, elsewhere, is not locked out by Mallory's guessing at Ada.
    // (All test traffic comes from 127.0.0.1, so his sign-in counts towards the same client.)
    let bob = visitor(&portico);
    bob.sign_in(BOB.0, BOB.1).await;

    // Twenty attempts a minute from one address, whichever accounts they name.
    let mut refused = None;
    for i in 0..20 {
        let response = mallory
            .submit_sign_in(&format!("spray{i}@example.com"), "guess-guess-guess", "/")
            .await;
        if response.status() == 429 {
            refused = Some(response.text().await.unwrap());
            break;
        }
    }
    let refused = refused.expect("the client limit was reached");
    assert!(
        refused.contains("Too many sign-in attempts from your network"),
        "{refused}"
    );

    let actions = audit_actions(&portico.cli(&["audit", "--json", "-n", "200"]).stdout);
    assert!(
        actions.iter().any(|a| a == "sign-in.lockout"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "sign-in.rate-limited"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_link_made_in_someone_elses_browser_does_not_sign_you_in_as_them() {
    let portico = portico().await;
    let app = format!("http://sales.localhost:{}/", portico.port);

    // Mallory starts the handshake in her own browser and stops before the callback.
    let mallory = visitor(&portico);
    mallory.sign_in(ADA.0, ADA.1).await; // any account with access will do; the victim is another browser
    let to_portal = mallory.get(&app).await;
    assert_eq!(to_portal.status(), 303);
    let handoff = to_portal.headers()["location"].to_str().unwrap().to_owned();
    let to_app = mallory.get(&handoff).await;
    assert_eq!(to_app.status(), 303);
    let callback = to_app.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.contains("/_portico/callback?code="), "{callback}");

    // The victim's browser opens Mallory's link: no state cookie from this handshake.
    let victim = visitor(&portico);
    let opened = victim.get(&callback).await;
    assert_eq!(opened.status(), 400);
    assert!(
        victim.session_cookie("sales.localhost").is_none(),
        "the victim was not signed in as someone else"
    );

    // And the link is spent: not even Mallory can use it now.
    assert_eq!(mallory.get(&callback).await.status(), 400);
    // Her browser can still complete a fresh handshake.
    assert_eq!(mallory.open(&app).await.status, 200);
}

/// Posts one of the account page's forms as the browser would.
async fn post_account_form(v: &Visitor, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let token = v.sign_in_token().await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf", &token));
    v.client
        .post(format!("{}{path}", v.portal()))
        .header("origin", v.portal())
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_password_checks_the_old_one_and_signs_out_other_browsers() {
    let portico = portico().await;
    let laptop = visitor(&portico);
    let phone = visitor(&portico);
    laptop.sign_in(ADA.0, ADA.1).await;
    phone.sign_in(ADA.0, ADA.1).await;
    let staff = format!("{}/apps/staff/", laptop.portal());

    let cases = [
        (
            (
                "wrong-current-pass",
                "new-long-password-1",
                "new-long-password-1",
            ),
            "The current password is not right.",
        ),
        (
            (ADA.1, "new-long-password-1", "different-password-2"),
            "The new password and its repetition differ.",
        ),
        ((ADA.1, "short", "short"), "The password is too short"),
    ];
    for ((current, new, repeat), expected) in cases {
        let response = post_account_form(
            &laptop,
            "/_portico/account/password",
            &[("current", current), ("new", new), ("repeat", repeat)],
        )
        .await;
        assert_eq!(response.status(), 400);
        let body = response.text().await.unwrap();
        assert!(body.contains(expected), "{expected}: {body}");
    }

    let done = post_account_form(
        &laptop,
        "/_portico/account/password",
        &[
            ("current", ADA.1),
            ("new", "babbage-and-lovelace"),
            ("repeat", "babbage-and-lovelace"),
        ],
    )
    .await;
    assert_eq!(done.status(), 200);
    assert!(done
        .text()
        .await
        .unwrap()
        .contains("Your password is changed."));
    assert_eq!(
        laptop.get(&staff).await.status(),
        200,
        "this browser stays signed in"
    );
    assert_eq!(
        phone.get(&staff).await.status(),
        303,
        "the other browser is signed out"
    );
    assert_eq!(
        visitor(&portico)
            .submit_sign_in(ADA.0, ADA.1, "/")
            .await
            .status(),
        401,
        "the old password no longer works"
    );
    visitor(&portico)
        .sign_in(ADA.0, "babbage-and-lovelace")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_everywhere_ends_every_session_of_the_user() {
    let portico = portico().await;
    let laptop = visitor(&portico);
    let phone = visitor(&portico);
    laptop.sign_in(ADA.0, ADA.1).await;
    phone.sign_in(ADA.0, ADA.1).await;
    let app = format!("http://sales.localhost:{}/", portico.port);
    assert_eq!(
        phone.open(&app).await.status,
        200,
        "the phone also has a session on the app host"
    );

    let out = post_account_form(&laptop, "/_portico/account/sign-out-everywhere", &[]).await;
    assert_eq!(out.status(), 303);
    let staff = format!("{}/apps/staff/", laptop.portal());
    assert_eq!(laptop.get(&staff).await.status(), 303);
    assert_eq!(phone.get(&staff).await.status(), 303);
    assert_eq!(phone.get(&app).await.status(), 303, "and on the app host");
}
