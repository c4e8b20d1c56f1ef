//! aksdns_native: the compiled core of `aksdns analyze`.
//!
//! Python calls `analyze(paths, slow_s, list_limit, ...)` and gets JSON text back; a capture
//! that cannot be opened raises `CaptureError(path, reason)`.

/// Hash maps keyed by packet contents: aHash with a per-process random key, so a hostile
/// capture cannot force collisions, and far cheaper than SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

pub mod analyzer;
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
        let res = py.allow_threads(|| super::analyze_to_json(&paths, slow_s, list_limit, wireshark44, trees_only, shown));
        res.map_err(|(path, reason)| CaptureError::new_err((path, reason)))
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
        m.add("CaptureError", m.py().get_type::<CaptureError>())?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
