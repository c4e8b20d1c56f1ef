//! What `tshark -q -z dns,tree -z dns_qr,tree` of Wireshark 4.4 prints (packet-dns.c:
//! dns_stats_tree_init/_packet and dns_qr_stats_tree_init/_packet), fed one DNS message at
//! a time.  Checked byte for byte against tshark 4.4.19 by the integration tests.
//!
//! Quirks of 4.4 kept on purpose (they are what users see in their Wireshark):
//! - the tap record never copies the header flags, so every query counts as "Iteration
//!   Desired" and every response as "Non-Authoritative";
//! - "Unanswered" is ticked by every query that is not a retransmission and decremented by
//!   every answered response;
//! - TTLs are read from three global arrays that only the records dissected since the last
//!   tapped message overwrite (OPT records write nothing), so stale values show through.

use crate::dns_tree::{class_name, opcode_name, rcode_name, DnsTap, DnsTree, MessageStats};
use crate::stats_tree::{DataType, StatsTree};
use crate::FastMap;
use std::net::IpAddr;

/// dns_types_vals (short names) as in Wireshark 4.4.
pub fn short_type_name(t: u16) -> String {
    let s = match t {
        0 => "Unused",
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        55 => "HIP",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        32768 => "TA",
        32769 => "DLV",
        65281 => "WINS",
        65282 => "WINS-R",
        65422 => "XPF",
        _ => return format!("Unknown packet type ({t})"),
    };
    s.to_string()
}

/// Size of each of the three TTL arrays (TTL_MAXIMUM_ELEMENTS).
pub const TTL_MAX: usize = 4096;

/// What the 4.4 trees read beyond the 4.0 tap record.
pub struct Tap44<'a> {
    pub base: &'a DnsTap,
    pub src: IpAddr,
    /// Types of every record of the answer, authority and additional sections, in order.
    pub rr_types: &'a [u16],
    /// For a response: the TTL array entries the loop reads (answers, authorities,
    /// additionals), `min(count, TTL_MAX)` each.
    pub ttls: [&'a [u32]; 3],
}

/// The 4.4 `dns,tree`: the pivots are top-level rows, names are short, and "Answer Type"
/// counts every record; the rows after them are 4.0's.
pub struct DnsTree44 {
    pub tree: StatsTree,
    packets: usize,
    qr: usize,
    qtypes: usize,
    rr_types: usize,
    qclasses: usize,
    rcodes: usize,
    opcodes: usize,
    rest: MessageStats,
    by_value: NamedChildren,
}

impl Default for DnsTree44 {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsTree44 {
    pub fn new() -> DnsTree44 {
        let mut t = StatsTree::new("DNS");
        t.first_column = "Packet Type".into();
        let packets = t.create("Total Packets", 0, DataType::Int);
        let qr = t.create("Query/Response", 0, DataType::Int);
        let qtypes = t.create("Query Type", 0, DataType::Int);
        let rr_types = t.create("Answer Type", 0, DataType::Int);
        // "Query Name" is ticked only with the dns.qname_stats preference (off by default).
        t.create("Query Name", 0, DataType::Int);
        let qclasses = t.create("Class", 0, DataType::Int);
        let rcodes = t.create("rcode", 0, DataType::Int);
        let opcodes = t.create("opcodes", 0, DataType::Int);
        let rest = MessageStats::create(&mut t);
        for id in [qr, qtypes, qclasses, rcodes, opcodes, rest.avg_size] {
            t.mirror_burst(id, packets);
        }
        let by_value = NamedChildren::default();
        DnsTree44 { tree: t, packets, qr, qtypes, rr_types, qclasses, rcodes, opcodes, rest, by_value }
    }

    /// stats_tree_tick_pivot with the child found by the value its name stands for.
    fn pivot(&mut self, pivot: usize, value: u32, name: impl FnOnce() -> String) {
        self.by_value.tick_n(&mut self.tree, pivot, value, 1, name);
    }

