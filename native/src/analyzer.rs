//! One pass over merged captures: DNS transactions matched as Wireshark matches them,
//! the `dns,tree` statistics, and the figures the on-call engineer needs first.

use crate::dns::{self, RrInfo, Scratch};
use crate::dns_tree::{rcode_name, type_mnemonic, DnsTap, DnsTree};
use crate::dns_tree44::{self, DnsQrTree, DnsTree44, Tap44, TTL_MAX};
use crate::link::{self, Endpoint, Skip, Transport};
use crate::reader::{MergedReader, OpenError};
use crate::stats_tree::Row;
use crate::defrag::Defragmenter;
use crate::tcp::Reassembler;
use serde::Serialize;
use crate::FastMap;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Wireshark's dns.retransmission_timer default (packet-dns.c), in seconds.
const RETRANSMISSION_TIMER_S: f64 = 5.0;
/// Answered transactions are kept this long (capture time) to recognise duplicate responses.
const KEEP_ANSWERED_NS: i64 = 10_000_000_000;
/// Unanswered transactions wait this long for a late response before they are final.
const KEEP_UNANSWERED_NS: i64 = 300_000_000_000;
const MAX_FAILING_NAMES: usize = 200_000;
/// Live transactions at most (~130 bytes each): past this, the oldest are settled early,
/// so a hostile capture of endless unanswered queries cannot exhaust memory.
const MAX_LIVE_TRANSACTIONS: usize = 200_000;
const MAX_MULTICAST_TRANSACTIONS: usize = 200_000;
const MAX_TIMELINE_SECONDS: usize = 200_000;
const MAX_PEERS: usize = 100_000;
/// Entries of each half of `Stats::peer_memo` (a power of two).
const PEER_MEMO: usize = 4096;
/// Servers that get a timeline of their own (the picture draws one line each).
const MAX_TIMELINE_SERVERS: usize = 6;
/// Name/type pairs whose UDP and TCP answers are remembered for comparison.
const MAX_ANSWER_NAMES: usize = 200_000;
/// A UDP and a TCP answer are compared when they are at most this far apart.
const ANSWER_COMPARE_NS: i64 = 30_000_000_000;
/// A re-send of one half of an A/AAAA pair this long after the first send is the resolver's
/// time-out (glibc and musl: 5 s) after conntrack dropped it.
const RACE_RESEND_NS: std::ops::Range<i64> = 4_000_000_000..6_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
struct TxKey {
    transport: Transport,
    a: Endpoint,
    b: Endpoint,
    id: u16,
}

/// Hashed as one or three words instead of field by field (the derived impl feeds the
/// hasher a dozen small pieces per lookup).  Equal keys give equal words.
impl std::hash::Hash for TxKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::net::IpAddr;
        let rest = (self.a.port as u128) << 64
            | (self.b.port as u128) << 80
            | (self.id as u128) << 96
            | (self.transport as u128) << 112;
        match (self.a.ip, self.b.ip) {
            (IpAddr::V4(x), IpAddr::V4(y)) => h.write_u128(rest | (u32::from(x) as u128) << 32 | u32::from(y) as u128),
            (x, y) => {
                let bits = |ip: IpAddr| match ip {
                    IpAddr::V4(v) => u32::from(v) as u128 | 1 << 127,
                    IpAddr::V6(v) => u128::from(v),
                };
                h.write_u128(bits(x));
                h.write_u128(bits(y));
                h.write_u128(rest);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Tx {
    serial: u64,
    req_ns: i64,
    answered: bool,
    multiple_responds: bool,
    query_malformed: bool,
    paired: bool,
    loss_counted: bool,
    retransmissions: u32,
    /// The query came from endpoint `a` of the key (else from `b`).
    client_is_a: bool,
    /// Part of a followed lookup (listed in `hop_index`).
    hop: bool,
    qtype: u16,
    /// The question's name (raw bytes as Wireshark expanded them), interned: see `Names`.
    qname: u32,
}

/// The live transactions.  Nearly all conversations are IPv4: their keys pack into one
/// u128, so that an entry (key and `Tx`) is a single cache line, in a table of our own
/// (`V4Table`) whose lines can be prefetched; the rest use the full key.
/// Lookups in this table are most of the matching thread's cache misses.
#[derive(Default)]
struct TxTable {
    v4: V4Table,
    other: FastMap<TxKey, Tx>,
}

/// One IPv4 transaction with its packed key: exactly one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct V4Slot {
    key: u128,
    tx: Tx,
}

/// An open-addressing table (linear probing, backward-shift deletion, no tombstones) of
/// IPv4 transactions.  A slot's address follows from the key's hash alone, so the
/// matching thread can prefetch the line a message will need a few messages ahead (and
/// `expire` the lines of the transactions it is about to drop), which std's HashMap
/// cannot offer: the misses overlap instead of stalling one after another.
///
/// `ctrl` holds, per slot, 0 when empty, else 0x8000 | 7 hash bits << 8 | the distance
/// from the slot the key hashes to (at most `MAX_DIST`: past it the table grows).  At two
/// bytes a slot it stays in cache: probing reads it, and a slot's line only on a tag match.
struct V4Table {
    ctrl: Vec<u16>,
    slots: Slots,
    mask: usize,
    len: usize,
    /// Keyed per process (as `FastMap`): a hostile capture cannot aim keys at one slot.
    hasher: ahash::RandomState,
}

const MAX_DIST: usize = 255;

impl Default for V4Table {
    fn default() -> Self {
        // One 2 MB page of slots: smaller tables take a whole huge page anyway, and
        // every size passed through on the way up was zeroed in full by the kernel.
        V4Table::with_capacity((2 << 20) / std::mem::size_of::<V4Slot>(), ahash::RandomState::new())
    }
}

impl V4Table {
    fn with_capacity(cap: usize, hasher: ahash::RandomState) -> V4Table {
        debug_assert!(cap.is_power_of_two());
        V4Table { ctrl: vec![0; cap], slots: Slots::new(cap), mask: cap - 1, len: 0, hasher }
    }

    #[inline]
    fn hash(&self, w: u128) -> u64 {
        self.hasher.hash_one(w)
    }

    #[inline]
    fn tag(h: u64) -> u16 {
        0x8000 | ((h >> 57) as u16) << 8
    }

    /// Bring the lines a lookup of `w` will read into the cache, without waiting for them.
    #[inline]
    fn prefetch(&self, w: u128) {
        let i = self.hash(w) as usize & self.mask;
        prefetch_read(&self.slots[i]);
        prefetch_read(&self.ctrl[i]);
    }

    /// The slot holding `w`, or Err(the empty slot and distance where it would go).
    #[inline]
    fn find(&self, w: u128, h: u64) -> Result<usize, (usize, usize)> {
        let tag = Self::tag(h);
        let mut i = h as usize & self.mask;
        let mut dist = 0;
        loop {
            let c = self.ctrl[i];
            if c == 0 {
                return Err((i, dist));
            }
            if c & 0xFF00 == tag && self.slots[i].key == w {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
            dist += 1;
        }
    }

    #[inline]
    fn get(&self, w: u128) -> Option<&Tx> {
        self.find(w, self.hash(w)).ok().map(|i| &self.slots[i].tx)
    }

    #[inline]
    fn get_mut(&mut self, w: u128) -> Option<&mut Tx> {
        match self.find(w, self.hash(w)) {
            Ok(i) => Some(&mut self.slots[i].tx),
            Err(_) => None,
        }
    }

    /// The slot of `w`, made with `fresh` if there is none; true when just made.
    #[inline]
    fn get_or_insert_with(&mut self, w: u128, fresh: impl FnOnce() -> Tx) -> (&mut Tx, bool) {
        let h = self.hash(w);
        let (i, dist) = match self.find(w, h) {
            Ok(i) => return (&mut self.slots[i].tx, false),
            Err(at) => at,
        };
        let i = if dist > MAX_DIST || (self.len + 1) * 2 > self.slots.len() {
            self.grow();
            match self.find(w, h) {
                Err((i, dist)) if dist <= MAX_DIST => {
                    self.ctrl[i] = Self::tag(h) | dist as u16;
                    i
                }
                _ => unreachable!("a grown table has room near every key"),
            }
        } else {
            self.ctrl[i] = Self::tag(h) | dist as u16;
            i
        };
        self.len += 1;
        self.slots[i] = V4Slot { key: w, tx: fresh() };
        (&mut self.slots[i].tx, true)
    }

    /// Double the table (at most half full, so probes stay short).
    #[cold]
    fn grow(&mut self) {
        let mut cap = self.slots.len() * 2;
        'again: loop {
            let mut t = V4Table::with_capacity(cap, self.hasher.clone());
            for (c, s) in self.ctrl.iter().zip(self.slots.iter()) {
                if *c == 0 {
                    continue;
                }
                let h = t.hash(s.key);
                match t.find(s.key, h) {
                    Err((i, dist)) if dist <= MAX_DIST => {
                        t.ctrl[i] = Self::tag(h) | dist as u16;
                        t.slots[i] = *s;
                    }
                    _ => {
                        // Only a freak of the hash gets here: a bigger table spreads it.
                        cap *= 2;
                        continue 'again;
                    }
                }
            }
            t.len = self.len;
            *self = t;
            return;
        }
    }

    /// Empty slot `i` and shift the following keys of its run back (no tombstones).
    fn remove_at(&mut self, mut i: usize) -> Tx {
        let tx = self.slots[i].tx;
        self.len -= 1;
        let mut j = (i + 1) & self.mask;
        loop {
            let c = self.ctrl[j];
            if c == 0 {
                break;
            }
            let dist = (c & 0xFF) as usize;
            let gap = j.wrapping_sub(i) & self.mask;
            if dist >= gap {
                // The key at j may move back to i: still at or after its home slot.
                self.ctrl[i] = c - gap as u16;
                self.slots[i] = self.slots[j];
                i = j;
            }
            j = (j + 1) & self.mask;
        }
        self.ctrl[i] = 0;
        tx
    }

    #[inline]
    fn find_serial(&self, w: u128, serial: u64) -> Option<usize> {
        match self.find(w, self.hash(w)) {
            Ok(i) if self.slots[i].tx.serial == serial => Some(i),
            _ => None,
        }
    }
}

/// The slots of a `V4Table`: zeroed memory of our own, on 2 MB pages where the kernel
/// has them.  Lookups land anywhere in 16 MB (70 k live transactions): with 4 kB pages
/// nearly every one also missed the TLB, and a page walk under a hypervisor is itself a
/// chain of misses.
struct Slots {
    ptr: std::ptr::NonNull<V4Slot>,
    len: usize,
    bytes: usize,
}

// SAFETY: `Slots` owns its memory like a Vec<V4Slot> does.
unsafe impl Send for Slots {}

impl Slots {
    fn new(len: usize) -> Slots {
        const HUGE: usize = 2 << 20;
        let bytes = (len * std::mem::size_of::<V4Slot>()).next_multiple_of(HUGE);
        // SAFETY: a fresh private anonymous mapping (zero-filled, 4 kB-aligned, so 64-byte
        // aligned), checked for failure; only this value uses it, and Drop unmaps it.
        let ptr = unsafe {
            let p = libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            if p == libc::MAP_FAILED {
                std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align(bytes, 64).unwrap_or(std::alloc::Layout::new::<V4Slot>()));
            }
            // Before the first touch (a hint: no huge pages, no harm).
            libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
            p as *mut V4Slot
        };
        Slots { ptr: std::ptr::NonNull::new(ptr).expect("mmap never returns null"), len, bytes }
    }
}

impl std::ops::Deref for Slots {
    type Target = [V4Slot];
    fn deref(&self) -> &[V4Slot] {
        // SAFETY: `len` slots of mapped memory; all-zero bytes are a valid V4Slot (integers
        // and bools only).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [V4Slot] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.bytes) };
    }
}

