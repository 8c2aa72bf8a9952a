//! The connection to the Docker daemon, shared by image builds and the Docker runtime.
//!
//! The API version is negotiated with the daemon on first use (Docker 20.10 speaks 1.41,
//! current daemons refuse versions that old), and again after the daemon was away: it may
//! have come back upgraded. Errors are sorted into "the daemon is not there" (Portico waits
//! for it) and "the daemon said no" (the request itself is wrong).

use bollard::Docker;
use portico_core::config::{DockerConfig, DockerEndpoint};
use tokio::sync::Mutex;

/// Seconds a request to the daemon may take to be answered (streams run on after).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Why a request to the daemon failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DockerError {
    /// No daemon answered: it is stopped, restarting, or the endpoint is wrong.
    #[error("the Docker daemon at {endpoint} does not answer ({cause}); start it (e.g. `systemctl start docker`) or correct docker.endpoint")]
    Unavailable { endpoint: String, cause: String },
    /// The daemon answered with an error.
    #[error("the Docker daemon refused: {message}")]
    Refused { status: u16, message: String },
}

impl DockerError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::Refused { status: 404, .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, DockerError::Refused { status: 409, .. })
    }
}

/// A connection to one daemon, made (and its API version agreed) on first use.
pub struct DockerClient {
    endpoint: DockerEndpoint,
    connected: Mutex<Option<Docker>>,
}

impl DockerClient {
    pub fn new(config: &DockerConfig) -> DockerClient {
        DockerClient {
            endpoint: config.endpoint.clone(),
            connected: Mutex::new(None),
        }
    }

    /// `unix:///var/run/docker.sock`, for messages.
    pub fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    /// The client, connecting and agreeing the API version if needed.
    pub async fn get(&self) -> Result<Docker, DockerError> {
        let mut connected = self.connected.lock().await;
        if let Some(docker) = connected.as_ref() {
            return Ok(docker.clone());
        }
        let docker = self.connect().map_err(|e| self.error(e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| self.error(e))?;
        *connected = Some(docker.clone());
        Ok(docker)
    }

    /// Sorts a failed request's error, forgetting the connection when the daemon is away
    /// (the next request negotiates afresh).
    pub async fn fail(&self, error: bollard::errors::Error) -> DockerError {
        let error = self.error(error);
        if matches!(error, DockerError::Unavailable { .. }) {
            *self.connected.lock().await = None;
        }
        error
    }

    fn connect(&self) -> Result<Docker, bollard::errors::Error> {
        let version = bollard::API_DEFAULT_VERSION;
        match &self.endpoint {
            DockerEndpoint::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, version)
            }
            DockerEndpoint::Tcp {
                address,
                tls: Some(tls),
            } => Docker::connect_with_ssl(
                address,
                &tls.key,
                &tls.cert,
                &tls.ca,
                REQUEST_TIMEOUT_SECS,
                version,
            ),
            DockerEndpoint::Tcp { address, tls: None } => Docker::connect_with_http(
                &format!("http://{address}"),
                REQUEST_TIMEOUT_SECS,
                version,
            ),
        }
    }

    fn error(&self, error: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error;
        match error {
            Error::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Refused {
                status: status_code,
                message: message.trim().to_owned(),
            },
            // An error the daemon reported inside a stream (a failed build step).
            Error::DockerStreamError { error } => DockerError::Refused {
                status: 500,
                message: error.trim().to_owned(),
            },
            Error::DockerContainerWaitError { error, code } => DockerError::Refused {
                status: 500,
                message: format!("{error} (status {code})"),
            },
            other => DockerError::Unavailable {
                endpoint: self.endpoint(),
                cause: root_cause(&other),
            },
        }
    }
}

/// The innermost cause, which names what actually failed ("Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
