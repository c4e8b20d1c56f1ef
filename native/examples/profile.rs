//! `cargo run --release --example profile -- FILE...`: time the analysis without Python.
//! With `AKSDNS_PROFILE_OUT=PATH` the JSON is written there (to compare two builds);
//! `AKSDNS_WS44=1` adds Wireshark 4.4's trees, `AKSDNS_TREES_ONLY=1` keeps only tshark's text.
fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let t = std::time::Instant::now();
    let (ws44, trees_only) = (std::env::var_os("AKSDNS_WS44").is_some(), std::env::var_os("AKSDNS_TREES_ONLY").is_some());
    let out = aksdns_native::analyze_to_json(&paths, 5.0, 1000, ws44, trees_only, Some(200)).expect("analysis failed");
    eprintln!("{:.3} s, {} bytes of JSON", t.elapsed().as_secs_f64(), out.len());
    if let Some(path) = std::env::var_os("AKSDNS_PROFILE_OUT") {
        std::fs::write(path, out).expect("cannot write the JSON");
    }
}
