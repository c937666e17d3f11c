//! UCI Online Retail through pipelines/online-retail.toml, checked against figures computed
//! here from the raw file, independently of the ETL code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::support::{dataset, ecrm, ecrm_ok, repo, scalar, sql};

/// What the warehouse must hold, computed from the raw CSV with the contract's rules written
/// out by hand: exact duplicates dropped, negative quantities outside C invoices and negative
/// prices rejected.
struct Expected {
    read: u64,
    duplicates: u64,
    stock_adjustments: u64,
    negative_prices: u64,
    loaded: u64,
    /// Sum of quantity × price in thousandths of a pound.
    revenue_milli: i128,
    invoices: usize,
    customers: usize,
    products: usize,
    countries: usize,
    /// Revenue in thousandths by country and by month (YYYY-MM of the invoice date).
    revenue_by_country: BTreeMap<String, i128>,
    revenue_by_month: BTreeMap<String, i128>,
    /// Raw text by record number, for the rejected rows.
    rejected_raw: HashMap<u64, String>,
}

fn milli(price: &str) -> i128 {
    let neg = price.starts_with('-');
    let p = price.trim_start_matches('-');
    let (int, frac) = p.split_once('.').unwrap_or((p, ""));
    assert!(frac.len() <= 3, "{price}");
    let v = int.parse::<i128>().unwrap() * 1000 + format!("{frac:0<3}").parse::<i128>().unwrap();
    if neg { -v } else { v }
}

fn expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seen = HashSet::new();
    let mut e = Expected {
        read: 0,
        duplicates: 0,
        stock_adjustments: 0,
        negative_prices: 0,
        loaded: 0,
        revenue_milli: 0,
        invoices: 0,
        customers: 0,
        products: 0,
        countries: 0,
        revenue_by_country: BTreeMap::new(),
        revenue_by_month: BTreeMap::new(),
        rejected_raw: HashMap::new(),
    };
    let (mut inv, mut cust, mut prod, mut country) = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    let mut lines = text.lines();
    lines.next(); // header
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.unwrap();
        let raw_line = lines.next().unwrap();
        e.read += 1;
        let fields: Vec<String> = rec.iter().map(String::from).collect();
        if !seen.insert(fields.clone()) {
            e.duplicates += 1;
            continue;
        }
        let (invoice, code, qty, price, customer, ctry) = (
            &fields[0], &fields[1], &fields[3], &fields[5], &fields[6], &fields[7],
        );
        let q: i128 = qty.parse().unwrap();
        let p = milli(price);
        if q < 0 && !invoice.starts_with('C') {
            e.stock_adjustments += 1;
            e.rejected_raw.insert(i as u64 + 1, raw_line.to_string());
            continue;
        }
        if p < 0 {
            e.negative_prices += 1;
            e.rejected_raw.insert(i as u64 + 1, raw_line.to_string());
            continue;
        }
        e.loaded += 1;
        e.revenue_milli += q * p;
        *e.revenue_by_country
            .entry(ctry.trim().to_string())
            .or_default() += q * p;
        *e.revenue_by_month
            .entry(fields[4][..7].to_string())
            .or_default() += q * p;
        inv.insert(invoice.clone());
        if !customer.is_empty() {
            cust.insert(customer.trim_end_matches(".0").to_string());
        }
        prod.insert(code.trim().to_uppercase());
        country.insert(ctry.trim().to_string());
    }
    e.invoices = inv.len();
    e.customers = cust.len();
    e.products = prod.len();
    e.countries = country.len();
    e
}

impl Expected {
    /// What [`fact_totals`] must read.
    fn fact_totals(&self) -> Vec<String> {
        vec![
            self.loaded.to_string(),
            money(self.revenue_milli),
            self.invoices.to_string(),
            self.customers.to_string(),
            self.products.to_string(),
            self.countries.to_string(),
        ]
    }
}

