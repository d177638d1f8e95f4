//! One owner for a stack's life: bring it up, wait until ready, run the work, and take
//! down what was created on every path (readiness failure, a failed warm-up, an error in
//! the work, a stopped run).
//!
//! `Drop` cannot await a container removal, so the teardown is an explicit async step:
//! [`StackGuard::scope`] awaits the work and then always tears down; code that cannot
//! use a scope calls [`StackGuard::finish`]. A guard dropped without either (a panic)
//! logs which stack it left running.

use std::future::Future;

use super::{probe, up_as, KbStart, Lifetime, StackError, StackHandle};
use crate::profile::Profile;
use crate::train::runner::Target;

/// A stack that is up and ready, owned until [`StackGuard::finish`] or the end of
/// [`StackGuard::scope`].
pub struct StackGuard {
    handle: Option<StackHandle>,
    /// Leave a docker stack running at the end (`run --keep`).
    keep: bool,
}

impl StackGuard {
    /// Brings the profile's stack up and waits until it is ready (see [`probe::ready_for`]).
    /// When it never gets ready, what was created is taken down before the error
    /// (`StackError::NotReady`, with the containers' last log lines) is returned.
    pub async fn up(
        profile: &Profile,
        kb: KbStart,
        run_id: &str,
        keep: bool,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Self, StackError> {
        Self::up_as(profile, kb, run_id, keep, cancel, &Lifetime::Profile).await
    }

    /// [`StackGuard::up`] with the docker stack's [`Lifetime`] (compare brings each run
    /// up as a disposable stack of its own).
    pub async fn up_as(
        profile: &Profile,
        kb: KbStart,
        run_id: &str,
        keep: bool,
        cancel: &tokio_util::sync::CancellationToken,
        lifetime: &Lifetime,
    ) -> Result<Self, StackError> {
        let handle = up_as(profile, kb, run_id, cancel, lifetime).await?;
        let guard = Self {
            handle: Some(handle),
            keep,
        };
        let ready = ready_everywhere(&guard.handle().replicas, profile).await;
        match ready {
            Ok(()) => {
                tracing::info!(
                    "{} is ready at {}",
                    guard.target().backend.kind,
                    guard.url()
                );
                Ok(guard)
            }
            Err(e) => {
                let logs = guard.handle().log_tails().await;
                guard.finish().await;
                Err(match e {
                    StackError::NotReady(why) => {
                        StackError::NotReady(format!("{why} (profile {}){logs}", profile.name))
                    }
                    other => other,
                })
            }
        }
    }

    /// Where the stack serves KATO.
    pub fn url(&self) -> &str {
        &self.handle().url
    }

    /// The stack as a training target (with the engine's in-process handle when it
    /// runs in this process).
    pub fn target(&self) -> Target {
        let h = self.handle();
        Target {
            url: h.url.clone(),
            backend: h.backend.clone(),
            replicas: h.replicas.clone(),
            engine: h.engine(),
        }
    }

    /// The stack's knowledge-base stores, when katotune can reach them
    /// ([`StackHandle::stores`]).
    pub fn stores(&self) -> Option<&super::StoreUrls> {
        self.handle().stores()
    }

    fn handle(&self) -> &StackHandle {
        self.handle
            .as_ref()
            .expect("a guard holds its stack until finish")
    }

    /// Awaits `work`, then takes the stack down whatever `work` returned.
    pub async fn scope<T>(self, work: impl Future<Output = T>) -> T {
        let out = work.await;
        self.finish().await;
        out
    }

    /// Takes down what this guard created (a docker stack with `keep` is left running).
    pub async fn finish(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.down(self.keep).await;
        }
    }
}

/// [`probe::ready_for`] on every replica in turn: a stack is ready when each of its
/// KATO servers answers and learns.
pub async fn ready_everywhere(urls: &[String], profile: &Profile) -> Result<(), StackError> {
    for url in urls {
        probe::ready_for(url, profile).await?;
    }
    Ok(())
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            tracing::error!(
                "the {} stack at {} was not taken down (`katotune down` removes a docker stack)",
                h.backend.kind,
                h.url
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::Backend;
    use tokio_util::sync::CancellationToken;

    /// An embedded profile whose engine refuses the readiness probe: KATO_BATCH_SIZE=1
    /// answers 413 to the probe's two-event observe-sequence.
    fn unready(dir: &std::path::Path) -> Profile {
        let mut p = Profile {
            name: "unready".into(),
            ..Profile::default()
        };
        p.stack.backend = Backend::Embedded;
        p.stack.kb_file = Some(dir.join("kb.db"));
        p.stack.env.insert("KATO_BATCH_SIZE".into(), "1".into());
        p.health.timeout = std::time::Duration::from_millis(300);
        p.health.interval = std::time::Duration::from_millis(50);
        p
    }

    #[tokio::test]
    async fn a_stack_that_never_gets_ready_is_taken_down() {
        let dir = tempfile::tempdir().unwrap();
        let profile = unready(dir.path());
        let cancel = CancellationToken::new();
        let err = StackGuard::up(&profile, KbStart::Continue, "t", false, &cancel)
            .await
            .err()
            .expect("the probe is refused");
        assert!(
            err.to_string().contains("not ready"),
            "the error says why: {err}"
        );
        // Taken down: the engine let go of its knowledge base, so a new run can lock it.
        let lock = crate::lock::lock_path(&dir.path().join("kb.db"));
        crate::lock::RunLock::acquire(&lock, "knowledge base").expect("the KB lock was released");
    }

    #[tokio::test]
    async fn a_scope_takes_the_stack_down_when_its_work_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut profile = unready(dir.path());
        profile.stack.env.clear();
        let cancel = CancellationToken::new();
        let guard = StackGuard::up(&profile, KbStart::Continue, "t", false, &cancel)
            .await
            .expect("ready");
        let url = guard.url().to_string();
        let failed: Result<(), &str> = guard.scope(async { Err("warm-up failed") }).await;
        assert!(failed.is_err());
        let lock = crate::lock::lock_path(&dir.path().join("kb.db"));
        crate::lock::RunLock::acquire(&lock, "knowledge base").expect("the KB lock was released");
        let health = reqwest::get(format!("{url}/health")).await;
        assert!(health.is_err(), "nothing listens at {url} any more");
    }
}
