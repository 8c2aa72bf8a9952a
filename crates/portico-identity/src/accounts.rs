//! Account and group administration. Every change is validated here, written to the store,
//! and recorded in the audit log with who made it.

use crate::email::{normalize_email, EmailProblem};
use crate::password::{
    check_policy, generate_password, hash_password, verify_password, PasswordProblem,
};
use portico_store::{GroupRow, Store, StoreError, UserChange, UserRow};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Why an account operation was refused, in words for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Email(#[from] EmailProblem),
    #[error("{0}")]
    Password(#[from] PasswordProblem),
    #[error("{0} already exists")]
    Exists(String),
    #[error("there is no user with the e-mail {0}; `portico users list` shows who there is")]
    NoSuchUser(String),
    #[error("there is no group named \"{0}\"; create it with `portico groups add {0}`")]
    NoSuchGroup(String),
    #[error("\"{0}\" is not a group name: use 1-128 letters, digits, spaces and - _ . : @")]
    GroupName(String),
    #[error("a display name has at most 200 characters and no control characters")]
    DisplayName,
    #[error("{email} is the last enabled admin; make someone else an admin first")]
    LastAdmin { email: String },
    #[error("{0} already has an account with a password; send a password reset link instead (`portico users reset-password --link {0}`)")]
    AlreadyActive(String),
    #[error("{email} signs in through {provider}, which manages the password; change it there")]
    External { email: String, provider: String },
    #[error("{0} is disabled; enable it first with `portico users enable {0}`")]
    Disabled(String),
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists(what) => IdentityError::Exists(what),
            other => IdentityError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, IdentityError>;

/// A user to create.
pub struct NewUser<'a> {
    pub email: &'a str,
    /// Default: the part of the address before `@`.
    pub display_name: Option<&'a str>,
    /// `None`: generate one (returned once, never stored in clear).
    pub password: Option<&'a str>,
    pub admin: bool,
}

/// The account service; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
}

/// A user with their groups, as listed.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub user: UserRow,
    pub groups: Vec<String>,
}

