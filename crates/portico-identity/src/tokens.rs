//! API tokens: what `portico deploy`, `git push` and scripts authenticate with instead of a
//! browser session. A token acts for its user, only within its scopes, until it expires or
//! is revoked. It is 256 random bits shown once; the store keeps only its SHA-256 (a fast
//! hash is enough for a secret that cannot be guessed) and a short prefix to recognise it.
//! Tokens start with `portico_`, so secret scanners and people can tell what one is.

use crate::accounts::{IdentityError, Result};
use crate::email::normalize_email;
use crate::sessions::unix_now;
use base64::Engine;
use portico_store::{Store, TokenListing, TokenRow, UserRow};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "portico_";

/// What a token may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Deploy every app its user may deploy.
    Deploy,
    /// Deploy one app (if its user may).
    DeployApp(String),
}

impl Scope {
    /// `deploy` or `deploy:<app>`.
    pub fn parse(text: &str) -> std::result::Result<Scope, String> {
        match text.split_once(':') {
            None if text == "deploy" => Ok(Scope::Deploy),
            Some(("deploy", app)) if portico_core::config::is_dns_label(app) => {
                Ok(Scope::DeployApp(app.to_owned()))
            }
            _ => Err(format!(
                "\"{text}\" is not a scope; write `deploy` (every app the user may deploy) or `deploy:<app>` (one app)"
            )),
        }
    }

    /// Whether the scope covers deploying `app`.
    pub fn covers_deploy(&self, app: &str) -> bool {
        match self {
            Scope::Deploy => true,
            Scope::DeployApp(only) => only == app,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Deploy => write!(f, "deploy"),
            Scope::DeployApp(app) => write!(f, "deploy:{app}"),
        }
    }
}

/// A token just made: the only time its text is known.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: i64,
    pub token: String,
    pub expires_at: Option<i64>,
}

/// Who presented a valid token, and what it allows.
#[derive(Debug, Clone)]
pub struct TokenHolder {
    pub token_id: i64,
    pub user: UserRow,
    pub scopes: Vec<Scope>,
}

impl TokenHolder {
    /// Whether the token's scopes cover deploying `app` (whether its user may is the app's
    /// owners' question).
    pub fn scoped_for_deploy(&self, app: &str) -> bool {
        self.scopes.iter().any(|s| s.covers_deploy(app))
    }
}

/// Why a token was not accepted. The messages are for the person holding it and never say
/// whether some other token exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("the API token is not valid; create one with `portico tokens create` (or in the portal) and pass it in PORTICO_TOKEN")]
    Unknown,
    #[error("the API token was revoked; create a new one")]
    Revoked,
    #[error("the API token expired; create a new one")]
    Expired,
    #[error("the API token's user is disabled")]
    UserDisabled,
    #[error("Portico cannot check API tokens right now; try again shortly")]
    Unavailable,
}

#[derive(Clone)]
pub struct ApiTokens {
    store: Store,
}

/// `active`, `expired` or `revoked`, as lists show a token at time `now`.
pub fn state(token: &TokenRow, now: i64) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The longest lifetime a token may be given (a year); `None` (no expiry) is allowed only
/// when asked for explicitly.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

impl ApiTokens {
    pub fn new(store: Store) -> ApiTokens {
        ApiTokens { store }
    }

