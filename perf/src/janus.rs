//! Janus (VideoRoom plugin) as a comparison target: start it with a
//! configuration written to a temporary directory, in a network namespace
//! (Janus never gathers candidates on loopback interfaces, so the namespace
//! holds `lo` plus a veth with 127.0.0.2/32), and drive it over its HTTP
//! API: create session → attach `janus.plugin.videoroom` → `create` the
//! room (ignoring "already exists") → `joinandconfigure` as publisher with
//! our offer (`rid_order: lmh` for simulcast) → subscribe with
//! `streams: [{feed}]` to every publisher announced, `subscribe` again
//! when more appear, and `start` with our answer each time.
//!
//! Janus is a full ICE agent: on the publish transport we are controlling
//! (checks with USE-CANDIDATE) and answer its checks; on the subscribe
//! transport Janus offered, so we are controlled and only answer. The DTLS
//! role follows the remote `a=setup`.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::mpsc::Sender;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::media::{Command, ExtIds, NewParticipant, RemoteDescription, Which};
use crate::signaling::{
    Local, ParticipantPlan, SignalEvent, VideoOffer, local_pair, parse_candidate, publish_offer,
    set_recv_buffer,
};
use crate::sut::Spawned;

/// The network namespace the harness creates for Janus runs.
pub const NETNS: &str = "salon-perf";
/// The address Janus and the participants use inside it.
pub const JANUS_IP: [u8; 4] = [127, 0, 0, 2];
const ENV_IN_NETNS: &str = "SALON_PERF_IN_NETNS";
/// Time allowed for one HTTP request to Janus.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the publisher's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// True when this process was re-executed inside [`NETNS`].
pub fn in_namespace() -> bool {
    std::env::var_os(ENV_IN_NETNS).is_some()
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Process::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("File exists") || err.contains("already") {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), err.trim()))
    }
}

/// Create (idempotently) [`NETNS`] with `lo` up and a veth pair whose
/// first end holds 127.0.0.2/32.
pub fn setup_namespace() -> Result<(), String> {
    ip(&["netns", "add", NETNS])?;
    ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
    ip(&[
        "-n", NETNS, "link", "add", "spv0", "type", "veth", "peer", "name", "spv1",
    ])?;
    ip(&["-n", NETNS, "addr", "add", "127.0.0.2/32", "dev", "spv0"])?;
    ip(&["-n", NETNS, "link", "set", "spv0", "up"])?;
    ip(&["-n", NETNS, "link", "set", "spv1", "up"])?;
    Ok(())
}

/// Run this very command again inside [`NETNS`]; returns its exit code.
pub fn reexec_in_namespace() -> Result<u8, String> {
    setup_namespace()?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Process::new("ip")
        .args(["netns", "exec", NETNS])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_IN_NETNS, "1")
        .status()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    Ok(status.code().map_or(1, |c| c.clamp(0, 255) as u8))
}

fn free_tcp_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("port: {e}"))
}

/// The configuration files Janus needs, written into `dir`.
pub fn write_config(dir: &Path, http_port: u16) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let main = format!(
        r#"general: {{
    configs_folder = "{dir}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    session_timeout = 120
    server_name = "salon-perf"
}}
certificates: {{
}}
media: {{
    rtp_port_range = "30000-40000"
}}
nat: {{
    ice_lite = false
    ice_tcp = false
    full_trickle = false
    ignore_mdns = true
    ice_enforce_list = "spv0"
}}
plugins: {{
    disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}}
transports: {{
    disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
events: {{
    broadcast = false
    disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}}
"#,
        dir = dir.display()
    );
    let http = format!(
        r#"general: {{
    base_path = "/janus"
    http = true
    port = {http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
}}
"#
    );
    let videoroom = "general: {\n}\n";
    let main_path = dir.join("janus.jcfg");
    std::fs::write(&main_path, main)?;
    std::fs::write(dir.join("janus.transport.http.jcfg"), http)?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), videoroom)?;
    Ok(main_path)
}

