//! Accounts known to single sign-on providers, and the group memberships those providers give.

use crate::{Result, Store, UserRow};

impl Store {
    /// The user a provider's subject is linked to.
    pub async fn user_by_external(&self, provider: &str, subject: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.email, u.display_name, u.password_hash, u.disabled, u.admin, u.created_at, u.updated_at
             FROM users u JOIN external_identities x ON x.user_id = u.id
             WHERE x.provider = ? AND x.subject = ?",
        )
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Links a provider's subject to a user (or notes that it was seen again).
    pub async fn link_external(
        &self,
        provider: &str,
        subject: &str,
        user_id: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO external_identities (provider, subject, user_id, created_at, last_seen_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (provider, subject) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The subject a provider knows a user by.
    pub async fn external_subject(&self, provider: &str, user_id: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT subject FROM external_identities WHERE provider = ? AND user_id = ?
             ORDER BY last_seen_at DESC LIMIT 1",
        )
        .bind(provider)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(s,)| s))
    }

    /// Providers a user is linked to.
    pub async fn external_providers_of(&self, user_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT provider FROM external_identities WHERE user_id = ? ORDER BY provider",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }

    /// Makes the memberships `provider` gives a user exactly `groups` (creating groups as
    /// needed), leaving memberships from elsewhere alone. Returns whether anything changed;
    /// a change is published in the change feed so running sessions pick it up.
    pub async fn sync_provider_groups(
        &self,
        user_id: i64,
        provider: &str,
        groups: &[String],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let current: Vec<(String,)> =
            sqlx::query_as("SELECT group_name FROM group_members WHERE user_id = ? AND source = ?")
                .bind(user_id)
                .bind(provider)
                .fetch_all(&mut *tx)
                .await?;
        let mut changed = false;
        for (group,) in &current {
            if !groups.contains(group) {
                sqlx::query(
                    "DELETE FROM group_members WHERE user_id = ? AND group_name = ? AND source = ?",
                )
                .bind(user_id)
                .bind(group)
                .bind(provider)
                .execute(&mut *tx)
                .await?;
                changed = true;
            }
        }
        for group in groups {
            if current.iter().any(|(g,)| g == group) {
                continue;
            }
            sqlx::query(
                "INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            )
            .bind(group)
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
            let added = sqlx::query(
                "INSERT INTO group_members (group_name, user_id, source) VALUES (?, ?, ?)
                 ON CONFLICT (group_name, user_id) DO NOTHING",
            )
            .bind(group)
            .bind(user_id)
            .bind(provider)
            .execute(&mut *tx)
            .await?;
            changed |= added.rows_affected() == 1;
        }
        if changed {
            sqlx::query("INSERT INTO user_changes (user_id) VALUES (?)")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// A portal session made by single sign-on, with the provider's sealed tokens.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SsoSessionRow {
    pub session_hash: String,
    pub provider: String,
    pub user_id: i64,
    pub id_token_sealed: Option<Vec<u8>>,
    pub refresh_sealed: Option<Vec<u8>>,
    pub next_refresh_at: i64,
}

impl Store {
    pub async fn insert_sso_session(&self, row: &SsoSessionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO sso_sessions (session_hash, provider, user_id, id_token_sealed, refresh_sealed, next_refresh_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.session_hash)
        .bind(&row.provider)
        .bind(row.user_id)
        .bind(&row.id_token_sealed)
        .bind(&row.refresh_sealed)
        .bind(row.next_refresh_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn sso_session(&self, session_hash: &str) -> Result<Option<SsoSessionRow>> {
        Ok(sqlx::query_as(
            "SELECT session_hash, provider, user_id, id_token_sealed, refresh_sealed, next_refresh_at
             FROM sso_sessions WHERE session_hash = ?",
        )
        .bind(session_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Live sessions whose refresh is due, oldest first.
    pub async fn due_sso_sessions(&self, now: i64, limit: i64) -> Result<Vec<SsoSessionRow>> {
        Ok(sqlx::query_as(
            "SELECT x.session_hash, x.provider, x.user_id, x.id_token_sealed, x.refresh_sealed, x.next_refresh_at
             FROM sso_sessions x JOIN sessions s ON s.id_hash = x.session_hash
             WHERE x.refresh_sealed IS NOT NULL AND x.next_refresh_at <= ?
               AND s.revoked_at IS NULL AND s.expires_at > ?
             ORDER BY x.next_refresh_at LIMIT ?",
        )
        .bind(now)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// After a refresh: the new refresh token (when the provider rotated it) and the next time.
    pub async fn refreshed_sso_session(
        &self,
        session_hash: &str,
        refresh_sealed: Option<&[u8]>,
        next_refresh_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sso_sessions SET refresh_sealed = COALESCE(?, refresh_sealed), next_refresh_at = ?
             WHERE session_hash = ?",
        )
        .bind(refresh_sealed)
        .bind(next_refresh_at)
        .bind(session_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Records that an assertion was used; `false` when it already was (a replay). Rows past
    /// `expires_at` are forgotten, since the assertion itself would then be refused as expired.
    pub async fn use_saml_assertion(
        &self,
        provider: &str,
        assertion_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool> {
        sqlx::query("DELETE FROM saml_assertions_used WHERE expires_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO saml_assertions_used (provider, assertion_id, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (provider, assertion_id) DO NOTHING",
        )
        .bind(provider)
        .bind(assertion_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}
