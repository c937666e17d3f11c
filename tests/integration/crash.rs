//! A writer killed with SIGKILL in the middle of writing leaves the last good state readable,
//! and the next ingest succeeds.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{ecrm_ok, repo, scalar};

/// Data files (not folders) under `<wh>/tables`.
fn data_files(wh: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![wh.join("tables")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn sigkill_mid_write_leaves_the_last_good_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wh = dir.path().join("wh");
    ecrm_ok(
        &wh,
        &[
            "synth",
            "--out-dir",
            data.to_str().unwrap(),
            "--seed",
            "9",
            "--customers",
            "3000",
            "--order-lines",
            "200000",
        ],
    );
    // The good state: customers and products only.
    let contract = repo().join("pipelines/sources.toml");
    let input = |s: &str, f: &str| format!("{s}={}", data.join(f).display());
    let base_args = [
        "ingest".to_string(),
        "--contract".into(),
        contract.display().to_string(),
        "--input".into(),
        input("customers", "customers.csv"),
        "--input".into(),
        input("products", "products.csv"),
    ];
    // The contract names every source, so the first load gets header-only order lines and
    // contacts.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let tx_header = std::fs::read_to_string(data.join("transactions.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let cc_header = std::fs::read_to_string(data.join("campaign_contacts.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(empty.join("tx-empty.csv"), format!("{tx_header}\n")).unwrap();
    std::fs::write(empty.join("cc-empty.csv"), format!("{cc_header}\n")).unwrap();
    let mut first = base_args.to_vec();
    first.extend([
        "--input".into(),
        format!("transactions={}", empty.join("tx-empty.csv").display()),
        "--input".into(),
        format!("campaign_contacts={}", empty.join("cc-empty.csv").display()),
    ]);
    ecrm_ok(&wh, &first.iter().map(String::as_str).collect::<Vec<_>>());
    let good_pointer = std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap();
    let good_customers = scalar(&wh, "SELECT COUNT(*) FROM dim_customer");
    let good_file_set: std::collections::HashSet<_> = data_files(&wh).into_iter().collect();
    let good_files = good_file_set.len();

    let mut second = base_args.to_vec();
    second.extend([
        "--input".into(),
        input("transactions", "transactions.csv"),
        "--input".into(),
        input("campaign_contacts", "campaign_contacts.csv"),
    ]);
    // Kill as soon as the new load has written its first data file.
    let bin = assert_cmd::cargo::cargo_bin("ecrm");
    let mut child = std::process::Command::new(&bin)
        .arg("--warehouse")
        .arg(&wh)
        .arg("-q")
        .args(&second)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut killed_mid_write = false;
    while t0.elapsed() < Duration::from_secs(120) {
        if data_files(&wh).len() > good_files {
            child.kill().unwrap(); // SIGKILL on Unix
            killed_mid_write = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.wait().unwrap();
    assert!(
        killed_mid_write,
        "the ingest finished before a new data file appeared"
    );

    // The last good state reads as before: same pointer, same rows, every file present.
    assert_eq!(
        good_pointer,
        std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap()
    );
    assert_eq!(
        good_customers,
        scalar(&wh, "SELECT COUNT(*) FROM dim_customer")
    );
    assert_eq!(scalar(&wh, "SELECT COUNT(*) FROM fact_sales"), "0");

    // The next ingest succeeds, removes the orphans, and loads everything.
    ecrm_ok(&wh, &second.iter().map(String::as_str).collect::<Vec<_>>());
    let loaded: u64 = scalar(
        &wh,
        "SELECT rows_loaded FROM loads WHERE file_name = 'transactions.csv'",
    )
    .parse()
    .unwrap();
    assert!(loaded > 150_000, "{loaded}");
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM fact_sales")
            .parse::<u64>()
            .unwrap(),
        loaded
    );
    let snapshot = ecrm::warehouse::Warehouse::open(&wh).unwrap();
    let referenced: std::collections::HashSet<_> = snapshot
        .snapshot()
        .tables
        .values()
        .flat_map(|t| t.files.iter().map(|f| wh.join(&f.path)))
        .collect();
    // Whatever the killed run wrote is gone; the good state's files may stay for readers.
    let orphans: Vec<_> = data_files(&wh)
        .into_iter()
        .filter(|p| !referenced.contains(p) && !good_file_set.contains(p))
        .collect();
    assert!(orphans.is_empty(), "{orphans:?}");
}
