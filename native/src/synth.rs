//! A fast generator of realistic CoreDNS captures (classic pcap, Ethernet) for benchmarks:
//! the guide's rcode mix, SERVFAIL after about 6 s, lost queries re-sent after 5 s,
//! duplicate responses, A/AAAA pairs from one socket, DNS over TCP and IPv6 clients.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Query,
    Response { rcode: u8, answer: bool },
    TcpSyn,
    TcpSynAck,
    TcpAck,
    TcpFin,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    ts_ns: i64,
    seq: u64,
    kind: Kind,
    from_client: bool,
    tcp: bool,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    id: u16,
    qtype: u16,
    name: u32,
    /// Initial sequence numbers of a TCP connection (client, server).
    isn: (u32, u32),
    /// For a TCP FIN: the rcode of the connection's response (its length sets the ack).
    fin_rcode: u8,
}

const INTERNAL: &[&str] = &["kubernetes.default.svc.cluster.local", "redis.cache.svc.cluster.local", "api.shop.svc.cluster.local",
    "orders.shop.svc.cluster.local", "payments.shop.svc.cluster.local", "postgres.data.svc.cluster.local",
    "kafka-0.kafka.data.svc.cluster.local", "metrics-server.kube-system.svc.cluster.local"];
const EXTERNAL: &[&str] = &["db.contoso.com", "login.microsoftonline.com", "management.azure.com",
    "mcr.microsoft.com", "contoso.blob.core.windows.net", "vault.azure.net"];
const SUFFIXES: &[&str] = &["default.svc.cluster.local", "svc.cluster.local", "cluster.local",
    "iosffyoulcwehgo1g3egb3m4oc.jx.internal.cloudapp.net"];

fn name_of(n: u32) -> String {
    let n = n as usize;
    let i = INTERNAL.len();
    let e = EXTERNAL.len();
    if n < i {
        INTERNAL[n].to_string()
    } else if n < i + e {
        EXTERNAL[n - i].to_string()
    } else {
        let k = n - i - e;
        format!("{}.{}", EXTERNAL[k / SUFFIXES.len() % e], SUFFIXES[k % SUFFIXES.len()])
    }
}

