//! `portico`: the command line. Wiring only: each subcommand lives in its own module and
//! calls into the library crates.

mod accounts_cli;
mod apps;
mod check;
mod config_path;
mod control;
mod created_apps;
mod deploy_cli;
mod git_hook;
mod instance_lock;
mod logs;
mod memory;
mod output;
mod reload;
mod replicas_cli;
mod tokens_cli;
mod up;
mod watch;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "portico",
    version,
    about = "Put analysts' dashboards into production: TLS, sign-in, scaling and deploys in one binary."
)]
struct Cli {
    /// The config file. Default: $PORTICO_CONFIG, else ./portico.toml, else the repository's examples/portico.toml.
    #[arg(long, short, global = true, env = "PORTICO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Portico in the foreground: build, start and serve every app. Ctrl-C stops it all.
    Up {
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = output::LogFormat::Text)]
        log_format: output::LogFormat,
    },
    /// Validate the config exactly as `up` would, without starting anything.
    Check,
    /// Make the running Portico read its config file again and apply it (apps, access rules,
    /// certificates, firewall, limits) without dropping connections. An invalid file changes
    /// nothing. SIGHUP does the same, and so does saving the file.
    Reload,
    /// Show each app's status, replicas and restarts.
    Apps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show every live replica and what it is doing now: sessions, open WebSockets,
    /// requests in flight (from the running Portico).
    Replicas {
        /// Only this app's replicas.
        app: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print an app's log (its current replica's output, or its build log).
    Logs {
        /// The app's name.
        app: String,
        /// Keep printing new lines as they arrive (follows restarts too).
        #[arg(long, short)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, short = 'n', default_value_t = 100)]
        lines: usize,
        /// Print the environment build log instead.
        #[arg(long)]
        build: bool,
    },
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: accounts_cli::UsersCommand,
    },
    /// Manage groups.
    Groups {
        #[command(subcommand)]
        command: accounts_cli::GroupsCommand,
    },
    /// Manage the keys that sign identity assertions to dashboards.
    Keys {
        #[command(subcommand)]
        command: accounts_cli::KeysCommand,
    },
    /// Manage API tokens (for `portico deploy`, `git push` and scripts).
    Tokens {
        #[command(subcommand)]
        command: tokens_cli::TokensCommand,
    },
    /// Deploy a folder as a new release of an app: pack it (honouring .gitignore and
    /// .porticoignore), upload it, show the build, and wait until the release is live.
    /// Sessions on the running release are not cut off.
    Deploy {
        /// The app's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The app to deploy to. Default: the folder's name.
        #[arg(long)]
        app: Option<String>,
        /// Return once the upload is accepted, without following the build.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        connection: deploy_cli::Connection,
    },
    /// List an app's releases: who deployed what, when, and how each went.
    Releases {
        app: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: deploy_cli::Connection,
    },
    /// Serve an earlier release again: RELEASE, or the one before the live one.
    Rollback {
        app: String,
        release: Option<i64>,
        /// Return once the rollback is accepted.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        connection: deploy_cli::Connection,
    },
    /// The pre-receive hook of the repositories `git push` deploys through (run by git).
    #[command(hide = true)]
    GitHook,
    /// Show the audit log: account and group changes, and (with sign-in) sign-ins and refusals.
    Audit {
        /// How many of the newest entries.
        #[arg(long, short = 'n', default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    memory::return_large_blocks_to_the_system();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("portico: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = cli.config;
    runtime.block_on(async move {
        match cli.command {
            Command::Up { log_format } => up::run(config, log_format).await,
            Command::Check => check::run(config),
            Command::Reload => control::run(config).await,
            Command::Apps { json } => apps::run(config, json).await,
            Command::Replicas { app, json } => replicas_cli::run(config, app, json).await,
            Command::Logs {
                app,
                follow,
                lines,
                build,
            } => logs::run(config, &app, follow, lines, build).await,
            Command::Users { command } => accounts_cli::users(config, command).await,
            Command::Groups { command } => accounts_cli::groups(config, command).await,
            Command::Audit { limit, json } => accounts_cli::audit(config, limit, json).await,
            Command::Keys { command } => accounts_cli::keys(config, command).await,
            Command::Tokens { command } => tokens_cli::run(config, command).await,
            Command::GitHook => git_hook::run(),
            Command::Deploy {
                dir,
                app,
                no_wait,
                connection,
            } => deploy_cli::deploy(config, dir, app, no_wait, connection).await,
            Command::Releases {
                app,
                json,
                connection,
            } => deploy_cli::releases(config, app, json, connection).await,
            Command::Rollback {
                app,
                release,
                no_wait,
                connection,
            } => deploy_cli::rollback(config, app, release, no_wait, connection).await,
        }
    })
}
