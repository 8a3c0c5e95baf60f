//! `salon`: one process running the signaling gateway and an embedded mediad.
//!
//! Prints exactly one line to stdout, `Salon: http://<addr>/`, once it is
//! listening (tests read it to find the port); logs go to stderr. Ctrl-C or
//! SIGTERM shuts down cleanly.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use salon_gateway::{Brand, MediaControl, ServeOptions, media_event_channel, serve};
use salon_mediad::{BackendChoice, Mediad, MediadConfig};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Salon: sovereign web conferencing (gateway + media plane).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// HTTP/WebSocket listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// IP address the media plane binds and announces in ICE candidates.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: IpAddr,
    /// UDP port of the first media worker (0 = any free port).
    #[arg(long, default_value_t = 10000)]
    media_port: u16,
    /// Media worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// UDP IO backend: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: BackendChoice,
    /// Operator name shown in the client's header and title.
    #[arg(long, default_value = "Salon")]
    brand_name: String,
    /// Primary colour of the client, `#rrggbb`.
    #[arg(long)]
    brand_color: Option<String>,
    /// Logo file (svg, png, webp or jpeg), served by the gateway itself.
    #[arg(long)]
    brand_logo: Option<std::path::PathBuf>,
}

fn brand(args: &Args) -> anyhow::Result<Brand> {
    let name = args.brand_name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control),
        "--brand-name must be 1 to 64 characters"
    );
    let color = match &args.brand_color {
        Some(c) => Some(Brand::parse_color(c).context("--brand-color must be #rrggbb")?),
        None => None,
    };
    let logo = match &args.brand_logo {
        Some(path) => {
            let ct = Brand::logo_content_type(path)
                .context("--brand-logo must be an .svg, .png, .webp or .jpeg file")?;
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --brand-logo {}", path.display()))?;
            anyhow::ensure!(bytes.len() <= 512 * 1024, "--brand-logo is over 512 KiB");
            Some((ct, bytes.into()))
        }
        None => None,
    };
    Ok(Brand {
        name: name.to_owned(),
        color,
        logo,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("salon-gw")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let brand = brand(&args)?;
    let (events_tx, events_rx) = media_event_channel();
    let config = MediadConfig {
        bind_ip: args.media_ip,
        announce_ip: args.media_ip,
        first_port: args.media_port,
        workers: args.workers,
        io_backend: args.io_backend,
    };
    let mediad = Arc::new(
        Mediad::start(config, move |event| {
            // Unbounded send: never blocks mediad's worker threads.
            let _ = events_tx.send(event);
        })
        .context("starting mediad")?,
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Install the signal handlers before announcing the address, so a
    // SIGTERM sent right after the line is read still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Salon: http://{addr}/").context("writing to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    let media: Arc<dyn MediaControl> = mediad.clone();
    serve(
        listener,
        media,
        events_rx,
        ServeOptions {
            brand,
            ..ServeOptions::default()
        },
        shutdown,
    )
    .await?;
    match Arc::try_unwrap(mediad) {
        Ok(mediad) => mediad.shutdown(),
        Err(_) => tracing::warn!("mediad still referenced at exit; not joined"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Registers for Ctrl-C (SIGINT) and SIGTERM now; the returned future
/// resolves when either arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
