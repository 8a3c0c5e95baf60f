//! Raw WebSocket clients for the attacks: connect from a chosen loopback
//! address, send and receive JSON or binary frames with timeouts, and what
//! the gateway did to us (errors by code, the close). Also HS256 tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// A client socket.
pub type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Time allowed for a TCP connect plus the upgrade, and for a reply.
pub const REPLY: Duration = Duration::from_secs(5);

/// Why a connection was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The server said no: an HTTP status instead of the upgrade, or the
    /// TCP connection was refused, reset or closed during the handshake.
    Refused(String),
    /// No answer in time.
    Timeout,
    /// Anything else (our side).
    Other(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(s) => write!(f, "refused ({s})"),
            Self::Timeout => write!(f, "timed out"),
            Self::Other(s) => write!(f, "{s}"),
        }
    }
}

/// `host:port` of a `ws://host:port/path` URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Open a WebSocket to `url` from local address `from` (any loopback
/// address works on Linux), with an optional small receive buffer (a
/// client that does not read fills it sooner).
pub async fn connect_with(
    url: &str,
    from: IpAddr,
    recv_buffer: Option<u32>,
) -> Result<Ws, ConnectError> {
    let addr: SocketAddr = authority(url)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ConnectError::Other(format!("bad URL {url}")))?;
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| ConnectError::Other(format!("socket: {e}")))?;
    if let Some(b) = recv_buffer {
        let _ = sock.set_recv_buffer_size(b);
    }
    sock.bind(SocketAddr::new(from, 0))
        .map_err(|e| ConnectError::Other(format!("bind {from}: {e}")))?;
    let fut = async {
        let tcp = sock.connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                ConnectError::Refused(format!("TCP: {e}"))
            }
            _ => ConnectError::Other(format!("TCP connect: {e}")),
        })?;
        tokio_tungstenite::client_async(url, tcp)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| match e {
                tungstenite::Error::Http(r) => {
                    ConnectError::Refused(format!("HTTP {}", r.status()))
                }
                tungstenite::Error::Io(e) => ConnectError::Refused(format!("I/O: {e}")),
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                    ConnectError::Refused("closed during the upgrade".into())
                }
                tungstenite::Error::Protocol(p) => ConnectError::Refused(format!("protocol: {p}")),
                other => ConnectError::Other(format!("upgrade: {other}")),
            })
    };
    tokio::time::timeout(REPLY, fut)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// [`connect_with`] with the default receive buffer.
pub async fn connect(url: &str, from: IpAddr) -> Result<Ws, ConnectError> {
    connect_with(url, from, None).await
}

/// One thing read from a socket.
#[derive(Debug)]
pub enum Recv {
    /// A text frame holding JSON.
    Json(Value),
    /// A binary frame of this many bytes.
    Binary(usize),
    /// The server closed the socket: its close code and reason, or how
    /// the TCP connection ended.
    Closed(String),
    /// Nothing within the time asked.
    Timeout,
    /// A protocol error or a text frame that is not JSON.
    Error(String),
}

/// The next frame within `within` (pings and pongs skipped), from a
/// socket or the reading half of one.
pub async fn recv<S>(ws: &mut S, within: Duration) -> Recv
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let fut = async {
        loop {
            return match ws.next().await {
                None => Recv::Closed("TCP closed".into()),
                Some(Err(tungstenite::Error::ConnectionClosed)) => Recv::Closed("closed".into()),
                Some(Err(tungstenite::Error::Io(e))) => Recv::Closed(format!("I/O: {e}")),
                Some(Err(tungstenite::Error::Protocol(p))) => {
                    Recv::Closed(format!("without close frame ({p})"))
                }
                Some(Err(e)) => Recv::Error(e.to_string()),
                Some(Ok(Message::Text(t))) => match serde_json::from_str(t.as_str()) {
                    Ok(v) => Recv::Json(v),
                    Err(e) => Recv::Error(format!("not JSON: {e}")),
                },
                Some(Ok(Message::Binary(b))) => Recv::Binary(b.len()),
                Some(Ok(Message::Close(c))) => Recv::Closed(match c {
                    Some(c) => format!("close {} {}", u16::from(c.code), c.reason),
                    None => "close frame".into(),
                }),
                Some(Ok(_)) => continue,
            };
        }
    };
    tokio::time::timeout(within, fut)
        .await
        .unwrap_or(Recv::Timeout)
}

/// Send a JSON text frame.
pub async fn send(ws: &mut Ws, v: Value) -> Result<(), String> {
    tokio::time::timeout(REPLY, ws.send(Message::text(v.to_string())))
        .await
        .map_err(|_| "send timed out".to_owned())?
        .map_err(|e| format!("send: {e}"))
}

