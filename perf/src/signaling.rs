//! Signaling for one synthetic participant over the gateway's WebSocket
//! (`docs/signaling.md`), and the SDP it writes. Runs in a small tokio
//! runtime: this is the control plane, not the hot path.

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::Sender;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::media::{Command, ExtIds, NewParticipant, RemoteDescription, Which};

/// WebSocket connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for `joined` and for the publish answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// `AA:BB:…` of a SHA-256 digest of `der`.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut s = String::with_capacity(96);
    for (i, b) in d.as_ref().iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The first UDP host candidate of an SDP (`a=candidate:… udp PRIO IP PORT typ host`).
pub fn parse_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let rest = l.trim_end().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        if f.len() < 6 || !f[2].eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: IpAddr = f[4].parse().ok()?;
        let port: u16 = f[5].parse().ok()?;
        (port != 0).then_some(SocketAddr::new(ip, port))
    })
}

/// What we need from one of mediad's descriptions.
pub fn remote_description(sdp: &str) -> Result<RemoteDescription, String> {
    let d = salon_sdp::parse(sdp).map_err(|e| format!("mediad's SDP: {e}"))?;
    let addr = parse_candidate(sdp).ok_or("mediad's SDP has no UDP candidate")?;
    let active = || d.media.iter().filter(|m| m.port != 0);
    let id = |uri: &str| active().find_map(|m| m.extmap_id(uri));
    let ext = ExtIds {
        audio_level: active()
            .find(|m| m.kind == Some(salon_sdp::MediaKind::Audio))
            .and_then(|m| m.extmap_id(salon_sdp::uri::AUDIO_LEVEL)),
        mid: id(salon_sdp::uri::SDES_MID),
        rid: id(salon_sdp::uri::RTP_STREAM_ID),
        abs_send_time: id(salon_sdp::uri::ABS_SEND_TIME),
        transport_cc: id(salon_sdp::uri::TRANSPORT_CC),
    };
    let setup = active().next().map(|m| m.setup);
    Ok(RemoteDescription {
        ufrag: d.ice_ufrag.clone(),
        pwd: d.ice_pwd.as_str().to_owned(),
        addr,
        ext,
        dtls_client: setup != Some(salon_sdp::Setup::Active),
        send_checks: true,
    })
}

/// Our local ICE/DTLS identity for one transport.
#[derive(Debug, Clone)]
pub struct Local {
    /// ICE ufrag.
    pub ufrag: String,
    /// ICE password.
    pub pwd: String,
    /// `AA:BB:…` SHA-256 fingerprint.
    pub fingerprint: String,
}

/// How the publish offer describes video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoOffer {
    /// No video m-line.
    None,
    /// One VP8 stream with this SSRC.
    Single(u32),
    /// Three simulcast layers by rid (`l`, `m`, `h`, low to high), SSRCs
    /// left to the rid header extension (as browsers do).
    Simulcast,
}

/// Header extensions we offer (ids shared by both m-lines, as browsers do).
const OFFER_EXTMAPS_AUDIO: &str = "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\na=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n";
const OFFER_EXTMAPS_VIDEO: &str = "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\na=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n";

/// A publish offer: `sendonly` Opus and, unless `video` is
/// [`VideoOffer::None`], `sendonly` VP8, BUNDLEd; with the audio level,
/// abs-send-time, transport-wide-cc, mid (and rid) extensions. `candidate`
/// adds our host candidate (a full ICE agent such as Janus wants it).
pub fn publish_offer(
    l: &Local,
    audio_ssrc: u32,
    video: VideoOffer,
    candidate: Option<SocketAddr>,
) -> String {
    let mut s = String::with_capacity(2048);
    let video_ssrc = match video {
        VideoOffer::None => None,
        VideoOffer::Single(v) => Some(Some(v)),
        VideoOffer::Simulcast => Some(None),
    };
    let bundle = if video_ssrc.is_some() { "0 1" } else { "0" };
    s.push_str(&format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {bundle}\r\na=msid-semantic: WMS perf\r\n"
    ));
    let cand = candidate.map_or(String::new(), |c| {
        format!(
            "a=candidate:1 1 udp 2130706431 {} {} typ host\r\na=end-of-candidates\r\n",
            c.ip(),
            c.port()
        )
    });
    let common = |mid: &str| {
        format!(
            "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\n{trickle}a=fingerprint:sha-256 {f}\r\na=setup:actpass\r\na=mid:{mid}\r\n{cand}",
            u = l.ufrag,
            p = l.pwd,
            f = l.fingerprint,
            trickle = if candidate.is_some() {
                ""
            } else {
                "a=ice-options:trickle\r\n"
            },
        )
    };
    s.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
    s.push_str(&common("0"));
    s.push_str(OFFER_EXTMAPS_AUDIO);
    s.push_str(&format!(
        "a=sendonly\r\na=msid:perf audio\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:{audio_ssrc} cname:perf\r\n"
    ));
    if let Some(v) = video_ssrc {
        s.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n");
        s.push_str(&common("1"));
        s.push_str(OFFER_EXTMAPS_VIDEO);
        s.push_str(
            "a=sendonly\r\na=msid:perf video\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n",
        );
        match v {
            Some(v) => s.push_str(&format!("a=ssrc:{v} cname:perf\r\n")),
            None => s.push_str(
                "a=rid:l send\r\na=rid:m send\r\na=rid:h send\r\na=simulcast:send l;m;h\r\n",
            ),
        }
    }
    s
}

