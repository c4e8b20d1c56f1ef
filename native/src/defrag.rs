//! IPv4 and IPv6 reassembly, as Wireshark does by default (ip.defragment,
//! ipv6.reassemble): a datagram is handed on, whole, with the fragment that completes it.
//! Bounded: at most `MAX_DATAGRAMS` datagrams pending, 64 KiB each.

use crate::FastMap;
use std::net::IpAddr;

use crate::link::Fragment;

const MAX_DATAGRAMS: usize = 4_096;
const MAX_PARTS: usize = 64;
const MAX_LEN: usize = 65_535;
const TIMEOUT_NS: i64 = 60_000_000_000;

struct Pending {
    parts: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    first_ns: i64,
}

#[derive(Default)]
pub struct Defragmenter {
    pending: FastMap<(IpAddr, IpAddr, u8, u32), Pending>,
}

impl Defragmenter {
    /// Add a fragment; returns the transport payload once the datagram is complete.
    pub fn push(&mut self, f: &Fragment<'_>, ts_ns: i64) -> Option<Vec<u8>> {
        if f.offset + f.data.len() > MAX_LEN {
            return None;
        }
        if self.pending.len() >= MAX_DATAGRAMS {
            self.pending.retain(|_, p| ts_ns - p.first_ns < TIMEOUT_NS);
            if self.pending.len() >= MAX_DATAGRAMS {
                self.pending.clear();
            }
        }
        let key = (f.src, f.dst, f.proto, f.id);
        let p = self.pending.entry(key).or_insert_with(|| Pending { parts: Vec::new(), total: None, first_ns: ts_ns });
        if p.parts.len() >= MAX_PARTS || p.parts.iter().any(|(o, _)| *o == f.offset) {
            return None;
        }
        p.parts.push((f.offset, f.data.to_vec()));
        if !f.more {
            p.total = Some(f.offset + f.data.len());
        }
        let total = p.total?;
        p.parts.sort_by_key(|(o, _)| *o);
        // Complete when the parts cover 0..total without a gap.
        let mut covered = 0;
        for (o, d) in &p.parts {
            if *o > covered {
                return None;
            }
            covered = covered.max(o + d.len());
        }
        if covered < total {
            return None;
        }
        let p = self.pending.remove(&key)?;
        let mut out = vec![0u8; total];
        for (o, d) in p.parts {
            let end = (o + d.len()).min(total);
            if o < end {
                out[o..end].copy_from_slice(&d[..end - o]);
            }
        }
        Some(out)
    }
}
