//! The simulations' small deterministic generator (xorshift64*), shared
//! by the simulation tests so that a seed means the same run in each.
#![allow(dead_code)]

/// xorshift64*: seed with any non-zero value.
pub struct Rng(pub u64);

impl Rng {
    /// A uniform draw in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.next();
        let v = self.next();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// A binomial(`n`, `p`) draw by its normal approximation (exact enough
    /// at the thousands of trials the simulations draw), within [0, n].
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (mean + sd * self.normal()).round().clamp(0.0, n as f64) as u64
    }
}
