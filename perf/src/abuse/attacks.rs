//! The attacks, one function each. Every one is bounded in count and time,
//! comes from its own loopback address (`127.0.1.N`, or a range for the
//! floods that must not hit the per-IP cap), and returns what the attacker
//! got and what failed; the window around it (`Window` in the parent
//! module) checks the bystanders and the process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::peer::{self, PeerSpec, SharedLog};
use super::ws::{self, Recv, Seen, Ws};
use super::{AuthMode, BYSTANDER_ROOM, Env, Outcome, auth, limits, lo};
use crate::media::{Command, Which};
use crate::metrics::Kind;

/// The attacks of the issue, in the order the suite runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// 4 × the per-IP cap of WebSockets from one address.
    ConnectionFlood,
    /// Sockets that open and never `join`.
    NeverJoin,
    /// One joined socket sending as fast as it can.
    MessageFlood,
    /// Frames far over the pre-join limit, before `join`.
    OversizedFrames,
    /// A publish offer of 512 m-lines (~170 kB), several times.
    OfferMlines,
    /// `video-constraints` of 256 entries each, as fast as possible.
    ConstraintsStorm,
    /// A subscriber NACKing every cached packet 50 times a second.
    NackStorm,
    /// STUN checks with USE-CANDIDATE from new addresses, for the
    /// attacker's own transport and naming a bystander's.
    Relatch,
    /// Pad sync requests from a pad socket that never reads.
    PadSyncStorm,
    /// `media-state` as fast as possible in the bystanders' room.
    MediaStateStorm,
    /// 2 × the lobby cap of guests in one lobby, each knocking.
    LobbyKnockFlood,
    /// A banned participant comes back on a new socket.
    BanEvasion,
    /// A token for `abuseroom` used for `AbuseRoom`.
    CaseVariantToken,
    /// A token claiming issuer A, signed with issuer B's key.
    CrossIssuerToken,
}

impl Attack {
    /// All of them.
    pub const ALL: [Attack; 14] = [
        Attack::ConnectionFlood,
        Attack::NeverJoin,
        Attack::MessageFlood,
        Attack::OversizedFrames,
        Attack::OfferMlines,
        Attack::ConstraintsStorm,
        Attack::NackStorm,
        Attack::Relatch,
        Attack::PadSyncStorm,
        Attack::MediaStateStorm,
        Attack::LobbyKnockFlood,
        Attack::BanEvasion,
        Attack::CaseVariantToken,
        Attack::CrossIssuerToken,
    ];

    /// Its name in the report (and for `ABUSE_ONLY`).
    pub fn name(self) -> &'static str {
        match self {
            Attack::ConnectionFlood => "connection-flood",
            Attack::NeverJoin => "never-join",
            Attack::MessageFlood => "message-flood",
            Attack::OversizedFrames => "oversized-frames",
            Attack::OfferMlines => "offer-512-mlines",
            Attack::ConstraintsStorm => "video-constraints-storm",
            Attack::NackStorm => "nack-storm",
            Attack::Relatch => "relatch",
            Attack::PadSyncStorm => "pad-sync-storm",
            Attack::MediaStateStorm => "media-state-storm",
            Attack::LobbyKnockFlood => "lobby-knock-flood",
            Attack::BanEvasion => "ban-evasion",
            Attack::CaseVariantToken => "case-variant-token",
            Attack::CrossIssuerToken => "cross-issuer-token",
        }
    }

    /// The auth configuration its `salon` needs.
    pub fn auth_mode(self) -> AuthMode {
        match self {
            Attack::CrossIssuerToken => AuthMode::BoundKeys,
            _ => AuthMode::OneIssuer,
        }
    }

    /// Run it against `env`.
    pub async fn run(self, env: &mut Env) -> Result<Outcome, String> {
        match self {
            Attack::ConnectionFlood => connection_flood(env).await,
            Attack::NeverJoin => never_join(env).await,
            Attack::MessageFlood => message_flood(env).await,
            Attack::OversizedFrames => oversized_frames(env).await,
            Attack::OfferMlines => offer_mlines(env).await,
            Attack::ConstraintsStorm => constraints_storm(env).await,
            Attack::NackStorm => nack_storm(env).await,
            Attack::Relatch => relatch(env).await,
            Attack::PadSyncStorm => pad_sync_storm(env).await,
            Attack::MediaStateStorm => media_state_storm(env).await,
            Attack::LobbyKnockFlood => lobby_knock_flood(env).await,
            Attack::BanEvasion => ban_evasion(env).await,
            Attack::CaseVariantToken => case_variant_token(env).await,
            Attack::CrossIssuerToken => cross_issuer_token(env).await,
        }
    }
}

/// The most messages a rate limit of [`limits::MESSAGES_PER_S`] with a
/// burst of [`limits::MESSAGE_BURST`] lets through in `secs`, doubled (the
/// checks must not depend on the exact values).
fn rate_bound(secs: f64) -> u64 {
    2 * (limits::MESSAGE_BURST + (limits::MESSAGES_PER_S as f64 * secs).ceil() as u64)
}

/// What a flood did.
struct Flood {
    sent: u64,
    secs: f64,
    seen: Seen,
    /// The server closed the socket (or a send failed for it).
    closed: bool,
}

