//! Users, groups and the audit log. Validation and hashing live in `portico-identity`; this
//! module only stores what it is given.

use crate::{now, Result, Store, StoreError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub admin: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct GroupRow {
    pub name: String,
    pub members: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: String,
}

/// A unique-constraint failure means "already exists"; anything else is a real error.
fn conflict(error: sqlx::Error, what: String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists(what),
        _ => StoreError::Query(error),
    }
}

const USER_COLUMNS: &str =
    "id, email, display_name, password_hash, disabled, admin, created_at, updated_at";

impl Store {
    pub async fn insert_user(
        &self,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        admin: bool,
    ) -> Result<i64> {
        let at = now();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (email, display_name, password_hash, admin, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(email)
        .bind(display_name)
        .bind(password_hash)
        .bind(admin)
        .bind(&at)
        .bind(&at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("a user with the e-mail {email}")))?;
        Ok(id)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn users(&self) -> Result<Vec<UserRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The groups each user belongs to, as (email, group) pairs.
    pub async fn memberships(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT users.email, group_members.group_name FROM group_members
             JOIN users ON users.id = group_members.user_id ORDER BY users.email, group_members.group_name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Enabled admins: the one thing Portico must never run out of.
    pub async fn count_enabled_admins(&self) -> Result<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE admin = 1 AND disabled = 0")
                .fetch_one(&self.pool)
                .await?;
        Ok(count)
    }

    /// Sets one of a user's flags or their password; `false` when there is no such user.
    pub async fn update_user(&self, email: &str, change: UserChange<'_>) -> Result<bool> {
        let at = now();
        let query = match change {
            UserChange::Disabled(value) => {
                sqlx::query("UPDATE users SET disabled = ?, updated_at = ? WHERE email = ?")
                    .bind(value)
            }
            UserChange::Admin(value) => {
                sqlx::query("UPDATE users SET admin = ?, updated_at = ? WHERE email = ?")
                    .bind(value)
            }
            UserChange::PasswordHash(hash) => {
                sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE email = ?")
                    .bind(hash)
            }
        };
        let mut tx = self.pool.begin().await?;
        let done = query.bind(at).bind(email).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO user_changes (user_id) SELECT id FROM users WHERE email = ?")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Users changed after `after` in the change feed: (sequence number, user id), in order.
    pub async fn user_changes(&self, after: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT seq, user_id FROM user_changes WHERE seq > ? ORDER BY seq LIMIT 10000",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest sequence number of the change feed (0 when empty).
    pub async fn latest_user_change(&self) -> Result<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM user_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The groups of one user, sorted.
    pub async fn groups_of(&self, user_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT group_name FROM group_members WHERE user_id = ? ORDER BY group_name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(g,)| g).collect())
    }

    pub async fn insert_group(&self, name: &str) -> Result<()> {
        sqlx::query("INSERT INTO groups (name, created_at) VALUES (?, ?)")
            .bind(name)
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("a group named {name}")))?;
        Ok(())
    }

    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        Ok(sqlx::query_as(
            "SELECT groups.name, COUNT(group_members.user_id) AS members, groups.created_at FROM groups
             LEFT JOIN group_members ON group_members.group_name = groups.name
             GROUP BY groups.name, groups.created_at ORDER BY groups.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn group_exists(&self, name: &str) -> Result<bool> {
        let found: Option<(String,)> = sqlx::query_as("SELECT name FROM groups WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Adds or removes a member; returns whether anything changed.
    pub async fn set_membership(&self, group: &str, user_id: i64, member: bool) -> Result<bool> {
        let done = if member {
            sqlx::query("INSERT INTO group_members (group_name, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
                .bind(group)
                .bind(user_id)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("DELETE FROM group_members WHERE group_name = ? AND user_id = ?")
                .bind(group)
                .bind(user_id)
                .execute(&self.pool)
                .await?
        };
        sqlx::query("INSERT INTO user_changes (user_id) VALUES (?)")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn add_audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(now())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` audit entries, oldest first.
    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRow>> {
        let mut rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        Ok(rows)
    }
}

/// Which audit entries to show: every given field must match. `action` matches as a prefix
/// (`sign-in` finds `sign-in.failure` and `sign-in.success`).
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    pub limit: i64,
}

impl Store {
    /// The newest entries matching `filter`, newest first.
    pub async fn audit_filtered(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, subject, detail FROM audit
             WHERE (? IS NULL OR actor = ?)
               AND (? IS NULL OR substr(action, 1, length(?)) = ?)
               AND (? IS NULL OR subject = ?)
             ORDER BY id DESC LIMIT ?",
        )
        .bind(&filter.actor)
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(&filter.action)
        .bind(&filter.action)
        .bind(&filter.subject)
        .bind(&filter.subject)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// One change to a user.
pub enum UserChange<'a> {
    Disabled(bool),
    Admin(bool),
    PasswordHash(&'a str),
}
