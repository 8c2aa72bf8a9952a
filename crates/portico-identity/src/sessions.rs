//! Server-side sessions with an in-memory cache.
//!
//! The cookie holds 256 random bits (hex). The store keeps only their SHA-256, so neither a
//! copy of the database nor a log line can be turned into a session. The request path calls
//! [`Sessions::lookup`], which reads two in-memory maps and never waits on the database. The
//! store is the truth: a sync loop ([`Sessions::sync`], every second) applies what other
//! processes changed (the CLI disabling a user, changing groups, an instance revoking a
//! session) and records when sessions were last used.

use portico_core::User;
use portico_store::{SessionRow, Store, StoreError, UserRow};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however much it is used.
    pub lifetime: Duration,
}

struct LiveSession {
    id_hash: String,
    user_id: i64,
    host: String,
    expires_at: i64,
    last_seen: AtomicI64,
    /// The last `last_seen` written to the store.
    persisted_seen: AtomicI64,
}

/// A new session's cookie value: give it to the browser, never store or log it.
pub struct NewSession {
    pub cookie_value: String,
    /// What the store knows it by (SHA-256 of the value, hex).
    pub id_hash: String,
}

/// The stored id of a session cookie value (`None` for anything that is not one).
pub fn id_hash_of(cookie_value: &str) -> Option<String> {
    decode(cookie_value).map(|raw| hex::encode(digest(&raw)))
}

pub struct Sessions {
    store: Store,
    policy: SessionPolicy,
    sessions: RwLock<HashMap<[u8; 32], Arc<LiveSession>>>,
    users: RwLock<HashMap<i64, Arc<User>>>,
    /// Where the sync loop has read up to: the change feed's sequence, and the time of the
    /// last revocation check.
    cursor: Mutex<(i64, i64)>,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The cookie value as raw bytes; `None` for anything that is not 64 hex digits.
fn decode(cookie_value: &str) -> Option<[u8; 32]> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(cookie_value, &mut raw).ok()?;
    Some(raw)
}