/// Send `make(i)` for i = 0.. as fast as the socket takes them, at most
/// `max` or for `dur`, reading everything the server says meanwhile (a
/// flooder that reads is not a slow consumer: only a rate limit can stop
/// it), then read 1 s more.
async fn flood(ws: Ws, max: u64, dur: Duration, make: impl Fn(u64) -> Message) -> Flood {
    let (mut sink, mut stream) = ws.split();
    let t0 = Instant::now();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let writer = async {
        let mut sent = 0u64;
        let mut failed = false;
        while sent < max && t0.elapsed() < dur {
            match tokio::time::timeout(Duration::from_secs(1), sink.send(make(sent))).await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(_)) => {
                    failed = true;
                    break;
                }
                // The server stopped reading us: that is a defence too, but
                // not a closed socket; stop here.
                Err(_) => break,
            }
            if sent.is_multiple_of(4) {
                tokio::task::yield_now().await;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        (sent, secs, failed, sink)
    };
    let reader = async {
        let mut seen = Seen::default();
        let mut ended = false;
        let mut tail: Option<tokio::time::Instant> = None;
        loop {
            let wait = match tail {
                Some(t) => t.saturating_duration_since(tokio::time::Instant::now()),
                None => Duration::from_millis(200),
            };
            if tail.is_some() && wait.is_zero() {
                break;
            }
            let r = tokio::select! {
                r = ws::recv(&mut stream, wait) => r,
                _ = stop_rx.changed(), if tail.is_none() => {
                    tail = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    continue;
                }
            };
            seen.record(&r);
            match r {
                Recv::Closed(_) | Recv::Error(_) => {
                    ended = true;
                    break;
                }
                Recv::Timeout if tail.is_none() && *stop_rx.borrow() => {
                    tail = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                _ => {}
            }
        }
        (seen, ended)
    };
    let ((sent, secs, failed, mut sink), (seen, ended)) = tokio::join!(writer, reader);
    if !ended && !failed {
        let _ = sink
            .send(Message::text(json!({"type": "leave"}).to_string()))
            .await;
        let _ = sink.close().await;
    }
    Flood {
        sent,
        secs,
        seen,
        closed: ended || failed,
    }
}

/// `rate-limited` or a close: what a rate-limited flooder must get.
fn stopped(f: &Flood) -> bool {
    f.seen.error("rate-limited") > 0 || f.closed
}

fn flood_summary(f: &Flood) -> String {
    format!(
        "{}; {} sent in {:.2} s{}",
        f.seen,
        f.sent,
        f.secs,
        if f.closed && f.seen.closes() == 0 {
            ", then a send failed"
        } else {
            ""
        }
    )
}

async fn joined_socket(
    env: &Env,
    from: std::net::IpAddr,
    room: &str,
    name: &str,
) -> Result<(Ws, Value), String> {
    let mut s = ws::connect(&env.ws_url, from)
        .await
        .map_err(|e| format!("{name}: connect: {e}"))?;
    let j = ws::join(&mut s, room, name, None).await?;
    if j["type"] != "joined" {
        return Err(format!("{name}: join refused: {j}"));
    }
    Ok((s, j))
}

enum Held {
    Refused(String),
    TimedOut,
    Failed(String),
    ClosedSoon,
    Open(Box<Ws>),
}

/// Connection flood: 4 × the per-IP cap from one address, held open; some
/// must be refused (HTTP status, reset, closed at once, or left without
/// an upgrade for 5 s), and a fresh participant from another address must
/// still join.
async fn connection_flood(env: &mut Env) -> Result<Outcome, String> {
    let n = limits::CONNECTIONS_PER_IP * 4;
    let from = lo(1, 1);
    let mut set = JoinSet::new();
    for i in 0..n {
        let url = env.ws_url.clone();
        set.spawn(async move {
            match ws::connect(&url, from).await {
                Err(ws::ConnectError::Refused(why)) => Held::Refused(why),
                Err(ws::ConnectError::Timeout) => Held::TimedOut,
                Err(ws::ConnectError::Other(e)) => Held::Failed(e),
                Ok(mut s) => match ws::recv(&mut s, Duration::from_millis(1500)).await {
                    Recv::Closed(_) => Held::ClosedSoon,
                    _ => Held::Open(Box::new(s)),
                },
            }
        });
        if i % 25 == 24 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut refused = std::collections::BTreeMap::<String, u64>::new();
    let (mut timed_out, mut closed, mut failed) = (0, 0, Vec::new());
    let mut open = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Held::Refused(why)) => *refused.entry(why).or_default() += 1,
            Ok(Held::TimedOut) => timed_out += 1,
            Ok(Held::Failed(e)) => failed.push(e),
            Ok(Held::ClosedSoon) => closed += 1,
            Ok(Held::Open(s)) => open.push(s),
            Err(e) => failed.push(e.to_string()),
        }
    }
    // While they are held: a legitimate newcomer from elsewhere.
    let legit = joined_socket(env, lo(0, 2), "Legit-Room", "newcomer").await;
    let refusals: u64 = refused.values().sum();
    let mut o = Outcome {
        attacker: format!(
            "{n} sockets: {} open, {refusals} refused {:?}, {closed} closed at once, {timed_out} timed out",
            open.len(),
            refused,
        ),
        failures: Vec::new(),
    };
    o.check(failed.is_empty(), || format!("harness errors: {failed:?}"));
    // A server that leaves an address's upgrades unanswered refuses too.
    o.check(refusals + closed + timed_out > 0, || {
        format!(
            "all {} of {n} sockets from one address were accepted and kept (cap {} per IP)",
            open.len(),
            limits::CONNECTIONS_PER_IP
        )
    });
    match legit {
        Ok((mut s, _)) => {
            let _ = ws::send(&mut s, json!({"type": "leave"})).await;
        }
        Err(e) => o
            .failures
            .push(format!("a newcomer from 127.0.0.2 could not join: {e}")),
    }
    drop(open);
    Ok(o)
}

/// Sockets that never join: all must be closed by the server within the
/// join deadline (+3 s).
async fn never_join(env: &mut Env) -> Result<Outcome, String> {
    let n = 30;
    let within = limits::JOIN_DEADLINE + Duration::from_secs(3);
    let mut set = JoinSet::new();
    for _ in 0..n {
        let url = env.ws_url.clone();
        set.spawn(async move {
            let t0 = Instant::now();
            let mut s = match ws::connect(&url, lo(1, 2)).await {
                Ok(s) => s,
                Err(e) => return Err(e.to_string()),
            };
            let mut seen = Seen::default();
            let ended = ws::drain(&mut s, within, &mut seen).await;
            Ok((ended.then(|| t0.elapsed()), seen))
        });
    }
    let mut seen = Seen::default();
    let (mut closed, mut refused, mut latest) = (0, Vec::new(), Duration::ZERO);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((at, s))) => {
                seen.merge(&s);
                if let Some(at) = at {
                    closed += 1;
                    latest = latest.max(at);
                }
            }
            Ok(Err(e)) => refused.push(e),
            Err(e) => refused.push(e.to_string()),
        }
    }
    let mut o = Outcome {
        attacker: format!(
            "{closed}/{n} closed by the server{}, {} refused at connect; {seen}",
            if closed > 0 {
                format!(" (the last after {:.1} s)", latest.as_secs_f64())
            } else {
                String::new()
            },
            refused.len()
        ),
        failures: Vec::new(),
    };
    o.check(closed + refused.len() == n, || {
        format!(
            "{} of {n} sockets that never joined were still open after {within:?} (join deadline {:?})",
            n - closed - refused.len(),
            limits::JOIN_DEADLINE
        )
    });
    Ok(o)
}

/// One joined socket floods unknown-type messages: it must be
/// rate-limited (or closed), and the gateway must stop handling them.
async fn message_flood(env: &mut Env) -> Result<Outcome, String> {
    let (s, _) = joined_socket(env, lo(1, 3), "Flood-Room", "flooder").await?;
    let f = flood(s, 20_000, Duration::from_secs(3), |i| {
        Message::text(json!({"type": "flood-probe", "n": i}).to_string())
    })
    .await;
    let handled = f.seen.error("unknown-type");
    let bound = rate_bound(f.secs);
    let mut o = Outcome {
        attacker: flood_summary(&f),
        failures: Vec::new(),
    };
    o.check(stopped(&f), || {
        format!(
            "no `rate-limited` error and no close after {} messages in {:.1} s",
            f.sent, f.secs
        )
    });
    o.check(handled <= bound, || {
        format!(
            "the gateway handled {handled} of them (answered `unknown-type`), over {bound} (2 × burst + rate)"
        )
    });
    Ok(o)
}

