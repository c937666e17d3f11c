//! Synthetic extracts: every planted defect is found with its reason code or repaired, and the
//! warehouse behaves as promised across loads.

use std::path::{Path, PathBuf};

use crate::support::{ecrm, ecrm_ok, repo, scalar, sql};

const SOURCES: [(&str, &str); 6] = [
    ("customers", "customers.csv"),
    ("products", "products.csv"),
    ("transactions", "transactions.csv"),
    ("campaigns", "campaigns.csv"),
    ("campaign_contacts", "campaign_contacts.csv"),
    ("consent_events", "consent_events.csv"),
];

fn synth(dir: &Path, seed: u64, customers: u64, lines: u64) -> PathBuf {
    synth_layout(dir, seed, customers, lines, "normal")
}

fn synth_layout(dir: &Path, seed: u64, customers: u64, lines: u64, layout: &str) -> PathBuf {
    let data = dir.join(format!("data-{seed}-{layout}"));
    ecrm_ok(
        &dir.join("unused-wh"),
        &[
            "synth",
            "--out-dir",
            data.to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "--customers",
            &customers.to_string(),
            "--order-lines",
            &lines.to_string(),
            "--layout",
            layout,
        ],
    );
    data
}

fn input_args(data: &Path) -> Vec<String> {
    let mut args = vec![
        "ingest".to_string(),
        "--contract".to_string(),
        repo().join("pipelines/sources.toml").display().to_string(),
    ];
    for (source, file) in SOURCES {
        args.push("--input".into());
        args.push(format!("{source}={}", data.join(file).display()));
    }
    args
}

fn ingest(wh: &Path, data: &Path) -> String {
    let args = input_args(data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ecrm_ok(wh, &args)
}

#[test]
fn synth_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let da = synth(a.path(), 3, 100, 3_000);
    let db = synth(b.path(), 3, 100, 3_000);
    for f in [
        "customers.csv",
        "products.csv",
        "transactions.csv",
        "campaigns.csv",
        "campaign_contacts.csv",
        "consent_events.csv",
        "web_events.csv",
        "synth.json",
    ] {
        assert_eq!(
            std::fs::read(da.join(f)).unwrap(),
            std::fs::read(db.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn planted_defects_are_rejected_or_repaired_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 7, 400, 20_000);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("synth.json")).unwrap()).unwrap();
    let wh = dir.path().join("wh");
    ingest(&wh, &data);

    for (source, file) in SOURCES {
        let planted = &manifest["files"][file];
        let row = sql(
            &wh,
            &format!(
                "SELECT rows_read, rows_loaded, rows_rejected, duplicates FROM loads WHERE source = '{source}'"
            ),
        );
        assert_eq!(row.len(), 1, "{source}");
        let n = |i: usize| row[0][i].parse::<u64>().unwrap();
        assert_eq!(
            n(0),
            planted["rows_written"].as_u64().unwrap(),
            "{file}: rows read"
        );
        assert_eq!(
            n(3),
            planted["exact_duplicates"].as_u64().unwrap(),
            "{file}: duplicates"
        );
        assert_eq!(n(0), n(1) + n(2) + n(3), "{file}: accounting");
        let mut want: Vec<Vec<String>> = planted["rejects"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| vec![k.clone(), v.as_u64().unwrap().to_string()])
            .collect();
        want.sort();
        let got = sql(
            &wh,
            &format!(
                "SELECT reason, COUNT(*) FROM rejects WHERE source = '{source}' GROUP BY reason ORDER BY reason"
            ),
        );
        assert_eq!(got, want, "{file}: rejects by reason");
    }

    // Repairs: codes upper-cased, text trimmed, Latin-1 decoded, both date formats parsed.
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_product WHERE product_id <> upper(product_id)"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM fact_sales WHERE product_id <> upper(product_id)"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_customer WHERE email <> trim(email)"
        ),
        "0"
    );
    assert_ne!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_customer WHERE name LIKE '%ü%' OR city = 'Köln'"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_customer WHERE name LIKE '%\u{FFFD}%'"
        ),
        "0"
    );
    let fact_rows: u64 = scalar(&wh, "SELECT COUNT(*) FROM fact_sales")
        .parse()
        .unwrap();
    let loaded: u64 = scalar(
        &wh,
        "SELECT rows_loaded FROM loads WHERE source = 'transactions'",
    )
    .parse()
    .unwrap();
    assert_eq!(fact_rows, loaded);
    // Guests count under the unknown member.
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM fact_sales WHERE customer_key = 0"
        ),
        manifest["guest_lines_loaded"].as_u64().unwrap().to_string()
    );
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM fact_sales WHERE is_return"),
        manifest["cancellation_lines"].as_u64().unwrap().to_string()
    );
    // Revenue is exactly quantity × unit_price.
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM fact_sales WHERE revenue <> quantity * unit_price"
        ),
        "0"
    );
}

