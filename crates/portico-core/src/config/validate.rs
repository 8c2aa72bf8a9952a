//! Checks that serde cannot make, collecting every problem rather than stopping at the first.

use super::limits::seconds;
use super::raw;
use super::SizeProfile;
use super::{
    AppSpec, AuthConfig, BuildConfig, Config, FleetConfig, Installer, MfaPolicy, Problem,
    ScaleSpec, ServerConfig, SmtpConfig, SmtpSecurity,
};
use crate::access::Access;
use crate::firewall::{FirewallConfig, IpRules};
use crate::model::Framework;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Environment variables Portico sets for every replica; an app may not override them.
const RESERVED_ENV: &[&str] = &[
    "PORT",
    "PORTICO_INSTANCE",
    "PORTICO_REPLICA",
    "PORTICO_USER",
    "PORTICO_HOME",
    "PORTICO_DATA",
];

pub fn validate(raw: raw::ConfigFile, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let server = server(raw.server, base, &mut problems);
    let build = build(raw.build, base, &server, &mut problems);
    let fleet = fleet(raw.fleet, &mut problems);
    let auth = auth(raw.auth, base, &mut problems);
    let smtp = raw.smtp.map(|raw| smtp(raw, &mut problems));
    let redirect_listen = server.redirect_listen.is_some();
    let tls = raw
        .tls
        .map(|raw| super::tls::tls(raw, base, redirect_listen, &mut problems));
    let firewall = firewall(raw.firewall, &mut problems);
    let limits = super::limits::limits(raw.limits, &mut problems);
    if tls.is_none() && server.redirect_listen.is_some() {
        problems.push(Problem::new(
            "server.redirect_listen",
            "redirects to HTTPS, which needs a [tls] table; add one or remove the key",
        ));
    }
    let profiles = super::instances::profiles(raw.profiles, &mut problems);
    let docker = super::containers::docker(raw.docker, base, &mut problems);
    let drives = super::volumes::drives(raw.drives, &mut problems);
    let deploy = super::deploy::deploy(raw.deploy, &mut problems);
    let apps = apps(
        raw.apps,
        base,
        &profiles,
        &drives,
        fleet.runtime,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(Config {
            path: PathBuf::new(),
            server,
            build,
            fleet,
            auth,
            smtp,
            tls,
            firewall,
            limits,
            docker,
            drives,
            deploy,
            apps,
        })
    } else {
        Err(problems)
    }
}

fn server(raw: raw::Server, base: &Path, problems: &mut Vec<Problem>) -> ServerConfig {
    let listen = socket_addr("server.listen", &raw.listen, problems);
    let metrics_listen = raw
        .metrics_listen
        .as_deref()
        .map(|text| socket_addr("server.metrics_listen", text, problems));
    if metrics_listen.is_some() && metrics_listen == Some(listen) {
        problems.push(Problem::new(
            "server.metrics_listen",
            format!("= \"{}\" is the same address as server.listen; choose another port or remove the key", raw.listen),
        ));
    }
    let redirect_listen = raw
        .redirect_listen
        .as_deref()
        .map(|text| socket_addr("server.redirect_listen", text, problems));
    if redirect_listen.is_some()
        && (redirect_listen == Some(listen) || redirect_listen == metrics_listen)
    {
        problems.push(Problem::new(
            "server.redirect_listen",
            "is the same address as another listener; choose another port (usually 80)",
        ));
    }
    if !is_domain(&raw.domain) {
        problems.push(Problem::new(
            "server.domain",
            format!(
                "= \"{}\" is not a host name; write DNS labels joined by dots, e.g. \"localhost\" or \"dash.example.com\"",
                raw.domain
            ),
        ));
    }
    if raw.max_header_bytes < 8 * 1024 {
        problems.push(Problem::new(
            "server.max_header_bytes",
            format!(
                "= {} is too small for browsers' cookies and headers; write at least 8192",
                raw.max_header_bytes
            ),
        ));
    }
    let shutdown_timeout = raw.shutdown_timeout_secs.unwrap_or(30);
    if shutdown_timeout > 3600 {
        problems.push(Problem::new(
            "server.shutdown_timeout_secs",
            format!("= {shutdown_timeout} is more than an hour; write 0 to 3600, e.g. 30"),
        ));
    }
    ServerConfig {
        listen,
        domain: raw.domain.to_ascii_lowercase(),
        watch_config: raw.watch_config.unwrap_or(true),
        shutdown_timeout: Duration::from_secs(shutdown_timeout),
        data_dir: base.join(&raw.data_dir),
        metrics_listen,
        max_header_bytes: raw.max_header_bytes,
        redirect_listen,
    }
}

