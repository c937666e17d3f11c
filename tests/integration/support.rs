//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sample-data/synth.json`: what synth planted in the committed sample data.
pub fn sample_synth() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("sample-data/synth.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A data set file under `$ECRM_DATASETS`: `None` (with a SKIPPED line on stderr) when the
/// variable is unset; a failure when it is set and the file is missing. Tests that read one
/// are marked `#[cfg_attr(not(ecrm_datasets), ignore = ...)]` (see build.rs), so without the
/// variable `cargo test` lists them as ignored rather than passing them.
pub fn dataset(rel: &str) -> Option<PathBuf> {
    match std::env::var_os("ECRM_DATASETS") {
        None => {
            eprintln!(
                "SKIPPED: ECRM_DATASETS is not set, so the real data set {rel} cannot be read"
            );
            None
        }
        Some(dir) => {
            let p = Path::new(&dir).join(rel);
            assert!(
                p.exists(),
                "ECRM_DATASETS is set but {} is missing",
                p.display()
            );
            Some(p)
        }
    }
}

/// Runs the ecrm binary with `args` against `warehouse`.
pub fn ecrm(warehouse: &Path, args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("ecrm")
        .expect("ecrm binary")
        .arg("--warehouse")
        .arg(warehouse)
        .arg("-q")
        .args(args)
        .env_remove("ECRM_LOG")
        .output()
        .expect("ecrm runs")
}

/// Runs ecrm and asserts it exits 0, returning stdout.
pub fn ecrm_ok(warehouse: &Path, args: &[&str]) -> String {
    let out = ecrm(warehouse, args);
    assert!(
        out.status.success(),
        "ecrm {args:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs SQL over a warehouse in-process and renders every cell as text.
pub fn sql(warehouse: &Path, statement: &str) -> Vec<Vec<String>> {
    let wh = ecrm::warehouse::Warehouse::open(warehouse).expect("warehouse opens");
    let rt = ecrm::olap::runtime(None).expect("runtime");
    let (_, batches) = rt
        .block_on(async {
            let ctx = ecrm::olap::session(&wh, &Default::default()).await?;
            ecrm::olap::sql(&ctx, statement).await
        })
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    rows(&batches)
}

/// Every cell of `batches` as text (NULL for nulls).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

/// One value from a single-row, single-column query.
pub fn scalar(warehouse: &Path, statement: &str) -> String {
    let r = sql(warehouse, statement);
    assert_eq!(r.len(), 1, "{statement}: expected one row, got {r:?}");
    r[0][0].clone()
}

/// Copies a folder and everything in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A warehouse loaded from the committed sample data (as the README's `ecrm ingest`
/// example loads it), built once per test run (under target/tmp, replacing the previous
/// run's) and shared read-only by the tests that only query it.
pub fn sample_warehouse() -> &'static Path {
    static WH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WH.get_or_init(|| {
        let wh = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sample-warehouse");
        let _ = std::fs::remove_dir_all(&wh);
        let contract = repo().join("pipelines/sources.toml");
        ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
        wh
    })
}

/// Each current customer's consent now, for a warehouse loaded once: the latest explicit
/// consent event on a channel, else the customer file's opt-in. A derived table
/// (customer_id, email, phone) to join in a test's oracle SQL.
pub fn consent_now() -> &'static str {
    "(SELECT c.customer_id,
        COALESCE(le.status = 'granted', c.email_opt_in) AS email,
        COALESCE(lp.status = 'granted', c.phone_opt_in) AS phone
      FROM dim_customer c
      LEFT JOIN (SELECT customer_id, status, ROW_NUMBER() OVER (PARTITION BY customer_id
                   ORDER BY event_ts DESC) AS r FROM fact_consent WHERE channel = 'email') le
        ON le.customer_id = c.customer_id AND le.r = 1
      LEFT JOIN (SELECT customer_id, status, ROW_NUMBER() OVER (PARTITION BY customer_id
                   ORDER BY event_ts DESC) AS r FROM fact_consent WHERE channel = 'phone') lp
        ON lp.customer_id = c.customer_id AND lp.r = 1
      WHERE c.is_current AND c.customer_id IS NOT NULL)"
}
