//! `portico users …`, `portico groups …` and `portico audit`: account administration from the
//! terminal. Works whether or not Portico is running (the database allows one writer and many
//! readers at once). Every change is audited with the operating-system user as its actor.

use crate::apps::data_dir;
use crate::config_path;
use clap::Subcommand;
use portico_core::{Config, PublicUrls};
use portico_identity::accounts::UserSummary;
use portico_identity::{Accounts, LinkPurpose, Links, Mailer, Mfa, NewUser, SecretBox};
use portico_store::{Store, UserRow};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user. Without --password-stdin a strong password is generated and shown once.
    Add {
        email: String,
        /// The name shown in the portal (default: the part of the address before @).
        #[arg(long)]
        name: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their groups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a user from signing in.
    Disable { email: String },
    /// Let a disabled user sign in again.
    Enable { email: String },
    /// Set a new password (generated and shown once, unless --password-stdin), or with
    /// --link send the user a link to choose one (printed when [smtp] is not configured).
    ResetPassword {
        email: String,
        #[arg(long, conflicts_with = "link")]
        password_stdin: bool,
        #[arg(long)]
        link: bool,
    },
    /// Invite someone: an account without a password and a link, e-mailed through [smtp]
    /// or printed, with which they choose one.
    Invite {
        email: String,
        /// Print the link even when [smtp] is configured, and send nothing.
        #[arg(long)]
        print_link: bool,
    },
    /// Remove a user's authenticator app and recovery codes (they lost their phone); they
    /// sign in with the password alone, or set up a new app if MFA is required.
    ResetMfa { email: String },
    /// Make a user an administrator, or with --revoke stop them being one.
    SetAdmin {
        email: String,
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Create a group.
    Add { name: String },
    /// List groups and how many members each has.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Put a user in a group.
    AddMember { group: String, email: String },
    /// Take a user out of a group.
    RemoveMember { group: String, email: String },
}

/// Who is acting: the operating-system user at the terminal.
pub(crate) fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("cli:{user}")
}

async fn accounts(explicit: Option<PathBuf>) -> Result<Accounts, String> {
    let data_dir = data_dir(explicit)?;
    let store = Store::open(&data_dir).await.map_err(|e| e.to_string())?;
    Ok(Accounts::new(store))
}

/// The address as the account is known (lowercased), for messages.
fn canonical(email: &str) -> String {
    portico_identity::email::normalize_email(email).unwrap_or_else(|_| email.trim().to_owned())
}

fn password_from_stdin() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err("no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PASSWORD\" | portico users add …`".into());
    }
    Ok(line)
}

fn show_generated(email: &str, password: Option<String>) {
    if let Some(password) = password {
        println!("Password for {email} (shown only this once):\n    {password}");
    }
}

pub async fn users(explicit: Option<PathBuf>, command: UsersCommand) -> ExitCode {
    crate::output::finish(run_users(explicit, command).await)
}

