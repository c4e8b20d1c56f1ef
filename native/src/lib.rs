//! aksdns_native: the compiled core of `aksdns analyze`.
//!
//! Python calls `analyze(paths, slow_s, list_limit, ...)` and gets JSON text back; a capture
//! that cannot be opened raises `CaptureError(path, reason)`.

/// Hash maps keyed by packet contents: aHash with a per-process random key, so a hostile
/// capture cannot force collisions, and far cheaper than SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

pub mod analyzer;
pub mod canvas;
pub mod defrag;
pub mod dns;
pub mod dns_tree;
pub mod dns_tree44;
pub mod link;
pub mod reader;
pub mod stats_tree;
pub mod synth;
pub mod tcp;
pub mod tx_csv;

/// Only tshark's text: what `trees_only` serialises.
#[derive(serde::Serialize)]
struct Trees<'a> {
    tshark_tree: &'a str,
    tshark_tree_44: Option<&'a str>,
}

/// The whole analysis and the CSV list of its unanswered and slow records.
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    analysis: &'a analyzer::Analysis,
    tx_csv: &'a str,
}

/// Run the analysis and serialise it; Err((path, reason)) when a file cannot be read.
/// With `trees_only`, the document holds only `tshark_tree` and `tshark_tree_44`.
/// Otherwise `tx_csv` holds the CSV rows of every kept unanswered and slow record (up to
/// `list_limit` each), and with `shown` the lists `unanswered`, `slow` and `clients` hold
/// only their first `shown` entries: what a report shows, not what the CSV already has.
pub fn analyze_to_json(
    paths: &[String],
    slow_s: f64,
    list_limit: usize,
    wireshark44: bool,
    trees_only: bool,
    shown: Option<usize>,
) -> Result<String, (String, String)> {
    let mut a =
        analyzer::Analyzer::run(paths, slow_s, list_limit, wireshark44, trees_only).map_err(|(p, e)| (p, e.0))?;
    let text = if trees_only {
        serde_json::to_string(&Trees { tshark_tree: &a.tshark_tree, tshark_tree_44: a.tshark_tree_44.as_deref() })
    } else {
        let tx_csv = tx_csv::render(&a.unanswered, &a.slow);
        if let Some(n) = shown {
            a.unanswered.truncate(n);
            a.slow.truncate(n);
            a.clients.truncate(n);
        }
        serde_json::to_string(&Answer { analysis: &a, tx_csv: &tx_csv })
    };
    text.map_err(|e| (String::new(), format!("cannot serialise the result: {e}")))
}

#[cfg(feature = "python")]
mod python {
    use pyo3::create_exception;
    use pyo3::exceptions::{PyException, PyValueError};
    use pyo3::prelude::*;

    create_exception!(_core, CaptureError, PyException, "A capture file cannot be read: args are (path, reason).");

    /// analyze(paths, slow_s=5.0, list_limit=1000, wireshark44=False, trees_only=False, shown=None) -> str (JSON)
    ///
    /// With `wireshark44`, the result also carries Wireshark 4.4's two trees; with
    /// `trees_only`, it carries only tshark's text (`tshark_tree`, `tshark_tree_44`).
    /// `tx_csv` is the CSV of the unanswered and slow records; `shown` cuts the lists
    /// `unanswered`, `slow` and `clients` to their first `shown` entries.
    #[pyfunction]
    #[pyo3(signature = (paths, slow_s=5.0, list_limit=1000, wireshark44=false, trees_only=false, shown=None))]
    fn analyze(
        py: Python<'_>,
        paths: Vec<String>,
        slow_s: f64,
        list_limit: usize,
        wireshark44: bool,
        trees_only: bool,
        shown: Option<usize>,
    ) -> PyResult<String> {
        if paths.is_empty() {
            return Err(PyValueError::new_err("no capture files given"));
        }
        if !slow_s.is_finite() || slow_s < 0.0 {
            return Err(PyValueError::new_err("slow_s must be a non-negative number of seconds"));
        }
        let res =
            py.allow_threads(|| super::analyze_to_json(&paths, slow_s, list_limit, wireshark44, trees_only, shown));
        res.map_err(|(path, reason)| CaptureError::new_err((path, reason)))
    }

    /// One drawing operation from Python: (kind, coordinates, (r, g, b), width or size, text).
    type PyOp = (String, Vec<f32>, (u8, u8, u8), f32, String);

    fn op(o: PyOp) -> PyResult<super::canvas::Op> {
        use super::canvas::Op;
        let (kind, c, (r, g, b), size, text) = o;
        let rgb = [r, g, b];
        let bad = || PyValueError::new_err(format!("a {kind:?} operation with {} coordinates", c.len()));
        Ok(match (kind.as_str(), c.len()) {
            ("fill", 4) => Op::Fill { x0: c[0], y0: c[1], x1: c[2], y1: c[3], rgb },
            ("outline", 4) => Op::Outline { x0: c[0], y0: c[1], x1: c[2], y1: c[3], rgb },
            ("line", n) if n >= 4 && n % 2 == 0 => {
                Op::Line { points: c.chunks_exact(2).map(|p| (p[0], p[1])).collect(), width: size, rgb }
            }
            ("dot", 3) => Op::Dot { x: c[0], y: c[1], r: c[2], rgb },
            ("text", 2) => Op::Text { x: c[0], y: c[1], size, text, rgb },
            _ => return Err(bad()),
        })
    }

    /// draw_png(width, height, ops) -> bytes: the PNG of `ops` drawn in order on white.
    ///
    /// Each op is (kind, coordinates, (r, g, b), width or size, text): "fill" and "outline"
    /// [x0, y0, x1, y1] (corners inclusive), "line" [x, y, x, y, ...] (width), "dot" [x, y,
    /// radius], "text" [x, y] (size: the em in pixels; text).  Draws without the GIL.
    #[pyfunction]
    fn draw_png(py: Python<'_>, width: u32, height: u32, ops: Vec<PyOp>) -> PyResult<pyo3::Py<pyo3::types::PyBytes>> {
        let ops = ops.into_iter().map(op).collect::<PyResult<Vec<_>>>()?;
        let png = py.allow_threads(|| super::canvas::draw_png(width, height, &ops)).map_err(PyValueError::new_err)?;
        Ok(pyo3::types::PyBytes::new(py, &png).unbind())
    }

    /// synthesize(path, packets, seed=1, start_s=1711990000.0) -> int (packets written)
    ///
    /// Writes a realistic CoreDNS capture (pcap, Ethernet) for benchmarks.
    #[pyfunction]
    #[pyo3(signature = (path, packets, seed=1, start_s=1_711_990_000.0))]
    fn synthesize(py: Python<'_>, path: String, packets: u64, seed: u64, start_s: f64) -> PyResult<u64> {
        py.allow_threads(|| super::synth::write_capture(&path, packets, seed, start_s))
            .map_err(|e| PyValueError::new_err(format!("{path}: {e}")))
    }

    #[pymodule]
    fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(analyze, m)?)?;
        m.add_function(wrap_pyfunction!(synthesize, m)?)?;
        m.add_function(wrap_pyfunction!(draw_png, m)?)?;
        m.add("CaptureError", m.py().get_type::<CaptureError>())?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
