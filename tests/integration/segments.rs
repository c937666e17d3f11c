//! The feature mart, segmentation and segment exports on the committed sample data, and
//! clustering of files brought by the user.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::support::{ecrm, ecrm_ok, repo, sample_warehouse, scalar, sql};

/// A private copy of the sample warehouse, for tests that write to it.
pub fn sample_copy(dir: &Path) -> PathBuf {
    fn copy(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            let to = dst.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to);
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
    let wh = dir.join("wh");
    copy(sample_warehouse(), &wh);
    wh
}

/// Adjusted Rand index of two labelings (Hubert and Arabie), from the contingency table.
fn adjusted_rand_index<A: Ord + Clone, B: Ord + Clone>(a: &[A], b: &[B]) -> f64 {
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: BTreeMap<(A, B), f64> = BTreeMap::new();
    let mut rows: BTreeMap<A, f64> = BTreeMap::new();
    let mut cols: BTreeMap<B, f64> = BTreeMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((x.clone(), y.clone())).or_default() += 1.0;
        *rows.entry(x.clone()).or_default() += 1.0;
        *cols.entry(y.clone()).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let sum_a: f64 = rows.values().map(|&n| pairs(n)).sum();
    let sum_b: f64 = cols.values().map(|&n| pairs(n)).sum();
    let expected = sum_a * sum_b / pairs(a.len() as f64);
    let max = (sum_a + sum_b) / 2.0;
    (index - expected) / (max - expected)
}

#[test]
fn adjusted_rand_index_matches_known_values() {
    // Same partition under other names: 1; scikit-learn's documented example: 0.57.
    assert!((adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
    let ari = adjusted_rand_index(&[0, 0, 1, 2], &[0, 0, 1, 1]);
    assert!((ari - 0.5714285714).abs() < 1e-9, "{ari}");
}

#[test]
fn feature_mart_sees_nothing_at_or_after_the_as_of_date() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    let mart = "SELECT * FROM customer_features ORDER BY customer_id";
    ecrm_ok(&wh, &["features", "--as-of", "2024-06-01"]);
    let before = sql(&wh, mart);
    assert!(before.len() > 500, "{} customers", before.len());

    // New order lines for customers already in the mart: one exactly at the as-of midnight
    // (not strictly before it), the rest later; and a return after the date.
    let sku = std::fs::read_to_string(repo().join("sample-data/products.csv")).unwrap();
    let sku = sku
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let ids: Vec<String> = before.iter().take(40).map(|r| r[0].clone()).collect();
    let mut csv =
        String::from("invoice,sku,item_description,qty,ordered_at,unit_price,customer,channel\n");
    for (i, id) in ids.iter().enumerate() {
        let ts = if i == 0 {
            "2024-06-01 00:00:00"
        } else {
            "2024-06-15 10:00:00"
        };
        csv.push_str(&format!(
            "{},{sku},LATE,3,{ts},9.99,{id},web\n",
            990_000 + i
        ));
    }
    csv.push_str(&format!(
        "C990999,{sku},LATE,-1,2024-06-20 10:00:00,9.99,{},web\n",
        ids[1]
    ));
    let late = dir.path().join("late.csv");
    std::fs::write(&late, csv).unwrap();
    let contract = repo().join("pipelines/sources.toml");
    ecrm_ok(
        &wh,
        &[
            "ingest",
            "--contract",
            contract.to_str().unwrap(),
            "--input",
            &format!("transactions={}", late.display()),
        ],
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM fact_sales WHERE invoice_no LIKE '990%' OR invoice_no = 'C990999'"
        ),
        "41"
    );

    ecrm_ok(&wh, &["features", "--as-of", "2024-06-01"]);
    assert_eq!(
        sql(&wh, mart),
        before,
        "rows at or after the as-of date changed the mart"
    );

    // The same lines do count one day later (so the comparison above can fail).
    ecrm_ok(&wh, &["features", "--as-of", "2024-06-02"]);
    let after = sql(
        &wh,
        &format!(
            "SELECT frequency, recency_days FROM customer_features WHERE customer_id = '{}'",
            ids[0]
        ),
    );
    let was = &before[0];
    assert_eq!(
        after[0][0],
        (was[3].parse::<i64>().unwrap() + 1).to_string()
    );
    assert_eq!(after[0][1], "1");
}

