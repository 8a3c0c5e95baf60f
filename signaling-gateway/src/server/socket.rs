//! One select loop per socket (`pump`), for signaling and pad sockets:
//! the frames in, the queued messages out, pings, closes, and the socket's
//! bounds (liveness, message rate; for signaling, the join deadline, failed
//! joins and the pre-join frame size). A signaling socket's frames are
//! parsed here, and a `join`'s token verified here, so the hub task gets
//! messages ready to decide on.

// Request input: never index or slice, never `expect` (CONTRIBUTING.md).
#![deny(clippy::indexing_slicing, clippy::expect_used)]

use std::time::Instant;

use super::guard::{Attempt, JoinGate, OutRx, PreJoin, Rate, RateLimit, out_queue};
use super::*;
use crate::protocol::{JoinToken, parse_client};

/// Close code and reason: no `join` (or `resume`) in time.
pub(super) const CLOSE_JOIN_TIMEOUT: (u16, &str) = (4002, "join-timeout");
/// Close code and reason: nothing heard from the peer in time.
pub(super) const CLOSE_PING_TIMEOUT: (u16, &str) = (4003, "ping-timeout");
/// Close code and reason: over the message rate for too long.
pub(super) const CLOSE_RATE_LIMITED: (u16, &str) = (4004, "rate-limited");
/// Close code and reason: too many failed joins.
pub(super) const CLOSE_FAILED_JOINS: (u16, &str) = (4005, "too-many-failed-joins");

