//! The statistics of an A/B experiment that stay valid however often
//! someone looks: a mixture sequential probability ratio test (mSPRT) on
//! the difference of two proportions, with its always-valid confidence
//! interval (Johari, Koomen, Pekelis & Walsh, "Always Valid Inference",
//! 2017/2022: the normal mixture with the plug-in variance), and the
//! chi-square test of a sample-ratio mismatch.
//!
//! With `θ̂ = p̂_B − p̂_A`, `V = p̂_A(1 − p̂_A)/n_A + p̂_B(1 − p̂_B)/n_B` and
//! the mixing variance `τ²`, the mixture likelihood ratio is
//! `Λ = √(V/(V+τ²)) · exp(τ²θ̂² / (2V(V+τ²)))`; the always-valid p-value is
//! `min(1, 1/Λ)` and the interval `θ̂ ± √(V(V+τ²)/τ² · (2 ln(1/α) +
//! ln((V+τ²)/V)))`. The probability that it ever excludes the true
//! difference, at any of any number of looks, is at most `α`.
//!
//! ```
//! use lumen_sidecar::eval::{always_valid_difference, srm_p_value};
//! // 80 % against 85 % hits over 20,000 lookups each.
//! let d = always_valid_difference(16_000, 20_000, 17_000, 20_000, 0.02, 0.05).unwrap();
//! assert!(d.low > 0.0 && d.p_value < 0.05);
//! // A 45/55 split of 10,000 requests meant to be 50/50.
//! assert!(srm_p_value(4_500, 5_500, 0.5) < 1e-6);
//! ```

use serde::{Deserialize, Serialize};

/// A difference `B − A` of two proportions with its always-valid interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlwaysValid {
    /// The observed difference, `p̂_B − p̂_A`.
    pub effect: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
    /// The always-valid p-value of "no difference".
    pub p_value: f64,
}

impl AlwaysValid {
    /// Whether the interval excludes no difference.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The always-valid comparison of `x_b / n_b` against `x_a / n_a` with
/// mixing standard deviation `tau` (the size of effect the test is tuned
/// to, as a proportion) at level `alpha`; `None` while an arm has no data.
/// The variance uses `(x + ½)/(n + 1)`, so an arm with no successes (or
/// no failures) yet does not make the interval collapse.
pub fn always_valid_difference(
    x_a: u64,
    n_a: u64,
    x_b: u64,
    n_b: u64,
    tau: f64,
    alpha: f64,
) -> Option<AlwaysValid> {
    let valid = tau > 0.0 && alpha > 0.0 && alpha < 1.0;
    if n_a == 0 || n_b == 0 || !valid {
        return None;
    }
    let (na, nb) = (n_a as f64, n_b as f64);
    let effect = x_b.min(n_b) as f64 / nb - x_a.min(n_a) as f64 / na;
    let smoothed = |x: u64, n: f64| (x as f64 + 0.5) / (n + 1.0);
    let (pa, pb) = (smoothed(x_a, na), smoothed(x_b, nb));
    let v = pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb;
    let t2 = tau * tau;
    let log_lambda = 0.5 * (v / (v + t2)).ln() + t2 * effect * effect / (2.0 * v * (v + t2));
    let p_value = (-log_lambda).exp().min(1.0);
    let half = (v * (v + t2) / t2 * (2.0 * (1.0 / alpha).ln() + ((v + t2) / v).ln())).sqrt();
    Some(AlwaysValid {
        effect,
        low: effect - half,
        high: effect + half,
        p_value,
    })
}

/// The p-value of the chi-square test (one degree of freedom) that
/// `n_a` and `n_b` were split with B's share `share_b`; 1 with no data.
pub fn srm_p_value(n_a: u64, n_b: u64, share_b: f64) -> f64 {
    let total = (n_a + n_b) as f64;
    if total == 0.0 || !(share_b > 0.0 && share_b < 1.0) {
        return 1.0;
    }
    let (ea, eb) = (total * (1.0 - share_b), total * share_b);
    let chi2 = (n_a as f64 - ea).powi(2) / ea + (n_b as f64 - eb).powi(2) / eb;
    // P(χ²₁ > x) = erfc(√(x/2)).
    erfc((chi2 / 2.0).sqrt())
}

/// The complementary error function (Numerical Recipes' `erfcc`: fractional
/// error below 1.2 × 10⁻⁷ everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-6, "erfc({x}) = {}", erfc(x));
        }
        // χ²₁ = 3.841 is the 5 % point.
        assert!((srm_p_value(0, 0, 0.5) - 1.0).abs() < 1e-12);
        let n = 10_000_u64;
        // (a − 5000)²/5000·2 = 3.841 ⇒ a − 5000 = 98.
        let p = srm_p_value(n / 2 - 98, n / 2 + 98, 0.5);
        assert!((p - 0.05).abs() < 0.002, "{p}");
    }

    #[test]
    fn the_interval_is_wide_early_and_narrows() {
        let early = always_valid_difference(8, 10, 9, 10, 0.02, 0.05).expect("data");
        assert!(!early.excludes_zero());
        assert!((early.effect - 0.1).abs() < 1e-12);
        let late =
            always_valid_difference(80_000, 100_000, 81_000, 100_000, 0.02, 0.05).expect("data");
        assert!(late.excludes_zero() && late.low > 0.0, "{late:?}");
        assert!(late.high - late.low < early.high - early.low);
        // p ≤ α exactly when the interval excludes zero.
        for (xa, xb) in [(800, 830), (800, 860), (8_000, 8_150), (8_000, 8_200)] {
            let d = always_valid_difference(xa, xa * 10 / 8, xb, xa * 10 / 8, 0.02, 0.05)
                .expect("data");
            assert_eq!(d.excludes_zero(), d.p_value <= 0.05, "{d:?}");
        }
    }

    #[test]
    fn no_data_no_interval() {
        assert_eq!(always_valid_difference(0, 0, 1, 2, 0.02, 0.05), None);
        assert_eq!(always_valid_difference(1, 2, 1, 2, 0.0, 0.05), None);
    }
}
