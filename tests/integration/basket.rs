//! Market-basket rules, recommendations and sequential patterns: published counts on real
//! data (Groceries, FIMI), and synth's planted co-purchases and follow-ups on the sample.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::support::{dataset, ecrm, ecrm_ok, sample_synth, sql};

/// CSV text as header-keyed rows.
fn csv_rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

fn no_warehouse(dir: &Path) -> std::path::PathBuf {
    dir.join("no-warehouse")
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn groceries_rules_match_the_published_arules_counts() {
    let Some(groceries) = dataset("groceries/groceries.csv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = no_warehouse(dir.path());
    let g = groceries.to_str().unwrap();
    let rules = |support: &str, confidence: &str| {
        csv_rows(&ecrm_ok(
            &wh,
            &[
                "basket",
                "rules",
                "--baskets",
                g,
                "--min-support",
                support,
                "--min-confidence",
                confidence,
                "--format",
                "csv",
            ],
        ))
    };
    // arules at support 0.001, confidence 0.5: 5,668 rules; hundreds sit exactly on the
    // 0.5 confidence, so a float comparison gets this wrong.
    let r = rules("0.001", "0.5");
    assert_eq!(r.len(), 5_668);
    let mut by_len: BTreeMap<usize, usize> = BTreeMap::new();
    for row in &r {
        let len: usize = row["antecedent_size"].parse::<usize>().unwrap() + 1;
        assert_eq!(row["consequent_size"], "1");
        *by_len.entry(len).or_default() += 1;
    }
    assert_eq!(
        by_len.into_iter().collect::<Vec<_>>(),
        [(2, 11), (3, 1_461), (4, 3_211), (5, 939), (6, 46)]
    );
    let top = &r[0];
    assert_eq!(top["antecedent"], "Instant food products | soda");
    assert_eq!(top["consequent"], "hamburger meat");
    let lift: f64 = top["lift"].parse().unwrap();
    assert!((lift - 18.9957).abs() < 5e-5, "{lift}");
    // Every row's measures agree with its counts.
    for row in r.iter().take(50) {
        let conf: f64 = row["confidence"].parse().unwrap();
        let support: f64 = row["support"].parse().unwrap();
        let count: f64 = row["count"].parse().unwrap();
        assert!((support - count / 9835.0).abs() < 1e-12);
        assert!(conf >= 0.5);
    }
    assert_eq!(rules("0.005", "0.5").len(), 120);
    assert_eq!(rules("0.006", "0.25").len(), 463);
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn itemset_counts_match_the_published_ones_on_three_data_sets() {
    let dir = tempfile::tempdir().unwrap();
    let wh = no_warehouse(dir.path());
    for (rel, expected) in [
        ("groceries/groceries.csv", 13_492),
        ("fimi/retail.dat", 7_589),
        ("fimi/T10I4D100K.dat", 27_532),
    ] {
        let Some(file) = dataset(rel) else {
            return;
        };
        let out = dir.path().join("itemsets.csv");
        ecrm_ok(
            &wh,
            &[
                "basket",
                "itemsets",
                "--baskets",
                file.to_str().unwrap(),
                "--min-support",
                "0.001",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let rows = csv_rows(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(rows.len(), expected, "{rel}");
        // Sorted by descending count, then by the item text.
        for w in rows.windows(2) {
            let (a, b): (u32, u32) = (
                w[0]["count"].parse().unwrap(),
                w[1]["count"].parse().unwrap(),
            );
            assert!(
                a > b || (a == b && w[0]["items"] < w[1]["items"]),
                "{rel}: {w:?}"
            );
        }
    }
}

#[test]
fn file_layouts_and_parameters_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let wh = no_warehouse(dir.path());
    // The same baskets as lines with a separator, and as a basket-id / item table.
    let lines = dir.path().join("b.txt");
    std::fs::write(&lines, "milk;bread\nmilk;bread;beer\nbeer\n\nmilk ; beer\n").unwrap();
    let pairs = dir.path().join("b.csv");
    std::fs::write(
        &pairs,
        "basket,item\n1,milk\n1,bread\n2,milk\n3,beer\n2,bread\n2,beer\n4,milk\n4,beer\n",
    )
    .unwrap();
    let args = |file: &Path, extra: &[&str]| {
        let mut v = vec![
            "basket".to_string(),
            "itemsets".into(),
            "--baskets".into(),
            file.display().to_string(),
            "--min-support".into(),
            "1/4".into(),
            "--format".into(),
            "csv".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        ecrm_ok(&wh, &v)
    };
    let from_lines = run(args(&lines, &["--separator", ";"]));
    let from_pairs = run(args(&pairs, &["--basket-format", "pairs"]));
    assert_eq!(from_lines, from_pairs);
    assert!(
        from_lines.starts_with("items,size,count,support\nbeer,1,3,0.75\nmilk,1,3,0.75\n"),
        "{from_lines}"
    );

    // Bad parameters are refused before any data is read (the file does not exist).
    for (flag, value, message) in [
        ("--min-support", "0", "--min-support: 0 is out of range"),
        ("--min-support", "1.5", "--min-support: 1.5 is out of range"),
        ("--max-len", "0", "--max-len: must be at least 1"),
    ] {
        let mut a = vec!["basket", "itemsets", "--baskets", "/nonexistent/b.csv"];
        a.extend([flag, value]);
        if flag != "--min-support" {
            a.extend(["--min-support", "0.1"]);
        }
        let out = ecrm(&wh, &a);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{err}");
    }
    let out = ecrm(
        &wh,
        &[
            "basket",
            "rules",
            "--baskets",
            "x.csv",
            "--min-support",
            "ten percent",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a number such as 0.01"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A missing id or item in a pairs table names its row.
    std::fs::write(&pairs, "basket,item\n1,milk\n2,\n").unwrap();
    let out = ecrm(
        &wh,
        &[
            "basket",
            "itemsets",
            "--baskets",
            pairs.to_str().unwrap(),
            "--basket-format",
            "pairs",
            "--min-support",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 2: column \"item\" is empty"), "{err}");
    // The itemset cap stops with advice.
    let out = ecrm(
        &wh,
        &[
            "basket",
            "itemsets",
            "--baskets",
            lines.to_str().unwrap(),
            "--separator",
            ";",
            "--min-support",
            "0.1",
            "--max-itemsets",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("more than 3 frequent itemsets") && err.contains("raise --min-support"),
        "{err}"
    );
    // Item filters must name an item of the baskets.
    let out = ecrm(
        &wh,
        &[
            "basket",
            "rules",
            "--baskets",
            lines.to_str().unwrap(),
            "--separator",
            ";",
            "--min-support",
            "0.1",
            "--antecedent",
            "wine",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--antecedent: no item \"wine\""));
}

#[test]
fn sample_rules_find_the_planted_bundles_and_recommendations_are_new_products() {
    let dir = tempfile::tempdir().unwrap();
    let wh = crate::segments::sample_copy(dir.path());
    let rules = csv_rows(&ecrm_ok(
        &wh,
        &[
            "basket",
            "rules",
            "--min-support",
            "0.005",
            "--min-confidence",
            "0.3",
            "--min-lift",
            "3",
            "--format",
            "csv",
        ],
    ));
    assert!(!rules.is_empty());
    // Every planted co-purchase group shows up as a rule inside the group.
    let groups = sample_synth()["co_purchase_groups"]
        .as_array()
        .unwrap()
        .clone();
    for group in &groups {
        let members: HashSet<&str> = group
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let found = rules.iter().any(|r| {
            r["antecedent"]
                .split(" | ")
                .chain([r["consequent"].as_str()])
                .all(|i| members.contains(i))
        });
        assert!(found, "no rule inside the planted group {members:?}");
    }
    // Services (postage) never appear.
    assert!(
        rules
            .iter()
            .all(|r| !r["antecedent"].contains("POST") && !r["consequent"].contains("POST"))
    );

    let printed = ecrm_ok(&wh, &["basket", "recommend", "--top", "3"]);
    assert!(printed.contains("into table recommendations"), "{printed}");
    // Nobody is recommended a product they bought; ranks run 1, 2, 3 without gaps.
    assert_eq!(
        sql(
            &wh,
            "SELECT count(*) FROM recommendations r JOIN fact_sales f
               ON f.customer_id = r.customer_id AND f.product_id = r.product_id
             WHERE NOT f.is_return"
        ),
        [["0"]]
    );
    assert_eq!(
        sql(
            &wh,
            "SELECT count(*) FROM (SELECT customer_id, max(rank) AS m, count(*) AS n
               FROM recommendations GROUP BY customer_id) WHERE m <> n OR m > 3"
        ),
        [["0"]]
    );
    let n = sql(
        &wh,
        "SELECT count(DISTINCT customer_id) FROM recommendations",
    );
    assert!(n[0][0].parse::<u32>().unwrap() > 100, "{n:?}");
    // Scores fall with rank.
    assert_eq!(
        sql(
            &wh,
            "SELECT count(*) FROM recommendations a JOIN recommendations b
               ON a.customer_id = b.customer_id AND b.rank = a.rank + 1 WHERE b.score > a.score"
        ),
        [["0"]]
    );
    // Exportable like segments, with consent.
    let out_file = dir.path().join("recs.csv");
    let out = ecrm(
        &wh,
        &[
            "export",
            "recommendations",
            "--max-rank",
            "1",
            "--require-consent",
            "email",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = csv_rows(&std::fs::read_to_string(&out_file).unwrap());
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["rank"] == "1"));
    let opted: HashSet<String> = sql(
        &wh,
        &format!(
            "SELECT customer_id FROM {} k WHERE k.email",
            crate::support::consent_now()
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(rows.iter().all(|r| opted.contains(&r["customer_id"])));
}

#[test]
fn sample_sequences_find_the_planted_follow_ups() {
    let dir = tempfile::tempdir().unwrap();
    let wh = crate::segments::sample_copy(dir.path());
    let patterns = csv_rows(&ecrm_ok(
        &wh,
        &[
            "sequence",
            "--min-support",
            "0.005",
            "--max-len",
            "2",
            "--format",
            "csv",
        ],
    ));
    let count = |p: &str| {
        patterns
            .iter()
            .find(|r| r["pattern"] == p)
            .map_or(0, |r| r["count"].parse::<u32>().unwrap())
    };
    // Each follow-up (A now, B on the next visit) is found in that order, and far more often
    // than the other way round.
    for pair in sample_synth()["follow_ups"].as_array().unwrap() {
        let (a, b) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let forward = count(&format!("{a} -> {b}"));
        let backward = count(&format!("{b} -> {a}"));
        assert!(
            forward > 0 && forward > 2 * backward,
            "{a} -> {b}: {forward}, back {backward}"
        );
    }
    // Within 30 days: a pattern can only lose customers, and two-element ones do.
    let close = csv_rows(&ecrm_ok(
        &wh,
        &[
            "sequence",
            "--min-support",
            "0.005",
            "--max-len",
            "2",
            "--max-gap-days",
            "30",
            "--format",
            "csv",
        ],
    ));
    let mut fewer = 0;
    for r in &close {
        let c: u32 = r["count"].parse().unwrap();
        let all = count(&r["pattern"]);
        assert!(
            c <= all,
            "{}: {c} within 30 days, {all} in all",
            r["pattern"]
        );
        fewer += usize::from(c < all);
    }
    assert!(fewer > 0);
    assert!(close.len() < patterns.len());

    // The same sequences from a table file give the same patterns.
    let table = dir.path().join("seq.csv");
    let rows = sql(
        &wh,
        "SELECT f.customer_id, CAST(min(f.invoice_ts) OVER (PARTITION BY f.invoice_no) AS DATE), f.product_id
         FROM fact_sales f WHERE NOT f.is_return AND NOT f.is_service AND f.customer_id IS NOT NULL
         ORDER BY 1",
    );
    let mut text = String::from("customer,day,item\n");
    for r in rows {
        text.push_str(&format!("{},{},{}\n", r[0], r[1], r[2]));
    }
    std::fs::write(&table, text).unwrap();
    let from_file = csv_rows(&ecrm_ok(
        &wh,
        &[
            "sequence",
            "--sequences",
            table.to_str().unwrap(),
            "--min-support",
            "0.005",
            "--max-len",
            "2",
            "--format",
            "csv",
        ],
    ));
    // One-item patterns agree exactly (two-item ones need not: a file has no invoice
    // numbers, so two invoices on one day are one event there).
    let singles = |v: &[HashMap<String, String>]| {
        v.iter()
            .filter(|r| r["items"] == "1")
            .map(|r| (r["pattern"].clone(), r["count"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(singles(&from_file), singles(&patterns));
}

#[test]
fn sequence_files_in_spmf_and_table_form_give_the_papers_patterns() {
    // Pei et al. 2001, table 1, with a..g as 1..7: 53 patterns at support 2 of 4.
    let dir = tempfile::tempdir().unwrap();
    let wh = no_warehouse(dir.path());
    let spmf = dir.path().join("paper.txt");
    std::fs::write(
        &spmf,
        "# a(abc)(ac)d(cf), (ad)c(bc)(ae), (ef)(ab)(df)cb, eg(af)cbc\n\
         1 -1 1 2 3 -1 1 3 -1 4 -1 3 6 -1 -2\n\
         1 4 -1 3 -1 2 3 -1 1 5 -1 -2\n\
         5 6 -1 1 2 -1 4 6 -1 3 -1 2 -1 -2\n\
         5 -1 7 -1 1 6 -1 3 -1 2 -1 3 -1 -2\n",
    )
    .unwrap();
    let run = |file: &Path, extra: &[&str]| {
        let mut a = vec![
            "sequence",
            "--sequences",
            file.to_str().unwrap(),
            "--min-support",
            "0.5",
            "--format",
            "csv",
        ];
        a.extend(extra);
        csv_rows(&ecrm_ok(&wh, &a))
    };
    let from_spmf = run(&spmf, &["--sequence-format", "spmf"]);
    assert_eq!(from_spmf.len(), 53);
    let find = |rows: &[HashMap<String, String>], p: &str| {
        rows.iter()
            .find(|r| r["pattern"] == p)
            .map(|r| r["count"].clone())
    };
    assert_eq!(find(&from_spmf, "1 | 2 -> 3").as_deref(), Some("2"));
    assert_eq!(find(&from_spmf, "1 -> 2 | 3 -> 1").as_deref(), Some("2"));

    // The same as a table, one event a day.
    let table = dir.path().join("paper.csv");
    let mut text = String::from("sequence,day,item\n");
    for (s, line) in std::fs::read_to_string(&spmf)
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
    {
        for (e, event) in line
            .split(" -1")
            .filter(|e| !e.trim().is_empty() && e.trim() != "-2")
            .enumerate()
        {
            for item in event.split_whitespace() {
                text.push_str(&format!("s{s},2024-01-{:02},{item}\n", e + 1));
            }
        }
    }
    std::fs::write(&table, text).unwrap();
    let from_table = run(&table, &[]);
    assert_eq!(from_table, from_spmf);
    // Consecutive elements at most a day apart: fewer patterns, each counted at most as often.
    let close = run(&table, &["--max-gap-days", "1"]);
    assert!(close.len() < from_table.len());
    for r in &close {
        let all: u32 = find(&from_table, &r["pattern"]).unwrap().parse().unwrap();
        assert!(r["count"].parse::<u32>().unwrap() <= all);
    }

    // A bad token names its line.
    std::fs::write(&spmf, "1 -1 2 -2\n1 x -1 -2\n").unwrap();
    let out = ecrm(
        &wh,
        &[
            "sequence",
            "--sequences",
            spmf.to_str().unwrap(),
            "--sequence-format",
            "spmf",
            "--min-support",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: \"x\" is not an item number, -1 or -2"),
        "{err}"
    );
}
