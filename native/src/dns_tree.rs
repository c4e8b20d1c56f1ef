//! The `-z dns,tree` statistics of Wireshark 4.0 (packet-dns.c: dns_stats_tree_init and
//! dns_stats_tree_packet), fed one DNS message at a time.

use crate::stats_tree::{DataType, StatsTree};

pub fn type_description(t: u16) -> String {
    let s = match t {
        0 => "Unused",
        1 => "A (Host Address)",
        2 => "NS (authoritative Name Server)",
        3 => "MD (Mail Destination)",
        4 => "MF (Mail Forwarder)",
        5 => "CNAME (Canonical NAME for an alias)",
        6 => "SOA (Start Of a zone of Authority)",
        7 => "MB (MailBox domain name)",
        8 => "MG (Mail Group member)",
        9 => "MR (Mail Rename domain)",
        10 => "NULL RR",
        11 => "WKS (Well Known Service)",
        12 => "PTR (domain name PoinTeR)",
        13 => "HINFO (host information)",
        14 => "MINFO (Mailbox or mail list information)",
        15 => "MX (Mail eXchange)",
        16 => "TXT (Text strings)",
        17 => "RP (Responsible Person)",
        18 => "AFSDB (AFS Data Base location)",
        19 => "X25 (XX.25 PSDN address)",
        20 => "ISDN (ISDN address)",
        21 => "RT (Route Through)",
        22 => "NSAP (NSAP address)",
        23 => "NSAP-PTR (NSAP domain name pointer)",
        24 => "SIG (security signature)",
        25 => "KEY (security key)",
        26 => "PX (X.400 mail mapping information)",
        27 => "GPOS (Geographical Position)",
        28 => "AAAA (IPv6 Address)",
        29 => "LOC (Location Information)",
        30 => "NXT (Next Domain)",
        31 => "EID (Endpoint Identifier)",
        32 => "NIMLOC (Nimrod Locator)",
        33 => "SRV (Server Selection)",
        34 => "ATMA (ATM Address)",
        35 => "NAPTR (Naming Authority Pointer)",
        36 => "KX (Key Exchanger)",
        37 => "CERT",
        38 => "A6 (OBSOLETE - use AAAA)",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS (Delegation Signer)",
        44 => "SSHFP (SSH Key Fingerprint)",
        45 => "IPSECKEY",
        46 => "RRSIG (Resource Record Signature)",
        47 => "NSEC (Next Secure)",
        48 => "DNSKEY (DNS Public Key)",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        55 => "HIP (Host Identity Protocol)",
        57 => "RKEY",
        58 => "TALINK (Trust Anchor LINK)",
        59 => "CDS (Child DS)",
        60 => "CDNSKEY (DNSKEY(s) the Child wants reflected in DS)",
        61 => "OPENPGPKEY (OpenPGP Key)",
        62 => "CSYNC (Child-to-Parent Synchronization)",
        63 => "ZONEMD",
        64 => "SVCB (General Purpose Service Endpoints)",
        65 => "HTTPS (HTTPS Specific Service Endpoints)",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID (NodeID)",
        105 => "L32 (Locator32)",
        106 => "L64 (Locator64)",
        107 => "LP (Locator FQDN)",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY (Transaction Key)",
        250 => "TSIG (Transaction Signature)",
        251 => "IXFR (incremental transfer)",
        252 => "AXFR (transfer of an entire zone)",
        253 => "MAILB (mailbox-related RRs)",
        254 => "MAILA (mail agent RRs)",
        255 => "* (A request for all records the server/cache has available)",
        256 => "URI",
        257 => "CAA (Certification Authority Restriction)",
        32768 => "TA (DNSSEC Trust Authorities)",
        32769 => "DLV (DNSSEC Lookaside Validation)",
        65281 => "WINS",
        65282 => "WINS-R",
        65422 => "XPF",
        _ => return format!("Unknown packet type ({t})"),
    };
    s.to_string()
}

