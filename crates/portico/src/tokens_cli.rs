//! `portico tokens …`: API tokens for `portico deploy`, `git push` and scripts. A token is
//! shown once, when it is made; Portico keeps only its hash.

use crate::apps::data_dir;
use clap::Subcommand;
use portico_identity::{ApiTokens, Scope};
use portico_store::{Store, TokenListing};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make a token for a user; it is printed once.
    Create {
        /// Whose token: it acts for this user.
        email: String,
        /// What it is for ("laptop", "ci"), shown in lists.
        #[arg(long)]
        name: String,
        /// `deploy` (every app the user may deploy, the default) or `deploy:<app>`; repeat
        /// for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Days until it expires (at most 366).
        #[arg(long, default_value_t = 90, conflicts_with = "no_expiry")]
        expires_in_days: u64,
        /// Never expires (for a CI system with its own rotation).
        #[arg(long)]
        no_expiry: bool,
    },
    /// List tokens (never their text): all, or one user's.
    List {
        email: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop a token working at once.
    Revoke {
        /// Its id, from `portico tokens list`.
        id: i64,
    },
}

pub async fn run(explicit: Option<PathBuf>, command: TokensCommand) -> ExitCode {
    crate::output::finish(tokens(explicit, command).await)
}

async fn tokens(explicit: Option<PathBuf>, command: TokensCommand) -> Result<(), String> {
    let store = Store::open(&data_dir(explicit)?)
        .await
        .map_err(|e| e.to_string())?;
    let tokens = ApiTokens::new(store);
    let actor = crate::accounts_cli::actor();
    match command {
        TokensCommand::Create {
            email,
            name,
            scopes,
            expires_in_days,
            no_expiry,
        } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err("--name needs 1-100 printable characters, e.g. --name laptop".into());
            }
            let scopes = if scopes.is_empty() {
                vec![Scope::Deploy]
            } else {
                scopes
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let lifetime = if no_expiry {
                None
            } else if (1..=366).contains(&expires_in_days) {
                Some(Duration::from_secs(expires_in_days * 24 * 3600))
            } else {
                return Err(format!(
                    "--expires-in-days {expires_in_days} is out of range; give 1 to 366, or --no-expiry"
                ));
            };
            let made = tokens
                .create(&actor, &email, name, &scopes, lifetime)
                .await
                .map_err(|e| e.to_string())?;
            let until = made.expires_at.map_or("never expires".to_owned(), |at| {
                format!("expires {}", date(at))
            });
            println!(
                "Token {} for {email} ({until}); shown only this once:\n    {}\nUse it as PORTICO_TOKEN, or as the password of `git push` over HTTPS.",
                made.id, made.token
            );
        }
        TokensCommand::List { email, json } => {
            let list = tokens
                .list(email.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            print_tokens(&list, json);
        }
        TokensCommand::Revoke { id } => {
            if tokens.revoke(&actor, id).await.map_err(|e| e.to_string())? {
                println!("Token {id} revoked.");
            } else {
                return Err(format!(
                    "there is no token {id}, or it was revoked already; `portico tokens list` shows them"
                ));
            }
        }
    }
    Ok(())
}

fn date(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn print_tokens(list: &[TokenListing], json: bool) {
    let now = portico_identity::sessions::unix_now();
    if json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|l| {
                serde_json::json!({
                    "id": l.token.id,
                    "user": l.email,
                    "name": l.token.name,
                    "prefix": l.token.prefix,
                    "scopes": l.token.scopes.split_whitespace().collect::<Vec<_>>(),
                    "state": portico_identity::tokens::state(&l.token, now),
                    "created_at": date(l.token.created_at),
                    "expires_at": l.token.expires_at.map(date),
                    "last_used_at": l.token.last_used_at.map(date),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "tokens": rows }));
        return;
    }
    if list.is_empty() {
        println!("No API tokens. Make one with `portico tokens create EMAIL --name NAME`.");
        return;
    }
    println!(
        "{:<5} {:<28} {:<14} {:<16} {:<8} {:<21} LAST USED",
        "ID", "USER", "NAME", "PREFIX", "STATE", "EXPIRES"
    );
    for l in list {
        println!(
            "{:<5} {:<28} {:<14} {:<16} {:<8} {:<21} {}",
            l.token.id,
            l.email,
            l.token.name,
            format!("{}…", l.token.prefix),
            portico_identity::tokens::state(&l.token, now),
            l.token.expires_at.map_or("never".into(), date),
            l.token.last_used_at.map_or("never".into(), date),
        );
    }
}
