//! Scale-out: a Ballista cluster of one scheduler and two executors, all `ecrm cluster`
//! processes on 127.0.0.1 started by the tests themselves, answers like the local engine;
//! a wrong scheduler address fails fast and clearly.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
            dir,
        };
        for k in 0..n {
            let work = cluster.dir.path().join(format!("work{k}"));
            let child = Command::new(&bin)
                .args(["--scheduler", &url, "cluster", "executor"])
                .args(["--port", &free_port().to_string()])
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

/// The five peer questions of `../shared/peers/olap_queries.sql`, over a view `sales` of the
/// sample warehouse's order lines.
fn peer_questions() -> String {
    let peers = super::support::repo().join("../shared/peers/olap_queries.sql");
    let q = std::fs::read_to_string(&peers).unwrap_or_else(|e| panic!("{}: {e}", peers.display()));
    format!(
        "CREATE VIEW sales AS SELECT invoice_no, invoice_ts, country, customer_id, \
         product_id AS stock_code, quantity, unit_price, is_return AS is_cancellation \
         FROM fact_sales;\n{q}"
    )
}

/// Cells equal as text, or as numbers within a relative 1e-9 (sums of doubles may add up in
/// another order on the cluster).
fn assert_same_rows(local: &str, cluster: &str, what: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (local.lines().collect(), cluster.lines().collect());
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
        let work = cluster.dir.path().join(format!("work{k}"));
        let used = std::fs::read_dir(&work).map_or(0, |d| d.count());
        assert!(used > 0, "executor {k} ran no task");
    }
}

#[test]
fn a_wrong_or_down_scheduler_fails_within_seconds_naming_it() {
    let wh = sample_warehouse();
    let port = free_port();
    let started = Instant::now();
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args(["--warehouse", wh.to_str().unwrap(), "--engine", "ballista"])
        .args(["--scheduler", &format!("df://127.0.0.1:{port}")])
        .args(["query", "-e", "SELECT count(*) FROM fact_sales"])
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
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = assert_cmd::Command::cargo_bin("ecrm")
        .unwrap()
        .args(["--warehouse", wh.to_str().unwrap(), "--engine", "ballista"])
        .args(["--scheduler", "http://127.0.0.1:50050", "tables"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not start with df://"), "{err}");
}