fn money(milli: i128) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    format!("{sign}{}.{:03}", milli.abs() / 1000, milli.abs() % 1000)
}

/// The fact totals the two loading paths must agree on.
fn fact_totals(wh: &Path) -> Vec<String> {
    sql(
        wh,
        "SELECT COUNT(*), SUM(revenue), COUNT(DISTINCT invoice_no), COUNT(DISTINCT customer_id), \
         COUNT(DISTINCT product_id), COUNT(DISTINCT country) FROM fact_sales",
    )
    .remove(0)
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn online_retail_loads_with_exact_accounting() {
    let Some(csv) = dataset("online-retail/online_retail.csv") else {
        return;
    };
    let e = expected(&csv);
    assert_eq!(
        (e.read, e.duplicates),
        (541_909, 5_268),
        "the published figures"
    );

    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/online-retail.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);

    let loads = sql(
        &wh,
        "SELECT rows_read, rows_loaded, rows_rejected, duplicates FROM loads",
    );
    assert_eq!(
        loads,
        vec![vec![
            e.read.to_string(),
            e.loaded.to_string(),
            (e.stock_adjustments + e.negative_prices).to_string(),
            e.duplicates.to_string()
        ]]
    );
    assert_eq!(
        e.read,
        e.loaded + e.stock_adjustments + e.negative_prices + e.duplicates
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY reason"
        ),
        vec![
            vec!["out_of_range".to_string(), e.negative_prices.to_string()],
            vec![
                "stock_adjustment".to_string(),
                e.stock_adjustments.to_string()
            ],
        ]
    );
    // Every reject quotes its raw line under its record number.
    for row in sql(&wh, "SELECT record, raw FROM rejects") {
        let record: u64 = row[0].parse().unwrap();
        assert_eq!(
            Some(&row[1]),
            e.rejected_raw.get(&record),
            "record {record}"
        );
    }
    assert_eq!(fact_totals(&wh), e.fact_totals());
    // Guests count in revenue under the unknown member; customer counts exclude it.
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(DISTINCT customer_key) FROM fact_sales WHERE customer_key > 0"
        ),
        e.customers.to_string()
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM dim_customer WHERE is_current AND customer_key > 0"
        ),
        e.customers.to_string()
    );
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM dim_product"),
        e.products.to_string()
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM fact_sales f LEFT JOIN dim_product p USING (product_key) WHERE p.product_id IS NULL"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM fact_sales f LEFT JOIN dim_date d USING (date_key) WHERE d.date IS NULL"
        ),
        "0"
    );
    // Loading the same file again changes nothing.
    let before = std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap();
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
    assert_eq!(
        before,
        std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap()
    );

    // The cube model answers revenue by country and by month, with the grand total, as the
    // raw rows say.
    for (level, by) in [
        ("country", &e.revenue_by_country),
        ("month", &e.revenue_by_month),
    ] {
        let mut want: Vec<(String, String)> =
            by.iter().map(|(k, v)| (k.clone(), money(*v))).collect();
        want.push(("All".to_string(), money(e.revenue_milli)));
        assert_eq!(cube_revenue(&wh, level), want, "revenue by {level}");
    }

    // Customer value: BG/NBD and Gamma-Gamma converge on Online Retail without a penalty;
    // the Pareto/NBD's likelihood rises as its dropout rate goes to 0 (lifetimes returns
    // s = 1.6e-8 there without a word), and ecrm says so.
    let model = dir.path().join("clv.json");
    let m = model.to_str().unwrap();
    let out = ecrm_ok(&wh, &["clv", "train", "--model", m]);
    assert!(out.contains("converged"), "{out}");
    let pareto = ecrm(
        &wh,
        &["clv", "train", "--method", "pareto-nbd", "--model", m],
    );
    let e = String::from_utf8_lossy(&pareto.stderr);
    assert!(e.contains("no maximum inside the model"), "{e}");
}