/// Frames over the pre-join limit (just over, and 600 KiB) before `join`:
/// each socket gets `too-large` or is closed, and none joins.
async fn oversized_frames(env: &mut Env) -> Result<Outcome, String> {
    let sizes = [limits::PRE_JOIN_FRAME + 4096, 600 * 1024];
    let n = 8;
    let mut set = JoinSet::new();
    for i in 0..n {
        let url = env.ws_url.clone();
        let size = sizes[i % 2];
        set.spawn(async move {
            let mut s = ws::connect(&url, lo(1, 4))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let frame = json!({
                "type": "join", "room": "Oversized-Room", "name": format!("big {i}"),
                "padding": "x".repeat(size),
            })
            .to_string();
            let mut seen = Seen::default();
            for _ in 0..4 {
                if tokio::time::timeout(
                    Duration::from_secs(2),
                    s.send(Message::text(frame.clone())),
                )
                .await
                .map_or(true, |r| r.is_err())
                {
                    break;
                }
            }
            ws::drain(&mut s, Duration::from_millis(1500), &mut seen).await;
            Ok::<_, String>((size, seen))
        });
    }
    let mut seen = Seen::default();
    let mut o = Outcome::default();
    let mut joined = std::collections::BTreeMap::<usize, u64>::new();
    let mut unanswered = std::collections::BTreeMap::<usize, u64>::new();
    while let Some(r) = set.join_next().await {
        let (size, s) = r.map_err(|e| e.to_string())??;
        seen.merge(&s);
        if s.message("joined") + s.message("lobby") > 0 {
            *joined.entry(size / 1024).or_default() += 1;
        }
        if s.errors.values().sum::<u64>() == 0 && s.closes() == 0 {
            *unanswered.entry(size / 1024).or_default() += 1;
        }
    }
    for (kib, k) in &joined {
        o.failures.push(format!(
            "{k} sockets joined with a {kib} KiB pre-join frame"
        ));
    }
    for (kib, k) in &unanswered {
        o.failures.push(format!(
            "{k} sockets got no error and no close for {kib} KiB pre-join frames"
        ));
    }
    o.attacker = format!(
        "{n} sockets × 4 frames of {:?} B: {seen}; joined ×{}",
        sizes,
        seen.message("joined")
    );
    Ok(o)
}

/// A publish offer of `lines` BUNDLEd m-lines, audio and video alternating.
pub fn mline_offer(local: &crate::signaling::Local, lines: usize) -> String {
    let mids: Vec<String> = (0..lines).map(|i| i.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\na=msid-semantic: WMS x\r\n",
        mids.join(" ")
    );
    for i in 0..lines {
        let (kind, pt, codec) = if i % 2 == 0 {
            ("audio", 111, "opus/48000/2")
        } else {
            ("video", 96, "VP8/90000")
        };
        s.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=fingerprint:sha-256 {f}\r\na=setup:actpass\r\na=mid:{i}\r\na=sendonly\r\na=msid:x t{i}\r\na=rtcp-mux\r\na=rtpmap:{pt} {codec}\r\na=ssrc:{ssrc} cname:x\r\n",
            u = local.ufrag,
            p = local.pwd,
            f = local.fingerprint,
            ssrc = 0x3000_0000u32 + i as u32,
        ));
    }
    s
}

/// A 512-m-line publish offer (~170 kB, over the offer cap), five times:
/// each gets an error (or the socket closes), never an answer.
async fn offer_mlines(env: &mut Env) -> Result<Outcome, String> {
    let (mut s, _) = joined_socket(env, lo(1, 5), "Offer-Room", "offerer").await?;
    let (_, local, _) = crate::signaling::local_pair(7, 0x0ffe)?;
    let offer = mline_offer(&local, 512);
    let bytes = offer.len();
    let mut seen = Seen::default();
    let mut ended = false;
    for _ in 0..5 {
        if ws::send(&mut s, json!({"type": "publish-offer", "sdp": offer}))
            .await
            .is_err()
        {
            ended = true;
            break;
        }
        // Until its answer or error (other messages are recorded too).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let r = ws::recv(
                &mut s,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            )
            .await;
            seen.record(&r);
            match r {
                Recv::Json(v) if v["type"] == "publish-answer" || v["type"] == "error" => break,
                Recv::Json(_) | Recv::Binary(_) => {}
                Recv::Timeout => break,
                Recv::Closed(_) | Recv::Error(_) => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            break;
        }
    }
    if !ended {
        let _ = ws::send(&mut s, json!({"type": "leave"})).await;
    }
    let mut o = Outcome {
        attacker: format!(
            "offer of 512 m-lines, {} kB: {seen}; answers ×{}",
            bytes / 1000,
            seen.message("publish-answer")
        ),
        failures: Vec::new(),
    };
    o.check(seen.message("publish-answer") == 0, || {
        format!(
            "mediad answered {} of the 512-m-line offers ({} kB, cap {} KiB)",
            seen.message("publish-answer"),
            bytes / 1000,
            limits::PUBLISH_OFFER / 1024
        )
    });
    o.check(seen.errors.values().sum::<u64>() > 0 || ended, || {
        "no error and no close for a 512-m-line offer".into()
    });
    Ok(o)
}

