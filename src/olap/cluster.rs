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
//!   (clustering, trees, FP-growth, PrefixSpan), cutting web events into sessions and SQL
//!   over in-memory results (segment profiles) stay in the client, on one node (see the README's "Scaling out").
//! - Why embedded rather than upstream binaries: one binary deploys everywhere, DataFusion
//!   compiles once, and executors run the same DataFusion as the client.
//! - Paths: the warehouse's files are registered by absolute path; every executor must see
//!   them at that path (a shared file system). An object store would need its URL scheme
//!   registered on the client and the executors instead.
//! - Partitions: the scheduler gives every query at least one partition per executor core
//!   it knows of (the client asks for two per local thread), so a client with few cores
//!   still spreads scans and aggregations over the whole cluster.
//! - Losing an executor fails the jobs running on the cluster, naming it; nothing is
//!   re-run (see [`run_scheduler`] for why). Defaults: 10 s heartbeats, lost after 60 s.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// The port of a scheduler URL without one (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long the client waits for the scheduler's port to answer before it gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `df://HOST[:PORT]` → (host, port).
pub fn parse_scheduler(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| {
        Error::param(
            "scheduler",
            format!("{url:?} {why}; expected df://HOST:PORT, e.g. df://127.0.0.1:50050"),
        )
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
    let config = ballista_safe(config);
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

/// `config` made safe for Ballista 55, as far as ecrm's tests reach. The client asks for
/// it and ecrm's scheduler enforces it, also for clients that did not ask.
/// - The static planner. The adaptive one (Ballista's default) answered a `UNION ALL` of two
///   aggregates in tests/sql/cube.slt with one branch's row four times and a row of the
///   other missing (upstream: apache/datafusion-ballista#2184), and cannot survive a lost
///   executor (#2029).
/// - No dynamic filters. With them the static planner's scheduler failed to take a task's
///   status ("Cannot swap HashJoinExec inputs after dynamic filters have been constructed")
///   and the job waited for ever (the feature mart's gap window over a join).
/// - No sorts split over partitions and merged: a window over such a sort failed on the
///   executors with "Expects PARTITION BY expression to be ordered" (the cube's `--compare
///   yoy`).
fn ballista_safe(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_adaptive_query_planner(false)
        .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
        .set_bool("datafusion.optimizer.repartition_sorts", false)
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
///
/// Losing an executor fails every job running at that moment, with a message naming it.
/// Ballista 55 would instead re-run the lost executor's part of the job, and that is not
/// safe: with its default adaptive planner the job hangs for ever ("Can't find active stage
/// to update stage outputs"; apache/datafusion-ballista#2029, #2150), and with the static
/// planner we saw it finish with rows counted twice. For the same reason a failed shuffle
/// fetch (a reader finding a lost executor's output gone) fails the stage at once
/// (`stage_max_failures` = 1) instead of re-running the stage that wrote it. A task that
/// fails on a live executor is still retried (`task_max_failures`, Ballista's 4): only a
/// successful attempt's output is ever read.
pub async fn run_scheduler(p: &SchedulerParams) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service};
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
    // Every executor core the scheduler knows of, kept by the watcher below; each query's
    // stages are given at least that many partitions, so scans and aggregations spread
    // over the whole cluster whatever the client's own cores.
    let cores = Arc::new(AtomicUsize::new(0));
    let sized = cores.clone();
    let session_builder: ballista_scheduler::SessionBuilder = Arc::new(move |c| {
        let cluster_cores = sized.load(Ordering::Relaxed);
        let c = if cluster_cores > c.target_partitions() {
            c.with_target_partitions(cluster_cores)
        } else {
            c
        };
        ballista_core::utils::default_session_builder(ballista_safe(c))
    });
    let config = SchedulerConfig {
        override_session_builder: Some(session_builder),
        bind_host: p.bind.ip().to_string(),
        external_host: p.bind.ip().to_string(),
        bind_port: p.bind.port(),
        executor_timeout_seconds: p.executor_timeout_seconds,
        // Look for silent executors often enough that a loss is noticed soon after the
        // timeout (Ballista looks every 15 s).
        expire_dead_executor_interval_seconds: (p.executor_timeout_seconds / 3).clamp(1, 15),
        no_executors_grace_period_seconds: p.executor_timeout_seconds,
        stage_max_failures: 1,
        ..SchedulerConfig::default()
    };
    config.validate().map_err(ballista_error)?;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista_error)?;
    let jobs = cluster.job_state();
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config.clone())
        .await
        .map_err(ballista_error)?;
    // Subscribed before the service starts, so every executor's registration is seen.
    let events = scheduler
        .cluster_state_events()
        .await
        .map_err(ballista_error)?;
    tokio::spawn(watch_executors(scheduler.clone(), jobs, cores, events));
    tracing::info!(bind = %p.bind, "ballista scheduler listening");
    start_grpc_service(p.bind, scheduler)
        .await
        .map_err(ballista_error)
}

