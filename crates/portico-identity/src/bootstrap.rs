//! The first admin. Portico without an admin could not be administered, so the first start
//! creates one: from `PORTICO_ADMIN_EMAIL` / `PORTICO_ADMIN_PASSWORD` when set (for automated
//! installs), otherwise `admin@<domain>` with a generated password that the caller prints
//! once to the console (it is never logged and only its hash is stored).

use crate::accounts::{Accounts, NewUser, Result};

/// What bootstrap did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// An admin already existed; nothing was done.
    Existing,
    /// Created from the environment.
    FromEnvironment { email: String },
    /// Created with a generated password, to be shown once.
    Generated { email: String, password: String },
}

pub async fn ensure_admin(
    accounts: &Accounts,
    domain: &str,
    email: Option<&str>,
    password: Option<&str>,
) -> Result<Bootstrap> {
    if accounts.store().count_enabled_admins().await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let default_email = format!("admin@{domain}");
    let email = email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or(&default_email);
    let password = password.filter(|p| !p.is_empty());
    let new = NewUser {
        email,
        display_name: Some("Administrator"),
        password,
        admin: true,
    };
    let (email, generated) = accounts.add_user("bootstrap", new).await?;
    Ok(match generated {
        Some(password) => Bootstrap::Generated { email, password },
        None => Bootstrap::FromEnvironment { email },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::Store;

    #[tokio::test]
    async fn the_first_start_creates_one_admin_and_later_starts_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::new(Store::open(dir.path()).await.unwrap());
        let first = ensure_admin(&accounts, "localhost", None, None)
            .await
            .unwrap();
        let Bootstrap::Generated { email, password } = first else {
            panic!("{first:?}")
        };
        assert_eq!(email, "admin@localhost");
        assert!(
            accounts
                .verify(&email, &password)
                .await
                .unwrap()
                .unwrap()
                .admin
        );
        assert_eq!(
            ensure_admin(&accounts, "localhost", None, None)
                .await
                .unwrap(),
            Bootstrap::Existing
        );
    }

    #[tokio::test]
    async fn the_environment_names_the_admin_and_a_weak_password_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::new(Store::open(dir.path()).await.unwrap());
        let weak = ensure_admin(
            &accounts,
            "localhost",
            Some("ops@example.com"),
            Some("password1234"),
        )
        .await;
        assert!(weak
            .unwrap_err()
            .to_string()
            .contains("most common passwords"));
        let made = ensure_admin(
            &accounts,
            "localhost",
            Some("ops@example.com"),
            Some("four-words-make-it"),
        )
        .await
        .unwrap();
        assert_eq!(
            made,
            Bootstrap::FromEnvironment {
                email: "ops@example.com".into()
            }
        );
    }
}
