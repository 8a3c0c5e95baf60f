//! One select loop per socket (`pump`), for signaling and pad sockets:
//! the frames in, the queued messages out, pings, closes.

use super::*;

/// What a signaling socket and a pad socket do differently around the
/// shared loop of [`pump`]: how a browser frame becomes a hub input, and
/// how a message from the hub task becomes a frame (or a close).
trait Endpoint {
    /// What the hub task sends this socket.
    type Out;
    /// Close reason when the browser sends a frame over the hard limit.
    const TOO_LARGE: &'static str;
    /// A text frame from the browser.
    fn text(&self, text: tungstenite::Utf8Bytes) -> HubInput;
    /// A binary frame from the browser.
    fn binary(&self, data: Bytes) -> HubInput;
    /// A message from the hub task.
    fn outgoing(&self, out: Self::Out) -> Outgoing;
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
    /// Close the socket with this frame.
    Close(CloseFrame),
}

/// A signaling socket: JSON text frames both ways.
struct Signaling<'a> {
    id: ParticipantId,
    metrics: &'a Metrics,
}

impl Endpoint for Signaling<'_> {
    type Out = SocketOut;
    const TOO_LARGE: &'static str = "too-large";

    fn text(&self, text: tungstenite::Utf8Bytes) -> HubInput {
        Metrics::inc(&self.metrics.frames_in);
        let id = self.id;
        if text.len() > MAX_FRAME_BYTES {
            HubInput::Refused {
                id,
                code: ErrorCode::TooLarge,
            }
        } else {
            HubInput::Frame {
                id,
                text: text.as_str().to_owned(),
            }
        }
    }

    fn binary(&self, _data: Bytes) -> HubInput {
        Metrics::inc(&self.metrics.frames_in);
        HubInput::Refused {
            id: self.id,
            code: ErrorCode::NotText,
        }
    }

    fn outgoing(&self, out: SocketOut) -> Outgoing {
        match out {
            SocketOut::Message(msg) => {
                Metrics::inc(&self.metrics.frames_out);
                Outgoing::Frame(Message::text(msg.to_json()))
            }
            SocketOut::Close(code, reason) => Outgoing::Close(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }),
        }
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

    fn text(&self, _text: tungstenite::Utf8Bytes) -> HubInput {
        HubInput::PadRefused {
            conn: self.conn,
            code: 1003,
            reason: "pad-not-binary",
        }
    }

    fn binary(&self, data: Bytes) -> HubInput {
        HubInput::PadFrame {
            conn: self.conn,
            data: data.to_vec(),
        }
    }

    fn outgoing(&self, out: PadOut) -> Outgoing {
        match out {
            PadOut::Frame(data) => Outgoing::Frame(Message::Binary(data)),
            PadOut::Close(code, reason) => Outgoing::Close(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }),
        }
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

/// The loop of one WebSocket, signaling or pad: browser frames → hub
/// inputs; the hub task's messages → frames; a ping every [`KEEPALIVE`];
/// ends on close, error, a send that times out, the hub dropping the
/// socket, or shutdown. Returns the close frame to send, if any.
async fn pump<S, E>(
    ws: &mut WebSocketStream<S>,
    shared: &Shared,
    rx: &mut mpsc::Receiver<E::Out>,
    endpoint: &E,
) -> Option<CloseFrame>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    E: Endpoint,
{
    let mut stop = shared.stop.clone();
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            frame = ws.next() => {
                let input = match frame {
                    Some(Ok(Message::Text(text))) => endpoint.text(text),
                    Some(Ok(Message::Binary(data))) => endpoint.binary(data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        return Some(CloseFrame { code: CloseCode::Size, reason: E::TOO_LARGE.into() });
                    }
                    Some(Err(e)) => {
                        endpoint.failed(&e);
                        return None;
                    }
                };
                if shared.hub_tx.send(input).await.is_err() {
                    return None;
                }
            }
            out = rx.recv() => match out.map(|out| endpoint.outgoing(out)) {
                Some(Outgoing::Frame(frame)) => {
                    let len = frame.len();
                    let sent = tokio::time::timeout(SEND_TIMEOUT, ws.send(frame)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return None;
                    }
                    if let Some(input) = endpoint.written(len)
                        && shared.hub_tx.send(input).await.is_err()
                    {
                        return None;
                    }
                }
                Some(Outgoing::Close(frame)) => return Some(frame),
                None => {
                    // The hub dropped us: shutdown, or we did not read fast enough.
                    return Some(if *stop.borrow() {
                        CloseFrame { code: CloseCode::Away, reason: "shutdown".into() }
                    } else {
                        CloseFrame { code: CloseCode::Policy, reason: "slow consumer".into() }
                    });
                }
            },
            _ = keepalive.tick() => {
                // Keeps proxies from closing idle sockets; the browser pongs.
                let sent = tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
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
    mut ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    peer: Option<std::net::IpAddr>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _alive = shared.alive.clone();
    let metrics = &shared.metrics;
    let id = ParticipantId::random();
    let (tx, mut rx) = mpsc::channel(shared.opts.ws_outbound_queue);
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
    let close = pump(&mut ws, &shared, &mut rx, &Signaling { id, metrics }).await;
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
    mut ws: WebSocketStream<S>,
    token: String,
    shared: Arc<Shared>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _alive = shared.alive.clone();
    let conn = PadConnId(NEXT_PAD_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, mut rx) = mpsc::channel(shared.opts.ws_outbound_queue);
    if shared
        .hub_tx
        .send(HubInput::PadOpen { conn, token, tx })
        .await
        .is_err()
    {
        return;
    }
    let close = pump(&mut ws, &shared, &mut rx, &PadSocket { conn }).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        shared.hub_tx.send(HubInput::PadClosed { conn }),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(close)).await;
}
