//! The gateway over real sockets (HTTP and WebSocket) with a recording fake
//! media plane.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use salon_gateway::control::{Command, Event, ParticipantId, TransportKind};
use salon_gateway::{MediaControl, MediaEventSender, ServeOptions, media_event_channel, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

/// Records commands; answers publish offers like mediad would.
struct FakeMedia {
    commands: Mutex<Vec<Command>>,
    events: MediaEventSender,
}

impl MediaControl for FakeMedia {
    fn send(&self, cmd: Command) {
        if let Command::PublishOffer {
            participant,
            request,
            sdp,
        } = &cmd
        {
            let _ = self.events.send(Event::PublishAnswer {
                participant: *participant,
                request: *request,
                sdp: format!("answer-to:{sdp}"),
            });
        }
        self.commands.lock().unwrap().push(cmd);
    }

    fn metrics_text(&self) -> String {
        "fake_media_up 1\n".to_owned()
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    media: Arc<FakeMedia>,
    events: MediaEventSender,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, rx) = media_event_channel();
        let media = Arc::new(FakeMedia {
            commands: Mutex::new(Vec::new()),
            events: events.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            media.clone(),
            rx,
            ServeOptions::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Harness {
            addr,
            media,
            events,
            stop: Some(stop),
            task,
        }
    }

    async fn ws(&self) -> WebSocketStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let (ws, _) = client_async(format!("ws://{}/ws", self.addr), tcp)
            .await
            .unwrap();
        ws
    }

    fn commands(&self) -> Vec<Command> {
        self.media.commands.lock().unwrap().clone()
    }

    async fn wait_for_command(&self, pred: impl Fn(&Command) -> bool) -> Command {
        for _ in 0..200 {
            if let Some(c) = self.commands().into_iter().find(&pred) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("command not seen; got {:?}", self.commands());
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

async fn send(ws: &mut WebSocketStream<TcpStream>, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn recv(ws: &mut WebSocketStream<TcpStream>) -> Value {
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

async fn expect_error(ws: &mut WebSocketStream<TcpStream>, code: &str) {
    let v = recv(ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].is_string());
}

async fn join(ws: &mut WebSocketStream<TcpStream>, room: &str, name: &str) -> Value {
    send(ws, json!({"type":"join","room":room,"name":name})).await;
    let v = recv(ws).await;
    assert_eq!(v["type"], "joined", "{v}");
    v
}

#[tokio::test]
async fn errors_keep_the_socket_usable() {
    let h = Harness::start().await;
    let mut ws = h.ws().await;
    ws.send(Message::text("{not json")).await.unwrap();
    expect_error(&mut ws, "bad-json").await;
    send(&mut ws, json!({"type":"dance"})).await;
    expect_error(&mut ws, "unknown-type").await;
    send(&mut ws, json!({"type":"join","room":5,"name":"A"})).await;
    expect_error(&mut ws, "bad-message").await;
    send(&mut ws, json!({"type":"publish-offer","sdp":"v=0"})).await;
    expect_error(&mut ws, "not-joined").await;
    send(&mut ws, json!({"type":"join","room":"../etc","name":"A"})).await;
    expect_error(&mut ws, "bad-room").await;
    send(
        &mut ws,
        json!({"type":"join","room":"R","name":"\u{1b}[31m"}),
    )
    .await;
    expect_error(&mut ws, "bad-name").await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    expect_error(&mut ws, "not-text").await;
    let joined = join(&mut ws, "R", "Ana").await;
    assert_eq!(joined["room"], "R");
    assert!(joined["id"].as_u64().unwrap() >= 1);
    // Once joined, frames up to the hard limit are read (before the join,
    // anything over 16 KiB closes the socket: tests/conn_limits.rs).
    ws.send(Message::text("x".repeat(700 * 1024)))
        .await
        .unwrap();
    expect_error(&mut ws, "too-large").await;
    send(&mut ws, json!({"type":"join","room":"R","name":"Ana"})).await;
    expect_error(&mut ws, "already-joined").await;
    // No media command came from any refused message.
    let non_join = h
        .commands()
        .iter()
        .filter(|c| !matches!(c, Command::Join { .. }))
        .count();
    assert_eq!(non_join, 0);
    h.stop().await;
}

#[tokio::test]
async fn join_leave_broadcast_and_close_sends_leave() {
    let h = Harness::start().await;
    let mut a = h.ws().await;
    let mut b = h.ws().await;
    let mut c = h.ws().await;
    let ja = join(&mut a, "NomDuSalon123", "Ana").await;
    let a_id = ja["id"].as_u64().unwrap();
    assert_eq!(ja["participants"], json!([]));
    let jb = join(&mut b, "NomDuSalon123", "<img src=x>").await;
    let b_id = jb["id"].as_u64().unwrap();
    assert_ne!(a_id, b_id);
    assert_eq!(
        jb["participants"],
        json!([{"id": a_id, "name": "Ana", "role": "moderator", "audio_muted": false, "video_stopped": false, "reconnecting": false}])
    );
    assert_eq!(ja["role"], "moderator");
    assert_eq!(jb["role"], "participant");
    assert_eq!(jb["locked"], false);
    let pj = recv(&mut a).await;
    assert_eq!(
        pj,
        json!({"type":"participant-joined","id": b_id,"name":"<img src=x>","role":"participant"})
    );
    // Another room hears nothing about them.
    join(&mut c, "AutreSalon", "Cy").await;

    // B publishes: only B gets the answer.
    send(&mut b, json!({"type":"publish-offer","sdp":"offer-b"})).await;
    let ans = recv(&mut b).await;
    assert_eq!(
        ans,
        json!({"type":"publish-answer","sdp":"answer-to:offer-b"})
    );

    // Media events reach only their participant.
    h.events
        .send(Event::SubscribeOffer {
            participant: ParticipantId(a_id),
            sdp: "sub-a".into(),
        })
        .unwrap();
    h.events
        .send(Event::Connected {
            participant: ParticipantId(b_id),
            transport: TransportKind::Publish,
        })
        .unwrap();
    assert_eq!(
        recv(&mut a).await,
        json!({"type":"subscribe-offer","sdp":"sub-a"})
    );
    assert_eq!(
        recv(&mut b).await,
        json!({"type":"connected","transport":"publish"})
    );
    send(&mut a, json!({"type":"subscribe-answer","sdp":"ans-a"})).await;
    h.wait_for_command(|cmd| {
        matches!(cmd, Command::SubscribeAnswer { participant, sdp, .. }
            if *participant == ParticipantId(a_id) && sdp == "ans-a")
    })
    .await;

    // Closing B's socket: Leave for B, participant-left to A only.
    drop(b);
    h.wait_for_command(
        |cmd| matches!(cmd, Command::Leave { participant } if *participant == ParticipantId(b_id)),
    )
    .await;
    assert_eq!(
        recv(&mut a).await,
        json!({"type":"participant-left","id": b_id})
    );

    // `leave` message: Leave for A; C (other room) got nothing at all.
    send(&mut a, json!({"type":"leave"})).await;
    h.wait_for_command(
        |cmd| matches!(cmd, Command::Leave { participant } if *participant == ParticipantId(a_id)),
    )
    .await;
    send(&mut c, json!({"type":"dance"})).await;
    expect_error(&mut c, "unknown-type").await; // the first thing C receives
    h.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    http_get_with(addr, path, "").await
}

/// [`http_get`] with extra header lines (each ending in `\r\n`).
async fn http_get_with(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn http_routes_and_headers() {
    let h = Harness::start().await;
    let (s, head, body) = http_get(h.addr, "/").await;
    assert_eq!(s, 200);
    assert!(head.contains("content-security-policy: default-src 'self'"));
    assert!(head.contains("x-content-type-options: nosniff"));
    assert!(head.contains("referrer-policy: no-referrer"));
    assert!(body.contains("/static/home.js"));
    let (s, _, body) = http_get(h.addr, "/NomDuSalon123").await;
    assert_eq!(s, 200);
    assert!(body.contains("/static/room.js"));
    for bad in ["/a.b", "/a%20b", &format!("/{}", "x".repeat(65)), "/a/b"] {
        let (s, _, body) = http_get(h.addr, bad).await;
        assert_eq!(s, 400, "{bad}");
        assert!(body.contains("Nom de salon invalide") && body.contains("Invalid room name"));
    }
    let (s, head, _) = http_get(h.addr, "/?room=Abc-1").await;
    assert_eq!(s, 303);
    assert!(head.contains("location: /abc-1"));
    let (s, head, body) = http_get(h.addr, "/static/room.js").await;
    assert_eq!(s, 200);
    assert!(head.contains("content-type: text/javascript"));
    assert!(body.len() > 100_000, "the room client");
    // A reload revalidates: the same entity tag gets 304 and no body (the
    // 711 kB client again took 36 s behind a 400 kbit/s link); another,
    // or none, gets the asset.
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an entity tag")
        .to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );
    let (s, head, body) = http_get_with(
        h.addr,
        "/static/room.js",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(s, 304);
    assert!(body.is_empty(), "no body with 304");
    assert!(head.contains(&format!("etag: {etag}")));
    let (s, _, body) = http_get_with(
        h.addr,
        "/static/room.js",
        "If-None-Match: \"0000000000000000\"\r\n",
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.len() > 100_000);
    // Another asset has its own tag.
    let (_, head, _) = http_get(h.addr, "/static/app.css").await;
    assert!(head.contains("etag: ") && !head.contains(&format!("etag: {etag}")));
    assert_eq!(http_get(h.addr, "/static/nope.js").await.0, 404);
    assert_eq!(http_get(h.addr, "/healthz").await.0, 200);
    // A plain GET on /ws is not an upgrade.
    assert_eq!(http_get(h.addr, "/ws").await.0, 400);
    let mut ws = h.ws().await;
    join(&mut ws, "R", "Ana").await;
    let (s, _, body) = http_get(h.addr, "/metrics").await;
    assert_eq!(s, 200);
    assert!(
        body.contains("salon_gateway_ws_connections_total 1"),
        "{body}"
    );
    assert!(body.contains("salon_gateway_participants 1"), "{body}");
    assert!(body.contains("fake_media_up 1"));
    h.stop().await;
}

#[tokio::test]
async fn cross_origin_websocket_is_refused() {
    let h = Harness::start().await;
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    let req = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri(format!("ws://{}/ws", h.addr))
        .header("Host", h.addr.to_string())
        .header("Origin", "https://evil.example")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    assert!(client_async(req, tcp).await.is_err());
    h.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_sockets() {
    let h = Harness::start().await;
    let mut ws = h.ws().await;
    let id = join(&mut ws, "R", "Ana").await["id"].as_u64().unwrap();
    let media = h.media.clone();
    h.stop().await;
    // mediad is told the participant left.
    assert!(
        media.commands.lock().unwrap().iter().any(
            |c| matches!(c, Command::Leave { participant } if *participant == ParticipantId(id))
        )
    );
    // The server said goodbye (close frame) or dropped the connection.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok());
}

async fn pad_socket(addr: std::net::SocketAddr, token: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = client_async(format!("ws://{addr}/pad?token={token}"), tcp)
        .await
        .unwrap();
    ws
}

/// Next binary frame, or the close frame's reason.
async fn pad_next(ws: &mut WebSocketStream<TcpStream>) -> Result<Vec<u8>, String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("pad frame in time");
        match msg {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(c))) => {
                return Err(c.map(|c| c.reason.to_string()).unwrap_or_default());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("eof".into()),
        }
    }
}

/// A sample's value (gauges are written as floats: `3.0`).
async fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    let (_, _, body) = http_get(addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap()
}

fn pad_update(doc: &yrs::Doc, text: &str) -> Vec<u8> {
    use yrs::updates::encoder::Encode as _;
    use yrs::{ReadTxn as _, Text as _, Transact as _};
    let t = doc.get_or_insert_text("pad");
    let before = doc.transact().state_vector();
    let len = t.len(&doc.transact());
    t.insert(&mut doc.transact_mut(), len, text);
    let update = doc.transact().encode_state_as_update_v1(&before);
    yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1()
}

#[tokio::test]
async fn chat_and_pad_over_sockets_leave_nothing_behind() {
    let h = Harness::start().await;
    let mut a = h.ws().await;
    let mut b = h.ws().await;
    let mut c = h.ws().await;
    let ja = join(&mut a, "R", "Ana").await;
    let jb = join(&mut b, "R", "Bob").await;
    recv(&mut a).await; // participant-joined
    let _jc = join(&mut c, "X", "Cy").await;

    // Public chat: a and b, not c. Private to c (other room): refused.
    send(&mut a, json!({"type":"chat","text":"<b>salut</b>"})).await;
    for ws in [&mut a, &mut b] {
        let m = recv(ws).await;
        assert_eq!(m["type"], "chat");
        assert_eq!(m["text"], "<b>salut</b>");
        assert_eq!(m["name"], "Ana");
        assert_eq!(m["from"], ja["id"]);
        assert!(m["time"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let c_id = _jc["id"].as_u64().unwrap();
    send(&mut a, json!({"type":"chat","text":"psst","to":c_id})).await;
    expect_error(&mut a, "no-such-participant").await;
    send(&mut a, json!({"type":"chat","text":"x".repeat(2001)})).await;
    expect_error(&mut a, "too-long").await;
    // Private to b: a and b get it.
    send(&mut a, json!({"type":"chat","text":"psst","to":jb["id"]})).await;
    assert_eq!(recv(&mut a).await["to"], jb["id"]);
    assert_eq!(recv(&mut b).await["text"], "psst");
    // c heard nothing at all: its next message is the answer to its own.
    send(&mut c, json!({"type":"dance"})).await;
    expect_error(&mut c, "unknown-type").await;

    // Pad: bad token refused; a and b sync; a malformed frame closes only
    // the sender's pad socket.
    let mut bad = pad_socket(h.addr, "00").await;
    assert_eq!(pad_next(&mut bad).await.unwrap_err(), "pad-denied");
    let mut pa = pad_socket(h.addr, ja["pad_token"].as_str().unwrap()).await;
    let mut pb = pad_socket(h.addr, jb["pad_token"].as_str().unwrap()).await;
    assert_eq!(pad_next(&mut pa).await.unwrap()[..2], [0, 0], "SyncStep1");
    assert_eq!(pad_next(&mut pb).await.unwrap()[..2], [0, 0], "SyncStep1");
    assert_eq!(metric(h.addr, "salon_pads_live").await, 1);
    let doc = yrs::Doc::with_client_id(5);
    let frame = pad_update(&doc, "ordre du jour");
    pa.send(Message::binary(frame.clone())).await.unwrap();
    assert_eq!(pad_next(&mut pb).await.unwrap(), frame);
    pb.send(Message::binary(vec![0u8, 2, 5, 0xff, 0xff]))
        .await
        .unwrap();
    assert_eq!(pad_next(&mut pb).await.unwrap_err(), "pad-malformed");
    let frame2 = pad_update(&doc, " — suite");
    pa.send(Message::binary(frame2)).await.unwrap();
    pa.send(Message::text("not binary")).await.unwrap();
    assert_eq!(pad_next(&mut pa).await.unwrap_err(), "pad-not-binary");

    // Everyone in R leaves: no pad remains.
    drop((a, b));
    for _ in 0..200 {
        if metric(h.addr, "salon_pads_live").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metric(h.addr, "salon_pads_live").await, 0);
    assert_eq!(metric(h.addr, "salon_gateway_rooms").await, 1, "only X");
    drop(c);
    h.stop().await;
}