/// One bit per transaction serial, from `base` on (a multiple of 64): set while the
/// transaction is unanswered.  At the end only those are looked up in the table: sweeping
/// all of it (70 k live transactions in 16 MB for 1 M packets) took ~12 ms.
#[derive(Default)]
struct SerialBits {
    words: VecDeque<u64>,
    base: u64,
}

impl SerialBits {
    fn set(&mut self, serial: u64) {
        let i = (serial - self.base) as usize;
        if i / 64 >= self.words.len() {
            self.words.resize(i / 64 + 1, 0);
        }
        self.words[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, serial: u64) {
        if let Some(i) = serial.checked_sub(self.base) {
            if let Some(w) = self.words.get_mut(i as usize / 64) {
                *w &= !(1 << (i % 64));
            }
        }
    }
    fn get(&self, serial: u64) -> bool {
        serial.checked_sub(self.base).and_then(|i| self.words.get(i as usize / 64).map(|w| w >> (i % 64) & 1 != 0)) == Some(true)
    }
    /// Forget the serials below `oldest` (no live transaction has one).
    fn trim(&mut self, oldest: u64) {
        while self.base + 64 <= oldest && !self.words.is_empty() {
            self.words.pop_front();
            self.base += 64;
        }
    }
}

/// A hint to load the line holding `p` (no effect on results; a no-op elsewhere).
#[inline(always)]
fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching only hints the cache; it reads nothing architecturally and
    // cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl TxKey {
    /// The key in one word when both ends are IPv4 (every field kept: no collisions).
    #[inline]
    fn packed_v4(&self) -> Option<u128> {
        use std::net::IpAddr;
        match (self.a.ip, self.b.ip) {
            (IpAddr::V4(x), IpAddr::V4(y)) => Some(
                u32::from(y) as u128
                    | (u32::from(x) as u128) << 32
                    | (self.a.port as u128) << 64
                    | (self.b.port as u128) << 80
                    | (self.id as u128) << 96
                    | (self.transport as u128) << 112,
            ),
            _ => None,
        }
    }
}

impl TxTable {
    fn len(&self) -> usize {
        self.v4.len + self.other.len()
    }
    /// Start loading what a lookup of `k` will read (see `V4Table`).
    #[inline]
    fn prefetch(&self, k: &TxKey) {
        if let Some(w) = k.packed_v4() {
            self.v4.prefetch(w);
        }
    }
    fn get(&self, k: &TxKey) -> Option<&Tx> {
        match k.packed_v4() {
            Some(w) => self.v4.get(w),
            None => self.other.get(k),
        }
    }
    fn get_mut(&mut self, k: &TxKey) -> Option<&mut Tx> {
        match k.packed_v4() {
            Some(w) => self.v4.get_mut(w),
            None => self.other.get_mut(k),
        }
    }
    /// One lookup: drop transaction `serial` of `k` if it was answered.  Some(answered)
    /// when that transaction is still the live one, None when a newer one replaced it.
    fn forget_if_answered(&mut self, k: &TxKey, serial: u64) -> Option<bool> {
        use std::collections::hash_map::Entry;
        match k.packed_v4() {
            Some(w) => {
                let i = self.v4.find_serial(w, serial)?;
                let answered = self.v4.slots[i].tx.answered;
                if answered {
                    self.v4.remove_at(i);
                }
                Some(answered)
            }
            None => match self.other.entry(*k) {
                Entry::Occupied(o) if o.get().serial == serial => {
                    let answered = o.get().answered;
                    if answered {
                        o.remove();
                    }
                    Some(answered)
                }
                _ => None,
            },
        }
    }

    /// The transaction of `k`, made by `fresh` if there is none (one probe either way,
    /// where get_mut then insert took two for every new query); true when just made.
    #[inline]
    fn get_or_insert_with(&mut self, k: TxKey, fresh: impl FnOnce() -> Tx) -> (&mut Tx, bool) {
        use std::collections::hash_map::Entry;
        match k.packed_v4() {
            Some(w) => self.v4.get_or_insert_with(w, fresh),
            None => match self.other.entry(k) {
                Entry::Occupied(o) => (o.into_mut(), false),
                Entry::Vacant(v) => (v.insert(fresh()), true),
            },
        }
    }

    /// One lookup: remove transaction `serial` of `k` if it is still the live one.
    fn remove_if_serial(&mut self, k: &TxKey, serial: u64) -> Option<Tx> {
        use std::collections::hash_map::Entry;
        match k.packed_v4() {
            Some(w) => {
                let i = self.v4.find_serial(w, serial)?;
                Some(self.v4.remove_at(i))
            }
            None => match self.other.entry(*k) {
                Entry::Occupied(o) if o.get().serial == serial => Some(o.remove()),
                _ => None,
            },
        }
    }

    /// Empty the map of transactions that are not IPv4 (in its order).
    fn drain_other(&mut self) -> impl Iterator<Item = (TxKey, Tx)> + '_ {
        self.other.drain()
    }
}

impl Tx {
    fn endpoints(&self, key: &TxKey) -> (Endpoint, Endpoint) {
        if self.client_is_a { (key.a, key.b) } else { (key.b, key.a) }
    }
}

/// Question names, stored once each: DNS traffic repeats a few names endlessly, so a
/// transaction keeps a 4-byte id instead of its own copy (no allocation per query).
struct Names {
    by_hash: FastMap<u64, u32>,
    ids: FastMap<Box<[u8]>, u32>,
    list: Vec<Box<[u8]>>,
}

/// Distinct names kept at most; later new names are not kept (lists show them empty).
const MAX_NAMES: usize = 500_000;
const NO_NAME: u32 = u32::MAX;

impl Names {
    fn new() -> Names {
        Names { by_hash: FastMap::default(), ids: FastMap::default(), list: Vec::new() }
    }
    /// `hash` is the reading thread's case-insensitive name hash: the first lookup costs
    /// one word's hash; the bytes are compared, and names that differ only in case (or
    /// collide) go to the map keyed by the bytes.
    fn intern(&mut self, name: &[u8], hash: u64) -> u32 {
        if let Some(&id) = self.by_hash.get(&hash) {
            if *self.list[id as usize] == *name {
                return id;
            }
            if let Some(&id) = self.ids.get(name) {
                return id;
            }
        }
        if self.list.len() >= MAX_NAMES {
            return NO_NAME;
        }
        let id = self.list.len() as u32;
        self.list.push(name.into());
        if let std::collections::hash_map::Entry::Vacant(v) = self.by_hash.entry(hash) {
            v.insert(id);
        } else {
            self.ids.insert(name.into(), id);
        }
        id
    }
    fn get(&self, id: u32) -> &[u8] {
        self.list.get(id as usize).map_or(&[], |b| b)
    }
}

/// Printable form of raw name bytes (non-printable bytes escaped).
fn display_name(bytes: &[u8]) -> String {
    dns::Name { bytes: bytes.to_vec(), len: bytes.len() }.display()
}

/// Counters per RR type: an array for the common types, a map for the rest.
struct TypeCounts<T: Default + Clone> {
    small: Vec<T>,
    big: FastMap<u16, T>,
}

impl<T: Default + Clone> TypeCounts<T> {
    fn new() -> Self {
        TypeCounts { small: vec![T::default(); 256], big: FastMap::default() }
    }
    fn entry(&mut self, t: u16) -> &mut T {
        if t < 256 { &mut self.small[t as usize] } else { self.big.entry(t).or_default() }
    }
    fn items(&self) -> Vec<(u16, T)> {
        let mut v: Vec<(u16, T)> = self.small.iter().cloned().enumerate().map(|(i, c)| (i as u16, c)).collect();
        v.extend(self.big.iter().map(|(k, c)| (*k, c.clone())));
        v
    }
}

impl TypeCounts<u64> {
    fn add(&mut self, t: u16) {
        *self.entry(t) += 1;
    }
}

/// One query or response in the lists the report shows.
#[derive(Serialize, Clone)]
pub struct TxRecord {
    pub time_ns: i64,
    pub client: String,
    pub server: String,
    pub transport: &'static str,
    pub id: u16,
    pub qtype: String,
    pub qname: String,
    pub rcode: Option<String>,
    pub response_time_ms: Option<f64>,
    pub retransmissions: u32,
}

impl PartialEq for TxRecord {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for TxRecord {}
impl PartialOrd for TxRecord {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TxRecord {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.time_ns.cmp(&other.time_ns).then(self.id.cmp(&other.id))
    }
}

#[derive(Serialize, Default, Clone)]
pub struct Peer {
    pub address: String,
    pub queries: u64,
    pub responses: u64,
    pub noerror: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    pub refused: u64,
    pub other_errors: u64,
    pub unanswered: u64,
    pub slow: u64,
    pub timed: u64,
    pub rt_sum_ms: f64,
    pub rt_max_ms: f64,
}

#[derive(Serialize, Default, Clone, Copy)]
pub struct Second {
    pub second: i64,
    pub queries: u64,
    pub responses: u64,
    pub errors: u64,
    pub servfail: u64,
    pub unanswered: u64,
    pub slow: u64,
}

#[derive(Serialize, Clone)]
pub struct Agg {
    pub label: String,
    pub count: u64,
    pub average: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Default, Clone, Copy)]
struct AggAcc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl AggAcc {
    fn add(&mut self, v: f64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
    }
    fn out(&self, label: String) -> Agg {
        Agg {
            label,
            count: self.count,
            average: if self.count > 0 { self.sum / self.count as f64 } else { 0.0 },
            min: self.min,
            max: self.max,
        }
    }
}

/// Response times in microseconds, 0.2 % resolution (HDR-style buckets).
struct LatencyHistogram {
    buckets: Vec<u64>,
}

impl LatencyHistogram {
    fn new() -> Self {
        LatencyHistogram { buckets: vec![0; 1024 + 64 * 512] }
    }
    fn index(us: u64) -> usize {
        if us < 1024 {
            return us as usize;
        }
        let e = 63 - us.leading_zeros() as usize - 9; // us >> e in 512..1024
        let mant = (us >> e) as usize;
        1024 + (e - 1) * 512 + (mant - 512)
    }
    fn bounds(i: usize) -> (u64, u64) {
        if i < 1024 {
            return (i as u64, i as u64 + 1);
        }
        let e = (i - 1024) / 512 + 1;
        let mant = ((i - 1024) % 512 + 512) as u64;
        (mant << e, (mant + 1) << e)
    }
    fn add(&mut self, us: u64) {
        let i = Self::index(us).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
    }
    fn quantile(&self, total: u64, q: f64) -> f64 {
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = Self::bounds(i);
                return (lo as f64 + hi as f64) / 2.0 / 1000.0;
            }
        }
        0.0
    }
    fn sparse(&self) -> Vec<(f64, f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (lo, hi) = Self::bounds(i);
                (lo as f64 / 1000.0, hi as f64 / 1000.0, c)
            })
            .collect()
    }
}

#[derive(Serialize)]
pub struct Latency {
    pub count: u64,
    pub average_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// (low ms, high ms, count) for every non-empty bucket.
    pub histogram: Vec<(f64, f64, u64)>,
}

#[derive(Serialize)]
pub struct ServerTimeline {
    pub address: String,
    pub seconds: Vec<Second>,
}

/// Evidence of the failure signatures the compiled pass can see (the rest are derived in
/// Python from the per-server and failing-name figures).
#[derive(Serialize, Default)]
pub struct Signatures {
    /// One half of an A/AAAA pair from one socket re-sent 4-6 s after it went unanswered.
    pub race_events: u64,
    pub race: Vec<TxRecord>,
    /// UDP responses of 512 bytes or more without the TC bit.
    pub udp_large_no_tc: u64,
    pub udp_large: Vec<TxRecord>,
    /// Names whose UDP answer (TC clear) and TCP answer hold a different number of records
    /// (a rotated address set is no difference; a UDP answer cut short is).
    pub udp_tcp_differ_events: u64,
    pub udp_tcp_differ: Vec<AnswerDiff>,
}