    /// Makes a token for `email`'s user. `lifetime` `None`: it never expires.
    pub async fn create(
        &self,
        actor: &str,
        email: &str,
        name: &str,
        scopes: &[Scope],
        lifetime: Option<Duration>,
    ) -> Result<NewToken> {
        let email = normalize_email(email)?;
        let user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| IdentityError::NoSuchUser(email.clone()))?;
        if user.disabled {
            return Err(IdentityError::Disabled(email));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let now = unix_now();
        let expires_at = lifetime.map(|l| now + l.as_secs() as i64);
        let scopes_text: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        let row = TokenRow {
            id: 0,
            token_hash: token_hash(&token),
            prefix: token[..TOKEN_PREFIX.len() + 6].to_owned(),
            user_id: user.id,
            name: name.to_owned(),
            scopes: scopes_text.join(" "),
            created_by: actor.to_owned(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let id = self.store.insert_token(&row).await?;
        self.store
            .add_audit(
                actor,
                "token.create",
                Some(&email),
                &format!("token {id} \"{name}\", scopes {}", row.scopes),
            )
            .await?;
        Ok(NewToken {
            id,
            token,
            expires_at,
        })
    }

    /// The holder of a presented token, if it is valid now.
    pub async fn verify(&self, presented: &str) -> std::result::Result<TokenHolder, TokenProblem> {
        let presented = presented.trim();
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
            return Err(TokenProblem::Unknown);
        }
        let row = self
            .store
            .token_by_hash(&token_hash(presented))
            .await
            .map_err(|_| TokenProblem::Unavailable)?
            .ok_or(TokenProblem::Unknown)?;
        let now = unix_now();
        if row.revoked_at.is_some() {
            return Err(TokenProblem::Revoked);
        }
        if row.expires_at.is_some_and(|at| at <= now) {
            return Err(TokenProblem::Expired);
        }
        let user = self
            .store
            .user_by_id(row.user_id)
            .await
            .map_err(|_| TokenProblem::Unavailable)?
            .ok_or(TokenProblem::Unknown)?;
        if user.disabled {
            return Err(TokenProblem::UserDisabled);
        }
        let _ = self.store.touch_token(row.id, now).await;
        Ok(TokenHolder {
            token_id: row.id,
            user,
            // Scopes were checked when the token was made; an unreadable one allows nothing.
            scopes: row
                .scopes
                .split_whitespace()
                .filter_map(|s| Scope::parse(s).ok())
                .collect(),
        })
    }

    /// Revokes a token; `false` when there is no such token or it was revoked already.
    pub async fn revoke(&self, actor: &str, id: i64) -> Result<bool> {
        let Some(listing) = self.store.token_by_id(id).await? else {
            return Ok(false);
        };
        let revoked = self.store.revoke_token(id, unix_now()).await?;
        if revoked {
            self.store
                .add_audit(
                    actor,
                    "token.revoke",
                    Some(&listing.email),
                    &format!("token {id} \"{}\"", listing.token.name),
                )
                .await?;
        }
        Ok(revoked)
    }

    /// Tokens, newest first; `email`'s only when given.
    pub async fn list(&self, email: Option<&str>) -> Result<Vec<TokenListing>> {
        let user_id = match email {
            None => None,
            Some(email) => {
                let email = normalize_email(email)?;
                let user = self
                    .store
                    .user_by_email(&email)
                    .await?
                    .ok_or(IdentityError::NoSuchUser(email))?;
                Some(user.id)
            }
        };
        Ok(self.store.tokens(user_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deploy_or_deploy_one_app() {
        assert_eq!(Scope::parse("deploy"), Ok(Scope::Deploy));
        assert_eq!(
            Scope::parse("deploy:sales"),
            Ok(Scope::DeployApp("sales".into()))
        );
        for bad in ["admin", "deploy:", "deploy:Sales", "deploy:a b", ""] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::Deploy.covers_deploy("sales"));
        assert!(Scope::DeployApp("sales".into()).covers_deploy("sales"));
        assert!(!Scope::DeployApp("sales".into()).covers_deploy("hr"));
    }

    #[tokio::test]
    async fn a_token_works_until_it_is_revoked_or_expires_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let accounts = crate::Accounts::new(store.clone());
        accounts
            .add_user(
                "test",
                crate::NewUser {
                    email: "ada@example.com",
                    display_name: None,
                    password: Some("a-long-enough-password-1"),
                    admin: false,
                },
            )
            .await
            .unwrap();
        let tokens = ApiTokens::new(store.clone());
        let made = tokens
            .create(
                "test",
                "Ada@Example.com",
                "laptop",
                &[Scope::DeployApp("sales".into())],
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        assert!(made.token.starts_with("portico_"), "{}", made.token);
        let holder = tokens.verify(&made.token).await.unwrap();
        assert_eq!(holder.user.email, "ada@example.com");
        assert!(holder.scoped_for_deploy("sales") && !holder.scoped_for_deploy("hr"));

        let listed = tokens.list(Some("ada@example.com")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_ne!(
            listed[0].token.token_hash, made.token,
            "only the hash is kept"
        );
        assert!(made.token.starts_with(&listed[0].token.prefix));
        assert!(listed[0].token.last_used_at.is_some());

        assert_eq!(
            tokens.verify("portico_not-a-token").await.unwrap_err(),
            TokenProblem::Unknown
        );
        assert_eq!(
            tokens.verify("ghp_somethingelse").await.unwrap_err(),
            TokenProblem::Unknown
        );
        assert!(tokens.revoke("test", made.id).await.unwrap());
        assert!(!tokens.revoke("test", made.id).await.unwrap(), "once");
        assert_eq!(
            tokens.verify(&made.token).await.unwrap_err(),
            TokenProblem::Revoked
        );

        let expired = tokens
            .create(
                "test",
                "ada@example.com",
                "old",
                &[Scope::Deploy],
                Some(Duration::ZERO),
            )
            .await
            .unwrap();
        assert_eq!(
            tokens.verify(&expired.token).await.unwrap_err(),
            TokenProblem::Expired
        );
        let audit: Vec<String> = store
            .audit(10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert!(audit.contains(&"token.create".to_owned()));
        assert!(audit.contains(&"token.revoke".to_owned()));
    }
}
