//! Container images from app folders, without the analyst writing a Dockerfile.
//!
//! The app's own `Dockerfile` wins when there is one. Otherwise Portico writes one from its
//! framework's template into the build context (under `.portico/`), starting from the base
//! image configured for the framework. The requirements are copied and installed before the
//! app's files, so that the daemon's layer cache skips the install while the requirements
//! are unchanged.
//!
//! The context is the app folder, filtered by its `.dockerignore` the way Docker filters it
//! (patterns anchored at the folder, `!` re-includes, the last match decides), packed
//! deterministically (no times or owners) so that its hash names the content: the image is
//! tagged `portico/<app>:<hash>` and not built again while nothing changed.

use crate::detect::{Detected, DOCKERFILE};
use crate::docker::{DockerClient, DockerError};
use crate::env::EnvBuilder;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;
use portico_core::config::DockerConfig;
use portico_core::{AppSpec, Framework};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the generated files sit in the build context.
const GENERATED_DIR: &str = ".portico";
/// Lines of the build's output a failure quotes.
const ERROR_TAIL_LINES: usize = 25;
/// The user generated images run as (a home in `/home/portico`).
pub const IMAGE_USER_ID: u32 = 1000;

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `portico/<app>:<content hash>`.
    pub tag: String,
    /// Whether the app's own Dockerfile made it (then it starts with the image's command).
    pub own_dockerfile: bool,
}

/// Why an image could not be built; the message quotes the build's own words.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot pack the app's folder {}: {message}", dir.display())]
    Context { dir: PathBuf, message: String },
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("the image build failed: {error}\nIts last output:\n{output}")]
    Failed { error: String, output: String },
    #[error("the image build took longer than docker.build_timeout_secs ({0}s)")]
    TimedOut(u64),
}

/// Builds images on one daemon.
pub struct ImageBuilder {
    client: Arc<DockerClient>,
    config: DockerConfig,
}

impl ImageBuilder {
    pub fn new(client: Arc<DockerClient>, config: DockerConfig) -> ImageBuilder {
        ImageBuilder { client, config }
    }

