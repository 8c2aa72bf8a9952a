//! A real headless Chromium driven through chromedriver (WebDriver), for the tests that must
//! see what a person sees: pages rendered by the frameworks' JavaScript, and their live
//! channels working.

use crate::{eventually, free_port};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = free_port();
        let driver =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver is installed (scripts/test installs chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(
            "chromedriver to accept a session",
            Duration::from_secs(30),
            || {
                let caps = caps.clone();
                let url = url.clone();
                async move {
                    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                        .capabilities(caps)
                        .connect(&url)
                        .await
                        .ok()
                }
            },
        )
        .await;
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens a page and waits until its body text contains `text`.
    pub async fn open_and_wait_for(&self, url: &str, text: &str) {
        self.client.goto(url).await.unwrap();
        self.wait_for_text(text).await;
    }

    pub async fn wait_for_text(&self, text: &str) {
        let client = &self.client;
        eventually(
            &format!("the page to show {text:?}"),
            Duration::from_secs(60),
            || async move {
                let body = client
                    .find(Locator::Css("body"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                body.contains(text).then_some(())
            },
        )
        .await;
    }

    /// Types into the first element matching `css` once it exists.
    pub async fn type_into(&self, css: &str, text: &str) {
        let client = &self.client;
        let element = eventually(
            &format!("an element {css}"),
            Duration::from_secs(60),
            || async move { client.find(Locator::Css(css)).await.ok() },
        )
        .await;
        element.send_keys(text).await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group.
        let _ = killpg(Pid::from_raw(self.driver.id() as i32), Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
