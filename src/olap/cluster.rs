//! Scale-out on Apache DataFusion Ballista: the client session, and the scheduler and
//! executor embedded in ecrm (`ecrm cluster scheduler|executor`).
//!
//! ```text
//! ecrm query / cube / features / churn / pipeline sql stages
//!    │  olap::session(EngineOptions { scheduler: Some("df://host:50050"), .. })
//!    ▼
//! ecrm cluster scheduler --bind host:50050      plans stages, hands out tasks
//!    ▲ heartbeats, task status      │ tasks
//!    │                              ▼
//! ecrm cluster executor --scheduler df://host:50050   (one per machine, N of them)
//!    reads the warehouse's Parquet files at the same absolute paths as the client
//! ```
//!
//! - Input: a scheduler URL `df://HOST[:PORT]` (port 50050 by default).
//! - What runs where: every SQL question over warehouse tables runs on the cluster; mining
//!   (clustering, trees, FP-growth, PrefixSpan) and SQL over in-memory results (segment
//!   profiles) stay in the client, on one node (see the README's "Scaling out").
//! - Why embedded rather than upstream binaries: one binary deploys everywhere, DataFusion
//!   compiles once, and executors run the same DataFusion as the client.
//! - Paths: the warehouse's files are registered by absolute path; every executor must see
//!   them at that path (a shared file system). An object store would need its URL scheme
//!   registered on the client and the executors instead.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// The port of a scheduler URL without one (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long the client waits for the scheduler's port to answer before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `df://HOST[:PORT]` → (host, port).
pub fn parse_scheduler(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| Error::Usage {
        arg: "--scheduler".into(),
        message: format!("{url:?} {why}; expected df://HOST:PORT, e.g. df://127.0.0.1:50050"),
    };
    let rest = url
        .strip_prefix("df://")
        .ok_or_else(|| bad("does not start with df://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("has a port that is not a number"))?,
        ),
        None => (rest, DEFAULT_SCHEDULER_PORT),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok((host.to_string(), port))
}

/// A client session whose queries run on the cluster behind `url`, with `config`'s
/// settings. Fails within a few seconds, naming the address, when nothing answers there.
pub async fn remote_session(url: &str, config: SessionConfig) -> Result<SessionContext> {
    let (host, port) = parse_scheduler(url)?;
    reachable(url, &host, port)?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(&format!("df://{host}:{port}"), state)
        .await
        .map_err(|e| Error::Engine {
            scheduler: url.to_string(),
            message: e.strip_backtrace(),
        })
}

/// Checks that the scheduler's port accepts a connection (the Ballista client itself would
/// only find out at the first query, after its own retries).
fn reachable(url: &str, host: &str, port: u16) -> Result<()> {
    let unreachable = |why: String| Error::Engine {
        scheduler: url.to_string(),
        message: format!(
            "cannot reach the scheduler: {why} (is `ecrm cluster scheduler` running there?)"
        ),
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(unreachable(last))
}

/// What `ecrm cluster scheduler` needs.
#[derive(Debug, Clone)]
pub struct SchedulerParams {
    pub bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor counts as lost.
    pub executor_timeout_seconds: u64,
}

/// Runs a scheduler until the process is stopped.
pub fn run_scheduler(p: &SchedulerParams) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let config = SchedulerConfig {
        bind_host: p.bind.ip().to_string(),
        external_host: p.bind.ip().to_string(),
        bind_port: p.bind.port(),
        executor_timeout_seconds: p.executor_timeout_seconds,
        no_executors_grace_period_seconds: p.executor_timeout_seconds,
        ..SchedulerConfig::default()
    };
    runtime()?.block_on(async {
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .map_err(ballista_error)?;
        tracing::info!(bind = %p.bind, "ballista scheduler listening");
        ballista_scheduler::scheduler_process::start_server(cluster, p.bind, Arc::new(config))
            .await
            .map_err(ballista_error)
    })
}

/// What `ecrm cluster executor` needs.
#[derive(Debug, Clone)]
pub struct ExecutorParams {
    pub scheduler: String,
    /// Address to bind and advertise (the scheduler and other executors connect to it).
    pub bind_host: String,
    /// Arrow Flight port (shuffle data) and gRPC port.
    pub port: u16,
    pub grpc_port: u16,
    /// Task slots (default: the cores).
    pub vcores: Option<usize>,
    /// Memory for the executor's tasks in bytes (default: Ballista's share of the host).
    pub memory_pool_size: Option<u64>,
    /// Folder for shuffle files (default: a temporary folder).
    pub work_dir: Option<String>,
    pub heartbeat_interval_seconds: u64,
}

/// Runs an executor until the process is stopped.
pub fn run_executor(p: &ExecutorParams) -> Result<()> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let (host, port) = parse_scheduler(&p.scheduler)?;
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: p.bind_host.clone(),
        external_host: Some(p.bind_host.clone()),
        port: p.port,
        grpc_port: p.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 10,
        vcores: p.vcores.unwrap_or(defaults.vcores),
        work_dir: p.work_dir.clone(),
        memory_pool_size: p.memory_pool_size,
        executor_heartbeat_interval_seconds: p.heartbeat_interval_seconds,
        print_thread_info: false,
        ..defaults
    };
    runtime()?.block_on(async {
        tracing::info!(scheduler = %p.scheduler, port = p.port, "ballista executor starting");
        start_executor_process(Arc::new(config))
            .await
            .map_err(ballista_error)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Ballista's planners recurse deeply on big plans (its binaries use 32 MB too).
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

fn ballista_error(e: ballista_core::error::BallistaError) -> Error {
    Error::Engine {
        scheduler: String::new(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls_are_checked() {
        assert_eq!(
            parse_scheduler("df://10.0.0.5:6000").unwrap(),
            ("10.0.0.5".to_string(), 6000)
        );
        assert_eq!(
            parse_scheduler("df://sched").unwrap(),
            ("sched".to_string(), DEFAULT_SCHEDULER_PORT)
        );
        for bad in ["http://x:1", "df://:1", "df://x:port"] {
            assert!(parse_scheduler(bad).is_err(), "{bad}");
        }
    }
}