/// Links and, when configured, the mailer, from the config file.
fn link_service(
    accounts: &Accounts,
    explicit: Option<PathBuf>,
) -> Result<(Links, Option<Mailer>), String> {
    let config = Config::load(&config_path::resolve(explicit)?).map_err(|e| e.to_string())?;
    let urls = PublicUrls::new(&config.server.domain, config.server.listen.port(), false);
    let links = Links::new(
        accounts.store().clone(),
        &urls.portal(),
        config.auth.invitation_lifetime,
        config.auth.password_reset_lifetime,
    );
    let mailer = match &config.smtp {
        Some(smtp) => Some(Mailer::new(smtp).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((links, mailer))
}

/// E-mails the link, or prints it when there is no mail server (or `--print-link`).
async fn deliver(
    links: &Links,
    mailer: Option<&Mailer>,
    purpose: LinkPurpose,
    user: &UserRow,
    url: &str,
    print: bool,
) -> Result<(), String> {
    let what = match purpose {
        LinkPurpose::Invite => "an invitation",
        LinkPurpose::Reset => "a password-reset link",
    };
    let lifetime = links.lifetime_words(purpose);
    match mailer {
        Some(mailer) if !print => {
            links
                .send(mailer, purpose, user, url)
                .await
                .map_err(|e| format!("{e}. The link was not sent; run the command again with --print-link to hand it over yourself"))?;
            println!(
                "Sent {what} to {} (it works once, for {lifetime}).",
                user.email
            );
        }
        _ => {
            println!(
                "Give {} this link ({what}; it works once, for {lifetime}):\n    {url}",
                user.email
            );
        }
    }
    Ok(())
}

async fn run_users(explicit: Option<PathBuf>, command: UsersCommand) -> Result<(), String> {
    let accounts = accounts(explicit.clone()).await?;
    let actor = actor();
    let fail = |e: portico_identity::IdentityError| e.to_string();
    match command {
        UsersCommand::Add {
            email,
            name,
            admin,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let new = NewUser {
                email: &email,
                display_name: name.as_deref(),
                password: password.as_deref(),
                admin,
            };
            let (email, generated) = accounts.add_user(&actor, new).await.map_err(fail)?;
            println!(
                "Added {email}{}.",
                if admin { " as an administrator" } else { "" }
            );
            show_generated(&email, generated);
        }
        UsersCommand::List { json } => {
            let with_mfa = accounts
                .store()
                .users_with_totp()
                .await
                .map_err(|e| e.to_string())?;
            print_users(&accounts.list().await.map_err(fail)?, &with_mfa, json)
        }
        UsersCommand::Disable { email } => {
            accounts
                .set_disabled(&actor, &email, true)
                .await
                .map_err(fail)?;
            println!("Disabled {}.", canonical(&email));
        }
        UsersCommand::Enable { email } => {
            accounts
                .set_disabled(&actor, &email, false)
                .await
                .map_err(fail)?;
            println!("Enabled {}.", canonical(&email));
        }
        UsersCommand::ResetPassword {
            email, link: true, ..
        } => {
            let (links, mailer) = link_service(&accounts, explicit.clone())?;
            let (user, url) = links.reset(&actor, &email).await.map_err(fail)?;
            deliver(
                &links,
                mailer.as_ref(),
                LinkPurpose::Reset,
                &user,
                &url,
                false,
            )
            .await?;
        }
        UsersCommand::Invite { email, print_link } => {
            let (links, mailer) = link_service(&accounts, explicit.clone())?;
            let (user, url) = links
                .invite(&accounts, &actor, &email)
                .await
                .map_err(fail)?;
            deliver(
                &links,
                mailer.as_ref(),
                LinkPurpose::Invite,
                &user,
                &url,
                print_link,
            )
            .await?;
        }
        UsersCommand::ResetMfa { email } => {
            let user = accounts
                .store()
                .user_by_email(&canonical(&email))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    fail(portico_identity::IdentityError::NoSuchUser(canonical(
                        &email,
                    )))
                })?;
            let mfa = Mfa::new(
                accounts.store().clone(),
                // Removing needs no secret: a key is only needed to read one.
                SecretBox::from_key([0; 32]),
                "Portico",
            );
            let removed = mfa.remove(&actor, &user).await.map_err(|e| e.to_string())?;
            if removed {
                println!(
                    "Removed the authenticator and recovery codes of {}.",
                    user.email
                );
            } else {
                println!("{} had no authenticator; nothing changed.", user.email);
            }
        }
        UsersCommand::ResetPassword {
            email,
            password_stdin,
            ..
        } => {
            let password = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let generated = accounts
                .reset_password(&actor, &email, password.as_deref())
                .await
                .map_err(fail)?;
            println!("New password set for {}.", canonical(&email));
            show_generated(&canonical(&email), generated);
        }
        UsersCommand::SetAdmin { email, revoke } => {
            accounts
                .set_admin(&actor, &email, !revoke)
                .await
                .map_err(fail)?;
            let what = if revoke {
                "no longer an administrator"
            } else {
                "an administrator"
            };
            println!("{} is {what}.", canonical(&email));
        }
    }
    Ok(())
}

