//! Progress while training: a bar on a terminal, plain log lines otherwise.
//!
//! The rate is rolling (the last 10 seconds), never lifetime, and the ETA comes from
//! that rate, so a run that slows down as its knowledge base grows is reported
//! honestly (TRAINING.md problem 19).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const WINDOW: Duration = Duration::from_secs(10);
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct ProgressDisplay {
    name: String,
    total: Option<u64>,
    bar: Option<ProgressBar>,
    window: VecDeque<(Instant, u64)>,
    last_log: Instant,
    last_refresh: Instant,
}

impl ProgressDisplay {
    pub fn new(name: &str, total: Option<u64>, bar: bool, resumed: bool) -> Self {
        let bar = bar.then(|| {
            let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            pb.set_style(style);
            pb.set_prefix(format!("{name}{}", if resumed { " (resumed)" } else { "" }));
            pb
        });
        let now = Instant::now();
        Self {
            name: name.to_string(),
            total,
            bar,
            window: VecDeque::from([(now, 0)]),
            last_log: now,
            last_refresh: now - LOG_EVERY,
        }
    }

    /// Samples per second over the last 10 seconds.
    fn rate(&self) -> f64 {
        match (self.window.front(), self.window.back()) {
            // Samples lost with a restarted server go back to training, so the count
            // can fall within the window: no negative rate, and no overflow.
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                n1.saturating_sub(*n0) as f64 / (*t1 - *t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Updates the display; `p95` is only asked for when the display refreshes.
    pub fn tick(&mut self, done: u64, at_risk: u64, p95: impl FnOnce() -> f64) {
        let now = Instant::now();
        if now.duration_since(self.last_refresh) < Duration::from_millis(200) {
            return;
        }
        self.last_refresh = now;
        self.window.push_back((now, done));
        while self.window.len() > 2
            && self
                .window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.window.pop_front();
        }
        let rate = self.rate();
        let eta = match (self.total, rate > 0.0) {
            (Some(total), true) => humantime::format_duration(Duration::from_secs(
                ((total.saturating_sub(done)) as f64 / rate) as u64,
            ))
            .to_string(),
            _ => "?".into(),
        };
        let msg = format!(
            "{rate:.1} samples/s  eta {eta}  at risk {at_risk}  p95 {:.1} ms",
            p95()
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(msg);
            }
            None if now.duration_since(self.last_log) >= LOG_EVERY => {
                self.last_log = now;
                let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                tracing::info!("{}: {done}{of} samples, {msg}", self.name);
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