    pub fn packet(&mut self, now_ms: f64, tap: &Tap44<'_>) {
        let p = tap.base;
        self.tree.set_now(now_ms);
        self.tree.tick(self.packets);
        self.pivot(self.qr, p.qr as u32, || if p.qr == 0 { "Query".into() } else { "Response".into() });
        self.pivot(self.qtypes, p.qtype as u32, || short_type_name(p.qtype));
        self.pivot(self.qclasses, p.qclass as u32, || class_name(p.qclass));
        self.pivot(self.rcodes, p.rcode as u32, || rcode_name(p.rcode));
        self.pivot(self.opcodes, p.opcode as u32, || opcode_name(p.opcode));
        self.tick_answer_types(tap);
        self.rest.packet(&mut self.tree, p);
    }

    /// Only the rows Wireshark 4.0's tree lacks ("Answer Type"), for a tree whose other rows
    /// will be copied from a 4.0 tree fed the same messages at the same instants
    /// (`derive_from`): those rows are about half the 4.4 tree's ticks.
    pub fn packet_own_rows(&mut self, now_ms: f64, tap: &Tap44<'_>) {
        if tap.base.qr != 0 && !tap.rr_types.is_empty() {
            self.tree.set_now(now_ms);
            self.tick_answer_types(tap);
        }
    }

    fn tick_answer_types(&mut self, tap: &Tap44<'_>) {
        if tap.base.qr != 0 && !tap.rr_types.is_empty() {
            // Every record ticks "Answer Type" and its type's child.  A message's ticks
            // share one instant, so they are applied as increases (see tick_n): the parent
            // once for all, each child once per run of equal types (the children's
            // creation order is irrelevant, they are sorted when printed).
            self.tree.increase_or_count(self.rr_types, tap.rr_types.len() as i64);
            let mut rest = tap.rr_types;
            while let Some((&rt, tail)) = rest.split_first() {
                let n = 1 + tail.iter().take_while(|&&t| t == rt).count();
                let c = self.by_value.get(&mut self.tree, self.rr_types, rt as u32, || short_type_name(rt), None);
                self.tree.increase_or_count(c, n as i64);
                rest = &rest[n..];
            }
        }
    }