#[test]
fn kmeans_recovers_the_groups_synth_planted() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    let out = ecrm(&wh, &["segment", "--k", "4", "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let synth = crate::support::sample_synth();
    let groups = synth["customer_groups"].as_object().unwrap();
    let rows = sql(
        &wh,
        "SELECT customer_id, segment_id, segment_name, method FROM segments ORDER BY customer_id",
    );
    let planted: Vec<String> = rows
        .iter()
        .map(|r| groups[&r[0]].as_str().unwrap().to_string())
        .collect();
    let found: Vec<String> = rows.iter().map(|r| r[1].clone()).collect();
    let ari = adjusted_rand_index(&planted, &found);
    assert!(ari >= 0.8, "adjusted Rand index {ari:.3}");
    assert!(rows.iter().all(|r| r[3] == "kmeans"));

    // Profiles: one row per segment, sizes add up, names are those of `segments`.
    let profiles = sql(
        &wh,
        "SELECT segment_id, segment_name, customers, share FROM segment_profiles ORDER BY segment_id",
    );
    assert_eq!(profiles.len(), 4);
    let total: usize = profiles
        .iter()
        .map(|p| p[2].parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, rows.len());
    let names: BTreeSet<&String> = rows.iter().map(|r| &r[2]).collect();
    assert_eq!(names.len(), 4, "distinct names: {names:?}");
    // The wholesale buyers form the smallest segment, named for their value.
    assert_eq!(profiles[3][1], "recent top-value frequent");
    // The printed profile table is the table's content.
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.lines().count(), 5, "{printed}");

    // Same seed, same segments.
    ecrm_ok(&wh, &["segment", "--k", "4"]);
    assert_eq!(
        sql(
            &wh,
            "SELECT customer_id, segment_id, segment_name, method FROM segments ORDER BY customer_id"
        ),
        rows
    );
}

/// k-means fitted on a seeded sample of customers still labels every customer, and labels
/// them as the fit on every customer does (and as synth planted them).
#[test]
fn kmeans_fitted_on_a_sample_labels_every_customer_like_the_whole_fit() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    let query = "SELECT customer_id, segment_id, segment_name FROM segments ORDER BY customer_id";
    ecrm_ok(&wh, &["segment", "--k", "4"]);
    let whole = sql(&wh, query);
    let customers = scalar(&wh, "SELECT count(*) FROM customer_features");

    // Not quiet: the fit's summary line says what it was fitted on.
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args(["--warehouse", wh.to_str().unwrap()])
        .args(["segment", "--k", "4", "--train-sample", "800"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "(fitted on a sample of 800 of {customers} customers)"
        )),
        "{err}"
    );
    let sampled = sql(&wh, query);
    // Every customer of the mart is labelled, not only the sample.
    assert_eq!(sampled.len().to_string(), customers);
    let ids = |rows: &[Vec<String>]| rows.iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    let ari = adjusted_rand_index(&ids(&whole), &ids(&sampled));
    assert!(
        ari >= 0.9,
        "against the whole fit: adjusted Rand index {ari:.3}"
    );
    let groups = crate::support::sample_synth()["customer_groups"].clone();
    let planted: Vec<String> = sampled
        .iter()
        .map(|r| groups[&r[0]].as_str().unwrap().to_string())
        .collect();
    let ari = adjusted_rand_index(&planted, &ids(&sampled));
    assert!(
        ari >= 0.8,
        "against synth's groups: adjusted Rand index {ari:.3}"
    );
    // Ids are numbered by size over every customer, and the profiles count every customer.
    let sizes: Vec<u64> = sql(
        &wh,
        "SELECT customers FROM segment_profiles ORDER BY segment_id",
    )
    .iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>().to_string(), customers);

    // The same seed draws the same sample; a sample as large as the mart is the whole fit.
    ecrm_ok(&wh, &["segment", "--k", "4", "--train-sample", "800"]);
    assert_eq!(sql(&wh, query), sampled);
    ecrm_ok(&wh, &["segment", "--k", "4", "--train-sample", &customers]);
    assert_eq!(sql(&wh, query), whole);
}

