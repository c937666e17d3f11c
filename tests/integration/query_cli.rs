//! `ecrm query` and `ecrm cube` from the command line: each output format (insta snapshots),
//! several statements, `--out`, `--table` without a warehouse, SQL from stdin, error positions,
//! memory limits, and cube models with mistakes.

use std::path::Path;

use crate::support::{ecrm, ecrm_ok, repo, sample_warehouse};

const DAYS: &str =
    "SELECT date_key, date, day_name, is_weekend FROM dim_date ORDER BY date_key LIMIT 3";

#[test]
fn query_prints_each_format() {
    let wh = sample_warehouse();
    for format in ["table", "csv", "json", "ndjson"] {
        let out = ecrm_ok(wh, &["query", "-e", DAYS, "--format", format]);
        insta::assert_snapshot!(format!("query_format_{format}"), out);
    }
}

#[test]
fn table_format_says_how_many_rows_it_left_out() {
    let out = ecrm_ok(
        sample_warehouse(),
        &[
            "query",
            "-e",
            "SELECT date_key FROM dim_date ORDER BY 1",
            "--format",
            "table",
            "--max-rows",
            "2",
        ],
    );
    let last = out.lines().last().unwrap();
    assert!(
        last.ends_with("rows (2 shown; use --max-rows or --format csv for all)"),
        "{out}"
    );
}

#[test]
fn several_statements_print_in_turn_and_out_takes_the_last() {
    let wh = sample_warehouse();
    let script = "SELECT 1 AS a; SELECT 'x;y' AS b, 2 AS c";
    let out = ecrm_ok(wh, &["query", "-e", script, "--format", "csv"]);
    assert_eq!(out, "a\n1\n\nb,c\nx;y,2\n");

    // With --out, earlier statements are set-up and the last result goes to the file, in the
    // format its extension names.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("days.parquet");
    let setup = format!("CREATE VIEW first_days AS {DAYS}; SELECT * FROM first_days");
    let printed = ecrm_ok(
        wh,
        &["query", "-e", &setup, "--out", file.to_str().unwrap()],
    );
    assert_eq!(printed, "");
    // The Parquet file is a table of its own, with no warehouse at all.
    let none = dir.path().join("no-warehouse");
    let back = ecrm_ok(
        &none,
        &[
            "query",
            "--table",
            &format!("d={}", file.display()),
            "-e",
            "SELECT count(*) AS n, min(date_key) AS first FROM d",
            "--format",
            "csv",
        ],
    );
    assert_eq!(back, "n,first\n3,20230103\n");
    assert!(!none.exists(), "a query must not create a warehouse");
}

/// Queries of a script run side by side (`olap::script`), yet print in statement order; a
/// statement that changes the session (`CREATE VIEW`, `SET`) runs alone, so the queries
/// after it see it; an error stops the script after the results before it.
#[test]
fn statements_run_side_by_side_print_in_order_and_see_what_came_before() {
    let wh = sample_warehouse();
    // The slow query first: a later one that finishes sooner must still print after it.
    let script = "SELECT count(*) AS n FROM generate_series(1, 3000000); SELECT 1 AS one; \
                  CREATE VIEW v AS SELECT 2 AS b; SELECT b FROM v; SELECT b * 10 AS ten FROM v; \
                  SET datafusion.execution.batch_size = 100; SELECT b + 1 AS c FROM v";
    let out = ecrm_ok(wh, &["query", "-e", script, "--format", "csv"]);
    // A statement without a result (CREATE VIEW, SET) prints an empty line of no columns.
    assert_eq!(
        out,
        "n\n3000000\n\none\n1\n\n\"\"\n\nb\n2\n\nten\n20\n\n\"\"\n\nc\n3\n"
    );

    let broken = ecrm(
        wh,
        &[
            "query",
            "-e",
            "SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3 AS c",
            "--format",
            "csv",
        ],
    );
    assert_eq!(broken.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&broken.stdout), "a\n1\n");
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("statement 2 of 3"), "{err}");
}

#[test]
fn a_csv_file_joins_the_warehouse_tables() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("vip.csv");
    std::fs::write(&list, "date_key,label\n20230104,first day\n").unwrap();
    let out = ecrm_ok(
        sample_warehouse(),
        &[
            "query",
            "--table",
            &format!("vip={}", list.display()),
            "-e",
            "SELECT v.label, d.day_name FROM vip v JOIN dim_date d USING (date_key)",
            "--format",
            "csv",
        ],
    );
    // 2023-01-04 was a Wednesday.
    assert_eq!(out, "label,day_name\nfirst day,Wednesday\n");
}

