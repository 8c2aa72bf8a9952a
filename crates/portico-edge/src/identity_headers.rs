//! The identity headers for a signed-in user, built once per user rather than per request.
//!
//! The session cache hands out the same `Arc<User>` until the user's record changes (the sync
//! loop then swaps in a new one), so an entry is reused while its `Arc` is the current one.

use http::HeaderValue;
use portico_core::User;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const LIMIT: usize = 100_000;

/// Finished header values (cloning one is a reference-count increment).
pub struct IdentityHeaders {
    pub email: HeaderValue,
    pub preferred_username: HeaderValue,
    pub groups: HeaderValue,
    /// `Shiny-Server-Credentials`: `{"user": …, "groups": […]}`.
    pub shiny_credentials: HeaderValue,
}

impl IdentityHeaders {
    fn build(user: &User) -> Option<IdentityHeaders> {
        let value = |text: &str| HeaderValue::from_bytes(text.as_bytes()).ok();
        let credentials =
            serde_json::json!({ "user": user.email, "groups": user.groups }).to_string();
        Some(IdentityHeaders {
            email: value(&user.email)?,
            preferred_username: value(&user.display_name)?,
            groups: value(&user.groups.join(","))?,
            shiny_credentials: value(&credentials)?,
        })
    }
}

/// The user record the headers were built from, and the headers.
type Entry = (Arc<User>, Arc<IdentityHeaders>);

#[derive(Default)]
pub struct IdentityHeaderCache {
    entries: RwLock<HashMap<i64, Entry>>,
}

impl IdentityHeaderCache {
    pub fn get(&self, user: &Arc<User>) -> Option<Arc<IdentityHeaders>> {
        if let Some((cached_user, headers)) = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user.id)
        {
            if Arc::ptr_eq(cached_user, user) {
                return Some(headers.clone());
            }
        }
        let headers = Arc::new(IdentityHeaders::build(user)?);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= LIMIT {
            entries.clear();
        }
        entries.insert(user.id, (user.clone(), headers.clone()));
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada(groups: &[&str]) -> Arc<User> {
        Arc::new(User {
            id: 1,
            email: "ada@example.com".into(),
            display_name: "Ada Lovelace".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            admin: false,
        })
    }

    #[test]
    fn headers_are_reused_until_the_user_record_changes() {
        let cache = IdentityHeaderCache::default();
        let before = ada(&["sales"]);
        let first = cache.get(&before).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&before).unwrap()));
        assert_eq!(first.groups, "sales");
        assert_eq!(
            first.shiny_credentials,
            r#"{"groups":["sales"],"user":"ada@example.com"}"#
        );
        let after = ada(&["sales", "ops"]);
        assert_eq!(
            cache.get(&after).unwrap().groups,
            "sales,ops",
            "a new record, new headers"
        );
    }
}
