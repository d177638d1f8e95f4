//! katotune's own engine image: a `FROM scratch` image holding only the statically
//! linked katotune binary, built by the Docker engine from a build context made in
//! memory (no registry and no base image needed).

use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use serde::Serialize;

use crate::stack::docker::DockerError;

/// Label marking katotune's engine image.
pub const ENGINE_IMAGE_LABEL: &str = "io.katotune.image";
/// The rust target of the static build.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The Dockerfile of the engine image.
const ENGINE_DOCKERFILE: &str = r#"FROM scratch
COPY katotune /katotune
EXPOSE 8000
LABEL io.katotune.image=engine
HEALTHCHECK --interval=5s --timeout=5s --start-period=5s --retries=3 CMD ["/katotune","health","--url","http://127.0.0.1:8000"]
ENTRYPOINT ["/katotune","serve","--host","0.0.0.0","--port","8000"]
"#;

/// One file of a build context.
#[derive(Debug, Clone)]
pub struct ContextFile {
    /// Path inside the context, such as `katotune`.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// A built image as the engine reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageInfo {
    pub id: String,
    pub tag: String,
    pub size_bytes: i64,
    /// The image's health check command, if it has one.
    pub healthcheck: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub labels: std::collections::HashMap<String, String>,
}

/// Builds katotune's engine image from a statically linked katotune binary: the
/// image runs `katotune serve` on port 8000, checks itself with `katotune health`
/// and is labelled `io.katotune.image=engine`.
pub async fn build_engine_image(
    docker: &Docker,
    binary: &Path,
    tag: &str,
) -> Result<ImageInfo, DockerError> {
    let contents = std::fs::read(binary).map_err(|source| DockerError::Io {
        path: binary.display().to_string(),
        source,
    })?;
    if !is_static_executable(&contents) {
        return Err(DockerError::Build {
            tag: tag.to_string(),
            message: format!(
                "`{}` is not a statically linked x86-64 executable, so it cannot run in a \
                 FROM scratch image; build one with `{}`",
                binary.display(),
                static_build_command_line()
            ),
        });
    }
    let files = [ContextFile {
        path: "katotune".into(),
        contents,
        mode: 0o755,
    }];
    build_scratch_image(docker, tag, ENGINE_DOCKERFILE, &files).await
}

/// Builds an image from a Dockerfile and files, with the context made in memory.
/// The classic builder is used, so `FROM scratch` works on an engine without a
/// registry.
pub async fn build_scratch_image(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    files: &[ContextFile],
) -> Result<ImageInfo, DockerError> {
    let failed = |message: String| DockerError::Build {
        tag: tag.to_string(),
        message,
    };
    let context = build_context(dockerfile, files).map_err(|e| failed(e.to_string()))?;
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut steps = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = steps.next().await {
        let step = step.map_err(|e| failed(e.to_string()))?;
        if let Some(text) = step
            .stream
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            tracing::debug!(tag, "{text}");
        }
    }
    let image = docker
        .inspect_image(tag)
        .await
        .map_err(DockerError::api("inspect image", tag))?;
    let config = image.config.unwrap_or_default();
    Ok(ImageInfo {
        id: image.id.unwrap_or_default(),
        tag: tag.to_string(),
        size_bytes: image.size.unwrap_or_default(),
        healthcheck: config.healthcheck.and_then(|h| h.test),
        entrypoint: config.entrypoint,
        labels: config.labels.unwrap_or_default(),
    })
}

fn build_context(dockerfile: &str, files: &[ContextFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |path: &str, contents: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, contents)
    };
    append("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    for file in files {
        append(&file.path, &file.contents, file.mode)?;
    }
    builder.into_inner()
}

/// True for an x86-64 ELF executable without a dynamic loader (`PT_INTERP`), the
/// only kind that runs in an empty image.
pub fn is_static_executable(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read = |at: usize, len: usize| bytes.get(at..at + len);
    let le_u64 = |at| {
        read(at, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let le_u16 = |at| {
        read(at, 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    };
    let le_u32 = |at| {
        read(at, 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    // ELF magic, 64-bit, little endian, machine x86-64 (62).
    if read(0, 6) != Some(b"\x7fELF\x02\x01") || le_u16(0x12) != Some(62) {
        return false;
    }
    let (Some(phoff), Some(entsize), Some(count)) = (le_u64(0x20), le_u16(0x36), le_u16(0x38))
    else {
        return false;
    };
    (0..usize::from(count)).all(|i| {
        let at = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i * usize::from(entsize));
        le_u32(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

/// The command that builds a katotune binary fit for the engine image (fully
/// static glibc build; about 4 minutes on 2 cores). Run it in a katotune checkout;
/// the binary lands at [`static_binary_path`].
pub fn static_binary_build_command(target_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new("cargo");
    command
        .args(["build", "--release", "--target", STATIC_TARGET])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", target_dir);
    command
}

/// Where [`static_binary_build_command`] puts the binary.
pub fn static_binary_path(target_dir: &Path) -> PathBuf {
    target_dir
        .join(STATIC_TARGET)
        .join("release")
        .join("katotune")
}

/// The static build as one shell line, for messages.
pub fn static_build_command_line() -> String {
    format!(
        "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target {STATIC_TARGET}"
    )
}

#[cfg(test)]
mod tests {
    use super::is_static_executable;

    #[test]
    fn non_elf_files_are_not_static_executables() {
        assert!(!is_static_executable(b"#!/bin/sh\necho hi\n"));
        assert!(!is_static_executable(b""));
        assert!(!is_static_executable(b"\x7fELF\x02\x01\x01"));
    }

    #[test]
    fn a_dynamically_linked_test_binary_is_not_static() {
        let this = std::env::current_exe().expect("test binary path");
        let bytes = std::fs::read(this).expect("read test binary");
        assert!(
            !is_static_executable(&bytes),
            "cargo test binaries use the dynamic loader"
        );
    }
}
