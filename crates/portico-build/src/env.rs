//! Python environments: one isolated environment per distinct set of requirements, built once
//! and cached by content hash, so the second start of an app is only as slow as the app.
//!
//! An environment is built in place at `<cache>/<digest>` under an exclusive file lock, and
//! marked complete only when the install succeeded; a folder without the mark is a leftover
//! of an interrupted build and is rebuilt. Building in place (rather than building elsewhere
//! and renaming) matters because virtual environments are not relocatable.

use portico_core::config::{BuildConfig, Installer};
use portico_core::Framework;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Written inside an environment once it is complete.
const READY_MARK: &str = ".portico-ready";
/// How many lines of installer output an error carries.
const ERROR_TAIL_LINES: usize = 25;

/// A ready Python environment.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    pub dir: PathBuf,
    /// The content hash that names it; recorded with the release.
    pub digest: String,
}

impl PythonEnv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }
}

/// Why an environment could not be built. Messages carry the installer's own words.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read {}: {source}", path.display())]
    ReadRequirements {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run `{tool}`: {source}. {fix}")]
    Tool {
        tool: String,
        source: std::io::Error,
        fix: &'static str,
    },
    #[error("installing the Python requirements failed ({step} exited with {status}):\n{output}")]
    Install {
        step: String,
        status: String,
        output: String,
    },
    #[error("environment cache {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds and caches Python environments.
pub struct EnvBuilder {
    config: BuildConfig,
    /// One build at a time per digest within this process (the file lock covers other
    /// processes, but blocks a thread, so in-process waiters queue here instead).
    in_progress: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The packages installed for a framework when the app has no requirements.txt.
fn default_packages(framework: Framework) -> &'static [&'static str] {
    match framework {
        Framework::Streamlit => &["streamlit"],
        Framework::Dash => &["dash"],
        Framework::Flask => &["flask"],
        Framework::Shiny => &["shiny"],
        Framework::Panel => &["panel"],
        Framework::Gradio => &["gradio"],
        Framework::Voila => &["voila"],
        Framework::RShiny | Framework::Command => &[],
    }
}

/// Packages Portico itself needs to serve the framework (its production server).
fn serving_packages(framework: Framework) -> &'static [&'static str] {
    match framework {
        Framework::Flask | Framework::Dash => &["gunicorn"],
        _ => &[],
    }
}

