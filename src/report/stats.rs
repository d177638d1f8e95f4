//! Mean, standard deviation and range of one measure over a profile's repeats.

use serde::{Deserialize, Serialize};

/// One measure over the measured repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` with fewer than two repeats.
    pub stddev: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all zeros when there are none.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self {
                mean: 0.0,
                stddev: None,
                min: 0.0,
                max: 0.0,
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
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// `12.34 ± 0.56`, or `12.34` without a deviation, with `decimals` places.
    pub fn display(&self, decimals: usize) -> String {
        match self.stddev {
            Some(sd) => format!("{:.*} ± {:.*}", decimals, self.mean, decimals, sd),
            None => format!("{:.*}", decimals, self.mean),
        }
    }
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
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(s.display(1), "5.0 ± 2.1");
    }

    #[test]
    fn one_repeat_has_no_deviation() {
        let s = Spread::of(&[3.0]);
        assert_eq!(s.stddev, None);
        assert_eq!(s.display(2), "3.00");
        assert_eq!(Spread::of(&[]).mean, 0.0);
    }
}