#[derive(Serialize, Clone)]
pub struct AnswerDiff {
    pub time_ns: i64,
    pub qname: String,
    pub qtype: String,
    pub server: String,
    pub udp_answers: u16,
    pub udp_bytes: u32,
    pub tcp_answers: u16,
    pub tcp_bytes: u32,
}

/// The latest answer seen for a name and type over one transport.
#[derive(Clone, Copy, Default)]
struct SeenAnswer {
    ts: i64,
    answers: u16,
    bytes: u32,
}

#[derive(Serialize)]
pub struct FailingName {
    pub name: String,
    pub rcode: String,
    pub count: u64,
}

#[derive(Serialize)]
pub struct FileInfo {
    pub path: String,
    pub packets: u64,
}

#[derive(Serialize, Default)]
pub struct Ignored {
    pub not_ip: u64,
    pub unsupported_link_type: u64,
    pub truncated: u64,
    pub ip_fragments: u64,
    pub other_protocols: u64,
    pub other_ports: u64,
}

#[derive(Serialize)]
pub struct GuideTable {
    pub rcodes: Vec<(String, u64)>,
    pub query_types: Vec<(String, u64)>,
    pub response_types: Vec<(String, u64)>,
    pub answer_rrs: Agg,
    pub answer_types: Vec<(String, u64)>,
    pub ttl_by_type: Vec<Agg>,
    pub response_time_buckets: Vec<Agg>,
    pub unsolicited: u64,
    pub retransmissions: u64,
    pub request_not_found: u64,
    pub payload_size_buckets: Vec<Agg>,
}

#[derive(Serialize)]
pub struct Hop {
    pub client_query: TxRecord,
    pub upstream_query: TxRecord,
    /// Time between the client's query and the forwarded query (ms).
    pub before_upstream_ms: f64,
    /// Upstream response time (ms), None if never answered.
    pub upstream_ms: Option<f64>,
    /// Time from the upstream answer to the answer to the client (ms).
    pub after_upstream_ms: Option<f64>,
    pub client_ms: Option<f64>,
}

#[derive(Serialize)]
pub struct Analysis {
    pub files: Vec<FileInfo>,
    pub warnings: Vec<String>,
    pub frames: u64,
    pub dns_messages: u64,
    pub queries: u64,
    pub responses: u64,
    pub malformed: u64,
    pub ignored: Ignored,
    pub first_time_ns: Option<i64>,
    pub last_time_ns: Option<i64>,
    pub tshark_tree: String,
    /// `-z dns,tree -z dns_qr,tree` of Wireshark 4.4 (only when asked for).
    pub tshark_tree_44: Option<String>,
    /// dns_qr's "Unanswered": queries that are not retransmissions, less one for each
    /// answered response (Wireshark 4.4's definition).
    pub qr_unanswered: i64,
    pub tree_rows: Vec<Row>,
    pub transactions: u64,
    pub answered_transactions: u64,
    pub unanswered_queries: u64,
    pub unanswered_transactions: u64,
    pub retransmitted_queries: u64,
    pub retransmitted_responses: u64,
    pub unsolicited_responses: u64,
    pub slow_threshold_s: f64,
    pub slow_responses: u64,
    pub response_rcodes: Vec<(String, u64)>,
    pub latency: Latency,
    pub unanswered: Vec<TxRecord>,
    pub slow: Vec<TxRecord>,
    pub servers: Vec<Peer>,
    pub clients: Vec<Peer>,
    pub failing_names: Vec<FailingName>,
    pub failing_names_truncated: bool,
    pub aaaa_pairs: u64,
    pub aaaa_pair_members_lost: u64,
    pub timeline: Vec<Second>,
    /// The per-second timeline of each of the first few servers.
    pub server_timelines: Vec<ServerTimeline>,
    pub signatures: Signatures,
    pub guide: GuideTable,
    pub hops: Vec<Hop>,
    pub hop_count: u64,
}

struct LastQuery {
    ts: i64,
    key: TxKey,
    transport: Transport,
    client: Endpoint,
}

/// How many recent A/AAAA queries are kept to find the other half of a pair.
const RECENT_QUERIES: usize = 16;

/// The last A/AAAA queries, oldest first: a ring whose tags (name hash + type) are
/// scanned first, so that a miss, the common case, reads two cache lines.
#[derive(Default)]
struct RecentQueries {
    tags: [u64; RECENT_QUERIES],
    entries: [Option<LastQuery>; RECENT_QUERIES],
    /// The slot the next query goes to (the oldest one).
    next: usize,
}

impl RecentQueries {
    /// The oldest entry tagged `tag` that `ok` accepts, taken out of the ring.
    fn find(&mut self, tag: u64, ok: impl Fn(&LastQuery) -> bool) -> Option<TxKey> {
        for i in 0..RECENT_QUERIES {
            let slot = (self.next + i) % RECENT_QUERIES;
            if self.tags[slot] != tag {
                continue;
            }
            if let Some(q) = &self.entries[slot] {
                if ok(q) {
                    let key = q.key;
                    self.entries[slot] = None;
                    self.tags[slot] = 0;
                    return Some(key);
                }
            }
        }
        None
    }

    fn push(&mut self, tag: u64, q: LastQuery) {
        self.tags[self.next] = tag;
        self.entries[self.next] = Some(q);
        self.next = (self.next + 1) % RECENT_QUERIES;
    }
}
/// Slots of the table of recent queries that a forwarded query is matched against.
// A forwarded query follows its client query within milliseconds: few slots suffice, and
// a table that stays in cache is what keeps the matching thread fast.
const HOP_SLOTS: usize = 1 << 12;
/// Followed lookups listed in full (every one is counted in `hop_count`): the report shows the
/// first 100 (workers.analysis.traffic.model.HOPS_KEPT), and listing 1,000 was 40 % of the JSON.
const HOPS_LISTED: usize = 100;