/// Short mnemonic (dns_types_vals), for reports.
pub fn type_mnemonic(t: u16) -> String {
    let d = type_description(t);
    match t {
        0 => "Unused".into(),
        255 => "ANY".into(),
        _ if d.starts_with("Unknown") => format!("TYPE{t}"),
        _ => d.split(' ').next().unwrap_or("").to_string(),
    }
}

pub fn class_name(c: u16) -> String {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        2 => "CS".into(),
        254 => "NONE".into(),
        255 => "ANY".into(),
        _ => format!("Unknown class ({c})"),
    }
}

pub fn rcode_name(r: u16) -> String {
    let s = match r {
        0 => "No error",
        1 => "Format error",
        2 => "Server failure",
        3 => "No such name",
        4 => "Not implemented",
        5 => "Refused",
        6 => "Name exists",
        7 => "RRset exists",
        8 => "RRset does not exist",
        9 => "Not authoritative",
        10 => "Name out of zone",
        11 => "DSO-Type not implemented",
        _ => return format!("Unknown rcode ({r})"),
    };
    s.to_string()
}

pub fn opcode_name(o: u16) -> String {
    let s = match o {
        0 => "Standard query",
        1 => "Inverse query",
        2 => "Server status request",
        4 => "Zone change notification",
        5 => "Dynamic update",
        6 => "DNS Stateful operations (DSO)",
        _ => return format!("Unknown opcode ({o})"),
    };
    s.to_string()
}

/// What dissect_dns_common puts in its tap record (struct DnsTap).
pub struct DnsTap {
    pub qr: u16,
    pub qtype: u16,
    pub qclass: u16,
    pub rcode: u16,
    pub opcode: u16,
    pub payload_size: u32,
    pub qname_len: u32,
    pub qname_labels: u32,
    pub nquestions: u16,
    pub nanswers: u16,
    pub nauthorities: u16,
    pub nadditionals: u16,
    pub unsolicited: bool,
    pub retransmission: bool,
    /// Response time in ms, as the float Wireshark stores.
    pub rrt_ms: f32,
}

/// The rows both Wireshark 4.0 and 4.4 put after the pivots: payload size, query stats,
/// response stats and service stats (their layout and counting did not change).
pub struct MessageStats {
    pub avg_size: usize,
    qname_len: usize,
    l1: usize,
    l2: usize,
    l3: usize,
    lmore: usize,
    nquestions: usize,
    nanswers: usize,
    nauthorities: usize,
    nadditionals: usize,
    unsolicited: usize,
    retransmission: usize,
    rrt: usize,
}

impl MessageStats {
    pub fn create(t: &mut StatsTree) -> MessageStats {
        let avg_size = t.create("Payload size", 0, DataType::Int);
        let query_stats = t.create("Query Stats", 0, DataType::Int);
        let qname_len = t.create("Qname Len", query_stats, DataType::Int);
        let domains = t.create("Label Stats", query_stats, DataType::Int);
        let l1 = t.create("1st Level", domains, DataType::Int);
        let l2 = t.create("2nd Level", domains, DataType::Int);
        let l3 = t.create("3rd Level", domains, DataType::Int);
        let lmore = t.create("4th Level or more", domains, DataType::Int);
        let response_stats = t.create("Response Stats", 0, DataType::Int);
        let nquestions = t.create("no. of questions", response_stats, DataType::Int);
        let nanswers = t.create("no. of answers", response_stats, DataType::Int);
        let nauthorities = t.create("no. of authorities", response_stats, DataType::Int);
        let nadditionals = t.create("no. of additionals", response_stats, DataType::Int);
        let service = t.create("Service Stats", 0, DataType::Int);
        let unsolicited = t.create("no. of unsolicited responses", service, DataType::Int);
        let retransmission = t.create("no. of retransmissions", service, DataType::Int);
        let rrt = t.create("request-response time (msec)", service, DataType::Float);
        // The four section counts are added together for every response.
        for id in [nanswers, nauthorities, nadditionals] {
            t.mirror_burst(id, nquestions);
        }
        MessageStats {
            avg_size,
            qname_len,
            l1,
            l2,
            l3,
            lmore,
            nquestions,
            nanswers,
            nauthorities,
            nadditionals,
            unsolicited,
            retransmission,
            rrt,
        }
    }

