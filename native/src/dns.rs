//! DNS message parsing with Wireshark 4.0's rules (epan/dissectors/packet-dns.c).
//!
//! Wireshark queues a message's statistics only when the whole message dissects without
//! an exception; we mirror that with `Err(Malformed)`.  Name expansion copies
//! `expand_dns_name`: at most 255 name bytes, at most 255 compression pointers, a 0x80
//! label type is an error, and bounds are checked on every byte.

pub const T_AXFR: u16 = 252;
pub const T_IXFR: u16 = 251;
const MAX_DNAME_LEN: i32 = 255;
const MIN_DNAME_LEN: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

type R<T> = Result<T, Malformed>;

#[inline]
fn byte(m: &[u8], off: usize) -> R<u8> {
    m.get(off).copied().ok_or(Malformed)
}

#[inline]
fn be16(m: &[u8], off: usize) -> R<u16> {
    Ok(u16::from_be_bytes([byte(m, off)?, byte(m, off + 1)?]))
}

#[inline]
fn be32(m: &[u8], off: usize) -> R<u32> {
    Ok(u32::from_be_bytes([byte(m, off)?, byte(m, off + 1)?, byte(m, off + 2)?, byte(m, off + 3)?]))
}

/// An expanded name: the bytes Wireshark built and the length it reports (`name_len`).
/// These can differ: bitstring labels write bytes without counting them.
pub struct Name {
    pub bytes: Vec<u8>,
    pub len: usize,
}

impl Name {
    fn literal(s: &str) -> Name {
        Name { bytes: s.as_bytes().to_vec(), len: s.len() }
    }

    /// Wireshark's qname_labels_count: dots + 1, or 0 for a name of length <= 1.
    pub fn labels(&self) -> u32 {
        if self.len > 1 {
            let n = self.len.min(self.bytes.len());
            // Summing comparisons (instead of filter().count()) vectorises: every query's
            // name is counted.
            self.bytes[..n].iter().map(|&b| u32::from(b == b'.')).sum::<u32>() + 1
        } else {
            0
        }
    }

    /// Printable form (non-printable bytes escaped), for lists and reports.
    pub fn display(&self) -> String {
        let n = self.len.min(self.bytes.len());
        let mut s = String::with_capacity(n);
        for &b in &self.bytes[..n] {
            if (0x20..0x7F).contains(&b) && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\x{b:02x}"));
            }
        }
        s
    }
}

/// expand_dns_name + get_dns_name: returns the name and the bytes used at `offset`.
pub fn get_name(m: &[u8], offset: usize, out: &mut Name) -> R<usize> {
    get_name_plain(m, offset, out).0
}

/// `get_name`, and whether the name was plain labels (see `get_plain_name`).
fn get_name_plain(m: &[u8], offset: usize, out: &mut Name) -> (R<usize>, bool) {
    match get_plain_name(m, offset, out) {
        Some(used) => (finish_get_name(out, used), true),
        None => (get_name_by_labels(m, offset, out), false),
    }
}

