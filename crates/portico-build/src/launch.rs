//! The command that starts a dashboard behind Portico: bound to loopback on the port the
//! runtime chose, headless, and told its path prefix the way its framework expects
//! (DESIGN.md, "Path prefixes").

use crate::detect::Detected;
use crate::env::PythonEnv;
use portico_core::urls::app_prefix;
use portico_core::{AppSpec, Framework, MountStyle};
use std::path::{Path, PathBuf};

/// Replaced by the runtime with the port it chose, in arguments and in `command`.
pub const PORT_PLACEHOLDER: &str = "$PORT";

/// Replaces `$PORT` and `${PORT}` with the port, leaving longer names that merely start with
/// it (`$PORTAL_URL`) alone, as a shell would.
pub fn substitute_port(text: &str, port: u16) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("${PORT}") {
            out.push_str(&port.to_string());
            rest = tail;
        } else if let Some(tail) = after
            .strip_prefix(PORT_PLACEHOLDER)
            .filter(|t| !t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        {
            out.push_str(&port.to_string());
            rest = tail;
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Everything a runtime needs to start one replica of an app.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    /// May contain [`PORT_PLACEHOLDER`].
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Probed for readiness; any answer below 500 means ready.
    pub health_path: String,
    pub mount: MountStyle,
    /// The container image it runs in (Docker runtime). `program` and `args` are then
    /// paths inside the image; an empty `program` runs the image's own command.
    pub image: Option<String>,
}

pub(crate) const WSGI_RUNNER: &str = include_str!("runners/portico_wsgi.py");

/// Writes the helper scripts Portico runs apps with into `dir`, returning the folder.
pub fn install_runners(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("portico_wsgi.py");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(WSGI_RUNNER) {
        std::fs::write(&path, WSGI_RUNNER)?;
    }
    Ok(dir.to_owned())
}

/// Whether a framework's dashboard is told its path prefix (and served under it) or served
/// at the root of its own host.
pub fn mount_style(framework: Framework) -> MountStyle {
    match framework {
        Framework::Streamlit
        | Framework::Dash
        | Framework::Flask
        | Framework::Panel
        | Framework::Voila => MountStyle::Prefixed,
        Framework::Shiny | Framework::RShiny | Framework::Gradio | Framework::Command => {
            MountStyle::Root
        }
    }
}

/// Where a dashboard runs, which decides the address it listens on and its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A local process: loopback only, in the app's folder, with Portico's `PATH`.
    Host,
    /// A container made from Portico's template: every address of the container (only
    /// Portico reaches its network), in `/app`, with the image's `PATH`.
    Container,
}

/// The app's folder inside a container built from Portico's template.
pub const CONTAINER_APP_DIR: &str = "/app";
/// The `PATH` of Debian-based images.
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Place {
    fn bind(self) -> &'static str {
        match self {
            Place::Host => "127.0.0.1",
            Place::Container => "0.0.0.0",
        }
    }

    fn base_path(self) -> String {
        match self {
            Place::Host => std::env::var("PATH").unwrap_or_default(),
            Place::Container => CONTAINER_PATH.to_owned(),
        }
    }

    fn cwd(self, app: &AppSpec) -> PathBuf {
        match self {
            Place::Host => app.source.clone(),
            Place::Container => PathBuf::from(CONTAINER_APP_DIR),
        }
    }
}

