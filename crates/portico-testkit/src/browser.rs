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

    /// Waits up to 60 s for the page's text to contain `text`; on failure says what the page
    /// showed instead.
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(body) = self.client.find(Locator::Css("body")).await {
                last = body.text().await.unwrap_or_default();
                if last.contains(text) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        panic!("after 60s the page at {url} does not show {text:?}; it shows:\n{last}");
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

impl Browser {
    /// Clicks the first element matching `css` once it exists.
    pub async fn click(&self, css: &str) {
        let client = &self.client;
        let element = eventually(
            &format!("an element {css}"),
            Duration::from_secs(30),
            || async move { client.find(Locator::Css(css)).await.ok() },
        )
        .await;
        element.click().await.unwrap();
    }

    /// The text of the page's body, as the person reads it.
    pub async fn body_text(&self) -> String {
        let body = self.client.find(Locator::Css("body")).await.unwrap();
        body.text().await.unwrap()
    }

    pub async fn current_url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits (up to 10 s) until opening `url` leads to Portico's sign-in page: the session
    /// there has ended.
    pub async fn wait_until_signed_out_of(&self, url: &str) {
        let client = &self.client;
        crate::eventually(
            &format!("{url} to ask for sign-in again"),
            Duration::from_secs(10),
            || async move {
                client.goto(url).await.ok()?;
                let now = client.current_url().await.ok()?;
                now.as_str().contains("/_portico/sign-in").then_some(())
            },
        )
        .await;
    }

    /// Fills and submits Portico's sign-in form (the browser must be on it).
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("main button[type=submit]").await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started share a process group.
        let _ = killpg(Pid::from_raw(self.driver.id() as i32), Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
