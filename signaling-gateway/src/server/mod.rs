//! The tokio/hyper driver around the [`Hub`]: HTTP routes, WebSocket
//! sessions, and the hub task.
//!
//! Tasks:
//! - one accept loop, one task per HTTP connection (hyper);
//! - one task per WebSocket: reads frames into the hub's input channel and
//!   writes the messages the hub routes to it;
//! - one hub task owning the [`Hub`]: it takes socket inputs and media events,
//!   then drains the hub's outputs to sockets and to the media plane.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::control::ParticipantId;
use crate::hub::{Hub, Now, Output, PadConnId};
use crate::metrics::Metrics;
use crate::pad::MAX_PAD_FRAME_BYTES;
use crate::protocol::{ErrorCode, MAX_FRAME_BYTES, ServerMessage, validate_room};
use crate::{MediaControl, MediaEventReceiver, web};
use salon_plugins::{Authenticator, PolicyConfig, PolicyHost};

/// Tunables of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Frames up to this size are read and, if over [`MAX_FRAME_BYTES`],
    /// answered with `too-large` (socket stays open). Bigger ones close the
    /// socket (close code 1009).
    pub ws_hard_limit: usize,
    /// Messages queued to one socket before it is dropped as a slow consumer.
    pub ws_outbound_queue: usize,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Operator branding, served as `/config.json` (and `/brand/logo`).
    pub brand: Brand,
    /// The Lua room policy (`None`: the built-in open rules — anyone may
    /// create and join a room, the first one in moderates). Loaded when
    /// [`serve`] starts: a policy that does not load is an error.
    pub policy: Option<PolicyConfig>,
    /// How often the hub task calls `reload_if_changed` on the policy.
    pub policy_poll: Duration,
    /// Reload the policy on `SIGHUP` (the binary sets this; tests poll).
    pub reload_on_sighup: bool,
    /// Verifies `join` tokens (`None`: every token is refused).
    pub auth: Option<Arc<Authenticator>>,
    /// How long a denied guest waits before knocking again.
    pub deny_cooldown: Duration,
    /// Last-N of rooms whose policy sets none (`None`: no limit).
    pub default_last_n: Option<u32>,
    /// How long a participant whose signaling socket dropped keeps its
    /// place (zero, the library default: it leaves at once; the `salon`
    /// binary defaults to 30 s).
    pub reconnect_grace: Duration,
    /// The hub's abuse bounds (lobby cap, knock limits, kick ban, pacing of
    /// state broadcasts and pad answers, pad queue bound).
    pub hub_limits: crate::hub::HubLimits,
}

/// Operator branding of the client.
#[derive(Debug, Clone)]
pub struct Brand {
    /// Shown in the header and the page title.
    pub name: String,
    /// Primary colour, `#rrggbb` (validated by [`Brand::parse_color`]).
    pub color: Option<String>,
    /// Logo: content type and bytes, served from `/brand/logo` (same
    /// origin: the CSP stays `default-src 'self'`).
    pub logo: Option<(&'static str, Bytes)>,
}

impl Default for Brand {
    fn default() -> Self {
        Self {
            name: "Salon".to_owned(),
            color: None,
            logo: None,
        }
    }
}

impl Brand {
    /// Accepts `#rrggbb` only.
    pub fn parse_color(s: &str) -> Option<String> {
        let hex = s.strip_prefix('#')?;
        (hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_owned())
    }

    /// Content type of a logo file by its extension (svg, png, webp, jpeg).
    pub fn logo_content_type(path: &std::path::Path) -> Option<&'static str> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "svg" => Some("image/svg+xml"),
            "png" => Some("image/png"),
            "webp" => Some("image/webp"),
            "jpg" | "jpeg" => Some("image/jpeg"),
            _ => None,
        }
    }

    fn config_json(&self) -> String {
        serde_json::json!({
            "brand": {
                "name": self.name,
                "color": self.color,
                "logo": self.logo.as_ref().map(|_| "/brand/logo"),
            }
        })
        .to_string()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            ws_hard_limit: 1024 * 1024,
            ws_outbound_queue: 256,
            shutdown_grace: Duration::from_secs(3),
            brand: Brand::default(),
            policy: None,
            policy_poll: Duration::from_secs(2),
            reload_on_sighup: false,
            auth: None,
            deny_cooldown: crate::hub::DEFAULT_DENY_COOLDOWN,
            default_last_n: None,
            reconnect_grace: Duration::ZERO,
            hub_limits: crate::hub::HubLimits::default(),
        }
    }
}