/// Start Janus (inside the namespace: the caller must be in it) and wait
/// until its HTTP API answers. `url` is `http://127.0.0.1:PORT/janus`.
pub async fn spawn(bin: &Path, log: Option<&Path>, timeout: Duration) -> Result<Spawned, String> {
    let port = free_tcp_port()?;
    let dir = std::env::temp_dir().join(format!("salon-perf-janus-{}-{port}", std::process::id()));
    let cfg = write_config(&dir, port).map_err(|e| format!("writing Janus config: {e}"))?;
    let out = match log {
        Some(p) => std::fs::File::create(p)
            .map(Stdio::from)
            .map_err(|e| format!("creating {}: {e}", p.display()))?,
        None => Stdio::null(),
    };
    let child = Process::new(bin)
        .arg("-C")
        .arg(&cfg)
        .arg("-F")
        .arg(&dir)
        .arg("-o")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let url = format!("http://127.0.0.1:{port}/janus");
    let mut s = crate::sut::Spawned::from_child(child, url);
    let api = Api {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(st) = s.exited() {
            return Err(format!("janus exited at start ({st})"));
        }
        if api
            .post("/janus", json!({"janus": "info", "transaction": "i"}))
            .await
            .is_ok()
        {
            return Ok(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "janus did not answer on {} within {timeout:?}",
                api.addr
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minimal HTTP/1.1 JSON client for Janus's REST API (one connection per
/// request: control plane only).
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// Janus's HTTP address.
    pub addr: SocketAddr,
}

impl Api {
    /// From `http://HOST:PORT/...`.
    pub fn from_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let hostport = rest.split('/').next()?;
        Some(Self {
            addr: hostport.parse().ok()?,
        })
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connecting to Janus: {e}"))?;
            let body = body.map(Value::to_string).unwrap_or_default();
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.addr,
                body.len()
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("HTTP send: {e}"))?;
            let mut buf = Vec::with_capacity(4096);
            s.read_to_end(&mut buf)
                .await
                .map_err(|e| format!("HTTP receive: {e}"))?;
            parse_http_json(&buf)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| format!("Janus HTTP {method} {path} timed out"))?
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.request("POST", path, Some(&body), HTTP_TIMEOUT).await
    }

    /// Long poll for events of a session (at most `maxev`).
    pub async fn poll(&self, session: u64) -> Result<Vec<Value>, String> {
        let v = self
            .request(
                "GET",
                &format!("/janus/{session}?maxev=20"),
                None,
                Duration::from_secs(40),
            )
            .await?;
        Ok(match v {
            Value::Array(a) => a,
            v => vec![v],
        })
    }
}