fn build(
    raw: raw::Build,
    base: &Path,
    server: &ServerConfig,
    problems: &mut Vec<Problem>,
) -> BuildConfig {
    let installer = match raw.installer.as_deref() {
        None | Some("auto") => Installer::Auto,
        Some("uv") => Installer::Uv,
        Some("pip") => Installer::Pip,
        Some(other) => {
            problems.push(Problem::new(
                "build.installer",
                format!("= \"{other}\" is not an installer; write \"auto\", \"uv\" or \"pip\""),
            ));
            Installer::Auto
        }
    };
    BuildConfig {
        cache_dir: raw
            .cache_dir
            .map(|d| base.join(d))
            .unwrap_or_else(|| server.data_dir.join("envs")),
        python: raw.python.unwrap_or_else(|| "python3".into()),
        installer,
    }
}

fn fleet(raw: raw::Fleet, problems: &mut Vec<Problem>) -> FleetConfig {
    if raw.start_timeout_secs == 0 {
        problems.push(Problem::new(
            "fleet.start_timeout_secs",
            "= 0 gives a dashboard no time to start; write the seconds to wait, e.g. 120",
        ));
    }
    let probe_interval = raw.probe_interval_secs.unwrap_or(10);
    if !(1..=3600).contains(&probe_interval) {
        problems.push(Problem::new(
            "fleet.probe_interval_secs",
            format!("= {probe_interval} is out of range; write 1 to 3600, e.g. 10"),
        ));
    }
    let probe_failures = raw.probe_failures.unwrap_or(6);
    if !(1..=100).contains(&probe_failures) {
        problems.push(Problem::new(
            "fleet.probe_failures",
            format!("= {probe_failures} is out of range; write 1 to 100, e.g. 6"),
        ));
    }
    let max_replicas = raw.max_replicas.unwrap_or(100);
    if max_replicas == 0 {
        problems.push(Problem::new(
            "fleet.max_replicas",
            "= 0 leaves no room for the autoscaler; write the most replicas this machine should run, e.g. 100",
        ));
    }
    let per_user = raw.max_instances_per_user.unwrap_or(4);
    if per_user == 0 {
        problems.push(Problem::new(
            "fleet.max_instances_per_user",
            "= 0 would let nobody open a per-user app; write how many private instances one person may run at once, e.g. 4",
        ));
    }
    FleetConfig {
        max_instances_per_user: per_user.max(1),
        max_replicas: max_replicas.max(1),
        probe_interval: Duration::from_secs(probe_interval.clamp(1, 3600)),
        probe_failures: probe_failures.clamp(1, 100),
        start_timeout: Duration::from_secs(raw.start_timeout_secs),
        stop_grace: Duration::from_secs(raw.stop_grace_secs),
        max_restarts: raw.max_restarts,
        keep_replicas_on_exit: raw.keep_replicas_on_exit,
        runtime: raw.runtime,
    }
}

