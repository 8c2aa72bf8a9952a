//! Single-use links for invitations and password resets. Only the SHA-256 of a link's token
//! is stored; times are Unix seconds.

use crate::{now, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRow {
    pub token_hash: String,
    /// `invite` or `reset`.
    pub purpose: String,
    pub user_id: i64,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl Store {
    /// Stores a new link; earlier unused links of the same purpose for that user stop working,
    /// so only the newest e-mail is good.
    pub async fn insert_link(&self, link: &LinkRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE account_links SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
        )
        .bind(link.created_at)
        .bind(link.user_id)
        .bind(&link.purpose)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO account_links (token_hash, purpose, user_id, created_by, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&link.token_hash)
        .bind(&link.purpose)
        .bind(link.user_id)
        .bind(&link.created_by)
        .bind(link.created_at)
        .bind(link.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn link_by_hash(&self, token_hash: &str) -> Result<Option<LinkRow>> {
        Ok(sqlx::query_as(
            "SELECT token_hash, purpose, user_id, created_by, created_at, expires_at, used_at
             FROM account_links WHERE token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Uses a link to set the user's password (and, for an invitation, their display name), in
    /// one transaction: the link must be unused and unexpired at `at`. Returns the user id, or
    /// `None` when the link was used or expired meanwhile.
    pub async fn redeem_link(
        &self,
        token_hash: &str,
        at: i64,
        password_hash: &str,
        display_name: Option<&str>,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let user: Option<(i64,)> = sqlx::query_as(
            "UPDATE account_links SET used_at = ?
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id",
        )
        .bind(at)
        .bind(token_hash)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = user else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE users SET password_hash = ?, display_name = COALESCE(?, display_name), updated_at = ?
             WHERE id = ?",
        )
        .bind(password_hash)
        .bind(display_name)
        .bind(now())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO user_changes (user_id) VALUES (?)")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }
}
