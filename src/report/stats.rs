//! Statistics of one measure over a profile's repeats: mean ± standard deviation,
//! median, range, coefficient of variation and modified Z-score outliers, plus
//! Welch's t-test between two sets of repeats (the t distribution from `statrs`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// |modified Z| above this marks an outlier (Iglewicz and Hoaglin, 1993).
pub const OUTLIER_Z: f64 = 3.5;

/// One measure over the measured repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` with fewer than two repeats.
    pub stddev: Option<f64>,
    /// Median (the mean of the middle two for an even count).
    #[serde(default)]
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values (repeats) the figures rest on.
    #[serde(default)]
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; all zeros when there are none.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self {
                mean: 0.0,
                stddev: None,
                median: 0.0,
                min: 0.0,
                max: 0.0,
                n: 0,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let stddev = (values.len() > 1).then(|| {
            let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1.0)).sqrt()
        });
        Self {
            mean,
            stddev,
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n: values.len(),
        }
    }

    /// Coefficient of variation, `stddev / mean`; `None` without a deviation or mean.
    pub fn cv(&self) -> Option<f64> {
        self.stddev
            .filter(|_| self.mean != 0.0)
            .map(|sd| sd / self.mean.abs())
    }

    /// `12.34 ± 0.56`, or `12.34` without a deviation, with `decimals` places.
    pub fn display(&self, decimals: usize) -> String {
        match self.stddev {
            Some(sd) => format!("{:.*} ± {:.*}", decimals, self.mean, decimals, sd),
            None => format!("{:.*}", decimals, self.mean),
        }
    }
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Modified Z-scores, `0.6745 (x - median) / MAD` (Iglewicz and Hoaglin). When the
/// median absolute deviation is 0, the mean absolute deviation stands in:
/// `(x - median) / (1.253314 · MeanAD)`; all zeros when every value is the same.
pub fn modified_z_scores(values: &[f64]) -> Vec<f64> {
    let med = median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&deviations);
    let mean_ad = deviations.iter().sum::<f64>() / deviations.len().max(1) as f64;
    values
        .iter()
        .map(|v| {
            if mad > 0.0 {
                0.6745 * (v - med) / mad
            } else if mean_ad > 0.0 {
                (v - med) / (1.253_314 * mean_ad)
            } else {
                0.0
            }
        })
        .collect()
}

/// Indices of the values whose |modified Z-score| exceeds [`OUTLIER_Z`].
pub fn outliers(values: &[f64]) -> Vec<usize> {
    modified_z_scores(values)
        .iter()
        .enumerate()
        .filter(|(_, z)| z.abs() > OUTLIER_Z)
        .map(|(i, _)| i)
        .collect()
}

/// Welch's unequal-variance t-test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Welch {
    /// `(mean_a - mean_b) / sqrt(s_a²/n_a + s_b²/n_b)`.
    pub t: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// One-sided p-value that `a`'s mean is below `b`'s: P(T ≤ t).
    pub p_less: f64,
    /// Two-sided p-value: P(|T| ≥ |t|).
    pub p_two_sided: f64,
}

/// Welch's t-test; `None` with fewer than two values on a side. Two sides without
/// any variance give t = 0 (p = 1) when their means agree, else ±`f64::MAX` (JSON has
/// no infinity) with p = 0 or 1.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (sa, sb) = (Spread::of(a), Spread::of(b));
    let va = sa.stddev.unwrap_or(0.0).powi(2) / a.len() as f64;
    let vb = sb.stddev.unwrap_or(0.0).powi(2) / b.len() as f64;
    let diff = sa.mean - sb.mean;
    if va + vb == 0.0 {
        let (p_less, p_two) = match diff.partial_cmp(&0.0) {
            Some(std::cmp::Ordering::Less) => (0.0, 0.0),
            Some(std::cmp::Ordering::Greater) => (1.0, 0.0),
            _ => (0.5, 1.0),
        };
        let t = if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::MAX
        };
        return Some(Welch {
            t,
            df: (a.len() + b.len() - 2) as f64,
            p_less,
            p_two_sided: p_two,
        });
    }
    let t = diff / (va + vb).sqrt();
    let df =
        (va + vb).powi(2) / (va.powi(2) / (a.len() - 1) as f64 + vb.powi(2) / (b.len() - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(Welch {
        t,
        df,
        p_less: dist.cdf(t),
        p_two_sided: 2.0 * dist.cdf(-t.abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_the_sample_standard_deviation() {
        let s = Spread::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean, 5.0);
        let sd = s.stddev.expect("eight values have a deviation");
        assert!((sd - 2.138).abs() < 1e-3, "{sd}");
        assert_eq!((s.min, s.max, s.median, s.n), (2.0, 9.0, 4.5, 8));
        assert_eq!(s.display(1), "5.0 ± 2.1");
        // 2.13809 / 5
        assert!((s.cv().unwrap() - 0.427_618).abs() < 1e-5);
    }

    #[test]
    fn one_repeat_has_no_deviation() {
        let s = Spread::of(&[3.0]);
        assert_eq!(s.stddev, None);
        assert_eq!(s.cv(), None);
        assert_eq!(s.display(2), "3.00");
        assert_eq!(Spread::of(&[]).mean, 0.0);
    }

    #[test]
    fn modified_z_flags_the_far_value_only() {
        // median 10, |dev| = 0,1,1,1,1,0,10 -> MAD 1; z(20) = 0.6745 * 10 = 6.745.
        let v = [9.0, 10.0, 11.0, 10.0, 9.0, 20.0];
        let z = modified_z_scores(&[10.0, 9.0, 11.0, 9.0, 11.0, 10.0, 20.0]);
        assert!((z[6] - 6.745).abs() < 1e-9, "{z:?}");
        assert!((z[1] + 0.6745).abs() < 1e-9);
        assert_eq!(outliers(&v), vec![5]);
        assert!(outliers(&[1.0, 1.0, 1.0]).is_empty());
        // MAD 0: mean absolute deviation (10/4 = 2.5) stands in: 10 / (1.253314 * 2.5).
        let z = modified_z_scores(&[5.0, 5.0, 5.0, 15.0]);
        assert!((z[3] - 3.191_538).abs() < 1e-5, "{z:?}");
    }

    #[test]
    fn welch_matches_a_hand_computed_case() {
        // a: mean 20, s² = 2.5, n 5; b: mean 22, s² = 10, n 5.
        // t = -2 / sqrt(0.5 + 2) = -1.264911; df = 6.25 / (0.0625 + 1) = 5.882353.
        let a = [18.0, 19.0, 20.0, 21.0, 22.0];
        let b = [18.0, 20.0, 22.0, 24.0, 26.0];
        let w = welch(&a, &b).expect("two sides of five");
        assert!((w.t + 1.264_911).abs() < 1e-6, "{w:?}");
        assert!((w.df - 5.882_353).abs() < 1e-6, "{w:?}");
        // P(T_5.88 <= -1.2649) = 0.1268 (t tables: between df 5 and 6 at t = 1.26).
        assert!((w.p_less - 0.1268).abs() < 2e-3, "{w:?}");
        assert!((w.p_two_sided - 2.0 * w.p_less).abs() < 1e-12);
        assert_eq!(welch(&a, &[1.0]), None);
        assert_eq!(welch(&[2.0, 2.0], &[2.0, 2.0]).unwrap().p_two_sided, 1.0);
    }
}
