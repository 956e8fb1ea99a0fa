//! The exact f64 EMA oracle of the rates tests.

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
