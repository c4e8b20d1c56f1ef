//! How fast can we merely read and decode? (profiling aid)
use aksdns_native::{dns, link, reader::MergedReader};
fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let t = std::time::Instant::now();
    let mut r = MergedReader::open(&paths).ok().unwrap();
    let mut buf = Vec::new();
    let (mut n, mut d, mut ok) = (0u64, 0u64, 0u64);
    let mut sc = dns::Scratch::default();
    while let Some(meta) = r.next_packet(&mut buf) {
        n += 1;
        if let Ok(seg) = link::ip_of_frame(meta.linktype, &buf).and_then(link::segment_of_ip) {
            d += seg.payload.len() as u64;
            if seg.payload.len() > 4 && dns::parse_body(seg.payload, &mut sc).is_ok() { ok += 1; }
        }
    }
    let t1 = t.elapsed().as_secs_f64();
    eprintln!("read+decode+parse {n} packets {ok} ok, {d} bytes: {t1:.3} s");
}
