//! Streaming readers for classic pcap and pcapng, and a timestamp merge of several files.
//!
//! Every length read from the file is checked before it is used: a hostile file can make
//! the reader stop (with a warning) but never allocate more than `MAX_BLOCK` bytes or panic.

use std::fs::File;
use std::io::{self, BufReader, Read};

/// Largest packet we accept (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD is 262144).
pub const MAX_PACKET: usize = 262_144;
/// Largest pcapng block we accept (a packet plus generous options).
pub const MAX_BLOCK: usize = MAX_PACKET + 65_536;

/// The bytes of a capture: the file itself, or its gzip stream decoded on the fly.
enum Input {
    Plain(BufReader<File>),
    Gzip(Box<BufReader<flate2::read::MultiGzDecoder<BufReader<File>>>>),
}

impl Read for Input {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Gzip(r) => r.read(buf),
        }
    }
}

/// Why a file cannot be read at all: shown to the user as "<path>: <reason>".
#[derive(Debug, Clone)]
pub struct OpenError(pub String);

/// One packet's metadata; its bytes are in the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    pub ts_ns: i64,
    pub linktype: u32,
    /// False for pcapng simple packet blocks, which carry no time stamp.
    pub has_ts: bool,
}

enum Kind {
    Pcap { big_endian: bool, nanos: bool, linktype: u32 },
    Pcapng(NgState),
}

#[derive(Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Time-stamp units per second (if_tsresol), as a power of ten or two.
    units_per_s: u64,
    offset_s: i64,
    snaplen: u32,
}

struct NgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
}

pub struct CaptureReader {
    input: Input,
    kind: Kind,
    pub packets: u64,
    /// Set when the file ends inside a record or holds a record that cannot be right.
    pub warning: Option<String>,
    scratch: Vec<u8>,
    /// Classic pcap records are parsed in place from this buffer (`data[pos..end]` not yet
    /// used): no copy per packet.
    data: Vec<u8>,
    pos: usize,
    end: usize,
    /// A plain classic pcap file mapped whole: records are parsed in place from the page
    /// cache (`pos..end` index it instead of `data`), with no read() copy of every byte.
    map: Option<Mapping>,
}

/// A read-only mapping of a whole file.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    /// Bytes before this offset were handed back (`release_before`).
    released: usize,
}

/// Parsed bytes of a mapping are unmapped from the process in steps of this size (a
/// multiple of any page size).
const RELEASE_STEP: usize = 8 << 20;

/// How far ahead of the record being parsed the mapped bytes are prefetched.
const PREFETCH_BYTES: usize = 1024;

