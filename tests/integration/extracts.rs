//! Extracts of other shapes load through a contract alone: whitespace-separated,
//! fixed-width and header-less files, byte-order marks and CRLF, columns by position, joined
//! and constant columns, line totals and costs, customer-day baskets, customer and product
//! attributes carried on order lines. Expected values are computed here from the raw text.

use std::collections::HashSet;
use std::path::Path;

use crate::support::{dataset, ecrm_ok, repo, scalar, sql};

/// Thousandths of a decimal text such as `11.77` or `-0.5`.
fn milli(text: &str) -> i128 {
    let (sign, t) = match text.strip_prefix('-') {
        Some(t) => (-1, t),
        None => (1, text),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    assert!(frac.len() <= 3, "{text}");
    sign * (int.parse::<i128>().unwrap() * 1000 + format!("{frac:0<3}").parse::<i128>().unwrap())
}

fn money(milli: i128) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    format!("{sign}{}.{:03}", milli.abs() / 1000, milli.abs() % 1000)
}

/// Writes `files` (name, bytes) and a contract into a folder; ingests; returns the warehouse.
fn load(dir: &Path, contract: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let c = dir.join("contract.toml");
    std::fs::write(&c, contract).unwrap();
    let wh = dir.join("wh");
    ecrm_ok(&wh, &["ingest", "--contract", c.to_str().unwrap()]);
    wh
}

/// What the CDNOW log holds, read from the raw text: lines, customers, revenue in
/// thousandths, lines repeating an earlier line, lines of $0.00, customer-days.
fn cdnow_figures(
    path: &Path,
    header: bool,
    customer_field: usize,
) -> (u64, usize, i128, u64, u64, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut lines, mut revenue, mut repeats, mut zero) = (0u64, 0i128, 0u64, 0u64);
    let (mut customers, mut seen, mut days) = (HashSet::new(), HashSet::new(), HashSet::new());
    for line in text.lines().skip(usize::from(header)) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        lines += 1;
        let n = f.len();
        let dollars = milli(f[n - 1]);
        revenue += dollars;
        zero += u64::from(dollars == 0);
        repeats += u64::from(!seen.insert(line.to_string()));
        customers.insert(f[customer_field].to_string());
        days.insert((f[customer_field].to_string(), f[n - 3].to_string()));
    }
    (lines, customers.len(), revenue, repeats, zero, days.len())
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn cdnow_master_loads_every_line_through_its_contract() {
    let Some(file) = dataset("cdnow/CDNOW_master.txt") else {
        return;
    };
    let (lines, customers, revenue, repeats, zero, days) = cdnow_figures(&file, true, 0);
    assert_eq!(
        (lines, customers, revenue, repeats, zero),
        (69_659, 23_570, 2_500_315_630, 255, 80),
        "the published figures"
    );
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/cdnow.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
    // Every line accounted for: the 255 repeats are real orders, kept.
    assert_eq!(
        sql(
            &wh,
            "SELECT rows_read, rows_loaded, rows_rejected, duplicates FROM loads"
        ),
        vec![vec!["69659", "69659", "0", "0"]]
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT COUNT(*), COUNT(DISTINCT customer_id), SUM(revenue), \
             COUNT(DISTINCT invoice_no), SUM(CASE WHEN revenue = 0 THEN 1 ELSE 0 END), \
             MIN(invoice_ts), MAX(invoice_ts) FROM fact_sales"
        ),
        vec![vec![
            lines.to_string(),
            customers.to_string(),
            money(revenue),
            days.to_string(),
            zero.to_string(),
            "1997-01-01T00:00:00".to_string(),
            "1998-06-30T00:00:00".to_string(),
        ]]
    );
    // A basket is a customer's day; the line total is the revenue, the unit price derived.
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, quantity, unit_price, revenue, product_id FROM fact_sales \
             WHERE customer_id = '00002' ORDER BY record"
        ),
        vec![
            vec!["00002|1997-01-12", "1", "12.000", "12.000", "CD"],
            vec!["00002|1997-01-12", "5", "15.400", "77.000", "CD"],
        ]
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_customer WHERE customer_key > 0"
        ),
        customers.to_string()
    );
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn cdnow_sample_loads_as_fixed_width_without_a_header() {
    let Some(file) = dataset("cdnow/CDNOW_sample.txt") else {
        return;
    };
    let (lines, customers, revenue, _, _, days) = cdnow_figures(&file, false, 0);
    assert_eq!((lines, customers), (6_919, 2_357), "the published figures");
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/cdnow-sample.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
    assert_eq!(
        sql(
            &wh,
            "SELECT COUNT(*), COUNT(DISTINCT customer_id), SUM(revenue), COUNT(DISTINCT invoice_no) \
             FROM fact_sales"
        ),
        vec![vec![
            lines.to_string(),
            customers.to_string(),
            money(revenue),
            days.to_string(),
        ]]
    );
}