/// Send `join` and wait for the answer to it: `joined`, `lobby` or an
/// `error` (other messages are skipped). A close or a timeout is an `Err`.
pub async fn join(ws: &mut Ws, room: &str, name: &str, jwt: Option<&str>) -> Result<Value, String> {
    let mut m = json!({"type": "join", "room": room, "name": name});
    if let Some(t) = jwt {
        m["jwt"] = Value::from(t);
    }
    send(ws, m).await?;
    reply(ws, &["joined", "lobby", "error"]).await
}

/// Wait (at most [`REPLY`]) for a message whose `type` is one of `kinds`.
pub async fn reply(ws: &mut Ws, kinds: &[&str]) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + REPLY;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recv(ws, left).await {
            Recv::Json(v) if kinds.iter().any(|k| v["type"] == *k) => return Ok(v),
            Recv::Json(_) | Recv::Binary(_) => {}
            Recv::Closed(why) => return Err(format!("socket closed before {kinds:?}: {why}")),
            Recv::Timeout => return Err(format!("no {kinds:?} within {REPLY:?}")),
            Recv::Error(e) => return Err(e),
        }
    }
}

/// What the gateway did to one attacking socket (or many, merged).
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// `error` messages by code.
    pub errors: BTreeMap<String, u64>,
    /// Other messages by type.
    pub messages: BTreeMap<String, u64>,
    /// Sockets closed by the server, by how.
    pub closed: BTreeMap<String, u64>,
}

impl Seen {
    /// Record one received item.
    pub fn record(&mut self, r: &Recv) {
        match r {
            Recv::Json(v) if v["type"] == "error" => {
                *self
                    .errors
                    .entry(v["code"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            Recv::Json(v) => {
                *self
                    .messages
                    .entry(v["type"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            Recv::Closed(why) => *self.closed.entry(close_kind(why)).or_default() += 1,
            Recv::Binary(_) | Recv::Timeout | Recv::Error(_) => {}
        }
    }

    /// Add `o` into `self`.
    pub fn merge(&mut self, o: &Seen) {
        for (k, n) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.messages {
            *self.messages.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.closed {
            *self.closed.entry(k.clone()).or_default() += n;
        }
    }

    /// `error` messages with this code.
    pub fn error(&self, code: &str) -> u64 {
        self.errors.get(code).copied().unwrap_or(0)
    }

    /// Messages of this type.
    pub fn message(&self, kind: &str) -> u64 {
        self.messages.get(kind).copied().unwrap_or(0)
    }

    /// Sockets closed by the server.
    pub fn closes(&self) -> u64 {
        self.closed.values().sum()
    }
}

/// A close, shortened for the table: `close 1008 rate-limited`, `reset`.
fn close_kind(why: &str) -> String {
    if why.starts_with("close ") || why == "close frame" {
        why.trim().to_owned()
    } else if why.contains("reset") || why.contains("Reset") {
        "reset".into()
    } else {
        "closed without close frame".into()
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (k, n) in &self.errors {
            parts.push(format!("error {k} ×{n}"));
        }
        for (k, n) in &self.closed {
            parts.push(format!("{k} ×{n}"));
        }
        if parts.is_empty() {
            parts.push("no error, not closed".into());
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// Read everything for `within` (or until the socket ends), recording it;
/// true if it ended.
pub async fn drain<S>(ws: &mut S, within: Duration, seen: &mut Seen) -> bool
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let r = recv(ws, left).await;
        seen.record(&r);
        match r {
            Recv::Closed(_) | Recv::Error(_) => return true,
            Recv::Timeout => return false,
            Recv::Json(_) | Recv::Binary(_) => {}
        }
    }
}

/// Unpadded base64url (RFC 4648 §5).
pub fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..=c.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// An HS256 JWT with header `{"alg":"HS256","typ":"JWT","kid":kid}` and
/// these claims, signed with `secret`.
pub fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let signing = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing.as_bytes());
    format!("{signing}.{}", base64url(tag.as_ref()))
}

/// Jitsi-style claims: `iss`, `aud`, `sub`, `room`, an hour of validity,
/// `context.user` with `id`, `name` and the moderator flag.
pub fn claims(iss: &str, aud: &str, sub: &str, room: &str, moderator: bool) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "iss": iss, "aud": aud, "sub": sub, "room": room,
        "iat": now, "nbf": now.saturating_sub(60), "exp": now + 3600,
        "context": {"user": {"id": sub, "name": sub, "moderator": moderator}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn hs256_is_rfc_7515_appendix_a1_shape() {
        let t = hs256("k", &json!({"a": 1}), b"secret");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].len(), 43, "32-byte tag, unpadded");
        assert_eq!(authority("ws://127.0.0.1:80/ws"), Some("127.0.0.1:80"));
    }
}
