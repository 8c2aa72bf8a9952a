//! Framework detection: what kind of dashboard is in a folder, and which file starts it.

use portico_core::config::RuntimeKind;
use portico_core::{AppSpec, Framework};
use std::fs;
use std::path::{Path, PathBuf};

/// An app's own container recipe; with the Docker runtime it wins over detection.
pub const DOCKERFILE: &str = "Dockerfile";

/// Python files tried, in order, when no entrypoint is configured.
const PYTHON_ENTRYPOINTS: &[&str] = &[
    "app.py",
    "main.py",
    "streamlit_app.py",
    "dashboard.py",
    "server.py",
    "wsgi.py",
];

/// Import names that identify a Python framework, in the order they are tried. Dash comes
/// before Flask because Dash apps often import Flask too; Streamlit, Gradio and Panel come
/// before both because they may embed either.
const PYTHON_IMPORTS: &[(&str, Framework)] = &[
    ("streamlit", Framework::Streamlit),
    ("gradio", Framework::Gradio),
    ("panel", Framework::Panel),
    ("dash", Framework::Dash),
    ("shiny", Framework::Shiny),
    ("flask", Framework::Flask),
];

/// What detection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub framework: Framework,
    /// Relative to the app folder; empty for `framework = "command"`.
    pub entrypoint: String,
    /// `requirements.txt` when the folder has one.
    pub requirements: Option<PathBuf>,
}

/// Why detection failed, in words that tell the user what to add.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DetectError {
    #[error(
        "cannot tell which framework the app in {} uses. Looked for: app.R, or ui.R with server.R (R-Shiny); \
         a Python entrypoint ({}) importing streamlit, dash, flask, shiny, panel or gradio; a notebook (*.ipynb, Voila). \
         Fix: add one of these, or set framework and entrypoint for this app in the config",
        dir.display(), PYTHON_ENTRYPOINTS.join(", ")
    )]
    Unknown { dir: PathBuf },
    #[error("framework = \"{}\" needs {needs} in {}, and there is none; add it or set entrypoint", framework.config_name(), dir.display())]
    MissingEntrypoint {
        framework: Framework,
        dir: PathBuf,
        needs: &'static str,
    },
}

/// Detects the framework and entrypoint of an app, honouring what the config already says.
pub fn detect(app: &AppSpec) -> Result<Detected, DetectError> {
    let dir = &app.source;
    let requirements = Some(dir.join("requirements.txt")).filter(|p| p.is_file());
    let found = |framework, entrypoint: String| Detected {
        framework,
        entrypoint,
        requirements: requirements.clone(),
    };

    // A container app's own image or Dockerfile says how it starts.
    let own_dockerfile = app.runtime == RuntimeKind::Docker
        && app.framework.is_none()
        && dir.join(DOCKERFILE).is_file();
    if app.image.is_some() || own_dockerfile {
        return Ok(found(Framework::Command, String::new()));
    }
    match app.framework {
        Some(Framework::Command) => return Ok(found(Framework::Command, String::new())),
        Some(Framework::RShiny) => {
            return r_entrypoint(dir, app.entrypoint.as_deref())
                .map(|e| found(Framework::RShiny, e))
                .ok_or(DetectError::MissingEntrypoint {
                    framework: Framework::RShiny,
                    dir: dir.clone(),
                    needs: "app.R, or ui.R with server.R",
                })
        }
        Some(Framework::Voila) => {
            return app
                .entrypoint
                .clone()
                .or_else(|| first_with_extension(dir, "ipynb"))
                .map(|e| found(Framework::Voila, e))
                .ok_or(DetectError::MissingEntrypoint {
                    framework: Framework::Voila,
                    dir: dir.clone(),
                    needs: "a notebook (*.ipynb)",
                })
        }
        Some(framework) => {
            return python_entrypoint(dir, app.entrypoint.as_deref())
                .map(|e| found(framework, e))
                .ok_or(DetectError::MissingEntrypoint {
                    framework,
                    dir: dir.clone(),
                    needs: "a Python entrypoint (app.py, main.py, …)",
                })
        }
        None => {}
    }

    if let Some(entry) = r_entrypoint(dir, app.entrypoint.as_deref()) {
        return Ok(found(Framework::RShiny, entry));
    }
    if let Some(entry) = python_entrypoint(dir, app.entrypoint.as_deref()) {
        let source = fs::read_to_string(dir.join(&entry)).unwrap_or_default();
        if let Some(framework) = framework_from_imports(&source) {
            return Ok(found(framework, entry));
        }
    }
    let notebook = app
        .entrypoint
        .clone()
        .filter(|e| e.ends_with(".ipynb"))
        .or_else(|| first_with_extension(dir, "ipynb"));
    if let Some(notebook) = notebook {
        return Ok(found(Framework::Voila, notebook));
    }
    Err(DetectError::Unknown { dir: dir.clone() })
}