/// The slot of a (name, type) in `Analyzer::hop_candidates`.
#[inline]
fn hop_slot(name_hash: u64, qtype: u16) -> usize {
    ((name_hash ^ (qtype as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize) & (HOP_SLOTS - 1)
}

/// Messages ahead of the one being matched whose lines are prefetched: enough to cover a
/// miss to memory, few enough that the lines are still in cache when used.
const PREFETCH_AHEAD: usize = 8;

/// Outstanding client lookups by (name, type), to follow them upstream.
struct HopCandidate {
    name_hash: u64,
    qtype: u16,
    ts: i64,
    key: TxKey,
    serial: u64,
    server_ip: std::net::IpAddr,
}

struct PendingHop {
    client_key: TxKey,
    client_serial: u64,
    client_ts: i64,
    up_key: TxKey,
    up_serial: u64,
    up_ts: i64,
    up_resp_ts: Option<i64>,
    client_resp_ts: Option<i64>,
    client: TxRecord,
    upstream: TxRecord,
}

/// The first half of the pass (its own thread): read, decode, parse, match transactions.
pub struct Analyzer {
    list_limit: usize,
    txs: TxTable,
    serial: u64,
    fifo: VecDeque<(TxKey, i64, u64)>,
    fifo_unanswered: VecDeque<(TxKey, i64, u64)>,
    /// The live IPv4 transactions not answered yet, by serial (see `SerialBits`).
    open_v4: SerialBits,
    max_ts: i64,
    since_expire: u32,
    malformed: u64,
    transactions: u64,
    answered: u64,
    unanswered_filter: u64,
    unanswered_tx: u64,
    retrans_q: u64,
    unanswered_heap: BinaryHeap<TxRecord>,
    recent_queries: RecentQueries,
    pairs: u64,
    pair_lost: u64,
    race_events: u64,
    race: Vec<TxRecord>,
    // hops
    /// Recent new queries in a direct-mapped table indexed by (name, type) hash.
    hop_candidates: Vec<Option<HopCandidate>>,
    hops: Vec<PendingHop>,
    hop_index: FastMap<(TxKey, u64), Vec<usize>>,
    hop_count: u64,
    mdns: FastMap<(Endpoint, Endpoint, u16), (i64, bool)>,
    names: Names,
    pending: Vec<Unanswered>,
    sender: Option<SyncSender<Batch>>,
    stats: Option<JoinHandle<Stats>>,
    /// Wireshark 4.4's trees (4.4 mode): their thread, joined after the statistics one.
    trees44: Option<JoinHandle<Trees44>>,
}

/// The second half (a second thread): the tshark tree and every other figure.
pub struct Stats {
    slow_ns: i64,
    /// Only the tshark trees are wanted (`--format tshark`): every other figure is skipped.
    trees_only: bool,
    tree: DnsTree,
    qr_unanswered: i64,
    dns_messages: u64,
    queries: u64,
    responses: u64,
    retrans_r: u64,
    unsolicited: u64,
    slow_count: u64,
    response_rcodes: [u64; 16],
    lat: LatencyHistogram,
    lat_acc: AggAcc,
    slow_list: Vec<TxRecord>,
    servers: Vec<Peer>,
    clients: Vec<Peer>,
    server_slots: FastMap<std::net::IpAddr, usize>,
    client_slots: FastMap<std::net::IpAddr, usize>,
    server_cache: Option<(std::net::IpAddr, usize)>,
    client_cache: Option<(std::net::IpAddr, usize)>,
    /// IPv4 peers' rows remembered in a direct-mapped table (address, row + 1; 0 empty),
    /// servers then clients: clients change from message to message, and a miss of the
    /// one-entry cache cost a map lookup (hashing an IpAddr) each time.
    peer_memo: Vec<(u32, u32)>,
    /// Lower-cased name bytes followed by the rcode (2 bytes).
    failing: FastMap<Box<[u8]>, u64>,
    failing_truncated: bool,
    name_buf: Vec<u8>,
    timeline: Vec<Second>,
    second_slots: FastMap<i64, usize>,
    last_second: Option<(i64, usize)>,
    server_seconds: Vec<Second>,
    server_second_slots: FastMap<(usize, i64), usize>,
    /// The slot each timeline server used last (its second and index): most messages hit it.
    server_last: [(i64, usize); MAX_TIMELINE_SERVERS],
    server_second_owner: Vec<usize>,
    udp_answers: FastMap<u64, SeenAnswer>,
    tcp_answers: FastMap<u64, SeenAnswer>,
    signatures: Signatures,
    // guide table
    q_types: TypeCounts<u64>,
    r_types: TypeCounts<u64>,
    answer_rrs: AggAcc,
    answer_types: TypeCounts<u64>,
    ttl: TypeCounts<AggAcc>,
    rt_buckets: [AggAcc; 20],
    size_buckets: [AggAcc; 8],
    list_limit: usize,
}

/// Messages in a batch (handed from thread to thread in the pipeline).
const BATCH_EVENTS: usize = 4096;
/// Batches queued between two threads.  Three threads share two CPUs, so each one is
/// descheduled now and then for a time slice (a few ms); a queue holding more work than
/// that keeps the other two running meanwhile.  With 4 batches of 1,024 messages (about
/// 1 ms of work) a CPU sat idle a quarter of the time (1 M packets: 0.27 s wall for
/// 0.39 s CPU; 0.23 s with 8 of 4,096).
const QUEUED_BATCHES: usize = 8;

/// One DNS message as the reading thread parsed it (read-only afterwards: the matching
/// thread's verdicts go to the batch's `marks`, so no thread writes lines another one
/// wrote).
struct Rec {
    ts: i64,
    transport: Transport,
    src: Endpoint,
    dst: Endpoint,
    id: u16,
    flags: u16,
    size: u32,
    /// mDNS or LLMNR: only the unanswered filter sees it.
    multicast: bool,
    /// None when the body failed to dissect (the ID and flags were read).
    parsed: Option<dns::Parsed>,
    qname_len: u32,
    labels: u32,
    /// Case-insensitive hash of the question name (pairs and followed lookups).
    name_hash: u64,
    /// Ranges in the batch's `names` and `answers`.
    names: (u32, u32),
    answers: (u32, u32),
    /// Wireshark 4.4 only: ranges in the batch's `rr_types` and `ttls` (answers,
    /// authorities, additionals one after the other).
    rr_types: (u32, u32),
    ttls: (u32, [u16; 3]),
}

/// The matching thread's verdict on one message (`Batch::marks`, one per `Rec`).
#[derive(Clone, Copy, Default)]
struct Mark {
    /// Response time (responses of a known transaction).
    delta_ns: i64,
    tx_retransmissions: u32,
    /// `ACCOUNT`, `UNSOLICITED`, `RETRANSMISSION`.
    bits: u8,
}

impl Mark {
    /// The message reaches the statistics (it dissected and is no mDNS/LLMNR).
    const ACCOUNT: u8 = 1;
    const UNSOLICITED: u8 = 2;
    const RETRANSMISSION: u8 = 4;
    fn unsolicited(&self) -> bool {
        self.bits & Self::UNSOLICITED != 0
    }
    fn retransmission(&self) -> bool {
        self.bits & Self::RETRANSMISSION != 0
    }
}

/// A transaction settled as never answered (for the per-peer and per-second figures).
struct Unanswered {
    req_ns: i64,
    server: std::net::IpAddr,
    client: std::net::IpAddr,
}

#[derive(Default)]
struct Batch {
    recs: Vec<Rec>,
    marks: Vec<Mark>,
    /// The first frame's time stamp (the statistics' time origin) and whether it had one.
    first_ts: i64,
    first_has_ts: bool,
    names: Vec<u8>,
    answers: Vec<RrInfo>,
    unanswered: Vec<Unanswered>,
    rr_types: Vec<u16>,
    ttls: Vec<u32>,
}

impl Batch {
    fn clear(&mut self) {
        self.recs.clear();
        self.marks.clear();
        self.names.clear();
        self.answers.clear();
        self.unanswered.clear();
        self.rr_types.clear();
        self.ttls.clear();
    }
}

/// What the tree taps of one accounted message see (dissect_dns_common's tap record).
fn dns_tap(e: &Rec, m: &Mark, p: &dns::Parsed) -> DnsTap {
    let flags = e.flags;
    let is_response = flags & 0x8000 != 0;
    DnsTap {
        qr: (flags >> 15),
        qtype: p.qtype,
        qclass: p.qclass,
        rcode: flags & 0xF,
        opcode: (flags >> 11) & 0xF,
        payload_size: e.size,
        qname_len: e.qname_len,
        qname_labels: e.labels,
        nquestions: p.qdcount,
        nanswers: p.ancount,
        nauthorities: p.nscount,
        nadditionals: p.arcount,
        unsolicited: m.unsolicited(),
        // Wireshark 4.4 flags a re-sent query only when it has a question.
        retransmission: m.retransmission() && (is_response || p.qdcount > 0),
        rrt_ms: ns_to_ms(m.delta_ns) as f32,
    }
}

/// Wireshark 4.4's two trees, on a thread of their own after the statistics thread: in
/// 4.4 mode they cost about as much as everything else that thread does, which made it
/// the one the other two waited for.
struct Trees44 {
    dns: DnsTree44,
    qr: DnsQrTree,
    /// The 4.4 trees are fed only the rows 4.0 lacks and take the others from the 4.0
    /// tree at the end (`DnsTree44::derive_from`, `DnsQrTree::derive_from`): when the
    /// first frame has a time stamp all trees get the same instants.  (Without one, 4.4
    /// puts every message at 0.)
    derive: bool,
}

impl Trees44 {
    fn account(&mut self, batch: &Batch) {
        for (e, m) in batch.recs.iter().zip(&batch.marks) {
            if m.bits & Mark::ACCOUNT == 0 {
                continue;
            }
            let Some(p) = e.parsed else { continue };
            let tap = dns_tap(e, m, &p);
            let now_ms = ns_to_ms(e.ts - batch.first_ts);
            let now_ms_44 = if batch.first_has_ts { now_ms } else { 0.0 };
            let (t0, counts) = e.ttls;
            let mut start = t0 as usize;
            let mut ttls: [&[u32]; 3] = [&[], &[], &[]];
            for (i, &n) in counts.iter().enumerate() {
                ttls[i] = &batch.ttls[start..start + n as usize];
                start += n as usize;
            }
            let tap44 = Tap44 {
                base: &tap,
                src: e.src.ip,
                rr_types: &batch.rr_types[e.rr_types.0 as usize..e.rr_types.1 as usize],
                ttls,
            };
            // first_has_ts is the first frame's: the same for every batch.
            self.derive = batch.first_has_ts;
            if self.derive {
                self.dns.packet_own_rows(now_ms, &tap44);
            } else {
                self.dns.packet(now_ms_44, &tap44);
            }
            self.qr.packet(now_ms_44, &tap44, self.derive);
        }
    }
}

impl Stats {
    fn new(slow_s: f64, list_limit: usize, trees_only: bool) -> Stats {
        Stats {
            slow_ns: (slow_s * 1e9).round() as i64,
            trees_only,
            list_limit,
            tree: DnsTree::new(),
            qr_unanswered: 0,
            dns_messages: 0,
            queries: 0,
            responses: 0,
            retrans_r: 0,
            unsolicited: 0,
            slow_count: 0,
            response_rcodes: [0; 16],
            lat: LatencyHistogram::new(),
            lat_acc: AggAcc::default(),
            slow_list: Vec::new(),
            servers: Vec::new(),
            clients: Vec::new(),
            server_slots: FastMap::default(),
            client_slots: FastMap::default(),
            server_cache: None,
            client_cache: None,
            peer_memo: vec![(0, 0); 2 * PEER_MEMO],
            failing: FastMap::default(),
            failing_truncated: false,
            name_buf: Vec::new(),
            timeline: Vec::new(),
            second_slots: FastMap::default(),
            last_second: None,
            server_seconds: Vec::new(),
            server_second_slots: FastMap::default(),
            server_last: [(i64::MIN, 0); MAX_TIMELINE_SERVERS],
            server_second_owner: Vec::new(),
            udp_answers: FastMap::default(),
            tcp_answers: FastMap::default(),
            signatures: Signatures::default(),
            q_types: TypeCounts::new(),
            r_types: TypeCounts::new(),
            answer_rrs: AggAcc::default(),
            answer_types: TypeCounts::new(),
            ttl: TypeCounts::new(),
            rt_buckets: [AggAcc::default(); 20],
            size_buckets: [AggAcc::default(); 8],
        }
    }

    /// The statistics for one batch of messages, in capture order.
    fn account(&mut self, batch: &Batch) {
        for (e, m) in batch.recs.iter().zip(&batch.marks) {
            if m.bits & Mark::ACCOUNT == 0 {
                continue;
            }
            let name = &batch.names[e.names.0 as usize..e.names.1 as usize];
            let answers = &batch.answers[e.answers.0 as usize..e.answers.1 as usize];
            if let Some(p) = e.parsed {
                self.message(e, m, &p, name, answers, batch);
            }
        }
        if self.trees_only {
            return;
        }
        for u in &batch.unanswered {
            if let Some(i) = self.second_index(u.req_ns.div_euclid(1_000_000_000)) {
                self.timeline[i].unanswered += 1;
            }
            let si = self.peer_index(true, u.server);
            self.servers[si].unanswered += 1;
            if let Some(sec) = self.server_second(si, u.req_ns) {
                sec.unanswered += 1;
            }
            let ci = self.peer_index(false, u.client);
            self.clients[ci].unanswered += 1;
        }
    }

    fn message(&mut self, e: &Rec, m: &Mark, p: &dns::Parsed, qname: &[u8], answers: &[RrInfo], batch: &Batch) {
        let (ts, src, dst, flags) = (e.ts, e.src, e.dst, e.flags);
        let now_ms = ns_to_ms(ts - batch.first_ts);
        let (unsolicited, retransmission) = (m.unsolicited(), m.retransmission());
        let is_response = flags & 0x8000 != 0;
        self.dns_messages += 1;
        let rcode = flags & 0xF;
        let delta_ns = m.delta_ns;
        let tap = dns_tap(e, m, p);
        self.tree.packet(now_ms, &tap);
        if !is_response {
            if !tap.retransmission {
                self.qr_unanswered += 1;
            }
        } else if !retransmission && !unsolicited {
            self.qr_unanswered -= 1;
        }
        // --- everything beyond the tshark tree ---
        if self.trees_only {
            return;
        }
        let size_bucket = match e.size {
            0..=63 => 0,
            64..=127 => 1,
            128..=255 => 2,
            256..=511 => 3,
            512..=1023 => 4,
            1024..=2047 => 5,
            2048..=4095 => 6,
            _ => 7,
        };
        self.size_buckets[size_bucket].add(e.size as f64);
        let sec = self.second_index(ts.div_euclid(1_000_000_000));
        if !is_response {
            self.queries += 1;
            self.q_types.add(p.qtype);
            if let Some(i) = sec {
                self.timeline[i].queries += 1;
            }
            let si = self.peer_index(true, dst.ip);
            self.servers[si].queries += 1;
            if let Some(sec) = self.server_second(si, ts) {
                sec.queries += 1;
            }
            let ci = self.peer_index(false, src.ip);
            self.clients[ci].queries += 1;
            return;
        }
        self.responses += 1;
        self.r_types.add(p.qtype);
        self.response_rcodes[rcode as usize] += 1;
        self.answer_rrs.add(p.ancount as f64);
        for rr in answers {
            self.answer_types.add(rr.rtype);
            self.ttl.entry(rr.rtype).add(rr.ttl as f64);
        }
        let is_error = rcode != 0;
        if let Some(i) = sec {
            self.timeline[i].responses += 1;
            if is_error {
                self.timeline[i].errors += 1;
            }
            if rcode == 2 {
                self.timeline[i].servfail += 1;
            }
        }
        let si = self.peer_index(true, src.ip);
        if let Some(sec) = self.server_second(si, ts) {
            sec.responses += 1;
            if is_error {
                sec.errors += 1;
            }
            if rcode == 2 {
                sec.servfail += 1;
            }
        }
        self.truncation_signatures(e, p, qname);
        let ci = self.peer_index(false, dst.ip);
        for p in [&mut self.servers[si], &mut self.clients[ci]] {
            p.responses += 1;
            match rcode {
                0 => p.noerror += 1,
                2 => p.servfail += 1,
                3 => p.nxdomain += 1,
                5 => p.refused += 1,
                _ => p.other_errors += 1,
            }
        }
        if is_error && p.qdcount > 0 {
            self.count_failing(qname, rcode);
        }
        if unsolicited {
            self.unsolicited += 1;
            return;
        }
        if retransmission {
            self.retrans_r += 1;
            return;
        }
        let ms = tap.rrt_ms as f64;
        self.lat_acc.add(ms);
        self.lat.add((delta_ns.max(0) / 1000) as u64);
        let secs = delta_ns as f64 / 1e9;
        let bi = if secs < 1.0 { (secs.max(0.0) * 10.0) as usize } else { ((secs as usize) + 9).min(19) };
        self.rt_buckets[bi.min(19)].add(secs);
        let slow = delta_ns >= self.slow_ns;
        for p in [&mut self.servers[si], &mut self.clients[ci]] {
            p.timed += 1;
            p.rt_sum_ms += ms;
            if ms > p.rt_max_ms {
                p.rt_max_ms = ms;
            }
            if slow {
                p.slow += 1;
            }
        }
        if slow {
            self.slow_count += 1;
            if let Some(i) = sec {
                self.timeline[i].slow += 1;
            }
            if let Some(sec) = self.server_second(si, ts) {
                sec.slow += 1;
            }
            if self.slow_list.len() < self.list_limit {
                let rec = TxRecord {
                    time_ns: ts,
                    client: ep_str(&dst),
                    server: ep_str(&src),
                    transport: transport_str(e.transport),
                    id: e.id,
                    qtype: type_mnemonic(p.qtype),
                    qname: display_name(qname),
                    rcode: Some(rcode_name(rcode)),
                    response_time_ms: Some(delta_ns as f64 / 1e6),
                    retransmissions: m.tx_retransmissions,
                };
                self.slow_list.push(rec);
            }
        }
    }

    /// The per-second counters of server `si` (None past the first few servers or seconds).
    fn server_second(&mut self, si: usize, ts: i64) -> Option<&mut Second> {
        if si >= MAX_TIMELINE_SERVERS {
            return None;
        }
        let second = ts.div_euclid(1_000_000_000);
        let (last_second, last_slot) = self.server_last[si];
        if last_second == second {
            return Some(&mut self.server_seconds[last_slot]);
        }
        let slot = match self.server_second_slots.get(&(si, second)) {
            Some(&slot) => slot,
            None if self.server_seconds.len() < MAX_TIMELINE_SECONDS * MAX_TIMELINE_SERVERS => {
                self.server_seconds.push(Second { second, ..Default::default() });
                self.server_second_owner.push(si);
                self.server_second_slots.insert((si, second), self.server_seconds.len() - 1);
                self.server_seconds.len() - 1
            }
            None => return None,
        };
        self.server_last[si] = (second, slot);
        Some(&mut self.server_seconds[slot])
    }

    /// UDP answers of 512 bytes or more without TC, and UDP and TCP answers to one name
    /// that differ (Azure DNS cuts UDP answers short without setting TC).
    fn truncation_signatures(&mut self, e: &Rec, p: &dns::Parsed, qname: &[u8]) {
        let tc = e.flags & 0x0200 != 0;
        let rcode = e.flags & 0xF;
        let limit = self.list_limit;
        let record = |e: &Rec| TxRecord {
            time_ns: e.ts,
            client: ep_str(&e.dst),
            server: ep_str(&e.src),
            transport: transport_str(e.transport),
            id: e.id,
            qtype: type_mnemonic(p.qtype),
            qname: display_name(qname),
            rcode: Some(rcode_name(rcode)),
            response_time_ms: None,
            retransmissions: 0,
        };
        if e.transport == Transport::Udp && !tc && e.size >= 512 {
            let sig = &mut self.signatures;
            sig.udp_large_no_tc += 1;
            if sig.udp_large.len() < limit {
                sig.udp_large.push(record(e));
            }
        }
        if rcode != 0 || p.qdcount == 0 || (e.transport == Transport::Udp && tc) {
            return;
        }
        let key = e.name_hash ^ (p.qtype as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let seen = SeenAnswer { ts: e.ts, answers: p.ancount, bytes: e.size };
        let (mine, other) = match e.transport {
            Transport::Udp => (&mut self.udp_answers, &self.tcp_answers),
            Transport::Tcp => (&mut self.tcp_answers, &self.udp_answers),
        };
        if mine.len() < MAX_ANSWER_NAMES || mine.contains_key(&key) {
            mine.insert(key, seen);
        }
        if let Some(o) = other.get(&key) {
            if o.answers != seen.answers && (e.ts - o.ts).abs() <= ANSWER_COMPARE_NS {
                let (udp, tcp) = if e.transport == Transport::Udp { (seen, *o) } else { (*o, seen) };
                let sig = &mut self.signatures;
                sig.udp_tcp_differ_events += 1;
                if sig.udp_tcp_differ.len() < limit {
                    sig.udp_tcp_differ.push(AnswerDiff {
                        time_ns: e.ts,
                        qname: display_name(qname),
                        qtype: type_mnemonic(p.qtype),
                        server: e.src.ip.to_string(),
                        udp_answers: udp.answers,
                        udp_bytes: udp.bytes,
                        tcp_answers: tcp.answers,
                        tcp_bytes: tcp.bytes,
                    });
                }
            }
        }
    }

    /// Count a failed response by (lower-cased name, rcode), bounded in entries.
    fn count_failing(&mut self, qname: &[u8], rcode: u16) {
        self.name_buf.clear();
        self.name_buf.extend(qname.iter().map(|b| b.to_ascii_lowercase()));
        self.name_buf.extend_from_slice(&rcode.to_be_bytes());
        if let Some(c) = self.failing.get_mut(self.name_buf.as_slice()) {
            *c += 1;
        } else if self.failing.len() < MAX_FAILING_NAMES {
            self.failing.insert(self.name_buf.as_slice().into(), 1);
        } else {
            self.failing_truncated = true;
        }
    }

    /// The timeline slot of `second` (None once the timeline is full).
    fn second_index(&mut self, second: i64) -> Option<usize> {
        if let Some((s, i)) = self.last_second {
            if s == second {
                return Some(i);
            }
        }
        let i = match self.second_slots.get(&second) {
            Some(&i) => i,
            None if self.timeline.len() < MAX_TIMELINE_SECONDS => {
                self.timeline.push(Second { second, ..Default::default() });
                self.second_slots.insert(second, self.timeline.len() - 1);
                self.timeline.len() - 1
            }
            None => return None,
        };
        self.last_second = Some((second, i));
        Some(i)
    }

    fn peer_index(&mut self, server: bool, ip: std::net::IpAddr) -> usize {
        let std::net::IpAddr::V4(v4) = ip else {
            return self.peer_index_slow(server, ip);
        };
        let bits = u32::from(v4);
        let slot = (bits.wrapping_mul(0x9E37_79B1) >> (32 - PEER_MEMO.trailing_zeros())) as usize + if server { 0 } else { PEER_MEMO };
        let (memo_ip, row) = self.peer_memo[slot];
        if row != 0 && memo_ip == bits {
            return row as usize - 1;
        }
        let i = self.peer_index_slow(server, ip);
        // A peer's row never changes once given (rows are only added; past MAX_PEERS a new
        // address always folds into the same "other" row), so it can be remembered.
        self.peer_memo[slot] = (bits, i as u32 + 1);
        i
    }

    fn peer_index_slow(&mut self, server: bool, ip: std::net::IpAddr) -> usize {
        let (list, index, cache) = if server {
            (&mut self.servers, &mut self.server_slots, &mut self.server_cache)
        } else {
            (&mut self.clients, &mut self.client_slots, &mut self.client_cache)
        };
        if let Some((cip, i)) = *cache {
            if cip == ip {
                return i;
            }
        }
        let i = match index.get(&ip) {
            Some(&i) => i,
            None => {
                // Bound memory on hostile input: past MAX_PEERS, fold the rest into one row.
                let (key, label) = if list.len() >= MAX_PEERS {
                    (std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED), "other".to_string())
                } else {
                    (ip, ip.to_string())
                };
                match index.get(&key) {
                    Some(&i) => i,
                    None => {
                        list.push(Peer { address: label, ..Default::default() });
                        index.insert(key, list.len() - 1);
                        list.len() - 1
                    }
                }
            }
        };
        *cache = Some((ip, i));
        i
    }

}

fn ep_str(e: &Endpoint) -> String {
    match e.ip {
        std::net::IpAddr::V4(a) => format!("{a}:{}", e.port),
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", e.port),
    }
}

fn transport_str(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// nstime_to_msec of a signed nanosecond delta (seconds and nanoseconds share a sign).
fn ns_to_ms(delta: i64) -> f64 {
    let secs = delta / 1_000_000_000;
    let nsecs = delta % 1_000_000_000;
    secs as f64 * 1000.0 + nsecs as f64 / 1_000_000.0
}

/// A quick hash of a name that ignores ASCII case (8 bytes at a time; setting bit 5
/// lower-cases letters, and merely aliases a few punctuation bytes, harmless for matching
/// a name with its A/AAAA twin or its forwarded copy).
fn name_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap()) | 0x2020_2020_2020_2020;
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    // The last 0..7 bytes, little-endian and zero-padded, built in a register.
    let tail = chunks.remainder().iter().rev().fold(0u64, |w, &b| w << 8 | b as u64);
    let w = tail | 0x2020_2020_2020_2020;
    h = (h ^ w).wrapping_mul(K);
    h ^ (h >> 32)
}

/// The transaction key of a message: its conversation (endpoints in a fixed order) and ID.
#[inline]
fn tx_key(rec: &Rec) -> TxKey {
    let (a, b) = if rec.src <= rec.dst { (rec.src, rec.dst) } else { (rec.dst, rec.src) };
    TxKey { transport: rec.transport, a, b, id: rec.id }
}

impl Analyzer {
    fn new(slow_s: f64, list_limit: usize, ws44: bool, trees_only: bool, recycle: SyncSender<Batch>) -> Analyzer {
        let stats = Stats::new(slow_s, list_limit, trees_only);
        // In 4.4 mode the batches go on from the statistics thread to the 4.4 trees' own.
        let (to44, trees44) = if ws44 {
            let (sender, receiver) = sync_channel::<Batch>(QUEUED_BATCHES);
            let recycle = recycle.clone();
            let handle = std::thread::Builder::new()
                .name("aksdns-ws44".into())
                .spawn(move || {
                    let mut t = Trees44 { dns: DnsTree44::new(), qr: DnsQrTree::new(), derive: false };
                    for mut batch in receiver {
                        t.account(&batch);
                        batch.clear();
                        let _ = recycle.try_send(batch);
                    }
                    t
                })
                .expect("cannot start the thread of the 4.4 trees");
            (Some(sender), Some(handle))
        } else {
            (None, None)
        };
        // Batches flow to the statistics thread in order; a few in flight keep both busy.
        let (sender, receiver) = sync_channel::<Batch>(QUEUED_BATCHES);
        let handle = std::thread::Builder::new()
            .name("aksdns-stats".into())
            .spawn(move || {
                let mut stats = stats;
                for mut batch in receiver {
                    stats.account(&batch);
                    match &to44 {
                        // The 4.4 thread only stops by panicking; its panic surfaces at join.
                        Some(next) => {
                            let _ = next.send(batch);
                        }
                        None => {
                            // Hand the emptied buffers back to the reading thread (no new
                            // allocations).
                            batch.clear();
                            let _ = recycle.try_send(batch);
                        }
                    }
                }
                stats
            })
            .expect("cannot start the statistics thread");
        Analyzer {
            list_limit,
            txs: TxTable::default(),
            serial: 0,
            fifo: VecDeque::new(),
            fifo_unanswered: VecDeque::new(),
            open_v4: SerialBits::default(),
            max_ts: i64::MIN,
            since_expire: 0,
            malformed: 0,
            transactions: 0,
            answered: 0,
            unanswered_filter: 0,
            unanswered_tx: 0,
            retrans_q: 0,
            unanswered_heap: BinaryHeap::new(),
            recent_queries: RecentQueries::default(),
            pairs: 0,
            pair_lost: 0,
            race_events: 0,
            race: Vec::new(),
            hop_candidates: (0..HOP_SLOTS).map(|_| None).collect(),
            hops: Vec::new(),
            hop_index: FastMap::default(),
            hop_count: 0,
            mdns: FastMap::default(),
            names: Names::new(),
            pending: Vec::new(),
            sender: Some(sender),
            stats: Some(handle),
            trees44,
        }
    }

    /// One pass; with `trees_only` only `tshark_tree` and `tshark_tree_44` are filled in (the
    /// statistics thread skips every other figure: about a tenth of the pass's CPU).
    pub fn run(
        paths: &[String],
        slow_s: f64,
        list_limit: usize,
        ws44: bool,
        trees_only: bool,
    ) -> Result<Analysis, (String, OpenError)> {
        let reader = MergedReader::open(paths)?;
        let paths = paths.to_vec();
        // Three threads in a pipeline, batches in capture order: reading and parsing,
        // transaction matching (here), statistics.
        let (sender, receiver) = sync_channel::<Batch>(QUEUED_BATCHES);
        // Room for every batch there is (every queue, one per thread): none is dropped.
        let (recycle, recycled) = sync_channel::<Batch>(3 * QUEUED_BATCHES + 5);
        let reading = std::thread::Builder::new()
            .name("aksdns-read".into())
            .spawn(move || ReadStage::new(reader, recycled, ws44).run(&sender, &paths))
            .expect("cannot start the reading thread");
        let mut a = Analyzer::new(slow_s, list_limit, ws44, trees_only, recycle);
        for mut batch in receiver {
            a.match_batch(&mut batch);
            a.send(batch);
        }
        let summary = match reading.join() {
            Ok(summary) => summary,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok(a.finish(summary))
    }

    fn match_batch(&mut self, batch: &mut Batch) {
        let Batch { recs, names, marks, .. } = batch;
        marks.clear();
        marks.reserve(recs.len());
        for (i, rec) in recs.iter().enumerate() {
            if let Some(ahead) = recs.get(i + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            if rec.ts > self.max_ts {
                self.max_ts = rec.ts;
            }
            self.since_expire += 1;
            if self.since_expire >= 8_192 {
                self.since_expire = 0;
                self.expire();
            }
            let qname = &names[rec.names.0 as usize..rec.names.1 as usize];
            let mark = if rec.multicast {
                self.multicast_message(rec);
                Mark::default()
            } else {
                self.message(rec, qname)
            };
            marks.push(mark);
        }
    }

    /// Start loading the lines that matching `rec` will touch: its transaction's slot and,
    /// for a query, its slot in the table of recent lookups.
    #[inline]
    fn prefetch(&self, rec: &Rec) {
        if rec.multicast {
            return;
        }
        self.txs.prefetch(&tx_key(rec));
        if let (0, Some(p)) = (rec.flags & 0x8000, &rec.parsed) {
            // A candidate is 88 bytes: both of its lines.
            let c = &self.hop_candidates[hop_slot(rec.name_hash, p.qtype)];
            prefetch_read(c);
            prefetch_read((c as *const Option<HopCandidate> as *const u8).wrapping_add(std::mem::size_of_val(c) - 1));
        }
    }

    fn send(&mut self, mut batch: Batch) {
        batch.unanswered.append(&mut self.pending);
        if let Some(sender) = &self.sender {
            // The statistics thread only stops by panicking; its panic surfaces at join.
            let _ = sender.send(batch);
        }
    }

    /// mDNS and LLMNR: only what the `dns.response_in` filter sees (they share dissect_dns_common
    /// and its transaction table, but Wireshark keeps them out of the DNS statistics).
    fn multicast_message(&mut self, rec: &Rec) {
        let (ts, src, dst, id) = (rec.ts, rec.src, rec.dst, rec.id);
        let is_response = rec.flags & 0x8000 != 0;
        let (a, b) = if src <= dst { (src, dst) } else { (dst, src) };
        let key = (a, b, id);
        let entry = self.mdns.get(&key).copied();
        let mut retransmission = false;
        if !is_response {
            match entry {
                Some((req, false)) if ((ts - req) as f64 / 1e9) < RETRANSMISSION_TIMER_S => retransmission = true,
                Some((_, false)) => {
                    self.unanswered_filter += 1; // the replaced transaction was never answered
                    self.mdns.insert(key, (ts, false));
                }
                _ => {
                    self.mdns.insert(key, (ts, false));
                }
            }
        } else if let Some((req, false)) = entry {
            self.mdns.insert(key, (req, true));
        }
        if !is_response && (retransmission || rec.parsed.is_none()) {
            self.unanswered_filter += 1;
            if !retransmission {
                // A malformed query is counted now, not again when it stays unanswered.
                self.mdns.insert(key, (ts, true));
            }
        }
        if self.mdns.len() > MAX_MULTICAST_TRANSACTIONS {
            self.settle_mdns();
        }
    }

    fn settle_mdns(&mut self) {
        let n = self.mdns.values().filter(|(_, answered)| !answered).count() as u64;
        self.unanswered_filter += n;
        self.mdns.clear();
    }

    /// dissect_dns_common's transaction state for one message (parsed on the reading
    /// thread); the statistics follow on the other thread (`Stats::account`).
    fn message(&mut self, rec: &Rec, qname: &[u8]) -> Mark {
        let (ts, transport, src, dst, flags) = (rec.ts, rec.transport, rec.src, rec.dst, rec.flags);
        let is_response = flags & 0x8000 != 0;
        let key = tx_key(rec);
        let a = key.a;
        let parse = rec.parsed.ok_or(dns::Malformed);
        let multiple = match &parse {
            Ok(p) if p.qdcount > 0 => Some(p.multiple_responds),
            _ => None,
        };
        let qtype = parse.as_ref().map_or(0, |p| p.qtype);

        // --- transaction state, first pass (packet-dns.c, !pinfo->fd->visited) ---
        let mut retransmission = false;
        let mut found = false;
        let mut delta_ns = 0i64;
        let mut new_tx = false;
        let mut retired: Option<Tx> = None;
        let mut tx_retransmissions = 0;
        let mut hop_serial: Option<u64> = None;
        let mut race: Option<(i64, bool, u16, u32, i64)> = None;
        if !is_response {
            found = true;
            let name_id = if qname.is_empty() { NO_NAME } else { self.names.intern(qname, rec.name_hash) };
            let fresh = |serial: u64| Tx {
                serial,
                req_ns: ts,
                answered: false,
                multiple_responds: false,
                query_malformed: parse.is_err(),
                paired: false,
                loss_counted: false,
                retransmissions: 0,
                client_is_a: src == a,
                hop: false,
                qtype,
                qname: name_id,
            };
            let serial = &mut self.serial;
            let (tx, created) = self.txs.get_or_insert_with(key, || {
                *serial += 1;
                fresh(*serial)
            });
            if created {
                new_tx = true;
            } else {
                if tx.paired && !tx.answered && RACE_RESEND_NS.contains(&(ts - tx.req_ns)) {
                    race = Some((tx.req_ns, tx.client_is_a, tx.qtype, tx.qname, ts - tx.req_ns));
                }
                // A re-send younger than dns.retransmission_timer, still unanswered, is
                // a retransmission; anything else opens a new transaction.
                if !tx.answered && ((ts - tx.req_ns) as f64 / 1e9) < RETRANSMISSION_TIMER_S {
                    retransmission = true;
                    tx.retransmissions += 1;
                    tx_retransmissions = tx.retransmissions;
                    if tx.paired && !tx.loss_counted {
                        tx.loss_counted = true;
                        self.pair_lost += 1;
                    }
                } else {
                    self.serial += 1;
                    let old = std::mem::replace(tx, fresh(self.serial));
                    if !old.answered {
                        retired = Some(old);
                    }
                    new_tx = true;
                }
            }
            if let Some(mr) = multiple {
                tx.multiple_responds = mr;
            }
            if new_tx {
                self.transactions += 1;
                self.fifo.push_back((key, ts, self.serial));
                if key.packed_v4().is_some() {
                    self.open_v4.set(self.serial);
                }
                if self.txs.len() > MAX_LIVE_TRANSACTIONS {
                    self.expire();
                }
            }
        } else if let Some(tx) = self.txs.get_mut(&key) {
            found = true;
            hop_serial = if tx.hop { Some(tx.serial) } else { None };
            delta_ns = ts - tx.req_ns;
            if !tx.answered {
                tx.answered = true;
                self.open_v4.clear(tx.serial);
                self.answered += 1;
            } else if !tx.multiple_responds {
                retransmission = true;
            }
            tx_retransmissions = tx.retransmissions;
            if let Some(mr) = multiple {
                tx.multiple_responds = mr;
            }
        }
        if let Some(old) = retired {
            self.finalize_unanswered(&key, old);
        }
        if let Some((req_ns, client_is_a, qtype, qname, gap)) = race {
            self.race_events += 1;
            if self.race.len() < self.list_limit {
                let (client, server) = if client_is_a { (key.a, key.b) } else { (key.b, key.a) };
                self.race.push(TxRecord {
                    time_ns: req_ns,
                    client: ep_str(&client),
                    server: ep_str(&server),
                    transport: transport_str(key.transport),
                    id: key.id,
                    qtype: type_mnemonic(qtype),
                    qname: display_name(self.names.get(qname)),
                    rcode: None,
                    response_time_ms: Some(gap as f64 / 1e6),
                    retransmissions: 0,
                });
            }
        }

        // --- an exception after the state update: no statistics ---
        let parsed = match parse {
            Ok(p) => p,
            Err(_) => {
                self.malformed += 1;
                if !is_response {
                    // The query carries dns.flags.response but never dns.response_in.
                    self.unanswered_filter += 1;
                }
                return Mark::default();
            }
        };
        if !is_response {
            if retransmission {
                self.unanswered_filter += 1;
                self.retrans_q += 1;
            } else if new_tx {
                let name_hash = rec.name_hash;
                self.track_pairs(ts, transport, src, key, qtype, name_hash);
                self.track_hop_query(ts, key, src, dst, qtype, name_hash);
            }
        } else if let (Some(serial), false) = (hop_serial, retransmission) {
            self.track_hop_response(ts, key, serial);
        }
        let _ = parsed;
        let mut bits = Mark::ACCOUNT;
        if is_response && !found {
            bits |= Mark::UNSOLICITED;
        }
        if retransmission {
            bits |= Mark::RETRANSMISSION;
        }
        Mark { delta_ns, tx_retransmissions, bits }
    }

    /// glibc sends A and AAAA back to back from one socket; when conntrack drops one of
    /// them the lookup waits for the resolver time-out (the guide's "race" signature).
    /// The partner is looked for among the last few A/AAAA queries (a small ring).
    fn track_pairs(&mut self, ts: i64, transport: Transport, client: Endpoint, key: TxKey, qtype: u16, name_hash: u64) {
        if qtype != 1 && qtype != 28 {
            return;
        }
        let want = name_hash.wrapping_add(if qtype == 1 { 28 } else { 1 });
        let hit = self.recent_queries.find(want, |q| {
            q.transport == transport && q.client == client && ts >= q.ts && ts - q.ts < 1_000_000_000
        });
        if let Some(other) = hit {
            self.pairs += 1;
            for k in [other, key] {
                if let Some(tx) = self.txs.get_mut(&k) {
                    tx.paired = true;
                }
            }
            return;
        }
        self.recent_queries.push(name_hash.wrapping_add(qtype as u64), LastQuery { ts, key, transport, client });
    }

    /// A query for the same name and type sent by the server of an outstanding lookup is
    /// that lookup forwarded upstream (client -> CoreDNS -> upstream).
    fn track_hop_query(&mut self, ts: i64, key: TxKey, src: Endpoint, dst: Endpoint, qtype: u16, name_hash: u64) {
        let slot = hop_slot(name_hash, qtype);
        let matched = match &self.hop_candidates[slot] {
            Some(c) if c.name_hash == name_hash
                && c.qtype == qtype
                && c.server_ip == src.ip
                && c.ts <= ts
                && ts - c.ts < 10_000_000_000 =>
            {
                Some((c.key, c.serial, c.ts))
            }
            _ => None,
        };
        if let Some((ckey, cserial, cts)) = matched {
            self.hop_count += 1;
            if self.hops.len() < self.list_limit.min(HOPS_LISTED) {
                let client_rec = self.tx_record(&ckey, cts);
                let up_rec = self.tx_record(&key, ts);
                let idx = self.hops.len();
                let userial = self.serial;
                self.hops.push(PendingHop {
                    client_key: ckey,
                    client_serial: cserial,
                    client_ts: cts,
                    up_key: key,
                    up_serial: userial,
                    up_ts: ts,
                    up_resp_ts: None,
                    client_resp_ts: None,
                    client: client_rec,
                    upstream: up_rec,
                });
                self.hop_index.entry((ckey, cserial)).or_default().push(idx);
                self.hop_index.entry((key, userial)).or_default().push(idx);
                for k in [ckey, key] {
                    if let Some(tx) = self.txs.get_mut(&k) {
                        tx.hop = true;
                    }
                }
            }
        }
        let serial = self.serial;
        self.hop_candidates[slot] = Some(HopCandidate { ts, key, serial, server_ip: dst.ip, name_hash, qtype });
    }

    fn track_hop_response(&mut self, ts: i64, key: TxKey, serial: u64) {
        if let Some(list) = self.hop_index.remove(&(key, serial)) {
            for i in list {
                let h = &mut self.hops[i];
                if h.up_key == key && h.up_serial == serial {
                    h.up_resp_ts = Some(ts);
                }
                if h.client_key == key && h.client_serial == serial {
                    h.client_resp_ts = Some(ts);
                }
            }
        }
    }

    fn tx_record(&self, key: &TxKey, ts: i64) -> TxRecord {
        let tx = self.txs.get(key);
        let (client, server) = match tx {
            Some(t) if t.client_is_a => (key.a, key.b),
            _ => (key.b, key.a),
        };
        TxRecord {
            time_ns: ts,
            client: ep_str(&client),
            server: ep_str(&server),
            transport: transport_str(key.transport),
            id: key.id,
            qtype: tx.map_or(String::new(), |t| type_mnemonic(t.qtype)),
            qname: tx.map_or(String::new(), |t| display_name(self.names.get(t.qname))),
            rcode: None,
            response_time_ms: None,
            retransmissions: 0,
        }
    }

    fn finalize_unanswered(&mut self, key: &TxKey, tx: Tx) {
        self.unanswered_tx += 1;
        if !tx.query_malformed {
            self.unanswered_filter += 1;
        }
        if tx.paired && !tx.loss_counted {
            self.pair_lost += 1;
        }
        let (client, server) = tx.endpoints(key);
        self.pending.push(Unanswered { req_ns: tx.req_ns, server: server.ip, client: client.ip });
        // Keep the earliest `list_limit` (a max-heap whose top is the latest kept).
        if self.unanswered_heap.len() >= self.list_limit {
            match self.unanswered_heap.peek() {
                Some(top) if (tx.req_ns, key.id) < (top.time_ns, top.id) => {
                    self.unanswered_heap.pop();
                }
                _ => return,
            }
        }
        self.unanswered_heap.push(TxRecord {
            time_ns: tx.req_ns,
            client: ep_str(&client),
            server: ep_str(&server),
            transport: transport_str(key.transport),
            id: key.id,
            qtype: type_mnemonic(tx.qtype),
            qname: display_name(self.names.get(tx.qname)),
            rcode: None,
            response_time_ms: None,
            retransmissions: tx.retransmissions,
        });
    }

    /// Bound memory: drop answered transactions older than a minute and settle unanswered
    /// ones older than five minutes (capture time).
    fn expire(&mut self) {
        let now = self.max_ts;
        while let Some(&(key, t, serial)) = self.fifo.front() {
            if now - t < KEEP_ANSWERED_NS {
                break;
            }
            if let Some((ahead, _, _)) = self.fifo.get(PREFETCH_AHEAD) {
                self.txs.prefetch(ahead);
            }
            self.fifo.pop_front();
            if self.txs.forget_if_answered(&key, serial) == Some(false) {
                self.fifo_unanswered.push_back((key, t, serial));
            }
        }
        while let Some(&(key, t, serial)) = self.fifo_unanswered.front() {
            if now - t < KEEP_UNANSWERED_NS {
                break;
            }
            self.fifo_unanswered.pop_front();
            if let Some(tx) = self.txs.remove_if_serial(&key, serial) {
                if !tx.answered {
                    self.finalize_unanswered(&key, tx);
                }
            }
        }
        // Hard cap: settle the oldest transactions early (only hostile or enormous
        // captures get here; the figures then count a late answer as unsolicited).
        while self.txs.len() > MAX_LIVE_TRANSACTIONS {
            let next = match (self.fifo_unanswered.front(), self.fifo.front()) {
                (Some(&u), Some(&f)) => {
                    if u.1 <= f.1 {
                        self.fifo_unanswered.pop_front();
                        u
                    } else {
                        self.fifo.pop_front();
                        f
                    }
                }
                (Some(&u), None) => {
                    self.fifo_unanswered.pop_front();
                    u
                }
                (None, Some(&f)) => {
                    self.fifo.pop_front();
                    f
                }
                (None, None) => break,
            };
            let (key, _, serial) = next;
            if let Some(tx) = self.txs.remove_if_serial(&key, serial) {
                if !tx.answered {
                    self.finalize_unanswered(&key, tx);
                }
            }
        }
        // Both queues are in serial order: no live transaction is older than their fronts.
        let oldest = [self.fifo.front(), self.fifo_unanswered.front()].into_iter().flatten().map(|e| e.2).min();
        self.open_v4.trim(oldest.unwrap_or(self.serial + 1));
    }

    fn finish(mut self, summary: ReadSummary) -> Analysis {
        let ReadSummary { files, warnings, frames, ignored, first_ts, last_ts, short_messages } = summary;
        self.malformed += short_messages;
        self.settle_mdns();
        // Settled in capture order (request time, then serial), not the hash map's order: that
        // order is random per process, and the statistics thread numbers servers as it meets them.
        // The answered ones are simply dropped (no figure depends on them).
        // Every live transaction is in one of the two queues; of the IPv4 ones only those
        // still open are looked up, the rest of the table is freed unread.
        let open: Vec<(TxKey, u64)> = self
            .fifo_unanswered
            .iter()
            .chain(&self.fifo)
            .filter(|(k, _, serial)| k.packed_v4().is_some() && self.open_v4.get(*serial))
            .map(|&(k, _, serial)| (k, serial))
            .collect();
        let mut left: Vec<(TxKey, Tx)> = Vec::with_capacity(open.len());
        for (k, serial) in open {
            if let Some(tx) = self.txs.remove_if_serial(&k, serial) {
                left.push((k, tx));
            }
        }
        left.extend(self.txs.drain_other());
        left.retain(|(_, tx)| !tx.answered);
        left.sort_unstable_by_key(|(_, tx)| (tx.req_ns, tx.serial));
        for (k, tx) in left {
            self.finalize_unanswered(&k, tx);
        }
        self.send(Batch::default());
        self.sender = None; // closes the channel: the statistics thread finishes
        let st = match self.stats.take().map(|h| h.join()) {
            Some(Ok(st)) => st,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("finish runs once"),
        };
        // The statistics thread has closed the 4.4 thread's queue on its way out.
        let trees44 = match self.trees44.take().map(|h| h.join()) {
            Some(Ok(t)) => Some(t),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => None,
        };
        let mut unanswered = self.unanswered_heap.into_sorted_vec();
        unanswered.truncate(self.list_limit);
        let total = st.lat_acc.count;
        let latency = Latency {
            count: total,
            average_ms: if total > 0 { st.lat_acc.sum / total as f64 } else { 0.0 },
            min_ms: st.lat_acc.min,
            max_ms: st.lat_acc.max,
            p50_ms: st.lat.quantile(total, 0.50),
            p90_ms: st.lat.quantile(total, 0.90),
            p99_ms: st.lat.quantile(total, 0.99),
            histogram: st.lat.sparse(),
        };
        let mut response_rcodes: Vec<(String, u64)> = st
            .response_rcodes
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(r, &c)| (rcode_name(r as u16), c))
            .collect();
        response_rcodes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let sort_peers = |mut v: Vec<Peer>| {
            v.sort_by(|a, b| (b.queries + b.responses).cmp(&(a.queries + a.responses)).then(a.address.cmp(&b.address)));
            v
        };
        let mut failing: Vec<FailingName> = st
            .failing
            .into_iter()
            .map(|(key, count)| {
                let (name, rc) = key.split_at(key.len() - 2);
                FailingName { name: display_name(name), rcode: rcode_name(u16::from_be_bytes([rc[0], rc[1]])), count }
            })
            .collect();
        failing.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)).then(a.rcode.cmp(&b.rcode)));
        failing.truncate(self.list_limit.max(100));
        let mut timeline: Vec<Second> = st.timeline;
        timeline.sort_by_key(|s| s.second);
        let mut per_server: Vec<Vec<Second>> = vec![Vec::new(); st.servers.len().min(MAX_TIMELINE_SERVERS)];
        for (si, sec) in st.server_second_owner.into_iter().zip(st.server_seconds) {
            per_server[si].push(sec);
        }
        let server_timelines: Vec<ServerTimeline> = per_server
            .into_iter()
            .enumerate()
            .map(|(si, mut seconds)| {
                seconds.sort_by_key(|s| s.second);
                ServerTimeline { address: st.servers[si].address.clone(), seconds }
            })
            .collect();
        let mut signatures = st.signatures;
        signatures.race_events = self.race_events;
        signatures.race = self.race;
        let by_count = |m: TypeCounts<u64>| {
            let mut v: Vec<(String, u64)> =
                m.items().into_iter().filter(|(_, c)| *c > 0).map(|(t, c)| (type_mnemonic(t), c)).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        let mut ttl: Vec<Agg> =
            st.ttl.items().into_iter().filter(|(_, a)| a.count > 0).map(|(t, a)| a.out(type_mnemonic(t))).collect();
        ttl.sort_by(|a, b| b.count.cmp(&a.count).then(a.label.cmp(&b.label)));
        let rt_label = |i: usize| {
            if i < 10 {
                format!("{:.1}-{:.1} secs", i as f64 / 10.0, (i + 1) as f64 / 10.0)
            } else if i < 19 {
                format!("{:.1}-{:.1} secs", (i - 9) as f64, (i - 8) as f64)
            } else {
                "10.0 secs or more".to_string()
            }
        };
        let size_labels = ["0-63", "64-127", "128-255", "256-511", "512-1023", "1024-2047", "2048-4095", "4096 or more"];
        let guide = GuideTable {
            rcodes: st
                .tree
                .tree
                .rows()
                .into_iter()
                .skip_while(|r| r.name != "rcode")
                .skip(1)
                .take_while(|r| r.depth == 2)
                .map(|r| (r.name, r.count as u64))
                .collect(),
            query_types: by_count(st.q_types),
            response_types: by_count(st.r_types),
            answer_rrs: st.answer_rrs.out("Answer RRs".into()),
            answer_types: by_count(st.answer_types),
            ttl_by_type: ttl,
            response_time_buckets: st
                .rt_buckets
                .iter()
                .enumerate()
                .filter(|(_, a)| a.count > 0)
                .map(|(i, a)| a.out(rt_label(i)))
                .collect(),
            unsolicited: st.unsolicited,
            retransmissions: st.retrans_r,
            request_not_found: self.unanswered_filter,
            payload_size_buckets: st
                .size_buckets
                .iter()
                .enumerate()
                .filter(|(_, a)| a.count > 0)
                .map(|(i, a)| a.out(format!("{} bytes", size_labels[i])))
                .collect(),
        };
        let hops = self
            .hops
            .into_iter()
            .map(|h| Hop {
                before_upstream_ms: (h.up_ts - h.client_ts) as f64 / 1e6,
                upstream_ms: h.up_resp_ts.map(|t| (t - h.up_ts) as f64 / 1e6),
                after_upstream_ms: match (h.up_resp_ts, h.client_resp_ts) {
                    (Some(u), Some(c)) => Some((c - u) as f64 / 1e6),
                    _ => None,
                },
                client_ms: h.client_resp_ts.map(|t| (t - h.client_ts) as f64 / 1e6),
                client_query: h.client,
                upstream_query: h.upstream,
            })
            .collect();
        Analysis {
            files,
            warnings,
            frames,
            dns_messages: st.dns_messages,
            queries: st.queries,
            responses: st.responses,
            malformed: self.malformed,
            ignored,
            first_time_ns: first_ts,
            last_time_ns: last_ts,
            tshark_tree: st.tree.tree.render_plain(),
            tshark_tree_44: trees44.map(|mut t| {
                if t.derive {
                    t.dns.derive_from(&st.tree);
                    t.qr.derive_from(&st.tree);
                }
                dns_tree44::render_both(&t.dns, &t.qr)
            }),
            qr_unanswered: st.qr_unanswered,
            tree_rows: st.tree.tree.rows(),
            transactions: self.transactions,
            answered_transactions: self.answered,
            unanswered_queries: self.unanswered_filter,
            unanswered_transactions: self.unanswered_tx,
            retransmitted_queries: self.retrans_q,
            retransmitted_responses: st.retrans_r,
            unsolicited_responses: st.unsolicited,
            slow_threshold_s: st.slow_ns as f64 / 1e9,
            slow_responses: st.slow_count,
            response_rcodes,
            latency,
            unanswered,
            slow: st.slow_list,
            servers: sort_peers(st.servers),
            clients: sort_peers(st.clients),
            failing_names: failing,
            failing_names_truncated: st.failing_truncated,
            aaaa_pairs: self.pairs,
            aaaa_pair_members_lost: self.pair_lost,
            timeline,
            server_timelines,
            signatures,
            guide,
            hops,
            hop_count: self.hop_count,
        }
    }
}