// SAFETY: the mapping is read-only and owned by one reader; moving it to another thread
// (the reading thread) is as safe as moving a Vec.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Map `file` (a regular file, non-empty) or None, when the caller should read() it.
    fn new(file: &File) -> Option<Mapping> {
        use std::os::unix::io::AsRawFd;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() == 0 || meta.len() > isize::MAX as u64 {
            return None;
        }
        let len = meta.len() as usize;
        // SAFETY: a fresh shared read-only mapping of a file we hold open; the result is
        // checked.  A file truncated while mapped would fault on access (SIGBUS): captures
        // being rotated away are replaced, not truncated in place, and Wireshark's own
        // reading has the same window for a shrinking file.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on the mapping just made; failure only loses the read-ahead hint.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Some(Mapping { ptr, len, released: 0 })
    }

    /// Drop the pages before `pos` from the process (they stay in the page cache): a
    /// capture read once would otherwise count whole in the resident size, which memory
    /// limits and the OOM killer look at.  Touching them again would only fault them in.
    #[inline]
    fn release_before(&mut self, pos: usize) {
        if pos - self.released >= 2 * RELEASE_STEP {
            let upto = (pos - RELEASE_STEP) & !(RELEASE_STEP - 1);
            // SAFETY: advice on whole pages of our own mapping (`released` and `upto` are
            // multiples of RELEASE_STEP); for a shared file mapping MADV_DONTNEED only
            // unmaps them, later reads fault the same bytes back in.
            unsafe { libc::madvise(self.ptr.add(self.released), upto - self.released, libc::MADV_DONTNEED) };
            self.released = upto;
        }
    }

    #[inline]
    fn prefetch(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        if at < self.len {
            // SAFETY: a prefetch is only a hint: it cannot fault, and `at` is inside the
            // mapping anyway.
            unsafe { std::arch::x86_64::_mm_prefetch((self.ptr as *const i8).add(at), std::arch::x86_64::_MM_HINT_T0) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped, once; no slice of it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Size of the in-place buffer: large reads (the BufReader passes them straight through)
/// and room for the largest record after what is left of the previous read.
const DATA_BUF: usize = (2 << 20) + 16 + MAX_PACKET;

fn rd_u16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be { u16::from_be_bytes(a) } else { u16::from_le_bytes(a) }
}

fn rd_u32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
}

/// Read exactly `buf.len()` bytes; Ok(n) with n < len means end of file after n bytes.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

impl CaptureReader {
    pub fn open(path: &str) -> Result<Self, OpenError> {
        let open = || File::open(path).map_err(|e| OpenError(format!("cannot open: {}", io_reason(&e))));
        let mut input = Input::Plain(BufReader::with_capacity(1 << 20, open()?));
        let mut magic = [0u8; 4];
        let mut n = read_full(&mut input, &mut magic).map_err(|e| OpenError(io_reason(&e)))?;
        if n == 0 {
            return Err(OpenError("empty file".into()));
        }
        if n >= 2 && magic[0] == 0x1F && magic[1] == 0x8B {
            // gzip, as `tcpdump -w - | gzip` writes and Wireshark reads transparently.
            let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, open()?));
            input = Input::Gzip(Box::new(BufReader::with_capacity(1 << 20, gz)));
            n = read_full(&mut input, &mut magic).map_err(|e| OpenError(format!("gzip: {}", io_reason(&e))))?;
            if n == 0 {
                return Err(OpenError("empty file (gzip)".into()));
            }
        }
        if n < 4 {
            return Err(OpenError("not a pcap or pcapng capture (too short)".into()));
        }
        let m_le = u32::from_le_bytes(magic);
        let m_be = u32::from_be_bytes(magic);
        let kind = match (m_le, m_be) {
            (0xA1B2_C3D4, _) | (0xA1B2_3C4D, _) | (_, 0xA1B2_C3D4) | (_, 0xA1B2_3C4D) => {
                let big_endian = m_be == 0xA1B2_C3D4 || m_be == 0xA1B2_3C4D;
                let nanos = if big_endian { m_be == 0xA1B2_3C4D } else { m_le == 0xA1B2_3C4D };
                let mut hdr = [0u8; 20];
                let n = read_full(&mut input, &mut hdr).map_err(|e| OpenError(io_reason(&e)))?;
                if n < 20 {
                    return Err(OpenError("pcap file header cut short".into()));
                }
                // FCS/flags bits live in the top of the link-type field (pcap "LINKTYPE_" + FCS len).
                let linktype = rd_u32(&hdr[16..20], big_endian) & 0x0FFF_FFFF;
                Kind::Pcap { big_endian, nanos, linktype }
            }
            (PCAPNG_SHB, _) => Kind::Pcapng(NgState { big_endian: false, interfaces: Vec::new() }),
            _ => return Err(OpenError("not a pcap or pcapng capture".into())),
        };
        let mut reader =
            CaptureReader { input, kind, packets: 0, warning: None, scratch: Vec::new(), data: Vec::new(), pos: 0, end: 0, map: None };
        if let (Kind::Pcap { .. }, Input::Plain(r)) = (&reader.kind, &reader.input) {
            if let Some(m) = Mapping::new(r.get_ref()) {
                // The magic and the file header (24 bytes) were read through `input`.
                reader.pos = 24.min(m.len);
                reader.end = m.len;
                reader.map = Some(m);
            }
        }
        if let Kind::Pcapng(_) = reader.kind {
            reader.read_shb_after_type().map_err(OpenError)?;
        }
        Ok(reader)
    }

    fn cut_short(&mut self, what: &str) {
        self.warning = Some(format!("{what} after {} complete packets; the rest was ignored", self.packets));
    }

    /// Read a section header block whose type field was already consumed.
    fn read_shb_after_type(&mut self) -> Result<(), String> {
        let mut head = [0u8; 8];
        let n = read_full(&mut self.input, &mut head).map_err(|e| io_reason(&e))?;
        if n < 8 {
            return Err("pcapng section header cut short".into());
        }
        let bom_le = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let big_endian = if bom_le == PCAPNG_BOM {
            false
        } else if u32::from_be_bytes([head[4], head[5], head[6], head[7]]) == PCAPNG_BOM {
            true
        } else {
            return Err("pcapng section header has a bad byte-order magic".into());
        };
        let total = rd_u32(&head[0..4], big_endian) as usize;
        if !(28..=MAX_BLOCK).contains(&total) || !total.is_multiple_of(4) {
            return Err("pcapng section header has an impossible length".into());
        }
        let mut rest = vec![0u8; total - 12];
        let n = read_full(&mut self.input, &mut rest).map_err(|e| io_reason(&e))?;
        if n < rest.len() {
            return Err("pcapng section header cut short".into());
        }
        if let Kind::Pcapng(st) = &mut self.kind {
            st.big_endian = big_endian;
            st.interfaces.clear();
        }
        Ok(())
    }

    /// The next packet, its bytes in `buf`.  None at the end of the file or after damage
    /// (then `warning` says what happened).
    pub fn next_packet(&mut self, buf: &mut Vec<u8>) -> Option<PacketMeta> {
        let res = match self.kind {
            Kind::Pcap { big_endian, nanos, linktype } => self.next_pcap(buf, big_endian, nanos, linktype),
            Kind::Pcapng(_) => self.next_pcapng(buf),
        };
        if res.is_some() {
            self.packets += 1;
        }
        res
    }

    fn next_pcap(&mut self, buf: &mut Vec<u8>, be: bool, nanos: bool, linktype: u32) -> Option<PacketMeta> {
        let (meta, range) = self.next_pcap_in_place(be, nanos, linktype)?;
        buf.clear();
        buf.extend_from_slice(&self.buf()[range]);
        Some(meta)
    }

    /// The bytes `pos..end` index: the mapping, or the in-place buffer.
    #[inline]
    fn buf(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.bytes(),
            None => &self.data,
        }
    }

    /// At least `n` bytes in `data[pos..end]` unless the file ends first: Ok(bytes there).
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.end - self.pos >= n {
            return Ok(self.end - self.pos);
        }
        if self.map.is_some() {
            return Ok(self.end - self.pos); // all of the file is there already
        }
        if self.data.len() < DATA_BUF {
            self.data.resize(DATA_BUF, 0);
        }
        self.data.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < n {
            match self.input.read(&mut self.data[self.end..]) {
                Ok(0) => break,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end)
    }

    /// The next classic pcap record, its bytes left in `data` (the range returned).
    fn next_pcap_in_place(&mut self, be: bool, nanos: bool, linktype: u32) -> Option<(PacketMeta, std::ops::Range<usize>)> {
        match self.fill(16) {
            Ok(0) => return None,
            Ok(n) if n >= 16 => {}
            Ok(_) => {
                self.cut_short("capture cut short inside a record header");
                return None;
            }
            Err(e) => {
                self.warning = Some(format!("read error: {}", io_reason(&e)));
                return None;
            }
        }
        let hdr = &self.buf()[self.pos..self.pos + 16];
        let sec = rd_u32(&hdr[0..4], be) as i64;
        let frac = rd_u32(&hdr[4..8], be) as i64;
        let caplen = rd_u32(&hdr[8..12], be) as usize;
        if caplen > MAX_PACKET {
            self.warning = Some(format!(
                "record {} claims {caplen} bytes (more than {MAX_PACKET}): file damaged, reading stopped",
                self.packets + 1
            ));
            return None;
        }
        match self.fill(16 + caplen) {
            Ok(n) if n >= 16 + caplen => {}
            Ok(_) => {
                self.pos = self.end; // the header and the partial packet are consumed
                self.cut_short("capture cut short mid-packet");
                return None;
            }
            Err(e) => {
                self.warning = Some(format!("read error: {}", io_reason(&e)));
                return None;
            }
        }
        let start = self.pos + 16;
        self.pos = start + caplen;
        if let Some(m) = &mut self.map {
            m.release_before(start);
            // Records are read in order but each one only once: start loading the bytes a
            // few records on (past the hardware prefetcher's reach at page boundaries).
            m.prefetch(self.pos + PREFETCH_BYTES);
        }
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        Some((PacketMeta { ts_ns, linktype, has_ts: true }, start..start + caplen))
    }

    fn next_pcapng(&mut self, buf: &mut Vec<u8>) -> Option<PacketMeta> {
        loop {
            let be = match &self.kind {
                Kind::Pcapng(st) => st.big_endian,
                _ => unreachable!(),
            };
            let mut head = [0u8; 8];
            match read_full(&mut self.input, &mut head) {
                Ok(0) => return None,
                Ok(8) => {}
                Ok(_) => {
                    self.cut_short("capture cut short inside a block header");
                    return None;
                }
                Err(e) => {
                    self.warning = Some(format!("read error: {}", io_reason(&e)));
                    return None;
                }
            }
            let btype_raw = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if btype_raw == PCAPNG_SHB {
                // A new section: its own byte order and interfaces.
                let mut rest = [0u8; 4];
                rest.copy_from_slice(&head[4..8]);
                // We consumed 8 bytes: type + total length.  Re-read the SHB from the length on.
                let bom_and_more = self.read_new_section(rest);
                if let Err(e) = bom_and_more {
                    self.warning = Some(format!("{e} after {} packets; reading stopped", self.packets));
                    return None;
                }
                continue;
            }
            let btype = rd_u32(&head[0..4], be);
            let total = rd_u32(&head[4..8], be) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK {
                self.warning = Some(format!(
                    "block after packet {} has an impossible length ({total}): file damaged, reading stopped",
                    self.packets
                ));
                return None;
            }
            let body_len = total - 12;
            let mut body = std::mem::take(&mut self.scratch);
            body.resize(body_len + 4, 0);
            match read_full(&mut self.input, &mut body[..]) {
                Ok(n) if n == body_len + 4 => {}
                Ok(_) => {
                    self.scratch = body;
                    self.cut_short("capture cut short mid-block");
                    return None;
                }
                Err(e) => {
                    self.scratch = body;
                    self.warning = Some(format!("read error: {}", io_reason(&e)));
                    return None;
                }
            }
            let result = self.ng_block(btype, &body[..body_len], be, buf);
            self.scratch = body;
            match result {
                Ok(Some(meta)) => return Some(meta),
                Ok(None) => continue,
                Err(e) => {
                    self.warning = Some(format!("{e} after {} packets; reading stopped", self.packets));
                    return None;
                }
            }
        }
    }

    fn read_new_section(&mut self, len_bytes: [u8; 4]) -> Result<(), String> {
        let mut bom = [0u8; 4];
        if read_full(&mut self.input, &mut bom).map_err(|e| io_reason(&e))? < 4 {
            return Err("pcapng section header cut short".into());
        }
        let be = if u32::from_le_bytes(bom) == PCAPNG_BOM {
            false
        } else if u32::from_be_bytes(bom) == PCAPNG_BOM {
            true
        } else {
            return Err("pcapng section header has a bad byte-order magic".into());
        };
        let total = rd_u32(&len_bytes, be) as usize;
        if !(28..=MAX_BLOCK).contains(&total) || !total.is_multiple_of(4) {
            return Err("pcapng section header has an impossible length".into());
        }
        let mut rest = vec![0u8; total - 12];
        if read_full(&mut self.input, &mut rest).map_err(|e| io_reason(&e))? < rest.len() {
            return Err("pcapng section header cut short".into());
        }
        if let Kind::Pcapng(st) = &mut self.kind {
            st.big_endian = be;
            st.interfaces.clear();
        }
        Ok(())
    }

    fn ng_block(&mut self, btype: u32, body: &[u8], be: bool, buf: &mut Vec<u8>) -> Result<Option<PacketMeta>, String> {
        let st = match &mut self.kind {
            Kind::Pcapng(st) => st,
            _ => unreachable!(),
        };
        match btype {
            1 => {
                // Interface description block.
                if body.len() < 8 {
                    return Err("interface block too short".into());
                }
                let linktype = rd_u16(&body[0..2], be) as u32;
                let snaplen = rd_u32(&body[4..8], be);
                let mut iface = Interface { linktype, units_per_s: 1_000_000, offset_s: 0, snaplen };
                let mut opts = &body[8..];
                while opts.len() >= 4 {
                    let code = rd_u16(&opts[0..2], be);
                    let olen = rd_u16(&opts[2..4], be) as usize;
                    let padded = (olen + 3) & !3;
                    if code == 0 || 4 + olen > opts.len() {
                        break;
                    }
                    let val = &opts[4..4 + olen];
                    if code == 9 && olen >= 1 {
                        let r = val[0];
                        let exp = (r & 0x7F) as u32;
                        iface.units_per_s = if r & 0x80 != 0 {
                            if exp > 63 { return Err("interface time resolution out of range".into()); }
                            1u64 << exp
                        } else {
                            if exp > 19 { return Err("interface time resolution out of range".into()); }
                            10u64.pow(exp)
                        };
                    } else if code == 14 && olen >= 8 {
                        let raw = if be {
                            i64::from_be_bytes(val[0..8].try_into().unwrap())
                        } else {
                            i64::from_le_bytes(val[0..8].try_into().unwrap())
                        };
                        iface.offset_s = raw;
                    }
                    if 4 + padded > opts.len() {
                        break;
                    }
                    opts = &opts[4 + padded..];
                }
                if st.interfaces.len() >= 65_536 {
                    return Err("too many interfaces".into());
                }
                st.interfaces.push(iface);
                Ok(None)
            }
            6 | 2 => {
                // Enhanced packet block (6) or the obsolete packet block (2).
                if body.len() < 20 {
                    return Err("packet block too short".into());
                }
                let if_id = if btype == 6 { rd_u32(&body[0..4], be) as usize } else { rd_u16(&body[0..2], be) as usize };
                let ts = ((rd_u32(&body[4..8], be) as u64) << 32) | rd_u32(&body[8..12], be) as u64;
                let caplen = rd_u32(&body[12..16], be) as usize;
                let iface = *st.interfaces.get(if_id).ok_or("packet block names an unknown interface")?;
                if caplen > body.len() - 20 || caplen > MAX_PACKET {
                    return Err("packet block's captured length exceeds the block".into());
                }
                buf.clear();
                buf.extend_from_slice(&body[20..20 + caplen]);
                Ok(Some(PacketMeta { ts_ns: ts_to_ns(ts, iface.units_per_s, iface.offset_s), linktype: iface.linktype, has_ts: true }))
            }
            3 => {
                // Simple packet block: interface 0, no time stamp (Wireshark shows 0).
                if body.len() < 4 {
                    return Err("simple packet block too short".into());
                }
                let iface = *st.interfaces.first().ok_or("simple packet block before any interface")?;
                let orig = rd_u32(&body[0..4], be) as usize;
                let mut caplen = orig.min(body.len() - 4);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                buf.clear();
                buf.extend_from_slice(&body[4..4 + caplen]);
                Ok(Some(PacketMeta { ts_ns: 0, linktype: iface.linktype, has_ts: false }))
            }
            _ => Ok(None), // name resolution, statistics, custom and unknown blocks
        }
    }
}