    /// Whether the daemon has this image.
    pub async fn exists(&self, tag: &str) -> bool {
        match self.client.get().await {
            Ok(docker) => docker.inspect_image(tag).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Removes an image no release needs any more. An image a container still runs (or the
    /// daemon away) is left for a later prune; that is said in Portico's log only.
    pub async fn remove(&self, tag: &str) {
        let removed = match self.client.get().await {
            Ok(docker) => docker
                .remove_image(
                    tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match removed {
            Ok(()) => tracing::info!("removed the image {tag}: no kept release uses it"),
            Err(e) => tracing::info!("kept the image {tag} for now: {e}"),
        }
    }

    /// Builds (or finds already built) the image of an app, appending the build's output to
    /// `log_path`.
    pub async fn build(
        &self,
        app: &AppSpec,
        detected: &Detected,
        log_path: &Path,
    ) -> Result<BuiltImage, ImageError> {
        let own_dockerfile = app.source.join(DOCKERFILE).is_file();
        let generated = if own_dockerfile {
            Vec::new()
        } else {
            self.generated_files(detected)
                .map_err(|message| ImageError::Context {
                    dir: app.source.clone(),
                    message,
                })?
        };
        let source = app.source.clone();
        let (context, digest) =
            tokio::task::spawn_blocking(move || pack_context(&source, &generated))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map_err(|message| ImageError::Context {
                    dir: app.source.clone(),
                    message,
                })?;
        let tag = format!("portico/{}:{}", app.name, &digest[..12]);
        let docker = self.client.get().await?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| ImageError::Context {
                dir: log_path.to_owned(),
                message: e.to_string(),
            })?;
        if docker.inspect_image(&tag).await.is_ok() {
            let _ = writeln!(log, "[portico] image {tag} is up to date");
            return Ok(BuiltImage {
                tag,
                own_dockerfile,
            });
        }
        let which = if own_dockerfile {
            "the app's own Dockerfile".to_owned()
        } else {
            format!("Portico's {} template", detected.framework.config_name())
        };
        let _ = writeln!(log, "[portico] building image {tag} from {which}");
        let options = BuildImageOptions {
            dockerfile: if own_dockerfile {
                DOCKERFILE.to_owned()
            } else {
                format!("{GENERATED_DIR}/{DOCKERFILE}")
            },
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([(
                "portico.app".to_owned(),
                app.name.clone(),
            )])),
            ..Default::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(context));
        let mut error = None;
        let mut output = docker.build_image(options, None, Some(body));
        let deadline = tokio::time::Instant::now() + self.config.build_timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, output.next()).await;
            let Ok(next) = next else {
                let _ = writeln!(log, "[portico] build timed out");
                return Err(ImageError::TimedOut(self.config.build_timeout.as_secs()));
            };
            match next {
                None => break,
                Some(Ok(info)) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        let _ = log.write_all(text.as_bytes());
                        if !text.ends_with('\n') {
                            let _ = log.write_all(b"\n");
                        }
                    }
                    let failed = info.error_detail.and_then(|d| d.message);
                    if let Some(message) = failed {
                        let _ = writeln!(log, "{message}");
                        error = Some(message);
                    }
                }
                Some(Err(e)) => {
                    let e = self.client.fail(e).await;
                    let _ = writeln!(log, "{e}");
                    match e {
                        DockerError::Unavailable { .. } => return Err(e.into()),
                        DockerError::Refused { message, .. } => error = Some(message),
                    }
                }
            }
        }
        if let Some(error) = error {
            let _ = writeln!(log, "[portico] the build of {tag} failed");
            return Err(ImageError::Failed {
                error,
                output: last_lines(log_path, ERROR_TAIL_LINES),
            });
        }
        let _ = writeln!(log, "[portico] built image {tag}");
        Ok(BuiltImage {
            tag,
            own_dockerfile,
        })
    }

    /// The Dockerfile and the files it copies, for an app without its own.
    fn generated_files(&self, detected: &Detected) -> Result<Vec<(String, Vec<u8>)>, String> {
        let framework = detected.framework;
        let base = self.config.base_image(framework);
        let mut files = Vec::new();
        let ca = match &self.config.build_ca_bundle {
            Some(path) => {
                let bundle = std::fs::read(path).map_err(|e| {
                    format!("cannot read docker.build_ca_bundle {}: {e}", path.display())
                })?;
                files.push((format!("{GENERATED_DIR}/build-ca.crt"), bundle));
                true
            }
            None => false,
        };
        let dockerfile = if framework == Framework::RShiny {
            r_shiny_dockerfile(base)
        } else {
            let requirements =
                EnvBuilder::requirements_text(framework, detected.requirements.as_deref())
                    .map_err(|e| e.to_string())?;
            files.push((
                format!("{GENERATED_DIR}/requirements.txt"),
                requirements.into_bytes(),
            ));
            files.push((
                format!("{GENERATED_DIR}/portico_wsgi.py"),
                crate::launch::WSGI_RUNNER.as_bytes().to_vec(),
            ));
            python_dockerfile(framework, base, ca)
        };
        files.push((
            format!("{GENERATED_DIR}/{DOCKERFILE}"),
            dockerfile.into_bytes(),
        ));
        Ok(files)
    }
}