/// What the reading thread hands back at the end.
struct ReadSummary {
    files: Vec<FileInfo>,
    warnings: Vec<String>,
    frames: u64,
    ignored: Ignored,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Messages shorter than an ID and flags: Wireshark throws before any state.
    short_messages: u64,
}

/// The first thread: read the captures in time order, decode down to DNS messages and
/// parse them.
struct ReadStage {
    reader: Option<MergedReader>,
    reasm: Reassembler,
    defrag: Defragmenter,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    frames: u64,
    ignored: Ignored,
    short_messages: u64,
    sc: Scratch,
    batch: Batch,
    recycled: Receiver<Batch>,
    /// Wireshark 4.4's three global TTL arrays and their write positions (see dns_tree44).
    ttl_arrays: Option<Box<[[u32; TTL_MAX]; 3]>>,
    ttl_index: [usize; 3],
    first_has_ts: bool,
}

impl ReadStage {
    fn new(reader: MergedReader, recycled: Receiver<Batch>, ws44: bool) -> ReadStage {
        let mut sc = Scratch::default();
        sc.want_records = ws44;
        ReadStage {
            reader: Some(reader),
            reasm: Reassembler::default(),
            defrag: Defragmenter::default(),
            first_ts: None,
            last_ts: None,
            frames: 0,
            ignored: Ignored::default(),
            short_messages: 0,
            sc,
            batch: Batch::default(),
            recycled,
            ttl_arrays: if ws44 { Some(Box::new([[0; TTL_MAX]; 3])) } else { None },
            ttl_index: [0; 3],
            first_has_ts: true,
        }
    }

