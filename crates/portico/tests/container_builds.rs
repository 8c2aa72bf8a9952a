//! Images built by Portico from app folders, on a real Docker daemon: a real Streamlit
//! dashboard from Portico's template (on a Python base made here by debootstrap, its
//! packages installed from PyPI inside the build) works through Portico, live channel
//! included; an unchanged folder is not built again; and a Dockerfile that fails to build
//! leaves the previous image serving, with the error in the build log.

use nix::sys::signal::Signal;
use portico_testkit::docker::{python_base_image, test_server_image};
use portico_testkit::{eventually, AppConfig, Browser, Portico, PorticoConfig};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// `[docker]` with the local base image for Python dashboards, and the host's CA bundle for
/// installs inside builds (the way the host reaches the registries).
fn docker_section() -> String {
    format!(
        "[docker]\nbuild_ca_bundle = \"/etc/ssl/certs/ca-certificates.crt\"\n[docker.base_images]\nstreamlit = \"{}\"\n",
        python_base_image()
    )
}

fn remove_images(repository: &str) {
    let listed = std::process::Command::new("docker")
        .args(["images", "--quiet", "--filter"])
        .arg(format!("reference={repository}"))
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&listed.stdout);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let status = std::process::Command::new("docker")
            .args(["rmi", "--force"])
            .args(&ids)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "removing {repository} images");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamlit_dashboard_is_built_by_the_template_and_works_through_portico() {
    // A real build every run: images of earlier runs (same content, same tag) go first.
    remove_images("portico/streamlit");
    let config = PorticoConfig {
        sections: docker_section(),
        ..PorticoConfig::default()
    }
    .with_app(AppConfig::example("streamlit").with("runtime = \"docker\""));
    let mut portico = Portico::start(BIN, config).await;
    let build_log = std::fs::read_to_string(portico.data_path("logs/streamlit/build.log")).unwrap();
    assert!(
        build_log.contains("from Portico's streamlit template"),
        "{build_log}"
    );
    assert!(build_log.contains("Successfully installed"), "{build_log}");

    let browser = Browser::start().await;
    let url = portico.app_host_url("streamlit");
    browser
        .open_and_wait_for(&url, "Hello from Streamlit")
        .await;
    browser
        .type_into("input[aria-label='Your name']", "Ada\n")
        .await;
    browser.wait_for_text("Hello, Ada, from Streamlit!").await;

    // The same folder again: the image is reused, not rebuilt.
    portico.signal(Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(30)).await;
    portico.start_again().await;
    let build_log = std::fs::read_to_string(portico.data_path("logs/streamlit/build.log")).unwrap();
    assert!(build_log.contains("is up to date"), "{build_log}");
    assert_eq!(portico.apps_json()["apps"][0]["status"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dockerfile_that_fails_to_build_leaves_the_previous_image_serving() {
    let folder = tempfile::tempdir().unwrap();
    let dockerfile = folder.path().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("FROM {}\nLABEL version=one\n", test_server_image()),
    )
    .unwrap();
    let config = PorticoConfig::default()
        .with_app(AppConfig::new("own", folder.path()).with("runtime = \"docker\""));
    let mut portico = Portico::start(BIN, config).await;
    let url = portico.app_host_url("own");
    let body = portico
        .client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("replica=own-"), "{body}");
    let first_image = portico.log();
    assert!(first_image.contains("image portico/own:"), "{first_image}");

    // A broken change (a file that is not there), and Portico restarted.
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {}\nCOPY analysts-typo.csv /data/\n",
            test_server_image()
        ),
    )
    .unwrap();
    portico.signal(Signal::SIGTERM);
    portico.wait_exit(Duration::from_secs(30)).await;
    portico.start_again().await;

    let build_log = std::fs::read_to_string(portico.data_path("logs/own/build.log")).unwrap();
    assert!(
        build_log.contains("the build of portico/own:"),
        "{build_log}"
    );
    assert!(build_log.contains("analysts-typo.csv"), "{build_log}");
    let log = portico.log();
    assert!(
        log.contains("Still serving the latest release's image"),
        "{log}"
    );
    let response = portico.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(portico.apps_json()["apps"][0]["status"], "running");

    // Without an earlier image, the app fails and says why.
    let fresh = PorticoConfig::default()
        .with_app(AppConfig::new("own", folder.path()).with("runtime = \"docker\""));
    let portico = Portico::start_without_waiting_for_apps(BIN, fresh).await;
    let reason = eventually(
        "the app marked failed",
        Duration::from_secs(120),
        || async {
            let apps = portico.apps_json();
            let app = apps["apps"][0].clone();
            (app["status"] == "failed").then(|| app["reason"].as_str().unwrap().to_owned())
        },
    )
    .await;
    assert!(reason.contains("the image build failed"), "{reason}");
    assert!(reason.contains("analysts-typo"), "{reason}");
}
