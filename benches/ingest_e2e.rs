//! End-to-end ingest benchmark on synth data: generates N order lines, loads them into a fresh
//! warehouse through pipelines/sources.toml, and prints rows per second per stage and the
//! process's peak memory (VmHWM).
//!
//! Run (release settings; not run in CI, which only compiles it through clippy):
//!
//! ```sh
//! cargo bench --bench ingest_e2e -- 1000000 10000000
//! ```
//!
//! Each size runs in a child process of its own so that peak memory is per size.

use std::path::Path;
use std::time::Instant;

/// The process's peak resident memory in MiB (the run manifests' reader).
fn peak_rss_mb() -> f64 {
    ecrm::warehouse::runs::peak_rss_mib().unwrap_or(f64::NAN)
}

fn run_one(lines: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let customers = (lines / 25).max(1_000);
    let t = Instant::now();
    let params = ecrm::synth::SynthParams {
        seed: 42,
        customers,
        order_lines: lines,
        ..Default::default()
    }
    .check()
    .expect("valid params");
    let report = ecrm::synth::generate(&params, &data).expect("synth");
    let synth_s = t.elapsed().as_secs_f64();
    let synth_peak = peak_rss_mb();

    let contract_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sources.toml");
    let contract = ecrm::ingest::contract::Contract::load(&contract_path).expect("contract");
    let opts = ecrm::ingest::IngestOptions {
        inputs: ["customers", "products", "transactions", "campaign_contacts"]
            .iter()
            .map(|s| (Some(s.to_string()), data.join(format!("{s}.csv"))))
            .collect(),
        ..Default::default()
    };
    let t = Instant::now();
    let summary = ecrm::ingest::ingest(&dir.path().join("wh"), &contract, &opts).expect("ingest");
    let ingest_s = t.elapsed().as_secs_f64();
    let read: u64 = summary.files.iter().map(|f| f.rows_read).sum();
    println!(
        "ingest_e2e/lines={lines}: synth {:.2} s ({:.0} lines/s, peak {:.0} MB); ingest {:.2} s ({:.0} rows/s over {read} rows read), process peak {:.0} MB",
        synth_s,
        report.order_lines as f64 / synth_s,
        synth_peak,
        ingest_s,
        read as f64 / ingest_s,
        peak_rss_mb()
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    if let Ok(one) = std::env::var("ECRM_BENCH_ONE") {
        run_one(one.parse().expect("size"));
        return;
    }
    let sizes = if sizes.is_empty() {
        vec![1_000_000, 10_000_000]
    } else {
        sizes
    };
    let exe = std::env::current_exe().expect("own path");
    for n in sizes {
        let status = std::process::Command::new(&exe)
            .env("ECRM_BENCH_ONE", n.to_string())
            .status()
            .expect("child runs");
        assert!(status.success(), "size {n} failed");
    }
}
