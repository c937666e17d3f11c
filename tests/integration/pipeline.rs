//! Pipelines: the nightly run end to end (twice, with identical outputs), a failure in the
//! middle and `--resume`, the run lock, data tests and freshness gates, `--select`, the
//! as-of point in time, and `ecrm check`'s messages for each kind of mistake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ecrm::pipeline::Pipeline;
use ecrm::warehouse::runs::{Manifest, StageRecord};

use super::support::{copy_dir, dataset, ecrm, ecrm_ok, repo, scalar, sql};

/// A copy of `pipelines/` in a temporary folder with the sample data beside it, so a run's
/// exports (`../exports/...`) land in the folder, not in the repository.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("pipelines"), &dir.path().join("pipelines"));
        copy_dir(&repo().join("sample-data"), &dir.path().join("sample-data"));
        Workspace { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn warehouse(&self) -> PathBuf {
        self.path("wh")
    }

    /// Writes a pipeline file into `pipelines/` and returns its path.
    pub fn pipeline(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(&format!("pipelines/{name}"));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `ecrm run FILE ARGS..`: the exit code, the run id (stdout's last line), stderr.
    pub fn run(&self, file: &Path, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["run", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = ecrm(&self.warehouse(), &all);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let id = stdout.lines().last().unwrap_or("").to_string();
        (
            out.status.code().unwrap_or(-1),
            id,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn manifest(&self, id: &str) -> Manifest {
        Manifest::read(&self.warehouse(), id).unwrap()
    }
}

fn stage<'m>(m: &'m Manifest, name: &str) -> &'m StageRecord {
    m.stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn statuses(m: &Manifest) -> BTreeMap<String, String> {
    m.stages
        .iter()
        .map(|s| (s.name.clone(), s.status.to_string()))
        .collect()
}

/// Every output's content hash by name; the model file and the report are left out (they
/// record when they were made).
fn output_hashes(m: &Manifest) -> BTreeMap<String, Option<String>> {
    m.stages
        .iter()
        .flat_map(|s| s.outputs.iter())
        .filter(|o| !o.name.starts_with("model:") && !o.name.ends_with("/index.html"))
        .map(|o| (o.name.clone(), o.hash.clone()))
        .collect()
}

#[test]
fn the_nightly_pipeline_runs_twice_with_identical_outputs() {
    let ws = Workspace::new();
    let file = ws.path("pipelines/nightly.toml");
    let (code, id1, err) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{err}");
    let m1 = ws.manifest(&id1);
    assert_eq!(m1.run_id, id1);
    assert_eq!(m1.status, "succeeded");
    assert_eq!(m1.exit_code, Some(0));
    assert!(
        m1.stages.iter().all(|s| s.status == "succeeded"),
        "{:?}",
        statuses(&m1)
    );
    assert_eq!(m1.ecrm_version, env!("CARGO_PKG_VERSION"));
    let (sha, _) = ecrm::ingest::sha256_file(&file).unwrap();
    assert_eq!(m1.pipeline_sha256, sha);
    // The sample's last order line is on 2024-11-28.
    assert_eq!(m1.as_of.as_deref(), Some("2024-11-29"));
    let load = stage(&m1, "load");
    assert_eq!(load.metrics["new_files"], 7);
    let fact = load
        .outputs
        .iter()
        .find(|o| o.name == "fact_sales")
        .unwrap();
    assert_eq!(fact.rows, Some(49_888));
    // What a stage read is what the stage before it wrote.
    let read = stage(&m1, "features")
        .inputs
        .iter()
        .find(|i| i.name == "fact_sales")
        .unwrap();
    assert_eq!(read, fact);
    let tests = &stage(&m1, "features").tests;
    assert!(
        tests.len() >= 9 && tests.iter().all(|t| t.status == "pass"),
        "{tests:?}"
    );
    assert_eq!(stage(&m1, "segment").seed, Some(42));
    #[cfg(target_os = "linux")]
    assert!(
        load.peak_rss_mib.is_some_and(|m| m > 10.0),
        "{:?}",
        load.peak_rss_mib
    );
    assert_eq!(stage(&m1, "segment").metrics["k"], 4);
    assert!(
        stage(&m1, "churn_model").metrics["metrics"]["roc_auc"]
            .as_f64()
            .unwrap()
            > 0.7
    );
    let export = ws.path("exports/2024-11-29/at-risk.csv");
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(
        exported.lines().count() as u64 - 1,
        stage(&m1, "export_at_risk").metrics["written"]
            .as_u64()
            .unwrap()
    );
    let wh = ws.warehouse();
    assert_eq!(scalar(&wh, "SELECT count(*) FROM segment_profiles"), "4");

    let (code, id2, err) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(id1, id2);
    let m2 = ws.manifest(&id2);
    let load = stage(&m2, "load");
    assert_eq!(load.metrics["new_files"], 0, "the second run loads nothing");
    assert!(load.metrics["load_id"].is_null());
    assert_eq!(output_hashes(&m1), output_hashes(&m2));
    assert_eq!(std::fs::read_to_string(&export).unwrap(), exported);

    // `ecrm runs` lists both, newest first.
    let runs = ecrm_ok(&wh, &["runs", "--format", "csv"]);
    let ids: Vec<&str> = runs
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, [id2.as_str(), id1.as_str()]);

    // --select STAGE+ runs the stage and what lies downstream of it, nothing else.
    let (code, id3, err) = ws.run(&file, &["--select", "features+"]);
    assert_eq!(code, 0, "{err}");
    let ran: Vec<String> = ws
        .manifest(&id3)
        .stages
        .iter()
        .filter(|s| s.status != "not_selected")
        .map(|s| s.name.clone())
        .collect();
    // The report comes after every stage, so it is downstream of all.
    assert_eq!(ran, ["features", "segment", "report"]);
    let (code, _, err) = ws.run(&file, &["--select", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("\"nope\" is not a stage") && err.contains("churn_model"),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    not(ecrm_datasets),
    ignore = "needs the real data sets: set ECRM_DATASETS"
)]
fn online_retail_nightly_runs_twice_with_identical_outputs() {
    let Some(_) = dataset("online-retail/online_retail.csv") else {
        return;
    };
    let ws = Workspace::new();
    let file = ws.path("pipelines/online-retail-nightly.toml");
    let (code, id1, err) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{err}");
    let m1 = ws.manifest(&id1);
    assert_eq!(m1.as_of.as_deref(), Some("2011-12-10"));
    let load = stage(&m1, "load");
    assert_eq!(load.metrics["rows_read"], 541_909);
    assert_eq!(
        stage(&m1, "features").outputs[0].rows,
        Some(4_339),
        "customers with a purchase"
    );
    let (code, id2, err) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{err}");
    let m2 = ws.manifest(&id2);
    assert_eq!(stage(&m2, "load").metrics["new_files"], 0);
    assert_eq!(output_hashes(&m1), output_hashes(&m2));
}

#[test]
fn a_failed_stage_keeps_earlier_outputs_and_resume_finishes_the_run() {
    let ws = Workspace::new();
    let file = ws.path("pipelines/nightly.toml");
    let wh = ws.warehouse();
    // The model file's place is taken by a folder: training works, writing the model fails.
    std::fs::create_dir_all(wh.join("models/churn.json/blocker")).unwrap();
    let (code, id, err) = ws.run(&file, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("run {id} failed: stage churn_model failed")),
        "{err}"
    );
    let m = ws.manifest(&id);
    assert_eq!(m.status, "failed");
    let s = statuses(&m);
    assert_eq!(s["churn_model"], "failed");
    // Downstream of the failure: skipped. Independent of it: run.
    assert_eq!(s["churn_scores"], "skipped");
    assert_eq!(s["export_at_risk"], "skipped");
    assert_eq!(s["cross_sell"], "succeeded");
    assert_eq!(s["export_cross_sell"], "succeeded");
    // The report shows the failure rather than being skipped.
    assert_eq!(s["report"], "succeeded");
    let page = ws.path("notebooks-out/nightly/2024-11-29/index.html");
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("churn_model: ")
    );
    // Earlier outputs are intact and readable, as their stages committed them.
    let features = &stage(&m, "features").outputs[0];
    let now = ecrm::warehouse::runs::table_record(
        &ecrm::warehouse::Warehouse::open(&wh).unwrap(),
        "customer_features",
    )
    .unwrap();
    assert_eq!(&now, features);
    assert_eq!(
        scalar(&wh, "SELECT count(*) FROM customer_features"),
        "1699"
    );

    std::fs::remove_dir_all(wh.join("models/churn.json")).unwrap();
    let (code, id2, err) = ws.run(&file, &["--resume", &id]);
    assert_eq!(code, 0, "{err}");
    let m2 = ws.manifest(&id2);
    assert_eq!(m2.resumed_from.as_deref(), Some(id.as_str()));
    assert_eq!(m2.as_of, m.as_of);
    let s = statuses(&m2);
    for reused in [
        "load",
        "features",
        "segment",
        "cross_sell",
        "export_cross_sell",
    ] {
        assert_eq!(s[reused], "reused", "{reused}");
        assert_eq!(stage(&m2, reused).reused_from.as_deref(), Some(id.as_str()));
    }
    // The report is written again, for the resumed run.
    for ran in ["churn_model", "churn_scores", "export_at_risk", "report"] {
        assert_eq!(s[ran], "succeeded", "{ran}");
    }
    assert!(ws.path("exports/2024-11-29/at-risk.csv").is_file());
    // A run that succeeded has nothing to resume.
    let (code, _, err) = ws.run(&file, &["--resume", &id2]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing to resume"), "{err}");
}

#[test]
fn a_second_run_on_the_warehouse_exits_at_once_naming_the_first() {
    let ws = Workspace::new();
    let wh = ws.warehouse();
    let _held =
        ecrm::warehouse::RunLock::acquire(&wh, "run 20261123T000000Z-beef of x.toml").unwrap();
    // The lock is tried once, without waiting (no timed assertion: how fast is for
    // benchmarks; that it does not wait is the run lock's code).
    let (code, _, err) = ws.run(&ws.path("pipelines/nightly.toml"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("another run is in progress (run 20261123T000000Z-beef of x.toml, pid"),
        "{err}"
    );
    assert!(
        !wh.join("runs").exists(),
        "a run that did not start leaves no manifest"
    );
}

const LOAD_AND_FEATURES: &str = r#"
[stages.load]
kind = "ingest"
contract = "sources.toml"

[stages.features]
kind = "features"

[stages.segment]
kind = "segment"
method = "rfm"
"#;

#[test]
fn failing_data_tests_stop_what_is_downstream_and_exit_1() {
    let ws = Workspace::new();
    let failing = ws.pipeline(
        "failing.toml",
        &format!(
            "{LOAD_AND_FEATURES}
[[stages.features.tests]]
rows = {{ max = 10 }}
not_null = [\"customer_id\"]
accepted_values = {{ rfm_segment = [\"Champions\", \"Loyal\"] }}
"
        ),
    );
    let (code, id, err) = ws.run(&failing, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quality gate failed"), "{err}");
    let m = ws.manifest(&id);
    assert_eq!(m.status, "tests_failed");
    assert_eq!(m.exit_code, Some(1));
    let s = statuses(&m);
    assert_eq!(s["features"], "tests_failed");
    assert_eq!(s["segment"], "skipped");
    let tests = &stage(&m, "features").tests;
    let by_name = |n: &str| tests.iter().find(|t| t.test.starts_with(n)).unwrap();
    assert_eq!(by_name("rows").status, "fail");
    assert_eq!(
        by_name("rows").message,
        "customer_features has 1699 rows, outside ..=10"
    );
    assert_eq!(by_name("not_null").status, "pass");
    let accepted = by_name("accepted_values");
    assert_eq!(accepted.status, "fail");
    // The count is of distinct values outside the list, checked independently.
    let outside = scalar(
        &ws.warehouse(),
        "SELECT count(DISTINCT rfm_segment) FROM customer_features \
         WHERE rfm_segment NOT IN ('Champions', 'Loyal')",
    );
    assert_eq!(accepted.failing.to_string(), outside);

    // The same tests as warnings: reported, the run succeeds.
    let warn = ws.pipeline(
        "warn.toml",
        &format!("{LOAD_AND_FEATURES}\n[[stages.features.tests]]\nrows = {{ max = 10 }}\nseverity = \"warn\"\n"),
    );
    let (code, id, err) = ws.run(&warn, &[]);
    assert_eq!(code, 0, "{err}");
    let m = ws.manifest(&id);
    assert_eq!(stage(&m, "features").tests[0].status, "warn");
    assert_eq!(stage(&m, "segment").status, "succeeded");
}

#[test]
fn freshness_gates_fail_the_run_with_exit_1_and_a_clear_message() {
    let ws = Workspace::new();
    let new_file = ws.pipeline(
        "fresh.toml",
        "[stages.load]\nkind = \"ingest\"\ncontract = \"sources.toml\"\nfreshness = { new_file = true }\n",
    );
    let (code, _, err) = ws.run(&new_file, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, id, _) = ws.run(&new_file, &[]);
    assert_eq!(code, 1);
    let m = ws.manifest(&id);
    let t = &stage(&m, "load").tests[0];
    assert_eq!(t.test, "freshness(new_file)");
    assert!(
        t.message
            .starts_with("no new file arrived since the last load: all 7 input files"),
        "{}",
        t.message
    );

    // Files last modified three days ago are older than a 24-hour limit.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 24 * 3600);
    for f in std::fs::read_dir(ws.path("sample-data")).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(f.unwrap().path())
            .unwrap();
        f.set_modified(old).unwrap();
    }
    let max_age = ws.pipeline(
        "age.toml",
        "[stages.load]\nkind = \"ingest\"\ncontract = \"sources.toml\"\nfreshness = { max_age_hours = 24 }\n",
    );
    let (code, id, _) = ws.run(&max_age, &[]);
    assert_eq!(code, 1);
    let m = ws.manifest(&id);
    let t = &stage(&m, "load").tests[0];
    assert!(
        t.message.contains("is 72.0 hours old, more than 24"),
        "{}",
        t.message
    );
}

/// Every row of a table, ordered, as text.
fn table_rows(wh: &Path, table: &str, order: &str) -> Vec<Vec<String>> {
    sql(wh, &format!("SELECT * FROM {table} ORDER BY {order}"))
}

#[test]
fn a_run_as_of_a_date_sees_only_what_was_known_then() {
    // Warehouse A holds every order line; B only those before the as-of date. Runs of the
    // same pipeline as of that date must agree on every model output.
    let as_of = "2024-06-01";
    let full = Workspace::new();
    let cut = Workspace::new();
    for name in ["transactions.csv", "campaign_contacts.csv"] {
        let path = cut.path(&format!("sample-data/{name}"));
        // Ragged lines (planted defects) are copied as they are.
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .unwrap();
        let headers = r.headers().unwrap().clone();
        let time = headers
            .iter()
            .position(|h| h == "ordered_at" || h == "contacted_at")
            .unwrap();
        let mut kept = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        kept.write_record(&headers).unwrap();
        for rec in r.records() {
            let rec = rec.unwrap();
            let t = rec.get(time).unwrap_or("");
            let day = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%d/%m/%Y %H:%M"))
                .map(|d| d.date().to_string());
            // Unreadable times are rejected in both warehouses alike.
            if day.as_deref().is_ok_and(|d| d >= as_of) {
                continue;
            }
            kept.write_record(&rec).unwrap();
        }
        std::fs::write(&path, kept.into_inner().unwrap()).unwrap();
    }
    let select = [
        "--as-of",
        as_of,
        "--select",
        "load",
        "--select",
        "features+",
        "--select",
        "churn_model+",
        "--select",
        "cross_sell",
    ];
    for ws in [&full, &cut] {
        let (code, _, err) = ws.run(&ws.path("pipelines/nightly.toml"), &select);
        assert_eq!(code, 0, "{err}");
    }
    let (a, b) = (full.warehouse(), cut.warehouse());
    assert!(
        scalar(&a, "SELECT count(*) FROM fact_sales")
            > scalar(&b, "SELECT count(*) FROM fact_sales"),
        "A holds more order lines than B"
    );
    for (table, order) in [
        ("customer_features", "customer_id"),
        ("segments", "customer_id"),
        ("churn_scores", "customer_id"),
        ("recommendations", "customer_id, rank"),
        ("basket_rules", "lift DESC, antecedent, consequent"),
    ] {
        let (ra, rb) = (table_rows(&a, table, order), table_rows(&b, table, order));
        assert!(!ra.is_empty(), "{table} is empty");
        assert_eq!(
            ra, rb,
            "{table} differs between the full and the cut warehouse"
        );
    }
}

/// A pipeline with one mistake, checked without running.
fn check_error(text: &str) -> String {
    match Pipeline::parse(&repo().join("pipelines/bad.toml"), text) {
        Ok(_) => panic!("the pipeline was accepted:\n{text}"),
        Err(e) => e
            .to_string()
            .replace(&repo().display().to_string(), "<repo>"),
    }
}

const GOOD: &str = r#"
name = "good"
[stages.load]
kind = "ingest"
contract = "sources.toml"
[stages.features]
kind = "features"
[stages.segment]
kind = "segment"
k = 4
[[stages.segment.tests]]
table = "segments"
unique = ["customer_id"]
[stages.churn]
kind = "churn-train"
model = "churn"
[stages.scores]
kind = "churn-score"
model = "churn"
[stages.mart]
kind = "sql"
sql = "SELECT customer_id, count(*) AS n FROM fact_sales GROUP BY 1"
inputs = ["fact_sales"]
output = "mart_counts"
[stages.export]
kind = "export"
what = "churn"
risk = ["high"]
out = "../exports/{as_of}/x.csv"
"#;

fn edited(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_good_pipeline_is_accepted_and_the_cli_prints_its_plan() {
    let p = Pipeline::parse(&repo().join("pipelines/good.toml"), GOOD).unwrap();
    let order: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "load", "features", "segment", "churn", "scores", "mart", "export"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let out = ecrm_ok(
        dir.path(),
        &[
            "check",
            repo().join("pipelines/nightly.toml").to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("pipeline \"nightly\" is valid: 22 stages"),
        "{out}"
    );
    assert!(!dir.path().join("wh").exists());
}

#[test]
fn pipeline_mistakes_are_named() {
    let cases: Vec<(&str, String)> = vec![
        (
            "toml_syntax",
            edited("kind = \"features\"", "kind = features"),
        ),
        ("unknown_top_level_key", format!("stagez = 1\n{GOOD}")),
        ("unknown_stage_key", edited("k = 4", "k = 4\nkk = 5")),
        ("missing_kind", edited("kind = \"features\"\n", "")),
        ("unknown_kind", edited("\"features\"", "\"feature\"")),
        (
            "bad_param_value",
            edited("model = \"churn\"\n", "model = \"churn\"\nmax_depth = 0\n"),
        ),
        ("bad_param_type", edited("k = 4", "k = 4.5")),
        (
            "bad_train_sample",
            edited("k = 4", "k = 4\ntrain_sample = 3"),
        ),
        ("bad_choice", edited("k = 4", "k = 4\nmethod = \"kmeanz\"")),
        (
            "bad_fraction",
            format!("{GOOD}[stages.basket]\nkind = \"basket\"\nmin_support = \"lots\"\n"),
        ),
        ("bad_stage_name", edited("[stages.mart]", "[stages.Mart]")),
        (
            "bad_clv_margin",
            format!(
                "{GOOD}[stages.value]\nkind = \"clv-score\"\nmodel = \"churn\"\nmargin = 2.0\n"
            ),
        ),
        (
            "bad_contact_cost",
            format!("{GOOD}[stages.profit]\nkind = \"profit\"\ncontact_cost = [\"email\"]\n"),
        ),
        (
            "bad_campaign_level",
            format!("{GOOD}[stages.campaigns]\nkind = \"campaign-report\"\nby = \"colour\"\n"),
        ),
        (
            "bad_campaign_window",
            format!("{GOOD}[stages.campaigns]\nkind = \"campaign-report\"\nwindow_days = 0\n"),
        ),
        (
            "bad_cohort_period",
            format!("{GOOD}[stages.cohorts]\nkind = \"cohorts\"\nperiod = \"year\"\n"),
        ),
        (
            "table_nothing_produces",
            edited(
                "inputs = [\"fact_sales\"]",
                "inputs = [\"fact_sales\", \"fact_web\"]",
            )
            .replacen(
                "FROM fact_sales",
                "FROM fact_sales JOIN fact_web USING (customer_id)",
                1,
            ),
        ),
        (
            "model_nothing_trains",
            edited(
                "kind = \"churn-score\"\nmodel = \"churn\"",
                "kind = \"churn-score\"\nmodel = \"churn2\"",
            ),
        ),
        (
            "sql_reads_undeclared_table",
            edited(
                "FROM fact_sales GROUP BY 1",
                "FROM fact_sales JOIN dim_customer USING (customer_id) GROUP BY 1",
            ),
        ),
        (
            "sql_does_not_parse",
            edited("SELECT customer_id,", "SELEKT customer_id,"),
        ),
        (
            "sql_not_a_query",
            edited(
                "sql = \"SELECT customer_id,",
                "sql = \"CREATE TABLE t AS SELECT customer_id,",
            ),
        ),
        (
            "sql_and_file",
            edited(
                "output = \"mart_counts\"",
                "output = \"mart_counts\"\nfile = \"x.sql\"",
            ),
        ),
        (
            "two_producers",
            edited("output = \"mart_counts\"", "output = \"segments\""),
        ),
        (
            "cycle",
            format!(
                "{GOOD}[stages.a]\nkind = \"sql\"\nsql = \"SELECT * FROM b\"\ninputs = [\"b\"]\noutput = \"a\"\n\
                 [stages.b]\nkind = \"sql\"\nsql = \"SELECT * FROM a\"\ninputs = [\"a\"]\noutput = \"b\"\n"
            ),
        ),
        (
            "unknown_after",
            edited(
                "kind = \"features\"",
                "kind = \"features\"\nafter = [\"nightly_load\"]",
            ),
        ),
        (
            "missing_contract",
            edited("\"sources.toml\"", "\"nope.toml\""),
        ),
        (
            "bad_reject_rate",
            edited(
                "contract = \"sources.toml\"",
                "contract = \"sources.toml\"\nmax_reject_rate = 5",
            ),
        ),
        (
            "empty_freshness",
            edited(
                "contract = \"sources.toml\"",
                "contract = \"sources.toml\"\nfreshness = {}",
            ),
        ),
        (
            "test_on_a_table_not_written",
            edited("table = \"segments\"", "table = \"fact_sales\""),
        ),
        (
            "test_checks_nothing",
            edited("unique = [\"customer_id\"]", ""),
        ),
        (
            "bad_relationship",
            edited(
                "unique = [\"customer_id\"]",
                "relationships = { customer_id = \"dim_customer\" }",
            ),
        ),
        (
            "bad_expect",
            edited("unique = [\"customer_id\"]", "expect = [\"customer_id >\"]"),
        ),
        (
            "describe_unknown_table",
            edited(
                "k = 4",
                "k = 4\ncolumn_descriptions = { \"fact_sales.x\" = \"?\" }",
            ),
        ),
        (
            "export_what",
            edited("what = \"churn\"", "what = \"everyone\""),
        ),
        (
            "export_misplaced_key",
            edited("risk = [\"high\"]", "risk = [\"high\"]\nmax_rank = 3"),
        ),
        ("export_bad_band", edited("[\"high\"]", "[\"severe\"]")),
        ("no_stages", "name = \"empty\"\n".to_string()),
    ];
    for (name, text) in cases {
        insta::assert_snapshot!(format!("pipeline_{name}"), check_error(&text));
    }
}
