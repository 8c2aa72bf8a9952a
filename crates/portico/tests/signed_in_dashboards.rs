//! In a real browser: sign in, use a dashboard on its own host, and see every example
//! dashboard know who you are.

use portico_testkit::{AppConfig, Browser, Portico, PorticoConfig};

const BIN: &str = env!("CARGO_BIN_EXE_portico");

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_uses_streamlit_on_its_own_host_and_every_example_knows_them() {
    let signed_in = |name: &str| AppConfig::example(name).with("access = \"signed-in\"");
    let config = PorticoConfig::default()
        .with_app(signed_in("streamlit"))
        .with_app(AppConfig::example("flask").with("access = { groups = [\"sales\"] }"))
        .with_app(signed_in("dash"))
        .with_app(signed_in("r-shiny"));
    let portico = Portico::start(BIN, config).await;
    portico.add_user("ada@example.com", "analytical-engine-1843", &["sales"]);
    let browser = Browser::start().await;
    let streamlit = portico.app_host_url("streamlit");

    // Not signed in: the dashboard's own address leads to the sign-in page, and back.
    browser.open_and_wait_for(&streamlit, "E-mail").await;
    assert!(
        browser.current_url().await.contains("/_portico/sign-in"),
        "{}",
        browser.current_url().await
    );
    browser
        .sign_in("ada@example.com", "analytical-engine-1843")
        .await;
    browser.wait_for_text("Hello from Streamlit").await;
    assert_eq!(
        browser.current_url().await,
        streamlit,
        "back on the dashboard's own host"
    );
    browser
        .wait_for_text("Signed in as ada@example.com (groups: sales)")
        .await;
    browser
        .type_into("input[aria-label='Your name']", "Ada\n")
        .await;
    browser.wait_for_text("Hello, Ada, from Streamlit!").await;

    // Already signed in at the portal: other dashboards' hosts open straight away.
    for app in ["flask", "dash", "r-shiny"] {
        browser
            .open_and_wait_for(
                &portico.app_host_url(app),
                "Signed in as ada@example.com (groups: sales)",
            )
            .await;
    }

    // Signing out closes every dashboard.
    browser
        .open_and_wait_for(&portico.portal_url(), "Signed in as")
        .await;
    browser.click("nav form button").await;
    browser.wait_for_text("E-mail").await;
    browser.wait_until_signed_out_of(&streamlit).await;
}