/// `get_name` label by label: expand_dns_name's loop.
fn get_name_by_labels(m: &[u8], offset: usize, out: &mut Name) -> R<usize> {
    out.bytes.clear();
    out.len = 0;
    let start = offset;
    let mut off = offset;
    let mut len: Option<usize> = None;
    let mut pointers = 0;
    let mut maxname: i32 = MAX_DNAME_LEN;
    let mut special: Option<&'static str> = None;
    loop {
        let c = byte(m, off)? as usize;
        off += 1;
        if c == 0 {
            break;
        }
        match c & 0xC0 {
            0x00 => {
                if !out.bytes.is_empty() {
                    if maxname > 0 {
                        out.bytes.push(b'.');
                        out.len += 1;
                        maxname -= 1;
                    }
                } else {
                    maxname -= 1;
                }
                let end = off + c;
                if end > m.len() {
                    return Err(Malformed);
                }
                // The bytes that still fit (Wireshark copies while maxname > 0).
                let take = c.min(maxname.max(0) as usize);
                out.bytes.extend_from_slice(&m[off..off + take]);
                out.len += take;
                maxname -= take as i32;
                off = end;
            }
            0x40 => {
                if c & 0x3F == 0x01 {
                    // Bitstring label (RFC 2673): printed, but name_len is not advanced.
                    let bit_count = byte(m, off)? as i32;
                    off += 1;
                    let label_len = ((bit_count - 1) / 8 + 1).max(0) as usize;
                    let push = |s: &str, maxname: &mut i32, bytes: &mut Vec<u8>| {
                        if *maxname > 0 {
                            let l = s.len() as i32;
                            // snprintf writes at most maxname-1 chars; Wireshark then
                            // checks print_len <= maxname.
                            if l <= *maxname {
                                bytes.extend_from_slice(s.as_bytes());
                                *maxname -= l;
                            } else {
                                *maxname = 0;
                            }
                        }
                    };
                    push("\\[x", &mut maxname, &mut out.bytes);
                    for i in 0..label_len {
                        let b = byte(m, off + i)?;
                        push(&format!("{b:02x}"), &mut maxname, &mut out.bytes);
                    }
                    off += label_len;
                    push(&format!("/{bit_count}]"), &mut maxname, &mut out.bytes);
                } else {
                    *out = Name::literal("<Unknown extended label>");
                    let l = off - start;
                    if l < 1 {
                        return Err(Malformed);
                    }
                    return finish_get_name(out, l);
                }
            }
            0x80 => return Err(Malformed),
            _ => {
                let lo = byte(m, off)? as usize;
                let indir = ((c & 0x3F) << 8) | lo;
                off += 1;
                pointers += 1;
                if len.is_none() {
                    len = Some(off - start);
                }
                if indir == off + 2 || pointers > MAX_DNAME_LEN {
                    special = Some("<Name contains a pointer that loops>");
                    break;
                }
                off = indir;
            }
        }
    }
    if let Some(s) = special {
        *out = Name::literal(s);
        return finish_get_name(out, len.unwrap_or(off - start));
    }
    if maxname <= 0 {
        *out = Name::literal("<Name too long>");
    }
    let l = len.unwrap_or(off - start);
    finish_get_name(out, l)
}

/// The common case of `get_name` in one copy: plain labels (no pointer, no extended
/// label) that are all in the message and end with the root label, in fewer than 255
/// bytes.  Then Wireshark copies every label whole (maxname never runs out) and the name
/// is the encoded bytes with each length byte after the first replaced by a dot; the
/// label-by-label loop made a copy (a memcpy call) per label.  None: take that loop
/// (which also reports any error).
#[inline]
fn get_plain_name(m: &[u8], offset: usize, out: &mut Name) -> Option<usize> {
    let mut off = offset;
    loop {
        let c = *m.get(off)? as usize;
        if c == 0 {
            break;
        }
        if c & 0xC0 != 0 {
            return None;
        }
        off += 1 + c;
    }
    // m[offset..off]: k length bytes and L label bytes; the loop would end with
    // maxname = 255 - k - L, which must stay positive.  The root alone has its own rules.
    let encoded = off - offset;
    if encoded == 0 || encoded >= MAX_DNAME_LEN as usize {
        return None;
    }
    out.bytes.clear();
    out.bytes.extend_from_slice(&m[offset + 1..off]);
    let mut i = m[offset] as usize;
    while let Some(c) = out.bytes.get_mut(i) {
        let label = *c as usize;
        *c = b'.';
        i += 1 + label;
    }
    out.len = out.bytes.len();
    Some(encoded + 1)
}

fn finish_get_name(out: &mut Name, used: usize) -> R<usize> {
    // get_dns_name: an empty name of at most MIN_DNAME_LEN bytes is the root.
    let empty = out.bytes.first().is_none_or(|&b| b == 0);
    if empty && used <= MIN_DNAME_LEN {
        *out = Name::literal("<Root>");
        return Ok(used);
    }
    if used < MIN_DNAME_LEN || (used > MIN_DNAME_LEN && out.len == 0) {
        return Err(Malformed);
    }
    Ok(used)
}

