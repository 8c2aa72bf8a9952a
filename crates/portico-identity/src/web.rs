//! The cookie and URL rules of sign-in, shared by the edge and the portal. Plain string
//! functions: no HTTP types, so both sides apply exactly the same rules.

/// The session cookie: host-only (no `Domain`), so each app host has its own.
pub const SESSION_COOKIE: &str = "portico_session";
/// The double-submit token of sign-in forms.
pub const CSRF_COOKIE: &str = "portico_csrf";
/// A sign-in in flight at an SSO provider: holds the `state` sent there (see `sso::flows`).
pub const SSO_COOKIE: &str = "portico_sso";
/// A sign-in waiting for its second factor (see `pending`).
pub const MFA_COOKIE: &str = "portico_mfa";
/// The handshake's state on an app host (see `handoff`).
pub const STATE_COOKIE: &str = "portico_state";

/// Values of the cookie `name` in `Cookie` headers (there may be several, e.g. when another
/// site planted one: the caller tries each).
pub fn cookie_values<'a>(
    headers: impl Iterator<Item = &'a str> + 'a,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers.flat_map(|h| h.split(';')).filter_map(move |pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim_matches('"'))
    })
}

/// The `Cookie` headers without Portico's own cookies, which no dashboard may see, joined into
/// one value (HTTP/2 may split cookies over several headers); `None` when nothing is left.
pub fn without_portico_cookies<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut kept = String::new();
    let pairs = headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty());
    for pair in pairs {
        if is_portico_cookie(pair.split('=').next().unwrap_or("")) {
            continue;
        }
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(pair);
    }
    (!kept.is_empty()).then_some(kept)
}

/// Whether a cookie of this name is one of Portico's (with or without a `__Host-` or
/// `__Secure-` prefix).
fn is_portico_cookie(name: &str) -> bool {
    name.starts_with("portico_")
        || name.starts_with("__Host-portico_")
        || name.starts_with("__Secure-portico_")
}

/// A `Set-Cookie` value: HttpOnly, SameSite, `Path=/`, `Secure` under TLS, session lifetime
/// (`max_age` = None) or explicit.
pub fn set_cookie(
    name: &str,
    value: &str,
    same_site: &str,
    secure: bool,
    max_age: Option<i64>,
) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// How Portico names and flags its cookies. Under TLS each name gets the `__Host-` prefix (the
/// browser then accepts the cookie only if it is `Secure`, `Path=/` and has no `Domain`, so a
/// sibling sub-domain or a plain-HTTP page cannot plant or overwrite it) and every cookie is
/// `Secure`. The handshake's state cookie, scoped to the callback path, gets `__Secure-`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookieRules {
    pub secure: bool,
}

impl CookieRules {
    /// Secure cookies when the public scheme is `https`.
    pub fn for_scheme(scheme: &str) -> CookieRules {
        CookieRules {
            secure: scheme == "https",
        }
    }

    /// The name a cookie has on the wire.
    pub fn name(self, base: &'static str) -> &'static str {
        if !self.secure {
            return base;
        }
        match base {
            SESSION_COOKIE => "__Host-portico_session",
            CSRF_COOKIE => "__Host-portico_csrf",
            MFA_COOKIE => "__Host-portico_mfa",
            SSO_COOKIE => "__Host-portico_sso",
            STATE_COOKIE => "__Secure-portico_state",
            other => other,
        }
    }

    /// `Set-Cookie` for one of Portico's cookies (path `/`).
    pub fn set(
        self,
        base: &'static str,
        value: &str,
        same_site: &str,
        max_age: Option<i64>,
    ) -> String {
        set_cookie(self.name(base), value, same_site, self.secure, max_age)
    }

    /// `Set-Cookie` that removes one of Portico's cookies.
    pub fn clear(self, base: &'static str) -> String {
        clear_cookie(self.name(base), self.secure)
    }

    /// The values of one of Portico's cookies in `Cookie` headers.
    pub fn values<'a>(
        self,
        headers: impl Iterator<Item = &'a str> + 'a,
        base: &'static str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        cookie_values(headers, self.name(base))
    }
}

