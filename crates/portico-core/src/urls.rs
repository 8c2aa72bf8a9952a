//! The public addresses of the portal and of each app (DESIGN.md, "Addresses").

/// Builds the URLs people use: the portal at `http://<domain>:<port>/`, an app at
/// `http://<name>.<domain>:<port>/` (host-based) and `http://<domain>:<port>/apps/<name>/`.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    scheme: &'static str,
    domain: String,
    /// `:8080`, or empty for the scheme's default port.
    port_suffix: String,
}

/// The first path segment under which path-based apps live.
pub const APPS_PATH: &str = "/apps/";

impl PublicUrls {
    pub fn new(domain: &str, port: u16, tls: bool) -> PublicUrls {
        let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
        let port_suffix = if port == default_port {
            String::new()
        } else {
            format!(":{port}")
        };
        PublicUrls {
            scheme,
            domain: domain.to_owned(),
            port_suffix,
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn portal(&self) -> String {
        format!("{}://{}{}/", self.scheme, self.domain, self.port_suffix)
    }

    pub fn app_host(&self, app: &str) -> String {
        format!(
            "{}://{}.{}{}/",
            self.scheme, app, self.domain, self.port_suffix
        )
    }

    pub fn app_path(&self, app: &str) -> String {
        format!(
            "{}://{}{}{}{}/",
            self.scheme, self.domain, self.port_suffix, APPS_PATH, app
        )
    }

    /// `https://<host>:<port>`: where a request for `host` on another listener belongs.
    pub fn origin_of(&self, host: &str) -> String {
        format!("{}://{}{}", self.scheme, host, self.port_suffix)
    }

    /// The `frame-ancestors` policy for an app: the app itself, the portal, and `extra`
    /// origins; `None` when `extra` holds `*` (anyone may frame it).
    pub fn frame_policy(&self, extra: &[String]) -> Option<String> {
        if extra.iter().any(|o| o == "*") {
            return None;
        }
        let mut policy = format!(
            "frame-ancestors 'self' {}://{}{}",
            self.scheme, self.domain, self.port_suffix
        );
        for origin in extra {
            policy.push(' ');
            policy.push_str(origin);
        }
        Some(policy)
    }

    /// Whether `host` is the portal's or an app's.
    pub fn serves_host(&self, host: &str) -> bool {
        host == self.domain
            || host
                .strip_suffix(self.domain.as_str())
                .is_some_and(|label| label.ends_with('.') && label.len() > 1)
    }

    /// The `Host` values a browser sends for this app (for frameworks that check WebSocket
    /// origins, such as Panel).
    pub fn app_hosts(&self, app: &str) -> [String; 2] {
        [
            format!("{}{}", self.domain, self.port_suffix),
            format!("{}.{}{}", app, self.domain, self.port_suffix),
        ]
    }
}

/// The path prefix of an app in path mode, without a trailing slash: `/apps/sales`.
pub fn app_prefix(app: &str) -> String {
    format!("{}{}", APPS_PATH.trim_end_matches('/'), app_suffix(app))
}

fn app_suffix(app: &str) -> String {
    format!("/{app}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_left_out_of_urls() {
        let urls = PublicUrls::new("example.com", 443, true);
        assert_eq!(urls.portal(), "https://example.com/");
        assert_eq!(urls.app_host("sales"), "https://sales.example.com/");
        assert_eq!(urls.app_path("sales"), "https://example.com/apps/sales/");
    }

    #[test]
    fn other_ports_are_kept() {
        let urls = PublicUrls::new("localhost", 8080, false);
        assert_eq!(urls.app_host("sales"), "http://sales.localhost:8080/");
        assert_eq!(app_prefix("sales"), "/apps/sales");
    }
}
