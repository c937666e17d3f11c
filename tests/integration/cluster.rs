//! Scale-out: a Ballista cluster of one scheduler and two executors, all `ecrm cluster`
//! processes on 127.0.0.1 started by the tests themselves, answers like the local engine;
//! losing an executor mid-query fails the query naming it; a wrong scheduler address fails
//! fast and clearly.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::pipeline::Workspace;
use super::support::{copy_dir, ecrm_ok, sample_warehouse};

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The cluster's processes, stopped by their PIDs when dropped (also when a test panics).
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    scheduler: Child,
    executors: Vec<Child>,
    /// Each executor's data port, by which the scheduler names it.
    ports: Vec<u16>,
}

impl Cluster {
    /// Starts a scheduler and `n` executors with short heartbeats, and waits until every
    /// executor has registered.
    fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("df://127.0.0.1:{port}");
        let bin = assert_cmd::cargo::cargo_bin("ecrm");
        let logs = dir.path().to_path_buf();
        let log = |name: &str| std::fs::File::create(logs.join(name)).unwrap();
        let scheduler = Command::new(&bin)
            .args([
                "cluster",
                "scheduler",
                "--bind",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--executor-timeout-seconds", "6"])
            .env_remove("ECRM_LOG")
            .stdout(Stdio::null())
            .stderr(log("scheduler.log"))
            .spawn()
            .unwrap();
        let mut cluster = Cluster {
            url: url.clone(),
            scheduler,
            executors: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for k in 0..n {
            let work = cluster.work_dir(k);
            let port = free_port();
            let child = Command::new(&bin)
                .args(["--scheduler", &url, "cluster", "executor"])
                .args(["--port", &port.to_string()])
                .args(["--grpc-port", &free_port().to_string()])
                .args(["--work-dir", work.to_str().unwrap()])
                .args([
                    "--memory-pool-size",
                    "1GiB",
                    "--heartbeat-interval-seconds",
                    "1",
                ])
                .env_remove("ECRM_LOG")
                .stdout(Stdio::null())
                .stderr(log(&format!("executor{k}.log")))
                .spawn()
                .unwrap();
            cluster.executors.push(child);
            cluster.ports.push(port);
        }
        let start = Instant::now();
        while cluster.registered() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "executors did not register:\n{}",
                cluster.log("scheduler.log")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Executor `k`'s folder for shuffle files.
    fn work_dir(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("work{k}"))
    }

    /// How many files and folders executor `k` has written (none before its first task).
    fn written(&self, k: usize) -> usize {
        std::fs::read_dir(self.work_dir(k)).map_or(0, |d| d.count())
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn registered(&self) -> usize {
        self.log("scheduler.log")
            .matches("Received register executor request")
            .count()
    }

    /// `ecrm --engine ballista --scheduler URL ARGS..` on `warehouse`.
    fn ecrm(&self, warehouse: &Path, args: &[&str]) -> Output {
        assert_cmd::Command::cargo_bin("ecrm")
            .unwrap()
            .args(["--warehouse", warehouse.to_str().unwrap(), "-q"])
            .args(["--engine", "ballista", "--scheduler", &self.url])
            .args(args)
            .env_remove("ECRM_LOG")
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    }

    /// The same, started in the background.
    fn spawn_ecrm(&self, warehouse: &Path, args: &[&str]) -> Child {
        Command::new(assert_cmd::cargo::cargo_bin("ecrm"))
            .args(["--warehouse", warehouse.to_str().unwrap(), "-q"])
            .args(["--engine", "ballista", "--scheduler", &self.url])
            .args(args)
            .env_remove("ECRM_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A copy of the sample warehouse this test may write to.
fn warehouse_copy(into: &Path) -> PathBuf {
    let wh = into.join("wh");
    copy_dir(sample_warehouse(), &wh);
    wh
}

/// The five peer questions (`tests/fixtures/olap_queries.sql`), over a view `sales` of the
/// sample warehouse's order lines.
fn peer_questions() -> String {
    let peers = super::support::repo().join("tests/fixtures/olap_queries.sql");
    let q = std::fs::read_to_string(&peers).unwrap_or_else(|e| panic!("{}: {e}", peers.display()));
    format!(
        "CREATE VIEW sales AS SELECT invoice_no, invoice_ts, country, customer_id, \
         product_id AS stock_code, quantity, unit_price, is_return AS is_cancellation \
         FROM fact_sales;\n{q}"
    )
}

/// The same rows: cells equal as text, or as numbers within a relative 1e-9 (sums of doubles
/// may add up in another order on the cluster). Rows are compared sorted, because rows tied
/// on an ORDER BY may come in either order (peer Q3's guest-customer row and its grand
/// total both sort as `,,`); the golden tests check orders.
fn assert_same_rows(local: &str, cluster: &str, what: &str) {
    let (mut a, mut b): (Vec<&str>, Vec<&str>) =
        (local.lines().collect(), cluster.lines().collect());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a.len(), b.len(), "{what}: row counts differ");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x == y {
            continue;
        }
        let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split(',').collect(), y.split(',').collect());
        assert_eq!(xs.len(), ys.len(), "{what}: line {i}: {x} / {y}");
        for (p, q) in xs.iter().zip(&ys) {
            let close = match (p.parse::<f64>(), q.parse::<f64>()) {
                (Ok(u), Ok(v)) => (u - v).abs() <= 1e-9 * u.abs().max(v.abs()).max(1.0),
                _ => p == q,
            };
            assert!(close, "{what}: line {i}: {x} / {y}");
        }
    }
}

#[test]
fn a_two_executor_cluster_answers_like_the_local_engine() {
    let cluster = Cluster::start(2);
    let wh = warehouse_copy(cluster.dir.path());
    let sql = peer_questions();
    let local = ecrm_ok(&wh, &["query", "-e", &sql, "--format", "csv"]);
    let out = cluster.ecrm(&wh, &["query", "-e", &sql, "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = String::from_utf8(out.stdout).unwrap();
    assert!(local.lines().count() > 1000, "the questions return rows");
    assert_same_rows(&local, &remote, "peer questions");

    // The OLAP golden questions (tests/sql/*.slt: SQL, cubes and error cases) give the
    // expected results on the cluster too (doubles compared to 6 decimals).
    super::sql_golden::run_files(
        &ecrm::olap::EngineOptions {
            scheduler: Some(cluster.url.clone()),
            ..Default::default()
        },
        false,
    );

    // The feature mart built on the cluster equals the local one.
    let mart = "SELECT * FROM customer_features ORDER BY customer_id";
    ecrm_ok(&wh, &["features", "--as-of", "2024-06-01"]);
    let local = ecrm_ok(&wh, &["query", "-e", mart, "--format", "csv"]);
    let out = cluster.ecrm(&wh, &["features", "--as-of", "2024-06-01"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = ecrm_ok(&wh, &["query", "-e", mart, "--format", "csv"]);
    assert_same_rows(&local, &remote, "customer_features");

    // Both executors did work: each wrote shuffle files.
    for k in 0..2 {
        assert!(cluster.written(k) > 0, "executor {k} ran no task");
    }
}

/// The nightly pipeline with its SQL on the cluster: it succeeds, and its seven result
/// tables, mart to sequence patterns, equal the local run's (doubles within 1e-9; mining
/// runs in the client either way).
#[test]
fn the_nightly_pipeline_runs_on_the_cluster_like_locally() {
    let cluster = Cluster::start(2);
    let (local, remote) = (Workspace::new(), Workspace::new());
    let file = "pipelines/nightly.toml";
    let (code, _, err) = local.run(&local.path(file), &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = remote.run(
        &remote.path(file),
        &["--engine", "ballista", "--scheduler", &cluster.url],
    );
    assert_eq!(code, 0, "{err}");
    for (table, order) in [
        ("mart_monthly_revenue", "month, country"),
        ("customer_features", "customer_id"),
        ("segments", "customer_id"),
        ("churn_scores", "customer_id"),
        ("basket_rules", "antecedent, consequent"),
        ("recommendations", "customer_id, rank"),
        ("sequence_patterns", "pattern"),
        ("web_sessions", "session_id"),
        ("dim_visitor", "visitor_id"),
    ] {
        let sql = format!("SELECT * FROM {table} ORDER BY {order}");
        let rows =
            |w: &Workspace| ecrm_ok(&w.warehouse(), &["query", "-e", &sql, "--format", "csv"]);
        let (a, b) = (rows(&local), rows(&remote));
        assert!(a.lines().count() > 1, "{table} is empty");
        assert_same_rows(&a, &b, table);
    }
}

/// Kills executor 1 as soon as it has written its first shuffle output for a self-join that
/// takes seconds: the query must fail within the scheduler's 6 s executor timeout plus
/// slack, naming the executor, and never hang or return a number.
#[test]
fn losing_an_executor_mid_query_fails_the_query_naming_the_executor() {
    let mut cluster = Cluster::start(2);
    let wh = sample_warehouse();
    // 47 million join pairs with a string built for each: about 3 s on 2 cores locally.
    let sql = "SELECT count(*), sum(length(concat(a.invoice_no, '/', b.invoice_no, '/', \
               a.customer_id, '/', b.customer_id))) \
               FROM fact_sales a JOIN fact_sales b ON a.product_id = b.product_id";
    let mut client = cluster.spawn_ecrm(wh, &["query", "-e", sql, "--format", "csv"]);
    let start = Instant::now();
    while cluster.written(1) == 0 {
        if let Some(status) = client.try_wait().unwrap() {
            panic!("the query ended ({status}) before executor 1 wrote anything");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "executor 1 got no task"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.executors[1].kill().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = client.kill();
            panic!(
                "the query hangs after losing an executor:\n{}",
                cluster.log("scheduler.log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = client.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.trim().is_empty(),
        "a result after the loss: {stdout}"
    );
    let lost = format!(
        "at 127.0.0.1:{} was lost while the job ran",
        cluster.ports[1]
    );
    assert!(stderr.contains(&lost), "{stderr}");
    assert!(stderr.contains("run it again"), "{stderr}");

    // The cluster goes on with the other executor: the next query gets the local answer.
    let sql = "SELECT count(*), sum(quantity) FROM fact_sales";
    let local = ecrm_ok(wh, &["query", "-e", sql, "--format", "csv"]);
    let out = cluster.ecrm(wh, &["query", "-e", sql, "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), local);
}

#[test]
fn a_wrong_or_down_scheduler_fails_within_seconds_naming_it() {
    let wh = sample_warehouse();
    let port = free_port();
    // Not a timed assertion (speed is for benchmarks): a guard that turns a hang into a
    // failure, far beyond the few seconds the connection attempt is given.
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args(["--warehouse", wh.to_str().unwrap(), "--engine", "ballista"])
        .args(["--scheduler", &format!("df://127.0.0.1:{port}")])
        .args(["query", "-e", "SELECT count(*) FROM fact_sales"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "scheduler df://127.0.0.1:{port}: cannot reach the scheduler"
        )),
        "{err}"
    );
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args(["--warehouse", wh.to_str().unwrap(), "--engine", "ballista"])
        .args(["--scheduler", "http://127.0.0.1:50050", "tables"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not start with df://"), "{err}");
}