fn close_frame((code, reason): (u16, &'static str)) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

/// What a socket does with one frame from the browser.
enum Step {
    /// Hand this to the hub task.
    Hub(HubInput),
    /// Close the socket.
    Close(CloseFrame),
}

/// What a signaling socket and a pad socket do differently around the
/// shared loop of [`pump`]: how a browser frame becomes a hub input, and
/// how a message from the hub task becomes a frame (or a close).
trait Endpoint {
    /// What the hub task sends this socket.
    type Out;
    /// Close reason when the browser sends a frame over the hard limit.
    const TOO_LARGE: &'static str;
    /// This socket's rate is the configured one times this.
    const RATE_FACTOR: u32;
    /// A text frame from the browser.
    fn text(&mut self, text: tungstenite::Utf8Bytes, now: Instant) -> Step;
    /// A binary frame from the browser.
    fn binary(&mut self, data: Bytes) -> Step;
    /// A message from the hub task.
    fn outgoing(&mut self, out: Self::Out, now: Instant) -> Outgoing;
    /// Whether the socket is past its join (pad sockets always are).
    fn admitted(&self) -> bool;
    /// The frame that tells the browser it went over its rate, if any.
    fn rate_limited(&self) -> Option<Message>;
    /// The socket failed (logged; the loop ends).
    fn failed(&self, e: &tungstenite::Error);
    /// What to tell the hub once a frame of `bytes` was written, if anything.
    fn written(&self, _bytes: usize) -> Option<HubInput> {
        None
    }
}

/// What [`Endpoint::outgoing`] asks of the socket.
enum Outgoing {
    /// Send this frame.
    Frame(Message),
    /// Send this frame, then close the socket with this one.
    FrameThenClose(Message, CloseFrame),
    /// Close the socket with this frame.
    Close(CloseFrame),
}

/// A signaling socket: JSON text frames both ways.
struct Signaling<'a> {
    id: ParticipantId,
    shared: &'a Shared,
    gate: JoinGate,
    /// The OIDC session of the upgrade request's cookie, if any: looked up
    /// at each `join` (a logout ends it for the next one).
    session: Option<String>,
}

impl Signaling<'_> {
    fn refuse(&self, error: ProtocolError) -> Step {
        Step::Hub(HubInput::Invalid { id: self.id, error })
    }

    /// Verifies a `join` token for `room` (here, not on the hub task).
    fn verify(&self, token: &str, room: &str) -> Result<JoinToken, ProtocolError> {
        let Some(auth) = &self.shared.opts.auth else {
            return Err(ProtocolError::new(
                ErrorCode::AuthFailed,
                "this server accepts no tokens",
            ));
        };
        let now_s = crate::hub::Now::system().unix_ms / 1000;
        match auth.verify(token, room, now_s) {
            Ok(identity) => Ok(JoinToken::Verified(Arc::new(identity))),
            Err(e) => {
                tracing::info!(participant = %self.id, error = %e, "token refused");
                Err(ProtocolError::new(ErrorCode::AuthFailed, e.to_string()))
            }
        }
    }

    /// The identity of this socket's OIDC session, if it is still live.
    fn oidc_identity(&self) -> Option<Arc<salon_plugins::Identity>> {
        let oidc = self.shared.opts.oidc.as_ref()?;
        let session = self.session.as_deref()?;
        let now_s = crate::hub::Now::system().unix_ms / 1000;
        oidc.session_identity(session, now_s)
    }

    /// A `join` or `resume` before the socket got in: the gate first.
    fn attempt(&mut self, msg: ClientMessage, now: Instant) -> Step {
        match self.gate.attempt(now) {
            Attempt::Go => {}
            Attempt::TooSoon { retry_after } => {
                let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                return self.refuse(ProtocolError::new(
                    ErrorCode::JoinTooSoon,
                    format!("retry_after_ms={}", ms.max(1)),
                ));
            }
            Attempt::Pending => {
                return self.refuse(ProtocolError::new(
                    ErrorCode::JoinTooSoon,
                    "retry_after_ms=0 (the last attempt is being decided)",
                ));
            }
        }
        let msg = match msg {
            ClientMessage::Join {
                room,
                name,
                jwt: Some(JoinToken::Raw(token)),
                lobby_token,
            } => match self.verify(&token, &room.0) {
                Ok(jwt) => ClientMessage::Join {
                    room,
                    name,
                    jwt: Some(jwt),
                    lobby_token,
                },
                Err(error) => {
                    // Counted as a failed join when its `auth-failed`
                    // comes back through the hub task (`outgoing`), like
                    // the hub's own refusals.
                    self.gate.sent();
                    return self.refuse(error);
                }
            },
            // No token: a signed-in browser joins as its OIDC identity.
            ClientMessage::Join {
                room,
                name,
                jwt: None,
                lobby_token,
            } => ClientMessage::Join {
                room,
                name,
                jwt: self.oidc_identity().map(JoinToken::Verified),
                lobby_token,
            },
            msg => msg,
        };
        self.gate.sent();
        Step::Hub(HubInput::Message { id: self.id, msg })
    }
}