    /// After `packet_own_rows` for every message: the rows 4.4 shares with 4.0 (the same
    /// ticks at the same instants, only placed and named differently) copied from the
    /// 4.0 tree `t40`, with its clock.  The pivots' children are created here, in the
    /// 4.0 tree's order, which is the order of first appearance 4.4 would have used.
    pub fn derive_from(&mut self, t40: &DnsTree) {
        let src = &t40.tree;
        self.tree.copy_clock(src);
        self.tree.copy_node(self.packets, src, t40.packets);
        for (mine, theirs) in self.rest.ticked().into_iter().zip(t40.rest.ticked()) {
            self.tree.copy_node(mine, src, theirs);
        }
        let pivots = [
            (self.qr, t40.qr),
            (self.qtypes, t40.qtypes),
            (self.qclasses, t40.qclasses),
            (self.rcodes, t40.rcodes),
            (self.opcodes, t40.opcodes),
        ];
        for (i, (mine, theirs)) in pivots.into_iter().enumerate() {
            self.tree.copy_node(mine, src, theirs);
            for &(value, child) in src.pivot_children(theirs) {
                // The same names as `packet` gives them (only the types' are shorter than 4.0's).
                let name = || match i {
                    0 => if value == 0 { "Query".into() } else { "Response".into() },
                    1 => short_type_name(value as u16),
                    _ => src.nodes[child].name.clone(),
                };
                let c = self.by_value.get(&mut self.tree, mine, value, name, None);
                self.tree.copy_node(c, src, child);
            }
        }
    }
}

/// The children of one "From" row, found by address instead of their name (no string
/// built per message).  The last address found is kept apart: messages from one address
/// come in runs (a client's A and AAAA queries, a server's responses), and comparing it
/// is cheaper than hashing.  IPv4 addresses are keyed by their 32 bits (hashing an
/// `IpAddr` costs several times more); IPv6 ones, IPv4-mapped included, apart.
#[derive(Default)]
struct FromChildren {
    v4: FastMap<u32, usize>,
    v6: FastMap<u128, usize>,
    last: Option<(IpAddr, usize)>,
}

impl FromChildren {
    /// tick_stat_node(address, parent): tick the parent, then the address's child.
    fn tick(&mut self, t: &mut StatsTree, parent: usize, ip: IpAddr) {
        t.tick_or_count(parent);
        let child = match self.last {
            Some((k, c)) if k == ip => c,
            _ => {
                let make = || t.child(parent, &ip.to_string());
                let c = match ip {
                    IpAddr::V4(a) => *self.v4.entry(a.to_bits()).or_insert_with(make),
                    IpAddr::V6(a) => *self.v6.entry(a.to_bits()).or_insert_with(make),
                };
                self.last = Some((ip, c));
                c
            }
        };
        t.tick(child);
    }
}

/// Values below this find their child in a flat table (every pivot's common values).
const DENSE_VALUES: usize = 256;

/// Children found by their parent and the number their name stands for: a flat table
/// indexed by (parent, value) for small values, a map for the rest.  Several lookups per
/// message, so no hashing on the common path.
#[derive(Default)]
struct NamedChildren {
    /// `parent * DENSE_VALUES + value` -> child id + 1 (0: not created yet).
    dense: Vec<u32>,
    rest: FastMap<(usize, u32), usize>,
}

impl NamedChildren {
    /// The child of `parent` for `value`, created on first use (named by `name`; with
    /// `mirror`, it borrows that node's burst figures: see `StatsTree::mirror_burst`).
    #[inline]
    fn get(&mut self, t: &mut StatsTree, parent: usize, value: u32, name: impl FnOnce() -> String, mirror: Option<usize>) -> usize {
        let create = |t: &mut StatsTree| {
            let c = t.child(parent, &name());
            if let Some(like) = mirror {
                t.mirror_burst(c, like);
            }
            c
        };
        if (value as usize) < DENSE_VALUES {
            let i = parent * DENSE_VALUES + value as usize;
            if let Some(&c) = self.dense.get(i) {
                if c != 0 {
                    return c as usize - 1;
                }
            }
            let c = create(t);
            if self.dense.len() <= i {
                self.dense.resize((parent + 1) * DENSE_VALUES, 0);
            }
            self.dense[i] = c as u32 + 1;
            c
        } else {
            match self.rest.get(&(parent, value)) {
                Some(&c) => c,
                None => {
                    let c = create(t);
                    self.rest.insert((parent, value), c);
                    c
                }
            }
        }
    }

