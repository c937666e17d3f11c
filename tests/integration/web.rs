//! Web activity: the two real click-streams through their contracts, with every figure
//! computed in the test from the raw file (and checked against the PROVENANCE.md figures);
//! sessions cut at idle gaps, visitors stitched to customers, funnels with a window.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{dataset, ecrm, ecrm_ok, repo, sql};

/// CSV text (header first) as records of `sep`-separated fields (no quoting in these files).
fn records(text: &str, sep: char) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let header = lines.next().unwrap().split(sep).map(String::from).collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(sep).map(String::from).collect())
        .collect();
    (header, rows)
}

fn ingest(wh: &Path, contract: &Path) {
    ecrm_ok(wh, &["ingest", "--contract", contract.to_str().unwrap()]);
}

/// One column of a CSV printout, as text, row by row.
fn csv_column(out: &str, name: &str) -> Vec<String> {
    let (header, rows) = records(out, ',');
    let i = header.iter().position(|h| h == name).unwrap();
    rows.into_iter().map(|r| r[i].clone()).collect()
}

/// The e-shop's clicks per session in click order: (session, [(page, category)]).
fn eshop_sessions(file: &Path) -> BTreeMap<u32, Vec<(u32, u32)>> {
    let (header, rows) = records(&std::fs::read_to_string(file).unwrap(), ';');
    let at = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (sid, order, page, cat) = (
        at("session ID"),
        at("order"),
        at("page"),
        at("page 1 (main category)"),
    );
    let mut by: BTreeMap<u32, Vec<(u32, u32, u32)>> = BTreeMap::new();
    for r in &rows {
        let n = |i: usize| r[i].parse::<u32>().unwrap();
        by.entry(n(sid))
            .or_default()
            .push((n(order), n(page), n(cat)));
    }
    by.into_iter()
        .map(|(s, mut clicks)| {
            clicks.sort();
            (s, clicks.into_iter().map(|(_, p, c)| (p, c)).collect())
        })
        .collect()
}

