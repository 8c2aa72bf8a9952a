//! API tokens. Only the SHA-256 of a token is stored; times are Unix seconds.

use crate::{Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub token_hash: String,
    /// The token's first characters, to recognise it in a list.
    pub prefix: String,
    pub user_id: i64,
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token with its owner's address, for lists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenListing {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub email: String,
}

const TOKEN_COLUMNS: &str = "t.id, t.token_hash, t.prefix, t.user_id, t.name, t.scopes, t.created_by, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

impl Store {
    /// Stores a new token; returns its id.
    pub async fn insert_token(&self, token: &TokenRow) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO api_tokens (token_hash, prefix, user_id, name, scopes, created_by, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&token.token_hash)
        .bind(&token.prefix)
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.scopes)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn token_by_id(&self, id: i64) -> Result<Option<TokenListing>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS}, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Tokens, newest first; of one user when `user_id` is given.
    pub async fn tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenListing>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS}, u.email FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE ? IS NULL OR t.user_id = ? ORDER BY t.id DESC"
        ))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a token; `false` when there is none by that id or it was revoked already.
    pub async fn revoke_token(&self, id: i64, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a token was used (at most once a minute is worth a write).
    pub async fn touch_token(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(at)
        .bind(id)
        .bind(at - 60)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