fn auth(raw: raw::Auth, base: &Path, problems: &mut Vec<Problem>) -> AuthConfig {
    let idle = raw.session_idle_timeout_secs.unwrap_or(8 * 3600);
    let lifetime = raw.session_lifetime_secs.unwrap_or(24 * 3600);
    if idle == 0 {
        problems.push(Problem::new(
            "auth.session_idle_timeout_secs",
            "= 0 would end every session at once; write e.g. 28800 (8 hours)",
        ));
    }
    if lifetime < idle {
        problems.push(Problem::new(
            "auth.session_lifetime_secs",
            format!("= {lifetime} is shorter than auth.session_idle_timeout_secs ({idle}); make it at least as long"),
        ));
    }
    let require_mfa = match raw.require_mfa.as_deref() {
        None | Some("never") => MfaPolicy::Never,
        Some("admins") => MfaPolicy::Admins,
        Some("everyone") => MfaPolicy::Everyone,
        Some(other) => {
            problems.push(Problem::new(
                "auth.require_mfa",
                format!(
                    "= \"{other}\" is not a policy; write \"never\", \"admins\" or \"everyone\""
                ),
            ));
            MfaPolicy::Never
        }
    };
    let invitation = raw.invitation_lifetime_secs.unwrap_or(7 * 24 * 3600);
    let reset = raw.password_reset_lifetime_secs.unwrap_or(3600);
    for (key, value) in [
        ("auth.invitation_lifetime_secs", invitation),
        ("auth.password_reset_lifetime_secs", reset),
    ] {
        if !(60..=30 * 24 * 3600).contains(&value) {
            problems.push(Problem::new(
                key,
                format!("= {value} is out of range; links must work between 60 seconds and 30 days, e.g. 3600"),
            ));
        }
    }
    let mut ids = std::collections::HashSet::new();
    let ldap: Vec<_> = raw
        .ldap
        .into_iter()
        .enumerate()
        .map(|(i, l)| super::sso::ldap(i, l, &mut ids, problems))
        .collect();
    let oidc: Vec<_> = raw
        .oidc
        .into_iter()
        .enumerate()
        .map(|(i, o)| super::sso::oidc(i, o, &mut ids, problems))
        .collect();
    let saml: Vec<_> = raw
        .saml
        .into_iter()
        .enumerate()
        .map(|(i, o)| super::sso::saml(i, o, base, &mut ids, problems))
        .collect();
    let password_sign_in = raw.password_sign_in.unwrap_or(true);
    if !password_sign_in && ldap.is_empty() && oidc.is_empty() && saml.is_empty() {
        problems.push(Problem::new(
            "auth.password_sign_in",
            "= false leaves no way to sign in (no single sign-on provider is configured); remove it, or add an [[auth.oidc]], [[auth.saml]] or [[auth.ldap]] provider",
        ));
    }
    AuthConfig {
        password_sign_in,
        ldap,
        oidc,
        saml,
        require_mfa,
        invitation_lifetime: Duration::from_secs(invitation),
        password_reset_lifetime: Duration::from_secs(reset),
        session_idle_timeout: Duration::from_secs(idle),
        session_lifetime: Duration::from_secs(lifetime),
        contact: raw
            .contact
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "your Portico administrator".into()),
    }
}

fn smtp(raw: raw::Smtp, problems: &mut Vec<Problem>) -> SmtpConfig {
    let host = raw.host.trim().to_owned();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() {
        problems.push(Problem::new(
            "smtp.host",
            "is empty; write the mail server's name, e.g. \"smtp.example.com\"",
        ));
    }
    let security = match raw.security.as_deref() {
        None | Some("starttls") => SmtpSecurity::StartTls,
        Some("tls") => SmtpSecurity::Tls,
        Some("none") if loopback => SmtpSecurity::None,
        Some("none") => {
            problems.push(Problem::new(
                "smtp.security",
                format!("= \"none\" would send links that sign people in unencrypted to {host}; it is only allowed for a mail server on this machine (localhost). Use \"starttls\" or \"tls\""),
            ));
            SmtpSecurity::None
        }
        Some(other) => {
            problems.push(Problem::new(
                "smtp.security",
                format!("= \"{other}\" is not a choice; write \"starttls\" (port 587), \"tls\" (port 465) or, for a local relay, \"none\""),
            ));
            SmtpSecurity::StartTls
        }
    };
    let port = raw.port.unwrap_or(match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    });
    if !looks_like_sender(&raw.from) {
        problems.push(Problem::new(
            "smtp.from",
            format!(
                "= \"{}\" is not an e-mail sender; write e.g. \"Portico <portico@example.com>\"",
                raw.from
            ),
        ));
    }
    SmtpConfig {
        host,
        port,
        security,
        username: raw.username.filter(|u| !u.is_empty()),
        from: raw.from,
        timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(20).max(1)),
    }
}

