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