/// What a socket task tells the hub task.
#[derive(Debug)]
enum HubInput {
    Open {
        id: ParticipantId,
        tx: mpsc::Sender<SocketOut>,
        /// abuse-hub: the client's address (bans, knock limits).
        peer: Option<std::net::IpAddr>,
    },
    Frame {
        id: ParticipantId,
        text: String,
    },
    Refused {
        id: ParticipantId,
        code: ErrorCode,
    },
    Closed {
        id: ParticipantId,
    },
    PadOpen {
        conn: PadConnId,
        token: String,
        tx: mpsc::Sender<PadOut>,
    },
    PadFrame {
        conn: PadConnId,
        data: Vec<u8>,
    },
    PadRefused {
        conn: PadConnId,
        code: u16,
        reason: &'static str,
    },
    PadClosed {
        conn: PadConnId,
    },
    /// abuse-hub: a pad socket wrote a frame of `bytes` (the hub bounds
    /// what is queued and not written).
    PadSent {
        conn: PadConnId,
        bytes: usize,
    },
}

/// abuse-hub: the client's address of an HTTP connection, in each request's
/// extensions (the upgrade hands it to the hub).
#[derive(Debug, Clone, Copy)]
struct PeerAddr(std::net::IpAddr);

/// What the hub task tells a signaling socket task.
#[derive(Debug)]
enum SocketOut {
    Message(ServerMessage),
    Close(u16, &'static str),
}

/// What the hub task tells a pad socket task.
#[derive(Debug)]
enum PadOut {
    Frame(Bytes),
    Close(u16, &'static str),
}

/// Pad frames up to this size reach the document (which refuses those over
/// [`MAX_PAD_FRAME_BYTES`] with `pad-too-large`); bigger ones close the
/// socket at the WebSocket layer (1009).
const PAD_HARD_LIMIT: usize = MAX_PAD_FRAME_BYTES + 64 * 1024;

/// Process-wide pad socket counter.
static NEXT_PAD_CONN: AtomicU64 = AtomicU64::new(1);

/// A socket that cannot take a message for this long is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping interval on idle and busy sockets alike.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// State shared by every connection.
struct Shared {
    media: Arc<dyn MediaControl>,
    hub_tx: mpsc::Sender<HubInput>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    /// Held by every WebSocket task; shutdown waits until all are dropped.
    alive: mpsc::Sender<()>,
    opts: ServeOptions,
}

/// Serves HTTP and WebSocket signaling on `listener` until `shutdown`
/// resolves, then closes every socket and returns.
///
/// Media commands go to `media`; media events are read from `events` (the
/// receiver of [`crate::media_event_channel`]).
pub async fn serve(
    listener: TcpListener,
    media: Arc<dyn MediaControl>,
    events: MediaEventReceiver,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut hub = Hub::new();
    if let Some(config) = &opts.policy {
        let host = PolicyHost::new(config.clone()).map_err(|e| {
            anyhow::anyhow!(
                "loading the policy {}/{}.lua: {e}",
                config.dir.display(),
                config.entry
            )
        })?;
        hub.set_policy(host);
    }
    if let Some(auth) = &opts.auth {
        hub.set_auth(auth.clone());
    }
    hub.set_deny_cooldown(opts.deny_cooldown);
    hub.set_default_last_n(opts.default_last_n);
    hub.set_reconnect_grace(opts.reconnect_grace);
    hub.set_limits(opts.hub_limits.clone());
    let reload = Reload {
        poll: opts.policy_poll,
        sighup: opts.reload_on_sighup,
    };
    let (hub_tx, hub_rx) = mpsc::channel(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        media: media.clone(),
        hub_tx,
        metrics: metrics.clone(),
        stop: stop_rx.clone(),
        alive: alive_tx,
        opts: opts.clone(),
    });
    let hub_task = tokio::spawn(run_hub(
        hub, reload, media, hub_rx, events, metrics, stop_rx,
    ));

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Slow-loris guard: a client has 10 s to send its request headers.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok((stream, peer)) => (stream, PeerAddr(peer.ip())),
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let shared = shared.clone();
                    req.extensions_mut().insert(peer);
                    async move { Ok::<_, Infallible>(route(req, shared)) }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = opts.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http connections still open after the grace period");
    }
    // Every WebSocket task holds a clone of `alive`; wait until all are gone.
    drop(shared);
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        tracing::warn!("websocket sessions still open after the grace period");
    }
    let _ = tokio::time::timeout(grace, hub_task).await;
    Ok(())
}

