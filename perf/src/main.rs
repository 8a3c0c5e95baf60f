//! `salon-perf run --scenario FILE [--target salon|janus|reflector|URL]
//! [--compare [LIST]] [--out PREFIX]` and `salon-perf check --scenario FILE`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use salon_perf::report::{compare_rows, compare_table};
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
    Run(Box<RunArgs>),
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
    /// What to drive: `salon` (spawned), `janus` (spawned in a network
    /// namespace), `reflector` (spawned bare UDP reflector), or the URL of
    /// a running gateway (e.g. http://127.0.0.1:8080/).
    #[arg(long, default_value = "salon", conflicts_with = "compare")]
    target: String,
    /// The `salon` binary to spawn (implies `--target salon`).
    #[arg(long)]
    spawn: Option<PathBuf>,
    /// The `salon` binary (default: `salon` next to this executable).
    #[arg(long)]
    salon: Option<PathBuf>,
    /// The reflector binary (default: `reflector` next to this executable).
    #[arg(long)]
    reflector: Option<PathBuf>,
    /// The `janus` binary.
    #[arg(long, default_value = "janus")]
    janus: PathBuf,
    /// Run the scenario against several targets back to back, interleaved
    /// round by round, and print medians and ratios. Labels: salon,
    /// salon-uring, salon-epoll, janus, reflector, reflector-uring,
    /// reflector-epoll.
    #[arg(long, num_args = 0..=1, default_missing_value = "salon-uring,salon-epoll,janus,reflector", value_delimiter = ',')]
    compare: Option<Vec<String>>,
    /// Rounds of `--compare` (A, B, A, B…).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// `--io-backend` for the spawned salon or reflector: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: String,
    /// `--workers` for the spawned salon.
    #[arg(long, default_value_t = 1)]
    sut_workers: usize,
    /// Harness media threads (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Report prefix: writes PREFIX.json, PREFIX.svg (and PREFIX.salon.log);
    /// with `--compare`, PREFIX-LABEL-ROUND.* and PREFIX-compare.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds after the ramp for everybody to connect.
    #[arg(long, default_value_t = 15.0)]
    connect_grace_s: f64,
    /// A participant whose ICE/DTLS does not connect in time is counted
    /// (`participants_failed`) and left out, instead of ending the run.
    #[arg(long)]
    tolerate_failures: bool,
    /// Join this room of a running gateway (`--target URL`) instead of
    /// rooms named after the scenario: the harness's participants fill a
    /// meeting people are already in. One-room scenarios only.
    #[arg(long)]
    room: Option<String>,
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
    match cli.command {
        Cmd::Check { scenario } => match Scenario::load(&scenario) {
            Ok(s) => {
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "{}: {} rooms, {} participants, video {:.0} %{}, ramp {:.1} s, duration {} s",
                    s.name,
                    s.rooms,
                    s.participants(),
                    s.video_fraction * 100.0,
                    if s.media.simulcast {
                        " (simulcast l/m/h)"
                    } else {
                        ""
                    },
                    s.ramp_s(),
                    s.duration_s
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr().lock(), "{}: {e}", scenario.display());
                ExitCode::from(2)
            }
        },
        Cmd::Run(a) => run_cmd(*a),
    }
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A label (`salon-epoll`, `janus`, a URL…) as a target and an io backend.
fn target_of(label: &str, a: &RunArgs) -> Result<(Target, String), String> {
    let salon = || {
        a.spawn
            .clone()
            .or_else(|| a.salon.clone())
            .unwrap_or_else(|| sibling("salon"))
    };
    let reflector = || a.reflector.clone().unwrap_or_else(|| sibling("reflector"));
    let (kind, backend) = match label.split_once('-') {
        Some((k, b @ ("uring" | "epoll" | "auto"))) => (k, b.to_owned()),
        _ => (label, a.io_backend.clone()),
    };
    Ok(match kind {
        "salon" => (Target::Spawn(salon()), backend),
        "reflector" => (Target::Reflector(reflector()), backend),
        "janus" => (Target::Janus(a.janus.clone()), backend),
        _ if label.contains(':') => (Target::Url(label.to_owned()), backend),
        _ => return Err(format!("unknown target {label:?}")),
    })
}