impl Endpoint for Signaling<'_> {
    type Out = SocketOut;
    const TOO_LARGE: &'static str = "too-large";
    const RATE_FACTOR: u32 = 1;

    fn text(&mut self, text: tungstenite::Utf8Bytes, now: Instant) -> Step {
        Metrics::inc(&self.shared.metrics.frames_in);
        if !self.gate.admitted() && text.len() > self.shared.opts.prejoin_frame_limit {
            self.shared.metrics.socket_closed(Self::TOO_LARGE);
            return Step::Close(CloseFrame {
                code: CloseCode::Size,
                reason: Self::TOO_LARGE.into(),
            });
        }
        if text.len() > MAX_FRAME_BYTES {
            return self.refuse(ProtocolError::plain(ErrorCode::TooLarge));
        }
        match parse_client(text.as_str()) {
            Err(error) => self.refuse(error),
            Ok(msg @ (ClientMessage::Join { .. } | ClientMessage::Resume { .. }))
                if !self.gate.admitted() =>
            {
                self.attempt(msg, now)
            }
            Ok(msg) => Step::Hub(HubInput::Message { id: self.id, msg }),
        }
    }

    fn binary(&mut self, _data: Bytes) -> Step {
        Metrics::inc(&self.shared.metrics.frames_in);
        self.refuse(ProtocolError::plain(ErrorCode::NotText))
    }

    fn outgoing(&mut self, out: SocketOut, now: Instant) -> Outgoing {
        match out {
            SocketOut::Message(text, note) => {
                Metrics::inc(&self.shared.metrics.frames_out);
                let frame = Message::Text(text);
                match note {
                    Note::In => {
                        self.gate.admit();
                        Outgoing::Frame(frame)
                    }
                    Note::JoinFailed => {
                        if self.gate.failed(now) {
                            self.shared.metrics.socket_closed(CLOSE_FAILED_JOINS.1);
                            Outgoing::FrameThenClose(frame, close_frame(CLOSE_FAILED_JOINS))
                        } else {
                            Outgoing::Frame(frame)
                        }
                    }
                    Note::Other => Outgoing::Frame(frame),
                }
            }
            SocketOut::Close(code, reason) => Outgoing::Close(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }),
        }
    }

    fn admitted(&self) -> bool {
        self.gate.admitted()
    }

    fn rate_limited(&self) -> Option<Message> {
        self.shared
            .metrics
            .error_sent(ErrorCode::RateLimited.as_str());
        let msg = ServerMessage::error(&ProtocolError::new(
            ErrorCode::RateLimited,
            "too many messages: the ones over the limit are dropped",
        ));
        Some(Message::text(msg.to_json()))
    }

    fn failed(&self, e: &tungstenite::Error) {
        tracing::debug!(participant = %self.id, error = %e, "socket error");
    }
}

/// A pad socket: binary frames (one y-protocols message each) both ways.
struct PadSocket {
    conn: PadConnId,
}

impl Endpoint for PadSocket {
    type Out = PadOut;
    const TOO_LARGE: &'static str = "pad-too-large";
    // Typing sends an update and an awareness message per keystroke.
    const RATE_FACTOR: u32 = 5;

    fn text(&mut self, _text: tungstenite::Utf8Bytes, _now: Instant) -> Step {
        Step::Hub(HubInput::PadRefused {
            conn: self.conn,
            code: 1003,
            reason: "pad-not-binary",
        })
    }

    fn binary(&mut self, data: Bytes) -> Step {
        Step::Hub(HubInput::PadFrame {
            conn: self.conn,
            data: data.to_vec(),
        })
    }

    fn outgoing(&mut self, out: PadOut, _now: Instant) -> Outgoing {
        match out {
            PadOut::Frame(data) => Outgoing::Frame(Message::Binary(data)),
            PadOut::Close(code, reason) => Outgoing::Close(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }),
        }
    }

    fn admitted(&self) -> bool {
        true
    }

    fn rate_limited(&self) -> Option<Message> {
        None
    }

    fn failed(&self, e: &tungstenite::Error) {
        tracing::debug!(conn = %self.conn, error = %e, "pad socket error");
    }

    // abuse-hub: the hub bounds what a pad socket has queued and not written.
    fn written(&self, bytes: usize) -> Option<HubInput> {
        Some(HubInput::PadSent {
            conn: self.conn,
            bytes,
        })
    }
}

/// Sends one frame, bounded by [`SEND_TIMEOUT`]; `false`: the socket is
/// done for.
async fn send_frame<S>(ws: &mut WebSocketStream<S>, frame: Message) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(frame)).await,
        Ok(Ok(()))
    )
}