#[test]
fn whitespace_files_with_a_byte_order_mark_and_crlf_load() {
    let dir = tempfile::tempdir().unwrap();
    let contract = r#"
[sources.log]
entity = "order_line"
path = "log.txt"
delimiter = "whitespace"
basket = "customer_day"
[sources.log.columns]
customer_id = { from = "cust" }
invoice_ts = { from = "day", formats = ["%Y%m%d"] }
product_id = { value = "CD" }
quantity = { from = "n" }
line_total = { from = "dollars" }
"#;
    let file = b"\xEF\xBB\xBF cust  day n  dollars\r\n 00001 19970101  1   11.77\r\n\r\n\t00001\t19970101 2 0.025 \r\n 00002 19970102 3 10.00\r\n 00003 19970102 3\r\n";
    let wh = load(dir.path(), contract, &[("log.txt", file)]);
    assert_eq!(
        sql(
            &wh,
            "SELECT rows_read, rows_loaded, rows_rejected FROM loads"
        ),
        vec![vec!["4", "3", "1"]]
    );
    assert_eq!(
        sql(&wh, "SELECT line, reason, detail FROM rejects"),
        vec![vec!["6", "ragged_line", "3 fields, the header has 4"]]
    );
    // 0.025 / 2 = 0.0125 → 0.012 (half to even); 10.00 / 3 = 3.333…; revenue stays exact.
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, quantity, unit_price, revenue FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["00001|1997-01-01", "1", "11.770", "11.770"],
            vec!["00001|1997-01-01", "2", "0.012", "0.025"],
            vec!["00002|1997-01-02", "3", "3.333", "10.000"],
        ]
    );
}

#[test]
fn fixed_width_columns_by_position_and_by_span() {
    let dir = tempfile::tempdir().unwrap();
    // Columns 1 (id, 5 bytes), 2 (date, 8), 3 (quantity, 3), then the price at bytes 17-22
    // given by its own start and width; the last line is right-trimmed.
    let contract = r#"
[sources.f]
entity = "order_line"
path = "f.txt"
format = "fixed"
header = false
widths = [5, 8, 3]
[sources.f.columns]
invoice_no = { from = [1, 2], join = "-" }
customer_id = { from = 1 }
invoice_ts = { from = 2, formats = ["%Y%m%d"] }
quantity = { from = 3 }
unit_price = { start = 17, width = 6 }
product_id = { value = "X" }
"#;
    let file = b"A000120110102002 1.500\nB000220110103  1  2.25\nC0003201101040010.1\n";
    let wh = load(dir.path(), contract, &[("f.txt", file)]);
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, customer_id, quantity, unit_price, revenue FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["A0001-20110102", "A0001", "2", "1.500", "3.000"],
            vec!["B0002-20110103", "B0002", "1", "2.250", "2.250"],
            vec!["C0003-20110104", "C0003", "1", "0.100", "0.100"],
        ]
    );
}

#[test]
fn headerless_csv_takes_columns_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let contract = r#"
[sources.t]
entity = "order_line"
path = "t.csv"
header = false
[sources.t.columns]
invoice_no = { from = 1 }
invoice_ts = { from = 2, formats = ["%m/%d/%Y"] }
customer_id = { from = 3 }
product_id = { from = 4 }
quantity = { from = 5 }
unit_price = { from = 6 }
channel = { value = "store" }
"#;
    let file = b"\xEF\xBB\xBF\"1\",\"1/2/2011\",\"c1\",\"p1\",\"2\",\"1.25\"\r\n\"2\",\"12/31/2011\",\"\",\"p2\",\"1\",\"3\"\r\n";
    let wh = load(dir.path(), contract, &[("t.csv", file)]);
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, invoice_ts, customer_id, product_id, revenue, channel FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["1", "2011-01-02T00:00:00", "c1", "p1", "2.500", "store"],
            vec!["2", "2011-12-31T00:00:00", "NULL", "p2", "3.000", "store"],
        ]
    );
}