/// How long a job failed for a lost executor keeps its message before the scheduler
/// cancels it to free its state. Cancelling rewrites the stored message to "Cancelled";
/// clients waiting on the job were told ours at once, and a client that asks instead of
/// waiting asks every 50 ms.
const FAILED_JOB_CLEAN_UP_DELAY: Duration = Duration::from_secs(10);

/// Counts the executors' cores (`cores`) as they come and go, and fails every running job
/// when an executor leaves the cluster (see [`run_scheduler`]).
///
/// The cluster state tells its subscribers about a removal before it hands Ballista's own
/// event loop the `ExecutorLost` that would reschedule the lost tasks, and a rescheduled
/// task needs a round trip to an executor before it can count; the job is failed first.
/// The failed job is saved to the job state (`jobs`): that is what tells the waiting
/// client, with the message.
async fn watch_executors(
    scheduler: ballista_scheduler::scheduler_server::SchedulerServer<
        datafusion_proto::protobuf::LogicalPlanNode,
        datafusion_proto::protobuf::PhysicalPlanNode,
    >,
    jobs: Arc<dyn ballista_scheduler::cluster::JobState>,
    cores: Arc<AtomicUsize>,
    mut events: ballista_scheduler::cluster::ClusterStateEventStream,
) {
    use ballista_core::serde::protobuf::job_status;
    use ballista_scheduler::cluster::ClusterStateEvent;
    use futures::StreamExt;
    let state = scheduler.state.clone();
    // Executor id → (address, cores), remembered at registration: the metadata is gone
    // once the executor has been removed.
    let mut known: std::collections::HashMap<String, (String, usize)> = Default::default();
    while let Some(event) = events.next().await {
        match event {
            ClusterStateEvent::RegisteredExecutor { executor_id } => {
                if let Ok(m) = state
                    .executor_manager
                    .get_executor_metadata(&executor_id)
                    .await
                {
                    let n = m.specification.vcores as usize;
                    let at = format!("{}:{}", m.host, m.port);
                    if let Some((_, old)) = known.insert(executor_id, (at, n)) {
                        cores.fetch_sub(old, Ordering::Relaxed);
                    }
                    cores.fetch_add(n, Ordering::Relaxed);
                }
            }
            ClusterStateEvent::RemovedExecutor { executor_id } => {
                let at = match known.remove(&executor_id) {
                    Some((at, n)) => {
                        cores.fetch_sub(n, Ordering::Relaxed);
                        at
                    }
                    None => "address unknown".into(),
                };
                let message = lost_executor_message(&executor_id, &at);
                for (job_id, job) in state.task_manager.get_running_job_cache().iter() {
                    let running = {
                        let mut graph = job.execution_graph.write().await;
                        // Failed already (by an earlier loss, not yet cleaned up).
                        if matches!(graph.status().status, Some(job_status::Status::Failed(_))) {
                            continue;
                        }
                        let running = graph.abort_running(message.clone());
                        if let Err(e) = jobs.save_job(job_id, &graph).await {
                            tracing::warn!(job = %job_id, "cannot save the failed job: {e}");
                        }
                        running
                    };
                    tracing::error!(job = %job_id, executor = %executor_id, "{message}");
                    if let Err(e) = state.executor_manager.cancel_running_tasks(running).await {
                        tracing::warn!(job = %job_id, "cannot cancel the job's tasks: {e}");
                    }
                    let (scheduler, job_id) = (scheduler.clone(), job_id.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(FAILED_JOB_CLEAN_UP_DELAY).await;
                        let _ = scheduler.cancel_job(job_id).await;
                    });
                }
            }
        }
    }
}

/// What a client is told when an executor was lost under its job.
fn lost_executor_message(executor_id: &str, address: &str) -> String {
    format!(
        "executor {executor_id} at {address} was lost while the job ran (no heartbeat, \
         stopped, or unreachable); ecrm does not let Ballista re-run part of a job, which \
         can hang or count rows twice: run it again (a pipeline: ecrm run --resume)"
    )
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
pub async fn run_executor(p: &ExecutorParams) -> Result<()> {
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
    tracing::info!(scheduler = %p.scheduler, port = p.port, "ballista executor starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(ballista_error)
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