/// `ecrm cube --cube online-retail --rows LEVEL --subtotals rollup` as (member, revenue).
fn cube_revenue(wh: &Path, level: &str) -> Vec<(String, String)> {
    let cubes = repo().join("pipelines/cubes");
    let out = ecrm_ok(
        wh,
        &[
            "cube",
            "--cube",
            "online-retail",
            "--cubes-dir",
            cubes.to_str().unwrap(),
            "--rows",
            level,
            "--measures",
            "revenue",
            "--subtotals",
            "rollup",
            "--format",
            "csv",
        ],
    );
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(rdr.headers().unwrap(), vec![level, "revenue"]);
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string())
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn online_retail_daily_files_add_up_to_the_single_file() {
    let (Some(csv), Some(days)) = (
        dataset("online-retail/online_retail.csv"),
        dataset("online-retail/by-day"),
    ) else {
        return;
    };
    let e = expected(&csv);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract =
        ecrm::ingest::contract::Contract::load(&repo().join("pipelines/online-retail.toml"))
            .unwrap();
    let files = ecrm::ingest::resolve_files(&days).unwrap();
    assert_eq!(files.len(), 305);
    for f in &files {
        let opts = ecrm::ingest::IngestOptions {
            inputs: vec![(None, f.clone())],
            ..Default::default()
        };
        let s = ecrm::ingest::ingest(&wh, &contract, &opts).unwrap();
        assert!(s.load_id.is_some(), "{} was not loaded", f.display());
    }
    assert_eq!(fact_totals(&wh), e.fact_totals());
    assert_eq!(scalar(&wh, "SELECT COUNT(*) FROM loads"), "305");
    assert_eq!(
        scalar(&wh, "SELECT SUM(duplicates) FROM loads"),
        e.duplicates.to_string()
    );

    // Loading any of them again changes nothing.
    let before = std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap();
    for f in [&files[0], &files[150], &files[304]] {
        let opts = ecrm::ingest::IngestOptions {
            inputs: vec![(None, f.clone())],
            ..Default::default()
        };
        let s = ecrm::ingest::ingest(&wh, &contract, &opts).unwrap();
        assert_eq!(s.load_id, None);
        assert_eq!(s.files[0].status, "already_loaded");
    }
    assert_eq!(
        before,
        std::fs::read_to_string(wh.join("_ecrm/CURRENT")).unwrap()
    );
}

/// Recency, frequency and monetary of one customer, computed from the raw CSV.
#[derive(Debug, Default, Clone)]
struct Rfm {
    last_purchase: Option<chrono::NaiveDate>,
    invoices: HashSet<String>,
    monetary_milli: i128,
    /// Has a purchase line with quantity > 0 and unit price > 0 (the literature's subset).
    clean: bool,
}

/// The RFM grid of README's "RFM segments" table, written out again here as data, so the
/// test does not share the code under test: rows R = 5 down to 1, columns F = 1 to 5.
const GRID: [[&str; 5]; 5] = [
    [
        "New",
        "Potential loyalist",
        "Potential loyalist",
        "Champions",
        "Champions",
    ],
    [
        "Promising",
        "Potential loyalist",
        "Potential loyalist",
        "Loyal",
        "Loyal",
    ],
    [
        "About to sleep",
        "About to sleep",
        "Need attention",
        "Loyal",
        "Loyal",
    ],
    [
        "Hibernating",
        "Hibernating",
        "At risk",
        "At risk",
        "Can't lose them",
    ],
    [
        "Lost",
        "Hibernating",
        "At risk",
        "At risk",
        "Can't lose them",
    ],
];