/// Status 200 and a JSON body, from a whole HTTP/1.1 response.
pub fn parse_http_json(raw: &[u8]) -> Result<Value, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("HTTP response without header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP status {status:?}"));
    }
    let body = &raw[split + 4..];
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body).ok_or("bad chunked body")?
    } else {
        body.to_vec()
    };
    serde_json::from_slice(&body).map_err(|e| format!("Janus sent bad JSON: {e}"))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(b.get(..nl)?).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        b = b.get(nl + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn janus_error(v: &Value) -> Option<String> {
    if v["janus"] == "error" {
        return Some(format!("{}: {}", v["error"]["code"], v["error"]["reason"]));
    }
    let d = &v["plugindata"]["data"];
    d.get("error_code")
        .map(|c| format!("{c}: {}", d["error"].as_str().unwrap_or("")))
}

/// What we need from a Janus SDP (offer or answer), read leniently.
pub fn janus_remote(sdp: &str, send_checks: bool) -> Result<RemoteDescription, String> {
    let attr = |name: &str| {
        sdp.lines()
            .find_map(|l| l.trim_end().strip_prefix(name).map(str::to_owned))
    };
    let ufrag = attr("a=ice-ufrag:").ok_or("Janus SDP without ice-ufrag")?;
    let pwd = attr("a=ice-pwd:").ok_or("Janus SDP without ice-pwd")?;
    let addr = parse_candidate(sdp).ok_or("Janus SDP without a UDP candidate")?;
    let setup = attr("a=setup:").unwrap_or_default();
    let mut ext = ExtIds::default();
    for l in sdp.lines() {
        let Some(rest) = l.trim_end().strip_prefix("a=extmap:") else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (Some(id), Some(uri)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(id) = id.split('/').next().unwrap_or("").parse::<u8>() else {
            continue;
        };
        let slot = match uri {
            salon_sdp::uri::AUDIO_LEVEL => &mut ext.audio_level,
            salon_sdp::uri::SDES_MID => &mut ext.mid,
            salon_sdp::uri::RTP_STREAM_ID => &mut ext.rid,
            salon_sdp::uri::ABS_SEND_TIME => &mut ext.abs_send_time,
            salon_sdp::uri::TRANSPORT_CC => &mut ext.transport_cc,
            _ => continue,
        };
        slot.get_or_insert(id);
    }
    Ok(RemoteDescription {
        ufrag,
        pwd,
        addr,
        ext,
        dtls_client: setup != "active",
        send_checks,
    })
}

/// Our answer to a Janus subscriber offer: `recvonly` Opus / VP8 on every
/// audio and video m-line with the offer's payload types, data channels
/// and stopped m-lines rejected, our host candidate, `a=setup:active`.
pub fn janus_answer(l: &Local, offer: &str, candidate: SocketAddr) -> Result<String, String> {
    struct M {
        kind: String,
        port: u16,
        mid: String,
        pt: Option<(u8, String)>,
    }
    let mut ms: Vec<M> = Vec::new();
    for line in offer.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut f = rest.split_whitespace();
            let kind = f.next().unwrap_or("").to_owned();
            let port = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ms.push(M {
                kind,
                port,
                mid: String::new(),
                pt: None,
            });
        } else if let Some(m) = ms.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                mid.clone_into(&mut m.mid);
            } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
                && m.pt.is_none()
            {
                let mut f = rest.split_whitespace();
                let pt = f.next().and_then(|p| p.parse::<u8>().ok());
                let codec = f.next().unwrap_or("");
                let lc = codec.to_ascii_lowercase();
                if let Some(pt) = pt
                    && (lc.starts_with("opus/") || lc.starts_with("vp8/"))
                {
                    m.pt = Some((pt, codec.to_owned()));
                }
            }
        }
    }
    if ms.is_empty() {
        return Err("Janus offer without m-lines".into());
    }
    let accepted: Vec<&M> = ms
        .iter()
        .filter(|m| m.port != 0 && m.pt.is_some() && (m.kind == "audio" || m.kind == "video"))
        .collect();
    let mids: Vec<&str> = accepted.iter().map(|m| m.mid.as_str()).collect();
    let mut s = format!(
        "v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\na=msid-semantic: WMS *\r\n",
        mids.join(" "),
        ip = candidate.ip()
    );
    for m in &ms {
        let ok = m.port != 0 && m.pt.is_some() && (m.kind == "audio" || m.kind == "video");
        let (pt, codec) = m.pt.clone().unwrap_or((0, String::new()));
        let proto = if m.kind == "application" {
            "UDP/DTLS/SCTP webrtc-datachannel".to_owned()
        } else {
            format!("UDP/TLS/RTP/SAVPF {pt}")
        };
        s.push_str(&format!(
            "m={} {} {proto}\r\nc=IN IP4 {}\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:active\r\na=mid:{}\r\n",
            m.kind,
            if ok { 9 } else { 0 },
            candidate.ip(),
            l.ufrag,
            l.pwd,
            l.fingerprint,
            m.mid
        ));
        if ok {
            s.push_str(&format!(
                "a=recvonly\r\na=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
                candidate.ip(),
                candidate.port()
            ));
        } else {
            s.push_str("a=inactive\r\n");
        }
    }
    Ok(s)
}