#[test]
fn k_auto_reports_inertia_and_silhouette_for_each_k_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args([
            "--warehouse",
            wh.to_str().unwrap(),
            "segment",
            "--k",
            "auto:2-6",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    for k in 2..=6 {
        assert!(
            err.lines().any(|l| l.starts_with(&format!("{k} "))),
            "no line for k={k}:\n{err}"
        );
    }
    let chosen = err.lines().find(|l| l.starts_with("chose k=")).expect(&err);
    assert!(
        chosen.contains("silhouette") && chosen.contains("inertia falls"),
        "{chosen}"
    );
    let k: usize = chosen["chose k=".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        scalar(&wh, "SELECT count(DISTINCT segment_id) FROM segments"),
        k.to_string()
    );
}

#[test]
fn segment_parameters_are_checked_before_any_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-warehouse");
    for (args, needle) in [
        (vec!["segment", "--k", "1"], "--k: 1 is out of range"),
        (
            vec!["segment", "--method", "rfm", "--k", "4"],
            "does not take a number of clusters",
        ),
        (
            vec!["segment", "--n-init", "0"],
            "--n-init: 0 is out of range",
        ),
        (
            vec!["segment", "--method", "dbscan", "--eps=-1"],
            "--eps: -1 must be a positive number",
        ),
        (vec!["segment", "--k", "auto:5-3"], "auto:5-3"),
        (
            vec!["segment", "--method", "gmm", "--train-sample", "500"],
            "--train-sample: only k-means labels rows it was not fitted on",
        ),
        (
            vec!["segment", "--k", "8", "--train-sample", "5"],
            "--train-sample: 5 rows cannot hold 8 clusters",
        ),
    ] {
        let out = ecrm(&missing, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!missing.exists());
}

#[test]
fn rfm_dbscan_and_gmm_write_segments_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    let customers = scalar(
        &wh,
        "SELECT count(*) FROM dim_customer WHERE customer_id IS NOT NULL AND is_current",
    );
    for method in ["rfm", "dbscan", "gmm"] {
        let mut args = vec!["segment", "--method", method];
        if method == "gmm" {
            args.extend(["--k", "4"]);
        }
        ecrm_ok(&wh, &args);
        let n = scalar(&wh, "SELECT count(*) FROM segments");
        assert_eq!(n, scalar(&wh, "SELECT count(*) FROM customer_features"));
        assert!(n.parse::<u64>().unwrap() <= customers.parse().unwrap());
        assert_eq!(
            scalar(&wh, "SELECT min(method) || max(method) FROM segments"),
            format!("{method}{method}")
        );
        assert_eq!(
            scalar(&wh, "SELECT sum(customers) FROM segment_profiles"),
            n,
            "{method}"
        );
        let share = scalar(&wh, "SELECT round(sum(share), 9) FROM segment_profiles");
        assert_eq!(share, "1.0", "{method}");
    }
    // RFM names and ids follow the documented list.
    ecrm_ok(&wh, &["segment", "--method", "rfm"]);
    let ids = sql(
        &wh,
        "SELECT DISTINCT segment_id, segment_name FROM segments ORDER BY segment_id",
    );
    let list = [
        "Champions",
        "Loyal",
        "Potential loyalist",
        "New",
        "Promising",
        "Need attention",
        "About to sleep",
        "At risk",
        "Can't lose them",
        "Hibernating",
        "Lost",
    ];
    for r in &ids {
        let id: usize = r[0].parse().unwrap();
        assert_eq!(r[1], list[id - 1]);
    }
    // The segment matches the mart's scores.
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM segments s JOIN customer_features f USING (customer_id) WHERE s.segment_name <> f.rfm_segment"
        ),
        "0"
    );
}

/// Reads an export back as (customer_id, email) pairs, whatever its format.
fn read_export(path: &Path) -> Vec<(String, String)> {
    let ext = path.extension().unwrap().to_str().unwrap();
    let text = || std::fs::read_to_string(path).unwrap();
    let obj = |v: &serde_json::Value| {
        (
            v["customer_id"].as_str().unwrap().to_string(),
            v["email"].as_str().unwrap_or("").to_string(),
        )
    };
    match ext {
        "csv" => {
            let mut rdr = csv::Reader::from_path(path).unwrap();
            assert_eq!(
                rdr.headers().unwrap().iter().collect::<Vec<_>>(),
                [
                    "customer_id",
                    "email",
                    "name",
                    "country",
                    "segment_id",
                    "segment_name"
                ]
            );
            rdr.records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[0].to_string(), r[1].to_string())
                })
                .collect()
        }
        "json" => serde_json::from_str::<Vec<serde_json::Value>>(&text())
            .unwrap()
            .iter()
            .map(obj)
            .collect(),
        "ndjson" => text()
            .lines()
            .map(|l| obj(&serde_json::from_str(l).unwrap()))
            .collect(),
        "parquet" => {
            let dir = tempfile::tempdir().unwrap();
            let t = format!("export={}", path.display());
            let out = ecrm_ok(
                &dir.path().join("none"),
                &[
                    "query",
                    "--table",
                    &t,
                    "-e",
                    "SELECT customer_id, coalesce(email, '') FROM export",
                    "--format",
                    "csv",
                ],
            );
            out.lines()
                .skip(1)
                .map(|l| {
                    let (a, b) = l.split_once(',').unwrap();
                    (a.to_string(), b.to_string())
                })
                .collect()
        }
        _ => unreachable!(),
    }
}

