//! Latency distributions for accuracy checks, deterministic from a seed, in
//! microseconds, and the exact quantile they are judged against.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A named distribution of latencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Lognormal with `median_us` and σ of the log.
    LogNormal {
        /// Median, µs.
        median_us: f64,
        /// σ of the log.
        sigma: f64,
    },
    /// Cache hits around `fast_us` (share `fast_share`), misses around `slow_us`.
    Bimodal {
        /// Hit latency, µs.
        fast_us: f64,
        /// Miss latency, µs.
        slow_us: f64,
        /// Share of hits.
        fast_share: f64,
    },
    /// Pareto with scale `scale_us` and shape `alpha` (heavy tail).
    Pareto {
        /// Scale (minimum), µs.
        scale_us: f64,
        /// Shape.
        alpha: f64,
    },
}

/// The four distributions of the accuracy bench, by name.
pub fn standard() -> [(&'static str, Distribution); 4] {
    [
        (
            "lognormal, median 2 ms",
            Distribution::LogNormal {
                median_us: 2_000.0,
                sigma: 0.5,
            },
        ),
        (
            "lognormal, median 20 ms, wide",
            Distribution::LogNormal {
                median_us: 20_000.0,
                sigma: 1.2,
            },
        ),
        (
            "bimodal 0.3 ms / 30 ms",
            Distribution::Bimodal {
                fast_us: 300.0,
                slow_us: 30_000.0,
                fast_share: 0.7,
            },
        ),
        (
            "Pareto heavy tail",
            Distribution::Pareto {
                scale_us: 1_000.0,
                alpha: 1.5,
            },
        ),
    ]
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl Distribution {
    /// `n` latencies in whole µs (at least 1, at most 60 s), from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let v = match *self {
                    Self::LogNormal { median_us, sigma } => {
                        median_us * (sigma * standard_normal(&mut rng)).exp()
                    }
                    Self::Bimodal {
                        fast_us,
                        slow_us,
                        fast_share,
                    } => {
                        let centre = if rng.random_bool(fast_share) {
                            fast_us
                        } else {
                            slow_us
                        };
                        centre * (0.25 * standard_normal(&mut rng)).exp()
                    }
                    Self::Pareto { scale_us, alpha } => {
                        let u: f64 = rng.random_range(f64::EPSILON..1.0);
                        scale_us / u.powf(1.0 / alpha)
                    }
                };
                (v.round() as u64).clamp(1, 60_000_000)
            })
            .collect()
    }
}

/// The nearest-rank quantile: the value of rank ⌈q·n⌉ in `sorted` (q in (0, 1]).
pub fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
    assert!(!sorted.is_empty(), "quantile of nothing");
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_known_cases() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(exact_quantile(&v, 0.5), 5);
        assert_eq!(exact_quantile(&v, 0.95), 10);
        assert_eq!(exact_quantile(&v, 0.9), 9);
        assert_eq!(exact_quantile(&v, 0.91), 10);
        assert_eq!(exact_quantile(&[7], 0.99), 7);
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(exact_quantile(&hundred, 0.99), 99);
        assert_eq!(exact_quantile(&hundred, 0.999), 100);
    }

    #[test]
    fn samples_are_deterministic_and_shaped() {
        let d = Distribution::LogNormal {
            median_us: 2_000.0,
            sigma: 0.5,
        };
        assert_eq!(d.sample(1000, 1), d.sample(1000, 1));
        let mut s = d.sample(100_001, 1);
        s.sort_unstable();
        let median = exact_quantile(&s, 0.5) as f64;
        assert!((1_950.0..2_050.0).contains(&median), "{median}");
    }
}
