//! A person with a browser's cookie jar, driving Portico over HTTP: enough to test sign-in
//! flows hop by hop (the browser tests cover what JavaScript does).

use crate::portico::Portico;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, ACCEPT, LOCATION, ORIGIN};
use reqwest::{Response, StatusCode};
use std::sync::Arc;

pub struct Visitor {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    port: u16,
    scheme: &'static str,
}

/// Where a chain of redirects ended.
pub struct Landing {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    /// Every URL visited, in order.
    pub hops: Vec<String>,
}

impl Visitor {
    /// Over HTTPS (`[tls] self_signed = true`) it trusts Portico's development certificate
    /// and, like a browser, speaks HTTP/2 where ALPN offers it.
    pub fn new(portico: &Portico, apps: &[&str]) -> Visitor {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone());
        if portico.scheme() == "https" {
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(portico.self_signed_certificate());
        }
        for app in apps {
            builder = builder.resolve(
                &format!("{app}.localhost"),
                ([127, 0, 0, 1], portico.port).into(),
            );
        }
        let client = builder
            .resolve("localhost", ([127, 0, 0, 1], portico.port).into())
            .build()
            .unwrap();
        Visitor {
            client,
            jar,
            port: portico.port,
            scheme: portico.scheme(),
        }
    }

    pub fn portal(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.port)
    }

    /// A browser navigation: `Accept: text/html`.
    pub async fn get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .header(ACCEPT, "text/html,*/*")
            .send()
            .await
            .unwrap()
    }

    /// The text of a portal page (`path` such as `/_portico/account`), not following redirects.
    pub async fn page(&self, path: &str) -> String {
        let url = format!("{}{path}", self.portal());
        self.get(&url).await.text().await.unwrap()
    }

    /// Follows redirects like a browser, at most 10.
    pub async fn open(&self, url: &str) -> Landing {
        let mut url = url.to_owned();
        let mut hops = vec![url.clone()];
        for _ in 0..10 {
            let response = self.get(&url).await;
            if !response.status().is_redirection() {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.text().await.unwrap_or_default();
                return Landing {
                    url,
                    status,
                    headers,
                    body,
                    hops,
                };
            }
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            url = if location.starts_with('/') {
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{location}")
            } else {
                location
            };
            hops.push(url.clone());
        }
        panic!("more than 10 redirects: {hops:?}");
    }

    /// Submits the first form on a page (its `action`, resolved against the page's origin)
    /// with `fields`, and follows the redirects like a browser.
    pub async fn submit_form(&self, page: &Landing, fields: &[(&str, &str)]) -> Landing {
        let start = page.body.find("action=\"").expect("a form on the page") + "action=\"".len();
        let action = &page.body[start..start + page.body[start..].find('"').unwrap()];
        let action = action.replace("&amp;", "&");
        let url = if action.starts_with('/') {
            let origin: String = page
                .url
                .splitn(4, '/')
                .take(3)
                .collect::<Vec<_>>()
                .join("/");
            format!("{origin}{action}")
        } else {
            action
        };
        // The form's hidden inputs go along, as a browser sends them.
        let form_html = &page.body[start..];
        let form_html = &form_html[..form_html.find("</form>").unwrap_or(form_html.len())];
        let attribute = |tag: &str, name: &str| {
            let key = format!("{name}=\"");
            tag.find(&key).map(|i| {
                let rest = &tag[i + key.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
            })
        };
        let mut all: Vec<(String, String)> = form_html
            .split("<input")
            .skip(1)
            .filter(|tag| tag.contains("type=\"hidden\""))
            .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
            .collect();
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let response = self
            .client
            .post(&url)
            .header(ACCEPT, "text/html,*/*")
            .form(&all)
            .send()
            .await
            .unwrap();
        if response.status().is_redirection() {
            let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
            let next = if location.starts_with('/') {
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{location}")
            } else {
                location
            };
            let mut landing = self.open(&next).await;
            landing.hops.insert(0, url);
            return landing;
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Landing {
            url: url.clone(),
            status,
            headers,
            body,
            hops: vec![url],
        }
    }

    /// The CSRF token of Portico's forms (also sets its cookie): from the sign-in page, or,
    /// for a browser already signed in (which that page redirects), from the portal's
    /// sign-out form.
    pub async fn sign_in_token(&self) -> String {
        let mut page = self
            .get(&format!("{}/_portico/sign-in", self.portal()))
            .await
            .text()
            .await
            .unwrap();
        if !page.contains("name=\"csrf\"") {
            page = self
                .get(&format!("{}/", self.portal()))
                .await
                .text()
                .await
                .unwrap();
        }
        let start = page.find("name=\"csrf\" value=\"").expect("a csrf field")
            + "name=\"csrf\" value=\"".len();
        page[start..start + 64].to_owned()
    }

    /// Submits the sign-in form as a browser on the portal would; returns the response
    /// (a 303 on success).
    pub async fn submit_sign_in(&self, email: &str, password: &str, return_to: &str) -> Response {
        let token = self.sign_in_token().await;
        self.client
            .post(format!("{}/_portico/sign-in", self.portal()))
            .header(ORIGIN, self.portal())
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf", &token),
                ("return", return_to),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Submits one of the portal's forms (`path` such as `/_portico/sign-in/verify`) as a
    /// browser on the portal would: its CSRF token and `Origin` added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let token = self.sign_in_token().await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        self.client
            .post(format!("{}{path}", self.portal()))
            .header(ORIGIN, self.portal())
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in and checks it worked.
    pub async fn sign_in(&self, email: &str, password: &str) {
        let response = self.submit_sign_in(email, password, "/").await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "sign-in as {email} failed: {}",
            response.text().await.unwrap()
        );
    }

    /// The session cookie this browser holds for a host (`localhost`, `sales.localhost`).
    pub fn session_cookie(&self, host: &str) -> Option<String> {
        let url = format!("{}://{host}:{}/", self.scheme, self.port)
            .parse()
            .unwrap();
        let cookies = self.jar.cookies(&url)?;
        // Under TLS the name carries the __Host- prefix.
        let name = match self.scheme {
            "https" => "__Host-portico_session=",
            _ => "portico_session=",
        };
        cookies
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(name).map(str::to_owned))
    }
}