    /// tick_stat_node(name, parent) `n` times at one instant: the parent, then its child
    /// for `value`.  One increase by `n` leaves a node as `n` ticks would (the values are
    /// positive, so the burst maximum is reached at the last one, with the same window).
    #[inline]
    fn tick_n(&mut self, t: &mut StatsTree, parent: usize, value: u32, n: i64, name: impl FnOnce() -> String) {
        t.increase_or_count(parent, n);
        let c = self.get(t, parent, value, name, None);
        t.increase_or_count(c, n);
    }
}

/// The 4.4 `dns_qr,tree` ("DNS/Query-Response").
pub struct DnsQrTree {
    pub tree: StatsTree,
    total: usize,
    q: Side,
    r: Side,
    q_unanswered: usize,
    q_retrans: usize,
    q_answered: usize,
    r_answered: usize,
    r_unsolicited: usize,
    r_retrans: usize,
    r_counts: [usize; 3],
    ttl_sections: [usize; 3],
    /// "From" of queries and of responses.
    from: [FromChildren; 2],
    named: NamedChildren,
    /// Detached nodes ticked once per query and once per response: every node ticked
    /// exactly once per query (or response) borrows its burst figures from them.
    q_burst: usize,
    r_burst: usize,
}

/// The child nodes every message of one side (query or response) ticks.
struct Side {
    from: usize,
    opcodes_or_rcodes: usize,
    kind: usize,
    types: usize,
    labels: usize,
    payload: usize,
    servicing: usize,
}

const PAYLOAD_LABELS: [&str; 19] = [
    "zero", "= 1B", "= 2B", "<= 4B", "<= 8B", "<= 16B", "<= 32B", "<= 64B", "<= 128B", "<= 256B", "<= 512B",
    "<= 1KB", "<= 2KB", "<= 4KB", "<= 8KB", "<= 16KB", "<= 32KB", "<= 64KB", "> 64KB",
];
const COUNT_LABELS: [&str; 15] =
    ["zero", "= 1", "= 2", "<= 4", "<= 8", "<= 16", "<= 32", "<= 64", "<= 128", "<= 256", "<= 512", "<= 1K", "<= 2K", "<= 4K", "> 4K"];
const TTL_LABELS: [&str; 8] = ["zero", "<= minute", "<= hour", "<= day", "<= week", "<= month", "<= year", "> year"];
const LEVEL_LABELS: [&str; 9] =
    ["1st Level", "2nd Level", "3rd Level", "4th Level", "5th Level", "6th Level", "7th Level", "8th Level", "9+ Level"];

/// Payload bucket: a query is compared with `<` past 4 bytes, a response with `<=`.
fn payload_bucket(size: u32, response: bool) -> usize {
    match size {
        0 => 0,
        1 => 1,
        2 => 2,
        3 | 4 => 3,
        _ => {
            // Bucket 1 + e is "<= 2^e bytes" for e = 3..16, then "> 64KB": the least e
            // with size <= 2^e (a response) or size < 2^e (a query), by the bit length.
            let e = if response { u32::BITS - (size - 1).leading_zeros() } else { u32::BITS - size.leading_zeros() };
            (e as usize + 1).min(18)
        }
    }
}

fn count_bucket(n: u16) -> usize {
    match n {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => {
            // Bucket 1 + e is "<= 2^e" for e = 2..12, then "> 4K": the least e with
            // n <= 2^e, by the bit length of n - 1.
            let e = u16::BITS - (n - 1).leading_zeros();
            (e as usize + 1).min(14)
        }
    }
}

fn ttl_bucket(ttl: u32) -> usize {
    match ttl {
        0 => 0,
        1..=60 => 1,
        61..=3600 => 2,
        3601..=86400 => 3,
        86401..=604800 => 4,
        604801..=2628000 => 5,
        2628001..=31536000 => 6,
        _ => 7,
    }
}

impl Default for DnsQrTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsQrTree {
    pub fn new() -> DnsQrTree {
        let mut t = StatsTree::new("DNS/Query-Response");
        let total = t.create("Total", 0, DataType::Int);
        let qn = t.create("Query", 0, DataType::Int);
        let q = Side {
            from: t.create("From", qn, DataType::Int),
            opcodes_or_rcodes: t.create("Opcodes", qn, DataType::Int),
            kind: t.create("Kind", qn, DataType::Int),
            types: t.create("Types", qn, DataType::Int),
            labels: t.create("Labels", qn, DataType::Int),
            payload: t.create("Payload", qn, DataType::Int),
            servicing: t.create("Servicing", qn, DataType::Int),
        };
        let q_answered = t.create("Answered (ms)", q.servicing, DataType::Float);
        let q_unanswered = t.create("Unanswered", q.servicing, DataType::Int);
        let q_retrans = t.create("Retransmissions", q.servicing, DataType::Int);
        let rn = t.create("Response", 0, DataType::Int);
        let from = t.create("From", rn, DataType::Int);
        let rcodes = t.create("Rcodes", rn, DataType::Int);
        let kind = t.create("Kind", rn, DataType::Int);
        let r_counts = [
            t.create("Answers", rn, DataType::Int),
            t.create("Authorities", rn, DataType::Int),
            t.create("Additionals", rn, DataType::Int),
        ];
        let payload = t.create("Payload", rn, DataType::Int);
        let servicing = t.create("Servicing", rn, DataType::Int);
        let r_answered = t.create("Answered (ms)", servicing, DataType::Float);
        let r_unsolicited = t.create("Unsolicited", servicing, DataType::Int);
        let r_retrans = t.create("Retransmissions", servicing, DataType::Int);
        let ttl = t.create("TTL", rn, DataType::Int);
        let ttl_sections = [
            t.create("Answers", ttl, DataType::Int),
            t.create("Authorities", ttl, DataType::Int),
            t.create("Additionals", ttl, DataType::Int),
        ];
        let r = Side { from, opcodes_or_rcodes: rcodes, kind, types: 0, labels: 0, payload, servicing };
        let (q_burst, r_burst) = (t.detached(), t.detached());
        for id in [q.from, q.opcodes_or_rcodes, q.kind, q.types, q.labels, q.payload, q.servicing] {
            t.mirror_burst(id, q_burst);
        }
        for id in [r.from, r.opcodes_or_rcodes, r.kind, r.payload, r.servicing, r_counts[0], r_counts[1], r_counts[2]] {
            t.mirror_burst(id, r_burst);
        }
        DnsQrTree {
            tree: t,
            total,
            q,
            r,
            q_unanswered,
            q_retrans,
            q_answered,
            r_answered,
            r_unsolicited,
            r_retrans,
            r_counts,
            ttl_sections,
            from: Default::default(),
            named: NamedChildren::default(),
            q_burst,
            r_burst,
        }
    }