struct Writer {
    out: BufWriter<File>,
    pkt: Vec<u8>,
    names: Vec<Vec<u8>>,
    written: u64,
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pending {
    fn rcode_hint(&self) -> u8 {
        match self.kind {
            Kind::Response { rcode, .. } => rcode,
            _ => self.fin_rcode,
        }
    }
    fn answer_hint(&self) -> bool {
        match self.kind {
            Kind::Response { answer, .. } => answer,
            _ => self.fin_rcode == 0,
        }
    }
}

impl Writer {
    fn dns(&self, p: &Pending, buf: &mut Vec<u8>) {
        let name = &self.names[p.name as usize];
        let (resp, rcode, answer) = match p.kind {
            Kind::Response { rcode, answer } => (true, rcode, answer),
            _ => (false, 0, false),
        };
        let flags: u16 = if resp { 0x8180 | rcode as u16 } else { 0x0100 };
        let (an, ns) = if resp && answer { (1u16, 0u16) } else if resp && rcode == 3 { (0, 1) } else { (0, 0) };
        buf.extend_from_slice(&p.id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        for v in [1u16, an, ns, 1] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        buf.extend_from_slice(name);
        buf.extend_from_slice(&p.qtype.to_be_bytes());
        buf.extend_from_slice(&1u16.to_be_bytes());
        if an == 1 {
            buf.extend_from_slice(&[0xC0, 0x0C]);
            buf.extend_from_slice(&p.qtype.to_be_bytes());
            buf.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            if p.qtype == 28 {
                buf.extend_from_slice(&16u16.to_be_bytes());
                buf.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]);
            } else {
                buf.extend_from_slice(&4u16.to_be_bytes());
                buf.extend_from_slice(&[10, 0, (p.name & 0xFF) as u8, 7]);
            }
        }
        if ns == 1 {
            // SOA for cluster.local, as CoreDNS answers NXDOMAIN.
            let zone: &[u8] = b"\x07cluster\x05local\x00";
            buf.extend_from_slice(zone);
            buf.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 5]);
            let rdata_start = buf.len();
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(b"\x02ns\x03dns\x07cluster\x05local\x00");
            buf.extend_from_slice(b"\x0ahostmaster\x07cluster\x05local\x00");
            for v in [1u32, 7200, 1800, 86400, 5] {
                buf.extend_from_slice(&v.to_be_bytes());
            }
            let rdlen = (buf.len() - rdata_start - 2) as u16;
            buf[rdata_start..rdata_start + 2].copy_from_slice(&rdlen.to_be_bytes());
        }
        // EDNS OPT record, as glibc and CoreDNS send.
        buf.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    }

    fn emit(&mut self, p: &Pending) -> std::io::Result<()> {
        let mut payload = Vec::with_capacity(128);
        let (tcp_flags, has_dns) = match p.kind {
            Kind::TcpSyn => (0x02u8, false),
            Kind::TcpSynAck => (0x12, false),
            Kind::TcpAck => (0x10, false),
            Kind::TcpFin => (0x11, false),
            _ => (0x18, true),
        };
        if has_dns {
            if p.tcp {
                payload.extend_from_slice(&[0, 0]);
            }
            self.dns(p, &mut payload);
            if p.tcp {
                let l = (payload.len() - 2) as u16;
                payload[0..2].copy_from_slice(&l.to_be_bytes());
            }
        }
        let (src, dst) = if p.from_client { (p.client, p.server) } else { (p.server, p.client) };
        let mut l4 = Vec::with_capacity(payload.len() + 20);
        if p.tcp {
            // One exchange per connection: the query's and the response's lengths fix
            // every later sequence number.
            let (ci, si) = p.isn;
            let msg_len = |resp: bool| {
                let mut b = Vec::new();
                let kind = if resp { Kind::Response { rcode: p.rcode_hint(), answer: p.answer_hint() } } else { Kind::Query };
                self.dns(&Pending { kind, ..p.clone() }, &mut b);
                b.len() as u32 + 2
            };
            let (seq, ack) = match (p.kind, p.from_client) {
                (Kind::TcpSyn, _) => (ci, 0u32),
                (Kind::TcpSynAck, _) => (si, ci.wrapping_add(1)),
                (Kind::TcpAck, _) => (ci.wrapping_add(1), si.wrapping_add(1)),
                (Kind::Query, _) => (ci.wrapping_add(1), si.wrapping_add(1)),
                (Kind::Response { .. }, _) => (si.wrapping_add(1), ci.wrapping_add(1).wrapping_add(msg_len(false))),
                (Kind::TcpFin, _) => (
                    ci.wrapping_add(1).wrapping_add(msg_len(false)),
                    si.wrapping_add(1).wrapping_add(msg_len(true)),
                ),
            };
            l4.extend_from_slice(&src.1.to_be_bytes());
            l4.extend_from_slice(&dst.1.to_be_bytes());
            l4.extend_from_slice(&seq.to_be_bytes());
            l4.extend_from_slice(&ack.to_be_bytes());
            l4.extend_from_slice(&[0x50, tcp_flags, 0xFF, 0xFF, 0, 0, 0, 0]);
            l4.extend_from_slice(&payload);
        } else {
            l4.extend_from_slice(&src.1.to_be_bytes());
            l4.extend_from_slice(&dst.1.to_be_bytes());
            l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(&payload);
        }
        let proto = if p.tcp { 6u8 } else { 17 };
        self.pkt.clear();
        self.pkt.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.pkt.extend_from_slice(&[0x08, 0x00]);
                let start = self.pkt.len();
                let total = (20 + l4.len()) as u16;
                self.pkt.extend_from_slice(&[0x45, 0]);
                self.pkt.extend_from_slice(&total.to_be_bytes());
                self.pkt.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
                self.pkt.extend_from_slice(&s.octets());
                self.pkt.extend_from_slice(&d.octets());
                let c = checksum(&self.pkt[start..start + 20], 0);
                self.pkt[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.pkt.extend_from_slice(&[0x86, 0xDD]);
                self.pkt.extend_from_slice(&[0x60, 0, 0, 0]);
                self.pkt.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                self.pkt.extend_from_slice(&[proto, 64]);
                self.pkt.extend_from_slice(&s.octets());
                self.pkt.extend_from_slice(&d.octets());
                if !p.tcp {
                    let mut pseudo: u32 = 0;
                    for c in s.octets().chunks(2).chain(d.octets().chunks(2)) {
                        pseudo += u16::from_be_bytes([c[0], c[1]]) as u32;
                    }
                    pseudo += l4.len() as u32 + 17;
                    let mut c = checksum(&l4, pseudo);
                    if c == 0 {
                        c = 0xFFFF;
                    }
                    l4[6..8].copy_from_slice(&c.to_be_bytes());
                }
            }
            _ => unreachable!(),
        }
        self.pkt.extend_from_slice(&l4);
        let sec = p.ts_ns.div_euclid(1_000_000_000) as u32;
        let usec = (p.ts_ns.rem_euclid(1_000_000_000) / 1000) as u32;
        let len = self.pkt.len() as u32;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&sec.to_le_bytes());
        hdr[4..8].copy_from_slice(&usec.to_le_bytes());
        hdr[8..12].copy_from_slice(&len.to_le_bytes());
        hdr[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&hdr)?;
        self.out.write_all(&self.pkt)?;
        self.written += 1;
        Ok(())
    }
}

