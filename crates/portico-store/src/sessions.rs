//! Sessions as stored. Times are Unix seconds. `id_hash` is the SHA-256 of the cookie value,
//! hex-encoded; the cookie value itself is never stored.

use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: i64,
    pub host: String,
    pub parent_hash: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str =
    "id_hash, user_id, host, parent_hash, created_at, last_seen_at, expires_at, revoked_at";

impl Store {
    pub async fn insert_session(&self, s: &SessionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, host, parent_hash, created_at, last_seen_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id_hash)
        .bind(s.user_id)
        .bind(&s.host)
        .bind(&s.parent_hash)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sessions that are neither revoked nor past their absolute expiry.
    pub async fn live_sessions(&self, now: i64) -> Result<Vec<SessionRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE revoked_at IS NULL AND expires_at > ?"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a session and the sessions the cross-host handshake made from it.
    pub async fn revoke_session(&self, id_hash: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND (id_hash = ? OR parent_hash = ?)",
        )
        .bind(now)
        .bind(id_hash)
        .bind(id_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes every session of a user ("sign out everywhere", or the user was disabled).
    pub async fn revoke_user_sessions(&self, user_id: i64, now: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND user_id = ?",
        )
        .bind(now)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Hashes of sessions revoked at or after `since` (for other instances to drop them).
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id_hash FROM sessions WHERE revoked_at >= ?")
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(h,)| h).collect())
    }

    /// Records when sessions were last used (batched by the session cache).
    pub async fn touch_sessions(&self, seen: &[(String, i64)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (id_hash, at) in seen {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id_hash = ?",
            )
            .bind(at)
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets sessions that ended more than a day ago.
    pub async fn delete_old_sessions(&self, now: i64) -> Result<u64> {
        let cutoff = now - 86_400;
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?")
            .bind(cutoff)
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// A key that signs identity assertions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_der: Vec<u8>,
    pub created_at: i64,
}

impl Store {
    /// Keys not retired, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT kid, private_der, created_at FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, rowid DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces a key's stored form (a key kept in clear by an older version gets sealed).
    pub async fn replace_signing_key_bytes(&self, kid: &str, private_der: &[u8]) -> Result<()> {
        sqlx::query("UPDATE signing_keys SET private_der = ? WHERE kid = ?")
            .bind(private_der)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds a key; keys older than the newest `keep` are retired (dropped from the JWKS).
    pub async fn add_signing_key(&self, key: &SigningKeyRow, keep: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO signing_keys (kid, private_der, created_at) VALUES (?, ?, ?)")
            .bind(&key.kid)
            .bind(&key.private_der)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND kid NOT IN
             (SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT ?)",
        )
        .bind(key.created_at)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