    fn tick_named(&mut self, parent: usize, key: u32, name: impl FnOnce() -> String) {
        self.named.tick_n(&mut self.tree, parent, key, 1, name);
    }

    /// `tick_named` for a child ticked exactly once per query (or response): it borrows
    /// the burst figures of `like` (`q_burst` or `r_burst`).
    fn tick_named_mirrored(&mut self, parent: usize, key: u32, like: usize, name: impl FnOnce() -> String) {
        self.tree.tick_or_count(parent);
        let c = self.named.get(&mut self.tree, parent, key, name, Some(like));
        self.tree.tick_or_count(c);
    }

    /// After `packet(.., derived = true)` for every message: "Total" is ticked by every
    /// message as the 4.0 tree's "Total Packets", `q_burst` and `r_burst` by every query and
    /// response as its "Query/Response" children; given the same instants (the first
    /// frame has a time stamp), they are copied from that tree.
    pub fn derive_from(&mut self, t40: &DnsTree) {
        let src = &t40.tree;
        self.tree.copy_node(self.total, src, t40.packets);
        for &(value, child) in src.pivot_children(t40.qr) {
            let like = if value == 0 { self.q_burst } else { self.r_burst };
            self.tree.copy_node(like, src, child);
        }
    }

    fn tick_from(&mut self, response: bool, parent: usize, ip: IpAddr) {
        self.from[response as usize].tick(&mut self.tree, parent, ip);
    }

