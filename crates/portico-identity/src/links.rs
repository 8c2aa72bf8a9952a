//! Invitations and password resets: single-use links with an expiry. The token is 256 random
//! bits in the link; the store keeps only its SHA-256, so a copy of the database holds no
//! usable link. A new link for the same user and purpose cancels the older ones.

use crate::accounts::{Accounts, IdentityError};
use crate::email::normalize_email;
use crate::mail::{MailError, Mailer};
use crate::password::{check_policy, hash_password};
use crate::sessions::unix_now;
use base64::Engine;
use portico_store::{LinkRow, Store, UserRow};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Invite,
    Reset,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::Reset => "reset",
        }
    }

    /// The portal path that opens this kind of link.
    pub fn path(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "/_portico/welcome",
            LinkPurpose::Reset => "/_portico/reset-password",
        }
    }
}

/// Why a link cannot be used, in words for the person holding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkProblem {
    #[error("This link is not valid. Check that you opened the whole link from the e-mail, or ask for a new one.")]
    Unknown,
    #[error("This link was already used. Each link works once: sign in with the password you chose, or ask for a new link.")]
    Used,
    #[error("This link expired. Links work for a limited time: ask for a new one.")]
    Expired,
}

/// A link that can still be used, and whose it is.
#[derive(Debug, Clone)]
pub struct OpenLink {
    pub user: UserRow,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Links {
    store: Store,
    portal: String,
    invitation_lifetime: Duration,
    reset_lifetime: Duration,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Links {
    /// `portal` is the portal's base URL, e.g. `https://example.com/`.
    pub fn new(
        store: Store,
        portal: &str,
        invitation_lifetime: Duration,
        reset_lifetime: Duration,
    ) -> Links {
        Links {
            store,
            portal: portal.trim_end_matches('/').to_owned(),
            invitation_lifetime,
            reset_lifetime,
        }
    }

    pub fn lifetime(&self, purpose: LinkPurpose) -> Duration {
        match purpose {
            LinkPurpose::Invite => self.invitation_lifetime,
            LinkPurpose::Reset => self.reset_lifetime,
        }
    }

    /// Invites someone: creates their account without a password (they choose one through
    /// the link), or re-invites an account that never accepted. Returns the link.
    pub async fn invite(
        &self,
        accounts: &Accounts,
        actor: &str,
        email: &str,
    ) -> Result<(UserRow, String), IdentityError> {
        let email = normalize_email(email)?;
        let user = match self.store.user_by_email(&email).await? {
            Some(user) if user.password_hash.is_some() => {
                return Err(IdentityError::AlreadyActive(email))
            }
            Some(user) => user,
            None => {
                accounts.add_invited(actor, &email).await?;
                self.store
                    .user_by_email(&email)
                    .await?
                    .ok_or(IdentityError::NoSuchUser(email.clone()))?
            }
        };
        let url = self.issue(LinkPurpose::Invite, &user, actor).await?;
        Ok((user, url))
    }

    /// A password-reset link for an existing, enabled user.
    pub async fn reset(
        &self,
        actor: &str,
        email: &str,
    ) -> Result<(UserRow, String), IdentityError> {
        let email = normalize_email(email)?;
        let user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or(IdentityError::NoSuchUser(email.clone()))?;
        if user.disabled {
            return Err(IdentityError::Disabled(email));
        }
        if let Some(provider) = self.store.external_providers_of(user.id).await?.first() {
            return Err(IdentityError::External {
                email,
                provider: provider.clone(),
            });
        }
        let url = self.issue(LinkPurpose::Reset, &user, actor).await?;
        Ok((user, url))
    }

    async fn issue(
        &self,
        purpose: LinkPurpose,
        user: &UserRow,
        actor: &str,
    ) -> Result<String, IdentityError> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = unix_now();
        let row = LinkRow {
            token_hash: token_hash(&token),
            purpose: purpose.as_str().to_owned(),
            user_id: user.id,
            created_by: actor.to_owned(),
            created_at: now,
            expires_at: now + self.lifetime(purpose).as_secs() as i64,
            used_at: None,
        };
        self.store.insert_link(&row).await?;
        let action = match purpose {
            LinkPurpose::Invite => "user.invite",
            LinkPurpose::Reset => "user.password-reset-link",
        };
        self.store
            .add_audit(actor, action, Some(&user.email), "")
            .await?;
        Ok(format!("{}{}?token={token}", self.portal, purpose.path()))
    }

    /// How long a link works, in words: `7 days`, `1 hour`, `10 minutes`.
    pub fn lifetime_words(&self, purpose: LinkPurpose) -> String {
        let secs = self.lifetime(purpose).as_secs();
        let (count, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
            (secs / 86_400, "day")
        } else if secs >= 3600 && secs.is_multiple_of(3600) {
            (secs / 3600, "hour")
        } else {
            (secs.div_ceil(60), "minute")
        };
        format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
    }

    /// The e-mail that carries a link: subject and plain-text body.
    pub fn message(&self, purpose: LinkPurpose, url: &str) -> (String, String) {
        let lifetime = self.lifetime_words(purpose);
        match purpose {
            LinkPurpose::Invite => (
                "You are invited to Portico".to_owned(),
                format!(
                    "Hello,\n\nYou have been given an account on {portal}, where your team's dashboards are.\nChoose your password here (the link works once, for {lifetime}):\n\n{url}\n\nIf you did not expect this, you can ignore this message.\n",
                    portal = self.portal
                ),
            ),
            LinkPurpose::Reset => (
                "Reset your Portico password".to_owned(),
                format!(
                    "Hello,\n\nSomeone, hopefully you, asked to reset your password on {portal}.\nChoose a new one here (the link works once, for {lifetime}):\n\n{url}\n\nIf it was not you, ignore this message: your password stays as it is.\n",
                    portal = self.portal
                ),
            ),
        }
    }

    /// Sends the link by e-mail.
    pub async fn send(
        &self,
        mailer: &Mailer,
        purpose: LinkPurpose,
        user: &UserRow,
        url: &str,
    ) -> Result<(), MailError> {
        let (subject, body) = self.message(purpose, url);
        mailer.send(&user.email, &subject, body).await
    }

    /// Whether `token` is a usable link of `purpose`, and for whom.
    pub async fn check(&self, purpose: LinkPurpose, token: &str) -> Result<OpenLink, LinkProblem> {
        if token.is_empty() || token.len() > 128 {
            return Err(LinkProblem::Unknown);
        }
        let row = self
            .store
            .link_by_hash(&token_hash(token))
            .await
            .ok()
            .flatten()
            .filter(|row| row.purpose == purpose.as_str())
            .ok_or(LinkProblem::Unknown)?;
        if row.used_at.is_some() {
            return Err(LinkProblem::Used);
        }
        if row.expires_at <= unix_now() {
            return Err(LinkProblem::Expired);
        }
        let user = self
            .store
            .user_by_id(row.user_id)
            .await
            .ok()
            .flatten()
            .filter(|user| !user.disabled)
            .ok_or(LinkProblem::Unknown)?;
        Ok(OpenLink {
            user,
            expires_at: row.expires_at,
        })
    }

    /// Uses the link: sets the password (checked against the policy) and, for an invitation,
    /// the display name. Concurrent use of one link succeeds at most once.
    pub async fn redeem(
        &self,
        purpose: LinkPurpose,
        token: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<UserRow, RedeemError> {
        let link = self.check(purpose, token).await?;
        check_policy(password, &link.user.email).map_err(IdentityError::from)?;
        let display_name = display_name.map(str::trim).filter(|n| !n.is_empty());
        if display_name.is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
        {
            return Err(IdentityError::DisplayName.into());
        }
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|_| LinkProblem::Unknown)?;
        let redeemed = self
            .store
            .redeem_link(&token_hash(token), unix_now(), &hash, display_name)
            .await
            .map_err(IdentityError::from)?;
        if redeemed.is_none() {
            return Err(LinkProblem::Used.into());
        }
        let action = match purpose {
            LinkPurpose::Invite => "user.accept-invitation",
            LinkPurpose::Reset => "user.reset-password",
        };
        let _ = self
            .store
            .add_audit(&link.user.email, action, Some(&link.user.email), "link")
            .await;
        Ok(link.user)
    }
}

/// Why redeeming failed: the link, or what was typed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("{0}")]
    Link(#[from] LinkProblem),
    #[error("{0}")]
    Input(#[from] IdentityError),
}
