//! What can go wrong while applying, watching or removing a docker stack, each
//! message saying what failed, for which container or stack, and what to do.

use thiserror::Error;

/// An error from the docker backend.
#[derive(Debug, Error)]
pub enum DockerError {
    /// No Docker engine answered.
    #[error(
        "cannot reach the Docker engine ({detail}). Start Docker, point DOCKER_HOST at a \
         running engine, or use `backend: embedded` to run without Docker"
    )]
    NoEngine { detail: String },

    /// A Docker API call failed.
    #[error("could not {action} `{target}`: {source}")]
    Api {
        action: &'static str,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// Images of the stack are neither present locally nor pullable.
    #[error(
        "stack `{stack}` needs images that are not available locally and could not be \
         pulled; nothing was created:\n{}",
        list(missing)
    )]
    ImagesMissing {
        stack: String,
        missing: Vec<MissingImage>,
    },

    /// A published host port is taken by another process or container.
    #[error(
        "host port {port} for container `{container}` is already in use. Stop whatever \
         holds it, choose another port, or set `port: auto` to let Docker pick a free one"
    )]
    PortInUse { port: String, container: String },

    /// A name katotune wants is held by something that is not part of this stack.
    #[error(
        "a {kind} named `{name}` already exists and is not part of stack `{stack}`; \
         katotune never touches it. Remove or rename it, or choose another stack name"
    )]
    NameTaken {
        kind: &'static str,
        name: String,
        stack: String,
    },

    /// A container stopped while the stack was starting.
    #[error(
        "container `{container}` of stack `{stack}` exited with code {exit_code}{error}.\n\
         Last log lines of the stack:\n{logs}"
    )]
    ContainerExited {
        container: String,
        stack: String,
        exit_code: i64,
        error: String,
        logs: String,
    },

    /// A container's health check failed.
    #[error(
        "container `{container}` of stack `{stack}` is unhealthy (last check: {last_check}).\n\
         Last log lines of the stack:\n{logs}"
    )]
    Unhealthy {
        container: String,
        stack: String,
        last_check: String,
        logs: String,
    },

    /// The stack did not become healthy in time.
    #[error(
        "stack `{stack}` was not healthy after {waited}; still waiting for: {pending}. \
         Raise the health timeout if the stack is just slow.\n\
         Last log lines of the stack:\n{logs}"
    )]
    HealthTimeout {
        stack: String,
        waited: String,
        pending: String,
        logs: String,
    },

    /// A container the plan names does not exist (apply was not run, or it was removed).
    #[error(
        "container `{container}` of stack `{stack}` does not exist or was never started; \
         run `katotune apply` first"
    )]
    NotApplied { container: String, stack: String },

    /// The API service publishes no port on the host.
    #[error(
        "service `{service}` of stack `{stack}` publishes no host port for container port \
         {port}; add a `ports` entry for it to the template"
    )]
    NoPublishedPort {
        service: String,
        stack: String,
        port: String,
    },

    /// The plan is inconsistent (should have been caught by render).
    #[error("stack plan `{stack}` is invalid: {problem}")]
    BadPlan { stack: String, problem: String },

    /// An image build failed.
    #[error("could not build image `{tag}`: {message}")]
    Build { tag: String, message: String },

    /// A local file could not be read.
    #[error("could not read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One image `apply` could not find or pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingImage {
    pub image: String,
    /// The containers that use it.
    pub containers: Vec<String>,
    /// Why the pull failed.
    pub reason: String,
    /// How to get the image instead.
    pub hint: String,
}

fn list(missing: &[MissingImage]) -> String {
    let lines: Vec<String> = missing
        .iter()
        .map(|m| {
            format!(
                "  - `{}` (for {}): {}. {}",
                m.image,
                m.containers.join(", "),
                m.reason,
                m.hint
            )
        })
        .collect();
    lines.join("\n")
}

impl DockerError {
    /// Wraps a bollard error with the action and the object it was about.
    pub(crate) fn api(
        action: &'static str,
        target: &str,
    ) -> impl FnOnce(bollard::errors::Error) -> Self {
        let target = target.to_string();
        move |source| DockerError::Api {
            action,
            target,
            source,
        }
    }
}

/// True when the engine answered 404 (no such container, image, network or volume).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