/// When the hub task reloads the policy.
#[derive(Debug, Clone, Copy)]
struct Reload {
    poll: Duration,
    sighup: bool,
}

/// A stream of SIGHUPs, or one that never fires.
struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn new(enabled: bool) -> Self {
        if !enabled {
            return Self(None);
        }
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Self(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; policy reload by polling only");
                Self(None)
            }
        }
    }

    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Reloads the policy (`force`: SIGHUP; else only if its files changed).
/// A failure keeps the previous policy; the host logs it at `warn` and
/// counts it (`salon_policy_failures_total{hook="load"}`).
fn reload_policy(hub: &mut Hub, force: bool) {
    let Some(policy) = hub.policy_mut() else {
        return;
    };
    let result = if force {
        policy.reload().map(|()| true)
    } else {
        policy.reload_if_changed()
    };
    match result {
        Ok(true) => tracing::debug!("policy reloaded by the hub task"),
        Ok(false) => {}
        // Logged (with the Lua message, for the operator) by the host.
        Err(_) => {}
    }
}

/// The hub task: owns the [`Hub`], the sockets' senders and the media handle.
async fn run_hub(
    mut hub: Hub,
    reload: Reload,
    media: Arc<dyn MediaControl>,
    mut inputs: mpsc::Receiver<HubInput>,
    mut events: MediaEventReceiver,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut hangup = Hangup::new(reload.sighup && hub.policy().is_some());
    let mut poll = tokio::time::interval(reload.poll.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sockets: HashMap<ParticipantId, mpsc::Sender<SocketOut>> = HashMap::new();
    let mut pads: HashMap<PadConnId, mpsc::Sender<PadOut>> = HashMap::new();
    let mut events_open = true;
    loop {
        tokio::select! {
            input = inputs.recv() => match input {
                Some(HubInput::Open { id, tx, peer }) => {
                    if sockets.contains_key(&id) || hub.id_in_use(id) {
                        // Two random ids met (about n²/2^54): refuse the
                        // new socket (dropping `tx` closes it); its client
                        // connects again under another id.
                        tracing::warn!(participant = %id, "participant id collision, socket refused");
                        continue;
                    }
                    sockets.insert(id, tx);
                    hub.handle_open_from(id, peer);
                }
                Some(HubInput::Frame { id, text }) => hub.handle_frame(id, &text, Now::system()),
                Some(HubInput::Refused { id, code }) => hub.handle_refused(id, code),
                Some(HubInput::Closed { id }) => {
                    sockets.remove(&id);
                    hub.handle_close(id, Now::system());
                }
                Some(HubInput::PadOpen { conn, token, tx }) => {
                    pads.insert(conn, tx);
                    hub.handle_pad_open(conn, &token);
                }
                Some(HubInput::PadFrame { conn, data }) => {
                    Metrics::inc(&metrics.pad_frames_in);
                    hub.handle_pad_frame(conn, &data, Now::system());
                }
                Some(HubInput::PadSent { conn, bytes }) => hub.handle_pad_sent(conn, bytes),
                Some(HubInput::PadRefused { conn, code, reason }) => {
                    hub.handle_pad_refused(conn, code, reason);
                }
                Some(HubInput::PadClosed { conn }) => {
                    pads.remove(&conn);
                    hub.handle_pad_close(conn);
                }
                None => break,
            },
            event = events.recv(), if events_open => match event {
                Some(event) => {
                    Metrics::inc(&metrics.media_events);
                    hub.handle_media_event(event);
                }
                None => events_open = false,
            },
            () = hangup.recv() => reload_policy(&mut hub, true),
            _ = poll.tick(), if hub.policy().is_some() => reload_policy(&mut hub, false),
            () = grace_timer(hub.poll_timeout().map(|(at, _why)| at)) => {
                hub.handle_timeout(Now::system());
            }
            _ = stop.changed() => break,
        }
        drain(&mut hub, &mut sockets, &mut pads, media.as_ref(), &metrics);
    }
    // Tell the media plane everyone is gone.
    let ids: Vec<ParticipantId> = sockets.keys().copied().collect();
    let now = Now::system();
    for id in ids {
        hub.handle_close(id, now);
    }
    // Sockets whose task ended before we could tell them anything (see
    // `drain`) may have their close still queued.
    while let Ok(input) = inputs.try_recv() {
        if let HubInput::Closed { id } = input {
            hub.handle_close(id, now);
        }
    }
    hub.end_grace_periods(now);
    sockets.clear();
    pads.clear();
    drain(&mut hub, &mut sockets, &mut pads, media.as_ref(), &metrics);
}

/// Resolves at the hub's next deadline (never without one).
async fn grace_timer(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending::<()>().await,
    }
}