fn ts_to_ns(ts: u64, units_per_s: u64, offset_s: i64) -> i64 {
    let ns = if units_per_s == 1_000_000_000 {
        ts as i128
    } else if units_per_s == 1_000_000 {
        ts as i128 * 1000
    } else {
        (ts as i128 * 1_000_000_000) / units_per_s.max(1) as i128
    };
    let ns = ns + offset_s as i128 * 1_000_000_000;
    ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            s.lines().next().unwrap_or("I/O error").to_string()
        }
    }
}

/// Several captures read as one, in time-stamp order (what `mergecap` writes: the earliest
/// packet next, ties to the file named first).
pub struct MergedReader {
    readers: Vec<CaptureReader>,
    heads: Vec<Option<(PacketMeta, Vec<u8>)>>,
    pub paths: Vec<String>,
    /// The packet `next_packet_ref` returns when it is not read in place.
    held: Vec<u8>,
}

impl MergedReader {
    pub fn open(paths: &[String]) -> Result<Self, (String, OpenError)> {
        let mut readers = Vec::with_capacity(paths.len());
        for p in paths {
            readers.push(CaptureReader::open(p).map_err(|e| (p.clone(), e))?);
        }
        let mut m = MergedReader { heads: Vec::new(), readers, paths: paths.to_vec(), held: Vec::new() };
        for i in 0..m.readers.len() {
            let mut b = Vec::new();
            let head = m.readers[i].next_packet(&mut b).map(|meta| (meta, b));
            m.heads.push(head);
        }
        Ok(m)
    }

