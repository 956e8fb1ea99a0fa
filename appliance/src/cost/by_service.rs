//! Plugin cost by service: for each (service, plugin) pair the calls, packets, flows and
//! cycles the plugin spent on that service's flows.
//!
//! Measured, not apportioned: when services are configured the worker hands each burst to
//! the plugins one service at a time, and the plugin rows of the [`CostTable`] are read before
//! and after each group (the deltas are that service's). The scratch is allocated at start.

use super::{CostRow, RowId};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub calls: u64,
    pub packets: u64,
    pub flows: u64,
    pub cycles: u64,
}

impl Cell {
    fn of(r: &CostRow) -> Cell {
        Cell {
            calls: r.calls,
            packets: r.packets,
            flows: r.flows,
            cycles: r.cycles,
        }
    }

    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.cycles as f64 / self.packets as f64
        }
    }
}

/// Per (service, plugin) cells; service 0 is "no service".
#[derive(Clone, Debug, Default)]
pub struct ServiceCost {
    pub services: Vec<String>,
    pub plugins: Vec<String>,
    pub cells: Vec<Cell>,
    before: Vec<Cell>,
}

impl ServiceCost {
    /// `services`: the names of ids 1.. (id 0, no service, is added); `plugins`: registry order.
    pub fn new(services: &[String], plugins: &[String]) -> ServiceCost {
        let mut names = vec![String::new()];
        names.extend(services.iter().cloned());
        ServiceCost {
            cells: vec![Cell::default(); names.len() * plugins.len()],
            before: vec![Cell::default(); plugins.len()],
            services: names,
            plugins: plugins.to_vec(),
        }
    }

    pub fn cell(&self, service: usize, plugin: usize) -> &Cell {
        &self.cells[service * self.plugins.len() + plugin]
    }

    /// Remember the plugin rows before a group of calls for one service.
    #[inline]
    pub fn begin(&mut self, rows: &[CostRow]) {
        for (i, b) in self.before.iter_mut().enumerate() {
            if let Some(r) = rows.get(RowId::plugin(i).0 as usize) {
                *b = Cell::of(r);
            }
        }
    }

    /// Add what the plugin rows gained since [`ServiceCost::begin`] to `service`.
    #[inline]
    pub fn end(&mut self, rows: &[CostRow], service: u16) {
        let n = self.plugins.len();
        let base = (service as usize).min(self.services.len().saturating_sub(1)) * n;
        for (i, b) in self.before.iter().enumerate() {
            let Some(r) = rows.get(RowId::plugin(i).0 as usize) else {
                continue;
            };
            let now = Cell::of(r);
            let c = &mut self.cells[base + i];
            c.calls += now.calls - b.calls;
            c.packets += now.packets - b.packets;
            c.flows += now.flows - b.flows;
            c.cycles += now.cycles.wrapping_sub(b.cycles);
        }
    }

    pub fn merge(&mut self, o: &ServiceCost) {
        for (a, b) in self.cells.iter_mut().zip(&o.cells) {
            a.calls += b.calls;
            a.packets += b.packets;
            a.flows += b.flows;
            a.cycles += b.cycles;
        }
    }

    /// The "by service" section of the cost table.
    pub fn format(&self, tsc_hz: Option<f64>) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "by service:\n{:<16} {:<16} {:>10} {:>14} {:>10} {:>11}",
            "service", "plugin", "calls", "packets", "flows", "cyc/pkt"
        );
        if tsc_hz.is_some() {
            let _ = write!(s, " {:>9}", "ns/pkt");
        }
        s.push('\n');
        for (si, svc) in self.services.iter().enumerate() {
            let name = if svc.is_empty() {
                "(none)"
            } else {
                svc.as_str()
            };
            for (pi, p) in self.plugins.iter().enumerate() {
                let c = self.cell(si, pi);
                let _ = write!(
                    s,
                    "{:<16} {:<16} {:>10} {:>14} {:>10} {:>11.1}",
                    name,
                    p,
                    c.calls,
                    c.packets,
                    c.flows,
                    c.cycles_per_packet()
                );
                if let Some(hz) = tsc_hz {
                    let _ = write!(s, " {:>9.1}", c.cycles_per_packet() * 1e9 / hz);
                }
                s.push('\n');
            }
        }
        s
    }
}