    fn next_batch(&mut self) -> Batch {
        let fresh = self.recycled.try_recv().unwrap_or_default();
        let mut full = std::mem::replace(&mut self.batch, fresh);
        full.first_ts = self.first_ts.unwrap_or(0);
        full.first_has_ts = self.first_has_ts;
        full
    }

    fn run(mut self, sender: &SyncSender<Batch>, paths: &[String]) -> ReadSummary {
        let mut reader = self.reader.take().expect("the reader is used once");
        while let Some((meta, data)) = reader.next_packet_ref() {
            self.frame(meta.ts_ns, meta.linktype, data, meta.has_ts);
            if self.batch.recs.len() >= BATCH_EVENTS {
                let full = self.next_batch();
                if sender.send(full).is_err() {
                    break; // the matching thread is gone (it panicked)
                }
            }
        }
        let _ = sender.send(self.next_batch());
        let files = paths
            .iter()
            .zip(reader.packets_per_file())
            .map(|(p, n)| FileInfo { path: p.clone(), packets: n })
            .collect();
        ReadSummary {
            files,
            warnings: reader.warnings(),
            frames: self.frames,
            ignored: self.ignored,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            short_messages: self.short_messages,
        }
    }

    fn frame(&mut self, ts: i64, linktype: u32, data: &[u8], has_ts: bool) {
        self.frames += 1;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.first_has_ts = has_ts;
        }
        self.last_ts = Some(ts);
        let assembled: Vec<u8>;
        let parsed_ip = link::ip_of_frame(linktype, data).and_then(link::parse_ip);
        let seg = match parsed_ip {
            Ok(link::Ip::Whole(s)) => Ok(s),
            Ok(link::Ip::Fragment(f)) => match self.defrag.push(&f, ts) {
                Some(l4) => {
                    assembled = l4;
                    link::segment_of_l4(f.src, f.dst, f.proto, &assembled)
                }
                None => Err(Skip::Fragment),
            },
            Err(e) => Err(e),
        };
        let seg = match seg {
            Ok(s) => s,
            Err(skip) => {
                let ig = &mut self.ignored;
                match skip {
                    Skip::LinkType => ig.unsupported_link_type += 1,
                    Skip::NotIp => ig.not_ip += 1,
                    Skip::Truncated => ig.truncated += 1,
                    Skip::Fragment => ig.ip_fragments += 1,
                    Skip::OtherProtocol => ig.other_protocols += 1,
                    Skip::OtherPort => ig.other_ports += 1,
                }
                return;
            }
        };
        match seg.transport {
            Transport::Udp => {
                let (src, dst) = (seg.src, seg.dst);
                self.message(ts, Transport::Udp, src, dst, seg.payload, 0, seg.multicast_dns);
            }
            Transport::Tcp => {
                let (src, dst, seq, flags) = (seg.src, seg.dst, seg.tcp_seq, seg.tcp_flags);
                let mut msgs: Vec<Vec<u8>> = Vec::new();
                self.reasm.push(src, dst, seq, flags, seg.payload, ts, |m| msgs.push(m.to_vec()));
                for m in msgs {
                    self.message(ts, Transport::Tcp, src, dst, &m[2..], 2, false);
                }
            }
        }
    }

    /// Wireshark 4.4's records: every record dissected stores its TTL (OPT excepted) in
    /// its section's global array, a tapped message hands the first entries to the
    /// dns_qr tree and rewinds the arrays.  mDNS, LLMNR and messages that fail to dissect
    /// store without rewinding, so their TTLs can show up in the next message's rows.
    fn wireshark44_records(&mut self, m: &[u8], parsed: &Option<dns::Parsed>, multicast: bool) -> ((u32, u32), (u32, [u16; 3])) {
        let Some(arrays) = self.ttl_arrays.as_mut() else {
            return ((0, 0), (0, [0; 3]));
        };
        for r in &self.sc.records {
            let s = r.section as usize;
            if r.rtype != 41 && self.ttl_index[s] < TTL_MAX {
                arrays[s][self.ttl_index[s]] = r.ttl;
                self.ttl_index[s] += 1;
            }
        }
        let b = &mut self.batch;
        let types_start = b.rr_types.len() as u32;
        let ttl_start = b.ttls.len() as u32;
        let mut counts = [0u16; 3];
        if let (Some(p), false) = (parsed, multicast) {
            if m[2] & 0x80 != 0 {
                b.rr_types.extend(self.sc.records.iter().map(|r| r.rtype));
                for (s, n) in [p.ancount, p.nscount, p.arcount].into_iter().enumerate() {
                    let n = (n as usize).min(TTL_MAX);
                    b.ttls.extend_from_slice(&arrays[s][..n]);
                    counts[s] = n as u16;
                }
            }
            self.ttl_index = [0; 3];
        }
        ((types_start, b.rr_types.len() as u32), (ttl_start, counts))
    }

    /// Parse one message into the batch (`m` without any TCP length prefix).
    #[allow(clippy::too_many_arguments)]
    fn message(&mut self, ts: i64, transport: Transport, src: Endpoint, dst: Endpoint, m: &[u8], prefix: u32, multicast: bool) {
        if m.len() < 4 {
            // The ID and flags are read first; a shorter message throws before any state.
            if !multicast {
                self.short_messages += 1;
            }
            return;
        }
        let parsed = dns::parse_body(m, &mut self.sc).ok();
        let (rr_types, ttls) = self.wireshark44_records(m, &parsed, multicast);
        let b = &mut self.batch;
        let name_start = b.names.len() as u32;
        let answers_start = b.answers.len() as u32;
        let (mut qname_len, mut labels, mut name_hash) = (0, 0, 0);
        if let Some(p) = &parsed {
            if p.qdcount > 0 {
                let n = self.sc.qname.len.min(self.sc.qname.bytes.len());
                b.names.extend_from_slice(&self.sc.qname.bytes[..n]);
                name_hash = self::name_hash(&self.sc.qname.bytes[..n]);
                qname_len = self.sc.qname.len as u32;
                labels = self.sc.qname.labels();
            }
            b.answers.extend_from_slice(&self.sc.answers);
        }
        b.recs.push(Rec {
            ts,
            transport,
            src,
            dst,
            id: u16::from_be_bytes([m[0], m[1]]),
            flags: u16::from_be_bytes([m[2], m[3]]),
            size: m.len() as u32 + prefix,
            multicast,
            parsed,
            qname_len,
            labels,
            name_hash,
            names: (name_start, b.names.len() as u32),
            answers: (answers_start, b.answers.len() as u32),
            rr_types,
            ttls,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: Tx = Tx {
        serial: 0,
        req_ns: 0,
        answered: false,
        multiple_responds: false,
        query_malformed: false,
        paired: false,
        loss_counted: false,
        retransmissions: 0,
        client_is_a: false,
        hop: false,
        qtype: 0,
        qname: 0,
    };

    /// The table against std's map under random inserts and removals, with few slots per
    /// key so that runs form, wrap around the end and shift back on removal.
    #[test]
    fn v4_table_matches_a_hash_map() {
        let mut t = V4Table::default();
        let mut m: std::collections::HashMap<u128, u64> = std::collections::HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut serial = 0;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys in the first half (a small, crowded table), more later.
            let w = (x % if step < 100_000 { 700 } else { 5_000 }) as u128 * 0x1_0000_0001;
            if x >> 60 < 9 {
                serial += 1;
                let s = serial;
                let (tx, created) = t.get_or_insert_with(w, || Tx { serial: s, ..EMPTY });
                assert_eq!(created, !m.contains_key(&w));
                m.entry(w).or_insert(s);
                assert_eq!(tx.serial, m[&w]);
            } else if let Some(s) = m.remove(&w) {
                let i = t.find_serial(w, s).expect("a live key is found");
                assert_eq!(t.remove_at(i).serial, s);
            } else {
                assert!(t.get(w).is_none());
            }
            assert_eq!(t.len, m.len());
        }
        for (w, s) in &m {
            assert_eq!(t.get(*w).map(|tx| tx.serial), Some(*s));
        }
    }

    #[test]
    fn serial_bits() {
        let mut b = SerialBits::default();
        for s in [1, 63, 64, 200, 1000] {
            b.set(s);
        }
        b.clear(64);
        b.trim(130);
        assert!(!b.get(1) && !b.get(64) && b.get(200) && b.get(1000) && !b.get(999));
        b.clear(1); // below the base: nothing to do
        assert!(b.get(200));
    }
}
