//! The trace model: `flows` concurrent flows, each packet taken from a flow chosen uniformly
//! at random among the live ones (so flows interleave as on a real link), a finished flow
//! replaced at once by a new one. Background flows have Zipf-distributed sizes; TCP flows open
//! with a three-way handshake and close with FIN/ACK (or a RST); UDP flows exchange datagrams
//! both ways. Data packets take IMIX sizes. A share of all packets comes from planted heavy
//! sources, each spread over many small flows (what heavy-hitter detection must find while no
//! single flow stands out): one-way bursts of 1-8 UDP datagrams or lone TCP SYNs, so every
//! packet of them counts for the source. Packet times advance at a fixed mean rate with jitter.

use crate::frame::{self, Header, L4, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN};
use crate::rng::Rng;
use crate::zipf::Zipf;

/// What to generate (see the binary's `--help` for each option).
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub packets: u64,
    pub flows: u32,
    pub zipf_s: f64,
    pub min_flow_packets: u32,
    pub max_flow_packets: u32,
    pub udp_fraction: f64,
    pub ipv6_fraction: f64,
    pub vlan_fraction: f64,
    pub rst_fraction: f64,
    pub heavy_sources: u32,
    pub heavy_share: f64,
    pub pps: f64,
    pub start_s: u64,
    pub checksums: bool,
    /// Weights of the data frame sizes 60, 590 and 1514 bytes ([`IMIX_SIZES`]).
    pub imix: [u32; 3],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            packets: 1_000_000,
            flows: 10_000,
            zipf_s: 1.5,
            min_flow_packets: 1,
            max_flow_packets: 100_000,
            udp_fraction: 0.2,
            ipv6_fraction: 0.2,
            vlan_fraction: 0.1,
            rst_fraction: 0.05,
            heavy_sources: 4,
            heavy_share: 0.12,
            pps: 1_000_000.0,
            start_s: 1_700_000_000,
            checksums: false,
            imix: IMIX_WEIGHTS,
        }
    }
}

/// IMIX frame sizes without FCS (the "simple IMIX" 64/594/1518 on the wire).
pub const IMIX_SIZES: [usize; 3] = [60, 590, 1514];
/// The simple IMIX's weights (7:4:1, a 358-byte mean). Internet links carry more full-size
/// frames: 5:3:3 gives a mean near 520 bytes over a whole trace (handshakes included).
pub const IMIX_WEIGHTS: [u32; 3] = [7, 4, 1];

/// Where a flow is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Syn,
    SynAck,
    Ack,
    Data,
    FinClient,
    FinServer,
    LastAck,
    Rst,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Flow {
    tcp: bool,
    v6: bool,
    vlan: u16,
    client: [u8; 16],
    server: [u8; 16],
    cport: u16,
    sport: u16,
    /// Data packets still to send.
    data_left: u32,
    phase: Phase,
    /// Packets only from client to server (heavy sources: UDP bursts and SYN-only probes).
    one_way: bool,
    cseq: u32,
    sseq: u32,
}

/// Counts of what was generated.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub tcp_flows: u64,
    pub heavy_packets: u64,
    pub last_ts_ns: u64,
    /// The planted heavy sources (IPv4, 4 bytes each).
    pub heavy_ips: Vec<[u8; 4]>,
    pub mean_flow_packets: f64,
}

const SERVER_PORTS: [u16; 8] = [443, 80, 53, 8080, 123, 22, 25, 993];

pub struct Generator {
    o: Options,
    rng: Rng,
    zipf: Zipf,
    flows: Vec<Flow>,
    heavy: Vec<Flow>,
    heavy_ips: Vec<[u8; 4]>,
    payload: Vec<u8>,
    ip_id: u16,
    ts_ns: u64,
    step_ns: f64,
    pub summary: Summary,
}