/// `ada@example.com` or `Name <ada@example.com>`; the mailer parses it fully.
fn looks_like_sender(from: &str) -> bool {
    let from = from.trim();
    let address = match (from.rfind('<'), from.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => from,
    };
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Reads an app's `access` value; `None` (absent) means signed-in users only.
fn access(key: &str, value: Option<&toml::Value>, problems: &mut Vec<Problem>) -> Access {
    let fix = "write \"public\", \"signed-in\", or { users = [\"ada@example.com\"], groups = [\"sales\"] }";
    match value {
        None => Access::SignedIn,
        Some(toml::Value::String(s)) if s == "public" => Access::Public,
        Some(toml::Value::String(s)) if s == "signed-in" => Access::SignedIn,
        Some(toml::Value::String(s)) => {
            problems.push(Problem::new(
                key,
                format!("= \"{s}\" is not an access rule; {fix}"),
            ));
            Access::SignedIn
        }
        Some(toml::Value::Table(table)) => {
            let (users, groups) = people(key, table, "an access rule", fix, problems);
            if users.is_empty()
                && groups.is_empty()
                && !problems.iter().any(|p| p.key.starts_with(key))
            {
                problems.push(Problem::new(key, "names no users and no groups, so only admins could open the app; add some, or write \"signed-in\""));
            }
            Access::Only { users, groups }
        }
        Some(_) => {
            problems.push(Problem::new(key, format!("has the wrong type; {fix}")));
            Access::SignedIn
        }
    }
}

/// Reads `{ users = [...], groups = [...] }` (users by e-mail, lowercased), part of `what`
/// (an access rule, the owners); `fix` is said for a key that is neither.
pub(super) fn people(
    key: &str,
    table: &toml::value::Table,
    what: &str,
    fix: &str,
    problems: &mut Vec<Problem>,
) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for (name, list) in table {
        let target = match name.as_str() {
            "users" => &mut users,
            "groups" => &mut groups,
            other => {
                problems.push(Problem::new(
                    format!("{key}.{other}"),
                    format!("is not part of {what}; {fix}"),
                ));
                continue;
            }
        };
        let Some(items) = list.as_array() else {
            problems.push(Problem::new(
                format!("{key}.{name}"),
                "must be a list of strings, e.g. [\"sales\"]",
            ));
            continue;
        };
        for item in items {
            match item.as_str() {
                Some(text) if name == "users" && !text.contains('@') => {
                    problems.push(Problem::new(
                        format!("{key}.users"),
                        format!("\"{text}\" is not an e-mail address; users are named by e-mail"),
                    ))
                }
                Some(text) => target.push(if name == "users" {
                    text.trim().to_lowercase()
                } else {
                    text.trim().to_owned()
                }),
                None => problems.push(Problem::new(
                    format!("{key}.{name}"),
                    "must be a list of strings",
                )),
            }
        }
    }
    (users, groups)
}

