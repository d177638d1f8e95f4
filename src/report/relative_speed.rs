//! Speed of one profile against the reference, as hyperfine prints it: a ratio of
//! mean throughputs with its uncertainty propagated from both standard deviations.

use serde::{Deserialize, Serialize};

use super::stats::Spread;

/// Throughput of a profile divided by the reference's (above 1 means faster).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Relative {
    /// Mean samples/s of the profile over mean samples/s of the reference.
    pub ratio: f64,
    /// One standard deviation of `ratio`; `None` when either side ran only once.
    pub uncertainty: Option<f64>,
}

impl Relative {
    /// The reference against itself: exactly 1, no uncertainty.
    pub const REFERENCE: Relative = Relative {
        ratio: 1.0,
        uncertainty: None,
    };

    /// `speed` against `reference`; `None` when either mean is not positive.
    ///
    /// For a quotient of independent measures the relative errors add in quadrature:
    /// `σ_r = r · sqrt((σ_a/a)² + (σ_b/b)²)`.
    pub fn of(speed: &Spread, reference: &Spread) -> Option<Relative> {
        if !(speed.mean > 0.0 && reference.mean > 0.0) {
            return None;
        }
        let ratio = speed.mean / reference.mean;
        let uncertainty = match (speed.stddev, reference.stddev) {
            (Some(a), Some(b)) => {
                Some(ratio * ((a / speed.mean).powi(2) + (b / reference.mean).powi(2)).sqrt())
            }
            _ => None,
        };
        Some(Relative { ratio, uncertainty })
    }

    /// The ratio the other way round (the same relative uncertainty).
    pub fn inverse(&self) -> Relative {
        let ratio = 1.0 / self.ratio;
        Relative {
            ratio,
            uncertainty: self.uncertainty.map(|u| u / self.ratio * ratio),
        }
    }

    /// `4.21 ± 0.12`, or `4.21` without an uncertainty.
    pub fn display(&self) -> String {
        match self.uncertainty {
            Some(u) => format!("{:.2} ± {:.2}", self.ratio, u),
            None => format!("{:.2}", self.ratio),
        }
    }

    /// `phase3-parallel ran 4.21 ± 0.12 times faster than baseline` (or slower).
    pub fn sentence(&self, name: &str, reference: &str) -> String {
        if self.ratio >= 1.0 {
            format!(
                "{name} ran {} times faster than {reference}",
                self.display()
            )
        } else {
            format!(
                "{name} ran {} times slower than {reference}",
                self.inverse().display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(mean: f64, stddev: Option<f64>) -> Spread {
        Spread {
            mean,
            stddev,
            median: mean,
            min: mean,
            max: mean,
            n: 2,
        }
    }

    #[test]
    fn ratio_and_uncertainty_follow_quadrature() {
        let fast = spread(40.0, Some(2.0));
        let base = spread(10.0, Some(0.5));
        let r = Relative::of(&fast, &base).expect("positive means");
        assert!((r.ratio - 4.0).abs() < 1e-12);
        // 4 * sqrt(0.05² + 0.05²) = 0.28284...
        let u = r.uncertainty.expect("both sides have a deviation");
        assert!((u - 0.282_842_7).abs() < 1e-6, "{u}");
        assert_eq!(
            r.sentence("phase3-parallel", "baseline"),
            "phase3-parallel ran 4.00 ± 0.28 times faster than baseline"
        );
    }

    #[test]
    fn slower_profiles_are_described_by_the_inverse_ratio() {
        let slow = spread(5.0, Some(0.25));
        let base = spread(10.0, Some(0.5));
        let r = Relative::of(&slow, &base).expect("positive means");
        assert!((r.ratio - 0.5).abs() < 1e-12);
        let inv = r.inverse();
        assert!((inv.ratio - 2.0).abs() < 1e-12);
        // Relative uncertainty sqrt(2)*0.05 is kept: 2 * 0.0707 = 0.1414.
        assert!((inv.uncertainty.unwrap_or(0.0) - 0.141_421).abs() < 1e-5);
        assert_eq!(
            r.sentence("tiny", "baseline"),
            "tiny ran 2.00 ± 0.14 times slower than baseline"
        );
    }

    #[test]
    fn a_single_run_gives_a_ratio_without_uncertainty() {
        let r = Relative::of(&spread(3.0, None), &spread(2.0, Some(0.1))).expect("ratio");
        assert_eq!(r.uncertainty, None);
        assert_eq!(r.display(), "1.50");
    }

    #[test]
    fn a_profile_that_trained_nothing_has_no_ratio() {
        assert_eq!(Relative::of(&spread(0.0, None), &spread(2.0, None)), None);
        assert_eq!(Relative::of(&spread(2.0, None), &spread(0.0, None)), None);
    }
}
