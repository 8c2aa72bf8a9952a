//! `portico users …`, `portico groups …` and `portico audit`: account administration from the
//! terminal. Works whether or not Portico is running (the database allows one writer and many
//! readers at once). Every change is audited with the operating-system user as its actor.

use crate::apps::data_dir;
use clap::Subcommand;
use portico_identity::accounts::UserSummary;
use portico_identity::{Accounts, NewUser};
use portico_store::Store;
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
    /// Set a new password (generated and shown once, unless --password-stdin).
    ResetPassword {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
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
fn actor() -> String {
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

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portico: {message}");
            ExitCode::FAILURE
        }
    }
}

fn show_generated(email: &str, password: Option<String>) {
    if let Some(password) = password {
        println!("Password for {email} (shown only this once):\n    {password}");
    }
}

pub async fn users(explicit: Option<PathBuf>, command: UsersCommand) -> ExitCode {
    finish(run_users(explicit, command).await)
}

async fn run_users(explicit: Option<PathBuf>, command: UsersCommand) -> Result<(), String> {
    let accounts = accounts(explicit).await?;
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
        UsersCommand::List { json } => print_users(&accounts.list().await.map_err(fail)?, json),
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
            email,
            password_stdin,
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

fn print_users(users: &[UserSummary], json: bool) {
    if json {
        let list: Vec<serde_json::Value> = users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "email": u.user.email, "name": u.user.display_name, "admin": u.user.admin,
                    "disabled": u.user.disabled, "groups": u.groups, "created_at": u.user.created_at,
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
        "{:<32} {:<20} {:<6} {:<9} GROUPS",
        "EMAIL", "NAME", "ADMIN", "DISABLED"
    );
    for u in users {
        println!(
            "{:<32} {:<20} {:<6} {:<9} {}",
            u.user.email,
            u.user.display_name,
            if u.user.admin { "yes" } else { "-" },
            if u.user.disabled { "yes" } else { "-" },
            u.groups.join(", ")
        );
    }
}

pub async fn groups(explicit: Option<PathBuf>, command: GroupsCommand) -> ExitCode {
    finish(run_groups(explicit, command).await)
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
    finish(
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
    finish(
        async {
            let accounts = accounts(explicit).await?;
            match command {
                KeysCommand::Rotate => {
                    let kid = portico_identity::assertion::rotate(accounts.store()).await.map_err(|e| e.to_string())?;
                    accounts.store().add_audit(&actor(), "keys.rotate", Some(&kid), "").await.map_err(|e| e.to_string())?;
                    println!("New signing key {kid}. Portico signs assertions with it from its next start.");
                }
            }
            Ok(())
        }
        .await,
    )
}