fn apps(
    raw: Vec<raw::App>,
    base: &Path,
    profiles: &BTreeMap<String, SizeProfile>,
    drives: &BTreeMap<String, super::DriveSpec>,
    default_runtime: super::RuntimeKind,
    problems: &mut Vec<Problem>,
) -> Vec<AppSpec> {
    let mut first_index: HashMap<String, usize> = HashMap::new();
    let mut apps = Vec::with_capacity(raw.len());
    for (i, app) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("apps[{i}].{field}");
        if !is_dns_label(&app.name) {
            problems.push(Problem::new(
                key("name"),
                format!(
                    "= \"{}\" is not a DNS label, so it cannot be a host name (<name>.<domain>); use 1-63 lowercase letters, digits and '-', not starting or ending with '-', e.g. \"{}\"",
                    app.name,
                    suggest_label(&app.name)
                ),
            ));
        } else if let Some(first) = first_index.get(&app.name) {
            problems.push(Problem::new(
                key("name"),
                format!("= \"{}\" is already the name of apps[{first}]; app names must be unique, rename one of them", app.name),
            ));
        } else {
            first_index.insert(app.name.clone(), i);
        }

        let runtime = app.runtime.unwrap_or(default_runtime);
        let source = match (&app.source, &app.image) {
            (Some(source), _) => base.join(source),
            (None, Some(_)) => base.to_owned(),
            (None, None) => {
                problems.push(Problem::new(
                    key("source"),
                    "is missing; point it at the app's folder, e.g. source = \"dashboards/sales\" (or, with runtime = \"docker\", name a ready-made image)",
                ));
                base.to_owned()
            }
        };
        if let Some(image) = &app.image {
            if let Err(why) = super::containers::check_image(image) {
                problems.push(Problem::new(key("image"), format!("= \"{image}\" {why}")));
            }
            if runtime != super::RuntimeKind::Docker {
                problems.push(Problem::new(
                    key("image"),
                    "needs runtime = \"docker\" (the process runtime runs the app's folder); add it to the app or to [fleet]",
                ));
            }
        }
        if app.container.is_some() && runtime != super::RuntimeKind::Docker {
            problems.push(Problem::new(
                key("container"),
                "only applies with runtime = \"docker\"; add that to the app or to [fleet], or remove the table",
            ));
        }
        let container =
            super::containers::container(&format!("apps[{i}]"), app.container, problems);
        let source_text = app.source.clone().unwrap_or_default();
        if app.source.is_some() && !source.is_dir() {
            let what = if source.exists() {
                "is not a folder"
            } else {
                "does not exist"
            };
            problems.push(Problem::new(
                key("source"),
                format!(
                    "= \"{}\": {} {what}; point it at the app's folder (relative paths start at the config file's folder)",
                    source_text,
                    source.display()
                ),
            ));
        }

        if let Some(entry) = &app.entrypoint {
            if !is_inside(entry) {
                problems.push(Problem::new(
                    key("entrypoint"),
                    format!(
                        "= \"{entry}\" must be a file inside the app's folder, e.g. \"app.py\""
                    ),
                ));
            } else if source.is_dir() && !source.join(entry).is_file() {
                problems.push(Problem::new(
                    key("entrypoint"),
                    format!("= \"{entry}\": there is no such file in {}; correct the name or remove the key to detect it", source.display()),
                ));
            }
        }

        match (app.framework, app.command.is_empty()) {
            // A ready-made image runs its own command, or the one given.
            _ if app.image.is_some() => {
                if let Some(framework) = app.framework {
                    problems.push(Problem::new(
                        key("framework"),
                        format!("= \"{}\" is for building from source; an app with an image runs the image's own command (or `command`), so remove it", framework.config_name()),
                    ));
                }
            }
            (Some(Framework::Command), true) => problems.push(Problem::new(
                key("command"),
                "is missing: framework = \"command\" needs the program to run, e.g. command = [\"./server\", \"--port\", \"$PORT\"]",
            )),
            (Some(Framework::Command), false) => {}
            (_, false) => problems.push(Problem::new(
                key("command"),
                "is only used with framework = \"command\"; remove it, or set framework = \"command\"",
            )),
            (_, true) => {}
        }

        for name in app.env.keys() {
            if RESERVED_ENV.contains(&name.as_str()) || name.starts_with("PORTICO_DRIVE_") {
                problems.push(Problem::new(
                    format!("apps[{i}].env.{name}"),
                    "is set by Portico for every replica; remove it".to_string(),
                ));
            } else if !is_env_name(name) {
                problems.push(Problem::new(
                    format!("apps[{i}].env.{name}"),
                    "is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                ));
            }
        }

        if let Some(path) = &app.health_path {
            if !path.starts_with('/') {
                problems.push(Problem::new(
                    key("health_path"),
                    format!("= \"{path}\" must start with '/', e.g. \"/health\""),
                ));
            }
        }

        let access = access(&key("access"), app.access.as_ref(), problems);
        let owners = super::deploy::owners(&key("owners"), app.owners.as_ref(), problems);
        let webhook = super::deploy::webhook(&key("webhook"), app.webhook, problems);
        let lists = app.firewall.unwrap_or_default();
        let firewall = IpRules {
            allow: nets(&key("firewall.allow"), &lists.allow, problems),
            deny: nets(&key("firewall.deny"), &lists.deny, problems),
        };
        let per_user = super::instances::per_user(
            &format!("apps[{i}]"),
            app.mode,
            app.per_user,
            app.scale.is_some(),
            access == crate::Access::Public,
            profiles,
            problems,
        );
        let scale = scale(&key("scale"), app.scale.unwrap_or_default(), problems);
        let volumes = super::volumes::volumes(
            &format!("apps[{i}]"),
            app.volumes,
            per_user.is_some(),
            drives,
            problems,
        );
        apps.push(AppSpec {
            access,
            owners,
            webhook,
            deployed_only: false,
            firewall,
            scale,
            per_user,
            max_body_bytes: app.max_body_bytes,
            frame_ancestors: frame_ancestors(
                &key("frame_ancestors"),
                app.frame_ancestors,
                problems,
            ),
            title: app.title.unwrap_or_else(|| app.name.clone()),
            name: app.name,
            description: app.description,
            source,
            framework: app.framework,
            entrypoint: app.entrypoint,
            env: app.env,
            command: app.command,
            health_path: app.health_path,
            runtime,
            image: app.image,
            container,
            volumes,
        });
    }
    apps
}

/// Origins (`https://intranet.example.com`) or `*`; anything that could break out of the
/// header (spaces, `;`, quotes) is refused.
/// Replicas one app may run.
const MAX_REPLICAS: u32 = 64;

fn scale(key: &str, raw: raw::Scale, problems: &mut Vec<Problem>) -> ScaleSpec {
    let defaults = ScaleSpec::default();
    let min = raw.min.unwrap_or(defaults.min);
    if min > MAX_REPLICAS {
        problems.push(Problem::new(
            format!("{key}.min"),
            format!(
                "= {min} is out of range; write 0 (sleep while unused) to {MAX_REPLICAS}, e.g. 2"
            ),
        ));
    }
    let min = min.min(MAX_REPLICAS);
    // An app that may sleep still needs one replica when it is used.
    let floor = min.max(1);
    let max = raw.max.unwrap_or(floor);
    if !(floor..=MAX_REPLICAS).contains(&max) {
        problems.push(Problem::new(
            format!("{key}.max"),
            format!("= {max} is out of range; write {floor} to {MAX_REPLICAS}"),
        ));
    }
    let max = max.clamp(floor, MAX_REPLICAS);
    let warm = raw.warm.unwrap_or(defaults.warm);
    if warm > max {
        problems.push(Problem::new(
            format!("{key}.warm"),
            format!("= {warm} is more than max ({max}); write how many idle replicas to keep ready, 0 to {max}"),
        ));
    }
    let idle_timeout = seconds(
        &format!("{key}.idle_timeout_secs"),
        raw.idle_timeout_secs,
        defaults.idle_timeout,
        1..=86_400,
        problems,
    );
    let start_wait = seconds(
        &format!("{key}.start_wait_secs"),
        raw.start_wait_secs,
        defaults.start_wait,
        1..=600,
        problems,
    );
    let sessions = raw
        .sessions_per_replica
        .unwrap_or(defaults.sessions_per_replica);
    if sessions == 0 {
        problems.push(Problem::new(
            format!("{key}.sessions_per_replica"),
            "= 0 would need infinitely many replicas; write how many sessions one replica serves well, e.g. 20",
        ));
    }
    let target = raw
        .target_utilization
        .unwrap_or(defaults.target_utilization);
    if !(target > 0.0 && target <= 1.0) {
        problems.push(Problem::new(
            format!("{key}.target_utilization"),
            format!("= {target} is out of range; write a fraction above 0 and at most 1, e.g. 0.8 (scale out when replicas are 80 % full)"),
        ));
    }
    ScaleSpec {
        min,
        max,
        warm: warm.min(max),
        idle_timeout,
        start_wait,
        sessions_per_replica: sessions.max(1),
        target_utilization: if target > 0.0 && target <= 1.0 {
            target
        } else {
            defaults.target_utilization
        },
        scale_down_delay: raw
            .scale_down_delay_secs
            .map_or(defaults.scale_down_delay, Duration::from_secs),
    }
}

fn frame_ancestors(key: &str, origins: Vec<String>, problems: &mut Vec<Problem>) -> Vec<String> {
    for (i, origin) in origins.iter().enumerate() {
        let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
        let clean = !origin.is_empty()
            && origin
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'\'' | b'"'));
        if !(origin == "*" || (scheme_ok && clean)) {
            problems.push(Problem::new(
                format!("{key}[{i}]"),
                format!("= \"{origin}\" is not an origin; write e.g. \"https://intranet.example.com\", or \"*\" for any site"),
            ));
        }
    }
    origins
}

