//! From link-layer bytes to a UDP datagram or TCP segment on port 53.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

pub struct Segment<'a> {
    pub transport: Transport,
    /// mDNS (5353) or LLMNR (5355) rather than DNS: Wireshark fills the dns.* fields
    /// (so display filters see them) but leaves them out of the DNS statistics.
    pub multicast_dns: bool,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub tcp_seq: u32,
    pub tcp_flags: u8,
    pub payload: &'a [u8],
}

/// Why a frame carried no DNS (for the "ignored" counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    LinkType,
    NotIp,
    Truncated,
    Fragment,
    OtherProtocol,
    OtherPort,
}

pub const DNS_PORT: u16 = 53;
pub const MDNS_PORT: u16 = 5353;
pub const LLMNR_PORT: u16 = 5355;

/// Which dissector UDP picks: the lower port is tried first (packet-udp.c decode_udp_ports).
fn udp_dissector(sport: u16, dport: u16) -> Option<bool> {
    let (lo, hi) = if sport <= dport { (sport, dport) } else { (dport, sport) };
    for p in [lo, hi] {
        match p {
            DNS_PORT => return Some(false),
            MDNS_PORT | LLMNR_PORT => return Some(true),
            _ => {}
        }
    }
    None
}

fn ethertype_payload(mut ethertype: u16, mut rest: &[u8]) -> Result<(u16, &[u8]), Skip> {
    // 802.1Q / 802.1ad / QinQ tags, as many as are stacked.
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88A8 | 0x9100) {
        if rest.len() < 4 || tags > 8 {
            return Err(Skip::Truncated);
        }
        ethertype = u16::from_be_bytes([rest[2], rest[3]]);
        rest = &rest[4..];
        tags += 1;
    }
    Ok((ethertype, rest))
}

/// The IP packet inside a frame of `linktype`.
pub fn ip_of_frame(linktype: u32, frame: &[u8]) -> Result<&[u8], Skip> {
    let (ethertype, ip) = match linktype {
        LINKTYPE_ETHERNET => {
            if frame.len() < 14 {
                return Err(Skip::Truncated);
            }
            ethertype_payload(u16::from_be_bytes([frame[12], frame[13]]), &frame[14..])?
        }
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => return Ok(frame),
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            if frame.len() < 4 {
                return Err(Skip::Truncated);
            }
            // NULL is in the capturing host's byte order: accept both, as Wireshark does.
            let raw = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let fam = if linktype == LINKTYPE_LOOP {
                u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
            } else if raw & 0xFFFF_0000 != 0 {
                raw.swap_bytes()
            } else {
                raw
            };
            return match fam {
                // BSD AF_INET and the three BSD AF_INET6 values (packet-null.c); Linux's 10 is not one.
                2 | 24 | 28 | 30 => Ok(&frame[4..]),
                _ => Err(Skip::NotIp),
            };
        }
        LINKTYPE_LINUX_SLL => {
            if frame.len() < 16 {
                return Err(Skip::Truncated);
            }
            ethertype_payload(u16::from_be_bytes([frame[14], frame[15]]), &frame[16..])?
        }
        LINKTYPE_LINUX_SLL2 => {
            if frame.len() < 20 {
                return Err(Skip::Truncated);
            }
            ethertype_payload(u16::from_be_bytes([frame[0], frame[1]]), &frame[20..])?
        }
        _ => return Err(Skip::LinkType),
    };
    match ethertype {
        0x0800 | 0x86DD => Ok(ip),
        _ => Err(Skip::NotIp),
    }
}

/// One IP fragment: reassembled by `defrag::Defragmenter`.
pub struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
    /// Byte offset of `data` in the reassembled payload.
    pub offset: usize,
    pub more: bool,
    pub data: &'a [u8],
}

/// An IP packet: a whole datagram's UDP/TCP segment, or one fragment of a datagram.
pub enum Ip<'a> {
    Whole(Segment<'a>),
    Fragment(Fragment<'a>),
}

/// The UDP or TCP segment inside an IP packet; only DNS (port 53) traffic is returned.
pub fn segment_of_ip(ip: &[u8]) -> Result<Segment<'_>, Skip> {
    match parse_ip(ip)? {
        Ip::Whole(seg) => Ok(seg),
        Ip::Fragment(_) => Err(Skip::Fragment),
    }
}