/// Our answer to mediad's subscribe offer, line for line with the same
/// mids: `recvonly` for every line mediad sends on, `inactive` for a line it
/// made inactive (a track that went: it stays in the BUNDLE group and may
/// carry the next track of its kind, same mid, new SSRC and msid), port 0
/// for a line the offer disabled (port 0).
pub fn subscribe_answer(l: &Local, offer: &str) -> Result<String, String> {
    let o = salon_sdp::parse(offer).map_err(|e| format!("subscribe offer: {e}"))?;
    let mids: Vec<&str> = o
        .media
        .iter()
        .filter(|m| m.port != 0)
        .map(|m| m.mid.as_str())
        .collect();
    let mut s = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
        mids.join(" ")
    );
    for m in &o.media {
        let (kind, pt, codec) = match m.kind {
            Some(salon_sdp::MediaKind::Audio) => ("audio", 111, "opus/48000/2"),
            _ => ("video", 96, "VP8/90000"),
        };
        let dir = if m.port == 0 || !sends(m.direction) {
            "inactive"
        } else {
            "recvonly"
        };
        s.push_str(&format!(
            "m={kind} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=fingerprint:sha-256 {f}\r\na=setup:active\r\na=mid:{mid}\r\na={dir}\r\na=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\n",
            port = if m.port != 0 { 9 } else { 0 },
            u = l.ufrag,
            p = l.pwd,
            f = l.fingerprint,
            mid = m.mid,
        ));
    }
    Ok(s)
}

fn sends(d: salon_sdp::Direction) -> bool {
    matches!(
        d,
        salon_sdp::Direction::SendOnly | salon_sdp::Direction::SendRecv
    )
}

/// One m-line of a subscribe offer, as the churn checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedLine {
    /// `a=mid`.
    pub mid: String,
    /// Video (else audio).
    pub video: bool,
    /// mediad sends on it (port not 0, `sendonly`/`sendrecv`).
    pub active: bool,
    /// The publisher: the `msid` stream id, parsed as the gateway's
    /// decimal participant id (`None` when absent or not a number).
    pub publisher: Option<u64>,
    /// The line's SSRCs (media first).
    pub ssrcs: Vec<u32>,
}

/// The m-lines of a subscribe offer (ids from the SDP).
pub fn offered_lines(offer: &str) -> Result<Vec<OfferedLine>, String> {
    let o = salon_sdp::parse(offer).map_err(|e| format!("subscribe offer: {e}"))?;
    Ok(o.media
        .iter()
        .map(|m| OfferedLine {
            mid: m.mid.clone(),
            video: m.kind == Some(salon_sdp::MediaKind::Video),
            active: m.port != 0 && sends(m.direction),
            publisher: m.msid.as_ref().and_then(|x| x.stream_id.parse().ok()),
            ssrcs: m.ssrcs.clone(),
        })
        .collect())
}

/// How a churn participant ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// `leave`, then a clean close.
    Leave,
    /// `leave` and close; the controller starts a new participant (a new
    /// identity) after a pause. (A reload that keeps its place, as the
    /// browser client does with its token in `sessionStorage`, is a
    /// [`ResumePlan`] with `reload`.)
    Reload,
    /// The TCP socket is closed abruptly: no `leave`, no close frame.
    Drop,
}