/// A real receiver in the bystanders' room (it has a video leg for each
/// bystander's camera, so every entry is valid) sends `video-constraints`
/// of 256 entries, heights changing, 1000 a second for 3 s.
async fn constraints_storm(env: &mut Env) -> Result<Outcome, String> {
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let (index, log, stop, task) =
        media_attacker(env, BYSTANDER_ROOM, lo(1, 6), Some(out_rx)).await?;
    let ids = env.bystander_ids();
    wait_videos(env, index, &ids).await?;
    let heights = [
        Value::from(0),
        Value::from(180),
        Value::from(720),
        Value::Null,
    ];
    let t0 = Instant::now();
    let mut queued = 0u64;
    while t0.elapsed() < Duration::from_secs(3) && queued < 3_000 {
        for _ in 0..50 {
            let entries: Vec<Value> = (0..256u64)
                .map(|k| {
                    let who = ids[(k as usize) % ids.len().max(1)];
                    json!({"track_id": format!("{who}-1"), "max_height": heights[((queued + k) % 4) as usize]})
                })
                .collect();
            let _ = out_tx.send(json!({"type": "video-constraints", "constraints": entries}));
            queued += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if log.lock().map(|l| l.ended).unwrap_or(true) {
            break;
        }
    }
    drop(out_tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sent, errors, end) = log
        .lock()
        .map(|l| (l.sent, l.errors.clone(), l.end_reason.clone()))
        .map_err(|_| "poisoned log")?;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    let mut o = Outcome {
        attacker: format!(
            "{sent} messages of 256 entries sent in {:.1} s; errors {errors:?}; {}",
            t0.elapsed().as_secs_f64(),
            end.as_deref().unwrap_or("not closed")
        ),
        failures: Vec::new(),
    };
    o.check(errors.contains_key("rate-limited") || end.is_some(), || {
        format!(
            "no `rate-limited` error and no close after {sent} video-constraints of 256 entries"
        )
    });
    Ok(o)
}

/// Until the attacker `index` receives the bystanders' videos (8 s at most);
/// their SSRCs towards it.
async fn wait_videos(env: &Env, index: usize, ids: &[u64]) -> Result<Vec<u32>, String> {
    let t0 = Instant::now();
    loop {
        let (_, gaps) = env.attacker_media();
        let v: Vec<u32> = gaps
            .iter()
            .filter(|g| g.index == index && g.kind == Kind::Video && ids.contains(&g.sender))
            .map(|g| g.ssrc)
            .collect();
        if v.len() >= ids.len() {
            return Ok(v);
        }
        if t0.elapsed() > Duration::from_secs(8) {
            return Err(format!(
                "the attacker received {} of {} bystander videos in 8 s",
                v.len(),
                ids.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start an attacker with real media (on the attackers' media thread) in
/// `room`, and wait until its publish transport has mediad's answer.
async fn media_attacker(
    env: &mut Env,
    room: &str,
    from: std::net::IpAddr,
    outbox: Option<tokio::sync::mpsc::UnboundedReceiver<Value>>,
) -> Result<
    (
        usize,
        SharedLog,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    String,
> {
    let index = env.next_index();
    let (tx, _) = env.attacker_media();
    let log = SharedLog::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let spec = PeerSpec {
        index,
        room: room.into(),
        name: format!("attacker {index}"),
        video: false,
        ws_url: env.ws_url.clone(),
        from,
    };
    let task = tokio::spawn(peer::run_peer(spec, tx, log.clone(), stop_rx, outbox));
    let t0 = Instant::now();
    loop {
        if let Ok(l) = log.lock() {
            if l.ended {
                return Err(format!(
                    "the attacker's signaling failed: {:?}",
                    l.incidents
                ));
            }
            if l.remote[0].is_some() {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(8) {
            return Err("the attacker got no publish answer in 8 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((index, log, stop_tx, task))
}

/// A plain NACK (RFC 4585 generic NACK) from `sender` for `media` asking
/// for `pids` (each with the 16 following packets), after an empty
/// receiver report (a compound packet).
pub fn nack_packet(sender: u32, media: u32, pids: &[u16]) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&sender.to_be_bytes());
    let words = 2 + pids.len();
    p.extend_from_slice(&[0x81, 205]);
    p.extend_from_slice(&(words as u16).to_be_bytes());
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&media.to_be_bytes());
    for &pid in pids {
        p.extend_from_slice(&pid.to_be_bytes());
        p.extend_from_slice(&[0xff, 0xff]);
    }
    p
}

/// A receiver in the bystanders' room NACKs the whole sequence space of
/// each video stream it receives, 50 times a second, for 3 s: what it gets
/// back must stay within twice its normal rate (mediad answers from its
/// cache within a retransmission budget).
async fn nack_storm(env: &mut Env) -> Result<Outcome, String> {
    let (index, log, stop, task) = media_attacker(env, BYSTANDER_ROOM, lo(1, 7), None).await?;
    let ids = env.bystander_ids();
    let videos = match wait_videos(env, index, &ids).await {
        Ok(v) => v,
        Err(e) => {
            let _ = stop.send(true);
            return Err(e);
        }
    };
    let (tx, _) = env.attacker_media();
    let (b0, _) = env.attacker_received();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b1, _) = env.attacker_received();
    let baseline = (b1 - b0) as f64;
    let pids: Vec<u16> = (0..=u16::MAX / 17).map(|j| j * 17).collect();
    let sender = 0x4000_0000 + index as u32;
    let packets: Vec<Vec<u8>> = videos
        .iter()
        .flat_map(|&m| pids.chunks(256).map(move |c| nack_packet(sender, m, c)))
        .collect();
    let storm = Duration::from_secs(3);
    let t1 = Instant::now();
    let mut sent = 0u64;
    while t1.elapsed() < storm {
        for p in &packets {
            let _ = tx.send(Command::SendRtcp {
                index,
                which: Which::Subscribe,
                rtcp: p.clone(),
                count: 1,
            });
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (b2, _) = env.attacker_received();
    let during = (b2 - b1) as f64 / t1.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    let mut o = Outcome {
        attacker: format!(
            "{sent} NACK packets ({} requests each) in 3 s; received {:.0} kB/s during, {:.0} kB/s before",
            pids.len().min(256) * 17,
            during / 1000.0,
            baseline / 1000.0
        ),
        failures: Vec::new(),
    };
    let allowed = 2.0 * baseline + 50_000.0;
    o.check(during <= allowed, || {
        format!(
            "the NACKing receiver got {:.0} kB/s during the storm, over 2 × its {:.0} kB/s before + 50 kB/s",
            during / 1000.0,
            baseline / 1000.0
        )
    });
    if let Ok(l) = log.lock() {
        o.check(l.incidents.is_empty() || l.ended, || {
            format!("{:?}", l.incidents)
        });
    }
    Ok(o)
}

/// A STUN binding request with USE-CANDIDATE for `user`, keyed with `key`.
fn check(user: &str, key: &[u8], round: u32, k: u32) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 512];
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&round.to_be_bytes());
    id[4..8].copy_from_slice(&k.to_be_bytes());
    id[8..].copy_from_slice(b"ABUS");
    let n = salon_proto::stun::write_binding_request(
        &mut buf,
        &id,
        user.as_bytes(),
        0x7e00_00ff,
        0x1234_5678_9abc_def0,
        true,
        key,
    )
    .map_err(|e| format!("STUN: {e:?}"))?;
    Ok(buf[..n].to_vec())
}

/// Re-latch attempts, all with USE-CANDIDATE, by a receiver of the
/// bystanders' room:
/// 1. from 16 new addresses: with its own publish credentials (mediad may
///    move its own transport there: that is ICE), and naming bystander 0's
///    subscribe transport with the only password it has (never answered,
///    counted in `drop_stun_auth`; the new addresses get nothing);
/// 2. from the address its own subscribe transport latched (a socket it
///    really owns): with its publish credentials, and with bystander 0's
///    subscribe credentials, password included (the harness knows it; the
///    live twin of `mediad/tests/ice_latching.rs`) — both dropped as an
///    address another transport latched (`drop_addr_taken`), and the
///    bystander keeps its media.
async fn relatch(env: &mut Env) -> Result<Outcome, String> {
    let (index, log, stop, task) = media_attacker(env, BYSTANDER_ROOM, lo(1, 8), None).await?;
    // Its subscribe transport connected and latched: it receives.
    let ids = env.bystander_ids();
    if let Err(e) = wait_videos(env, index, &ids).await {
        let _ = stop.send(true);
        return Err(e);
    }
    let (own_remote, own_local) = {
        let l = log.lock().map_err(|_| "poisoned log")?;
        (
            l.remote[0].clone().ok_or("no publish answer")?,
            l.local[0].clone().ok_or("no local credentials")?,
        )
    };
    let (by_remote, by_local) = {
        let l = env.bystanders[0].lock().map_err(|_| "poisoned log")?;
        (
            l.remote[1]
                .clone()
                .ok_or("bystander 0 has no subscribe offer")?,
            l.local[1].clone().ok_or("bystander 0 has no credentials")?,
        )
    };
    let mediad: SocketAddr = own_remote.addr;
    let own_user = format!("{}:{}", own_remote.ufrag, own_local.ufrag);
    let other_user = format!("{}:{}", by_remote.ufrag, by_local.ufrag);
    let mut socks = Vec::new();
    for i in 0..16u8 {
        let s = tokio::net::UdpSocket::bind(SocketAddr::new(lo(2, 8), 0))
            .await
            .map_err(|e| format!("binding UDP: {e}"))?;
        socks.push((i % 2 == 0, s));
    }
    let auth_drops = |m: &str| metric(m, "mediad_drop_stun_auth_total");
    let drops0 = auth_drops(&env.http_get("/metrics").await.unwrap_or_default());
    let mut buf = [0u8; 1500];
    let (mut sent, mut sent_foreign) = (0u64, 0u64);
    for round in 0..20u32 {
        for (k, (own, s)) in socks.iter().enumerate() {
            let (user, key) = if *own {
                (&own_user, own_remote.pwd.as_bytes())
            } else {
                // The attacker's own password: the only one it has.
                (&other_user, own_remote.pwd.as_bytes())
            };
            let c = check(user, key, round, k as u32)?;
            if s.send_to(&c, mediad).await.is_ok() {
                sent += 1;
                sent_foreign += u64::from(!*own);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What came back to each address, for 1 s.
    let (mut own_stun, mut own_other, mut foreign) = (0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    for (own, s) in &socks {
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = tokio::time::timeout(left.max(Duration::from_millis(1)), s.recv_from(&mut buf))
                .await;
            let Ok(Ok((n, _))) = r else { break };
            let stun = n > 0 && buf[0] < 4;
            match (own, stun) {
                (true, true) => own_stun += 1,
                (true, false) => own_other += 1,
                (false, _) => foreign += 1,
            }
        }
    }
    let metrics1 = env.http_get("/metrics").await.unwrap_or_default();
    let drops1 = auth_drops(&metrics1);
    let dropped = match (drops0, drops1) {
        (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
        _ => None,
    };
    // 2. From the attacker's own latched subscribe address.
    let taken = |m: &str| metric(m, "mediad_drop_addr_taken_total");
    let taken0 = taken(&metrics1);
    let (tx, _) = env.attacker_media();
    let by_user = other_user.clone();
    let mut sent_latched = 0u64;
    for round in 0..20u32 {
        for (k, (user, key)) in [
            (&own_user, own_remote.pwd.as_bytes()),
            (&by_user, by_remote.pwd.as_bytes()),
        ]
        .into_iter()
        .enumerate()
        {
            let data = check(user, key, 100 + round, k as u32)?;
            if tx
                .send(Command::SendDatagram {
                    index,
                    which: Which::Subscribe,
                    data,
                })
                .is_ok()
            {
                sent_latched += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken1 = taken(&env.http_get("/metrics").await.unwrap_or_default());
    let refused_taken = match (taken0, taken1) {
        (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
        _ => None,
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    let mut o = Outcome {
        attacker: format!(
            "{sent} checks from 16 new addresses: own transport answered {own_stun} (+{own_other} media: re-latched, legitimate); naming a bystander's: {foreign} datagrams back, {} counted in mediad_drop_stun_auth_total. {sent_latched} checks from its own latched address (own publish / bystander's credentials): {} counted in mediad_drop_addr_taken_total",
            dropped.map_or("none".into(), |d| d.to_string()),
            refused_taken.map_or("none".into(), |d| d.to_string()),
        ),
        failures: Vec::new(),
    };
    o.check(foreign == 0, || {
        format!("checks naming a bystander's transport with the wrong password got {foreign} datagrams back")
    });
    // They reached mediad and were refused there (not lost on the way).
    o.check(dropped.is_some_and(|d| d >= sent_foreign), || {
        format!(
            "mediad_drop_stun_auth_total rose by {dropped:?}, fewer than the {sent_foreign} forged checks"
        )
    });
    o.check(refused_taken.is_some_and(|d| d >= sent_latched), || {
        format!(
            "of {sent_latched} checks from an address another transport latched, only {refused_taken:?} were refused as such (mediad_drop_addr_taken_total)"
        )
    });
    Ok(o)
}

/// lib0 variable-length unsigned integer.
fn varuint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn varbytes(out: &mut Vec<u8>, b: &[u8]) {
    varuint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A y-protocols sync Update message: a Yjs v1 update inserting `text`
/// (ASCII) at the start of root type `t`, as client `client` at `clock`.
pub fn yjs_insert(client: u64, clock: u64, text: &str) -> Vec<u8> {
    let mut u = Vec::with_capacity(text.len() + 32);
    varuint(&mut u, 1); // clients
    varuint(&mut u, 1); // structs of this client
    varuint(&mut u, client);
    varuint(&mut u, clock);
    u.push(0x04); // Item, ContentString, no origins, no parentSub
    varuint(&mut u, 1); // parent is a root type named by key
    varbytes(&mut u, b"t");
    varbytes(&mut u, text.as_bytes());
    varuint(&mut u, 0); // delete set: no clients
    let mut m = vec![0, 2]; // messageSync, messageYjsUpdate
    varbytes(&mut m, &u);
    m
}

/// How long the pad storm goes on at most (it ends when the server closes
/// the socket). A server that paces its answers (one a second) and bounds
/// what it queues per socket closes it after ~13 s here: a dozen 900 kB
/// answers, the first ~6 MB of them absorbed by the two sockets' kernel
/// buffers.
const PAD_STORM: Duration = Duration::from_secs(16);
/// Sync requests sent at once before the sustained storm.
const PAD_BURST: u64 = 2000;

/// SyncStep1 with an empty state vector: "send me everything".
pub const SYNC_STEP1_EMPTY: [u8; 4] = [0, 0, 1, 0];

/// [`PAD_SOCKETS`] participants of one room open the pad; one fills it to
/// ~900 kB (under the 1 MiB cap); then each, on its pad socket that never
/// reads, storms ([`storm_pad`]: a burst, then sustained, so a server that
/// paces its answers still has to answer many): the gateway must close
/// every such socket, and, as in every window, stay within
/// [`super::WINDOW_RSS_GROWTH_MIB`] (the burst is what costs memory where
/// every request's answer is queued).
/// Participants sharing one pad.
const PAD_SOCKETS: usize = 4;

/// What one never-reading pad socket's storm did.
struct PadStorm {
    sent: u64,
    secs: f64,
    stalled: bool,
    /// The server closed it (a send failed, or its close was read).
    ended: bool,
    frames: u64,
    largest: usize,
    seen: Seen,
}

/// Ask for the whole document [`PAD_BURST`] times at once, then every
/// 4 ms until the server closes the socket or [`PAD_STORM`]; never read
/// meanwhile, nor for 1 s after; then read 3 s to see how it ended.
async fn storm_pad(mut pad: Ws) -> PadStorm {
    let t0 = Instant::now();
    let (mut sent, mut stalled, mut failed) = (0u64, false, false);
    while sent < 6000 && t0.elapsed() < PAD_STORM {
        match tokio::time::timeout(
            Duration::from_millis(500),
            pad.send(Message::binary(SYNC_STEP1_EMPTY.to_vec())),
        )
        .await
        {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) => {
                failed = true;
                break;
            }
            Err(_) => {
                stalled = true;
                break;
            }
        }
        if sent >= PAD_BURST {
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if !failed {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Now read: was it closed, and with what? (After a failed send the
    // close frame may still wait in our buffer.)
    let mut seen = Seen::default();
    let (mut frames, mut largest) = (0u64, 0usize);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut ended = false;
    while !ended {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let r = ws::recv(&mut pad, left).await;
        seen.record(&r);
        match r {
            Recv::Binary(n) => {
                frames += 1;
                largest = largest.max(n);
            }
            Recv::Closed(_) | Recv::Error(_) => ended = true,
            Recv::Timeout => break,
            Recv::Json(_) => {}
        }
    }
    PadStorm {
        sent,
        secs,
        stalled,
        ended: ended || failed,
        frames,
        largest,
        seen,
    }
}

async fn pad_sync_storm(env: &mut Env) -> Result<Outcome, String> {
    let room = "Pad-Room";
    let base = env.ws_url.trim_end_matches("/ws").to_owned();
    let mut members = Vec::new();
    let mut pads = Vec::new();
    for k in 0..PAD_SOCKETS {
        let (s, joined) = joined_socket(env, lo(1, 9), room, &format!("padder {k}")).await?;
        let token = joined["pad_token"]
            .as_str()
            .ok_or("`joined` without pad_token")?
            .to_owned();
        let pad = ws::connect_with(&format!("{base}/pad?token={token}"), lo(1, 9), Some(4096))
            .await
            .map_err(|e| format!("pad connect: {e}"))?;
        members.push(s);
        pads.push(pad);
    }
    // The first fills the document (900 kB, under the 1 MiB cap).
    let chunk = "a".repeat(60_000);
    let mut clock = 0;
    if let Some(pad) = pads.first_mut() {
        for _ in 0..15 {
            let m = yjs_insert(4242, clock, &chunk);
            clock += chunk.len() as u64;
            tokio::time::timeout(Duration::from_secs(2), pad.send(Message::binary(m)))
                .await
                .map_err(|_| "filling the pad: send timed out")?
                .map_err(|e| format!("filling the pad: {e}"))?;
        }
    }
    // The fill really took: a sync request is answered with the whole
    // document (checked here, before the storm: during it the server may
    // close the sockets — rate limit, slow consumer — before anything is
    // read).
    let mut filled = 0usize;
    if let Some(pad) = pads.first_mut() {
        tokio::time::timeout(
            Duration::from_secs(2),
            pad.send(Message::binary(SYNC_STEP1_EMPTY.to_vec())),
        )
        .await
        .map_err(|_| "asking for the filled pad: send timed out")?
        .map_err(|e| format!("asking for the filled pad: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while filled < 500_000 {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match ws::recv(pad, left).await {
                Recv::Binary(n) => filled = filled.max(n),
                Recv::Json(_) => {}
                Recv::Closed(_) | Recv::Error(_) | Recv::Timeout => break,
            }
        }
    }
    let start_kb = super::rss_kb(env.pid).unwrap_or(0);
    let mut set = JoinSet::new();
    for pad in pads {
        set.spawn(storm_pad(pad));
    }
    let mut storms = Vec::new();
    while let Some(r) = set.join_next().await {
        storms.push(r.map_err(|e| e.to_string())?);
    }
    // The peak over the storm and the reading (the gateway answers late).
    let peak_kb = env.rss.peak_kb();
    for mut m in members {
        let _ = ws::send(&mut m, json!({"type": "leave"})).await;
    }
    let grew_mib = peak_kb.saturating_sub(start_kb) as f64 / 1024.0;
    let mut seen = Seen::default();
    for p in &storms {
        seen.merge(&p.seen);
    }
    let closed = storms.iter().filter(|p| p.ended).count();
    let sent: u64 = storms.iter().map(|p| p.sent).sum();
    let largest = storms.iter().map(|p| p.largest).max().unwrap_or(0);
    let frames: u64 = storms.iter().map(|p| p.frames).sum();
    let secs = storms.iter().map(|p| p.secs).fold(0.0, f64::max);
    let stalled = storms.iter().filter(|p| p.stalled).count();
    let mut o = Outcome {
        attacker: format!(
            "{PAD_SOCKETS} pad sockets, {sent} sync requests in {secs:.1} s; {closed}/{PAD_SOCKETS} closed by the server{}; then {frames} frames read (largest {} kB), {seen}; RSS +{grew_mib:.0} MiB",
            if stalled > 0 {
                format!(", {stalled} stopped being read by the server")
            } else {
                String::new()
            },
            largest / 1000,
        ),
        failures: Vec::new(),
    };
    o.check(seen.closed.keys().all(|k| !k.contains("1007")), || {
        format!("the harness's pad updates were refused as malformed: {seen}")
    });
    o.check(closed == PAD_SOCKETS, || {
        format!(
            "{} of {PAD_SOCKETS} pad sockets that never read were not closed after {secs:.0} s of sync requests",
            PAD_SOCKETS - closed
        )
    });
    // The storm asked for a real document: a sync request before it was
    // answered with the fill.
    o.check(filled >= 500_000, || {
        format!("the pad was not filled: its sync answer was {filled} B")
    });
    Ok(o)
}

/// `media-state` as fast as possible from a participant of the bystanders'
/// room: rate-limited (or closed), and the bystanders are sent at most
/// what the rate limit lets through.
async fn media_state_storm(env: &mut Env) -> Result<Outcome, String> {
    let (s, j) = joined_socket(env, lo(1, 10), BYSTANDER_ROOM, "toggler").await?;
    let me = j["id"].as_u64().ok_or("`joined` without id")?;
    let f = flood(s, 10_000, Duration::from_secs(3), |i| {
        Message::text(
            json!({"type": "media-state", "audio": i % 2 == 0, "video": true}).to_string(),
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relayed: Vec<u64> = env
        .bystanders
        .iter()
        .map(|b| {
            b.lock()
                .map(|l| l.media_state_from.get(&me).copied().unwrap_or(0))
                .unwrap_or(0)
        })
        .collect();
    let bound = rate_bound(f.secs);
    let mut o = Outcome {
        attacker: format!(
            "{}; relayed to each bystander {relayed:?}",
            flood_summary(&f)
        ),
        failures: Vec::new(),
    };
    o.check(stopped(&f), || {
        format!(
            "no `rate-limited` error and no close after {} media-state in {:.1} s",
            f.sent, f.secs
        )
    });
    o.check(relayed.iter().all(|&r| r <= bound), || {
        format!("the bystanders were sent {relayed:?} media-state messages, over {bound} (2 × burst + rate)")
    });
    Ok(o)
}

/// 2 × the lobby cap of guests (from twenty addresses, under the per-IP
/// cap and the per-address entry limits) enter one room's lobby, then
/// those waiting knock 5 times each: at most the cap wait, the rest are
/// refused, and the moderator's socket survives.
async fn lobby_knock_flood(env: &mut Env) -> Result<Outcome, String> {
    let room = "Lobby-Flood";
    let (mut moderator, _) = joined_socket(env, lo(1, 11), room, "host").await?;
    let n = limits::LOBBY_PER_ROOM * 2;
    let (release_tx, release_rx) = watch::channel(false);
    let (knock_tx, knock_rx) = watch::channel(false);
    let mut set = JoinSet::new();
    for i in 0..n {
        let url = env.ws_url.clone();
        let mut release = release_rx.clone();
        let mut knock = knock_rx.clone();
        set.spawn(async move {
            // 10 guests per address: the lobby cap is hit, not a
            // per-address entry limit.
            let from = lo(3, 1 + (i % 20) as u8);
            let mut s = match ws::connect(&url, from).await {
                Ok(s) => s,
                Err(e) => return (format!("connect {e}"), Seen::default()),
            };
            let mut seen = Seen::default();
            let r = ws::join(&mut s, room, &format!("guest {i}"), None).await;
            let kind = match &r {
                Ok(v) if v["type"] == "error" => {
                    format!("error {}", v["code"].as_str().unwrap_or("?"))
                }
                Ok(v) => v["type"].as_str().unwrap_or("?").to_owned(),
                Err(e) if e.contains("closed") => "closed".into(),
                Err(e) => format!("failed: {e}"),
            };
            if kind == "lobby" {
                // Everyone entered: now the knocks.
                let _ = tokio::time::timeout(Duration::from_secs(10), knock.changed()).await;
                for _ in 0..5 {
                    if ws::send(&mut s, json!({"type": "knock"})).await.is_err() {
                        break;
                    }
                }
                // Wait in the lobby until counted.
                let _ = tokio::time::timeout(Duration::from_secs(15), async {
                    loop {
                        tokio::select! {
                            _ = release.changed() => return,
                            r = ws::recv(&mut s, Duration::from_secs(15)) => {
                                seen.record(&r);
                                if matches!(r, Recv::Closed(_) | Recv::Error(_)) {
                                    std::future::pending::<()>().await;
                                }
                            }
                        }
                    }
                })
                .await;
            }
            (kind, seen)
        });
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Everyone answered (2 s), then the knocks (1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = knock_tx.send(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = env.http_get("/metrics").await.unwrap_or_default();
    let waiting: Option<u64> = metrics
        .lines()
        .find(|l| l.starts_with("salon_gateway_lobby_waiting"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64);
    let mut mod_seen = Seen::default();
    let mod_ended = ws::drain(&mut moderator, Duration::from_millis(500), &mut mod_seen).await;
    let _ = release_tx.send(true);
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    let mut guests = Seen::default();
    while let Some(r) = set.join_next().await {
        let (k, s) = r.map_err(|e| e.to_string())?;
        *kinds.entry(k).or_default() += 1;
        guests.merge(&s);
    }
    let _ = ws::send(&mut moderator, json!({"type": "leave"})).await;
    let in_lobby = kinds.get("lobby").copied().unwrap_or(0);
    let refused: u64 = kinds
        .iter()
        .filter(|(k, _)| k.starts_with("error") || *k == "closed" || k.starts_with("connect"))
        .map(|(_, n)| n)
        .sum();
    let mut o = Outcome {
        attacker: format!(
            "{n} guests: {kinds:?}; then {guests}; lobby gauge {waiting:?}; moderator got {} knocks",
            mod_seen.message("knock")
        ),
        failures: Vec::new(),
    };
    let cap = limits::LOBBY_PER_ROOM as u64;
    o.check(in_lobby <= cap, || {
        format!("{in_lobby} guests waited in one lobby (cap {cap})")
    });
    o.check(refused > 0, || format!("none of {n} guests was refused"));
    o.check(waiting.is_none_or(|w| w <= cap), || {
        format!("salon_gateway_lobby_waiting = {waiting:?}, over {cap}")
    });
    o.check(!mod_ended, || {
        format!("the moderator's socket ended: {mod_seen}")
    });
    Ok(o)
}

fn token(iss: &str, kid: &str, secret: &str, sub: &str, room: &str, moderator: bool) -> String {
    ws::hs256(
        kid,
        &ws::claims(iss, auth::AUDIENCE, sub, room, moderator),
        secret.as_bytes(),
    )
}

/// What a second attempt got: `joined`, `lobby`, an error code, a close.
async fn attempt(env: &Env, from: std::net::IpAddr, first: Value) -> String {
    let mut s = match ws::connect(&env.ws_url, from).await {
        Ok(s) => s,
        Err(e) => return format!("connect {e}"),
    };
    if ws::send(&mut s, first).await.is_err() {
        return "closed".into();
    }
    let r = match ws::reply(&mut s, &["joined", "resumed", "lobby", "error"]).await {
        Ok(v) if v["type"] == "error" => format!("error {}", v["code"].as_str().unwrap_or("?")),
        Ok(v) => v["type"].as_str().unwrap_or("?").to_owned(),
        Err(e) if e.contains("closed") => "closed".into(),
        Err(e) => format!("failed: {e}"),
    };
    if r == "joined" || r == "resumed" {
        let _ = ws::send(&mut s, json!({"type": "leave"})).await;
    }
    r
}

/// Join `room` from `from` (with a token or not) and have `moderator` kick
/// it with `ban`; its id's resume token, and whether `kicked` arrived.
async fn join_and_ban(
    env: &Env,
    moderator: &mut Ws,
    room: &str,
    from: std::net::IpAddr,
    jwt: Option<&str>,
) -> Result<(String, bool), String> {
    let mut s = ws::connect(&env.ws_url, from)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let j = ws::join(&mut s, room, "pest", jwt).await?;
    if j["type"] != "joined" {
        return Err(format!("the participant to ban could not join: {j}"));
    }
    let id = j["id"].as_u64().ok_or("`joined` without id")?;
    let resume = j["resume_token"].as_str().unwrap_or("").to_owned();
    ws::send(moderator, json!({"type": "kick", "id": id, "ban": true})).await?;
    let kicked = ws::reply(&mut s, &["kicked"]).await.is_ok();
    Ok((resume, kicked))
}

/// A moderator bans two participants, who come back on new sockets from
/// the same address: the anonymous one anonymously and with its old resume
/// token (the ban used to hold the socket only), the token holder with a
/// fresh token of the same user. None gets in.
async fn ban_evasion(env: &mut Env) -> Result<Outcome, String> {
    let room = "Ban-Room";
    let (mut moderator, _) = joined_socket(env, lo(1, 12), room, "host").await?;
    let (anon_from, user_from) = (lo(1, 13), lo(1, 16));
    let (resume, kicked_anon) = join_and_ban(env, &mut moderator, room, anon_from, None).await?;
    let t = token(
        auth::ISSUER_A,
        auth::KEY_A,
        auth::SECRET_A,
        "pest",
        room,
        false,
    );
    let (_, kicked_user) = join_and_ban(env, &mut moderator, room, user_from, Some(&t)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let anonymous = attempt(
        env,
        anon_from,
        json!({"type": "join", "room": room, "name": "pest again"}),
    )
    .await;
    let resumed = attempt(
        env,
        anon_from,
        json!({"type": "resume", "token": resume, "media": "new"}),
    )
    .await;
    let t2 = token(
        auth::ISSUER_A,
        auth::KEY_A,
        auth::SECRET_A,
        "pest",
        room,
        false,
    );
    let with_token = attempt(
        env,
        user_from,
        json!({"type": "join", "room": room, "name": "pest", "jwt": t2}),
    )
    .await;
    let _ = ws::send(&mut moderator, json!({"type": "leave"})).await;
    let mut o = Outcome {
        attacker: format!(
            "anonymous, banned{}: back anonymously {anonymous}, resume {resumed}; token holder, banned{}: back with a fresh token {with_token}",
            if kicked_anon { "" } else { " (no `kicked`)" },
            if kicked_user { "" } else { " (no `kicked`)" },
        ),
        failures: Vec::new(),
    };
    o.check(kicked_anon && kicked_user, || {
        "a banned participant was not told `kicked`".into()
    });
    for (how, r) in [
        ("an anonymous rejoin from the same address", &anonymous),
        ("its old resume token", &resumed),
        ("a fresh token of the same user", &with_token),
    ] {
        o.check(r != "joined" && r != "resumed", || {
            format!("a banned participant came back with {how}: {r}")
        });
    }
    Ok(o)
}

/// A moderator token for room `abuseroom` (valid there) used to enter
/// `AbuseRoom`, the bystanders' room: refused.
async fn case_variant_token(env: &mut Env) -> Result<Outcome, String> {
    let lower = BYSTANDER_ROOM.to_ascii_lowercase();
    let t = token(
        auth::ISSUER_A,
        auth::KEY_A,
        auth::SECRET_A,
        "case-attacker",
        &lower,
        true,
    );
    let own = attempt(
        env,
        lo(1, 14),
        json!({"type": "join", "room": lower, "name": "case", "jwt": t}),
    )
    .await;
    if own != "joined" {
        return Err(format!(
            "the token was refused for its own room `{lower}` too: {own}"
        ));
    }
    let mut s = ws::connect(&env.ws_url, lo(1, 14))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let r = ws::join(&mut s, BYSTANDER_ROOM, "case", Some(&t)).await;
    let got = match &r {
        Ok(v) if v["type"] == "error" => format!("error {}", v["code"].as_str().unwrap_or("?")),
        Ok(v) => format!("{} as {}", v["type"].as_str().unwrap_or("?"), v["role"]),
        Err(e) => e.clone(),
    };
    if matches!(&r, Ok(v) if v["type"] == "joined") {
        let _ = ws::send(&mut s, json!({"type": "leave"})).await;
    }
    let mut o = Outcome {
        attacker: format!("token for `{lower}`: own room {own}; `{BYSTANDER_ROOM}`: {got}"),
        failures: Vec::new(),
    };
    o.check(
        !got.starts_with("joined") && !got.starts_with("lobby"),
        || format!("a token for `{lower}` let its holder into `{BYSTANDER_ROOM}` ({got})"),
    );
    Ok(o)
}

/// With each key bound to its issuer: a token claiming issuer A signed
/// with issuer B's key (and the reverse) is refused, while B's own token
/// is accepted.
async fn cross_issuer_token(env: &mut Env) -> Result<Outcome, String> {
    let room = "Issuer-Room";
    let b = token(
        auth::ISSUER_B,
        auth::KEY_B,
        auth::SECRET_B,
        "b-user",
        room,
        false,
    );
    let own = attempt(
        env,
        lo(1, 15),
        json!({"type": "join", "room": room, "name": "b", "jwt": b}),
    )
    .await;
    if own != "joined" {
        return Err(format!("issuer B's own token was refused: {own}"));
    }
    let forged_a = token(
        auth::ISSUER_A,
        auth::KEY_B,
        auth::SECRET_B,
        "a-admin",
        room,
        true,
    );
    let as_a = attempt(
        env,
        lo(1, 15),
        json!({"type": "join", "room": room, "name": "a", "jwt": forged_a}),
    )
    .await;
    let forged_b = token(
        auth::ISSUER_B,
        auth::KEY_A,
        auth::SECRET_A,
        "b-admin",
        room,
        true,
    );
    let as_b = attempt(
        env,
        lo(1, 15),
        json!({"type": "join", "room": room, "name": "b2", "jwt": forged_b}),
    )
    .await;
    let mut o = Outcome {
        attacker: format!(
            "B's own token: {own}; iss A with B's key: {as_a}; iss B with A's key: {as_b}"
        ),
        failures: Vec::new(),
    };
    for (what, r) in [
        ("issuer A signed with B's key", &as_a),
        ("issuer B signed with A's key", &as_b),
    ] {
        o.check(r.starts_with("error") || r == "closed", || {
            format!("a token of {what} was accepted ({r})")
        });
    }
    Ok(o)
}

/// The sum of a Prometheus metric's samples (any labels) in `text`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest
            .split_whitespace()
            .last()
            .and_then(|v| v.parse::<f64>().ok())
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_and_yjs_encodings() {
        let p = nack_packet(1, 2, &[7, 0xffff]);
        // RR (8 bytes), then the NACK: header, sender, media, two FCIs.
        assert_eq!(p.len(), 8 + 12 + 8);
        assert_eq!(&p[8..12], &[0x81, 205, 0, 4]);
        assert_eq!(&p[20..24], &[0, 7, 0xff, 0xff]);
        let mut v = Vec::new();
        varuint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        let m = yjs_insert(1, 0, "ab");
        assert_eq!(m, [0, 2, 12, 1, 1, 1, 0, 4, 1, 1, b't', 2, b'a', b'b', 0]);
        let off = mline_offer(
            &crate::signaling::Local {
                ufrag: "abcd".into(),
                pwd: "0123456789abcdefghijklmn".into(),
                fingerprint: crate::signaling::fingerprint_sha256(b"x"),
            },
            512,
        );
        let d = salon_sdp::parse(&off);
        assert!(off.len() > super::limits::PUBLISH_OFFER, "{}", off.len());
        assert!(d.is_ok_and(|d| d.media.len() == 512));
    }

    #[test]
    fn metric_sums_labelled_samples() {
        let t = "# HELP x\nmediad_drop_stun_auth_total 3\nmediad_drop_stun_auth_total_other 9\nfoo{a=\"1\"} 2\nfoo{a=\"2\"} 5\n";
        assert_eq!(metric(t, "mediad_drop_stun_auth_total"), Some(3.0));
        assert_eq!(metric(t, "foo"), Some(7.0));
        assert_eq!(metric(t, "bar"), None);
    }
}
