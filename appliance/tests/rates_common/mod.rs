//! Shared by the rates tests: a seeded RNG and the exact f64 EMA oracle.
#![allow(dead_code)]

/// splitmix64: small, seeded, good enough for test streams.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Exponential inter-arrival with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

/// The reference: `V <- V*exp(-dt/tau) + w` in f64, times in ns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exact {
    pub v: f64,
    pub t_ns: u64,
}

impl Exact {
    /// Value at `t_ns` (not before the last event).
    pub fn at(&self, tau_ns: f64, t_ns: u64) -> f64 {
        self.v * (-((t_ns - self.t_ns) as f64) / tau_ns).exp()
    }
    /// Add weight `w` at `t_ns` (>= the last event); returns V just before the event.
    pub fn add(&mut self, tau_ns: f64, t_ns: u64, w: f64) -> f64 {
        let before = self.at(tau_ns, t_ns);
        self.v = before + w;
        self.t_ns = t_ns;
        before
    }
}