fn drain(
    hub: &mut Hub,
    sockets: &mut HashMap<ParticipantId, mpsc::Sender<SocketOut>>,
    pads: &mut HashMap<PadConnId, mpsc::Sender<PadOut>>,
    media: &dyn MediaControl,
    metrics: &Metrics,
) {
    // Each round either empties the outputs or removes at least one socket
    // (whose close may produce broadcasts), so this terminates.
    loop {
        let mut dropped = Vec::new();
        while let Some(out) = hub.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    if let ServerMessage::Error { code, .. } = &msg {
                        metrics.error_sent(code.as_str());
                    }
                    match sockets
                        .get(&to)
                        .map(|tx| tx.try_send(SocketOut::Message(msg)))
                    {
                        None | Some(Ok(())) => {}
                        Some(Err(mpsc::error::TrySendError::Full(_))) => {
                            // The browser is not reading: drop the socket; its
                            // task sees the closed channel.
                            Metrics::inc(&metrics.slow_consumers);
                            sockets.remove(&to);
                            dropped.push(to);
                        }
                        Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                            // The socket task ended: its `Closed` input comes
                            // after the frames it read (a `leave` among them),
                            // so its close is handled then, in order.
                            sockets.remove(&to);
                        }
                    }
                }
                Output::Close { to, code, reason } => {
                    if let Some(tx) = sockets.remove(&to) {
                        let _ = tx.try_send(SocketOut::Close(code, reason));
                    }
                }
                Output::Media(cmd) => {
                    Metrics::inc(&metrics.media_commands);
                    media.send(cmd);
                }
                Output::PadSend { to, data } => {
                    if let Some(tx) = pads.get(&to)
                        && tx.try_send(PadOut::Frame(data)).is_err()
                    {
                        // A pad reader that falls behind loses its pad
                        // socket only (the client resyncs on reconnect).
                        Metrics::inc(&metrics.slow_consumers);
                        pads.remove(&to);
                        hub.handle_pad_close(to);
                    }
                }
                Output::PadClose { to, code, reason } => {
                    if code != 1000 {
                        Metrics::inc(&metrics.pad_frames_refused);
                    }
                    if let Some(tx) = pads.remove(&to) {
                        let _ = tx.try_send(PadOut::Close(code, reason));
                    }
                }
            }
        }
        if dropped.is_empty() {
            break;
        }
        let now = Now::system();
        for id in dropped {
            hub.handle_close(id, now);
        }
    }
    metrics
        .participants
        .store(hub.participant_count() as u64, Ordering::Relaxed);
    metrics
        .rooms
        .store(hub.room_count() as u64, Ordering::Relaxed);
    metrics
        .pads_live
        .store(hub.pads_live() as u64, Ordering::Relaxed);
    metrics
        .lobby_waiting
        .store(hub.lobby_count() as u64, Ordering::Relaxed);
    if let Some(policy) = hub.policy() {
        metrics.set_policy(policy);
    }
}

type Body = Full<Bytes>;

mod http;
mod socket;

use http::route;
use socket::{run_pad_socket, run_socket};
