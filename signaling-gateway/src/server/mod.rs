//! The tokio/hyper driver around the [`Hub`]: HTTP routes, WebSocket
//! sessions, and the hub task.
//!
//! Tasks:
//! - one accept loop, one task per HTTP connection (hyper); with
//!   [`TlsOptions`], each connection's task first shakes hands (bounded in
//!   time, holding the address's HTTP place); an optional admin accept loop
//!   (`/metrics`, `/healthz`), an optional redirect accept loop (plain HTTP,
//!   308 to HTTPS), and a task reloading the certificate on SIGHUP;
//! - one task per WebSocket: enforces the socket's bounds (join deadline,
//!   liveness, message rate, failed joins, pre-join frame size), parses its
//!   frames and verifies a `join`'s token, hands the hub parsed messages,
//!   and writes the messages the hub routes to it;
//! - one hub task owning the [`Hub`]: it takes socket inputs and media events,
//!   then drains the hub's outputs to sockets and to the media plane. If it
//!   panics, [`serve`] returns [`HubPanicked`] (the `salon` binary exits
//!   with status 70 for its supervisor to restart it).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
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
use crate::protocol::{
    ClientMessage, ErrorCode, MAX_FRAME_BYTES, ProtocolError, ServerMessage, validate_room,
};
use crate::tls::ServerCert;
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
    /// Bytes queued to one socket before it is dropped as a slow consumer
    /// (a single message larger than this still goes to an empty queue).
    pub ws_outbound_bytes: usize,
    /// Most WebSockets (signaling and pad) open at once; more are refused
    /// with HTTP 503 before the upgrade. 0: no limit.
    pub max_connections: usize,
    /// Most WebSockets open at once from one client address (an IPv4
    /// address or an IPv6 /64); more are refused with HTTP 429. 0: no
    /// limit (behind a reverse proxy every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Most plain HTTP connections (before or without a WebSocket upgrade)
    /// open at once from one client address; more are closed right after
    /// `accept`, without a response, so that one address cannot take every
    /// file descriptor. Idle ones close after 10 s anyway. 0: no limit.
    pub max_http_per_ip: usize,
    /// A signaling socket that has not joined (or resumed, or entered a
    /// lobby) by then is closed (4002 `join-timeout`). Zero: no deadline.
    pub join_deadline: Duration,
    /// The server pings every socket this often (at least every 10 ms).
    pub ping_interval: Duration,
    /// A socket from which nothing (a pong or any frame) came for this long
    /// is closed (4003 `ping-timeout`); a participant's closed socket gets
    /// the reconnect grace like any dropped socket. Zero: never.
    pub liveness_timeout: Duration,
    /// Frames a signaling socket may send per second, sustained (0: no
    /// limit); pad sockets get five times as many.
    pub msg_rate_per_sec: u32,
    /// Frames a signaling socket may send at once above the rate.
    pub msg_burst: u32,
    /// A socket over its rate for this long is closed (4004 `rate-limited`).
    pub rate_abuse_close: Duration,
    /// Failed joins after which a socket is closed (4005
    /// `too-many-failed-joins`); each failure doubles the wait before the
    /// next join is heard (`join_backoff`, then twice as long, …, at most
    /// 8 s). 0: never closed.
    pub max_failed_joins: u32,
    /// The wait after a socket's first failed join (zero: no wait).
    pub join_backoff: Duration,
    /// Largest frame a signaling socket may send before it joins (a join
    /// with a token fits in 16 KiB); bigger ones close it (1009
    /// `too-large`).
    pub prejoin_frame_limit: usize,
    /// `Host` names served (`host` or `host:port`; the port is ignored).
    /// Empty: `localhost` and loopback literals if the listener is on
    /// loopback (DNS rebinding), any host otherwise. Others get 421.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a WebSocket
    /// from one of these addresses is counted (per-address cap) and keyed
    /// (bans, knock limits) on the client address the proxy forwarded.
    /// Empty: the TCP peer address, always.
    pub trusted_proxies: Vec<IpAddr>,
    /// A listener for `/metrics` (and `/healthz`) apart from the public
    /// one, e.g. loopback.
    pub admin: Option<AdminListener>,
    /// HTTPS on the public listener (`None`: plain HTTP).
    pub tls: Option<TlsOptions>,
    /// A plain-HTTP listener answering every request with a 308 to the
    /// same path over HTTPS on the public listener (needs `tls`, and
    /// `allowed_hosts` unless the public listener is on loopback: the
    /// redirect never names a host the operator did not list).
    pub redirect: Option<RedirectListener>,
    /// Also serve `/metrics` on the public listener (the library default,
    /// for tests and embedders; `salon` turns it off unless
    /// `--metrics-on-public`).
    pub metrics_on_public: bool,
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
    /// OIDC login for agents (`/auth/*`; `docs/oidc.md`). `None`: off.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
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
    /// A hub turn (one message, frame, event or timer) longer than this
    /// ends the process with status 70 for its supervisor to restart it
    /// (`server/stall.rs`). Zero: never.
    pub hub_stall_limit: Duration,
    /// TURN servers whose credentials members get (`None`: no TURN).
    pub turn: Option<crate::turn::TurnConfig>,
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
    /// The operator's font (a woff2 file checked by
    /// [`Brand::check_font`]), served from `/brand/font`; the client puts
    /// it first in its font stack.
    pub font: Option<Bytes>,
}