    /// One message.  With `derived`, "Total" and the per-query and per-response burst
    /// figures are left to `derive_from` (see there).
    pub fn packet(&mut self, now_ms: f64, tap: &Tap44<'_>, derived: bool) {
        let p = tap.base;
        self.tree.set_now(now_ms);
        let like = if p.qr == 0 { self.q_burst } else { self.r_burst };
        if !derived {
            self.tree.tick(like);
            self.tree.tick(self.total);
        }
        let c = self.named.get(&mut self.tree, self.total, p.qr as u32, || if p.qr == 0 { "Query".into() } else { "Response".into() }, Some(like));
        self.tree.count(c);
        if p.qr == 0 {
            self.tick_from(false, self.q.from, tap.src);
            self.tick_named(self.q.opcodes_or_rcodes, p.opcode as u32, || opcode_name(p.opcode));
            self.tick_named_mirrored(self.q.kind, 0, like, || "Iteration Desired".into());
            self.tick_named(self.q.types, p.qtype as u32, || short_type_name(p.qtype));
            let level = (p.qname_labels as usize).wrapping_sub(1).min(8);
            self.tick_named(self.q.labels, level as u32, || LEVEL_LABELS[level].into());
            let b = payload_bucket(p.payload_size, false);
            self.tick_named(self.q.payload, b as u32, || PAYLOAD_LABELS[b].into());
            self.tree.tick_or_count(self.q.servicing);
            if p.retransmission {
                self.tree.tick(self.q_retrans);
            } else {
                self.tree.tick(self.q_unanswered);
            }
            return;
        }
        self.tick_from(true, self.r.from, tap.src);
        self.tick_named(self.r.opcodes_or_rcodes, p.rcode as u32, || rcode_name(p.rcode));
        self.tick_named_mirrored(self.r.kind, 0, like, || "Non-Authoritative".into());
        for (i, n) in [p.nanswers, p.nauthorities, p.nadditionals].into_iter().enumerate() {
            let b = count_bucket(n);
            self.tick_named(self.r_counts[i], b as u32, || COUNT_LABELS[b].into());
        }
        let b = payload_bucket(p.payload_size, true);
        self.tick_named(self.r.payload, b as u32, || PAYLOAD_LABELS[b].into());
        self.tree.tick_or_count(self.r.servicing);
        if !p.retransmission && !p.unsolicited {
            self.tree.avg_float(self.r_answered, p.rrt_ms);
            self.tree.avg_float(self.q_answered, p.rrt_ms);
            self.tree.increase(self.q_unanswered, -1);
        }
        if p.unsolicited {
            self.tree.tick(self.r_unsolicited);
        }
        if p.retransmission && !p.unsolicited {
            self.tree.tick(self.r_retrans);
        }
        for (i, ttls) in tap.ttls.iter().enumerate().filter(|(_, ttls)| !ttls.is_empty()) {
            // Each TTL ticks the section's row and its bucket; a message's ticks share one
            // instant, so they are applied as increases (see tick_n): the row once, each
            // bucket once with its count.
            let section = self.ttl_sections[i];
            self.tree.increase_or_count(section, ttls.len() as i64);
            let mut per_bucket = [0i64; TTL_LABELS.len()];
            for &ttl in ttls.iter() {
                per_bucket[ttl_bucket(ttl)] += 1;
            }
            for (b, &n) in per_bucket.iter().enumerate().filter(|(_, &n)| n > 0) {
                let c = self.named.get(&mut self.tree, section, b as u32, || TTL_LABELS[b].into(), None);
                self.tree.increase_or_count(c, n);
            }
        }
    }
}

/// Both trees, printed as tshark prints `-z dns,tree -z dns_qr,tree` (the later one first).
pub fn render_both(dns: &DnsTree44, qr: &DnsQrTree) -> String {
    let mut s = qr.tree.render_plain();
    s.push_str(&dns.tree.render_plain());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit-length buckets against the comparisons Wireshark makes, one limit after another.
    #[test]
    fn buckets_as_the_comparisons() {
        for size in (0..=70_000u32).chain([u32::MAX / 2, u32::MAX - 1, u32::MAX]) {
            for response in [false, true] {
                let want = match size {
                    0 => 0,
                    1 => 1,
                    2 => 2,
                    3 | 4 => 3,
                    _ => (3..=16)
                        .map(|e| 1u32 << e)
                        .position(|limit| if response { size <= limit } else { size < limit })
                        .map_or(18, |i| 4 + i),
                };
                assert_eq!(payload_bucket(size, response), want, "{size} {response}");
            }
        }
        for n in 0..=u16::MAX {
            let want = match n {
                0..=2 => n as usize,
                _ => (2..=12).map(|e| 1u32 << e).position(|limit| n as u32 <= limit).map_or(14, |i| 3 + i),
            };
            assert_eq!(count_bucket(n), want, "{n}");
        }
    }
}