fn encode_name(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in s.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// Write about `packets` packets to `path`; returns the number written.
pub fn write_capture(path: &str, packets: u64, seed: u64, start_s: f64) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut w = Writer { out: BufWriter::with_capacity(4 << 20, file), pkt: Vec::with_capacity(256), names: Vec::new(), written: 0 };
    let n_names = INTERNAL.len() + EXTERNAL.len() + EXTERNAL.len() * SUFFIXES.len();
    w.names = (0..n_names as u32).map(|i| encode_name(&name_of(i))).collect();
    // pcap header: microseconds, little-endian, Ethernet.
    let mut hdr = Vec::new();
    {
        let v = 0xA1B2_C3D4u32;
        hdr.extend_from_slice(&v.to_le_bytes());
    }
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&262_144u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    w.out.write_all(&hdr)?;

    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let coredns: Vec<IpAddr> = (0..2).map(|i| IpAddr::V4(Ipv4Addr::new(10, 244, 0, 10 + i))).collect();
    let coredns6: Vec<IpAddr> = (0..2).map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10 + i))).collect();
    let upstream = IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16));
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut t = (start_s * 1e9) as i64;
    let mut seq = 0u64;
    // ~7,300 messages/s as in the guide's merged capture.
    let mean_gap_ns = 270_000.0;
    let mut next_id: u16 = 1;
    let mut push = |heap: &mut BinaryHeap<Reverse<Pending>>, mut p: Pending| {
        seq += 1;
        p.seq = seq;
        heap.push(Reverse(p));
    };
    while w.written < packets {
        while let Some(Reverse(top)) = heap.peek() {
            if top.ts_ns > t || w.written >= packets {
                break;
            }
            let Reverse(p) = heap.pop().unwrap();
            w.emit(&p)?;
        }
        if w.written >= packets {
            break;
        }
        t += (-(1.0 - rng.unit()).ln() * mean_gap_ns) as i64 + 1;
        let v6 = rng.below(100) < 5;
        let ci = rng.below(400) as u32;
        let client_ip = if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, (ci >> 8) as u16, ci as u16 & 0xFF))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 244, 1 + (ci / 200) as u8, (ci % 200) as u8 + 2))
        };
        let server_ip = if v6 { coredns6[rng.below(2) as usize] } else { coredns[rng.below(2) as usize] };
        let client = (client_ip, 32768 + rng.below(28000) as u16);
        let server = (server_ip, 53u16);
        let roll = rng.below(10_000);
        // Lost queries are re-sent over UDP only: a re-sent TCP segment is a TCP retransmission.
        let tcp = roll >= 280 && rng.below(1000) < 10;
        let isn = (rng.next() as u32, rng.next() as u32);
        // Outcome mix: 84 % answered, 12.7 % NXDOMAIN, 2.7 % SERVFAIL after ~6 s, lost 0.1 %.
        let (name, rcode, delay_ns, lost) = if roll < 270 {
            (rng.below(EXTERNAL.len() as u64) as u32 + INTERNAL.len() as u32, 2u8, 6_000_000_000 + rng.below(500_000_000) as i64, false)
        } else if roll < 280 {
            (rng.below(INTERNAL.len() as u64) as u32, 0, 0, true)
        } else if roll < 1550 {
            let k = rng.below((EXTERNAL.len() * SUFFIXES.len()) as u64) as u32;
            (INTERNAL.len() as u32 + EXTERNAL.len() as u32 + k, 3, 50_000 + rng.below(400_000) as i64, false)
        } else if roll < 8500 {
            (rng.below(INTERNAL.len() as u64) as u32, 0, 40_000 + rng.below(300_000) as i64, false)
        } else {
            (rng.below(EXTERNAL.len() as u64) as u32 + INTERNAL.len() as u32, 0, 1_000_000 + rng.below(20_000_000) as i64, false)
        };
        let pair = !tcp && rng.below(100) < 40;
        let types: &[u16] = if pair { &[1, 28] } else if rng.below(4) == 0 { &[28] } else { &[1] };
        let mut tq = t;
        if tcp {
            for (i, k) in [Kind::TcpSyn, Kind::TcpSynAck, Kind::TcpAck].into_iter().enumerate() {
                push(&mut heap, Pending { ts_ns: tq + i as i64 * 30_000, seq: 0, kind: k, from_client: i != 1, tcp, client, server,
                    id: 0, qtype: types[0], name, isn, fin_rcode: rcode });
            }
            tq += 90_000;
        }
        for &qtype in types {
            next_id = next_id.wrapping_mul(25_173).wrapping_add(13_849);
            let id = next_id;
            let q = Pending { ts_ns: tq, seq: 0, kind: Kind::Query, from_client: true, tcp, client, server, id, qtype, name,
                isn, fin_rcode: rcode };
            push(&mut heap, q.clone());
            let answer = rcode == 0;
            let resp = |ts: i64| Pending { ts_ns: ts, kind: Kind::Response { rcode, answer }, from_client: false, ..q.clone() };
            if lost {
                // Re-sent after the resolver's 5 s time-out; answered half of the time.
                let again = tq + 5_000_000_000 + rng.below(50_000_000) as i64;
                push(&mut heap, Pending { ts_ns: again, ..q.clone() });
                if rng.below(2) == 0 {
                    push(&mut heap, resp(again + 300_000));
                }
            } else {
                let rt = tq + delay_ns;
                push(&mut heap, resp(rt));
                if rng.below(10_000) < 5 {
                    push(&mut heap, resp(rt + 200_000));
                }
                if delay_ns >= 1_000_000 && !tcp {
                    // Forwarded upstream by CoreDNS: its own query and answer.
                    let up_client = (server_ip, 40000 + rng.below(20000) as u16);
                    let up = Pending { ts_ns: tq + 20_000, seq: 0, kind: Kind::Query, from_client: true, tcp: false,
                        client: up_client, server: (upstream, 53), id: id ^ 0x5A5A, qtype, name, isn, fin_rcode: rcode };
                    if let (IpAddr::V4(_), IpAddr::V4(_)) = (up_client.0, upstream) {
                        push(&mut heap, up.clone());
                        if rcode != 2 {
                            push(&mut heap, Pending { ts_ns: rt - 20_000, kind: Kind::Response { rcode, answer }, from_client: false, ..up });
                        }
                    }
                }
            }
            tq += 15_000;
        }
        if tcp {
            let end = tq + delay_ns + 100_000;
            push(&mut heap, Pending { ts_ns: end, seq: 0, kind: Kind::TcpFin, from_client: true, tcp, client, server, id: 0,
                qtype: types[0], name, isn, fin_rcode: rcode });
        }
    }
    while let Some(Reverse(p)) = heap.pop() {
        if w.written >= packets {
            break;
        }
        w.emit(&p)?;
    }
    w.out.flush()?;
    Ok(w.written)
}