impl EnvBuilder {
    pub fn new(config: BuildConfig) -> EnvBuilder {
        EnvBuilder {
            config,
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache_dir(&self) -> &Path {
        &self.config.cache_dir
    }

    /// The requirements text an app's environment is built from.
    pub fn requirements_text(
        framework: Framework,
        requirements: Option<&Path>,
    ) -> Result<String, EnvError> {
        let mut text = match requirements {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| EnvError::ReadRequirements {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => default_packages(framework).join("\n"),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        for package in serving_packages(framework) {
            text.push_str(package);
            text.push('\n');
        }
        Ok(text)
    }

    /// The cache key: the requirements, the interpreter, and (when the requirements refer to
    /// local paths, which resolve against it) the app folder.
    pub fn digest(&self, requirements: &str, app_dir: &Path) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.config.python.as_bytes());
        hasher.update([0]);
        hasher.update(requirements.as_bytes());
        let refers_to_local_paths = requirements.lines().map(str::trim_start).any(|l| {
            l.starts_with("-e") || l.starts_with('.') || l.starts_with('/') || l.contains("file:")
        });
        if refers_to_local_paths {
            hasher.update([0]);
            hasher.update(app_dir.as_os_str().as_encoded_bytes());
        }
        hex::encode(&hasher.finalize()[..10])
    }

    /// Returns a ready environment for these requirements, building it when not cached.
    /// Installer output is appended to `log`.
    pub async fn ensure(
        &self,
        requirements: &str,
        app_dir: &Path,
        log: &Path,
    ) -> Result<PythonEnv, EnvError> {
        let digest = self.digest(requirements, app_dir);
        let dir = self.config.cache_dir.join(&digest);
        let env = PythonEnv {
            dir: dir.clone(),
            digest: digest.clone(),
        };
        if dir.join(READY_MARK).is_file() {
            return Ok(env);
        }

        let turn = {
            let mut map = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(digest.clone()).or_default().clone()
        };
        let _turn = turn.lock().await;
        let cache = self.config.cache_dir.clone();
        std::fs::create_dir_all(&cache).map_err(|source| EnvError::Cache {
            path: cache.clone(),
            source,
        })?;
        let lock_path = cache.join(format!("{digest}.lock"));
        let _file_lock = tokio::task::spawn_blocking(move || lock_exclusive(&lock_path))
            .await
            .expect("lock task panicked")?;
        if dir.join(READY_MARK).is_file() {
            return Ok(env); // another process built it while we waited
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| EnvError::Cache {
                path: dir.clone(),
                source,
            })?;
        }
        let result = self.build(&dir, requirements, app_dir, log).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.map(|()| env)
    }

    async fn build(
        &self,
        dir: &Path,
        requirements: &str,
        app_dir: &Path,
        log: &Path,
    ) -> Result<(), EnvError> {
        let requirements_file = self.config.cache_dir.join(format!(
            "{}.requirements.txt",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&requirements_file, requirements).map_err(|source| EnvError::Cache {
            path: requirements_file.clone(),
            source,
        })?;
        let python = &self.config.python;
        let use_uv = match self.config.installer {
            Installer::Uv => true,
            Installer::Pip => false,
            Installer::Auto => which("uv").is_some(),
        };
        let dir_s = dir.to_string_lossy().into_owned();
        let req_s = requirements_file.to_string_lossy().into_owned();
        let venv_python = dir.join("bin/python").to_string_lossy().into_owned();
        let steps: Vec<Vec<String>> = if use_uv {
            vec![
                strings(&["uv", "venv", "--quiet", "--python", python, &dir_s]),
                strings(&[
                    "uv",
                    "pip",
                    "install",
                    "--python",
                    &venv_python,
                    "-r",
                    &req_s,
                ]),
            ]
        } else {
            vec![
                strings(&[python, "-m", "venv", &dir_s]),
                strings(&[
                    &venv_python,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-r",
                    &req_s,
                ]),
            ]
        };
        for step in steps {
            run_step(&step, app_dir, log).await?;
        }
        let mark = dir.join(READY_MARK);
        std::fs::write(&mark, requirements).map_err(|source| EnvError::Cache { path: mark, source })
    }
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs one installer step with its output appended to the build log; on failure the error
/// carries the tail of that output, which is where pip and uv say what went wrong.
async fn run_step(step: &[String], cwd: &Path, log: &Path) -> Result<(), EnvError> {
    let shown = step.join(" ");
    let mut log_file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await
        .map_err(|source| EnvError::Cache {
            path: log.to_owned(),
            source,
        })?;
    let _ = log_file.write_all(format!("$ {shown}\n").as_bytes()).await;
    let output = Command::new(&step[0])
        .args(&step[1..])
        .current_dir(cwd)
        // Never let uv fetch an interpreter: use the one the operator configured.
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| EnvError::Tool {
            tool: step[0].clone(),
            source,
            fix: "Install it (Python 3 with venv, or `pip install uv`), or set build.python / build.installer",
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let _ = log_file.write_all(text.as_bytes()).await;
    if output.status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..].join("\n");
    Err(EnvError::Install {
        step: format!(
            "{} {}",
            step[0],
            step.get(1).map(String::as_str).unwrap_or("")
        )
        .trim()
        .to_owned(),
        status: output.status.to_string(),
        output: tail,
    })
}

fn lock_exclusive(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, EnvError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| EnvError::Cache {
            path: path.to_owned(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
        EnvError::Cache {
            path: path.to_owned(),
            source: errno.into(),
        }
    })
}

/// Finds a program on the PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(cache: &Path) -> EnvBuilder {
        EnvBuilder::new(BuildConfig {
            cache_dir: cache.to_owned(),
            python: "python3".into(),
            installer: Installer::Auto,
        })
    }

    #[test]
    fn same_requirements_share_an_environment_and_flask_gets_gunicorn() {
        let b = builder(Path::new("/tmp/cache"));
        let text = EnvBuilder::requirements_text(Framework::Flask, None).unwrap();
        assert_eq!(text, "flask\ngunicorn\n");
        assert_eq!(
            b.digest(&text, Path::new("/a")),
            b.digest(&text, Path::new("/b"))
        );
        assert_ne!(
            b.digest(&text, Path::new("/a")),
            b.digest("streamlit\n", Path::new("/a"))
        );
    }

    #[test]
    fn local_path_requirements_are_keyed_by_app_folder() {
        let b = builder(Path::new("/tmp/cache"));
        assert_ne!(
            b.digest("-e .\n", Path::new("/a")),
            b.digest("-e .\n", Path::new("/b"))
        );
    }

    #[tokio::test]
    async fn without_uv_an_environment_is_built_with_venv_and_pip_and_then_reused() {
        let cache = tempfile::tempdir().unwrap();
        let b = EnvBuilder::new(BuildConfig {
            cache_dir: cache.path().to_owned(),
            python: "python3".into(),
            installer: Installer::Pip,
        });
        let log = cache.path().join("build.log");
        let env = b
            .ensure("six\n", cache.path(), &log)
            .await
            .expect("pip installs six");
        let check = std::process::Command::new(env.python())
            .args(["-c", "import six"])
            .status()
            .unwrap();
        assert!(check.success(), "six importable in the new environment");
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("-m pip install"));
        // A second request for the same requirements reuses it without running pip again.
        let before = std::fs::metadata(&log).unwrap().len();
        let again = b.ensure("six\n", cache.path(), &log).await.unwrap();
        assert_eq!(again.dir, env.dir);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), before);
    }

    #[tokio::test]
    async fn a_failed_install_reports_the_installers_message_and_leaves_no_environment() {
        let cache = tempfile::tempdir().unwrap();
        let b = builder(cache.path());
        let log = cache.path().join("build.log");
        let requirements =
            "portico-missing-package @ file:///nonexistent/portico-missing-package\n";
        let error = b
            .ensure(requirements, cache.path(), &log)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("installing the Python requirements failed"),
            "{message}"
        );
        assert!(
            message.contains("nonexistent"),
            "installer output missing: {message}"
        );
        assert!(!cache
            .path()
            .join(b.digest(requirements, cache.path()))
            .exists());
        assert!(std::fs::read_to_string(&log).unwrap().contains("$ "));
    }
}