impl Generator {
    pub fn new(o: Options) -> Generator {
        let mut rng = Rng::new(o.seed);
        let zipf = Zipf::new(o.zipf_s, o.min_flow_packets, o.max_flow_packets);
        // Random payload bytes (so payload entropy is realistic), sliced per packet.
        let payload: Vec<u8> = (0..(1 << 16) + 1600)
            .map(|_| rng.next_u64() as u8)
            .collect();
        // Heavy sources in 198.18.0.0/15 (RFC 2544's benchmarking range): never drawn for
        // background traffic, so they are the only sources that stand out.
        let heavy_ips: Vec<[u8; 4]> = (0..o.heavy_sources)
            .map(|i| [198, 18, (i >> 8) as u8, (i & 0xFF) as u8 + 1])
            .collect();
        let summary = Summary {
            heavy_ips: heavy_ips.clone(),
            mean_flow_packets: zipf.mean(),
            ..Default::default()
        };
        let mut g = Generator {
            step_ns: 1e9 / o.pps.max(1.0),
            ts_ns: o.start_s * 1_000_000_000,
            rng,
            zipf,
            flows: Vec::with_capacity(o.flows as usize),
            heavy: Vec::new(),
            heavy_ips,
            payload,
            ip_id: 0,
            summary,
            o,
        };
        for _ in 0..g.o.flows.max(1) {
            let f = g.new_flow();
            g.flows.push(f);
        }
        if g.o.heavy_sources > 0 && g.o.heavy_share > 0.0 {
            for i in 0..(g.o.heavy_sources * 64) {
                let f = g.new_heavy_flow(i % g.o.heavy_sources);
                g.heavy.push(f);
            }
        }
        g
    }

    fn random_v4(&mut self) -> [u8; 16] {
        let mut a = [0u8; 16];
        // 10.0.0.0/8 (RFC 1918).
        let r = self.rng.next_u64() as u32;
        a[..4].copy_from_slice(&(0x0A00_0000 | (r & 0x00FF_FFFF)).to_be_bytes());
        a
    }