impl Default for Brand {
    fn default() -> Self {
        Self {
            name: "Salon".to_owned(),
            color: None,
            logo: None,
            font: None,
        }
    }
}

/// The largest `--brand-font` accepted (a Latin woff2 weighs 20–80 KiB).
pub const MAX_BRAND_FONT_BYTES: usize = 1024 * 1024;

/// Why a `--brand-font` file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FontError {
    /// It does not start with the woff2 signature `wOF2`.
    #[error("not a woff2 font (it must start with the signature wOF2)")]
    NotWoff2,
    /// Over [`MAX_BRAND_FONT_BYTES`].
    #[error("over {} KiB", MAX_BRAND_FONT_BYTES / 1024)]
    TooLarge,
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

    /// Checks a font file for `/brand/font`: a woff2 (its signature
    /// `wOF2`) of at most [`MAX_BRAND_FONT_BYTES`].
    pub fn check_font(bytes: &[u8]) -> Result<(), FontError> {
        if bytes.len() > MAX_BRAND_FONT_BYTES {
            return Err(FontError::TooLarge);
        }
        if !bytes.starts_with(b"wOF2") {
            return Err(FontError::NotWoff2);
        }
        Ok(())
    }

    fn config_json(&self) -> String {
        serde_json::json!({
            "brand": {
                "name": self.name,
                "color": self.color,
                "logo": self.logo.as_ref().map(|_| "/brand/logo"),
                "font": self.font.as_ref().map(|_| "/brand/font"),
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
            ws_outbound_bytes: 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 50,
            max_http_per_ip: 256,
            join_deadline: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            liveness_timeout: Duration::from_secs(30),
            msg_rate_per_sec: 20,
            msg_burst: 50,
            rate_abuse_close: Duration::from_secs(5),
            max_failed_joins: 5,
            join_backoff: Duration::from_millis(250),
            prejoin_frame_limit: 16 * 1024,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            admin: None,
            tls: None,
            redirect: None,
            metrics_on_public: true,
            shutdown_grace: Duration::from_secs(3),
            brand: Brand::default(),
            policy: None,
            policy_poll: Duration::from_secs(2),
            reload_on_sighup: false,
            auth: None,
            oidc: None,
            deny_cooldown: crate::hub::DEFAULT_DENY_COOLDOWN,
            default_last_n: None,
            reconnect_grace: Duration::ZERO,
            hub_limits: crate::hub::HubLimits::default(),
            hub_stall_limit: Duration::from_secs(10),
            turn: None,
        }
    }
}

/// A listener for the admin routes (`/metrics`, `/healthz`), bound by the
/// caller (so it can print the address) and served by [`serve`].
#[derive(Debug, Clone)]
pub struct AdminListener(Arc<std::net::TcpListener>);

impl AdminListener {
    /// Binds `addr` (port 0: any free port).
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(Self(Arc::new(l)))
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn tokio(&self) -> std::io::Result<TcpListener> {
        TcpListener::from_std(self.0.try_clone()?)
    }
}

/// HTTPS on the public listener.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The certificate and key (reloaded on SIGHUP if
    /// [`ServeOptions::reload_on_sighup`]).
    pub cert: Arc<ServerCert>,
    /// `Strict-Transport-Security: max-age=…` on every HTTPS response
    /// (`None`: no header).
    pub hsts_max_age: Option<Duration>,
    /// A client that has not finished its TLS handshake by then is
    /// disconnected (its connection counts against the per-address HTTP
    /// cap meanwhile).
    pub handshake_timeout: Duration,
}

