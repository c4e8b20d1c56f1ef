//! DNS over TCP: each message is preceded by a 2-byte length (RFC 1035 4.2.2); a segment
//! may hold several messages or part of one.  We follow each direction's byte stream in
//! order, as Wireshark's tcp_dissect_pdus does with desegmentation on.

use crate::link::Endpoint;
use crate::FastMap;

const MAX_BUFFER: usize = 2 + 65_535;
/// Streams followed at once; past this, idle ones are dropped sooner (hostile captures).
const MAX_STREAMS: usize = 100_000;

#[derive(Default)]
struct Stream {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    last_ns: i64,
}

#[derive(Default)]
pub struct Reassembler {
    streams: FastMap<(Endpoint, Endpoint), Stream>,
    ops: u64,
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

impl Reassembler {
    /// Feed one segment; `emit` receives each complete message with its 2-byte prefix.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        flags: u8,
        payload: &[u8],
        ts_ns: i64,
        mut emit: impl FnMut(&[u8]),
    ) {
        self.ops += 1;
        if self.ops.is_multiple_of(65_536) || self.streams.len() > MAX_STREAMS {
            self.sweep(ts_ns);
        }
        let key = (src, dst);
        if flags & SYN != 0 {
            // A new connection (or the port reused): start the stream afresh.
            let st = self.streams.entry(key).or_default();
            st.buf.clear();
            st.next_seq = Some(seq.wrapping_add(1).wrapping_add(payload.len() as u32));
            st.last_ns = ts_ns;
            return;
        }
        if !payload.is_empty() {
            let st = self.streams.entry(key).or_default();
            st.last_ns = ts_ns;
            let data: &[u8] = match st.next_seq {
                None => payload,
                Some(next) => {
                    let diff = seq.wrapping_sub(next) as i32;
                    if diff == 0 {
                        payload
                    } else if diff < 0 {
                        // Retransmitted or overlapping: keep only bytes not seen yet.
                        let seen = (-(diff as i64)) as usize;
                        if seen >= payload.len() { &[] } else { &payload[seen..] }
                    } else {
                        // A gap (lost segment): what we held can never complete.
                        st.buf.clear();
                        payload
                    }
                }
            };
            let end = seq.wrapping_add(payload.len() as u32);
            match st.next_seq {
                Some(next) if (end.wrapping_sub(next) as i32) < 0 => {}
                _ => st.next_seq = Some(end),
            }
            if !data.is_empty() {
                st.buf.extend_from_slice(data);
                let mut start = 0;
                while st.buf.len() - start >= 2 {
                    let len = u16::from_be_bytes([st.buf[start], st.buf[start + 1]]) as usize;
                    if st.buf.len() - start < 2 + len {
                        break;
                    }
                    emit(&st.buf[start..start + 2 + len]);
                    start += 2 + len;
                }
                st.buf.drain(..start);
                if st.buf.len() > MAX_BUFFER {
                    st.buf.clear();
                }
            }
        }
        if flags & (FIN | RST) != 0 {
            // Keep the sequence number: data re-sent after the FIN is a TCP retransmission,
            // which Wireshark does not hand to DNS again.  Idle streams go in `sweep`.
            if let Some(st) = self.streams.get_mut(&key) {
                st.buf.clear();
            }
        }
    }

    /// Forget streams idle for more than five minutes of capture time.
    fn sweep(&mut self, now_ns: i64) {
        self.streams.retain(|_, s| now_ns - s.last_ns < 300_000_000_000);
        if self.streams.len() > MAX_STREAMS {
            // Still too many: keep only streams active in the last second, then none.
            self.streams.retain(|_, s| now_ns - s.last_ns < 1_000_000_000);
            if self.streams.len() > MAX_STREAMS {
                self.streams.clear();
            }
        }
    }
}
