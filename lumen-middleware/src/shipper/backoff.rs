//! Exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

/// First wait after a failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Doubles from [`INITIAL_BACKOFF`] up to a cap; each wait is drawn between
/// half and all of the current step ("equal jitter").
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            step: INITIAL_BACKOFF.min(max),
            max,
        }
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Back to the first step after a success.
    pub(crate) fn reset(&mut self) {
        self.step = INITIAL_BACKOFF.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_within_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let waits: Vec<Duration> = (0..6).map(|_| b.next_wait()).collect();
        let steps = [200, 400, 800, 1000, 1000, 1000];
        for (w, s) in waits.iter().zip(steps) {
            let s = Duration::from_millis(s);
            assert!(
                *w >= s / 2 && *w <= s,
                "{w:?} not within [{:?}, {s:?}]",
                s / 2
            );
        }
        b.reset();
        assert!(b.next_wait() <= INITIAL_BACKOFF);
    }
}
