//! Getting a missing image: one short pull attempt with progress in the log, then a
//! clear error that says how to get the image instead. Never hangs.

use futures::StreamExt;

use bollard::query_parameters::CreateImageOptionsBuilder;

use super::error::MissingImage;
use super::{DockerBackend, DockerError};
use crate::stack::plan::StackPlan;

impl DockerBackend {
    /// Makes sure every image of the plan is present, pulling what it can; reports
    /// all images it could not get at once, before anything is created.
    pub(super) async fn ensure_images(&self, plan: &StackPlan) -> Result<(), DockerError> {
        let mut missing: Vec<MissingImage> = Vec::new();
        for spec in &plan.containers {
            if let Some(known) = missing.iter_mut().find(|m| m.image == spec.image) {
                known.containers.push(spec.name.clone());
                continue;
            }
            if let Some(reason) = self.fetch_image(&spec.image).await? {
                missing.push(MissingImage {
                    image: spec.image.clone(),
                    containers: vec![spec.name.clone()],
                    reason,
                    hint: image_hint(&spec.image),
                });
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(DockerError::ImagesMissing {
            stack: plan.stack.clone(),
            missing,
        })
    }

    /// `None` when the image is present (or was pulled), else why it is not.
    async fn fetch_image(&self, image: &str) -> Result<Option<String>, DockerError> {
        if self.image_exists(image).await? {
            return Ok(None);
        }
        let reason = match tokio::time::timeout(self.pull_timeout, self.pull(image)).await {
            Ok(Ok(())) if self.image_exists(image).await? => return Ok(None),
            Ok(Ok(())) => "the pull finished but the image is still missing".to_string(),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!(
                "the pull did not finish within {}",
                humantime::format_duration(self.pull_timeout)
            ),
        };
        Ok(Some(reason))
    }

    async fn pull(&self, image: &str) -> Result<(), bollard::errors::Error> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            let step = step?;
            tracing::info!(
                image,
                status = step.status.as_deref().unwrap_or(""),
                layer = step.id.as_deref().unwrap_or(""),
                "pulling"
            );
        }
        Ok(())
    }
}

/// How to get an image the engine cannot pull, most likely way first.
fn image_hint(image: &str) -> String {
    let load = "or load a saved copy with `docker load -i IMAGE.tar`";
    let repository = image.rsplit('/').next().unwrap_or(image);
    if repository.starts_with("katotune-test-") {
        format!(
            "Build katotune's test images with `make test-images` (scripts/test-images.sh) \
             in a katotune checkout, {load}"
        )
    } else if repository.starts_with("katotune") {
        format!("Build katotune's engine image with `katotune image build`, {load}")
    } else if repository.starts_with("kato") {
        format!("Build KATO's image with `docker build -t {image} .` in a KATO checkout, {load}")
    } else {
        format!(
            "Pull it where a registry is reachable and move it over with `docker save` and \
             `docker load`, {load}; for katotune's engine image run `katotune image build`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::image_hint;

    #[test]
    fn image_hint_points_to_the_right_way_to_get_each_image() {
        assert!(image_hint("kato:latest")
            .contains("`docker build -t kato:latest .` in a KATO checkout"));
        assert!(image_hint("katotune-engine:0.1").contains("katotune image build"));
        assert!(image_hint("katotune-test-redis:latest").contains("make test-images"));
        assert!(image_hint("redis:7-alpine").contains("docker load"));
    }
}