/// Sessions reaching page ≥ k for k = 1…5: any click there (`distinct` false), or each
/// step a later click than the step before, taken greedily (`distinct` true).
fn depth_funnel(sessions: &BTreeMap<u32, Vec<(u32, u32)>>, distinct: bool) -> Vec<u64> {
    let mut reach = vec![0u64; 5];
    for clicks in sessions.values() {
        let deepest = if distinct {
            let mut k = 0;
            for &(page, _) in clicks {
                if k < 5 && page as usize > k {
                    k += 1;
                }
            }
            k
        } else {
            clicks.iter().map(|&(p, _)| p as usize).max().unwrap()
        };
        for r in reach.iter_mut().take(deepest) {
            *r += 1;
        }
    }
    reach
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn eshop_clothing_sessions_funnels_and_paths_match_the_raw_file() {
    let Some(file) = dataset("eshop-clothing/eshop-clothing-2008.csv") else {
        return;
    };
    let raw = eshop_sessions(&file);
    let clicks: usize = raw.values().map(Vec::len).sum();
    let mut lengths: Vec<usize> = raw.values().map(Vec::len).collect();
    lengths.sort();
    let (longest_id, longest) = raw.iter().max_by_key(|(_, c)| c.len()).unwrap();
    let one_click = lengths.iter().filter(|&&n| n == 1).count();
    // The raw file's figures are those PROVENANCE.md publishes.
    assert_eq!((clicks, raw.len(), one_click), (165_474, 24_026, 5_042));
    assert_eq!((*longest_id, longest.len()), (22_433, 195));
    let n = lengths.len();
    let median = (lengths[(n - 1) / 2] + lengths[n / 2]) as f64 / 2.0;
    assert_eq!(median, 4.0);

    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    ingest(&wh, &repo().join("pipelines/eshop-clothing.toml"));
    let counts = sql(
        &wh,
        "SELECT count(*) AS events, count(DISTINCT session_id), min(event_ts), max(event_ts),
           (SELECT count(*) FROM rejects) AS rejects FROM fact_web_event",
    );
    assert_eq!(
        counts[0],
        [
            "165474",
            "24026",
            "2008-04-01T00:00:00",
            "2008-08-13T00:00:00",
            "0"
        ]
    );

    let out = ecrm_ok(&wh, &["web", "sessions"]);
    assert!(out.starts_with("24026 sessions of 165474 events"), "{out}");
    let s = sql(
        &wh,
        "SELECT count(*) AS sessions, sum(CASE WHEN events = 1 THEN 1 ELSE 0 END), max(events),
           (SELECT session_id FROM web_sessions ORDER BY events DESC LIMIT 1) AS longest,
           median(events)
         FROM web_sessions",
    );
    assert_eq!(s[0][..4], ["24026", "5042", "195", "22433"]);
    assert_eq!(s[0][4].parse::<f64>().unwrap(), median);

    let steps = "page>=1,page>=2,page>=3,page>=4,page>=5";
    for (distinct, published) in [
        (false, [24_026, 14_504, 9_125, 4_779, 1_631]),
        (true, [24_026, 12_763, 6_894, 3_076, 871]),
    ] {
        let expected = depth_funnel(&raw, distinct);
        assert_eq!(expected, published, "the raw file's funnel");
        let mut args = vec!["web", "funnel", "--steps", steps, "--format", "csv"];
        if distinct {
            args.push("--distinct-events");
        }
        let got: Vec<u64> = csv_column(&ecrm_ok(&wh, &args), "entrants")
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(got, expected, "distinct events: {distinct}");
    }

    // Consecutive clicks' main categories: the top transition, counted from the raw file.
    let mut pairs: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for c in raw.values() {
        for w in c.windows(2) {
            *pairs.entry((w[0].1, w[1].1)).or_default() += 1;
        }
    }
    let (top, n) = pairs.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_eq!((*top, *n), ((1, 1), 34_598));
    let out = ecrm_ok(
        &wh,
        &[
            "web",
            "paths",
            "--show",
            "transitions",
            "--level",
            "category",
            "--top",
            "1",
            "--format",
            "csv",
        ],
    );
    let (_, rows) = records(&out, ',');
    assert_eq!(rows[0][..3], ["trousers", "trousers", "34598"]);

    // Sequential patterns over the sessions' categories: every pattern of one or two clicks
    // in at least 5% of sessions (1,202 of 24,026), counted from the raw file: sessions with
    // the category, and with one category at a click and another at a later click (or, with
    // a gap of 1, at the next click).
    let name = |c: u32| ["trousers", "skirts", "blouses", "sale"][c as usize - 1];
    for gap in [None, Some(1usize)] {
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for c in raw.values() {
            let cats: Vec<u32> = c.iter().map(|&(_, cat)| cat).collect();
            let mut seen = std::collections::BTreeSet::new();
            for (i, &a) in cats.iter().enumerate() {
                seen.insert(name(a).to_string());
                let later = &cats[i + 1..cats.len().min(i + 1 + gap.unwrap_or(cats.len()))];
                for &b in later {
                    seen.insert(format!("{} -> {}", name(a), name(b)));
                }
            }
            for p in seen {
                *expected.entry(p).or_default() += 1;
            }
        }
        expected.retain(|_, n| *n >= 1_202);
        let mut args = vec![
            "sequence",
            "--source",
            "web",
            "--level",
            "category",
            "--min-support",
            "0.05",
            "--max-len",
            "2",
            "--format",
            "csv",
        ];
        if gap.is_some() {
            args.extend(["--max-gap-days", "1"]);
        }
        let (_, rows) = records(&ecrm_ok(&wh, &args), ',');
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|r| (r[0].clone(), r[3].parse().unwrap()))
            .collect();
        assert_eq!(got, expected, "gap {gap:?}");
        assert!(got.len() > 10, "{got:?}");
    }
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn rees46_sample_loads_with_its_sessions_visitors_and_event_types() {
    let Some(file) = dataset("rees46-sample/2019-Oct-head1000.csv") else {
        return;
    };
    let (header, rows) = records(&std::fs::read_to_string(&file).unwrap(), ',');
    let at = |n: &str| header.iter().position(|h| h == n).unwrap();
    let distinct = |i: usize| {
        rows.iter()
            .map(|r| r[i].clone())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let kind = |k: &str| rows.iter().filter(|r| r[at("event_type")] == k).count();
    let raw = (
        rows.len(),
        distinct(at("user_session")),
        distinct(at("user_id")),
        kind("view"),
        kind("cart"),
        kind("purchase"),
    );
    assert_eq!(
        raw,
        (1_000, 372, 330, 987, 3, 10),
        "PROVENANCE.md's figures"
    );

    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    ingest(&wh, &repo().join("pipelines/rees46-sample.toml"));
    let by_type = sql(
        &wh,
        "SELECT event_type, count(*) FROM fact_web_event GROUP BY event_type ORDER BY 1",
    );
    assert_eq!(
        by_type,
        [
            ["add_to_cart", "3"],
            ["product_view", "987"],
            ["purchase", "10"]
        ]
    );
    let out = ecrm_ok(&wh, &["web", "sessions"]);
    assert!(out.starts_with("372 sessions of 1000 events"), "{out}");
    let s = sql(
        &wh,
        "SELECT (SELECT count(*) FROM web_sessions) AS sessions,
           (SELECT count(*) FROM dim_visitor) AS visitors,
           (SELECT sum(events) FROM web_sessions) AS events,
           (SELECT count(*) FROM web_sessions WHERE converted) AS converted",
    );
    let converted = rows
        .iter()
        .filter(|r| r[at("event_type")] == "purchase")
        .map(|r| r[at("user_session")].clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        s[0],
        [
            "372".to_string(),
            "330".into(),
            "1000".into(),
            converted.to_string()
        ]
    );
}

/// A log without session ids: two visitors' events, one logs in, the other buys an order
/// the warehouse knows; an idle gap of more than 30 minutes cuts a session.
const LOG: &str = "ts,type,visitor,customer,page,invoice
2024-03-01 10:00:00,page_view,v1,,/home,
2024-03-01 10:10:00,product_view,v1,,/p/1,
2024-03-01 11:00:00,page_view,v1,,/home,
2024-03-01 11:05:00,login,v1,C1,/login,
2024-03-01 11:06:00,add_to_cart,v1,C1,/p/1,
2024-03-02 09:00:00,product_view,v2,,/p/2,
2024-03-02 09:20:00,add_to_cart,v2,,/p/2,
2024-03-02 09:30:00,purchase,v2,,/checkout,INV9
2024-03-02 12:00:00,product_view,v3,,/p/2,
";

const LINES: &str = "invoice,ts,customer,product,qty,price
INV9,2024-03-02 09:30:00,C2,P2,2,10.50
";

const CONTRACT: &str = r#"
[sources.web]
entity = "web_event"
path = "log.csv"
[sources.web.columns]
event_ts = { from = "ts", formats = ["%Y-%m-%d %H:%M:%S"] }
event_type = { from = "type" }
visitor_id = { from = "visitor" }
customer_id = { from = "customer" }
page = { from = "page" }
invoice_no = { from = "invoice" }

[sources.lines]
entity = "order_line"
path = "lines.csv"
[sources.lines.columns]
invoice_no = { from = "invoice" }
invoice_ts = { from = "ts", formats = ["%Y-%m-%d %H:%M:%S"] }
customer_id = { from = "customer" }
product_id = { from = "product" }
quantity = { from = "qty" }
unit_price = { from = "price" }
"#;

fn small_warehouse(dir: &Path) -> std::path::PathBuf {
    small_warehouse_with(dir, LINES)
}

/// [`small_warehouse`] with other order lines.
fn small_warehouse_with(dir: &Path, lines: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("log.csv"), LOG).unwrap();
    std::fs::write(dir.join("lines.csv"), lines).unwrap();
    std::fs::write(dir.join("web.toml"), CONTRACT).unwrap();
    let wh = dir.join("wh");
    ingest(&wh, &dir.join("web.toml"));
    wh
}

#[test]
fn idle_gaps_cut_sessions_and_logins_and_orders_stitch_visitors() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path());
    let out = ecrm_ok(&wh, &["web", "sessions"]);
    assert!(
        out.starts_with("4 sessions of 9 events before 2024-03-03 (1 of a single event, 1 converted); 3 visitors, 2 linked to customers"),
        "{out}"
    );
    let s = sql(
        &wh,
        "SELECT session_id, visitor_id, customer_id, events, pages, entry_page, exit_page,
           duration_s, converted, orders, CAST(revenue AS VARCHAR)
         FROM web_sessions ORDER BY session_id",
    );
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s,
        [
            // Before the login: attributed to the customer the visitor became.
            row(&[
                "v1#1", "v1", "C1", "2", "2", "/home", "/p/1", "600", "false", "0", "0.000"
            ]),
            row(&[
                "v1#2", "v1", "C1", "3", "1", "/home", "/p/1", "360", "false", "0", "0.000"
            ]),
            // Linked by the order its purchase event carries.
            row(&[
                "v2#1",
                "v2",
                "C2",
                "3",
                "1",
                "/p/2",
                "/checkout",
                "1800",
                "true",
                "1",
                "21.000"
            ]),
            row(&[
                "v3#1", "v3", "NULL", "1", "1", "/p/2", "/p/2", "0", "false", "0", "0.000"
            ]),
        ]
    );
    let v = sql(
        &wh,
        "SELECT visitor_id, customer_id, CAST(linked_at AS VARCHAR), sessions FROM dim_visitor ORDER BY 1",
    );
    assert_eq!(
        v,
        [
            row(&["v1", "C1", "2024-03-01T11:05:00", "2"]),
            row(&["v2", "C2", "2024-03-02T09:30:00", "1"]),
            row(&["v3", "NULL", "NULL", "1"]),
        ]
    );
    // A longer idle gap keeps v1's visit whole.
    let out = ecrm_ok(&wh, &["web", "sessions", "--idle-minutes", "60"]);
    assert!(out.starts_with("3 sessions"), "{out}");

    // product_view then add_to_cart: v1's first session never adds to the cart, its second
    // only after a product view in the first; v2 does, 20 minutes later.
    let funnel = |extra: &[&str]| {
        let mut args = vec![
            "web",
            "funnel",
            "--steps",
            "product_view,add_to_cart",
            "--format",
            "csv",
        ];
        args.extend_from_slice(extra);
        csv_column(&ecrm_ok(&wh, &args), "entrants")
    };
    assert_eq!(funnel(&[]), ["3", "1"]);
    assert_eq!(funnel(&["--within", "visitor"]), ["3", "2"]);
    // Within 15 minutes of the product view: v2's cart (20 minutes) no longer counts.
    assert_eq!(funnel(&["--within-minutes", "15"]), ["3", "0"]);
    let gaps = csv_column(
        &ecrm_ok(
            &wh,
            &[
                "web",
                "funnel",
                "--steps",
                "product_view,add_to_cart",
                "--format",
                "csv",
            ],
        ),
        "median_seconds_from_previous",
    );
    assert_eq!(gaps, ["", "1200.0"]);
}