    /// Every node `packet` ticks, in a fixed order (to copy them from one tree to another).
    pub fn ticked(&self) -> [usize; 13] {
        [
            self.avg_size,
            self.qname_len,
            self.l1,
            self.l2,
            self.l3,
            self.lmore,
            self.nquestions,
            self.nanswers,
            self.nauthorities,
            self.nadditionals,
            self.unsolicited,
            self.retransmission,
            self.rrt,
        ]
    }

    pub fn packet(&self, t: &mut StatsTree, p: &DnsTap) {
        t.avg_int(self.avg_size, p.payload_size as i32);
        if p.qr == 0 {
            t.avg_int(self.qname_len, p.qname_len as i32);
            let node = match p.qname_labels {
                1 => self.l1,
                2 => self.l2,
                3 => self.l3,
                _ => self.lmore,
            };
            t.tick(node);
            return;
        }
        // Wireshark adds the section counts twice for solicited responses (the block is
        // duplicated in dns_stats_tree_packet): we copy that, both at once (`avg_int_n`).
        let times = if p.unsolicited { 1 } else { 2 };
        t.avg_int_n(self.nquestions, p.nquestions as i32, times);
        t.avg_int_n(self.nanswers, p.nanswers as i32, times);
        t.avg_int_n(self.nauthorities, p.nauthorities as i32, times);
        t.avg_int_n(self.nadditionals, p.nadditionals as i32, times);
        if p.unsolicited {
            t.tick(self.unsolicited);
        } else if p.retransmission {
            t.tick(self.retransmission);
        } else {
            t.avg_float(self.rrt, p.rrt_ms);
        }
    }
}

pub struct DnsTree {
    pub tree: StatsTree,
    pub(crate) packets: usize,
    pub(crate) qr: usize,
    pub(crate) qtypes: usize,
    pub(crate) qclasses: usize,
    pub(crate) rcodes: usize,
    pub(crate) opcodes: usize,
    pub(crate) rest: MessageStats,
}

impl Default for DnsTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsTree {
    pub fn new() -> DnsTree {
        let mut t = StatsTree::new("DNS");
        let packets = t.create("Total Packets", 0, DataType::Int);
        let qr = t.create("Query/Response", packets, DataType::Int);
        let qtypes = t.create("Query Type", packets, DataType::Int);
        let qclasses = t.create("Class", packets, DataType::Int);
        let rcodes = t.create("rcode", packets, DataType::Int);
        let opcodes = t.create("opcodes", packets, DataType::Int);
        let rest = MessageStats::create(&mut t);
        for id in [qr, qtypes, qclasses, rcodes, opcodes, rest.avg_size] {
            t.mirror_burst(id, packets);
        }
        DnsTree { tree: t, packets, qr, qtypes, qclasses, rcodes, opcodes, rest }
    }

    /// dns_stats_tree_packet for one message; `now_ms` is the frame's time since the first frame.
    pub fn packet(&mut self, now_ms: f64, p: &DnsTap) {
        let t = &mut self.tree;
        t.set_now(now_ms);
        t.tick(self.packets);
        t.tick_pivot(self.qr, p.qr as u32, || if p.qr == 0 { "Query".into() } else { "Response".into() });
        t.tick_pivot(self.qtypes, p.qtype as u32, || type_description(p.qtype));
        t.tick_pivot(self.qclasses, p.qclass as u32, || class_name(p.qclass));
        t.tick_pivot(self.rcodes, p.rcode as u32, || rcode_name(p.rcode));
        t.tick_pivot(self.opcodes, p.opcode as u32, || opcode_name(p.opcode));
        self.rest.packet(t, p);
    }
}
