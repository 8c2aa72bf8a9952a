//! `portico check`, and the validation `up` shares with it: the config file, then framework
//! detection for every app. Problems that stop Portico from starting are errors; problems
//! that only stop one app (a missing Rscript, say) are warnings, because the others still run.

use crate::config_path;
use portico_build::detect;
use portico_core::{Config, ConfigError, Framework, Problem};
use portico_fleet::PreparedApp;
use std::path::PathBuf;
use std::process::ExitCode;

pub struct Validated {
    pub config: Config,
    pub apps: Vec<PreparedApp>,
    pub warnings: Vec<String>,
}

/// Everything `up` needs to know before it binds a port or starts a process.
pub fn validate(explicit: Option<PathBuf>) -> Result<Validated, String> {
    let path = config_path::resolve(explicit)?;
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let mut apps = Vec::new();
    for (i, spec) in config.apps.iter().enumerate() {
        match detect(spec) {
            Ok(detected) => apps.push(PreparedApp {
                spec: spec.clone(),
                detected,
            }),
            Err(e) => problems.push(Problem::new(format!("apps[{i}].source"), e.to_string())),
        }
    }
    // Certificate files are read now, so a wrong key or a chain file holding no certificate
    // stops `check` as it would stop `up` (the development certificate is made by `up`).
    if let Some(tls) = &config.tls {
        if let portico_core::TlsSource::Files(files) = &tls.source {
            for (i, file) in files.iter().enumerate() {
                if let Err(e) = portico_edge::tls::load_files(file) {
                    problems.push(Problem::new(
                        format!("tls.certificates[{i}]"),
                        e.to_string(),
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: path,
            problems,
        }
        .to_string());
    }
    let mut warnings = Vec::new();
    let r_apps: Vec<&str> = apps
        .iter()
        .filter(|a| a.detected.framework == Framework::RShiny)
        .map(|a| a.spec.name.as_str())
        .collect();
    if !r_apps.is_empty() && portico_build::env::which("Rscript").is_none() {
        warnings.push(format!(
            "Rscript is not on the PATH, so {} cannot start (the other apps will). Install R and Shiny: apt-get install r-base-core r-cran-shiny",
            r_apps.join(", ")
        ));
    }
    if apps.iter().any(|a| a.detected.framework.is_python())
        && config.build.installer == portico_core::config::Installer::Auto
        && portico_build::env::which("uv").is_none()
    {
        warnings.push("uv is not on the PATH: Python environments will be built with python3 -m venv and pip, which is slower (pip install uv)".into());
    }
    Ok(Validated {
        config,
        apps,
        warnings,
    })
}

pub fn run(explicit: Option<PathBuf>) -> ExitCode {
    match validate(explicit) {
        Ok(validated) => {
            for warning in &validated.warnings {
                eprintln!("warning: {warning}");
            }
            let config = &validated.config;
            println!(
                "{}: ok, {} app(s)",
                config.path.display(),
                validated.apps.len()
            );
            for app in &validated.apps {
                println!(
                    "  {:<20} {:<17} {}",
                    app.spec.name,
                    app.detected.framework.display_name(),
                    app.spec.source.join(&app.detected.entrypoint).display()
                );
            }
            print_sign_in(config);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

/// The sign-in methods, with what to register at each provider.
fn print_sign_in(config: &Config) {
    let auth = &config.auth;
    if auth.oidc.is_empty() && auth.ldap.is_empty() && auth.saml.is_empty() {
        return;
    }
    let urls =
        portico_core::PublicUrls::new(&config.server.domain, config.server.listen.port(), false);
    let portal = urls.portal();
    println!("sign-in:");
    if auth.password_sign_in {
        println!("  Portico accounts     e-mail and password");
    }
    for oidc in &auth.oidc {
        println!(
            "  oidc:{:<15} {}: redirect URI {portal}_portico/sso/{}/callback, post-logout {portal}_portico/sign-in",
            oidc.common.id, oidc.issuer, oidc.common.id
        );
    }
    for saml in &auth.saml {
        let base = format!("{portal}_portico/saml/{}", saml.common.id);
        let entity_id = saml
            .entity_id
            .clone()
            .unwrap_or_else(|| format!("{base}/metadata"));
        println!(
            "  saml:{:<15} entity id {entity_id}, ACS {base}/acs (HTTP-POST), metadata {base}/metadata",
            saml.common.id
        );
    }
    for ldap in &auth.ldap {
        println!("  ldap:{:<15} {}", ldap.common.id, ldap.url);
    }
}