/// The mart's web columns, by hand from [`LOG`] with an order of C1's in February (so C1 is
/// a customer of the mart too): C1 visited twice on 1 March (2 + 1 page views, a cart left
/// in the second), C2 once on 2 March (1 view, a cart, bought).
#[test]
fn the_mart_counts_each_customers_web_behaviour_before_the_as_of_date() {
    let dir = tempfile::tempdir().unwrap();
    let lines = format!("{LINES}INV8,2024-02-01 12:00:00,C1,P1,1,5.00\n");
    let wh = small_warehouse_with(dir.path(), &lines);
    let mart = |as_of: &str| {
        ecrm_ok(&wh, &["features", "--as-of", as_of]);
        sql(
            &wh,
            "SELECT customer_id, web_sessions_30d, web_sessions_90d, web_page_views_30d,
               web_page_views_90d, days_since_last_visit, pages_per_session,
               cart_abandonment_rate, visit_to_purchase_rate, last_channel
             FROM customer_features ORDER BY customer_id",
        )
    };
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        mart("2024-03-03"),
        [
            row(&["C1", "2", "2", "3", "3", "2", "1.5", "1.0", "0.0", "NULL"]),
            row(&["C2", "1", "1", "1", "1", "1", "1.0", "0.0", "1.0", "NULL"]),
        ]
    );
    // Before C2's order C2 is no customer; C1's visits are a day old.
    assert_eq!(
        mart("2024-03-02"),
        [row(&[
            "C1", "2", "2", "3", "3", "1", "1.5", "1.0", "0.0", "NULL"
        ])]
    );
    // 30 days later C2's session (2 March) is still inside the 30-day window, C1's (1 March)
    // only inside the 90-day one.
    assert_eq!(
        mart("2024-04-01"),
        [
            row(&["C1", "0", "2", "0", "3", "31", "1.5", "1.0", "0.0", "NULL"]),
            row(&["C2", "1", "1", "1", "1", "30", "1.0", "0.0", "1.0", "NULL"]),
        ]
    );
    // A funnel by segment: product view then cart, per the segment of the session's customer
    // (C1's first session by its stitched visitor, C2's by the order; v3 is anonymous).
    let by_segment = [
        "web",
        "funnel",
        "--steps",
        "product_view,add_to_cart",
        "--by",
        "segment",
    ];
    let out = ecrm(&wh, &by_segment);
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `ecrm segment` first"));
    ecrm_ok(&wh, &["segment", "--method", "rfm"]);
    let seg = sql(
        &wh,
        "SELECT customer_id, segment_name FROM segments ORDER BY 1",
    );
    let (c1, c2) = (seg[0][1].clone(), seg[1][1].clone());
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (member, carts) in [(c1, 0), (c2, 1), ("(anonymous)".to_string(), 0)] {
        let e = expected.entry(member).or_default();
        *e = (e.0 + 1, e.1 + carts);
    }
    let out = ecrm_ok(&wh, &[&by_segment[..], &["--format", "csv"]].concat());
    let (members, entrants) = (csv_column(&out, "segment"), csv_column(&out, "entrants"));
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, m) in members.iter().enumerate().step_by(2) {
        let n = |i: usize| entrants[i].parse::<u64>().unwrap();
        got.insert(m.clone(), (n(k), n(k + 1)));
    }
    assert_eq!(got, expected, "{out}");

    // A warehouse without web events has no web columns.
    let lines_only = &CONTRACT[CONTRACT.find("[sources.lines]").unwrap()..];
    std::fs::write(dir.path().join("lines.toml"), lines_only).unwrap();
    let plain = dir.path().join("plain");
    ingest(&plain, &dir.path().join("lines.toml"));
    ecrm_ok(&plain, &["features"]);
    let out = ecrm(
        &plain,
        &[
            "query",
            "-e",
            "SELECT days_since_last_visit FROM customer_features",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("days_since_last_visit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn web_commands_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path());
    for (args, message) in [
        (
            vec!["web", "funnel", "--steps", "product_view"],
            "at least two steps",
        ),
        (
            vec!["web", "funnel", "--steps", "a,colour=3"],
            "\"colour\" is not a column a step can test",
        ),
        (
            vec!["web", "sessions", "--idle-minutes", "0"],
            "--idle-minutes: 0 is not a gap",
        ),
        (vec!["web", "paths", "--max-len", "0"], "--max-len"),
    ] {
        let out = ecrm(&wh, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(message),
            "{args:?}: {err}"
        );
    }
    let empty = dir.path().join("empty");
    let out = ecrm(&empty, &["web", "sessions"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fact_web_event"), "{err}");
}

/// Erasing a customer takes the visitor ids their purchase linked them to: events and
/// revenue stay, anonymous; their sessions and visitor rows go.
#[test]
fn erasure_takes_the_customers_visitors_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path());
    ecrm_ok(&wh, &["web", "sessions"]);
    ecrm_ok(&wh, &["erase", "--customer", "C2"]);
    let s = sql(
        &wh,
        "SELECT count(*) AS events, count(visitor_id), count(session_id), count(customer_id),
           (SELECT CAST(sum(revenue) AS VARCHAR) FROM fact_sales) AS revenue,
           (SELECT count(*) FROM web_sessions WHERE visitor_id = 'v2') AS sessions,
           (SELECT count(*) FROM dim_visitor WHERE visitor_id = 'v2') AS v2,
           (SELECT count(*) FROM dim_visitor) AS visitors
         FROM fact_web_event",
    );
    // v2's three events stay without a visitor; C1's login and cart keep theirs.
    assert_eq!(s[0], ["9", "6", "0", "2", "21.000", "0", "0", "2"]);
}

/// The sample's click-stream (`ecrm synth`): every purchase event joins its order, the
/// planted funnel rates come back within sampling error, stitched visitors' sessions before
/// their login belong to the customer synth.json names, and the customers planted as
/// "browsed but stopped buying" visit after their last order.
#[test]
fn synth_click_stream_gives_back_what_was_planted() {
    let planted = crate::support::sample_synth()["web"].clone();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    crate::support::copy_dir(crate::support::sample_warehouse(), &wh);

    let joins = sql(
        &wh,
        "SELECT count(*), count(s.invoice_no), count(DISTINCT w.invoice_no)
         FROM fact_web_event w
         LEFT JOIN (SELECT DISTINCT invoice_no FROM fact_sales) s ON s.invoice_no = w.invoice_no
         WHERE w.event_type = 'purchase'",
    );
    let purchases = planted["purchases"].as_u64().unwrap().to_string();
    assert_eq!(joins[0], [purchases.clone(), purchases.clone(), purchases]);

    ecrm_ok(&wh, &["web", "sessions"]);
    let out = ecrm_ok(
        &wh,
        &[
            "web",
            "funnel",
            "--steps",
            "product_view,add_to_cart,checkout,purchase",
            "--format",
            "csv",
        ],
    );
    let e: Vec<f64> = csv_column(&out, "entrants")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    // Sessions of customers browsing after their last order view products only: they are
    // not shopping sessions of the planted funnel.
    let browsing = planted["browse_after_lapse_sessions"].as_f64().unwrap();
    let rates = planted["funnel_rates"].as_array().unwrap();
    let from = [e[0] - browsing, e[1], e[2]];
    for k in 0..3 {
        let p = rates[k].as_f64().unwrap();
        let got = e[k + 1] / from[k];
        let sigma = (p * (1.0 - p) / from[k]).sqrt();
        assert!(
            (got - p).abs() < 4.0 * sigma,
            "step {} → {}: {got:.4} against the planted {p} (σ {sigma:.4}); entrants {e:?}",
            k + 1,
            k + 2
        );
    }

    // The web cube's cells add up to the sessions and their conversions.
    let cube = ecrm_ok(
        &wh,
        &[
            "cube",
            "--cubes-dir",
            repo().join("pipelines/cubes").to_str().unwrap(),
            "--cube",
            "web",
            "--rows",
            "device",
            "--measures",
            "sessions,converted",
            "--format",
            "csv",
        ],
    );
    let total = |c: &str| -> u64 {
        csv_column(&cube, c)
            .iter()
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    };
    let expected = sql(
        &wh,
        "SELECT count(*) AS n, count(*) FILTER (WHERE converted) AS c FROM web_sessions",
    );
    assert_eq!(
        [
            total("sessions").to_string(),
            total("converted").to_string()
        ],
        [expected[0][0].clone(), expected[0][1].clone()]
    );

    // Every session of a customer's device is the customer's, before the login too.
    let visitors = planted["visitors"].as_object().unwrap();
    let sessions = sql(
        &wh,
        "SELECT visitor_id, COALESCE(customer_id, ''), start < (SELECT min(event_ts) FROM fact_web_event f
           WHERE f.visitor_id = s.visitor_id AND f.customer_id IS NOT NULL) AS before_login
         FROM web_sessions s WHERE visitor_id IS NOT NULL",
    );
    let mut before_login = 0;
    for r in &sessions {
        match visitors.get(&r[0]) {
            Some(c) => assert_eq!(r[1], c.as_str().unwrap(), "visitor {}", r[0]),
            None => assert_eq!(r[1], "", "a guest's visitor {} has no customer", r[0]),
        }
        before_login += usize::from(r[2] == "true");
    }
    assert!(before_login > 100, "{before_login} sessions before a login");

    // The planted browsers visit after their last order.
    let after = sql(
        &wh,
        "SELECT count(*) FROM (SELECT s.customer_id FROM web_sessions s
           JOIN (SELECT customer_id, max(invoice_ts) AS last FROM fact_sales WHERE NOT is_return
                 GROUP BY customer_id) o
             ON o.customer_id = s.customer_id
           GROUP BY s.customer_id HAVING max(s.start) > max(o.last))",
    );
    let stopped = planted["browsed_but_stopped_buying"]
        .as_array()
        .unwrap()
        .len();
    assert!(stopped > 10, "{stopped}");
    let n: usize = after[0][0].parse().unwrap();
    assert!(
        n >= stopped,
        "{n} customers browse after their last order, {stopped} planted"
    );
}