/// Quintile score: 1 + floor(5 × (customers strictly worse) / n); `better` says whether a
/// larger value is better.
fn scores(values: &[i128], better_larger: bool) -> Vec<i64> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = values.len() as i128;
    values
        .iter()
        .map(|v| {
            let worse = if better_larger {
                sorted.partition_point(|x| x < v)
            } else {
                sorted.len() - sorted.partition_point(|x| x <= v)
            } as i128;
            (1 + 5 * worse / n) as i64
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn online_retail_rfm_matches_an_independent_computation() {
    let Some(csv) = dataset("online-retail/online_retail.csv") else {
        return;
    };
    // The raw file with the contract's rules written out by hand (as in `expected`).
    let mut seen = HashSet::new();
    let mut by_customer: BTreeMap<String, Rfm> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(&csv).unwrap();
    for rec in rdr.records() {
        let f: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        if !seen.insert(f.clone()) {
            continue; // exact duplicate
        }
        let (invoice, qty, ts, price, customer) = (&f[0], &f[3], &f[4], &f[5], &f[6]);
        let q: i128 = qty.parse().unwrap();
        let p = milli(price);
        let is_return = invoice.starts_with('C');
        if (q < 0 && !is_return) || p < 0 || customer.is_empty() {
            continue; // rejected, or a guest line
        }
        let c = by_customer
            .entry(customer.trim_end_matches(".0").to_string())
            .or_default();
        c.monetary_milli += q * p;
        if !is_return {
            let day = chrono::NaiveDate::parse_from_str(&ts[..10], "%Y-%m-%d").unwrap();
            c.last_purchase = c.last_purchase.max(Some(day));
            c.invoices.insert(invoice.clone());
            c.clean |= q > 0 && p > 0;
        }
    }
    let all_customers = by_customer.len();
    by_customer.retain(|_, c| c.last_purchase.is_some());
    let returns_only = all_customers - by_customer.len();
    let clean = by_customer.values().filter(|c| c.clean).count();
    assert_eq!(clean, 4_338, "the literature's clean subset");
    let as_of = chrono::NaiveDate::from_ymd_opt(2011, 12, 10).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let contract = repo().join("pipelines/online-retail.toml");
    ecrm_ok(&wh, &["ingest", "--contract", contract.to_str().unwrap()]);
    let summary = ecrm_ok(&wh, &["features", "--format", "csv"]);
    assert_eq!(
        summary.lines().nth(1).unwrap(),
        format!(
            "customer_features,2011-12-10,{},{returns_only},133699",
            by_customer.len()
        )
    );
    // The mart's population is the clean subset plus customers whose purchases all have a
    // unit price of 0 (README, "Feature mart").
    assert_eq!(by_customer.len(), clean + 1);

    let mart = sql(
        &wh,
        "SELECT customer_id, recency_days, frequency, monetary FROM customer_features ORDER BY customer_id",
    );
    let expected: Vec<Vec<String>> = by_customer
        .iter()
        .map(|(id, c)| {
            vec![
                id.clone(),
                (as_of - c.last_purchase.unwrap()).num_days().to_string(),
                c.invoices.len().to_string(),
                money(c.monetary_milli),
            ]
        })
        .collect();
    assert_eq!(mart.len(), expected.len());
    for (m, e) in mart.iter().zip(&expected) {
        assert_eq!(m, e, "customer {}", e[0]);
    }

    // RFM segments, counted independently.
    let recency: Vec<i128> = expected.iter().map(|e| e[1].parse().unwrap()).collect();
    let frequency: Vec<i128> = expected.iter().map(|e| e[2].parse().unwrap()).collect();
    let (r, f) = (scores(&recency, false), scores(&frequency, true));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (r, f) in r.iter().zip(&f) {
        *counts
            .entry(GRID[(5 - r) as usize][(f - 1) as usize].to_string())
            .or_default() += 1;
    }
    ecrm_ok(&wh, &["segment", "--method", "rfm"]);
    let got: BTreeMap<String, usize> = sql(
        &wh,
        "SELECT segment_name, count(*) FROM segments GROUP BY segment_name",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect();
    assert_eq!(got, counts);
    assert_eq!(counts.len(), 11, "every named segment is used: {counts:?}");
}