/// The bytes a name occupies at `offset`, with the same errors as `get_name` but
/// without building the name (record owners and RDATA names are only validated).
/// `plain` is the offset of a name already expanded without error from plain labels
/// (no pointer), or usize::MAX: a name that is just a pointer to it (most record
/// owners point at the question) takes 2 bytes and cannot fail, since following the
/// pointer walks those labels again with the same limits.
pub fn skip_name(m: &[u8], offset: usize, plain: usize) -> R<usize> {
    if let (Some(&hi), Some(&lo)) = (m.get(offset), m.get(offset + 1)) {
        if hi & 0xC0 == 0xC0 && ((hi as usize & 0x3F) << 8 | lo as usize) == plain {
            return Ok(2);
        }
    }
    let start = offset;
    let mut off = offset;
    let mut len: Option<usize> = None;
    let mut pointers = 0;
    let mut maxname: i32 = MAX_DNAME_LEN;
    let mut name_len: usize = 0;
    let mut wrote = false;
    loop {
        let c = byte(m, off)? as usize;
        off += 1;
        if c == 0 {
            break;
        }
        match c & 0xC0 {
            0x00 => {
                if wrote {
                    if maxname > 0 {
                        name_len += 1;
                        maxname -= 1;
                    }
                } else {
                    maxname -= 1;
                }
                let end = off + c;
                if end > m.len() {
                    return Err(Malformed);
                }
                let take = (c as i32).min(maxname.max(0)) as usize;
                name_len += take;
                maxname -= take as i32;
                wrote |= take > 0;
                off = end;
            }
            // Extended and odd labels are rare: take the exact path.
            0x40 => {
                let mut n = Name { bytes: Vec::new(), len: 0 };
                return get_name(m, offset, &mut n);
            }
            0x80 => return Err(Malformed),
            _ => {
                let lo = byte(m, off)? as usize;
                let indir = ((c & 0x3F) << 8) | lo;
                off += 1;
                pointers += 1;
                if len.is_none() {
                    len = Some(off - start);
                }
                if indir == off + 2 || pointers > MAX_DNAME_LEN {
                    return Ok(len.unwrap_or(off - start)); // "<Name contains a pointer that loops>"
                }
                off = indir;
            }
        }
    }
    let used = len.unwrap_or(off - start);
    if maxname <= 0 {
        return Ok(used); // "<Name too long>": not empty
    }
    if !wrote && used <= MIN_DNAME_LEN {
        return Ok(used); // "<Root>"
    }
    if used < MIN_DNAME_LEN || (used > MIN_DNAME_LEN && name_len == 0) {
        return Err(Malformed);
    }
    Ok(used)
}

/// One resource record's type and TTL (what the statistics need).
#[derive(Debug, Clone, Copy)]
pub struct RrInfo {
    pub rtype: u16,
    pub ttl: u32,
}

/// One record's section (0 answer, 1 authority, 2 additional), type and TTL, kept for
/// Wireshark 4.4's trees (its "Answer Type" and TTL rows).
#[derive(Debug, Clone, Copy)]
pub struct RrRec {
    pub section: u8,
    pub rtype: u16,
    pub ttl: u32,
}

/// What the statistics need from a message that dissected cleanly.
#[derive(Clone, Copy)]
pub struct Parsed {
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    pub qtype: u16,
    pub qclass: u16,
    pub multiple_responds: bool,
}

pub struct Scratch {
    pub qname: Name,
    other: Name,
    pub answers: Vec<RrInfo>,
    /// Set to keep `records` (Wireshark 4.4's trees need every record, even of a message
    /// that fails to dissect later: its TTLs were already stored).
    pub want_records: bool,
    pub records: Vec<RrRec>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            qname: Name { bytes: Vec::new(), len: 0 },
            other: Name { bytes: Vec::new(), len: 0 },
            answers: Vec::new(),
            want_records: false,
            records: Vec::new(),
        }
    }
}

/// Parse everything after the ID and flags; Err when Wireshark would throw.
/// `sc.qname` receives the first question's name; `sc.answers` the answer section.
pub fn parse_body(m: &[u8], sc: &mut Scratch) -> R<Parsed> {
    let qd = be16(m, 4)?;
    let an = be16(m, 6)?;
    let ns = be16(m, 8)?;
    let ar = be16(m, 10)?;
    let flags = be16(m, 2)?;
    let opcode = (flags >> 11) & 0xF;
    let mut off = 12usize;
    sc.answers.clear();
    sc.records.clear();
    sc.qname.bytes.clear();
    sc.qname.len = 0;
    // DSO (opcode 6) with all counts zero carries TLVs; Wireshark walks them without
    // throwing as long as 4-byte TLV headers fit, so nothing to check for statistics.
    let _ = opcode;
    let mut qtype = 0u16;
    let mut qclass = 0u16;
    let mut multiple = false;
    // The question's name, when it is plain labels (see skip_name).
    let mut plain = usize::MAX;
    for i in 0..qd {
        let target = if i == 0 { &mut sc.qname } else { &mut sc.other };
        let (used, is_plain) = get_name_plain(m, off, target);
        if i == 0 && is_plain {
            plain = off;
        }
        off += used?;
        let t = be16(m, off)?;
        let c = be16(m, off + 2)?;
        off += 4;
        if i == 0 {
            qtype = t;
            qclass = c;
        }
        if t == T_AXFR || t == T_IXFR {
            multiple = true;
        }
    }
    for section in 0..3 {
        let count = [an, ns, ar][section];
        for _ in 0..count {
            let used = skip_name(m, off, plain)?;
            off += used;
            let rtype = be16(m, off)?;
            let _class = be16(m, off + 2)?;
            let ttl = be32(m, off + 4)?;
            let rdlen = be16(m, off + 8)? as usize;
            off += 10;
            if sc.want_records {
                sc.records.push(RrRec { section: section as u8, rtype, ttl });
            }
            check_rdata(m, off, rtype, rdlen, plain)?;
            if section == 0 {
                sc.answers.push(RrInfo { rtype, ttl });
            }
            off += rdlen;
        }
    }
    Ok(Parsed { qdcount: qd, ancount: an, nscount: ns, arcount: ar, qtype, qclass, multiple_responds: multiple })
}