/// Builds the launch spec. `python` is the app's environment (absent for R-Shiny and
/// commands); `public_hosts` are the Host values browsers use for the app; `runners` is the
/// folder from [`install_runners`] (or its place in the image).
pub fn launch_spec(
    place: Place,
    app: &AppSpec,
    detected: &Detected,
    python: Option<&PythonEnv>,
    public_hosts: &[String],
    runners: &Path,
) -> LaunchSpec {
    let prefix = app_prefix(&app.name); // "/apps/<name>"
    let bind = place.bind();
    let bind_port = format!("{bind}:$PORT");
    let entry = detected.entrypoint.clone();
    let module = entry.trim_end_matches(".py").replace('/', ".");
    let py = python
        .map(PythonEnv::python)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let mut env: Vec<(String, String)> = vec![("PYTHONUNBUFFERED".into(), "1".into())];
    if let Some(python) = python {
        env.push((
            "VIRTUAL_ENV".into(),
            python.dir.to_string_lossy().into_owned(),
        ));
        let path = place.base_path();
        env.push((
            "PATH".into(),
            format!("{}:{path}", python.dir.join("bin").display()),
        ));
    }
    let args = |parts: &[&str]| parts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let gunicorn = |target: &str| {
        args(&[
            "-m",
            "gunicorn",
            "--bind",
            &bind_port,
            "--workers",
            "1",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            "--pythonpath",
            &runners.to_string_lossy(),
            target,
        ])
    };

    let (program, arguments, mount, health) = match detected.framework {
        Framework::Streamlit => (
            py,
            args(&[
                "-m", "streamlit", "run", &entry,
                "--server.address", bind, "--server.port", "$PORT",
                "--server.headless", "true", "--server.baseUrlPath", prefix.trim_start_matches('/'),
                "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
                "--global.developmentMode", "false",
            ]),
            MountStyle::Prefixed,
            format!("{prefix}/_stcore/health"),
        ),
        Framework::Dash => {
            env.push(("PORTICO_ENTRY_MODULE".into(), module));
            env.push(("DASH_URL_BASE_PATHNAME".into(), format!("{prefix}/")));
            (py, gunicorn("portico_wsgi:application"), MountStyle::Prefixed, format!("{prefix}/"))
        }
        Framework::Flask => {
            env.push(("PORTICO_ENTRY_MODULE".into(), module));
            // gunicorn strips SCRIPT_NAME from the path and Flask's url_for adds it back.
            env.push(("SCRIPT_NAME".into(), prefix.clone()));
            (py, gunicorn("portico_wsgi:application"), MountStyle::Prefixed, format!("{prefix}/"))
        }
        Framework::Shiny => (
            py,
            args(&["-m", "shiny", "run", "--host", bind, "--port", "$PORT", &entry]),
            MountStyle::Root,
            "/".into(),
        ),
        Framework::RShiny => (
            PathBuf::from("Rscript"),
            vec![
                "-e".to_owned(),
                format!("shiny::runApp('.', host = '{bind}', port = as.integer(Sys.getenv('PORT')), launch.browser = FALSE)"),
            ],
            MountStyle::Root,
            "/".into(),
        ),
        Framework::Panel => {
            let mut a = args(&[
                "-m", "panel", "serve", &entry, "--address", bind, "--port", "$PORT",
                "--prefix", prefix.trim_start_matches('/'), "--index", module.as_str(),
            ]);
            for host in public_hosts {
                a.push("--allow-websocket-origin".into());
                a.push(host.clone());
            }
            (py, a, MountStyle::Prefixed, format!("{prefix}/"))
        }
        Framework::Gradio => {
            env.push(("GRADIO_SERVER_NAME".into(), bind.into()));
            env.push(("GRADIO_SERVER_PORT".into(), PORT_PLACEHOLDER.into()));
            env.push(("GRADIO_ANALYTICS_ENABLED".into(), "False".into()));
            (py, vec![entry.clone()], MountStyle::Root, "/".into())
        }
        Framework::Voila => (
            py,
            args(&[
                "-m", "voila", &entry, "--no-browser", "--port=$PORT", &format!("--Voila.ip={bind}"),
                &format!("--Voila.base_url={prefix}/"),
            ]),
            MountStyle::Prefixed,
            format!("{prefix}/"),
        ),
        Framework::Command => {
            let (program, args) = app.command.split_first().map_or_else(
                || (PathBuf::new(), Vec::new()),
                |(program, args)| (PathBuf::from(program), args.to_vec()),
            );
            (program, args, MountStyle::Root, "/".into())
        }
    };
    env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    LaunchSpec {
        program,
        args: arguments,
        cwd: place.cwd(app),
        env,
        health_path: app.health_path.clone().unwrap_or(health),
        mount,
        image: None,
    }
}

/// How a ready-made image (`image = "…"`) is started: with the app's `command` if it has
/// one, else the image's own; served at the root of its host, probed at `health_path`
/// (default `/`).
pub fn image_launch(app: &AppSpec, image: &str) -> LaunchSpec {
    let (program, args) = match app.command.split_first() {
        Some((program, args)) => (PathBuf::from(program), args.to_vec()),
        None => (PathBuf::new(), Vec::new()),
    };
    LaunchSpec {
        program,
        args,
        cwd: app.source.clone(),
        env: app
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        health_path: app.health_path.clone().unwrap_or_else(|| "/".into()),
        mount: MountStyle::Root,
        image: Some(image.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::substitute_port;

    #[test]
    fn every_framework_launches_with_the_mount_style_it_is_routed_with() {
        use portico_core::Framework;
        let dir = tempfile::tempdir().unwrap();
        for framework in Framework::ALL {
            let mut app = crate::detect::tests::app_in(dir.path());
            app.command = vec!["./serve".into()];
            let detected = crate::Detected {
                framework,
                entrypoint: "app.py".into(),
                requirements: None,
            };
            let launch =
                super::launch_spec(super::Place::Host, &app, &detected, None, &[], dir.path());
            assert_eq!(launch.mount, super::mount_style(framework), "{framework:?}");
        }
    }

    #[test]
    fn only_the_port_variable_is_substituted() {
        assert_eq!(substitute_port("--port=$PORT", 8501), "--port=8501");
        assert_eq!(substitute_port("${PORT}/x $PORT", 1), "1/x 1");
        assert_eq!(
            substitute_port("$PORTAL_URL $PORT_2 $$ $", 9),
            "$PORTAL_URL $PORT_2 $$ $"
        );
        assert_eq!(substitute_port("no variables", 9), "no variables");
    }
}
