//! `ecrm cluster scheduler|executor`: a node of a Ballista cluster, run until stopped.

use clap::Subcommand;

use super::Context;
use crate::error::{Error, Result};
use crate::olap::cluster::{self, ExecutorParams, SchedulerParams};

/// The roles of `ecrm cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// Run a scheduler until stopped.
    Scheduler {
        /// Address to listen on (and to advertise): HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Seconds without a heartbeat after which an executor counts as lost; the jobs
        /// running then fail, naming it. Longer than the executors' heartbeat interval.
        #[arg(long, default_value_t = 60)]
        executor_timeout_seconds: u64,
    },
    /// Run an executor until stopped; it joins the scheduler of --scheduler.
    Executor {
        /// Address to listen on and advertise to the scheduler and the other executors.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Port for shuffle data (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port for the executor's gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at a time. Default: the cores.
        #[arg(long)]
        vcores: Option<usize>,
        /// Memory for its tasks, e.g. 4GiB. Default: Ballista's share of the host's memory.
        #[arg(long, value_name = "SIZE")]
        memory_pool_size: Option<bytesize::ByteSize>,
        /// Folder for shuffle files. Default: a temporary folder.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<String>,
        /// Seconds between heartbeats to the scheduler (shorter than its
        /// --executor-timeout-seconds).
        #[arg(long, default_value_t = 10)]
        heartbeat_interval_seconds: u64,
    },
}

/// Runs a cluster node in the process's runtime until it stops.
pub fn run(role: ClusterRole, cx: &Context<'_>) -> Result<()> {
    match role {
        ClusterRole::Scheduler {
            bind,
            executor_timeout_seconds,
        } => cx.block(cluster::run_scheduler(&SchedulerParams {
            bind,
            executor_timeout_seconds,
        })),
        ClusterRole::Executor {
            bind_host,
            port,
            grpc_port,
            vcores,
            memory_pool_size,
            work_dir,
            heartbeat_interval_seconds,
        } => {
            let scheduler = cx.global.scheduler.clone().ok_or_else(|| Error::Usage {
                arg: "--scheduler".into(),
                message: "an executor needs its scheduler: --scheduler df://HOST:PORT".into(),
            })?;
            let params = ExecutorParams {
                scheduler,
                bind_host,
                port,
                grpc_port,
                vcores,
                memory_pool_size: memory_pool_size.map(|b| b.as_u64()),
                work_dir,
                heartbeat_interval_seconds,
            };
            cx.block(cluster::run_executor(&params))
        }
    }
}