impl TlsOptions {
    /// One year of HSTS, 10 s to shake hands.
    pub fn new(cert: Arc<ServerCert>) -> Self {
        Self {
            cert,
            hsts_max_age: Some(Duration::from_secs(365 * 24 * 3600)),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The plain-HTTP listener that redirects to HTTPS, bound by the caller.
#[derive(Debug, Clone)]
pub struct RedirectListener(AdminListener);

impl RedirectListener {
    /// Binds `addr` (port 0: any free port).
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        AdminListener::bind(addr).map(Self)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// [`serve`]'s error when the hub task panicked: signaling stopped, so the
/// process should exit and be restarted by its supervisor (the `salon`
/// binary exits with [`HubPanicked::EXIT_STATUS`]).
#[derive(Debug, thiserror::Error)]
#[error("the hub task panicked: {0}")]
pub struct HubPanicked(pub String);

impl HubPanicked {
    /// The exit status of `salon` after a hub panic (`EX_SOFTWARE`).
    pub const EXIT_STATUS: i32 = 70;
}

/// What a socket task tells the hub task.
#[derive(Debug)]
enum HubInput {
    Open {
        id: ParticipantId,
        tx: OutTx<SocketOut>,
        /// abuse-hub: the client's address (bans, knock limits).
        peer: Option<std::net::IpAddr>,
    },
    /// A message parsed (and a join's token verified) by the socket task.
    Message {
        id: ParticipantId,
        msg: ClientMessage,
    },
    /// A frame refused by the socket task: answered with this error, in
    /// order with the hub's messages to the socket.
    Invalid {
        id: ParticipantId,
        error: ProtocolError,
    },
    Closed {
        id: ParticipantId,
    },
    PadOpen {
        conn: PadConnId,
        token: String,
        tx: OutTx<PadOut>,
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

/// What the hub task tells a signaling socket task.
#[derive(Debug)]
enum SocketOut {
    /// A message, serialized by the hub task (its size counts against the
    /// socket's byte bound), and what it tells the socket's [`JoinGate`].
    Message(tungstenite::Utf8Bytes, Note),
    Close(u16, &'static str),
}

/// What a message to a socket means for its join bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Note {
    /// `joined`, `resumed` or `lobby`: the socket got in.
    In,
    /// A refused `join` or `resume`.
    JoinFailed,
    Other,
}

impl Note {
    fn of(msg: &ServerMessage) -> Self {
        match msg {
            ServerMessage::Joined { .. }
            | ServerMessage::Resumed { .. }
            | ServerMessage::Lobby { .. } => Note::In,
            ServerMessage::Error {
                code:
                    ErrorCode::AuthFailed
                    | ErrorCode::Denied
                    | ErrorCode::RoomLocked
                    | ErrorCode::Banned
                    | ErrorCode::LobbyFull
                    | ErrorCode::ResumeFailed,
                ..
            } => Note::JoinFailed,
            _ => Note::Other,
        }
    }
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

/// The longest an `accept` failure (out of file descriptors) pauses the
/// accept loop; the pause doubles from 10 ms while failures go on.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// State shared by every connection.
struct Shared {
    media: Arc<dyn MediaControl>,
    hub_tx: mpsc::Sender<HubInput>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    /// Held by every WebSocket task; shutdown waits until all are dropped.
    alive: mpsc::Sender<()>,
    opts: ServeOptions,
    conns: Arc<ConnLimits>,
    /// Plain HTTP connections per address (no global count: `accept`
    /// failures are backed off instead).
    http_conns: Arc<ConnLimits>,
    hosts: AllowedHosts,
    /// The `Strict-Transport-Security` value of HTTPS responses.
    hsts: Option<HeaderValue>,
    /// The public listener's port (where the redirect listener sends to).
    https_port: u16,
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
    if let Some(turn) = &opts.turn {
        tracing::info!(
            urls = ?turn.urls(),
            ttl_secs = turn.ttl().as_secs(),
            "TURN credentials for members"
        );
        hub.set_turn(turn.clone());
    }
    let reload = Reload {
        poll: opts.policy_poll,
        sighup: opts.reload_on_sighup,
    };
    let (hub_tx, hub_rx) = mpsc::channel(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let metrics = Arc::new(Metrics::default());
    let local = listener.local_addr().ok();
    let hosts = AllowedHosts::new(&opts.allowed_hosts, local);
    let tls = match &opts.tls {
        Some(t) => {
            tracing::info!(
                hsts = t.hsts_max_age.is_some(),
                "HTTPS on the public listener (TLS 1.2 and 1.3, HTTP/1.1)"
            );
            Some(tokio_rustls::TlsAcceptor::from(t.cert.server_config()?))
        }
        None => None,
    };
    if opts.redirect.is_some() {
        anyhow::ensure!(
            tls.is_some(),
            "the HTTP redirect listener needs HTTPS on the public listener"
        );
        anyhow::ensure!(
            !matches!(hosts, AllowedHosts::Any),
            "the HTTP redirect listener needs the public host names (--allowed-host): \
             it never redirects to a Host it was merely sent"
        );
    }
    let hsts = opts
        .tls
        .as_ref()
        .and_then(|t| t.hsts_max_age)
        .and_then(|age| HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok());
    match hosts {
        AllowedHosts::Any => tracing::info!(
            "any Host header is served: list the public name(s) with --allowed-host \
             (DNS rebinding against private-network instances)"
        ),
        AllowedHosts::Loopback => tracing::info!(
            "only localhost and loopback addresses are served as Host (listening on \
             loopback): behind a reverse proxy, list the public name(s) with --allowed-host"
        ),
        AllowedHosts::Names(_) => {}
    }
    let shared = Arc::new(Shared {
        media: media.clone(),
        hub_tx,
        metrics: metrics.clone(),
        stop: stop_rx.clone(),
        alive: alive_tx,
        conns: ConnLimits::new(opts.max_connections, opts.max_connections_per_ip),
        http_conns: ConnLimits::new(0, opts.max_http_per_ip),
        hosts,
        hsts,
        https_port: local.map_or(443, |a| a.port()),
        opts: opts.clone(),
    });
    let stall = Arc::new(stall::Stall::new(std::time::Instant::now()));
    stall::watch(stall.clone(), opts.hub_stall_limit);
    let mut hub_task = tokio::spawn(run_hub(
        hub,
        reload,
        media,
        hub_rx,
        events,
        metrics,
        Lifecycle {
            stop: stop_rx,
            stall,
        },
    ));

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Slow-loris guard: a client has 10 s to send its request headers.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    let admin = match &opts.admin {
        Some(admin) => {
            let l = admin
                .tokio()
                .map_err(|e| anyhow::anyhow!("the admin listener: {e}"))?;
            Some(tokio::spawn(serve_admin(
                l,
                shared.clone(),
                builder.clone(),
            )))
        }
        None => None,
    };
    let redirect = match &opts.redirect {
        Some(r) => {
            let l =
                r.0.tokio()
                    .map_err(|e| anyhow::anyhow!("the redirect listener: {e}"))?;
            Some(tokio::spawn(serve_redirect(
                l,
                shared.clone(),
                builder.clone(),
            )))
        }
        None => None,
    };
    let cert_reload = match &opts.tls {
        Some(t) if opts.reload_on_sighup => Some(tokio::spawn(reload_cert_on_sighup(
            t.cert.clone(),
            Hangup::new(true),
        ))),
        _ => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Duration::ZERO;
    let mut panicked = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors (EMFILE/ENFILE) or a
                        // connection reset before accept: pause, doubling,
                        // so open sockets keep being served.
                        accept_failed(&shared, &mut backoff, &e, "public").await;
                        continue;
                    }
                };
                backoff = Duration::ZERO;
                // A trusted reverse proxy carries many clients on its
                // connections: not capped per address here (the clients it
                // forwards are, at the WebSocket upgrade).
                let permit = if shared.opts.trusted_proxies.contains(&peer.ip()) {
                    None
                } else if let Ok(permit) = shared.http_conns.acquire(peer.ip()) {
                    Some(permit)
                } else {
                    // Closed at once: its descriptor is free again.
                    Metrics::inc(&shared.metrics.refused_http_per_ip);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                match &tls {
                    Some(acceptor) => {
                        let timeout = shared.opts.tls.as_ref().map_or(Duration::from_secs(10), |t| t.handshake_timeout);
                        tokio::spawn(handshake(
                            acceptor.clone(),
                            timeout,
                            stream,
                            peer,
                            shared.clone(),
                            builder.clone(),
                            graceful.watcher(),
                            permit,
                        ));
                    }
                    None => serve_connection(stream, peer, &shared, &builder, graceful.watcher(), Listener::Public, permit),
                }
            }
            joined = &mut hub_task => {
                // The hub task never ends before `stop`: it panicked.
                let why = match joined {
                    Err(e) if e.is_panic() => panic_message(e.into_panic()),
                    Err(e) => e.to_string(),
                    Ok(()) => "ended early".to_owned(),
                };
                tracing::error!(reason = %why, "the hub task stopped: signaling is down, exiting");
                panicked = Some(why);
                break;
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    for task in [admin, redirect, cert_reload].into_iter().flatten() {
        task.abort();
    }
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
    if let Some(why) = panicked {
        return Err(HubPanicked(why).into());
    }
    let _ = tokio::time::timeout(grace, hub_task).await;
    Ok(())
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// The public one: the client, signaling, pads (and `/metrics` if
    /// `metrics_on_public`).
    Public,
    /// The admin one: `/metrics` and `/healthz` only.
    Admin,
    /// The plain-HTTP one that redirects to HTTPS.
    Redirect,
}

/// Serves one accepted connection (TCP, or TLS over it) with hyper.
fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: Watcher,
    listener: Listener,
    permit: Option<limits::ConnPermit>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move {
            let mut res = match listener {
                Listener::Redirect => http::redirect_to_https(&req, &shared),
                Listener::Public if req.uri().path().starts_with("/auth/") => {
                    http::auth_route(req, &shared).await
                }
                Listener::Public | Listener::Admin => route(req, shared.clone(), peer, listener),
            };
            if listener == Listener::Public
                && let Some(hsts) = &shared.hsts
            {
                res.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            Ok::<_, Infallible>(res)
        }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::spawn(async move {
        // Held while the connection speaks HTTP (an upgraded one is then
        // counted by its WebSocket's permit).
        let _permit = permit;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "http connection ended with an error");
        }
    });
}

/// An `accept` error on `listener` (out of file descriptors, a connection
/// reset before accept): counted, logged, and a pause that doubles from
/// 10 ms to [`ACCEPT_BACKOFF_MAX`], so the process does not spin and open
/// sockets keep being served.
async fn accept_failed(
    shared: &Shared,
    backoff: &mut Duration,
    e: &std::io::Error,
    listener: &'static str,
) {
    Metrics::inc(&shared.metrics.accept_errors);
    *backoff = (*backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
    let pause_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
    tracing::warn!(error = %e, listener, pause_ms, "accept failed");
    tokio::time::sleep(*backoff).await;
}

/// The admin accept loop (ended by [`serve`]).
async fn serve_admin(
    listener: TcpListener,
    shared: Arc<Shared>,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
) {
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                let _ = stream.set_nodelay(true);
                serve_connection(
                    stream,
                    peer,
                    &shared,
                    &builder,
                    graceful.watcher(),
                    Listener::Admin,
                    None,
                );
            }
            Err(e) => {
                accept_failed(&shared, &mut backoff, &e, "admin").await;
            }
        }
    }
}

/// The redirect accept loop (ended by [`serve`]): the same per-address
/// HTTP cap and accept back-off as the public listener.
async fn serve_redirect(
    listener: TcpListener,
    shared: Arc<Shared>,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
) {
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                let _ = stream.set_nodelay(true);
                let Ok(permit) = shared.http_conns.acquire(peer.ip()) else {
                    Metrics::inc(&shared.metrics.refused_http_per_ip);
                    continue;
                };
                serve_connection(
                    stream,
                    peer,
                    &shared,
                    &builder,
                    graceful.watcher(),
                    Listener::Redirect,
                    Some(permit),
                );
            }
            Err(e) => {
                accept_failed(&shared, &mut backoff, &e, "redirect").await;
            }
        }
    }
}

/// Shakes hands with a client of the HTTPS listener, then serves it. The
/// connection's permit (per-address HTTP cap) is held from `accept` on; a
/// handshake that does not finish within `timeout`, or before shutdown, is
/// dropped.
#[allow(clippy::too_many_arguments)]
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: Watcher,
    permit: Option<limits::ConnPermit>,
) {
    let mut stop = shared.stop.clone();
    let tls = tokio::select! {
        done = tokio::time::timeout(timeout, acceptor.accept(stream)) => done,
        _ = stop.changed() => return,
    };
    match tls {
        Ok(Ok(tls)) => serve_connection(
            tls,
            peer,
            &shared,
            &builder,
            watcher,
            Listener::Public,
            permit,
        ),
        Ok(Err(e)) => {
            Metrics::inc(&shared.metrics.tls_handshake_failures);
            tracing::debug!(error = %e, "tls handshake failed");
        }
        Err(_) => {
            Metrics::inc(&shared.metrics.tls_handshake_failures);
            tracing::debug!("tls handshake timed out");
        }
    }
}

