//! The gateway's connection bounds over real loopback sockets: caps, the
//! join deadline, liveness, the message rate, pre-join frame size, failed
//! joins, byte-bounded queues, odd request targets, `Host`, the admin
//! listener and a panicking hub task. Short limits through `ServeOptions`
//! keep each test to a second or two.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use salon_gateway::control::{Command, Event, ParticipantId};
use salon_gateway::{
    AdminListener, HubPanicked, MediaControl, MediaEventSender, ServeOptions, media_event_channel,
    serve,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

type Ws = WebSocketStream<TcpStream>;

/// Records commands; panics on `Join` if told to (a hub task that panics).
struct FakeMedia {
    commands: Mutex<Vec<Command>>,
    panic_on_join: bool,
}

impl MediaControl for FakeMedia {
    fn send(&self, cmd: Command) {
        if self.panic_on_join && matches!(cmd, Command::Join { .. }) {
            panic!("fake media plane: join");
        }
        self.commands.lock().unwrap().push(cmd);
    }

    fn metrics_text(&self) -> String {
        "fake_media_up 1\n".to_owned()
    }
}

struct Harness {
    addr: SocketAddr,
    events: MediaEventSender,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    async fn start(opts: ServeOptions) -> Self {
        Self::start_with(opts, false).await
    }

    async fn start_with(opts: ServeOptions, panic_on_join: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, rx) = media_event_channel();
        let media = Arc::new(FakeMedia {
            commands: Mutex::new(Vec::new()),
            panic_on_join,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, media, rx, opts, async move {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            events,
            stop: Some(stop),
            task,
        }
    }

    async fn try_ws(&self) -> Result<Ws, tungstenite::Error> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        client_async(format!("ws://{}/ws", self.addr), tcp)
            .await
            .map(|(ws, _)| ws)
    }

    async fn ws(&self) -> Ws {
        self.try_ws().await.unwrap()
    }

    /// A WebSocket whose request says it was forwarded for `client`.
    async fn try_ws_for(&self, client: &str) -> Result<Ws, tungstenite::Error> {
        use tungstenite::client::IntoClientRequest as _;
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        client_async(req, tcp).await.map(|(ws, _)| ws)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve stops")
            .unwrap()
            .unwrap();
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text message, as JSON.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Reads until the server closes; returns its close frame (`None`: the
/// connection ended without one).
async fn closed(ws: &mut Ws, within: Duration) -> Option<CloseFrame> {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("closed in time")
}

fn close_of(frame: Option<CloseFrame>) -> (u16, String) {
    let frame = frame.expect("a close frame");
    (u16::from(frame.code), frame.reason.to_string())
}

async fn join(ws: &mut Ws, room: &str, name: &str) -> Value {
    send(ws, json!({"type":"join","room":room,"name":name})).await;
    let v = recv(ws).await;
    assert_eq!(v["type"], "joined", "{v}");
    v
}

/// A raw HTTP/1.1 exchange: status and body.
async fn http_raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A sample's value (gauges are written as floats: `3.0`).
fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("{name} not in {body}"))
}

/// Two members of room `R`: `a` and `b`, with `b`'s participant-joined
/// read by `a`.
async fn two_members(h: &Harness) -> (Ws, Ws) {
    let mut a = h.ws().await;
    let mut b = h.ws().await;
    join(&mut a, "R", "Ana").await;
    join(&mut b, "R", "Bob").await;
    assert_eq!(recv(&mut a).await["type"], "participant-joined");
    (a, b)
}

/// A public chat from `from`, received by `to` (and by `from` itself).
async fn chat_reaches(from: &mut Ws, to: &mut Ws, text: &str) {
    send(from, json!({"type":"chat","text":text})).await;
    for ws in [from, to] {
        loop {
            let m = recv(ws).await;
            if m["type"] == "chat" {
                assert_eq!(m["text"], text);
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused_and_members_carry_on() {
    let h = Harness::start(ServeOptions {
        max_connections_per_ip: 4,
        ..ServeOptions::default()
    })
    .await;
    let (mut a, mut b) = two_members(&h).await;
    let mut idle = vec![h.ws().await, h.ws().await];
    for _ in 0..20 {
        match h.try_ws().await {
            Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 429),
            other => panic!("not refused: {:?}", other.map(|_| ())),
        }
    }
    chat_reaches(&mut a, &mut b, "toujours là").await;
    chat_reaches(&mut b, &mut a, "moi aussi").await;
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(
        metric(
            &body,
            "salon_gateway_connections_refused_total{reason=\"per-ip-cap\"}"
        ),
        20
    );
    // A place freed is a place taken again.
    drop(idle.pop());
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = h.try_ws().await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some());
    h.stop().await;

    // The global cap: 503.
    let h = Harness::start(ServeOptions {
        max_connections: 2,
        ..ServeOptions::default()
    })
    .await;
    let _held = (h.ws().await, h.ws().await);
    match h.try_ws().await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(
        metric(
            &body,
            "salon_gateway_connections_refused_total{reason=\"global-cap\"}"
        ),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn a_socket_that_never_joins_is_closed_at_the_deadline() {
    let h = Harness::start(ServeOptions {
        join_deadline: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    let mut lurker = h.ws().await;
    let mut member = h.ws().await;
    join(&mut member, "R", "Ana").await;
    // Errors do not count as joining.
    send(&mut lurker, json!({"type":"dance"})).await;
    assert_eq!(recv(&mut lurker).await["code"], "unknown-type");
    let started = std::time::Instant::now();
    assert_eq!(
        close_of(closed(&mut lurker, Duration::from_secs(3)).await),
        (4002, "join-timeout".to_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The member, past the deadline, is still there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut member, json!({"type":"dance"})).await;
    assert_eq!(recv(&mut member).await["code"], "unknown-type");
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(
        metric(
            &body,
            "salon_gateway_sockets_closed_total{reason=\"join-timeout\"}"
        ),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_closed_and_its_member_may_resume() {
    let h = Harness::start(ServeOptions {
        ping_interval: Duration::from_millis(100),
        liveness_timeout: Duration::from_millis(500),
        reconnect_grace: Duration::from_secs(10),
        ..ServeOptions::default()
    })
    .await;
    let (mut a, mut b) = two_members(&h).await;
    let resume_token = {
        let mut c = h.ws().await;
        let jc = join(&mut c, "R", "Cy").await;
        assert_eq!(recv(&mut a).await["type"], "participant-joined");
        assert_eq!(recv(&mut b).await["type"], "participant-joined");
        // `c` reads nothing from here on: its client answers no ping. `a`
        // and `b` keep reading (their clients pong): they stay.
        let id = jc["id"].as_u64().unwrap();
        let token = jc["resume_token"].as_str().unwrap().to_owned();
        let (gone, seen_by_b) = tokio::join!(recv(&mut a), recv(&mut b));
        assert_eq!(
            gone,
            json!({"type":"participant-reconnecting","id": id}),
            "a dead socket is a drop: the member keeps its place"
        );
        assert_eq!(seen_by_b, gone);
        // The server sent 4003 `ping-timeout`; a client that wakes up may
        // first fail to send its late pongs on the dead connection.
        if let Some(frame) = closed(&mut c, Duration::from_secs(3)).await {
            assert_eq!(close_of(Some(frame)), (4003, "ping-timeout".to_owned()));
        }
        let (_, body) = http_get(h.addr, "/metrics").await;
        assert_eq!(
            metric(
                &body,
                "salon_gateway_sockets_closed_total{reason=\"ping-timeout\"}"
            ),
            1
        );
        token
    };
    let mut c2 = h.ws().await;
    send(
        &mut c2,
        json!({"type":"resume","token":resume_token,"media":"kept"}),
    )
    .await;
    assert_eq!(recv(&mut c2).await["type"], "resumed");
    assert_eq!(recv(&mut a).await["type"], "participant-resumed");
    chat_reaches(&mut b, &mut a, "bon retour").await;
    h.stop().await;
}

#[tokio::test]
async fn a_message_flood_is_refused_then_closed_and_the_room_carries_on() {
    let h = Harness::start(ServeOptions {
        msg_rate_per_sec: 10,
        msg_burst: 10,
        rate_abuse_close: Duration::from_millis(800),
        reconnect_grace: Duration::ZERO,
        ..ServeOptions::default()
    })
    .await;
    let (mut a, mut b) = two_members(&h).await;
    let a_id = {
        send(&mut a, json!({"type":"chat","text":"id?"})).await;
        let m = recv(&mut a).await;
        assert_eq!(m["type"], "chat");
        assert_eq!(recv(&mut b).await["type"], "chat");
        m["from"].as_u64().unwrap()
    };
    // 200 frames a second from `a`.
    let flood = async {
        for _ in 0..400 {
            if a.send(Message::text(r#"{"type":"audio-only","on":true}"#))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), flood)
        .await
        .unwrap();
    let mut codes = Vec::new();
    let close = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match a.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    codes.push(v["code"].as_str().unwrap_or_default().to_owned());
                }
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close_of(close), (4004, "rate-limited".to_owned()));
    assert_eq!(codes, ["rate-limited"], "answered once, then dropped");
    // `b` is untouched and hears `a` leave.
    assert_eq!(
        recv(&mut b).await,
        json!({"type":"participant-left","id": a_id})
    );
    send(&mut b, json!({"type":"chat","text":"seul"})).await;
    assert_eq!(recv(&mut b).await["text"], "seul");
    h.stop().await;
}

#[tokio::test]
async fn oversized_frames_before_join_close_the_socket() {
    let h = Harness::start(ServeOptions::default()).await;
    // Just over 16 KiB (read whole, then refused) and far over (never
    // read past the budget).
    for size in [17 * 1024, 512 * 1024] {
        let mut ws = h.ws().await;
        let name = "x".repeat(size);
        // The server may close before the client has written it all.
        let _ = ws
            .send(Message::text(
                json!({"type":"join","room":"R","name":name}).to_string(),
            ))
            .await;
        assert_eq!(
            close_of(closed(&mut ws, Duration::from_secs(3)).await),
            (1009, "too-large".to_owned()),
            "{size}"
        );
    }
    // A join with a long token fits.
    let mut ws = h.ws().await;
    send(
        &mut ws,
        json!({"type":"join","room":"R","name":"Ana","jwt":"a".repeat(12 * 1024)}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "auth-failed");
    h.stop().await;
}

#[tokio::test]
async fn failed_joins_back_off_then_close_the_socket() {
    let h = Harness::start(ServeOptions {
        max_failed_joins: 3,
        join_backoff: Duration::from_millis(50),
        ..ServeOptions::default()
    })
    .await;
    let mut ws = h.ws().await;
    let bad = json!({"type":"join","room":"R","name":"A","jwt":"not.a.token"});
    send(&mut ws, bad.clone()).await;
    assert_eq!(recv(&mut ws).await["code"], "auth-failed");
    send(&mut ws, bad.clone()).await;
    let v = recv(&mut ws).await;
    assert_eq!(v["code"], "join-too-soon", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("retry_after_ms=")
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    send(&mut ws, bad.clone()).await;
    assert_eq!(recv(&mut ws).await["code"], "auth-failed");
    tokio::time::sleep(Duration::from_millis(110)).await;
    send(&mut ws, bad).await;
    assert_eq!(recv(&mut ws).await["code"], "auth-failed");
    assert_eq!(
        close_of(closed(&mut ws, Duration::from_secs(3)).await),
        (4005, "too-many-failed-joins".to_owned())
    );
    h.stop().await;
}

#[tokio::test]
async fn a_socket_that_does_not_read_is_dropped_past_its_byte_bound() {
    let h = Harness::start(ServeOptions {
        ws_outbound_bytes: 256 * 1024,
        reconnect_grace: Duration::ZERO,
        ..ServeOptions::default()
    })
    .await;
    let mut a = h.ws().await;
    let mut b = h.ws().await;
    let a_id = join(&mut a, "R", "Ana").await["id"].as_u64().unwrap();
    join(&mut b, "R", "Bob").await;
    // `a` reads nothing from here on. 64 offers of 200 KB: 12.8 MB, more
    // than loopback's socket buffers, and far fewer than the 256-message
    // bound: only the byte bound can drop it.
    let sdp = "v".repeat(200_000);
    for _ in 0..64 {
        h.events
            .send(Event::SubscribeOffer {
                participant: ParticipantId(a_id),
                sdp: sdp.clone(),
            })
            .unwrap();
    }
    assert_eq!(
        recv(&mut b).await,
        json!({"type":"participant-left","id": a_id}),
        "dropped as a slow consumer"
    );
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(metric(&body, "salon_gateway_slow_consumers_total"), 1);
    drop(a);
    h.stop().await;
}

#[tokio::test]
async fn odd_request_targets_do_not_panic() {
    let h = Harness::start(ServeOptions::default()).await;
    let host = h.addr;
    for target in [
        format!("{host}"),
        "*".to_owned(),
        format!("http://{host}"),
        format!("http://{host}/Salle"),
        "//".to_owned(),
        "/%".to_owned(),
    ] {
        let (status, _) = http_raw(
            h.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!((200..500).contains(&status), "{target}: {status}");
    }
    for method in ["CONNECT", "OPTIONS"] {
        let target = if method == "CONNECT" {
            format!("{host}")
        } else {
            "*".to_owned()
        };
        let (status, _) = http_raw(
            h.addr,
            &format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!((400..500).contains(&status), "{method}: {status}");
    }
    // Still serving.
    assert_eq!(http_get(h.addr, "/healthz").await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn other_hosts_are_refused() {
    let h = Harness::start(ServeOptions::default()).await;
    let get = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    for ok in [
        h.addr.to_string(),
        "localhost".to_owned(),
        format!("localhost:{}", h.addr.port()),
        "127.0.0.2:8080".to_owned(),
        "[::1]:8080".to_owned(),
    ] {
        assert_eq!(http_raw(h.addr, &get(&ok)).await.0, 200, "{ok}");
    }
    for bad in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
    ] {
        assert_eq!(http_raw(h.addr, &get(bad)).await.0, 421, "{bad}");
    }
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(metric(&body, "salon_gateway_host_refused_total"), 3);
    h.stop().await;

    let h = Harness::start(ServeOptions {
        allowed_hosts: vec!["salon.example".to_owned()],
        ..ServeOptions::default()
    })
    .await;
    assert_eq!(http_raw(h.addr, &get("salon.example")).await.0, 200);
    assert_eq!(http_raw(h.addr, &get("SALON.example:443")).await.0, 200);
    assert_eq!(http_raw(h.addr, &get("localhost")).await.0, 421);
    // The WebSocket upgrade is checked too.
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    assert!(
        client_async(format!("ws://{}/ws", h.addr), tcp)
            .await
            .is_err()
    );
    h.stop().await;
}

#[tokio::test]
async fn metrics_are_on_the_admin_listener_only() {
    let admin = AdminListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let h = Harness::start(ServeOptions {
        admin: Some(admin),
        metrics_on_public: false,
        ..ServeOptions::default()
    })
    .await;
    let mut ws = h.ws().await;
    join(&mut ws, "R", "Ana").await;
    let (status, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(status, 404);
    assert!(!body.contains("salon_gateway"), "{body}");
    let (status, body) = http_get(admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&body, "salon_gateway_participants"), 1);
    assert!(body.contains("fake_media_up 1"));
    assert_eq!(http_get(admin_addr, "/healthz").await.0, 200);
    // Nothing else there.
    assert_eq!(http_get(admin_addr, "/").await.0, 404);
    assert_eq!(http_get(admin_addr, "/ws").await.0, 404);
    h.stop().await;
}

#[tokio::test]
async fn a_panic_in_the_hub_task_ends_serve_with_hub_panicked() {
    let h = Harness::start_with(ServeOptions::default(), true).await;
    let mut ws = h.ws().await;
    send(&mut ws, json!({"type":"join","room":"R","name":"Ana"})).await;
    let result = tokio::time::timeout(Duration::from_secs(10), h.task)
        .await
        .expect("serve returns")
        .unwrap();
    let err = result.expect_err("serve fails");
    let panicked = err.downcast_ref::<HubPanicked>().expect("HubPanicked");
    assert!(panicked.0.contains("fake media plane"), "{panicked}");
    assert_eq!(HubPanicked::EXIT_STATUS, 70);
    // Its sockets are closed (clients reconnect to the restarted process).
    let _ = closed(&mut ws, Duration::from_secs(5)).await;
}

/// Opens a pad socket offering `protocols`; returns it and the subprotocol
/// the server selected.
async fn pad_with_protocols(addr: SocketAddr, protocols: &str) -> (Ws, Option<String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let req = tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/pad"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .header("Sec-WebSocket-Protocol", protocols)
        .body(())
        .unwrap();
    let (ws, res) = client_async(req, tcp).await.unwrap();
    let selected = res
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, selected)
}

#[tokio::test]
async fn the_pad_token_travels_in_the_subprotocol_list_not_the_url() {
    let h = Harness::start(ServeOptions::default()).await;
    let mut ws = h.ws().await;
    let token = join(&mut ws, "R", "Ana").await["pad_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut pad, selected) =
        pad_with_protocols(h.addr, &format!("salon-pad, salon-pad-token.{token}")).await;
    assert_eq!(selected.as_deref(), Some("salon-pad"));
    // The server's SyncStep1: the pad is open.
    let first = tokio::time::timeout(Duration::from_secs(5), pad.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, Message::Binary(ref b) if b.first() == Some(&0)),
        "{first:?}"
    );
    // A wrong token is refused like one in the query string.
    let (mut bad, _) = pad_with_protocols(h.addr, "salon-pad, salon-pad-token.0123").await;
    assert_eq!(
        close_of(closed(&mut bad, Duration::from_secs(3)).await),
        (1008, "pad-denied".to_owned())
    );
    h.stop().await;
}

#[tokio::test]
async fn plain_connections_from_one_address_are_capped_at_accept() {
    let h = Harness::start(ServeOptions {
        max_http_per_ip: 4,
        ..ServeOptions::default()
    })
    .await;
    // A member's WebSocket no longer counts once upgraded.
    let mut member = h.ws().await;
    join(&mut member, "R", "Ana").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(h.addr).await.unwrap());
    }
    // The fifth is closed at once, without a response.
    let mut extra = TcpStream::connect(h.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    // The member carries on; a place freed is a place taken again.
    send(&mut member, json!({"type":"dance"})).await;
    assert_eq!(recv(&mut member).await["code"], "unknown-type");
    drop(held.pop());
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = http_get(h.addr, "/healthz").await.0;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    drop(held);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, body) = http_get(h.addr, "/metrics").await;
    assert!(
        metric(
            &body,
            "salon_gateway_connections_refused_total{reason=\"http-per-ip-cap\"}"
        ) >= 1
    );
    h.stop().await;
}

/// Behind a trusted reverse proxy, the per-address cap applies to the
/// client it forwards; anyone else's `X-Forwarded-For` is ignored.
#[tokio::test]
async fn the_per_address_cap_follows_x_forwarded_for_from_trusted_proxies_only() {
    let trusted = Harness::start(ServeOptions {
        max_connections_per_ip: 1,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..ServeOptions::default()
    })
    .await;
    let _a = trusted.try_ws_for("198.51.100.1").await.unwrap();
    let _b = trusted.try_ws_for("198.51.100.2").await.unwrap();
    // A forged first hop does not help: the proxy's own entry counts.
    match trusted.try_ws_for("203.0.113.9, 198.51.100.1").await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
    trusted.stop().await;

    let untrusted = Harness::start(ServeOptions {
        max_connections_per_ip: 1,
        ..ServeOptions::default()
    })
    .await;
    let _a = untrusted.try_ws_for("198.51.100.1").await.unwrap();
    match untrusted.try_ws_for("198.51.100.2").await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
    untrusted.stop().await;
}
