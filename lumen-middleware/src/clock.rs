//! The request clock: a raw counter read when a request starts and when it
//! ends (the TSC where the CPU's is invariant, else the monotonic clock),
//! scaled to time once, at the end. `quanta::Instant::now` scales every
//! read and first looks for a thread's mocked clock; this does neither.

use std::sync::OnceLock;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// The process's clock, calibrated on first use ([`calibrate`] does it
/// before the first request).
#[inline]
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now (milliseconds, once per process), so no
/// request pays for it.
pub(crate) fn calibrate() {
    clock();
}

/// A raw clock reading.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tick(u64);

impl Tick {
    /// Now.
    #[inline]
    pub(crate) fn now() -> Self {
        Self(clock().raw())
    }

    /// Whole microseconds since this reading (0 if the counter reads
    /// earlier on this core than it did on the core that took this one).
    #[inline]
    pub(crate) fn elapsed_us(self) -> u64 {
        let clock = clock();
        clock.delta_as_nanos(self.0, clock.raw()) / 1_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_is_scaled_to_microseconds() {
        // Bracketed by the standard clock: whatever the scheduler does
        // between the reads, the request clock's interval lies between the
        // inner and the outer one (give or take its calibration, 1 %).
        let outer = std::time::Instant::now();
        let start = Tick::now();
        let inner = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let inner_us = inner.elapsed().as_micros() as f64;
        let measured = start.elapsed_us() as f64;
        let outer_us = outer.elapsed().as_micros() as f64;
        assert!(
            measured >= inner_us * 0.99 - 1.0 && measured <= outer_us * 1.01 + 1.0,
            "measured {measured} µs, not within [{inner_us}, {outer_us}] µs"
        );
    }
}
