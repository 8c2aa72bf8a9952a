//! The domain model shared by the control path and the request path.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The web framework a dashboard is written in. It decides how the dashboard is started and
/// how it is told the path prefix it is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    Streamlit,
    Dash,
    Flask,
    /// Shiny for Python.
    Shiny,
    /// R-Shiny, run with the system's `Rscript`.
    RShiny,
    Panel,
    Gradio,
    Voila,
    /// Any other web server: `command` in the app's config starts it on `$PORT`.
    Command,
}

impl Framework {
    /// Every framework, in the order detection tries them and docs list them.
    pub const ALL: [Framework; 9] = [
        Framework::Streamlit,
        Framework::Dash,
        Framework::Flask,
        Framework::Shiny,
        Framework::RShiny,
        Framework::Panel,
        Framework::Gradio,
        Framework::Voila,
        Framework::Command,
    ];

    /// The value written in `portico.toml` (`framework = "r-shiny"`).
    pub fn config_name(self) -> &'static str {
        match self {
            Framework::Streamlit => "streamlit",
            Framework::Dash => "dash",
            Framework::Flask => "flask",
            Framework::Shiny => "shiny",
            Framework::RShiny => "r-shiny",
            Framework::Panel => "panel",
            Framework::Gradio => "gradio",
            Framework::Voila => "voila",
            Framework::Command => "command",
        }
    }

    /// The name a person reads on the portal.
    pub fn display_name(self) -> &'static str {
        match self {
            Framework::Streamlit => "Streamlit",
            Framework::Dash => "Dash",
            Framework::Flask => "Flask",
            Framework::Shiny => "Shiny for Python",
            Framework::RShiny => "R-Shiny",
            Framework::Panel => "Panel",
            Framework::Gradio => "Gradio",
            Framework::Voila => "Voila",
            Framework::Command => "Command",
        }
    }

    pub fn from_config_name(name: &str) -> Option<Framework> {
        Framework::ALL.into_iter().find(|f| f.config_name() == name)
    }

    /// Whether the dashboard runs in a Python environment that Portico builds.
    pub fn is_python(self) -> bool {
        !matches!(self, Framework::RShiny | Framework::Command)
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// How a replica expects to see request paths; decides the edge's path rewriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountStyle {
    /// The app was started with its prefix (`/apps/<name>/`) and expects every request path
    /// to carry it: path-mode requests pass through, host-mode requests get it prepended.
    Prefixed,
    /// The app serves from `/` and uses relative URLs: path-mode requests have the prefix
    /// stripped, host-mode requests pass through.
    Root,
}

/// A signed-in person, as the request path sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    /// Lowercased; the account name.
    pub email: String,
    pub display_name: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

/// The address of the client that sent a request (set by the edge for the portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Identity {
    #[default]
    Anonymous,
    User(std::sync::Arc<User>),
}

impl Identity {
    pub fn user(&self) -> Option<&User> {
        match self {
            Identity::User(user) => Some(user),
            Identity::Anonymous => None,
        }
    }
}

/// The life of one replica, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaState {
    Starting,
    Ready,
    Exited,
    Stopping,
    Stopped,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Starting => "starting",
            ReplicaState::Ready => "ready",
            ReplicaState::Exited => "exited",
            ReplicaState::Stopping => "stopping",
            ReplicaState::Stopped => "stopped",
        }
    }

    /// Still running or on its way up or down (not yet ended).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReplicaState::Starting | ReplicaState::Ready | ReplicaState::Stopping
        )
    }

    pub fn parse(s: &str) -> Option<ReplicaState> {
        [
            ReplicaState::Starting,
            ReplicaState::Ready,
            ReplicaState::Exited,
            ReplicaState::Stopping,
            ReplicaState::Stopped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What a person sees about an app as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum AppStatus {
    /// Its environment is being prepared.
    Building,
    /// A replica is starting and none is ready yet.
    Starting,
    /// At least one replica is ready.
    Running,
    /// It cannot run until someone acts; the reason says what went wrong.
    Failed(String),
    /// Portico is shutting it down.
    Stopped,
    /// No replica runs because nobody uses it (`scale.min = 0`); the next request starts one.
    Sleeping,
}

impl AppStatus {
    pub fn label(&self) -> &'static str {
        match self {
            AppStatus::Building => "building",
            AppStatus::Starting => "starting",
            AppStatus::Running => "running",
            AppStatus::Failed(_) => "failed",
            AppStatus::Stopped => "stopped",
            AppStatus::Sleeping => "sleeping",
        }
    }
}