/// Janus room number of scenario room `room` in a run (`nonce` keeps runs
/// apart).
pub fn room_number(nonce: u32, room: u32) -> u64 {
    u64::from(nonce % 100_000) * 100_000 + u64::from(room) + 1
}

/// One participant against Janus: until `stop`, then `destroy`.
#[allow(clippy::too_many_arguments)]
pub async fn run_participant(
    plan: ParticipantPlan,
    api: Api,
    room: u64,
    room_size: u32,
    worker: Sender<Command>,
    events: tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    mut stop: watch::Receiver<bool>,
    salt: u64,
) {
    let index = plan.index;
    if let Err(reason) =
        participant(plan, api, room, room_size, worker, &events, &mut stop, salt).await
    {
        let _ = events.send(SignalEvent::Fatal { index, reason });
    }
}

fn bind(ip: IpAddr) -> Result<std::net::UdpSocket, String> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
        .map_err(|e| format!("binding UDP: {e}"))?;
    s.set_nonblocking(true)
        .map_err(|e| format!("non-blocking UDP: {e}"))?;
    set_recv_buffer(&s, 2 << 20);
    Ok(s)
}

#[allow(clippy::too_many_arguments)]
async fn participant(
    plan: ParticipantPlan,
    api: Api,
    room: u64,
    room_size: u32,
    worker: Sender<Command>,
    events: &tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    stop: &mut watch::Receiver<bool>,
    salt: u64,
) -> Result<(), String> {
    let index = plan.index;
    let tx = |n: u32| format!("p{index}-{n}");
    let ok = |v: Value| match janus_error(&v) {
        Some(e) => Err(format!("Janus: {e}")),
        None => Ok(v),
    };
    let v = ok(api
        .post("/janus", json!({"janus": "create", "transaction": tx(0)}))
        .await?)?;
    let session = v["data"]["id"]
        .as_u64()
        .ok_or("create without session id")?;
    let sp = format!("/janus/{session}");
    let attach = |n: u32| json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": tx(n)});
    let v = ok(api.post(&sp, attach(1)).await?)?;
    let pub_h = v["data"]["id"].as_u64().ok_or("attach without handle id")?;
    let hp = format!("{sp}/{pub_h}");
    let v = api
        .post(
            &hp,
            json!({"janus": "message", "transaction": tx(2), "body": {
                "request": "create", "room": room, "publishers": room_size + 1,
                "bitrate": 20_000_000u64, "videocodec": "vp8", "audiocodec": "opus",
                "fir_freq": 0, "notify_joining": false,
            }}),
        )
        .await?;
    if let Some(e) = janus_error(&v)
        && !e.starts_with("427")
    {
        return Err(format!("creating the room: {e}"));
    }

    let (cert, publish, subscribe) = local_pair(index, salt)?;
    let pub_sock = bind(plan.bind_ip)?;
    let sub_sock = bind(plan.bind_ip)?;
    let pub_addr = pub_sock.local_addr().map_err(|e| e.to_string())?;
    let sub_addr = sub_sock.local_addr().map_err(|e| e.to_string())?;
    let audio_ssrc = 0x1000_0000u32.wrapping_add((index as u32).wrapping_mul(16));
    let video_ssrc = audio_ssrc + 2;
    let video = match (plan.video, plan.simulcast) {
        (false, _) => VideoOffer::None,
        (true, false) => VideoOffer::Single(video_ssrc),
        (true, true) => VideoOffer::Simulcast,
    };
    let offer = publish_offer(&publish, audio_ssrc, video, Some(pub_addr));
    worker
        .send(Command::Add(Box::new(NewParticipant {
            index,
            id: 0,
            room: plan.room,
            video: plan.video,
            plain: false,
            publish_socket: pub_sock,
            subscribe_socket: sub_sock,
            cert,
            publish_ufrag: publish.ufrag.clone(),
            subscribe_ufrag: subscribe.ufrag.clone(),
            publish_pwd: publish.pwd.clone(),
            subscribe_pwd: subscribe.pwd.clone(),
            audio_ssrc,
            video_ssrc,
        })))
        .map_err(|_| "media worker gone".to_owned())?;

    // Events arrive by long poll, in their own task.
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Result<Value, String>>();
    let poller = tokio::spawn(async move {
        loop {
            match api.poll(session).await {
                Ok(list) => {
                    for v in list {
                        if ev_tx.send(Ok(v)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = ev_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let result = async {
        let v = api
            .post(
                &hp,
                json!({"janus": "message", "transaction": tx(3),
                    "body": {"request": "joinandconfigure", "room": room, "ptype": "publisher",
                             "display": format!("perf {index}"), "audio": true, "video": true},
                    "jsep": {"type": "offer", "sdp": offer, "rid_order": "lmh"}}),
            )
            .await?;
        ok(v)?;
        let answer_deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        let mut answered = false;
        let mut sub_h: Option<u64> = None;
        let mut known: Vec<u64> = Vec::new();
        let mut subscribed: Vec<u64> = Vec::new();
        let mut pending = false;
        let mut sub_remote_sent = false;
        let mut n = 10u32;
        loop {
            // Subscribe to newly announced feeds when no negotiation is under way.
            if !pending && known.len() > subscribed.len() {
                let new: Vec<u64> = known
                    .iter()
                    .copied()
                    .filter(|f| !subscribed.contains(f))
                    .collect();
                let streams: Vec<Value> = new.iter().map(|f| json!({"feed": f})).collect();
                n += 1;
                let body = match sub_h {
                    None => {
                        let v = ok(api.post(&sp, attach(n)).await?)?;
                        let h = v["data"]["id"].as_u64().ok_or("attach without handle id")?;
                        sub_h = Some(h);
                        json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams})
                    }
                    Some(_) => json!({"request": "subscribe", "streams": streams}),
                };
                n += 1;
                let h = sub_h.unwrap_or(0);
                ok(api
                    .post(
                        &format!("{sp}/{h}"),
                        json!({"janus": "message", "transaction": tx(n), "body": body}),
                    )
                    .await?)?;
                subscribed.extend(new);
                pending = true;
            }
            let ev = tokio::select! {
                e = ev_rx.recv() => match e {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => return Err(format!("Janus events: {e}")),
                    None => return Err("Janus event poller ended".into()),
                },
                _ = stop.changed() => return Ok(()),
                _ = tokio::time::sleep_until(answer_deadline), if !answered => {
                    return Err("no answer from Janus within the timeout".into());
                }
            };
            if ev["janus"] == "hangup" || ev["janus"] == "detached" {
                return Err(format!("Janus hung up: {}", ev["reason"]));
            }
            let sender = ev["sender"].as_u64();
            let data = &ev["plugindata"]["data"];
            if let Some(e) = janus_error(&ev) {
                let _ = events.send(SignalEvent::GatewayError {
                    index,
                    error: e.clone(),
                });
                if !answered {
                    return Err(format!("Janus refused the publisher: {e}"));
                }
                continue;
            }
            for list in [&data["publishers"]] {
                for p in list.as_array().into_iter().flatten() {
                    if let Some(id) = p["id"].as_u64()
                        && !known.contains(&id)
                    {
                        known.push(id);
                    }
                }
            }
            let jsep = &ev["jsep"];
            if sender == Some(pub_h) {
                if data["videoroom"] == "joined" {
                    let id = data["id"].as_u64().unwrap_or(0);
                    let _ = events.send(SignalEvent::Joined { index, id });
                }
                if let Some(sdp) = jsep["sdp"].as_str()
                    && jsep["type"] == "answer"
                {
                    let remote = janus_remote(sdp, true)?;
                    answered = true;
                    worker
                        .send(Command::Remote {
                            index,
                            which: Which::Publish,
                            remote,
                        })
                        .map_err(|_| "media worker gone".to_owned())?;
                }
            } else if sender.is_some() && sender == sub_h {
                if let Some(sdp) = jsep["sdp"].as_str()
                    && jsep["type"] == "offer"
                {
                    let answer = janus_answer(&subscribe, sdp, sub_addr)?;
                    n += 1;
                    let h = sub_h.unwrap_or(0);
                    ok(api
                        .post(
                            &format!("{sp}/{h}"),
                            json!({"janus": "message", "transaction": tx(n),
                                "body": {"request": "start"},
                                "jsep": {"type": "answer", "sdp": answer}}),
                        )
                        .await?)?;
                    if !sub_remote_sent {
                        sub_remote_sent = true;
                        let remote = janus_remote(sdp, false)?;
                        worker
                            .send(Command::Remote {
                                index,
                                which: Which::Subscribe,
                                remote,
                            })
                            .map_err(|_| "media worker gone".to_owned())?;
                    }
                    pending = false;
                } else if data.get("error_code").is_some() {
                    pending = false;
                }
            }
        }
    }
    .await;
    poller.abort();
    let _ = api
        .post(&sp, json!({"janus": "destroy", "transaction": tx(99)}))
        .await;
    result
}

/// Print a line on stderr (progress of the namespace set-up).
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=VideoRoom 1\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=ice-options:trickle\r\na=fingerprint:sha-256 AA:BB\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS *\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.2\r\na=sendonly\r\na=mid:0\r\na=rtcp-mux\r\na=ice-ufrag:Jx1y\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=ice-options:trickle\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=candidate:1 1 udp 2015363327 127.0.0.2 30002 typ host\r\na=end-of-candidates\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 127.0.0.2\r\na=sendonly\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn janus_offer_to_answer_and_remote() {
        let l = Local {
            ufrag: "abcd".into(),
            pwd: "0123456789abcdefghijklmn".into(),
            fingerprint: "AA:BB".into(),
        };
        let a = janus_answer(&l, OFFER, "127.0.0.2:5000".parse().unwrap()).unwrap();
        assert!(a.contains("a=group:BUNDLE 0 1\r\n"));
        assert!(a.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
        assert!(a.contains("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
        assert!(a.contains("m=application 0 "));
        assert!(a.contains("a=setup:active"));
        let r = janus_remote(OFFER, false).unwrap();
        assert_eq!(r.ufrag, "Jx1y");
        assert_eq!(r.addr, "127.0.0.2:30002".parse().unwrap());
        assert!(r.dtls_client);
        assert_eq!(r.ext.mid, Some(1));
        // Mutation loop: never panics.
        let mut x = 0x1357_9bdf_2468_ace0u64;
        let base = OFFER.as_bytes().to_vec();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut m = base.clone();
            let i = (x % m.len() as u64) as usize;
            m[i] = (x >> 8) as u8;
            let len = ((x >> 24) % (m.len() as u64 + 1)) as usize;
            let s = String::from_utf8_lossy(&m[..len]);
            let _ = janus_answer(&l, &s, "127.0.0.2:5000".parse().unwrap());
            let _ = janus_remote(&s, true);
            let _ = parse_http_json(&m[..len]);
        }
    }

    #[test]
    fn http_responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"janus\":\"ok\"}";
        assert_eq!(parse_http_json(r).unwrap()["janus"], "ok");
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        assert_eq!(parse_http_json(c).unwrap()["a"], 1);
        assert!(parse_http_json(b"HTTP/1.1 500 No\r\n\r\n{}").is_err());
    }
}