/// A flat extract: customer and product attributes on every line, costs per line, baskets
/// by customer and day; two deliveries, the second changing one customer's age band. A line
/// out of time order does not make its values the customer's current ones.
#[test]
fn attributes_on_order_lines_feed_the_dimensions_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let contract = r#"
[sources.flat]
entity = "order_line"
path = "flat"
basket = "customer_day"
[sources.flat.columns]
customer_id = { from = "CUST" }
invoice_ts = { from = "DAY", formats = ["%m/%d/%Y"] }
product_id = { from = "SKU" }
category = { from = "CAT" }
subcategory = { from = "SUB" }
quantity = { from = "QTY" }
line_total = { from = "TOTAL" }
line_cost = { from = "COST" }
age_band = { from = "AGE" }
region = { from = "AREA" }
"#;
    let head = "CUST,DAY,SKU,CAT,SUB,QTY,TOTAL,COST,AGE,AREA\n";
    std::fs::create_dir(dir.path().join("flat")).unwrap();
    let day1 = format!(
        "{head}c1,1/2/2011,p1,Food,F1,3,10.00,6.00,25-34,North\n\
         c1,1/2/2011,p2,Drink,D1,1,2.50,,25-34,North\n\
         c2,1/3/2011,p1,Food,F1,2,7.00,4.01,45-54,South\n\
         c2,1/1/2011,p1,Food,F1,1,3.50,2.00,45-54,East\n\
         ,1/3/2011,p2,Drink,D1,1,2.50,1.00,,\n"
    );
    let day2 = format!("{head}c1,2/1/2011,p1,Food,F1,1,3.50,2.00,35-44,North\n");
    let wh = load(dir.path(), contract, &[("flat/day1.csv", day1.as_bytes())]);
    assert_eq!(
        sql(
            &wh,
            "SELECT invoice_no, unit_price, revenue, unit_cost, cost FROM fact_sales ORDER BY record"
        ),
        vec![
            vec!["c1|2011-01-02", "3.333", "10.000", "2.000", "6.000"],
            vec!["c1|2011-01-02", "2.500", "2.500", "NULL", "NULL"],
            vec!["c2|2011-01-03", "3.500", "7.000", "2.005", "4.010"],
            vec!["c2|2011-01-01", "3.500", "3.500", "2.000", "2.000"],
            vec!["guest|flat/day1.csv|5", "2.500", "2.500", "1.000", "1.000"],
        ]
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT product_id, category, subcategory FROM dim_product ORDER BY product_id"
        ),
        vec![vec!["p1", "Food", "F1"], vec!["p2", "Drink", "D1"]]
    );
    std::fs::write(dir.path().join("flat/day2.csv"), day2).unwrap();
    let c = dir.path().join("contract.toml");
    ecrm_ok(&wh, &["ingest", "--contract", c.to_str().unwrap()]);
    assert_eq!(
        sql(
            &wh,
            "SELECT customer_id, age_band, region, is_current FROM dim_customer \
             WHERE customer_key > 0 ORDER BY customer_key"
        ),
        vec![
            vec!["c1", "25-34", "North", "false"],
            vec!["c2", "45-54", "South", "true"],
            vec!["c1", "35-44", "North", "true"],
        ]
    );
    // Each sale is read with the band its customer had that day.
    assert_eq!(
        sql(
            &wh,
            "SELECT c.age_band, SUM(f.revenue) FROM fact_sales f JOIN dim_customer c \
             ON c.customer_key = f.customer_key WHERE f.customer_key > 0 \
             GROUP BY c.age_band ORDER BY c.age_band"
        ),
        vec![
            vec!["25-34", "12.500"],
            vec!["35-44", "3.500"],
            vec!["45-54", "10.500"],
        ]
    );
}
