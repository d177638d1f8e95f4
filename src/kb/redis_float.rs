//! Redis 7's `HINCRBYFLOAT` arithmetic, digit for digit.
//!
//! KATO keeps each symbol's affinity as a Redis hash field it bumps with
//! `HINCRBYFLOAT` (KATO `redis_writer.py`, `batch_update_symbol_affinity`), so the
//! stored sums are Redis's text, not Python's floats. Redis (`t_hash.c`,
//! `util.c`: `string2ld`, `ld2string` with `LD_STR_HUMAN`) parses the stored text and
//! the increment as C `long double` (the x87 80-bit format on x86-64 Linux, parsed
//! correctly rounded by glibc's `strtold`), adds them in that precision, and writes
//! the sum with `%.17Lf`, then strips trailing zeros and a trailing `.` and turns
//! `-0` into `0`. redis-py sends a Python float as its `repr`, so the increment text
//! is the shortest round-trip form of the double (e.g. `0.6000000000000001`).
//!
//! The 80-bit arithmetic comes from `rustc_apfloat` (the Rust port of LLVM's APFloat,
//! which models x87 extended precision bit for bit); the exact decimal expansion
//! and its ties-to-even rounding use `num-bigint`.

use num_bigint::BigUint;
use rustc_apfloat::ieee::X87DoubleExtended;
use rustc_apfloat::{Float, Round};

/// Fraction digits Redis prints (`%.17Lf`).
const FRACTION_DIGITS: u32 = 17;
/// x87 extended: exponent bias plus the 63 fraction bits of the explicit significand.
const EXPONENT_OFFSET: i64 = 16383 + 63;

/// Why Redis would refuse an `HINCRBYFLOAT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisFloatError {
    /// The stored value or the increment is not a number Redis accepts (Redis:
    /// "hash value is not a float" / "value is not a valid float").
    #[error("{0:?} is not a float Redis accepts")]
    NotAFloat(String),
    /// The sum is infinite or NaN (Redis: "increment would produce NaN or Infinity").
    #[error("increment would produce NaN or Infinity")]
    NotFinite,
}

/// The text Redis stores after `HINCRBYFLOAT key field by` on a field holding
/// `current` (`None` = the field does not exist yet, which Redis treats as 0).
///
/// `by` is the increment exactly as sent on the wire; for KATO that is Python's
/// `repr` of a float, see [`python_float_repr`].
///
/// # Errors
/// [`RedisFloatError`] where Redis would answer with an error and leave the field alone.
pub fn hincrbyfloat(current: Option<&str>, by: &str) -> Result<String, RedisFloatError> {
    let incr = parse_long_double(by)?;
    let sum = match current {
        Some(text) => (parse_long_double(text)? + incr).value,
        None => incr,
    };
    if !sum.is_finite() {
        return Err(RedisFloatError::NotFinite);
    }
    Ok(format_human(sum))
}

/// Python's `repr` of a float, the text redis-py sends for it (e.g. `2.5`, `1e+16`,
/// `0.6000000000000001`, `-0.0`).
pub fn python_float_repr(value: f64) -> String {
    let mut out = String::new();
    crate::engine::pyvalue::push_py_float(&mut out, value);
    out
}

/// Parses text as `strtold` does for Redis: correctly rounded to 80-bit; empty text,
/// leading spaces, trailing garbage and NaN are refused.
fn parse_long_double(text: &str) -> Result<X87DoubleExtended, RedisFloatError> {
    let refuse = || RedisFloatError::NotAFloat(text.to_owned());
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(refuse());
    }
    // strtold rounds to nearest, ties to even (the default rounding mode).
    let parsed = X87DoubleExtended::from_str_r(text, Round::NearestTiesToEven)
        .map_err(|_| refuse())?
        .value;
    if parsed.is_nan() {
        return Err(refuse());
    }
    Ok(parsed)
}