fn firewall(raw: raw::Firewall, problems: &mut Vec<Problem>) -> FirewallConfig {
    FirewallConfig {
        rules: IpRules {
            allow: nets("firewall.allow", &raw.allow, problems),
            deny: nets("firewall.deny", &raw.deny, problems),
        },
        trusted_proxies: nets("firewall.trusted_proxies", &raw.trusted_proxies, problems),
    }
}

/// Addresses and CIDR blocks, each wrong one a problem naming its place in the list.
fn nets(key: &str, texts: &[String], problems: &mut Vec<Problem>) -> Vec<ipnet::IpNet> {
    texts
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let net = crate::firewall::parse_net(text);
            if net.is_none() {
                problems.push(Problem::new(
                    format!("{key}[{i}]"),
                    format!("= \"{text}\" is not an address or CIDR block; write e.g. \"10.0.0.0/8\", \"192.0.2.7\" or \"2001:db8::/32\""),
                ));
            }
            net
        })
        .collect()
}

fn socket_addr(key: &str, text: &str, problems: &mut Vec<Problem>) -> SocketAddr {
    text.parse().unwrap_or_else(|_| {
        problems.push(Problem::new(
            key,
            format!("= \"{text}\" is not an address and port; write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
        ));
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

/// RFC 1123 label, lowercase only so that one app has exactly one host name.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain
            .split('.')
            .all(|label| is_dns_label(&label.to_ascii_lowercase()))
}

fn suggest_label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(63).collect();
    if out.is_empty() {
        "my-dashboard".into()
    } else {
        out
    }
}

fn is_inside(relative: &str) -> bool {
    let path = Path::new(relative);
    !relative.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