#[test]
fn reloading_is_idempotent_and_new_files_append() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 11, 200, 6_000);
    // Two daily order-line files in one folder: the first half of the lines, then the rest.
    let text = std::fs::read_to_string(data.join("transactions.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (header, body) = (lines[0], &lines[1..]);
    let days = dir.path().join("days");
    std::fs::create_dir_all(&days).unwrap();
    // Split between two different lines: exact duplicates are adjacent and per file.
    let mut half = body.len() / 2;
    while body[half] == body[half - 1] {
        half += 1;
    }
    for (name, part) in [
        ("2024-01-01.csv", &body[..half]),
        ("2024-01-02.csv", &body[half..]),
    ] {
        std::fs::write(days.join(name), format!("{header}\n{}\n", part.join("\n"))).unwrap();
    }
    let contract = repo().join("pipelines/sources.toml");
    let others: Vec<String> = SOURCES
        .iter()
        .filter(|(s, _)| *s != "transactions")
        .flat_map(|(s, f)| {
            [
                "--input".to_string(),
                format!("{s}={}", data.join(f).display()),
            ]
        })
        .collect();
    let run = |tx: &Path| {
        let mut args = vec![
            "ingest".to_string(),
            "--contract".into(),
            contract.display().to_string(),
        ];
        args.extend(others.iter().cloned());
        args.extend([
            "--input".to_string(),
            format!("transactions={}", tx.display()),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ecrm(&wh_of(dir.path()), &args)
    };
    let wh = wh_of(dir.path());
    assert!(run(&days.join("2024-01-01.csv")).status.success());
    let count = || {
        scalar(&wh, "SELECT COUNT(*) FROM fact_sales")
            .parse::<u64>()
            .unwrap()
    };
    let first = count();
    let keys_before = sql(
        &wh,
        "SELECT customer_id, customer_key FROM dim_customer WHERE is_current ORDER BY customer_key",
    );

    // The same file again: nothing changes, and the summary says why.
    let pointer = std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap();
    let out = run(&days.join("2024-01-01.csv"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already_loaded"));
    assert_eq!(
        pointer,
        std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap()
    );

    // The folder: only the new day is loaded and appended; keys stay.
    assert!(run(&days).status.success());
    let second: u64 = scalar(
        &wh,
        "SELECT rows_loaded FROM loads WHERE file_name = '2024-01-02.csv'",
    )
    .parse()
    .unwrap();
    assert!(second > 0);
    assert_eq!(count(), first + second);
    assert_eq!(
        keys_before,
        sql(
            &wh,
            "SELECT customer_id, customer_key FROM dim_customer WHERE is_current ORDER BY customer_key"
        )
    );
    assert_eq!(
        scalar(&wh, "SELECT COUNT(DISTINCT load_id) FROM loads"),
        "2"
    );

    // Together the two days hold what the single file holds.
    let whole = dir.path().join("whole");
    ingest(&whole, &data);
    let totals = "SELECT COUNT(*), SUM(revenue), COUNT(DISTINCT invoice_no) FROM fact_sales";
    assert_eq!(sql(&wh, totals), sql(&whole, totals));

    // A corrected re-delivery under the same name is refused.
    let mut text = std::fs::read_to_string(days.join("2024-01-02.csv")).unwrap();
    text.push_str("999999,10000,X,1,2024-01-01 10:00:00,1.00,,web\n");
    std::fs::write(days.join("2024-01-02.csv"), text).unwrap();
    let out = run(&days);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different content") && err.contains("--replace"),
        "{err}"
    );

    // With --replace it takes the earlier delivery's place: old rows and rejects out, new in.
    let rejects_before: u64 = scalar(&wh, "SELECT COUNT(*) FROM rejects").parse().unwrap();
    let day2 = "SELECT rows_read, rows_loaded, rows_rejected FROM loads WHERE file_name = '2024-01-02.csv'";
    let num = |v: &Vec<Vec<String>>, i: usize| v[0][i].parse::<u64>().unwrap();
    let old = sql(&wh, day2);
    let mut args = vec![
        "ingest".to_string(),
        "--contract".into(),
        contract.display().to_string(),
        "--replace".into(),
    ];
    args.extend(others.iter().cloned());
    args.extend([
        "--input".to_string(),
        format!("transactions={}", days.display()),
    ]);
    ecrm_ok(&wh, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let new = sql(&wh, day2);
    assert_eq!(new.len(), 1, "one loads row for the file");
    assert_eq!(num(&new, 0), num(&old, 0) + 1);
    // The added line names an unknown product.
    assert_eq!(num(&new, 2), num(&old, 2) + 1);
    assert_eq!(count(), first + num(&new, 1));
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM rejects")
            .parse::<u64>()
            .unwrap(),
        rejects_before - num(&old, 2) + num(&new, 2)
    );
    let replaced_by = scalar(
        &wh,
        "SELECT load_id FROM loads WHERE file_name = '2024-01-02.csv'",
    );
    assert_eq!(replaced_by, "3");

    // Rolling that load back removes its rows, contacts, rejects and loads rows, and nothing else.
    let out = ecrm_ok(&wh, &["loads", "rollback", "3"]);
    assert!(out.starts_with("rolled back load 3"), "{out}");
    assert_eq!(count(), first);
    assert_eq!(
        scalar(&wh, "SELECT COUNT(DISTINCT load_id) FROM loads"),
        "1"
    );
    assert_eq!(
        keys_before,
        sql(
            &wh,
            "SELECT customer_id, customer_key FROM dim_customer WHERE is_current ORDER BY customer_key"
        )
    );
    let out = ecrm(&wh, &["loads", "rollback", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("load not found: 3 (loads: 1)"));
}

fn wh_of(dir: &Path) -> PathBuf {
    dir.join("wh")
}

#[test]
fn a_high_reject_rate_fails_with_exit_1_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 5, 100, 3_000);
    let wh = dir.path().join("wh");
    let mut args = input_args(&data);
    args.extend(["--max-reject-rate".to_string(), "0.001".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ecrm(&wh, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-reject-rate"));
    assert!(
        !wh.join("_ecrm/CURRENT").exists(),
        "nothing may be published"
    );
}

#[test]
fn a_second_writer_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 6, 100, 1_000);
    let wh = dir.path().join("wh");
    let _held = ecrm::warehouse::WriterLock::acquire(&wh, "test holder").unwrap();
    let args = input_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ecrm(&wh, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked by another writer") && err.contains("test holder"),
        "{err}"
    );
}

#[test]
fn committed_sample_data_is_what_synth_makes() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = synth(dir.path(), 42, 2_000, 50_000);
    for f in [
        "customers.csv",
        "products.csv",
        "transactions.csv",
        "campaigns.csv",
        "campaign_contacts.csv",
        "consent_events.csv",
        "web_events.csv",
        "synth.json",
    ] {
        assert!(
            std::fs::read(fresh.join(f)).unwrap()
                == std::fs::read(repo().join("sample-data").join(f)).unwrap(),
            "sample-data/{f} differs from `ecrm synth --seed 42 --customers 2000 --order-lines 50000`"
        );
    }
}

#[test]
fn the_readme_main_command_loads_the_sample_data() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/sources.toml");
    let out = ecrm_ok(
        &wh,
        &[
            "ingest",
            "--contract",
            contract.to_str().unwrap(),
            "--format",
            "table",
        ],
    );
    assert!(out.contains("load 1 committed"), "{out}");
    let manifest = crate::support::sample_synth();
    let tx = &manifest["files"]["transactions.csv"];
    let rejected: u64 = tx["rejects"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let loaded =
        tx["rows_written"].as_u64().unwrap() - tx["exact_duplicates"].as_u64().unwrap() - rejected;
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM fact_sales"),
        loaded.to_string()
    );
}

#[test]
fn ingest_refuses_a_summary_format_it_cannot_print_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/sources.toml");
    let out = ecrm(
        &wh,
        &[
            "ingest",
            "--contract",
            contract.to_str().unwrap(),
            "--format",
            "parquet",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format: ingest prints its summary"));
    assert!(!wh.join("_ecrm/CURRENT").exists(), "nothing may be loaded");
}

/// The age group on `day` (yyyymmdd) of someone born on `birth` (YYYY-MM-DD), in exact years.
fn age_group(birth: &str, day: i64) -> &'static str {
    let born: i64 = birth.replace('-', "").parse().unwrap();
    match (day - born) / 10_000 {
        a if a < 25 => "<25",
        a if a < 35 => "25-34",
        a if a < 45 => "35-44",
        a if a < 55 => "45-54",
        a if a < 65 => "55-64",
        _ => "65+",
    }
}

/// `synth --layout flat` writes the normal layout's order lines as one flat extract; loaded
/// through pipelines/flat.toml it gives the same lines, revenue, returns, customers and
/// customer-days, costs equal to the product file's, each customer's age group from the
/// customer file's birth date, and its planted defects under their reason codes.
#[test]
fn the_flat_layout_loads_like_the_normal_one() {
    let dir = tempfile::tempdir().unwrap();
    let normal = synth(dir.path(), 13, 200, 6_000);
    let flat = synth_layout(dir.path(), 13, 200, 6_000, "flat");
    let (nwh, fwh) = (dir.path().join("normal"), dir.path().join("flat"));
    ingest(&nwh, &normal);
    let contract = repo().join("pipelines/flat.toml");
    let flat_csv = flat.join("flat.csv");
    ecrm_ok(
        &fwh,
        &[
            "ingest",
            "--contract",
            contract.to_str().unwrap(),
            "--input",
            flat_csv.to_str().unwrap(),
        ],
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(flat.join("synth.json")).unwrap()).unwrap();
    let planted = &manifest["files"]["flat.csv"];
    let loads = sql(
        &fwh,
        "SELECT rows_read, rows_rejected, duplicates FROM loads",
    );
    assert_eq!(loads[0][0], planted["rows_written"].to_string());
    assert_eq!(loads[0][2], "0");
    let mut rejects = serde_json::Map::new();
    for row in sql(&fwh, "SELECT reason, COUNT(*) FROM rejects GROUP BY reason") {
        rejects.insert(row[0].clone(), row[1].parse::<u64>().unwrap().into());
    }
    assert_eq!(serde_json::Value::Object(rejects), planted["rejects"]);
    // The flat file's rows and the lines it leaves out make up the normal file's rows.
    let left_out: u64 = manifest["left_out"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let normal_manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(normal.join("synth.json")).unwrap()).unwrap();
    assert_eq!(
        planted["rows_written"].as_u64().unwrap() + left_out,
        normal_manifest["files"]["transactions.csv"]["rows_written"]
            .as_u64()
            .unwrap()
    );

    let totals = "SELECT COUNT(*), SUM(revenue), COUNT(DISTINCT customer_id), \
         COUNT(DISTINCT CASE WHEN customer_id IS NOT NULL \
           THEN customer_id || '|' || CAST(date_key AS VARCHAR) END), \
         SUM(CASE WHEN is_return THEN 1 ELSE 0 END) FROM fact_sales";
    let n = sql(&nwh, totals);
    assert_eq!(sql(&fwh, totals), n);
    // A flat basket is a customer-day: as many as the normal facts' customer-days.
    assert_eq!(
        scalar(
            &fwh,
            "SELECT COUNT(DISTINCT invoice_no) FROM fact_sales WHERE customer_id IS NOT NULL"
        ),
        n[0][3]
    );
    // Line costs are the product file's unit costs times the quantities.
    assert_eq!(
        scalar(&fwh, "SELECT SUM(cost) FROM fact_sales"),
        scalar(
            &nwh,
            "SELECT SUM(CAST(f.quantity AS DECIMAL(18,0)) * p.unit_cost) FROM fact_sales f \
             JOIN dim_product p ON p.product_key = f.product_key"
        )
    );
    // Each customer's current age group: the band on their last purchase day, from the
    // birth date in the normal layout's customer file.
    let last = sql(
        &nwh,
        "SELECT f.customer_id, c.birth_date, MAX(f.date_key) FROM fact_sales f \
         JOIN dim_customer c ON c.customer_id = f.customer_id AND c.is_current \
         GROUP BY f.customer_id, c.birth_date ORDER BY f.customer_id",
    );
    let bands = sql(
        &fwh,
        "SELECT customer_id, age_band FROM dim_customer \
         WHERE is_current AND customer_key > 0 ORDER BY customer_id",
    );
    assert_eq!(bands.len(), last.len());
    for (b, l) in bands.iter().zip(&last) {
        assert_eq!(b[0], l[0]);
        assert_eq!(b[1], age_group(&l[1], l[2].parse().unwrap()), "{}", b[0]);
    }
}
