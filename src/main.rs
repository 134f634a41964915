//! `betterworld`: every role of the platform in one binary (see `cli` for the subcommands).
//!
//! `main` installs the TLS provider and the telemetry, runs the subcommand on a multi-threaded tokio
//! runtime, and enforces the shutdown deadline: once a termination signal arrives the process exits
//! within `BW_SHUTDOWN_GRACE` + 5 s, whatever is still running.

use std::{process::ExitCode, time::Duration};

use betterworld::{cli, roles};

use bw_infra::shutdown::Shutdown;
use clap::Parser;

/// Time allowed after the grace period for pools to close and traces to flush.
const HARD_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    if !betterworld::install_crypto_provider() {
        eprintln!("error: a TLS crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `events export` writes the log to stdout, `bench` its table: their log lines go to stderr.
    let to_stderr = matches!(
        cli.command,
        cli::Command::Events(cli::EventsCommand::Export { .. }) | cli::Command::Bench(_)
    );
    let telemetry = match runtime
        .block_on(async { bw_infra::telemetry::init_to(&cli.common.telemetry, to_stderr) })
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };

    let shutdown = Shutdown::new();
    let deadline = cli.common.shutdown_grace + HARD_DEADLINE_MARGIN;
    runtime.spawn(enforce_deadline(shutdown.clone(), deadline));
    let result = runtime.block_on(roles::run(cli.common, cli.command, shutdown));
    runtime.shutdown_timeout(HARD_DEADLINE_MARGIN);
    telemetry.shutdown();

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = describe(&e);
            tracing::error!(error = %line, "exiting");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Once shutdown is triggered, exits the process after `deadline` if it has not exited by itself.
/// A plain thread, so a blocked runtime cannot keep it from firing.
async fn enforce_deadline(shutdown: Shutdown, deadline: Duration) {
    shutdown.triggered().await;
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!("error: shutdown did not finish within {deadline:?}; exiting");
        std::process::exit(3);
    });
}

/// The error and its causes on one line, skipping causes whose text the line already contains (our
/// error types often include their source's message).
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = one_line(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Error text on one line, so an operator sees the whole cause at a glance.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