/// A resume during a churn participant's stay: its signaling socket is
/// dropped abruptly, then a new one takes its place back with the resume
/// token of its last `joined` / `resumed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResumePlan {
    /// After `joined`.
    pub after: Duration,
    /// Socket down this long.
    pub pause: Duration,
    /// A page reload: its transports go too, and it resumes with
    /// `media: "new"` (new transports, a new publish offer). Otherwise
    /// `media: "kept"`: the media never stopped.
    pub reload: bool,
}

/// Everything a participant task needs.
#[derive(Debug)]
pub struct ParticipantPlan {
    /// Index in join order.
    pub index: usize,
    /// Room name on the gateway.
    pub room_name: String,
    /// Room index.
    pub room: u32,
    /// Publishes video.
    pub video: bool,
    /// Video as three simulcast layers.
    pub simulcast: bool,
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// Local IP to bind UDP sockets on.
    pub bind_ip: IpAddr,
    /// Report every subscribe offer ([`SignalEvent::SubscribeOffer`]) and
    /// the end ([`SignalEvent::Ended`]): churn runs.
    pub track_offers: bool,
    /// Drop the socket and resume, once (churn runs).
    pub resume: Option<ResumePlan>,
}

/// What a participant task reports to the controller.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalEvent {
    /// `joined` arrived.
    Joined {
        /// Index.
        index: usize,
        /// Gateway id.
        id: u64,
    },
    /// The gateway sent an `error`.
    GatewayError {
        /// Index.
        index: usize,
        /// `code: message`.
        error: String,
    },
    /// A subscribe offer arrived and was answered (only with
    /// [`ParticipantPlan::track_offers`]).
    SubscribeOffer {
        /// Index.
        index: usize,
        /// Its m-lines.
        lines: Vec<OfferedLine>,
        /// Its size in bytes.
        bytes: usize,
        /// From its arrival to our answer sent.
        wait: Duration,
    },
    /// The participant dropped its socket, to resume after a pause
    /// ([`ParticipantPlan::resume`]); a reload's transports are gone.
    Resuming {
        /// Index.
        index: usize,
        /// With new transports (a reload).
        reload: bool,
    },
    /// The participant took its place back on a new socket
    /// ([`ParticipantPlan::resume`]).
    Resumed {
        /// Index.
        index: usize,
        /// From the old socket's drop to `resumed` (the pause included).
        took: Duration,
        /// With new transports (a reload).
        reload: bool,
    },
    /// The participant ended as told (only with
    /// [`ParticipantPlan::track_offers`]); its media are removed.
    Ended {
        /// Index.
        index: usize,
        /// How.
        how: Ending,
    },
    /// The participant could not go on (connect refused, timeout, socket
    /// closed by the server…): the run must end.
    Fatal {
        /// Index.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// A pseudo-random ICE token for participant `index` (distinct per salt).
pub(crate) fn random_token(index: usize, salt: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = salt ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A fresh DTLS certificate and the ICE credentials of participant
/// `index`'s publish and subscribe transports (one certificate for both).
pub(crate) fn local_pair(
    index: usize,
    salt: u64,
) -> Result<(dimpl::certificate::DtlsCertificate, Local, Local), String> {
    let cert = dimpl::certificate::generate_self_signed_certificate()
        .map_err(|e| format!("certificate: {e}"))?;
    let fingerprint = fingerprint_sha256(&cert.certificate);
    let publish = Local {
        ufrag: random_token(index, salt, 8),
        pwd: random_token(index, salt ^ 1, 24),
        fingerprint: fingerprint.clone(),
    };
    let subscribe = Local {
        ufrag: random_token(index, salt ^ 2, 8),
        pwd: random_token(index, salt ^ 3, 24),
        fingerprint,
    };
    Ok((cert, publish, subscribe))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Result<Option<Value>, String> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(format!("signaling socket: {e}")),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map(Some)
                    .map_err(|e| format!("gateway sent bad JSON: {e}"));
            }
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(_)) => {}
        }
    }
}

async fn send_json(ws: &mut Ws, v: Value) -> Result<(), String> {
    ws.send(Message::text(v.to_string()))
        .await
        .map_err(|e| format!("signaling send: {e}"))
}

/// Run one participant: connect, join, publish, answer subscribe offers,
/// until `stop` turns true (then `leave`). Returns an error for anything
/// that should end the run.
pub async fn run_participant(
    plan: ParticipantPlan,
    worker: Sender<Command>,
    events: tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    mut stop: watch::Receiver<bool>,
    salt: u64,
) {
    let index = plan.index;
    if let Err(reason) = participant(plan, worker, &events, &mut stop, salt, None).await {
        let _ = events.send(SignalEvent::Fatal { index, reason });
    }
}