#[test]
fn exports_never_contain_opted_out_or_suppressed_customers_in_any_format() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    ecrm_ok(&wh, &["segment", "--method", "rfm"]);
    let segment = "Hibernating";
    let members = sql(
        &wh,
        &format!(
            "SELECT s.customer_id, c.email, k.email, k.phone FROM segments s \
             JOIN dim_customer c ON c.customer_id = s.customer_id AND c.is_current \
             JOIN {} k ON k.customer_id = s.customer_id \
             WHERE s.segment_name = '{segment}' ORDER BY s.customer_id",
            crate::support::consent_now()
        ),
    );
    let opted_in: Vec<&Vec<String>> = members.iter().filter(|m| m[2] == "true").collect();
    assert!(
        opted_in.len() > 10 && opted_in.len() < members.len(),
        "{} of {}",
        opted_in.len(),
        members.len()
    );
    // Suppress two consenting customers by id and two by e-mail (other case, padded).
    let suppress_ids = [opted_in[0][0].clone(), opted_in[1][0].clone()];
    let suppress_emails = [opted_in[2][1].clone(), opted_in[3][1].clone()];
    let file = dir.path().join("suppress.txt");
    std::fs::write(
        &file,
        format!(
            "{}\n\n  {}  \n{}\n {} \nnobody@example.com\n",
            suppress_ids[0],
            suppress_ids[1],
            suppress_emails[0].to_uppercase(),
            suppress_emails[1]
        ),
    )
    .unwrap();
    let expected: Vec<(String, String)> = opted_in[4..]
        .iter()
        .map(|m| (m[0].clone(), m[1].clone()))
        .collect();
    let opt_in: HashMap<&str, &str> = members
        .iter()
        .map(|m| (m[0].as_str(), m[2].as_str()))
        .collect();

    for ext in ["csv", "json", "ndjson", "parquet"] {
        let out_file = dir.path().join(format!("hibernating.{ext}"));
        let out = ecrm(
            &wh,
            &[
                "export",
                "segment",
                "hibernating",
                "--out",
                out_file.to_str().unwrap(),
                "--require-consent",
                "email",
                "--suppress",
                file.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = read_export(&out_file);
        assert_eq!(got, expected, "{ext}");
        for (id, email) in &got {
            assert_eq!(opt_in[id.as_str()], "true", "{ext}: {id} has no consent");
            assert!(!suppress_ids.contains(id), "{ext}: {id} is suppressed");
            assert!(
                !suppress_emails.contains(email),
                "{ext}: {email} is suppressed"
            );
        }
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(&format!(
                "{} customers in the segment, {} dropped for no e-mail consent, 4 dropped as suppressed, {} written",
                members.len(),
                members.len() - opted_in.len(),
                expected.len()
            )),
            "{err}"
        );
    }

    // Phone consent is its own flag; the segment id works as well as the name.
    let id = scalar(
        &wh,
        &format!("SELECT min(segment_id) FROM segments WHERE segment_name = '{segment}'"),
    );
    let out_file = dir.path().join("phone.csv");
    ecrm_ok(
        &wh,
        &[
            "export",
            "segment",
            &id,
            "--out",
            out_file.to_str().unwrap(),
            "--require-consent",
            "phone",
        ],
    );
    let phone: Vec<String> = members
        .iter()
        .filter(|m| m[3] == "true")
        .map(|m| m[0].clone())
        .collect();
    let got: Vec<String> = read_export(&out_file)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, phone);
}

#[test]
fn export_of_an_unknown_segment_lists_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wh = sample_copy(dir.path());
    ecrm_ok(&wh, &["segment", "--method", "rfm"]);
    let out = ecrm(
        &wh,
        &[
            "export",
            "segment",
            "Dormant",
            "--out",
            dir.path().join("x.csv").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("segment not found: Dormant; the segments are: 1 \"Champions\""),
        "{err}"
    );
    assert!(!dir.path().join("x.csv").exists());
    let out = ecrm(
        &wh,
        &[
            "export",
            "segment",
            "lost",
            "--out",
            "x.csv",
            "--columns",
            "customer_id,shoe_size",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no column \"shoe_size\"; the columns are: ")
    );
}

/// Rows of three planted blobs, interleaved (row i is in blob i % 3), with an id column.
fn blobs(n: usize) -> (Arc<Schema>, RecordBatch) {
    let centres = [(0.0, 0.0), (50.0, 0.0), (0.0, 50.0)];
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (cx, cy) = centres[i % 3];
        let t = i as f64 * 0.37;
        x.push(cx + t.sin());
        y.push(cy + t.cos());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(x)),
            Arc::new(Float64Array::from(y)),
        ],
    )
    .unwrap();
    (schema, batch)
}

