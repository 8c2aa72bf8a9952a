//! Single sign-on: providers that vouch for a person (LDAP, OIDC, SAML), and the
//! one place where what a provider says becomes a Portico account (just-in-time), with its
//! groups refreshed at every sign-in.

pub mod flows;
pub mod ldap;
pub mod oidc;
pub mod refresh;
pub mod saml;

use crate::email::normalize_email;
use crate::sessions::unix_now;
use portico_core::SsoCommon;
use portico_store::{Store, StoreError, UserRow};

/// What a provider says about someone who just proved who they are.
#[derive(Debug, Clone)]
pub struct ExternalProfile {
    /// `ldap:corp`, `oidc:okta`, …
    pub provider: String,
    /// The provider's stable name for the person (DN, `sub`, NameID).
    pub subject: String,
    pub email: String,
    /// Whether the provider vouches that the address belongs to the person (a directory's
    /// own records do; an OIDC provider says so in `email_verified`). Linking to an existing
    /// account needs it.
    pub email_verified: bool,
    pub display_name: Option<String>,
    /// The provider's group names, before filtering and mapping.
    pub groups: Vec<String>,
}

/// Why a provider's person cannot sign in, in words for them; the precise reason goes to the
/// log (`detail`).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("Your directory account has no usable e-mail address, which Portico needs. Ask {contact} to check it.")]
    NoEmail { contact: String, detail: String },
    #[error("Addresses at {domain} cannot sign in here. Ask {contact} if that is a mistake.")]
    DomainNotAllowed { domain: String, contact: String },
    #[error("There is already a Portico account for {email}, and it is not linked to this sign-in method. Sign in with its password, or ask {contact} to link them.")]
    NotLinked { email: String, contact: String },
    #[error("That account is disabled. Ask {contact} if you need access.")]
    Disabled { contact: String },
    #[error("Sign-in is unavailable right now. Try again in a moment.")]
    Store(#[from] StoreError),
}

/// Makes or finds the Portico account for a profile and refreshes the groups the provider
/// gives it. `contact` is named in refusals, which are logged and audited here
/// (`sign-in.refused`), so every kind of provider records them alike.
pub async fn provision(
    store: &Store,
    settings: &SsoCommon,
    profile: &ExternalProfile,
    contact: &str,
) -> Result<UserRow, SsoError> {
    let result = account_for(store, settings, profile, contact).await;
    if let Err(e) = &result {
        tracing::warn!(
            "{} sign-in of {} refused: {e:?}",
            profile.provider,
            profile.subject
        );
        let _ = store
            .add_audit(
                &profile.provider,
                "sign-in.refused",
                Some(&profile.email),
                &e.to_string(),
            )
            .await;
    }
    result
}

async fn account_for(
    store: &Store,
    settings: &SsoCommon,
    profile: &ExternalProfile,
    contact: &str,
) -> Result<UserRow, SsoError> {
    let email = normalize_email(&profile.email).map_err(|e| SsoError::NoEmail {
        contact: contact.to_owned(),
        detail: format!("{} gave \"{}\": {e}", profile.provider, profile.email),
    })?;
    if !settings.email_allowed(&email) {
        return Err(SsoError::DomainNotAllowed {
            domain: email
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or("")
                .to_owned(),
            contact: contact.to_owned(),
        });
    }
    let now = unix_now();
    let user = match store
        .user_by_external(&profile.provider, &profile.subject)
        .await?
    {
        Some(user) => user,
        None => match store.user_by_email(&email).await? {
            Some(existing) if settings.link_existing_accounts && profile.email_verified => {
                store
                    .add_audit(&email, "user.link", Some(&email), &profile.provider)
                    .await?;
                existing
            }
            Some(_) => {
                return Err(SsoError::NotLinked {
                    email,
                    contact: contact.to_owned(),
                })
            }
            None => {
                let name = profile
                    .display_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && n.chars().count() <= 200)
                    .unwrap_or_else(|| email.split('@').next().unwrap_or(&email));
                let name: String = name.chars().filter(|c| !c.is_control()).collect();
                store.insert_user(&email, &name, None, false).await?;
                store
                    .add_audit(&profile.provider, "user.add", Some(&email), "just in time")
                    .await?;
                store
                    .user_by_email(&email)
                    .await?
                    .ok_or_else(|| StoreError::AlreadyExists(email.clone()))?
            }
        },
    };
    if user.disabled {
        return Err(SsoError::Disabled {
            contact: contact.to_owned(),
        });
    }
    store
        .link_external(&profile.provider, &profile.subject, user.id, now)
        .await?;
    sync_groups(store, settings, user.id, &user.email, profile).await?;
    Ok(user)
}

/// Makes the groups `profile`'s provider gives a user what the profile says (filtered and
/// mapped by `settings`); audited when something changed.
pub async fn sync_groups(
    store: &Store,
    settings: &SsoCommon,
    user_id: i64,
    email: &str,
    profile: &ExternalProfile,
) -> Result<(), StoreError> {
    let mut groups: Vec<String> = profile
        .groups
        .iter()
        .filter_map(|g| settings.portico_group(g))
        .filter(|g| valid_group_name(g))
        .collect();
    groups.sort();
    groups.dedup();
    if store
        .sync_provider_groups(user_id, &profile.provider, &groups)
        .await?
    {
        store
            .add_audit(
                &profile.provider,
                "group.sync",
                Some(email),
                &groups.join(", "),
            )
            .await?;
    }
    Ok(())
}

/// Group names Portico accepts (as `portico groups add` does); others are skipped.
fn valid_group_name(name: &str) -> bool {
    (1..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " -_.:@".contains(c))
}

pub(crate) use portico_core::errors::error_chain;