/// [`run_participant`] for churn: it also ends when `end` says how.
pub async fn run_churn_participant(
    plan: ParticipantPlan,
    worker: Sender<Command>,
    events: tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    mut stop: watch::Receiver<bool>,
    salt: u64,
    end: tokio::sync::oneshot::Receiver<Ending>,
) {
    let index = plan.index;
    if let Err(reason) = participant(plan, worker, &events, &mut stop, salt, Some(end)).await {
        let _ = events.send(SignalEvent::Fatal { index, reason });
    }
}

/// The next ending asked for; never, without a receiver (or once its
/// sender is gone).
async fn ending(end: &mut Option<tokio::sync::oneshot::Receiver<Ending>>) -> Ending {
    if let Some(r) = end.as_mut()
        && let Ok(e) = r.await
    {
        return e;
    }
    *end = None;
    std::future::pending().await
}

async fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| format!("WebSocket connect to {url} timed out"))?
        .map_err(|e| format!("WebSocket connect to {url}: {e}"))?;
    Ok(ws)
}

/// Waits for `want` (`joined` or `resumed`): the participant id and its
/// resume token (none from a gateway without resume).
async fn welcome(ws: &mut Ws, want: &str) -> Result<(u64, Option<String>), String> {
    tokio::time::timeout(REPLY_TIMEOUT, async {
        loop {
            match next_json(ws).await? {
                None => return Err(format!("gateway closed the socket before `{want}`")),
                Some(v) if v["type"] == want => {
                    let id = v["id"].as_u64().ok_or(format!("`{want}` without id"))?;
                    return Ok((id, v["resume_token"].as_str().map(str::to_owned)));
                }
                Some(v) if v["type"] == "error" => {
                    return Err(format!("`{want}` refused: {}", v["code"]));
                }
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| format!("no `{want}` within the timeout"))?
}

/// New transports for participant `index` (gateway id `id`) on the media
/// worker, and the publish offer for them: returns the subscribe side's
/// credentials, for the answers.
async fn start_media(
    plan: &ParticipantPlan,
    id: u64,
    salt: u64,
    worker: &Sender<Command>,
    ws: &mut Ws,
) -> Result<Local, String> {
    let index = plan.index;
    let (cert, publish, subscribe) = local_pair(index, salt)?;
    let bind = |ip: IpAddr| -> Result<std::net::UdpSocket, String> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("binding UDP: {e}"))?;
        s.set_nonblocking(true)
            .map_err(|e| format!("non-blocking UDP: {e}"))?;
        set_recv_buffer(&s, 2 << 20);
        Ok(s)
    };
    let audio_ssrc = 0x1000_0000u32.wrapping_add((index as u32).wrapping_mul(16));
    let video_ssrc = audio_ssrc + 2;
    let np = NewParticipant {
        index,
        id,
        room: plan.room,
        video: plan.video,
        plain: false,
        publish_pwd: publish.pwd.clone(),
        subscribe_pwd: subscribe.pwd.clone(),
        publish_socket: bind(plan.bind_ip)?,
        subscribe_socket: bind(plan.bind_ip)?,
        cert,
        publish_ufrag: publish.ufrag.clone(),
        subscribe_ufrag: subscribe.ufrag.clone(),
        audio_ssrc,
        video_ssrc,
    };
    worker
        .send(Command::Add(Box::new(np)))
        .map_err(|_| "media worker gone".to_owned())?;
    let video = match (plan.video, plan.simulcast) {
        (false, _) => VideoOffer::None,
        (true, false) => VideoOffer::Single(video_ssrc),
        (true, true) => VideoOffer::Simulcast,
    };
    let offer = publish_offer(&publish, audio_ssrc, video, None);
    send_json(ws, json!({"type": "publish-offer", "sdp": offer})).await?;
    Ok(subscribe)
}

/// What woke the participant's loop.
enum Step {
    Message(Option<Value>),
    Stop,
    End(Ending),
    Resume,
}

async fn participant(
    plan: ParticipantPlan,
    worker: Sender<Command>,
    events: &tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    stop: &mut watch::Receiver<bool>,
    salt: u64,
    mut end: Option<tokio::sync::oneshot::Receiver<Ending>>,
) -> Result<(), String> {
    let index = plan.index;
    let mut ws = connect(&plan.ws_url).await?;
    send_json(
        &mut ws,
        json!({"type": "join", "room": plan.room_name, "name": format!("perf {index}")}),
    )
    .await?;
    let (id, mut resume_token) = welcome(&mut ws, "joined").await?;
    let _ = events.send(SignalEvent::Joined { index, id });
    let mut subscribe = start_media(&plan, id, salt, &worker, &mut ws).await?;

    let mut answer_deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    let mut answered = false;
    let mut resume = plan.resume;
    let resume_at = tokio::time::Instant::now() + resume.map_or(Duration::ZERO, |r| r.after);
    loop {
        let step = tokio::select! {
            m = next_json(&mut ws) => Step::Message(m?),
            _ = stop.changed() => Step::Stop,
            how = ending(&mut end) => Step::End(how),
            _ = tokio::time::sleep_until(resume_at), if resume.is_some() => Step::Resume,
            _ = tokio::time::sleep_until(answer_deadline), if !answered => {
                return Err("no `publish-answer` within the timeout".into());
            }
        };
        let v = match step {
            Step::Stop => {
                let _ = send_json(&mut ws, json!({"type": "leave"})).await;
                let _ = ws.close(None).await;
                return Ok(());
            }
            Step::End(how) => {
                if how == Ending::Drop {
                    drop(ws);
                } else {
                    let _ = send_json(&mut ws, json!({"type": "leave"})).await;
                    let _ = ws.close(None).await;
                }
                let _ = worker.send(Command::Remove { index });
                let _ = events.send(SignalEvent::Ended { index, how });
                return Ok(());
            }
            Step::Resume => {
                let Some(r) = resume.take() else { continue };
                let token = resume_token
                    .take()
                    .ok_or("`joined` carried no resume token: the gateway cannot resume")?;
                let dropped = std::time::Instant::now();
                // Abruptly, as a dead Wi-Fi or a closed tab: no close frame.
                drop(ws);
                if r.reload {
                    let _ = worker.send(Command::Remove { index });
                }
                let _ = events.send(SignalEvent::Resuming {
                    index,
                    reload: r.reload,
                });
                tokio::time::sleep(r.pause).await;
                ws = connect(&plan.ws_url).await?;
                let media = if r.reload { "new" } else { "kept" };
                send_json(
                    &mut ws,
                    json!({"type": "resume", "token": token, "media": media}),
                )
                .await?;
                let (again, token) = welcome(&mut ws, "resumed").await?;
                if again != id {
                    return Err(format!("resumed as {again}, joined as {id}"));
                }
                resume_token = token;
                if r.reload {
                    subscribe =
                        start_media(&plan, id, salt ^ 0x5e55_1011, &worker, &mut ws).await?;
                    answered = false;
                    answer_deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
                }
                let _ = events.send(SignalEvent::Resumed {
                    index,
                    took: dropped.elapsed(),
                    reload: r.reload,
                });
                continue;
            }
            Step::Message(m) => m,
        };
        let Some(v) = v else {
            if *stop.borrow() {
                return Ok(());
            }
            return Err("the gateway closed the signaling socket".into());
        };
        match v["type"].as_str() {
            Some("publish-answer") => {
                let sdp = v["sdp"].as_str().ok_or("publish-answer without sdp")?;
                let remote = remote_description(sdp)?;
                answered = true;
                worker
                    .send(Command::Remote {
                        index,
                        which: Which::Publish,
                        remote,
                    })
                    .map_err(|_| "media worker gone".to_owned())?;
            }
            Some("subscribe-offer") => {
                let arrived = std::time::Instant::now();
                let sdp = v["sdp"].as_str().ok_or("subscribe-offer without sdp")?;
                let remote = remote_description(sdp)?;
                let answer = subscribe_answer(&subscribe, sdp)?;
                send_json(&mut ws, json!({"type": "subscribe-answer", "sdp": answer})).await?;
                if plan.track_offers {
                    let _ = events.send(SignalEvent::SubscribeOffer {
                        index,
                        lines: offered_lines(sdp)?,
                        bytes: sdp.len(),
                        wait: arrived.elapsed(),
                    });
                }
                worker
                    .send(Command::Remote {
                        index,
                        which: Which::Subscribe,
                        remote,
                    })
                    .map_err(|_| "media worker gone".to_owned())?;
            }
            Some("error") => {
                let _ = events.send(SignalEvent::GatewayError {
                    index,
                    error: format!("{}: {}", v["code"], v["message"]),
                });
            }
            _ => {}
        }
    }
}

/// Best effort: a larger receive buffer so bursts are not dropped by our
/// own socket (the kernel caps it at `net.core.rmem_max`).
pub fn set_recv_buffer(s: &std::net::UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd as _;
    let fd = s.as_raw_fd();
    // SAFETY: a valid open socket fd and a pointer to an int of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_lines() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";
        assert_eq!(
            parse_candidate(sdp),
            Some("127.0.0.1:40000".parse().unwrap())
        );
        assert_eq!(
            parse_candidate("a=candidate:1 1 tcp 1 127.0.0.1 4 typ host"),
            None
        );
        assert_eq!(parse_candidate("a=candidate:1 1 udp 1 x 4 typ host"), None);
        let mut x = 0xfeed_f00d_u64;
        let base = sdp.as_bytes().to_vec();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut m = base.clone();
            let i = (x % m.len() as u64) as usize;
            m[i] = (x >> 8) as u8;
            let s = String::from_utf8_lossy(&m);
            let _ = parse_candidate(&s);
            let _ = remote_description(&s);
        }
    }

    /// mediad's re-offer after a track went and another came: the answer
    /// keeps every mid in order, `recvonly` where mediad sends, `inactive`
    /// where the line went inactive, port 0 where the offer has port 0;
    /// the lines' publishers and SSRCs come from the msid and ssrc lines.
    #[test]
    fn subscribe_answer_mirrors_inactive_and_reused_lines() {
        let l = Local {
            ufrag: "abcd1234".into(),
            pwd: "0123456789abcdefghijklmn".into(),
            fingerprint: fingerprint_sha256(b"x"),
        };
        let fp = fingerprint_sha256(b"y");
        let line = |kind: &str, port: u16, mid: &str, dir: &str, extra: &str| {
            let (pt, codec) = if kind == "audio" {
                (111, "opus/48000/2")
            } else {
                (96, "VP8/90000")
            };
            format!(
                "m={kind} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 127.0.0.1\r\na=ice-ufrag:medi\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=fingerprint:sha-256 {fp}\r\na=setup:passive\r\na=mid:{mid}\r\na={dir}\r\na=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\n{extra}"
            )
        };
        let offer = format!(
            "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=ice-lite\r\n{}{}{}",
            line(
                "audio",
                9,
                "0",
                "sendonly",
                "a=msid:7 7-0\r\na=ssrc:1111 cname:x\r\na=candidate:1 1 udp 1 127.0.0.1 4000 typ host\r\n"
            ),
            line("video", 9, "1", "inactive", ""),
            line(
                "audio",
                0,
                "2",
                "sendonly",
                "a=msid:8 8-0\r\na=ssrc:2222 cname:y\r\n"
            ),
        );
        let answer = subscribe_answer(&l, &offer).unwrap();
        let a = salon_sdp::parse(&answer).unwrap();
        let got: Vec<(&str, u16, &str)> = a
            .media
            .iter()
            .map(|m| (m.mid.as_str(), m.port, m.direction.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("0", 9, "recvonly"),
                ("1", 9, "inactive"),
                ("2", 0, "inactive")
            ]
        );
        assert!(answer.contains("a=group:BUNDLE 0 1\r\n"), "{answer}");
        let lines = offered_lines(&offer).unwrap();
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.active, l.publisher, l.ssrcs.clone()))
                .collect::<Vec<_>>(),
            [
                (true, Some(7), vec![1111]),
                (false, None, vec![]),
                (false, Some(8), vec![2222])
            ]
        );
    }

    #[test]
    fn offers_parse_with_salon_sdp() {
        let l = Local {
            ufrag: "abcd1234".into(),
            pwd: "0123456789abcdefghijklmn".into(),
            fingerprint: fingerprint_sha256(b"x"),
        };
        let o = publish_offer(&l, 1, VideoOffer::Single(3), None);
        let d = salon_sdp::parse(&o).unwrap();
        assert_eq!(d.media.len(), 2);
        let o = publish_offer(
            &l,
            1,
            VideoOffer::Simulcast,
            Some("127.0.0.2:5000".parse().unwrap()),
        );
        let d = salon_sdp::parse(&o).unwrap();
        assert_eq!(d.media[1].simulcast_send, ["l", "m", "h"]);
        assert_eq!(parse_candidate(&o), Some("127.0.0.2:5000".parse().unwrap()));
        let o = publish_offer(&l, 1, VideoOffer::None, None);
        assert_eq!(salon_sdp::parse(&o).unwrap().media.len(), 1);
    }
}
