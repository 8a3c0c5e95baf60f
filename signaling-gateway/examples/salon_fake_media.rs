//! The gateway with a media plane that does nothing: for exercising the
//! browser client and the signaling e2e tests without mediad.
//!
//! Accepts the same flags as `salon` (only `--listen` and `--admin-listen`
//! are used) and prints the same `Salon: http://<addr>/` and `Salon admin:
//! http://<addr>/` lines. No Lua policy and no tokens: the
//! hub's built-in open rules (anyone creates and joins, the first one in
//! moderates):
//!
//!     cargo run -p salon-gateway --example salon_fake_media
//!     SALON_BIN=../../target/debug/examples/salon_fake_media node --test signaling.test.mjs

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use salon_gateway::control::Command;
use salon_gateway::{AdminListener, MediaControl, ServeOptions, media_event_channel, serve};

/// Logs commands and answers nothing.
struct NoMedia;

impl MediaControl for NoMedia {
    fn send(&self, cmd: Command) {
        tracing::debug!(participant = %cmd.participant(), "media command dropped (fake)");
    }

    fn metrics_text(&self) -> String {
        String::new()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().context("default address")?;
    let mut admin_listen = Some("127.0.0.1:9091".parse().context("default address")?);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().context("flag without a value")?;
        if arg == "--listen" {
            listen = value.parse().context("--listen")?;
        } else if arg == "--admin-listen" {
            admin_listen = match value.as_str() {
                "off" => None,
                a => Some(a.parse().context("--admin-listen")?),
            };
        }
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let admin = admin_listen
        .map(AdminListener::bind)
        .transpose()
        .context("--admin-listen")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Salon: http://{}/", listener.local_addr()?)?;
        if let Some(admin) = &admin {
            writeln!(out, "Salon admin: http://{}/", admin.local_addr()?)?;
        }
        out.flush()?;
    }
    let (_events_tx, events_rx) = media_event_channel();
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    serve(
        listener,
        Arc::new(NoMedia),
        events_rx,
        ServeOptions {
            admin,
            metrics_on_public: false,
            ..ServeOptions::default()
        },
        shutdown,
    )
    .await
}