    fn random_v6(&mut self) -> [u8; 16] {
        // 2001:db8::/32 (RFC 3849).
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        a[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a
    }

    fn new_flow(&mut self) -> Flow {
        self.summary.flows += 1;
        let tcp = !self.rng.chance(self.o.udp_fraction);
        let v6 = self.rng.chance(self.o.ipv6_fraction);
        let vlan = if self.rng.chance(self.o.vlan_fraction) {
            1 + self.rng.below(4094) as u16
        } else {
            0
        };
        let (client, server) = if v6 {
            (self.random_v6(), self.random_v6())
        } else {
            (self.random_v4(), self.random_v4())
        };
        let size = self.zipf.sample(&mut self.rng);
        let sport = SERVER_PORTS[self.rng.below(SERVER_PORTS.len() as u64) as usize];
        self.flow(tcp, v6, vlan, client, server, sport, size)
    }

    /// A small one-way flow from heavy source `i` to a random destination: a burst of 1-8 UDP
    /// datagrams or a lone TCP SYN (a probe), so every packet of it counts for the source.
    fn new_heavy_flow(&mut self, i: u32) -> Flow {
        self.summary.flows += 1;
        let mut client = [0u8; 16];
        client[..4].copy_from_slice(&self.heavy_ips[i as usize]);
        let server = self.random_v4();
        let tcp = self.rng.chance(0.3);
        let size = 1 + self.rng.below(8) as u32;
        let mut f = self.flow(tcp, false, 0, client, server, 80, size);
        f.one_way = true;
        f
    }

    #[allow(clippy::too_many_arguments)]
    fn flow(
        &mut self,
        tcp: bool,
        v6: bool,
        vlan: u16,
        client: [u8; 16],
        server: [u8; 16],
        sport: u16,
        size: u32,
    ) -> Flow {
        if tcp {
            self.summary.tcp_flows += 1;
        }
        Flow {
            tcp,
            v6,
            vlan,
            client,
            server,
            cport: 1024 + self.rng.below(64512) as u16,
            sport,
            data_left: size,
            phase: if tcp { Phase::Syn } else { Phase::Data },
            one_way: false,
            cseq: self.rng.next_u64() as u32,
            sseq: self.rng.next_u64() as u32,
        }
    }

    fn imix_len(&mut self) -> usize {
        let total: u32 = self.o.imix.iter().sum();
        let mut r = self.rng.below(total.max(1) as u64) as u32;
        for (w, len) in self.o.imix.into_iter().zip(IMIX_SIZES) {
            if r < w {
                return len;
            }
            r -= w;
        }
        IMIX_SIZES[0]
    }

    /// Generate the next packet into `frame`; returns its time in ns since the epoch.
    pub fn next_packet(&mut self, frame: &mut Vec<u8>) -> u64 {
        let heavy = !self.heavy.is_empty() && self.rng.chance(self.o.heavy_share);
        let (pool_heavy, slot) = if heavy {
            (true, self.rng.below(self.heavy.len() as u64) as usize)
        } else {
            (false, self.rng.below(self.flows.len() as u64) as usize)
        };
        let mut f = if pool_heavy {
            self.heavy[slot]
        } else {
            self.flows[slot]
        };
        self.emit(&mut f, frame);
        if f.phase == Phase::Done {
            f = if pool_heavy {
                let src = (slot as u32) % self.o.heavy_sources.max(1);
                self.new_heavy_flow(src)
            } else {
                self.new_flow()
            };
        }
        if pool_heavy {
            self.heavy[slot] = f;
            self.summary.heavy_packets += 1;
        } else {
            self.flows[slot] = f;
        }
        // Uniform jitter of +-50 % around the mean step; times never go back (the pcap keeps
        // microseconds, so packets closer than 1 us share a time).
        let jitter = 0.5 + self.rng.unit();
        self.ts_ns += (self.step_ns * jitter).max(1.0) as u64;
        self.summary.packets += 1;
        self.summary.bytes += frame.len() as u64;
        self.summary.last_ts_ns = self.ts_ns;
        self.ts_ns
    }

    /// Emit `f`'s next packet and advance its state.
    fn emit(&mut self, f: &mut Flow, frame: &mut Vec<u8>) {
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut to_server = true;
        let mut payload_len = 0usize;
        let mut flags = TCP_ACK;
        match f.phase {
            Phase::Syn => {
                flags = TCP_SYN;
                f.phase = if f.one_way {
                    Phase::Done
                } else {
                    Phase::SynAck
                };
            }
            Phase::SynAck => {
                flags = TCP_SYN | TCP_ACK;
                to_server = false;
                f.phase = Phase::Ack;
            }
            Phase::Ack => {
                f.phase = Phase::Data;
                if f.data_left == 0 {
                    f.phase = Phase::FinClient;
                }
            }
            Phase::Data => {
                // Requests are a third of data packets; responses the rest.
                to_server = f.one_way || self.rng.below(3) == 0;
                let hdr = 14
                    + if f.vlan != 0 { 4 } else { 0 }
                    + if f.v6 { 40 } else { 20 }
                    + if f.tcp { 20 } else { 8 };
                payload_len = self.imix_len().saturating_sub(hdr).max(1);
                flags = TCP_PSH | TCP_ACK;
                f.data_left = f.data_left.saturating_sub(1);
                if f.data_left == 0 {
                    f.phase = if !f.tcp {
                        Phase::Done
                    } else if self.rng.chance(self.o.rst_fraction) {
                        Phase::Rst
                    } else {
                        Phase::FinClient
                    };
                }
            }
            Phase::FinClient => {
                flags = TCP_FIN | TCP_ACK;
                f.phase = Phase::FinServer;
            }
            Phase::FinServer => {
                flags = TCP_FIN | TCP_ACK;
                to_server = false;
                f.phase = Phase::LastAck;
            }
            Phase::LastAck => f.phase = Phase::Done,
            Phase::Rst => {
                flags = TCP_RST;
                f.phase = Phase::Done;
            }
            Phase::Done => {}
        }
        let (src, dst, sp, dp) = if to_server {
            (f.client, f.server, f.cport, f.sport)
        } else {
            (f.server, f.client, f.sport, f.cport)
        };
        let l4 = if f.tcp {
            let (seq, ack) = if to_server {
                (f.cseq, f.sseq)
            } else {
                (f.sseq, f.cseq)
            };
            let consumed = payload_len as u32 + (flags & (TCP_SYN | TCP_FIN) != 0) as u32;
            if to_server {
                f.cseq = f.cseq.wrapping_add(consumed);
            } else {
                f.sseq = f.sseq.wrapping_add(consumed);
            }
            L4::Tcp {
                seq,
                ack: if flags & TCP_ACK != 0 { ack } else { 0 },
                flags,
                window: 65535,
            }
        } else {
            L4::Udp
        };
        let h = Header {
            vlan: f.vlan,
            v6: f.v6,
            src,
            dst,
            sport: sp,
            dport: dp,
            l4,
            ip_id: self.ip_id,
        };
        let off = self.rng.below(1 << 16) as usize;
        frame::build(
            frame,
            &h,
            &self.payload[off..off + payload_len],
            self.o.checksums,
        );
    }
}