/// Removes a cookie.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", "Lax", secure, Some(0))
}

/// A path on the same host to return to after sign-in, or `None`. Only absolute paths are
/// honoured: `//evil.com`, `/\evil.com`, `https://evil.com` and anything with control
/// characters would send the browser to another site (an open redirect).
pub fn safe_local_path(candidate: &str) -> Option<&str> {
    let ok = candidate.starts_with('/')
        && !candidate.starts_with("//")
        && !candidate.starts_with("/\\")
        && !candidate.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(candidate)
}

/// For the handshake: the app host and path of an absolute URL on one of our app hosts
/// (`http://sales.example.com:8080/x` with `domain` = `example.com`), or `None` for anything
/// else, so the portal never hands a code to a foreign site.
pub fn app_url_parts<'a>(url: &'a str, scheme: &str, domain: &str) -> Option<(&'a str, &'a str)> {
    let rest = url.strip_prefix(scheme)?.strip_prefix("://")?;
    let (host, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            ""
        }
    });
    let label = name.strip_suffix(domain)?.strip_suffix('.')?;
    let valid_label = !label.is_empty()
        && !label.contains('.')
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (valid_label && safe_local_path(path).is_some()).then_some((host, path))
}

#[cfg(test)]
mod tests {

    #[test]
    fn under_tls_cookies_are_host_prefixed_and_secure() {
        let tls = CookieRules::for_scheme("https");
        let set = tls.set(SESSION_COOKIE, "v", "Lax", None);
        assert_eq!(
            set,
            "__Host-portico_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(tls.name(STATE_COOKIE), "__Secure-portico_state");
        let found: Vec<&str> = tls
            .values(
                ["portico_session=plain; __Host-portico_session=v"].into_iter(),
                SESSION_COOKIE,
            )
            .collect();
        assert_eq!(found, ["v"], "over TLS only the prefixed cookie counts");
        let plain = CookieRules::for_scheme("http");
        assert_eq!(
            plain.set(SESSION_COOKIE, "v", "Lax", None),
            "portico_session=v; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            without_portico_cookies(["a=1; __Host-portico_session=x; __Secure-portico_state=y"]),
            Some("a=1".into())
        );
    }

    use super::*;

    #[test]
    fn cookies_are_found_and_portico_ones_hidden_from_apps() {
        let headers = ["a=1; portico_session=abc; b=2", "portico_session=def"];
        let found: Vec<&str> = cookie_values(headers.into_iter(), SESSION_COOKIE).collect();
        assert_eq!(found, vec!["abc", "def"]);
        assert_eq!(
            without_portico_cookies(["a=1; portico_session=abc; portico_csrf=x; b=2"]).unwrap(),
            "a=1; b=2"
        );
        assert!(without_portico_cookies(["portico_session=abc"]).is_none());
        assert!(set_cookie(SESSION_COOKIE, "v", "Lax", true, None)
            .ends_with("HttpOnly; SameSite=Lax; Secure"));
    }

    #[test]
    fn only_local_paths_are_return_targets() {
        for ok in ["/", "/apps/sales/?q=1", "/a/b#c"] {
            assert_eq!(safe_local_path(ok), Some(ok));
        }
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "evil.com",
            "/a\r\nSet-Cookie: x",
            "",
            "/%0d\\x",
        ] {
            assert_eq!(safe_local_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn handshake_targets_are_our_app_hosts_only() {
        let parts = app_url_parts("http://sales.localhost:8080/x?y", "http", "localhost").unwrap();
        assert_eq!(parts, ("sales.localhost:8080", "/x?y"));
        assert_eq!(
            app_url_parts("http://sales.localhost", "http", "localhost").unwrap(),
            ("sales.localhost", "/")
        );
        for bad in [
            "http://evil.com/",
            "http://sales.localhost.evil.com/",
            "http://evillocalhost/",
            "https://sales.localhost/",
            "http://a.b.localhost/",
            "http://localhost/",
            "http://sales.localhost//evil.com",
            "http://user@sales.localhost/",
        ] {
            assert!(app_url_parts(bad, "http", "localhost").is_none(), "{bad}");
        }
    }
}