/// The loop of one WebSocket, signaling or pad: browser frames → hub
/// inputs; the hub task's messages → frames; a ping every
/// `ping_interval`; ends on close, error, a send that times out, the hub
/// dropping the socket, shutdown, or one of the socket's bounds (join
/// deadline, liveness, rate, failed joins, pre-join frame size). Returns
/// the close frame to send, if any.
async fn pump<S, E>(
    ws: &mut WebSocketStream<PreJoin<S>>,
    shared: &Shared,
    rx: &mut OutRx<E::Out>,
    endpoint: &mut E,
) -> Option<CloseFrame>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    E: Endpoint,
{
    let opts = &shared.opts;
    let mut stop = shared.stop.clone();
    let start = tokio::time::Instant::now();
    let ping_every = opts.ping_interval.max(Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(start + ping_every, ping_every);
    // After a send that took long, one ping, not a burst of them.
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let join_deadline = tokio::time::sleep_until(start + opts.join_deadline);
    let mut join_deadline = std::pin::pin!(join_deadline);
    let mut last_seen = start;
    let liveness = tokio::time::sleep_until(start + opts.liveness_timeout);
    let mut liveness = std::pin::pin!(liveness);
    let mut rate = RateLimit::new(
        opts.msg_rate_per_sec.saturating_mul(E::RATE_FACTOR),
        opts.msg_burst.saturating_mul(E::RATE_FACTOR),
        opts.rate_abuse_close,
        start.into_std(),
    );
    let has_deadline = !opts.join_deadline.is_zero();
    let has_liveness = !opts.liveness_timeout.is_zero();
    let mut admitted = endpoint.admitted();
    if admitted {
        ws.get_mut().lift();
    }
    loop {
        tokio::select! {
            frame = ws.next() => {
                let now = tokio::time::Instant::now();
                last_seen = now;
                if !admitted {
                    ws.get_mut().frame_read();
                }
                let frame = match frame {
                    Some(Ok(frame @ (Message::Text(_) | Message::Binary(_)))) => frame,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        if rate.check(now.into_std()) == Rate::Close {
                            shared.metrics.socket_closed(CLOSE_RATE_LIMITED.1);
                            return Some(close_frame(CLOSE_RATE_LIMITED));
                        }
                        continue;
                    }
                    Some(Ok(Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        shared.metrics.socket_closed(E::TOO_LARGE);
                        return Some(CloseFrame { code: CloseCode::Size, reason: E::TOO_LARGE.into() });
                    }
                    Some(Err(tungstenite::Error::Io(e)))
                        if e.get_ref().is_some_and(|e| e.is::<super::guard::PreJoinTooLarge>()) =>
                    {
                        shared.metrics.socket_closed(E::TOO_LARGE);
                        return Some(CloseFrame { code: CloseCode::Size, reason: E::TOO_LARGE.into() });
                    }
                    Some(Err(e)) => {
                        endpoint.failed(&e);
                        return None;
                    }
                };
                match rate.check(now.into_std()) {
                    Rate::Pass => {}
                    Rate::Drop { first } => {
                        if first
                            && let Some(notice) = endpoint.rate_limited()
                            && !send_frame(ws, notice).await
                        {
                            return None;
                        }
                        continue;
                    }
                    Rate::Close => {
                        shared.metrics.socket_closed(CLOSE_RATE_LIMITED.1);
                        return Some(close_frame(CLOSE_RATE_LIMITED));
                    }
                }
                let step = match frame {
                    Message::Text(text) => endpoint.text(text, now.into_std()),
                    Message::Binary(data) => endpoint.binary(data),
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
                };
                let input = match step {
                    Step::Hub(input) => input,
                    Step::Close(close) => return Some(close),
                };
                if shared.hub_tx.send(input).await.is_err() {
                    return None;
                }
            }
            out = rx.recv() => {
                let now = Instant::now();
                let (frame, close) = match out.map(|out| endpoint.outgoing(out, now)) {
                    Some(Outgoing::Frame(frame)) => (frame, None),
                    Some(Outgoing::FrameThenClose(frame, close)) => (frame, Some(close)),
                    Some(Outgoing::Close(frame)) => return Some(frame),
                    None => {
                        // The hub dropped us: shutdown, or we did not read fast enough.
                        return Some(if *stop.borrow() {
                            CloseFrame { code: CloseCode::Away, reason: "shutdown".into() }
                        } else {
                            CloseFrame { code: CloseCode::Policy, reason: "slow consumer".into() }
                        });
                    }
                };
                if !admitted && endpoint.admitted() {
                    admitted = true;
                    ws.get_mut().lift();
                }
                let len = frame.len();
                if !send_frame(ws, frame).await {
                    return None;
                }
                if close.is_some() {
                    return close;
                }
                if let Some(input) = endpoint.written(len)
                    && shared.hub_tx.send(input).await.is_err()
                {
                    return None;
                }
            }
            () = &mut join_deadline, if !admitted && has_deadline => {
                shared.metrics.socket_closed(CLOSE_JOIN_TIMEOUT.1);
                return Some(close_frame(CLOSE_JOIN_TIMEOUT));
            }
            () = &mut liveness, if has_liveness => {
                let due = last_seen + opts.liveness_timeout;
                if due > tokio::time::Instant::now() {
                    liveness.as_mut().reset(due);
                    continue;
                }
                // A dead peer (or a half-open connection): for a member,
                // a drop like any other (the reconnect grace applies).
                shared.metrics.socket_closed(CLOSE_PING_TIMEOUT.1);
                return Some(close_frame(CLOSE_PING_TIMEOUT));
            }
            _ = ping.tick() => {
                // Liveness, and keeps proxies from closing idle sockets.
                if !send_frame(ws, Message::Ping(Default::default())).await {
                    return None;
                }
            }
            _ = stop.changed() => {
                return Some(CloseFrame { code: CloseCode::Away, reason: "shutdown".into() });
            }
        }
    }
}

/// One WebSocket session: frames in → hub; hub messages → frames out.
pub(super) async fn run_socket<S>(
    mut ws: WebSocketStream<PreJoin<S>>,
    shared: Arc<Shared>,
    peer: Option<std::net::IpAddr>,
    session: Option<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _alive = shared.alive.clone();
    let metrics = &shared.metrics;
    let id = ParticipantId::random();
    let (tx, mut rx) = out_queue(shared.opts.ws_outbound_queue, shared.opts.ws_outbound_bytes);
    if shared
        .hub_tx
        .send(HubInput::Open { id, tx, peer })
        .await
        .is_err()
    {
        return;
    }
    Metrics::inc(&metrics.ws_connections);
    Metrics::inc(&metrics.ws_open);
    tracing::debug!(participant = %id, "socket open");
    let mut endpoint = Signaling {
        id,
        shared: &shared,
        gate: JoinGate::new(shared.opts.max_failed_joins, shared.opts.join_backoff),
        session,
    };
    let close = pump(&mut ws, &shared, &mut rx, &mut endpoint).await;
    // Bounded: during shutdown the hub may be gone or its queue full.
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        shared.hub_tx.send(HubInput::Closed { id }),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(close)).await;
    Metrics::dec(&metrics.ws_open);
    tracing::debug!(participant = %id, "socket closed");
}

/// One pad WebSocket: binary frames (one y-protocols message each) in →
/// hub; hub frames → out. Bound to a signaling session by its token.
pub(super) async fn run_pad_socket<S>(
    mut ws: WebSocketStream<PreJoin<S>>,
    token: String,
    shared: Arc<Shared>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _alive = shared.alive.clone();
    let conn = PadConnId(NEXT_PAD_CONN.fetch_add(1, Ordering::Relaxed));
    // The hub bounds the bytes a pad socket has queued and not written
    // (2 MiB, then `pad-slow`, told by `PadSent`): no second byte bound.
    let (tx, mut rx) = out_queue(shared.opts.ws_outbound_queue, usize::MAX);
    if shared
        .hub_tx
        .send(HubInput::PadOpen { conn, token, tx })
        .await
        .is_err()
    {
        return;
    }
    let close = pump(&mut ws, &shared, &mut rx, &mut PadSocket { conn }).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        shared.hub_tx.send(HubInput::PadClosed { conn }),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(close)).await;
}