/// Python dashboards: a virtual environment in `/opt/venv` with the requirements (a layer of
/// its own, before the app's files), Portico's runner in `/opt/portico`, the app in `/app`,
/// run as an unprivileged user.
fn python_dockerfile(framework: Framework, base: &str, ca: bool) -> String {
    let (copy_ca, with_ca) = if ca {
        (
            format!("COPY {GENERATED_DIR}/build-ca.crt /opt/portico/build-ca.crt\n"),
            "PIP_CERT=/opt/portico/build-ca.crt ",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "# Generated by Portico for a {name} dashboard. To change it, put your own Dockerfile in\n\
         # the app's folder: Portico then builds that instead.\n\
         FROM {base}\n\
         ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore\n\
         RUN (id -u {IMAGE_USER_ID} >/dev/null 2>&1 || useradd --create-home --home-dir /home/portico --uid {IMAGE_USER_ID} --shell /bin/sh portico) \\\n \
            && python3 -m venv /opt/venv\n\
         ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv HOME=/home/portico\n\
         {copy_ca}\
         COPY {GENERATED_DIR}/requirements.txt /opt/portico/requirements.txt\n\
         RUN {with_ca}pip install --requirement /opt/portico/requirements.txt\n\
         COPY {GENERATED_DIR}/portico_wsgi.py /opt/portico/portico_wsgi.py\n\
         WORKDIR /app\n\
         COPY --chown={IMAGE_USER_ID}:{IMAGE_USER_ID} . /app\n\
         USER {IMAGE_USER_ID}\n",
        name = framework.config_name(),
    )
}

/// R-Shiny dashboards: the base image brings R and its packages (the Rocker project's
/// `rocker/shiny`, or an organisation's own with its packages installed).
fn r_shiny_dockerfile(base: &str) -> String {
    format!(
        "# Generated by Portico for an R-Shiny dashboard. To change it, put your own Dockerfile\n\
         # in the app's folder: Portico then builds that instead.\n\
         FROM {base}\n\
         WORKDIR /app\n\
         COPY . /app\n\
         USER {IMAGE_USER_ID}\n"
    )
}

/// Packs the app folder (minus what `.dockerignore` excludes) and the generated files into
/// a tar archive; returns it with the hash of its content.
fn pack_context(dir: &Path, generated: &[(String, Vec<u8>)]) -> std::io::Result<(Vec<u8>, String)> {
    let ignore = dockerignore(dir)?;
    let mut file = tempfile::tempfile()?;
    {
        let mut tar = tar::Builder::new(&mut file);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let mut entries: Vec<_> =
                std::fs::read_dir(dir.join(&relative))?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = relative.join(entry.file_name());
                let is_dir = entry.file_type()?.is_dir();
                if path.starts_with(GENERATED_DIR) || ignore.matched(&path, is_dir).is_ignore() {
                    continue;
                }
                tar.append_path_with_name(entry.path(), &path)?;
                if is_dir {
                    pending.push(path);
                }
            }
        }
        for (name, content) in generated {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            tar.append_data(&mut header, name, content.as_slice())?;
        }
        tar.finish()?;
    }
    file.rewind()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    let digest = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, digest))
}

/// The folder's `.dockerignore`, its patterns anchored at the folder as Docker reads them.
fn dockerignore(dir: &Path) -> std::io::Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    if let Ok(text) = std::fs::read_to_string(dir.join(".dockerignore")) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pattern) = match line.strip_prefix('!') {
                Some(rest) => ("!", rest.trim()),
                None => ("", line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
            builder
                .add_line(None, &format!("{negate}/{pattern}"))
                .map_err(|e| std::io::Error::other(format!(".dockerignore: {e}")))?;
        }
    }
    builder
        .build()
        .map_err(|e| std::io::Error::other(format!(".dockerignore: {e}")))
}

fn last_lines(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(archive: &[u8]) -> Vec<String> {
        tar::Archive::new(archive)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_context_honours_dockerignore_and_is_named_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("app.py", "print(1)"),
            ("data/big.csv", "x"),
            ("data/keep.csv", "y"),
            ("notes/secret.txt", "z"),
            (
                ".dockerignore",
                "# comment\ndata/*.csv\n!data/keep.csv\n/notes\n*.pyc\n**/*.log\n",
            ),
            // As in Docker, `*.pyc` is anchored at the top: only `**/` reaches further down.
            ("sub/x.pyc", ""),
            ("sub/run.log", ""),
        ] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let generated = vec![(".portico/Dockerfile".to_owned(), b"FROM x\n".to_vec())];
        let (archive, digest) = pack_context(dir.path(), &generated).unwrap();
        let mut listed = names(&archive);
        listed.sort();
        assert_eq!(
            listed,
            [
                ".dockerignore",
                ".portico/Dockerfile",
                "app.py",
                "data",
                "data/keep.csv",
                "sub",
                "sub/x.pyc"
            ]
        );
        // Touching a file changes nothing; changing its content does.
        let again = pack_context(dir.path(), &generated).unwrap().1;
        assert_eq!(again, digest);
        std::fs::write(dir.path().join("app.py"), "print(2)").unwrap();
        assert_ne!(pack_context(dir.path(), &generated).unwrap().1, digest);
    }

    #[test]
    fn requirements_are_installed_before_the_apps_files_are_copied() {
        let text = python_dockerfile(Framework::Streamlit, "python:3.12-slim", true);
        let install = text.find("pip install").unwrap();
        assert!(text.find("COPY .portico/requirements.txt").unwrap() < install);
        assert!(install < text.find("COPY --chown=1000:1000 . /app").unwrap());
        assert!(text.contains("PIP_CERT=/opt/portico/build-ca.crt pip install"));
        assert!(text.starts_with("# Generated by Portico for a streamlit dashboard"));
        assert!(text.contains("FROM python:3.12-slim\n"));
    }
}