impl Accounts {
    pub fn new(store: Store) -> Accounts {
        Accounts { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a user; returns the canonical e-mail and the generated password, if any.
    pub async fn add_user(
        &self,
        actor: &str,
        new: NewUser<'_>,
    ) -> Result<(String, Option<String>)> {
        let email = normalize_email(new.email)?;
        let display_name = match new.display_name.map(str::trim) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => email.split('@').next().unwrap_or(&email).to_owned(),
        };
        if display_name.chars().count() > 200 || display_name.chars().any(char::is_control) {
            return Err(IdentityError::DisplayName);
        }
        let generated = match new.password {
            Some(password) => {
                check_policy(password, &email)?;
                None
            }
            None => Some(generate_password()),
        };
        let password = new
            .password
            .or(generated.as_deref())
            .expect("one of them is set");
        let hash = hash_password(password);
        self.store
            .insert_user(&email, &display_name, Some(&hash), new.admin)
            .await?;
        let role = if new.admin { "admin" } else { "user" };
        self.store
            .add_audit(actor, "user.add", Some(&email), role)
            .await?;
        Ok((email, generated))
    }

    /// Creates an account that has no password yet: its owner chooses one through an
    /// invitation link (`Links::invite`).
    pub async fn add_invited(&self, actor: &str, email: &str) -> Result<String> {
        let email = normalize_email(email)?;
        let display_name = email.split('@').next().unwrap_or(&email).to_owned();
        self.store
            .insert_user(&email, &display_name, None, false)
            .await?;
        self.store
            .add_audit(actor, "user.add", Some(&email), "invited")
            .await?;
        Ok(email)
    }

    pub async fn list(&self) -> Result<Vec<UserSummary>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (email, group) in self.store.memberships().await? {
            groups.entry(email).or_default().push(group);
        }
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .map(|user| UserSummary {
                groups: groups.remove(&user.email).unwrap_or_default(),
                user,
            })
            .collect())
    }

    async fn existing(&self, email: &str) -> Result<UserRow> {
        let email = normalize_email(email)?;
        self.store
            .user_by_email(&email)
            .await?
            .ok_or(IdentityError::NoSuchUser(email))
    }

    /// Refuses a change that would leave no enabled admin.
    async fn keep_an_admin(&self, user: &UserRow) -> Result<()> {
        if user.admin && !user.disabled && self.store.count_enabled_admins().await? <= 1 {
            return Err(IdentityError::LastAdmin {
                email: user.email.clone(),
            });
        }
        Ok(())
    }

    pub async fn set_disabled(&self, actor: &str, email: &str, disabled: bool) -> Result<()> {
        let user = self.existing(email).await?;
        if disabled {
            self.keep_an_admin(&user).await?;
        }
        self.store
            .update_user(&user.email, UserChange::Disabled(disabled))
            .await?;
        if disabled {
            // Running instances also drop them from memory at their next sync (within a second).
            let now = crate::sessions::unix_now();
            self.store.revoke_user_sessions(user.id, now).await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.store
            .add_audit(actor, action, Some(&user.email), "")
            .await?;
        Ok(())
    }

    pub async fn set_admin(&self, actor: &str, email: &str, admin: bool) -> Result<()> {
        let user = self.existing(email).await?;
        if !admin {
            self.keep_an_admin(&user).await?;
        }
        self.store
            .update_user(&user.email, UserChange::Admin(admin))
            .await?;
        let action = if admin {
            "user.grant-admin"
        } else {
            "user.revoke-admin"
        };
        self.store
            .add_audit(actor, action, Some(&user.email), "")
            .await?;
        Ok(())
    }

    /// Sets a new password (checked against the policy), or generates one and returns it.
    pub async fn reset_password(
        &self,
        actor: &str,
        email: &str,
        password: Option<&str>,
    ) -> Result<Option<String>> {
        let user = self.existing(email).await?;
        let generated = match password {
            Some(password) => {
                check_policy(password, &user.email)?;
                None
            }
            None => Some(generate_password()),
        };
        let password = password
            .or(generated.as_deref())
            .expect("one of them is set");
        self.store
            .update_user(
                &user.email,
                UserChange::PasswordHash(&hash_password(password)),
            )
            .await?;
        self.store
            .add_audit(actor, "user.reset-password", Some(&user.email), "")
            .await?;
        Ok(generated)
    }

    /// The user whose password this is, if the account exists, is enabled and the password
    /// matches. Unknown accounts cost the same hashing time as known ones, so the answer's
    /// timing does not reveal which addresses have accounts.
    pub async fn verify(&self, email: &str, password: &str) -> Result<Option<UserRow>> {
        static DECOY: OnceLock<String> = OnceLock::new();
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        let user = self.store.user_by_email(&email).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        // argon2 takes tens of milliseconds of CPU: off the async workers, which serve traffic.
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || match &hash {
            Some(hash) => verify_password(hash, &password),
            None => {
                let decoy = DECOY.get_or_init(|| hash_password("portico decoy password"));
                verify_password(decoy, &password);
                false
            }
        })
        .await
        .unwrap_or(false);
        Ok(user.filter(|u| matches && !u.disabled))
    }

    pub async fn add_group(&self, actor: &str, name: &str) -> Result<()> {
        let name = name.trim();
        let valid = (1..=128).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || " -_.:@".contains(c));
        if !valid {
            return Err(IdentityError::GroupName(name.chars().take(80).collect()));
        }
        self.store.insert_group(name).await?;
        self.store
            .add_audit(actor, "group.add", Some(name), "")
            .await?;
        Ok(())
    }

    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        Ok(self.store.groups().await?)
    }

    /// Adds or removes a member; returns whether anything changed.
    pub async fn set_member(
        &self,
        actor: &str,
        group: &str,
        email: &str,
        member: bool,
    ) -> Result<bool> {
        if !self.store.group_exists(group).await? {
            return Err(IdentityError::NoSuchGroup(group.to_owned()));
        }
        let user = self.existing(email).await?;
        let changed = self.store.set_membership(group, user.id, member).await?;
        if changed {
            let action = if member {
                "group.add-member"
            } else {
                "group.remove-member"
            };
            self.store
                .add_audit(actor, action, Some(&user.email), group)
                .await?;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        (dir, Accounts::new(store))
    }

    fn user<'a>(email: &'a str, password: Option<&'a str>, admin: bool) -> NewUser<'a> {
        NewUser {
            email,
            display_name: None,
            password,
            admin,
        }
    }

    #[tokio::test]
    async fn users_are_unique_by_case_insensitive_email_and_passwords_verify() {
        let (_dir, accounts) = accounts().await;
        let (email, generated) = accounts
            .add_user(
                "test",
                user("Ada@Example.com", Some("annual-report-velvet"), false),
            )
            .await
            .unwrap();
        assert_eq!(email, "ada@example.com");
        assert!(generated.is_none());
        let again = accounts
            .add_user(
                "test",
                user("ADA@example.com", Some("another-long-phrase"), false),
            )
            .await;
        assert!(matches!(again, Err(IdentityError::Exists(_))), "{again:?}");
        assert!(accounts
            .verify("ada@EXAMPLE.com", "annual-report-velvet")
            .await
            .unwrap()
            .is_some());
        assert!(accounts
            .verify("ada@example.com", "wrong-password-here")
            .await
            .unwrap()
            .is_none());
        assert!(accounts
            .verify("nobody@example.com", "annual-report-velvet")
            .await
            .unwrap()
            .is_none());
        accounts
            .add_user("test", user("boss@example.com", None, true))
            .await
            .unwrap();
        accounts
            .set_disabled("test", "ada@example.com", true)
            .await
            .unwrap();
        assert!(
            accounts
                .verify("ada@example.com", "annual-report-velvet")
                .await
                .unwrap()
                .is_none(),
            "disabled"
        );
    }

    #[tokio::test]
    async fn the_last_enabled_admin_cannot_be_disabled_or_demoted() {
        let (_dir, accounts) = accounts().await;
        accounts
            .add_user("test", user("boss@example.com", None, true))
            .await
            .unwrap();
        let error = accounts
            .set_disabled("test", "boss@example.com", true)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "boss@example.com is the last enabled admin; make someone else an admin first"
        );
        assert!(accounts
            .set_admin("test", "boss@example.com", false)
            .await
            .is_err());
        accounts
            .add_user("test", user("deputy@example.com", None, true))
            .await
            .unwrap();
        accounts
            .set_admin("test", "boss@example.com", false)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn groups_and_memberships_are_audited() {
        let (_dir, accounts) = accounts().await;
        accounts
            .add_user("cli:root", user("ada@example.com", None, false))
            .await
            .unwrap();
        accounts.add_group("cli:root", "Sales EMEA").await.unwrap();
        assert!(accounts
            .set_member("cli:root", "Sales EMEA", "ada@example.com", true)
            .await
            .unwrap());
        assert!(!accounts
            .set_member("cli:root", "Sales EMEA", "ada@example.com", true)
            .await
            .unwrap());
        let listed = accounts.list().await.unwrap();
        assert_eq!(listed[0].groups, vec!["Sales EMEA"]);
        assert!(matches!(
            accounts
                .set_member("cli:root", "nope", "ada@example.com", true)
                .await,
            Err(IdentityError::NoSuchGroup(_))
        ));
        assert!(matches!(
            accounts.add_group("cli:root", "bad/name").await,
            Err(IdentityError::GroupName(_))
        ));
        let audit = accounts.store().audit(10).await.unwrap();
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, vec!["user.add", "group.add", "group.add-member"]);
        assert!(audit.iter().all(|a| a.actor == "cli:root"));
    }
}