/// The parts of RDATA whose dissection can throw for the common types; other types are
/// shown as bytes, which throws only when the data runs past the message.
fn check_rdata(m: &[u8], off: usize, rtype: u16, rdlen: usize, plain: usize) -> R<()> {
    match rtype {
        1
            if rdlen > 0 => {
                be32(m, off)?;
            }
        28
            if rdlen > 0 => {
                byte(m, off + 15)?;
            }
        2 | 5 | 12 | 39 => {
            skip_name(m, off, plain)?;
        }
        15 => {
            be16(m, off)?;
            skip_name(m, off + 2, plain)?;
        }
        6 => {
            let a = skip_name(m, off, plain)?;
            let b = skip_name(m, off + a, plain)?;
            byte(m, off + a + b + 19)?;
        }
        33 => {
            be16(m, off + 4)?;
            skip_name(m, off + 6, plain)?;
        }
        _ => {}
    }
    if rdlen > 0 && off + rdlen > m.len() {
        return Err(Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(labels: &[&[u8]]) -> Vec<u8> {
        let mut m = vec![0u8; 12];
        for l in labels {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.push(0);
        m
    }

    /// A pointer to the plain question name is skipped as the full walk would skip it.
    #[test]
    fn pointer_to_the_plain_question() {
        let mut m = encode(&[b"kubernetes", b"default", b"svc", b"cluster", b"local"]);
        let owner = m.len();
        m.extend_from_slice(&[0xC0, 12]);
        let mut q = Name { bytes: Vec::new(), len: 0 };
        assert!(get_name_plain(&m, 12, &mut q).1);
        assert_eq!(skip_name(&m, owner, 12), skip_name(&m, owner, usize::MAX));
        assert_eq!(skip_name(&m, owner, 12), Ok(2));
    }

    /// The one-copy path gives what the label loop gives, and declines what it must not take.
    #[test]
    fn plain_names_as_the_label_loop() {
        let long = [b'x'; 63];
        let mut cases: Vec<Vec<u8>> = vec![
            encode(&[b"kubernetes", b"default", b"svc", b"cluster", b"local"]),
            encode(&[b"a"]),
            encode(&[b"with.dot", b"\0\x00"]),
            encode(&[b"\0"]),
            encode(&[]),
        ];
        // Around the 255-byte limit: 4 x 63-byte labels (256 encoded bytes) and shorter.
        for last in [59usize, 60, 61, 62, 63] {
            cases.push(encode(&[&long, &long, &long, &long[..last]]));
        }
        let mut truncated = encode(&[b"abc", b"def"]);
        truncated.truncate(truncated.len() - 3);
        cases.push(truncated);
        let mut pointer = encode(&[b"abc"]);
        let end = pointer.len() - 1;
        pointer[end] = 0xC0;
        pointer.push(12);
        cases.push(pointer);
        for m in &cases {
            let (mut a, mut b) = (Name { bytes: Vec::new(), len: 0 }, Name { bytes: Vec::new(), len: 0 });
            let fast = get_name(m, 12, &mut a);
            let slow = get_name_by_labels(m, 12, &mut b);
            assert_eq!(fast, slow, "{m:?}");
            if slow.is_ok() {
                assert_eq!((a.bytes, a.len), (b.bytes, b.len), "{m:?}");
            }
        }
    }
}
