//! The stages after the flow table: decayed rates (and heavy-hitter tables), then the plugins,
//! over the packets the flow-table stage queued.

use super::Worker;
use crate::cost::CostTable;
use crate::plugin_host::WorkerPlugins;
use weir_plugin_api::PacketV1;

impl Worker {
    /// Update every queued packet's flow rates and the heavy-hitter tables.
    pub(super) fn rates_stage(&mut self) {
        let tables = &*self.tables;
        for (i, pkt) in self.batch_pkts.iter().enumerate() {
            let tick = tables.tick(pkt.ts_ns);
            let e = self.table.entry_mut(self.batch_flows[i]);
            e.ext.rates.on_packet(tables, tick, pkt.wire_len);
            for hh in self.heavy_hitters.iter_mut() {
                hh.observe(&self.batch_keys[i], tick, pkt.wire_len);
            }
        }
    }

    /// Hand the queued packets to the plugins (one service at a time with a by-service cost
    /// table); the host times each plugin on its row.
    pub(super) fn plugins_stage(&mut self) {
        let Some(p) = self.plugins.as_mut() else {
            return;
        };
        if self.batch_pkts.is_empty() {
            return;
        }
        let by_service =
            self.services.is_some() && self.cost.enabled() && self.cost.by_service.is_some();
        if by_service {
            dispatch_by_service(
                p,
                &mut self.cost,
                &self.batch_slabs,
                &self.batch_pkts,
                &mut self.batch_svc,
                &mut self.group_slabs,
                &mut self.group_pkts,
            );
        } else {
            // SAFETY: every slab belongs to a live flow of this worker's table, and every
            // packet's data stays valid until the caller releases the burst, after this.
            unsafe { p.update_burst(&self.batch_slabs, &self.batch_pkts, &mut self.cost) };
        }
    }

    /// Empty the queue once its packets went through every stage.
    pub(super) fn clear_batch(&mut self) {
        self.batch_svc.clear();
        self.batch_pkts.clear();
        self.batch_slabs.clear();
        self.batch_flows.clear();
        self.batch_keys.clear();
    }
}

/// Hand a batch to the plugins one service at a time (packets of one flow keep their order),
/// so the plugin rows' growth over each group is that service's cost.
fn dispatch_by_service(
    p: &mut WorkerPlugins,
    cost: &mut CostTable,
    slabs: &[*mut u8],
    pkts: &[PacketV1],
    svc: &mut [u16],
    group_slabs: &mut Vec<*mut u8>,
    group_pkts: &mut Vec<PacketV1>,
) {
    const TAKEN: u16 = u16::MAX;
    let n = pkts.len().min(slabs.len()).min(svc.len());
    let mut first = 0;
    while first < n {
        let s = svc[first];
        if svc[first..n].iter().all(|&x| x == s) {
            // One service left: no copy.
            cost.service_begin();
            // SAFETY: as in plugins_stage (live slabs of this table, packets of this burst).
            unsafe { p.update_burst(&slabs[first..n], &pkts[first..n], cost) };
            cost.service_end(s);
            return;
        }
        group_slabs.clear();
        group_pkts.clear();
        for i in first..n {
            if svc[i] == s {
                group_slabs.push(slabs[i]);
                group_pkts.push(pkts[i]);
                svc[i] = TAKEN;
            }
        }
        cost.service_begin();
        // SAFETY: as above.
        unsafe { p.update_burst(group_slabs, group_pkts, cost) };
        cost.service_end(s);
        while first < n && svc[first] == TAKEN {
            first += 1;
        }
    }
}
