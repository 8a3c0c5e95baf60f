//! `salon-perf run --scenario FILE [--target URL | --spawn SALON] [--out PREFIX]`

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use salon_perf::run::{RunOptions, Target, run};
use salon_perf::scenario::Scenario;

/// Salon's load harness.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario.
    Run(RunArgs),
    /// Parse and print a scenario (no traffic).
    Check {
        /// Scenario file.
        #[arg(long)]
        scenario: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario file (TOML).
    #[arg(long)]
    scenario: PathBuf,
    /// A running gateway, e.g. http://127.0.0.1:8080/.
    #[arg(long, conflicts_with = "spawn", required_unless_present = "spawn")]
    target: Option<String>,
    /// Spawn this `salon` binary on loopback and measure it.
    #[arg(long)]
    spawn: Option<PathBuf>,
    /// `--io-backend` for the spawned salon: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: String,
    /// `--workers` for the spawned salon.
    #[arg(long, default_value_t = 1)]
    sut_workers: usize,
    /// Harness media threads (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Report prefix: writes PREFIX.json, PREFIX.svg (and PREFIX.salon.log).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds after the ramp for everybody to connect.
    #[arg(long, default_value_t = 15.0)]
    connect_grace_s: f64,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let mut err = std::io::stderr().lock();
    match cli.command {
        Cmd::Check { scenario } => match Scenario::load(&scenario) {
            Ok(s) => {
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{}: {} rooms, {} participants, video {:.0} %, ramp {:.1} s, duration {} s",
                    s.name,
                    s.rooms,
                    s.participants(),
                    s.video_fraction * 100.0,
                    s.ramp_s(),
                    s.duration_s
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = writeln!(err, "{}: {e}", scenario.display());
                ExitCode::from(2)
            }
        },
        Cmd::Run(a) => {
            let scenario = match Scenario::load(&a.scenario) {
                Ok(s) => s,
                Err(e) => {
                    let _ = writeln!(err, "{}: {e}", a.scenario.display());
                    return ExitCode::from(2);
                }
            };
            let target = match (a.target, a.spawn) {
                (Some(t), _) => Target::Url(t),
                (None, Some(p)) => Target::Spawn(p),
                (None, None) => {
                    let _ = writeln!(err, "give --target URL or --spawn PATH");
                    return ExitCode::from(2);
                }
            };
            let threads = a
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            drop(err);
            let opts = RunOptions {
                scenario,
                target,
                io_backend: a.io_backend,
                sut_workers: a.sut_workers.max(1),
                threads,
                out: a.out.clone(),
                progress: !a.quiet,
                connect_grace: Duration::from_secs_f64(a.connect_grace_s.max(1.0)),
            };
            let report = run(&opts);
            let _ = write!(std::io::stdout().lock(), "{}", report.table());
            let mut err = std::io::stderr().lock();
            if let Some(out) = &a.out {
                match report.write(out) {
                    Ok((j, s)) => {
                        let _ = writeln!(err, "report: {} and {}", j.display(), s.display());
                    }
                    Err(e) => {
                        let _ = writeln!(err, "writing the report: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            if report.complete {
                ExitCode::SUCCESS
            } else {
                let _ = writeln!(
                    err,
                    "run incomplete: {}",
                    report.error.as_deref().unwrap_or("unknown")
                );
                ExitCode::from(1)
            }
        }
    }
}