/// Reloads the server certificate at each SIGHUP; a certificate that does
/// not load keeps the previous one.
async fn reload_cert_on_sighup(cert: Arc<ServerCert>, mut hangup: Hangup) {
    loop {
        hangup.recv().await;
        match cert.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                "TLS certificate reload failed: the previous certificate is still served"
            ),
        }
    }
}

/// The text of a panic payload.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
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
                tracing::warn!(error = %e, "cannot listen for SIGHUP: no reload by signal");
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

/// When the hub task ends, and its stall watchdog's clock.
struct Lifecycle {
    stop: watch::Receiver<bool>,
    stall: Arc<stall::Stall>,
}

/// The hub task: owns the [`Hub`], the sockets' senders and the media handle.
async fn run_hub(
    mut hub: Hub,
    reload: Reload,
    media: Arc<dyn MediaControl>,
    mut inputs: mpsc::Receiver<HubInput>,
    mut events: MediaEventReceiver,
    metrics: Arc<Metrics>,
    Lifecycle { mut stop, stall }: Lifecycle,
) {
    let mut hangup = Hangup::new(reload.sighup && hub.policy().is_some());
    let mut poll = tokio::time::interval(reload.poll.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sockets: HashMap<ParticipantId, OutTx<SocketOut>> = HashMap::new();
    let mut pads: HashMap<PadConnId, OutTx<PadOut>> = HashMap::new();
    let mut events_open = true;
    loop {
        // A turn ends here (a `continue` included); the next starts when
        // `select!` hands over an input.
        stall.idle();
        tokio::select! {
            input = inputs.recv() => {
                stall.busy(std::time::Instant::now());
                match input {
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
                    Some(HubInput::Message { id, msg }) => hub.handle_message(id, msg, Now::system()),
                    Some(HubInput::Invalid { id, error }) => {
                        tracing::debug!(participant = %id, code = error.code.as_str(), "message refused");
                        deliver(&mut sockets, id, ServerMessage::error(&error), &metrics, &mut hub);
                    }
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
                }
            }
            event = events.recv(), if events_open => {
                stall.busy(std::time::Instant::now());
                match event {
                    Some(event) => {
                        Metrics::inc(&metrics.media_events);
                        hub.handle_media_event(event);
                    }
                    None => events_open = false,
                }
            }
            () = hangup.recv() => {
                stall.busy(std::time::Instant::now());
                reload_policy(&mut hub, true);
            }
            _ = poll.tick(), if hub.policy().is_some() => {
                stall.busy(std::time::Instant::now());
                reload_policy(&mut hub, false);
            }
            () = grace_timer(hub.poll_timeout().map(|(at, _why)| at)) => {
                stall.busy(std::time::Instant::now());
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

/// The last message serialized by [`enqueue`] and its frame: a broadcast
/// comes out of the hub as the same message for each member in a row, and
/// is serialized once (its members share the frame's bytes).
type LastFrame = Option<(ServerMessage, tungstenite::Utf8Bytes)>;

/// Sends `msg` to socket `to` (serialized here: its size counts against
/// the socket's byte bound). A socket that does not keep up is dropped
/// (returned: the caller hands its close to the hub).
fn enqueue(
    sockets: &mut HashMap<ParticipantId, OutTx<SocketOut>>,
    to: ParticipantId,
    msg: ServerMessage,
    last: &mut LastFrame,
    metrics: &Metrics,
) -> Option<ParticipantId> {
    let tx = sockets.get(&to)?;
    if let ServerMessage::Error { code, .. } = &msg {
        metrics.error_sent(code.as_str());
    }
    if msg.carries_turn_credentials() {
        Metrics::inc(&metrics.turn_credentials);
    }
    let note = Note::of(&msg);
    let text = match last {
        Some((prev, text)) if *prev == msg => text.clone(),
        _ => {
            let text = tungstenite::Utf8Bytes::from(msg.to_json());
            *last = Some((msg, text.clone()));
            text
        }
    };
    let len = text.len();
    match tx.send(SocketOut::Message(text, note), len) {
        Ok(()) => None,
        Err(Unsent::Full) => {
            // The browser is not reading: drop the socket; its task sees
            // the closed channel.
            Metrics::inc(&metrics.slow_consumers);
            sockets.remove(&to);
            Some(to)
        }
        Err(Unsent::Closed) => {
            // The socket task ended: its `Closed` input comes after the
            // frames it read (a `leave` among them), so its close is
            // handled then, in order.
            sockets.remove(&to);
            None
        }
    }
}

/// [`enqueue`] outside [`drain`]: a slow consumer's close goes to the hub
/// at once (the caller drains next).
fn deliver(
    sockets: &mut HashMap<ParticipantId, OutTx<SocketOut>>,
    to: ParticipantId,
    msg: ServerMessage,
    metrics: &Metrics,
    hub: &mut Hub,
) {
    if let Some(dropped) = enqueue(sockets, to, msg, &mut None, metrics) {
        hub.handle_close(dropped, Now::system());
    }
}

fn drain(
    hub: &mut Hub,
    sockets: &mut HashMap<ParticipantId, OutTx<SocketOut>>,
    pads: &mut HashMap<PadConnId, OutTx<PadOut>>,
    media: &dyn MediaControl,
    metrics: &Metrics,
) {
    // Each round either empties the outputs or removes at least one socket
    // (whose close may produce broadcasts), so this terminates.
    let mut last = None;
    loop {
        let mut dropped = Vec::new();
        while let Some(out) = hub.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    if let Some(to) = enqueue(sockets, to, msg, &mut last, metrics) {
                        dropped.push(to);
                    }
                }
                Output::Close { to, code, reason } => {
                    if let Some(tx) = sockets.remove(&to) {
                        let _ = tx.send(SocketOut::Close(code, reason), 0);
                    }
                }
                Output::Media(cmd) => {
                    Metrics::inc(&metrics.media_commands);
                    media.send(cmd);
                }
                Output::PadSend { to, data } => {
                    let len = data.len();
                    if let Some(tx) = pads.get(&to)
                        && tx.send(PadOut::Frame(data), len).is_err()
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
                        let _ = tx.send(PadOut::Close(code, reason), 0);
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
    metrics.set_gestures(hub.gesture_counts());
    metrics.set_probes(hub.probe_counts(), hub.probe_count());
    if let Some(policy) = hub.policy() {
        metrics.set_policy(policy);
    }
    metrics.census_if_due(hub, std::time::Instant::now());
}

type Body = Full<Bytes>;

mod guard;
mod http;
mod limits;
mod socket;
mod stall;

use guard::{OutTx, Unsent};
use http::route;
use limits::{AllowedHosts, ConnLimits};
use socket::{run_pad_socket, run_socket};