fn print_users(users: &[UserSummary], with_mfa: &[i64], json: bool) {
    let mfa = |u: &UserSummary| with_mfa.contains(&u.user.id);
    if json {
        let list: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "email": u.user.email, "name": u.user.display_name, "admin": u.user.admin,
                    "disabled": u.user.disabled, "groups": u.groups, "created_at": u.user.created_at,
                    "mfa": mfa(u), "invited": u.user.password_hash.is_none(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    println!(
        "{:<32} {:<20} {:<6} {:<9} {:<4} GROUPS",
        "EMAIL", "NAME", "ADMIN", "DISABLED", "MFA"
    );
    for u in users {
        println!(
            "{:<32} {:<20} {:<6} {:<9} {:<4} {}",
            u.user.email,
            u.user.display_name,
            if u.user.admin { "yes" } else { "-" },
            if u.user.disabled { "yes" } else { "-" },
            if mfa(u) { "yes" } else { "-" },
            u.groups.join(", ")
        );
    }
}

pub async fn groups(explicit: Option<PathBuf>, command: GroupsCommand) -> ExitCode {
    crate::output::finish(run_groups(explicit, command).await)
}

async fn run_groups(explicit: Option<PathBuf>, command: GroupsCommand) -> Result<(), String> {
    let accounts = accounts(explicit).await?;
    let actor = actor();
    let fail = |e: portico_identity::IdentityError| e.to_string();
    match command {
        GroupsCommand::Add { name } => {
            accounts.add_group(&actor, &name).await.map_err(fail)?;
            println!("Added the group \"{}\".", name.trim());
        }
        GroupsCommand::List { json } => {
            let groups = accounts.groups().await.map_err(fail)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&groups).unwrap_or_default()
                );
            } else {
                println!("{:<32} MEMBERS", "GROUP");
                for g in groups {
                    println!("{:<32} {}", g.name, g.members);
                }
            }
        }
        GroupsCommand::AddMember { group, email } => {
            let changed = accounts
                .set_member(&actor, &group, &email, true)
                .await
                .map_err(fail)?;
            let already = if changed { "" } else { " (already a member)" };
            println!("{} is in \"{group}\"{already}.", canonical(&email));
        }
        GroupsCommand::RemoveMember { group, email } => {
            let changed = accounts
                .set_member(&actor, &group, &email, false)
                .await
                .map_err(fail)?;
            let already = if changed { "" } else { " (was not a member)" };
            println!("{} is not in \"{group}\"{already}.", canonical(&email));
        }
    }
    Ok(())
}

pub async fn audit(explicit: Option<PathBuf>, limit: i64, json: bool) -> ExitCode {
    crate::output::finish(
        async {
            let accounts = accounts(explicit).await?;
            let rows = accounts
                .store()
                .audit(limit.clamp(1, 100_000))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                );
            } else {
                for row in rows {
                    let subject = row.subject.as_deref().unwrap_or("-");
                    println!(
                        "{}  {:<20} {:<22} {:<30} {}",
                        row.at, row.actor, row.action, subject, row.detail
                    );
                }
            }
            Ok(())
        }
        .await,
    )
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new key for signing X-Portico-Assertion. Portico signs with it from its next start;
    /// the previous key stays published in the JWKS so that assertions already issued verify.
    Rotate,
}

pub async fn keys(explicit: Option<PathBuf>, command: KeysCommand) -> ExitCode {
    crate::output::finish(
        async {
            let secrets = SecretBox::for_data_dir(&data_dir(explicit.clone())?).map_err(|e| e.to_string())?;
            let accounts = accounts(explicit).await?;
            match command {
                KeysCommand::Rotate => {
                    let kid = portico_identity::assertion::rotate(accounts.store(), &secrets).await.map_err(|e| e.to_string())?;
                    accounts.store().add_audit(&actor(), "keys.rotate", Some(&kid), "").await.map_err(|e| e.to_string())?;
                    println!("New signing key {kid}. Portico signs assertions with it from its next start.");
                }
            }
            Ok(())
        }
        .await,
    )
}