    /// The next packet across all files; `buf` receives its bytes.
    pub fn next_packet(&mut self, buf: &mut Vec<u8>) -> Option<PacketMeta> {
        if self.readers.len() == 1 {
            if let Some((meta, b)) = self.heads[0].take() {
                *buf = b;
                return Some(meta);
            }
            return self.readers[0].next_packet(buf);
        }
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some((meta, _)) = h {
                match best {
                    None => best = Some(i),
                    Some(j) => {
                        if meta.ts_ns < self.heads[j].as_ref().unwrap().0.ts_ns {
                            best = Some(i)
                        }
                    }
                }
            }
        }
        let i = best?;
        let (meta, mut b) = self.heads[i].take().unwrap();
        std::mem::swap(buf, &mut b);
        // Refill this file's head, reusing the buffer we swapped out.
        let next = self.readers[i].next_packet(&mut b).map(|m| (m, b));
        self.heads[i] = next;
        Some(meta)
    }

    /// The next packet across all files and its bytes: read in place (no copy) for a single
    /// classic pcap file, else as `next_packet` reads it.
    pub fn next_packet_ref(&mut self) -> Option<(PacketMeta, &[u8])> {
        if self.readers.len() == 1 && self.heads[0].is_none() {
            let r = &mut self.readers[0];
            if let Kind::Pcap { big_endian, nanos, linktype } = r.kind {
                let (meta, range) = r.next_pcap_in_place(big_endian, nanos, linktype)?;
                r.packets += 1;
                return Some((meta, &self.readers[0].buf()[range]));
            }
        }
        let mut held = std::mem::take(&mut self.held);
        let meta = self.next_packet(&mut held);
        self.held = held;
        meta.map(|m| (m, &self.held[..]))
    }

    pub fn warnings(&self) -> Vec<String> {
        self.readers
            .iter()
            .zip(self.paths.iter())
            .filter_map(|(r, p)| r.warning.as_ref().map(|w| format!("{p}: {w}")))
            .collect()
    }

    pub fn packets_per_file(&self) -> Vec<u64> {
        self.readers.iter().map(|r| r.packets).collect()
    }
}
