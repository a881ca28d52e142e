//! The slow backend a cache miss calls (a model answering a question),
//! simulated: lognormal latency, a share of failures.

use std::time::Duration;

use rand::Rng;

use crate::settings::BackendSettings;

/// What a request asks the simulation to do (header `x-simulate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulate {
    /// Behave as configured.
    Normal,
    /// Fail this call.
    Error,
    /// Take the configured slow latency.
    Slow,
}

impl Simulate {
    /// From the header value: `error`, `slow`, anything else normal.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some("error") => Self::Error,
            Some("slow") => Self::Slow,
            _ => Self::Normal,
        }
    }
}

/// The backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the mentor backend failed")]
pub struct BackendError;

/// A draw of the lognormal latency with `median_ms` and `sigma`.
pub fn lognormal_ms(rng: &mut impl Rng, median_ms: f64, sigma: f64) -> f64 {
    // Box–Muller for a standard normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median_ms * (sigma * z).exp()
}

/// Answers `question` after a simulated latency, or fails.
pub async fn ask_backend(
    question: &str,
    settings: &BackendSettings,
    simulate: Simulate,
) -> Result<String, BackendError> {
    let (latency, fail) = {
        let mut rng = rand::rng();
        let latency = match simulate {
            Simulate::Slow => settings.slow_ms as f64,
            _ => lognormal_ms(&mut rng, settings.median_ms, settings.sigma).min(30_000.0),
        };
        let fail = simulate == Simulate::Error
            || (simulate == Simulate::Normal && rng.random_bool(settings.error_rate));
        (latency, fail)
    };
    tokio::time::sleep(Duration::from_secs_f64(latency / 1000.0)).await;
    if fail {
        return Err(BackendError);
    }
    Ok(format!(
        "A mentor's answer to \"{question}\": start from the user's goal, measure it, then iterate."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lognormal_median_is_the_median() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut draws: Vec<f64> = (0..20_001)
            .map(|_| lognormal_ms(&mut rng, 60.0, 0.5))
            .collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[10_000];
        assert!((55.0..65.0).contains(&median), "{median}");
    }
}