/// Parse an IP packet down to its transport segment, or return the fragment it is.
pub fn parse_ip(ip: &[u8]) -> Result<Ip<'_>, Skip> {
    if ip.is_empty() {
        return Err(Skip::Truncated);
    }
    let (src, dst, proto, l4) = match ip[0] >> 4 {
        4 => {
            if ip.len() < 20 {
                return Err(Skip::Truncated);
            }
            let ihl = ((ip[0] & 0x0F) as usize) * 4;
            let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if ihl < 20 || ip.len() < ihl || total < ihl {
                return Err(Skip::Truncated);
            }
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            // Trim Ethernet padding; a packet cut by the snap length keeps what was captured.
            let end = total.min(ip.len());
            let s = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let d = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            if frag & 0x3FFF != 0 {
                // More-fragments set or a non-zero offset (Wireshark's ip.defragment).
                return Ok(Ip::Fragment(Fragment {
                    src: s,
                    dst: d,
                    proto: ip[9],
                    id: u16::from_be_bytes([ip[4], ip[5]]) as u32,
                    offset: ((frag & 0x1FFF) as usize) * 8,
                    more: frag & 0x2000 != 0,
                    data: &ip[ihl..end],
                }));
            }
            (s, d, ip[9], &ip[ihl..end])
        }
        6 => {
            if ip.len() < 40 {
                return Err(Skip::Truncated);
            }
            let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            let end = (40 + plen).min(ip.len());
            let s: [u8; 16] = ip[8..24].try_into().unwrap();
            let d: [u8; 16] = ip[24..40].try_into().unwrap();
            let mut next = ip[6];
            let mut rest = &ip[40..end];
            // Walk extension headers (hop-by-hop, routing, destination options).
            let mut hops = 0;
            loop {
                match next {
                    0 | 43 | 60 => {
                        if rest.len() < 8 || hops > 8 {
                            return Err(Skip::Truncated);
                        }
                        let len = (rest[1] as usize + 1) * 8;
                        if rest.len() < len {
                            return Err(Skip::Truncated);
                        }
                        next = rest[0];
                        rest = &rest[len..];
                        hops += 1;
                    }
                    44 => {
                        // Fragment header (ipv6.reassemble).
                        if rest.len() < 8 {
                            return Err(Skip::Truncated);
                        }
                        let off = u16::from_be_bytes([rest[2], rest[3]]);
                        return Ok(Ip::Fragment(Fragment {
                            src: IpAddr::V6(Ipv6Addr::from(s)),
                            dst: IpAddr::V6(Ipv6Addr::from(d)),
                            proto: rest[0],
                            id: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
                            offset: ((off >> 3) as usize) * 8,
                            more: off & 1 != 0,
                            data: &rest[8..],
                        }));
                    }
                    _ => break,
                }
            }
            (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)), next, rest)
        }
        _ => return Err(Skip::NotIp),
    };
    segment_of_l4(src, dst, proto, l4).map(Ip::Whole)
}

/// The DNS segment of a transport payload (a whole datagram's, or a reassembled one's).
pub fn segment_of_l4(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Result<Segment<'_>, Skip> {
    match proto {
        17 => {
            if l4.len() < 8 {
                return Err(Skip::Truncated);
            }
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            let multicast_dns = udp_dissector(sport, dport).ok_or(Skip::OtherPort)?;
            let ulen = u16::from_be_bytes([l4[4], l4[5]]) as usize;
            if ulen < 8 {
                return Err(Skip::Truncated);
            }
            let end = ulen.min(l4.len());
            Ok(Segment {
                transport: Transport::Udp,
                multicast_dns,
                src: Endpoint { ip: src, port: sport },
                dst: Endpoint { ip: dst, port: dport },
                tcp_seq: 0,
                tcp_flags: 0,
                payload: &l4[8..end],
            })
        }
        6 => {
            if l4.len() < 20 {
                return Err(Skip::Truncated);
            }
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            if sport != DNS_PORT && dport != DNS_PORT {
                return Err(Skip::OtherPort);
            }
            let off = ((l4[12] >> 4) as usize) * 4;
            if off < 20 || off > l4.len() {
                return Err(Skip::Truncated);
            }
            Ok(Segment {
                transport: Transport::Tcp,
                multicast_dns: false,
                src: Endpoint { ip: src, port: sport },
                dst: Endpoint { ip: dst, port: dport },
                tcp_seq: u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
                tcp_flags: l4[13],
                payload: &l4[off..],
            })
        }
        _ => Err(Skip::OtherProtocol),
    }
}
