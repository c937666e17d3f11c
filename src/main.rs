//! The `ecrm` binary: parse the command line, make the process's one async runtime, run,
//! map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use ecrm::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.global.log_format;
    init_logging(cli.global.quiet, log_format);
    let outcome = ecrm::olap::runtime(cli.global.threads.map(usize::from))
        .and_then(|rt| ecrm::cli::run(cli, &rt));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `ecrm query ... | head` closing the pipe early is success, as in ripgrep.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // JSON logs get the error as a log record too, for log collectors.
            if log_format == LogFormat::Json {
                tracing::error!(exit_code = e.exit_code(), "{e}");
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr, as text or JSON lines; `ECRM_LOG` (e.g. `debug`) overrides the level.
/// The embedded Ballista scheduler and executor (`ecrm cluster`) log at ecrm's level too.
fn init_logging(quiet: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let d = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("ECRM_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "ecrm={d},ballista_scheduler={d},ballista_executor={d},warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
