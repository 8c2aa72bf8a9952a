//! Second factors as stored: one TOTP authenticator per user and their recovery codes. Times
//! are Unix seconds. The identity crate seals secrets and hashes codes before they get here.

use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRow {
    pub user_id: i64,
    pub secret_sealed: Vec<u8>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
}

impl Store {
    pub async fn totp_of(&self, user_id: i64) -> Result<Option<TotpRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, secret_sealed, created_at, confirmed_at, last_step FROM totp WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Starts (or restarts) an enrolment with a new secret. A confirmed authenticator is never
    /// replaced this way: `false` then.
    pub async fn begin_totp(&self, user_id: i64, secret_sealed: &[u8], now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO totp (user_id, secret_sealed, created_at) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE
               SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at,
                   last_step = 0
               WHERE totp.confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(secret_sealed)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Confirms a pending enrolment with the step of the code that proved it, and replaces the
    /// user's recovery codes, in one transaction. `false` when nothing was pending.
    pub async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        now: i64,
        recovery_hashes: &[String],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE totp SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        replace_codes(&mut tx, user_id, recovery_hashes).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that the code of `step` was used; `false` when that step (or a later one) was
    /// already used, which makes a replayed code fail even under concurrent sign-ins.
    pub async fn accept_totp_step(&self, user_id: i64, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE totp SET last_step = ? WHERE user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?",
        )
        .bind(step)
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uses a recovery code; `false` when it is unknown or already used.
    pub async fn use_recovery_code(&self, user_id: i64, code_hash: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn unused_recovery_codes(&self, user_id: i64) -> Result<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    /// A fresh set of recovery codes (the old ones stop working).
    pub async fn replace_recovery_codes(&self, user_id: i64, hashes: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        replace_codes(&mut tx, user_id, hashes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the authenticator and recovery codes (an admin's "reset MFA", or the user's own
    /// "turn off"); `false` when there was none.
    pub async fn delete_totp(&self, user_id: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM totp WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ids of users with a confirmed authenticator (for listings).
    pub async fn users_with_totp(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT user_id FROM totp WHERE confirmed_at IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

async fn replace_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: i64,
    hashes: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for hash in hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
            .bind(user_id)
            .bind(hash)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