/// The `segment` column of a labels file.
fn labels(path: &Path) -> Vec<i64> {
    let t = format!("labels={}", path.display());
    let out = ecrm_ok(
        &path.with_extension("none"),
        &[
            "query",
            "--table",
            &t,
            "-e",
            "SELECT segment FROM labels",
            "--format",
            "csv",
        ],
    );
    out.lines().skip(1).map(|l| l.parse().unwrap()).collect()
}

#[test]
fn clustering_a_file_labels_every_row_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, batch) = blobs(30_000);
    // Many small row groups, which are read in parallel: the order must survive.
    let parquet = dir.path().join("blobs.parquet");
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(1_000))
        .build();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&parquet).unwrap(),
        schema.clone(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let csv_in = dir.path().join("blobs.csv");
    let mut text = String::from("id,x,y\n");
    let (xs, ys) = (batch.column(1), batch.column(2));
    let (xs, ys) = (
        xs.as_any().downcast_ref::<Float64Array>().unwrap(),
        ys.as_any().downcast_ref::<Float64Array>().unwrap(),
    );
    for i in 0..batch.num_rows() {
        text.push_str(&format!("{i},{},{}\n", xs.value(i), ys.value(i)));
    }
    std::fs::write(&csv_in, text).unwrap();

    let none = dir.path().join("no-warehouse");
    for input in [&parquet, &csv_in] {
        let out = dir.path().join("labels.parquet");
        let args = [
            "segment",
            "--input",
            input.to_str().unwrap(),
            "--features",
            "x,y",
            "--k",
            "3",
            "--scale",
            "none",
            "--n-init",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        let printed = ecrm_ok(&none, &args);
        assert!(
            printed.contains("30000 rows, 2 features, 3 clusters"),
            "{printed}"
        );
        assert!(printed.contains("in the original units"), "{printed}");
        let l = labels(&out);
        assert_eq!(l.len(), 30_000);
        // Equal-sized clusters tie on size; ties go by first row, so row i is segment i%3+1.
        for (i, s) in l.iter().enumerate() {
            assert_eq!(*s, (i % 3) as i64 + 1, "{}: row {i}", input.display());
        }
        // Byte-identical on a second run.
        let first = std::fs::read(&out).unwrap();
        ecrm_ok(&none, &args);
        assert_eq!(std::fs::read(&out).unwrap(), first);
    }
    // Fitted on 300 rows, every row still gets its blob.
    let out = dir.path().join("sampled.parquet");
    let printed = ecrm_ok(
        &none,
        &[
            "segment",
            "--input",
            parquet.to_str().unwrap(),
            "--features",
            "x,y",
            "--k",
            "3",
            "--train-sample",
            "300",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        printed.contains("30000 rows (fitted on a sample of 300), 2 features, 3 clusters"),
        "{printed}"
    );
    let l = labels(&out);
    assert!(l.iter().enumerate().all(|(i, s)| *s == (i % 3) as i64 + 1));
    // Without --features every numeric column is used (id included): still one label per row.
    let out = dir.path().join("all.csv");
    let printed = ecrm_ok(
        &none,
        &[
            "segment",
            "--input",
            parquet.to_str().unwrap(),
            "--k",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        printed.contains("3 features") && printed.contains("in the scaled space"),
        "{printed}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        30_001
    );
    assert!(!none.exists(), "no warehouse is created for a file");
}

#[test]
fn clustering_a_file_names_bad_columns_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("holes.csv");
    std::fs::write(&f, "id,x,y,label\n1,1.0,2.0,a\n2,1.5,,b\n3,9.0,9.0,c\n").unwrap();
    let out_file = dir.path().join("l.csv");
    let none = dir.path().join("none");
    let run = |features: &str| {
        let out = ecrm(
            &none,
            &[
                "segment",
                "--input",
                f.to_str().unwrap(),
                "--features",
                features,
                "--k",
                "2",
                "--out",
                out_file.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run("x,y");
    assert!(
        err.contains("holes.csv: row 2: column \"y\" is NULL"),
        "{err}"
    );
    let err = run("x,label");
    assert!(
        err.contains("column \"label\" is Utf8, not a number"),
        "{err}"
    );
    let err = run("x,z");
    assert!(
        err.contains("holes.csv: has no column \"z\"; its columns are: id, x, y, label"),
        "{err}"
    );
    assert!(!out_file.exists());
}