#[test]
fn sql_comes_from_stdin_when_not_a_terminal() {
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args([
            "--warehouse",
            sample_warehouse().to_str().unwrap(),
            "-q",
            "query",
            "--format",
            "csv",
        ])
        .write_stdin("SELECT count(*) AS days FROM dim_date WHERE date_key < 20230106;\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "days\n3\n");
}

/// stderr of a failing run, which must exit with code 2.
fn failure(wh: &Path, args: &[&str]) -> String {
    let out = ecrm(wh, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn sql_errors_point_at_the_position_and_exit_2() {
    let wh = sample_warehouse();
    let unknown = failure(
        wh,
        &[
            "query",
            "-e",
            "SELECT date_key,\n       no_such_column\nFROM dim_date",
        ],
    );
    insta::assert_snapshot!("query_error_unknown_column", unknown);
    let syntax = failure(wh, &["query", "-e", "SELECT 1;\nSELECT (1 + FROM dim_date"]);
    insta::assert_snapshot!("query_error_syntax", syntax);
    let table = failure(wh, &["query", "-e", "SELECT * FROM no_such_table"]);
    assert!(table.contains("no_such_table"), "{table}");
    let parquet = failure(wh, &["query", "-e", "SELECT 1", "--format", "parquet"]);
    assert!(parquet.contains("give --out FILE"), "{parquet}");
}

#[test]
fn a_memory_limit_spills_a_large_sort_and_stops_a_join_that_cannot() {
    let wh = sample_warehouse();
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let limited = |sql: &str| {
        ecrm(
            wh,
            &[
                "--memory-limit",
                "256KiB",
                "--spill-dir",
                spill.to_str().unwrap(),
                "--threads",
                "2",
                "query",
                "-e",
                sql,
                "--format",
                "csv",
            ],
        )
    };
    // The sorted rows are megabytes: under 256 KiB the sort can only finish by spilling.
    let sort = limited(
        "SELECT count(*) AS n FROM (SELECT invoice_no, product_id, record FROM fact_sales ORDER BY product_id, invoice_no, record)",
    );
    assert!(
        sort.status.success(),
        "{}",
        String::from_utf8_lossy(&sort.stderr)
    );
    let n = crate::support::scalar(wh, "SELECT count(*) FROM fact_sales");
    assert_eq!(String::from_utf8_lossy(&sort.stdout), format!("n\n{n}\n"));
    // A hash join's build side cannot spill: the limit is real, and its error says so.
    let join = limited(
        "SELECT count(*) FROM fact_sales a JOIN fact_sales b ON a.invoice_no = b.invoice_no AND a.record = b.record",
    );
    assert_eq!(join.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&join.stderr).contains("Resources exhausted"),
        "{}",
        String::from_utf8_lossy(&join.stderr)
    );
}

fn cube_args(extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "cube".to_string(),
        "--cubes-dir".into(),
        repo().join("pipelines/cubes").display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn cube_lists_its_model_and_shows_its_sql() {
    let wh = sample_warehouse();
    let args = cube_args(&["--cube", "sales", "--format", "csv"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    insta::assert_snapshot!("cube_sales_model", ecrm_ok(wh, &args));

    let args = cube_args(&[
        "--cube",
        "sales",
        "--rows",
        "year",
        "--subtotals",
        "rollup",
        "--show-sql",
        "--format",
        "csv",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ecrm(wh, &args);
    assert!(out.status.success());
    insta::assert_snapshot!("cube_show_sql", String::from_utf8_lossy(&out.stderr));
}

/// The sales model with `from` replaced by `to`, written to a file; the error of using it.
fn model_error(name: &str, from: &str, to: &str) -> String {
    let good = std::fs::read_to_string(repo().join("pipelines/cubes/sales.toml")).unwrap();
    assert!(good.contains(from), "{from}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, good.replacen(from, to, 1)).unwrap();
    let err = failure(
        sample_warehouse(),
        &["cube", "--cube", file.to_str().unwrap(), "--rows", "year"],
    );
    err.replace(&dir.path().display().to_string(), "<dir>")
}

#[test]
fn cube_models_with_mistakes_are_refused_with_the_key_at_fault() {
    let cases = [
        (
            "unknown_column",
            "expr = \"COALESCE(customer.region, '(unknown)')\"",
            "expr = \"customer.regoin\"",
        ),
        (
            "unknown_alias",
            "expr = \"fact.quantity\"",
            "expr = \"line.quantity\"",
        ),
        (
            "level_in_two_hierarchies",
            "hierarchy = [\"country\", \"region\", \"city\"]",
            "hierarchy = [\"country\", \"region\", \"city\", \"year\"]",
        ),
        (
            "duplicate_level",
            "[dimensions.channel.levels.sales_channel]",
            "[dimensions.channel.levels.city]",
        ),
        (
            "measure_without_aggregate",
            "aggregate = \"sum\"\nexpr = \"fact.quantity\"",
            "expr = \"fact.quantity\"",
        ),
        (
            "formula_loop",
            "formula = \"CAST(gross_revenue AS DOUBLE) / NULLIF(orders, 0)\"",
            "formula = \"avg_order_value + orders\"",
        ),
        (
            "unknown_key",
            "fact = \"fact_sales\"",
            "fact = \"fact_sales\"\nfacts = \"x\"",
        ),
        (
            "unknown_fact_table",
            "fact = \"fact_sales\"",
            "fact = \"fact_sale\"",
        ),
    ];
    for (name, from, to) in cases {
        insta::assert_snapshot!(format!("cube_model_{name}"), model_error(name, from, to));
    }
}
