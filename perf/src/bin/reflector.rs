//! `reflector [--listen ADDR] [--io-backend auto|uring|epoll]`: the bare
//! UDP reflector (see `salon_perf::reflector`). Prints `Reflector: ADDR`
//! on stdout once bound, then runs until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use salon_io::{BackendChoice, IoStats, Waker};
use salon_perf::reflector::Reflector;

/// Bare UDP reflector on Salon's io backends (no crypto).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to bind (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: String,
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
    match serve(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "reflector: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let choice: BackendChoice = cli.io_backend.parse()?;
    let backend = choice.resolve()?;
    let socket = salon_io::bind_udp(cli.listen)?;
    let addr = socket.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Reflector: {addr} ({backend})")?;
        out.flush()?;
    }
    let waker = Waker::new()?;
    let stats = IoStats::new();
    let mut core = Reflector::new();
    salon_io::run(socket, backend, &waker, &mut core, &stats)?;
    Ok(())
}