fn digest(raw: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

async fn load_user(store: &Store, row: UserRow) -> Result<User, StoreError> {
    Ok(User {
        groups: store.groups_of(row.id).await?,
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        admin: row.admin,
    })
}

impl Sessions {
    /// Loads the live sessions from the store, so that sign-ins survive a restart.
    pub async fn load(store: Store, policy: SessionPolicy) -> Result<Arc<Sessions>, StoreError> {
        let now = unix_now();
        let cursor = (store.latest_user_change().await?, now);
        let sessions = Sessions {
            store,
            policy,
            sessions: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            cursor: Mutex::new(cursor),
        };
        for row in sessions.store.live_sessions(now).await? {
            sessions.remember_user(row.user_id).await?;
            sessions.cache(row);
        }
        Ok(Arc::new(sessions))
    }

    fn cache(&self, row: SessionRow) {
        let Ok(raw) = hex::decode(&row.id_hash) else {
            return;
        };
        let Ok(key) = <[u8; 32]>::try_from(raw.as_slice()) else {
            return;
        };
        let live = LiveSession {
            id_hash: row.id_hash,
            user_id: row.user_id,
            host: row.host,
            expires_at: row.expires_at,
            last_seen: AtomicI64::new(row.last_seen_at),
            persisted_seen: AtomicI64::new(row.last_seen_at),
        };
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Arc::new(live));
    }

    /// Loads (or drops, when gone or disabled) one user into the cache.
    async fn remember_user(&self, user_id: i64) -> Result<(), StoreError> {
        match self.store.user_by_id(user_id).await? {
            Some(row) if !row.disabled => {
                let user = Arc::new(load_user(&self.store, row).await?);
                self.users
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(user_id, user);
            }
            _ => {
                self.users
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&user_id);
                self.sessions
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, s| s.user_id != user_id);
            }
        }
        Ok(())
    }

    /// Starts a session for `user` on `host`. `parent` is the portal session's cookie value
    /// when the cross-host handshake makes this one.
    pub async fn create(
        &self,
        user: &UserRow,
        host: &str,
        parent: Option<&str>,
    ) -> Result<NewSession, StoreError> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let now = unix_now();
        let parent_hash = parent.and_then(decode).map(|p| hex::encode(digest(&p)));
        let row = SessionRow {
            id_hash: hex::encode(digest(&raw)),
            user_id: user.id,
            host: host.to_owned(),
            parent_hash,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.policy.lifetime.as_secs() as i64,
            revoked_at: None,
        };
        self.store.insert_session(&row).await?;
        self.remember_user(user.id).await?;
        let id_hash = row.id_hash.clone();
        self.cache(row);
        Ok(NewSession {
            cookie_value: hex::encode(raw),
            id_hash,
        })
    }

    /// A session on `host` for the user of a handshake code, made from the portal session
    /// `parent_cookie`; `None` when the user is gone or disabled since.
    pub async fn create_for_user_id(
        &self,
        user_id: i64,
        host: &str,
        parent_cookie: &str,
    ) -> Result<Option<NewSession>, StoreError> {
        match self.store.user_by_id(user_id).await? {
            Some(user) if !user.disabled => self
                .create(&user, host, Some(parent_cookie))
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The user of a live session for this host, from memory only. A cookie that is malformed,
    /// unknown, for another host, idle too long or past its lifetime gives `None`.
    pub fn lookup(&self, cookie_value: &str, host: &str) -> Option<Arc<User>> {
        let key = digest(&decode(cookie_value)?);
        let session = self
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)?
            .clone();
        let now = unix_now();
        let idle = now - session.last_seen.load(Ordering::Relaxed);
        if session.host != host
            || now >= session.expires_at
            || idle > self.policy.idle_timeout.as_secs() as i64
        {
            return None;
        }
        session.last_seen.store(now, Ordering::Relaxed);
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session.user_id)
            .cloned()
    }

    /// Ends a session and those made from it (sign-out).
    pub async fn end(&self, cookie_value: &str) -> Result<(), StoreError> {
        let Some(raw) = decode(cookie_value) else {
            return Ok(());
        };
        let hash = hex::encode(digest(&raw));
        self.store.revoke_session(&hash, unix_now()).await?;
        self.forget(|s| s.id_hash == hash);
        // Children are dropped by the next sync, which reads the store's revocations.
        self.sync().await
    }

    /// Ends every session of a user (sign out everywhere).
    pub async fn end_all_for_user(&self, user_id: i64) -> Result<(), StoreError> {
        self.store.revoke_user_sessions(user_id, unix_now()).await?;
        self.forget(|s| s.user_id == user_id);
        Ok(())
    }

    fn forget(&self, doomed: impl Fn(&LiveSession) -> bool) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| !doomed(s));
    }

    /// Applies changes made elsewhere and records last use. Called every second by
    /// [`Sessions::spawn_sync`]; cheap when nothing changed.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (after, since) = *self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_now();
        let changes = self.store.user_changes(after).await?;
        let mut latest = after;
        for (seq, user_id) in changes {
            latest = seq;
            self.remember_user(user_id).await?;
        }
        // Revocations are looked for a little before the last check: clocks tick in seconds.
        let revoked = self.store.revoked_since(since - 2).await?;
        if !revoked.is_empty() {
            self.forget(|s| revoked.contains(&s.id_hash));
        }
        let idle_limit = self.policy.idle_timeout.as_secs() as i64;
        let mut seen = Vec::new();
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| {
                let last = s.last_seen.load(Ordering::Relaxed);
                if s.persisted_seen.swap(last, Ordering::Relaxed) != last {
                    seen.push((s.id_hash.clone(), last));
                }
                now < s.expires_at && now - last <= idle_limit
            });
        if !seen.is_empty() {
            self.store.touch_sessions(&seen).await?;
        }
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = (latest, now);
        Ok(())
    }

    /// Runs [`Sessions::sync`] every `interval` until the process ends.
    pub fn spawn_sync(self: &Arc<Self>, interval: Duration) {
        let sessions = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            let mut cleaned = unix_now();
            loop {
                ticker.tick().await;
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                if let Err(e) = sessions.sync().await {
                    tracing::warn!("session sync failed: {e}");
                }
                if unix_now() - cleaned > 3600 {
                    cleaned = unix_now();
                    let _ = sessions.store.delete_old_sessions(cleaned).await;
                }
            }
        });
    }

    /// How many sessions are cached (for metrics and tests).
    pub fn len(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accounts, NewUser};

    const HOUR: Duration = Duration::from_secs(3600);

    async fn setup() -> (tempfile::TempDir, Accounts, Arc<Sessions>, UserRow) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let accounts = Accounts::new(store.clone());
        accounts
            .add_user(
                "t",
                NewUser {
                    email: "boss@example.com",
                    display_name: None,
                    password: None,
                    admin: true,
                },
            )
            .await
            .unwrap();
        accounts
            .add_user(
                "t",
                NewUser {
                    email: "ada@example.com",
                    display_name: None,
                    password: None,
                    admin: false,
                },
            )
            .await
            .unwrap();
        accounts.add_group("t", "sales").await.unwrap();
        accounts
            .set_member("t", "sales", "ada@example.com", true)
            .await
            .unwrap();
        let sessions = Sessions::load(
            store.clone(),
            SessionPolicy {
                idle_timeout: HOUR,
                lifetime: 8 * HOUR,
            },
        )
        .await
        .unwrap();
        let ada = store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        (dir, accounts, sessions, ada)
    }

    #[tokio::test]
    async fn a_session_names_its_user_only_on_its_own_host_and_the_store_never_sees_the_cookie() {
        let (dir, _accounts, sessions, ada) = setup().await;
        let new = sessions.create(&ada, "localhost", None).await.unwrap();
        let user = sessions.lookup(&new.cookie_value, "localhost").unwrap();
        assert_eq!(user.email, "ada@example.com");
        assert_eq!(user.groups, vec!["sales"]);
        assert!(
            sessions
                .lookup(&new.cookie_value, "sales.localhost")
                .is_none(),
            "bound to its host"
        );
        for forged in ["", "zz", &"0".repeat(64), &"a".repeat(10_000), "%00%ff"] {
            assert!(sessions.lookup(forged, "localhost").is_none(), "{forged}");
        }
        let db = std::fs::read(dir.path().join("portico.db")).unwrap();
        let wal = std::fs::read(dir.path().join("portico.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(!String::from_utf8_lossy(&bytes).contains(&new.cookie_value));
        }
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_and_end_at_sign_out() {
        let (_dir, accounts, sessions, ada) = setup().await;
        let new = sessions.create(&ada, "localhost", None).await.unwrap();
        let child = sessions
            .create(&ada, "sales.localhost", Some(&new.cookie_value))
            .await
            .unwrap();
        let reloaded = Sessions::load(accounts.store().clone(), sessions.policy)
            .await
            .unwrap();
        assert!(reloaded.lookup(&new.cookie_value, "localhost").is_some());
        reloaded.end(&new.cookie_value).await.unwrap();
        assert!(reloaded.lookup(&new.cookie_value, "localhost").is_none());
        assert!(
            reloaded
                .lookup(&child.cookie_value, "sales.localhost")
                .is_none(),
            "made from it, ended with it"
        );
        sessions.sync().await.unwrap();
        assert!(
            sessions.lookup(&new.cookie_value, "localhost").is_none(),
            "another instance learns it"
        );
    }

    #[tokio::test]
    async fn disabling_a_user_elsewhere_ends_their_sessions_at_the_next_sync() {
        let (dir, accounts, sessions, ada) = setup().await;
        let new = sessions.create(&ada, "localhost", None).await.unwrap();
        // As the CLI would, through its own connection.
        let cli = Accounts::new(Store::open(dir.path()).await.unwrap());
        cli.set_member("cli", "sales", "ada@example.com", false)
            .await
            .unwrap();
        sessions.sync().await.unwrap();
        assert!(
            sessions
                .lookup(&new.cookie_value, "localhost")
                .unwrap()
                .groups
                .is_empty(),
            "groups follow"
        );
        cli.set_disabled("cli", "ada@example.com", true)
            .await
            .unwrap();
        sessions.sync().await.unwrap();
        assert!(sessions.lookup(&new.cookie_value, "localhost").is_none());
        drop(accounts);
    }

    #[tokio::test]
    async fn idle_and_expired_sessions_end() {
        let (_dir, accounts, _sessions, ada) = setup().await;
        let short = Sessions::load(
            accounts.store().clone(),
            SessionPolicy {
                idle_timeout: Duration::ZERO,
                lifetime: HOUR,
            },
        )
        .await
        .unwrap();
        let new = short.create(&ada, "localhost", None).await.unwrap();
        assert!(
            short.lookup(&new.cookie_value, "localhost").is_some(),
            "used at once"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            short.lookup(&new.cookie_value, "localhost").is_none(),
            "idle for over a second"
        );
        let expired = Sessions::load(
            accounts.store().clone(),
            SessionPolicy {
                idle_timeout: HOUR,
                lifetime: Duration::ZERO,
            },
        )
        .await
        .unwrap();
        let new = expired.create(&ada, "localhost", None).await.unwrap();
        assert!(
            expired.lookup(&new.cookie_value, "localhost").is_none(),
            "lifetime over"
        );
    }
}
