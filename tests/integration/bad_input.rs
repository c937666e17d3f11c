//! Bad input never corrupts the warehouse: each case gives a clear error (exit 2, warehouse
//! unchanged) or reason-coded rejects. The edge-case files are built here and named after
//! their defect.

use std::path::Path;

use crate::support::{ecrm, ecrm_ok, scalar, sql};

const CONTRACT: &str = r#"
[sources.tx]
entity = "order_line"
path = "tx.csv"
cancellation_prefix = "C"
[sources.tx.columns]
invoice_no = { from = "InvoiceNo" }
invoice_ts = { from = "InvoiceDate", formats = ["%Y-%m-%d %H:%M"] }
product_id = { from = "StockCode", case = "upper" }
quantity = { from = "Quantity" }
unit_price = { from = "UnitPrice" }
customer_id = { from = "CustomerID", strip_zero_fraction = true }
[sources.tx.rules]
not_null = ["invoice_no", "invoice_ts", "product_id", "quantity", "unit_price"]
"#;

const HEADER: &str = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n";
const GOOD_ROWS: &str =
    "100001,85123a,6,2011-01-02 08:26,2.55,17850.0\n100001,71053,6,2011-01-02 08:26,3.39,17850.0\n";

struct Case {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Case {
    /// A warehouse holding one good load, and a contract beside it.
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("contract.toml"), CONTRACT).unwrap();
        std::fs::write(root.join("good.csv"), format!("{HEADER}{GOOD_ROWS}")).unwrap();
        let case = Case { _dir: dir, root };
        case.ingest_ok("good.csv");
        case
    }
    fn wh(&self) -> std::path::PathBuf {
        self.root.join("wh")
    }
    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.root.join(name), bytes).unwrap();
    }
    fn args(&self, file: &str) -> Vec<String> {
        vec![
            "ingest".into(),
            "--contract".into(),
            self.root.join("contract.toml").display().to_string(),
            "--input".into(),
            self.root.join(file).display().to_string(),
        ]
    }
    fn ingest_ok(&self, file: &str) -> String {
        let a = self.args(file);
        ecrm_ok(
            &self.wh(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }
    /// Runs an ingest that must fail with exit 2 and leave the warehouse as it was; returns
    /// stderr.
    fn ingest_fails(&self, file: &str) -> String {
        let before = pointer(&self.wh());
        let a = self.args(file);
        let out = ecrm(
            &self.wh(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert_eq!(before, pointer(&self.wh()), "{file}: the warehouse changed");
        assert_eq!(scalar(&self.wh(), "SELECT COUNT(*) FROM fact_sales"), "2");
        err
    }
    fn rejects_of(&self, file: &str) -> Vec<Vec<String>> {
        sql(
            &self.wh(),
            &format!(
                "SELECT record, reason FROM rejects WHERE file LIKE '%{file}' ORDER BY record"
            ),
        )
    }
}

fn pointer(wh: &Path) -> String {
    std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap()
}

#[test]
fn a_missing_file_is_an_error() {
    let c = Case::new();
    let err = c.ingest_fails("missing_file.csv");
    assert!(
        err.contains("missing_file.csv") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn an_empty_file_is_an_error() {
    let c = Case::new();
    c.write("empty_file.csv", b"");
    let err = c.ingest_fails("empty_file.csv");
    assert!(
        err.contains("empty_file.csv: empty file: no header line"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_csv_is_an_error() {
    let c = Case::new();
    c.write(
        "not_csv.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
    );
    let err = c.ingest_fails("not_csv.csv");
    assert!(err.contains("not_csv.csv"), "{err}");
}

#[test]
fn a_column_that_disappeared_is_an_error() {
    let c = Case::new();
    c.write(
        "column_disappeared.csv",
        b"InvoiceNo,StockCode,InvoiceDate,UnitPrice,CustomerID\n100002,71053,2011-01-02 08:26,3.39,\n",
    );
    let err = c.ingest_fails("column_disappeared.csv");
    assert!(
        err.contains("column \"Quantity\" (mapped to quantity by source tx) is not in the header"),
        "{err}"
    );
}

#[test]
fn a_truncated_file_rejects_its_cut_line() {
    let c = Case::new();
    c.write(
        "truncated.csv",
        format!("{HEADER}100003,22423,1,2011-01-03 09:00,12.75,\n100003,2242").as_bytes(),
    );
    c.ingest_ok("truncated.csv");
    assert_eq!(
        c.rejects_of("truncated.csv"),
        vec![vec!["2".to_string(), "ragged_line".to_string()]]
    );
    assert_eq!(scalar(&c.wh(), "SELECT COUNT(*) FROM fact_sales"), "3");
}

#[test]
fn a_wrong_encoding_rejects_the_rows_it_breaks() {
    let c = Case::new();
    // Latin-1 bytes (é = 0xE9) in a file the contract declares UTF-8.
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"100004,CAF\xe9,1,2011-01-04 10:00,1.00,\n100004,22423,1,2011-01-04 10:00,1.00,\n",
    );
    c.write("wrong_encoding.csv", &bytes);
    c.ingest_ok("wrong_encoding.csv");
    assert_eq!(
        c.rejects_of("wrong_encoding.csv"),
        vec![vec!["1".to_string(), "bad_encoding".to_string()]]
    );
    let raw = scalar(
        &c.wh(),
        "SELECT raw FROM rejects WHERE reason = 'bad_encoding'",
    );
    assert!(raw.starts_with("100004,CAF\u{FFFD},1"), "{raw}");
}

#[test]
fn bad_values_are_rejected_with_their_reason_and_detail() {
    let c = Case::new();
    c.write(
        "bad_values.csv",
        format!(
            "{HEADER}\
             100005,22423,two,2011-01-05 10:00,1.00,\n\
             100005,22424,1,05/01/2011,1.00,\n\
             100005,22425,1,2011-01-05 10:00,1.0005,\n\
             ,22426,1,2011-01-05 10:00,1.00,\n\
             100005,22427,0,2011-01-05 10:00,1.00,\n\
             100005,22428,-3,2011-01-05 10:00,1.00,\n\
             C100006,22428,-3,2011-01-05 11:00,1.00,12345.0\n\
             \"100005\",\"22429\",\"2\",\"2011-01-05 10:00\",\"1.50\",\"\"\n"
        )
        .as_bytes(),
    );
    let out = c.ingest_ok("bad_values.csv");
    assert!(out.contains("bad_values.csv"), "{out}");
    assert_eq!(
        sql(
            &c.wh(),
            "SELECT record, reason, detail FROM rejects WHERE file LIKE '%bad_values.csv' ORDER BY record"
        ),
        vec![
            vec!["1", "bad_number", "quantity 'two' is not an integer"],
            vec![
                "2",
                "bad_date",
                "invoice_ts '05/01/2011' matches none of the timestamp formats"
            ],
            vec![
                "3",
                "bad_number",
                "unit_price '1.0005' is not an amount with at most 3 decimals"
            ],
            vec!["4", "missing_value", "invoice_no is empty"],
            vec!["5", "zero_quantity", "quantity is 0"],
            vec![
                "6",
                "stock_adjustment",
                "quantity '-3' is negative outside a cancellation invoice"
            ],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        sql(
            &c.wh(),
            "SELECT invoice_no, product_id, quantity, is_return, customer_id FROM fact_sales WHERE load_id = 2 ORDER BY record"
        ),
        vec![
            vec!["C100006", "22428", "-3", "true", "12345"],
            vec!["100005", "22429", "2", "false", "NULL"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        scalar(
            &c.wh(),
            "SELECT product_id FROM dim_product WHERE product_id LIKE '85123%'"
        ),
        "85123A"
    );
}

#[test]
fn an_ndjson_source_loads_and_rejects_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let contract = CONTRACT
        .replace(
            "path = \"tx.csv\"",
            "path = \"tx.ndjson\"\nformat = \"ndjson\"",
        )
        .replace(
            "%Y-%m-%d %H:%M\"",
            "%Y-%m-%d %H:%M\", \"%Y-%m-%dT%H:%M:%S\"",
        );
    std::fs::write(root.join("contract.toml"), contract).unwrap();
    std::fs::write(
        root.join("tx.ndjson"),
        concat!(
            r#"{"InvoiceNo":"100001","StockCode":"85123a","Quantity":6,"InvoiceDate":"2011-01-02T08:26:00","UnitPrice":2.55,"CustomerID":17850}"#,
            "\n",
            r#"{"InvoiceNo":"100001","StockCode":"85123a","Quantity":6,"InvoiceDate":"2011-01-02T08:26:00","UnitPrice":2.55,"CustomerID":17850}"#,
            "\n\n",
            r#"{"InvoiceNo":"100002","StockCode":"71053","Quantity":1,"InvoiceDate":"2011-01-02 09:00","UnitPrice":"3.39","CustomerID":null}"#,
            "\n",
            "not json at all\n",
            r#"[1, 2]"#,
            "\n",
            r#"{"InvoiceNo":"100003","StockCode":"71053","Quantity":"x","InvoiceDate":"2011-01-02 09:00","UnitPrice":1}"#,
            "\n",
        ),
    )
    .unwrap();
    let wh = ingest_counts(root, [6, 2, 3, 1]);
    assert_eq!(
        sql(&wh, "SELECT record, line, reason, raw FROM rejects ORDER BY record"),
        vec![
            vec!["4", "5", "malformed_record", "not json at all"],
            vec!["5", "6", "malformed_record", "[1, 2]"],
            vec!["6", "7", "bad_number", r#"{"InvoiceNo":"100003","StockCode":"71053","Quantity":"x","InvoiceDate":"2011-01-02 09:00","UnitPrice":1}"#],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT product_id, customer_id, CAST(unit_price AS VARCHAR) FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["85123A", "17850", "2.550"],
            vec!["71053", "NULL", "3.390"]
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
}

#[test]
fn a_parquet_source_loads_through_the_text_of_its_values() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let contract = CONTRACT
        .replace(
            "path = \"tx.csv\"",
            "path = \"tx.parquet\"\nformat = \"parquet\"",
        )
        .replace(
            "%Y-%m-%d %H:%M\"",
            "%Y-%m-%d %H:%M\", \"%Y-%m-%d %H:%M:%S%.f\"",
        )
        .replace(
            "not_null = [",
            "range = { unit_price = { min = 0 } }\nnot_null = [",
        );
    std::fs::write(root.join("contract.toml"), contract).unwrap();
    let mut df = df!(
        "InvoiceNo" => ["100001", "100001", "100001", "100002", "100003"],
        "StockCode" => ["85123a", "71053", "85123a", "22423", "22424"],
        "Quantity" => [6i64, 6, 6, 1, 2],
        "InvoiceDate" => ["2011-01-02 08:26", "2011-01-02 08:26", "2011-01-02 08:26", "2011-01-03 09:00", "2011-01-03 09:00"],
        "UnitPrice" => [2.55f64, 3.39, 2.55, -1.0, 1.25],
        "CustomerID" => [Some(17850.0f64), Some(17850.0), Some(17850.0), None, None],
    )
    .unwrap();
    let file = std::fs::File::create(root.join("tx.parquet")).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
    let wh = ingest_counts(root, [5, 3, 1, 1]);
    assert_eq!(
        sql(&wh, "SELECT record, reason, raw FROM rejects"),
        vec![
            vec!["4", "out_of_range", "100002,22423,1,2011-01-03 09:00,-1.0,"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        ]
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT product_id, customer_id, CAST(unit_price AS VARCHAR), CAST(revenue AS VARCHAR) FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["85123A", "17850", "2.550", "15.300"],
            vec!["71053", "17850", "3.390", "20.340"],
            vec!["22424", "NULL", "1.250", "2.500"]
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
}

/// Ingests `root/contract.toml` into `root/wh`, checks the load's rows read, loaded, rejected
/// and duplicates, and returns the warehouse.
fn ingest_counts(root: &Path, counts: [u64; 4]) -> std::path::PathBuf {
    let wh = root.join("wh");
    let contract = root.join("contract.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
    assert_eq!(
        sql(
            &wh,
            "SELECT rows_read, rows_loaded, rows_rejected, duplicates FROM loads"
        ),
        vec![counts.iter().map(u64::to_string).collect::<Vec<_>>()]
    );
    wh
}