fn r_entrypoint(dir: &Path, configured: Option<&str>) -> Option<String> {
    match configured {
        Some(entry) if entry.ends_with(".R") || entry.ends_with(".r") => Some(entry.to_owned()),
        Some(_) => None,
        None if dir.join("app.R").is_file() => Some("app.R".into()),
        None if dir.join("ui.R").is_file() && dir.join("server.R").is_file() => Some("ui.R".into()),
        None => None,
    }
}

fn python_entrypoint(dir: &Path, configured: Option<&str>) -> Option<String> {
    if let Some(entry) = configured {
        return entry.ends_with(".py").then(|| entry.to_owned());
    }
    if let Some(name) = PYTHON_ENTRYPOINTS
        .iter()
        .find(|name| dir.join(name).is_file())
    {
        return Some((*name).to_owned());
    }
    // A folder with exactly one Python file: that is the app.
    let mut python_files = files_with_extension(dir, "py");
    (python_files.len() == 1).then(|| python_files.remove(0))
}

/// The first framework whose package the source imports (`import x`, `import x.y`, `from x…`).
fn framework_from_imports(source: &str) -> Option<Framework> {
    let imported: Vec<&str> = source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("import ")
                .or_else(|| line.strip_prefix("from "))?;
            Some(
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or(""),
            )
        })
        .collect();
    PYTHON_IMPORTS
        .iter()
        .find(|(module, _)| imported.contains(module))
        .map(|(_, f)| *f)
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file() && e.path().extension().is_some_and(|x| x == extension))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn first_with_extension(dir: &Path, extension: &str) -> Option<String> {
    files_with_extension(dir, extension).into_iter().next()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn app_in(dir: &Path) -> AppSpec {
        AppSpec {
            name: "x".into(),
            title: "x".into(),
            description: String::new(),
            source: dir.to_owned(),
            framework: None,
            entrypoint: None,
            env: BTreeMap::new(),
            command: vec![],
            health_path: None,
            access: portico_core::Access::SignedIn,
            owners: Default::default(),
            webhook: None,
            deployed_only: false,
            firewall: Default::default(),
            max_body_bytes: None,
            frame_ancestors: vec![],
            scale: portico_core::ScaleSpec::default(),
            per_user: None,
            runtime: RuntimeKind::Process,
            image: None,
            container: Default::default(),
            volumes: Default::default(),
        }
    }

    fn detect_files(files: &[(&str, &str)]) -> Result<Detected, DetectError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        detect(&app_in(dir.path()))
    }

    #[test]
    fn each_framework_is_recognised_by_its_import() {
        let cases = [
            ("import streamlit as st\n", Framework::Streamlit),
            (
                "from dash import Dash, html\nimport flask\n",
                Framework::Dash,
            ),
            ("from flask import Flask\n", Framework::Flask),
            ("from shiny import App, ui\n", Framework::Shiny),
            ("import panel as pn\n", Framework::Panel),
            ("import gradio as gr\n", Framework::Gradio),
        ];
        for (source, framework) in cases {
            let found = detect_files(&[("app.py", source)]).unwrap();
            assert_eq!(found.framework, framework, "{source}");
            assert_eq!(found.entrypoint, "app.py");
        }
    }

    #[test]
    fn r_shiny_single_file_and_two_file_apps() {
        assert_eq!(
            detect_files(&[("app.R", "library(shiny)")])
                .unwrap()
                .framework,
            Framework::RShiny
        );
        let two = detect_files(&[("ui.R", ""), ("server.R", "")]).unwrap();
        assert_eq!(
            (two.framework, two.entrypoint.as_str()),
            (Framework::RShiny, "ui.R")
        );
    }

    #[test]
    fn a_notebook_is_served_with_voila() {
        let found = detect_files(&[("report.ipynb", "{}")]).unwrap();
        assert_eq!(
            (found.framework, found.entrypoint.as_str()),
            (Framework::Voila, "report.ipynb")
        );
    }

    #[test]
    fn a_lone_python_file_is_the_entrypoint_and_requirements_are_found() {
        let found = detect_files(&[
            ("sales.py", "import streamlit"),
            ("requirements.txt", "streamlit\n"),
        ])
        .unwrap();
        assert_eq!(found.entrypoint, "sales.py");
        assert!(found.requirements.is_some());
    }

    #[test]
    fn nothing_recognisable_lists_what_was_looked_for() {
        let error =
            detect_files(&[("notes.txt", "hello"), ("app.py", "import numpy\n")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("cannot tell which framework"), "{message}");
        assert!(
            message.contains("app.R, or ui.R with server.R"),
            "{message}"
        );
        assert!(
            message.contains("streamlit, dash, flask, shiny"),
            "{message}"
        );
        assert!(message.contains("Fix: "), "{message}");
    }
}