/// `%.17Lf` of a finite 80-bit value with Redis's human trimming.
fn format_human(value: X87DoubleExtended) -> String {
    let bits = value.to_bits();
    let negative = bits >> 79 & 1 == 1;
    let biased = i64::try_from(bits >> 64 & 0x7fff).unwrap_or(0);
    let significand = BigUint::from(u64::try_from(bits & u128::from(u64::MAX)).unwrap_or(0));
    // Denormals use the smallest normal exponent (biased 1).
    let exponent = biased.max(1) - EXPONENT_OFFSET;
    let scaled = significand * BigUint::from(10u32).pow(FRACTION_DIGITS);
    let units = if exponent >= 0 {
        scaled << u64::try_from(exponent).unwrap_or(0)
    } else {
        round_shift_ties_even(scaled, exponent.unsigned_abs())
    };
    let digits = units.to_str_radix(10);
    let width = FRACTION_DIGITS as usize + 1;
    let digits = format!("{digits:0>width$}");
    let (int_part, frac_part) = digits.split_at(digits.len() - FRACTION_DIGITS as usize);
    let frac_part = frac_part.trim_end_matches('0');
    let mut out = String::with_capacity(digits.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    if out == "-0" {
        out.remove(0);
    }
    out
}

/// `value / 2^shift`, rounded to nearest with ties to even (glibc printf's rounding
/// of the exact binary value in the default rounding mode).
fn round_shift_ties_even(value: BigUint, shift: u64) -> BigUint {
    let quotient = &value >> shift;
    let remainder = &value - (&quotient << shift);
    let twice = remainder << 1u32;
    let half_unit = BigUint::from(1u32) << shift;
    let one = BigUint::from(1u32);
    match twice.cmp(&half_unit) {
        std::cmp::Ordering::Greater => quotient + one,
        std::cmp::Ordering::Equal if quotient.bit(0) => quotient + one,
        _ => quotient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr_all(steps: &[f64]) -> String {
        let mut text: Option<String> = None;
        for step in steps {
            let by = python_float_repr(*step);
            text = Some(hincrbyfloat(text.as_deref(), &by).expect("finite"));
        }
        text.expect("at least one step")
    }

    #[test]
    fn golden_affinity_sums_match_what_kato_stored() {
        // emotives-metadata.json: joy averaged per learn is (0.1*i + 1.0) / 2, i = 0..7.
        let joy: Vec<f64> = (0..7).map(|i| (0.1 * f64::from(i) + 1.0) / 2.0).collect();
        assert_eq!(incr_all(&joy), "4.55");
        let fear: Vec<f64> = (0..7).map(|i| -0.5 + f64::from(i)).collect();
        assert_eq!(incr_all(&fear), "17.5");
        assert_eq!(incr_all(&[2.5, 2.5]), "5");
        assert_eq!(incr_all(&[2.5]), "2.5");
    }

    #[test]
    fn formatting_follows_redis_human_rules() {
        assert_eq!(hincrbyfloat(None, "-0.0").unwrap(), "0");
        assert_eq!(hincrbyfloat(Some("1"), "-1").unwrap(), "0");
        assert_eq!(hincrbyfloat(None, "1e+16").unwrap(), "10000000000000000");
        assert_eq!(hincrbyfloat(None, "0.1").unwrap(), "0.1");
        assert_eq!(hincrbyfloat(None, "-1e-20").unwrap(), "0");
        assert_eq!(
            hincrbyfloat(None, "0.6000000000000001").unwrap(),
            "0.6000000000000001"
        );
        assert_eq!(hincrbyfloat(Some("10.5"), "0.1").unwrap(), "10.6");
    }

    #[test]
    fn refuses_what_redis_refuses() {
        assert!(matches!(
            hincrbyfloat(Some("abc"), "1"),
            Err(RedisFloatError::NotAFloat(_))
        ));
        assert!(matches!(
            hincrbyfloat(None, " 1"),
            Err(RedisFloatError::NotAFloat(_))
        ));
        assert!(matches!(
            hincrbyfloat(None, "nan"),
            Err(RedisFloatError::NotAFloat(_))
        ));
        assert_eq!(hincrbyfloat(None, "inf"), Err(RedisFloatError::NotFinite));
    }
}