fn options(
    a: &RunArgs,
    scenario: &Scenario,
    label: &str,
    out: Option<PathBuf>,
) -> Result<RunOptions, String> {
    let (target, io_backend) = target_of(label, a)?;
    Ok(RunOptions {
        scenario: scenario.clone(),
        target,
        io_backend,
        sut_workers: a.sut_workers.max(1),
        threads: a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        out,
        progress: !a.quiet,
        connect_grace: Duration::from_secs_f64(a.connect_grace_s.max(1.0)),
        tolerate_failures: a.tolerate_failures,
        room: a.room.clone(),
    })
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let s = p.to_string_lossy();
    let base = s.strip_suffix(".json").unwrap_or(&s);
    PathBuf::from(format!("{base}-{suffix}"))
}

fn run_cmd(a: RunArgs) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let scenario = match Scenario::load(&a.scenario) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", a.scenario.display());
            return ExitCode::from(2);
        }
    };
    let labels: Vec<String> = match &a.compare {
        Some(l) => l
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None if a.spawn.is_some() => vec!["salon".to_owned()],
        None => vec![a.target.clone()],
    };
    for l in &labels {
        if let Err(e) = target_of(l, &a) {
            let _ = writeln!(err, "{e}");
            return ExitCode::from(2);
        }
    }
    // Janus ignores loopback interfaces: everything runs in a namespace
    // with a veth holding 127.0.0.2 (Salon and the reflector too, for
    // fairness). Re-run this very command inside it.
    if labels.iter().any(|l| l.starts_with("janus")) && !salon_perf::janus::in_namespace() {
        drop(err);
        return match salon_perf::janus::reexec_in_namespace() {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                let _ = writeln!(std::io::stderr().lock(), "network namespace: {e}");
                ExitCode::from(2)
            }
        };
    }
    drop(err);
    if a.compare.is_none() {
        let Some(label) = labels.first() else {
            return ExitCode::from(2);
        };
        let opts = match options(&a, &scenario, label, a.out.clone()) {
            Ok(o) => o,
            Err(_) => return ExitCode::from(2),
        };
        let report = run(&opts);
        let _ = write!(std::io::stdout().lock(), "{}", report.table());
        return finish(&report, a.out.as_deref());
    }
    let mut runs = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for round in 1..=a.rounds.max(1) {
        for label in &labels {
            let out = a
                .out
                .as_deref()
                .map(|p| with_suffix(p, &format!("{label}-{round}")));
            let Ok(opts) = options(&a, &scenario, label, out.clone()) else {
                return ExitCode::from(2);
            };
            let _ = writeln!(
                std::io::stderr().lock(),
                "=== {} against {label}, round {round}",
                scenario.name
            );
            let report = run(&opts);
            let _ = write!(
                std::io::stdout().lock(),
                "--- {label} (round {round})\n{}",
                report.table()
            );
            if finish(&report, out.as_deref()) != ExitCode::SUCCESS {
                code = ExitCode::from(1);
            }
            runs.push((label.clone(), report));
            // Let sockets drain and the neighbours' load settle between runs.
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let rows = compare_rows(&runs);
    let _ = write!(
        std::io::stdout().lock(),
        "=== {} — medians over {} round(s)\n{}",
        scenario.name,
        a.rounds.max(1),
        compare_table(&rows)
    );
    if let Some(p) = &a.out {
        let path = with_suffix(p, "compare.json");
        let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            let _ = writeln!(std::io::stderr().lock(), "writing {}: {e}", path.display());
        }
    }
    code
}

fn finish(report: &salon_perf::report::Report, out: Option<&Path>) -> ExitCode {
    let mut err = std::io::stderr().lock();
    if let Some(out) = out {
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
