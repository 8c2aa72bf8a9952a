//! Turning a folder into something runnable: detect the framework, build (and cache) the
//! Python environment, and produce the command that starts the dashboard behind Portico.

pub mod bundle;
pub mod detect;
pub mod docker;
pub mod env;
pub mod image;
pub mod launch;

pub use detect::{detect, DetectError, Detected};
pub use docker::{DockerClient, DockerError};
pub use env::{EnvBuilder, EnvError, PythonEnv};
pub use image::{BuiltImage, ImageBuilder, ImageError};
pub use launch::{
    image_launch, install_runners, launch_spec, mount_style, substitute_port, LaunchSpec, Place,
    PORT_PLACEHOLDER,
};
