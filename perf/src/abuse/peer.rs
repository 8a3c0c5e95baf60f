//! A synthetic meeting participant with real media (ICE, DTLS, SRTP through
//! a [`crate::media::Worker`]) whose signaling the suite watches message by
//! message: the bystanders, and the attackers that need SRTP keys (the NACK
//! storm) or ICE credentials (the re-latch attempt).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::watch;

use super::ws::{self, Recv};
use crate::media::{Command, NewParticipant, RemoteDescription, Which};
use crate::signaling::{
    Local, VideoOffer, local_pair, publish_offer, remote_description, set_recv_buffer,
    subscribe_answer,
};

/// Who a peer is and where it goes.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Index on its media worker (unique per worker).
    pub index: usize,
    /// Room name.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Publishes video too (one VP8 stream).
    pub video: bool,
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// Local address of its TCP and UDP sockets.
    pub from: IpAddr,
}

/// What the suite learns from a peer's signaling (shared, read by the
/// harness between and after attacks).
#[derive(Debug, Default)]
pub struct PeerLog {
    /// Gateway id once joined.
    pub id: Option<u64>,
    /// Both transports connected? Set by the harness from worker events.
    pub connected: [bool; 2],
    /// Messages received, by `type`.
    pub by_type: BTreeMap<String, u64>,
    /// `media-state` messages received, by sender id.
    pub media_state_from: BTreeMap<u64, u64>,
    /// Things a bystander must never see: an `error`, a `participant-left`
    /// naming one of `protected`, its socket closing, its task failing.
    pub incidents: Vec<String>,
    /// Ids whose departure is an incident (the other bystanders).
    pub protected: Vec<u64>,
    /// Our local ICE credentials per transport (publish, subscribe).
    pub local: [Option<Local>; 2],
    /// mediad's description per transport (publish, subscribe).
    pub remote: [Option<RemoteDescription>; 2],
    /// The socket ended (closed by the server or failed).
    pub ended: bool,
    /// `error` messages received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Why the socket ended.
    pub end_reason: Option<String>,
    /// Messages sent from the outbox.
    pub sent: u64,
}

impl PeerLog {
    /// Messages of `kind` received so far.
    pub fn count(&self, kind: &str) -> u64 {
        self.by_type.get(kind).copied().unwrap_or(0)
    }
}

/// A shared log.
pub type SharedLog = Arc<Mutex<PeerLog>>;

fn note(log: &SharedLog, f: impl FnOnce(&mut PeerLog)) {
    if let Ok(mut l) = log.lock() {
        f(&mut l);
    }
}

/// Run a peer until `stop` turns true (then `leave`) or its socket ends.
/// Everything it sees goes into `log`; a failure is an incident. Messages
/// put in `outbox` are sent on its socket as they come (an attacker).
pub async fn run_peer(
    spec: PeerSpec,
    worker: Sender<Command>,
    log: SharedLog,
    mut stop: watch::Receiver<bool>,
    mut outbox: Option<tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>>,
) {
    if let Err(e) = peer(&spec, &worker, &log, &mut stop, &mut outbox).await {
        note(&log, |l| {
            l.ended = true;
            l.end_reason = Some(e.clone());
            l.incidents.push(format!("{}: {e}", spec.name));
        });
    }
    let _ = worker.send(Command::Remove { index: spec.index });
}

async fn peer(
    spec: &PeerSpec,
    worker: &Sender<Command>,
    log: &SharedLog,
    stop: &mut watch::Receiver<bool>,
    outbox: &mut Option<tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>>,
) -> Result<(), String> {
    let mut ws = ws::connect(&spec.ws_url, spec.from)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let joined = ws::join(&mut ws, &spec.room, &spec.name, None).await?;
    if joined["type"] != "joined" {
        return Err(format!("join refused: {joined}"));
    }
    let id = joined["id"].as_u64().ok_or("`joined` without id")?;
    note(log, |l| l.id = Some(id));

    // Indices are unique across the suite's workers, so are the ICE tokens.
    let (cert, publish, subscribe) = local_pair(spec.index, 0xab05e)?;
    let bind = || -> Result<std::net::UdpSocket, String> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(spec.from, 0))
            .map_err(|e| format!("binding UDP: {e}"))?;
        s.set_nonblocking(true)
            .map_err(|e| format!("non-blocking UDP: {e}"))?;
        set_recv_buffer(&s, 2 << 20);
        Ok(s)
    };
    let audio_ssrc = 0x2000_0000u32.wrapping_add((spec.index as u32).wrapping_mul(16));
    let video_ssrc = audio_ssrc + 2;
    note(log, |l| {
        l.local = [Some(publish.clone()), Some(subscribe.clone())];
    });
    worker
        .send(Command::Add(Box::new(NewParticipant {
            index: spec.index,
            id,
            room: 0,
            video: spec.video,
            plain: false,
            publish_pwd: publish.pwd.clone(),
            subscribe_pwd: subscribe.pwd.clone(),
            publish_socket: bind()?,
            subscribe_socket: bind()?,
            cert,
            publish_ufrag: publish.ufrag.clone(),
            subscribe_ufrag: subscribe.ufrag.clone(),
            audio_ssrc,
            video_ssrc,
        })))
        .map_err(|_| "media worker gone".to_owned())?;
    let video = if spec.video {
        VideoOffer::Single(video_ssrc)
    } else {
        VideoOffer::None
    };
    ws::send(
        &mut ws,
        json!({"type": "publish-offer", "sdp": publish_offer(&publish, audio_ssrc, video, None)}),
    )
    .await?;

    loop {
        let r = tokio::select! {
            r = ws::recv(&mut ws, std::time::Duration::from_secs(3600)) => r,
            _ = stop.changed() => {
                let _ = ws::send(&mut ws, json!({"type": "leave"})).await;
                let _ = tokio::time::timeout(ws::REPLY, ws.close(None)).await;
                return Ok(());
            }
            m = next_out(outbox) => {
                match m {
                    Some(m) => {
                        ws::send(&mut ws, m).await?;
                        note(log, |l| l.sent += 1);
                    }
                    None => *outbox = None,
                }
                continue;
            }
        };
        let v = match r {
            Recv::Json(v) => v,
            Recv::Binary(_) | Recv::Timeout => continue,
            Recv::Closed(why) => return Err(format!("the gateway closed the socket ({why})")),
            Recv::Error(e) => return Err(e),
        };
        let kind = v["type"].as_str().unwrap_or("?").to_owned();
        note(log, |l| {
            *l.by_type.entry(kind.clone()).or_default() += 1;
            match kind.as_str() {
                "error" => {
                    *l.errors
                        .entry(v["code"].as_str().unwrap_or("?").to_owned())
                        .or_default() += 1;
                    l.incidents.push(format!(
                        "{} got error {}: {}",
                        spec.name, v["code"], v["message"]
                    ));
                }
                "participant-left" => {
                    if let Some(who) = v["id"].as_u64()
                        && l.protected.contains(&who)
                    {
                        l.incidents
                            .push(format!("{} saw bystander {who} leave", spec.name));
                    }
                }
                "media-state" => {
                    if let Some(who) = v["id"].as_u64() {
                        *l.media_state_from.entry(who).or_default() += 1;
                    }
                }
                _ => {}
            }
        });
        match kind.as_str() {
            "publish-answer" => {
                let sdp = v["sdp"].as_str().ok_or("publish-answer without sdp")?;
                let remote = remote_description(sdp)?;
                note(log, |l| l.remote[0] = Some(remote.clone()));
                worker
                    .send(Command::Remote {
                        index: spec.index,
                        which: Which::Publish,
                        remote,
                    })
                    .map_err(|_| "media worker gone".to_owned())?;
            }
            "subscribe-offer" => {
                let sdp = v["sdp"].as_str().ok_or("subscribe-offer without sdp")?;
                let remote = remote_description(sdp)?;
                let answer = subscribe_answer(&subscribe, sdp)?;
                ws::send(&mut ws, json!({"type": "subscribe-answer", "sdp": answer})).await?;
                note(log, |l| l.remote[1] = Some(remote.clone()));
                worker
                    .send(Command::Remote {
                        index: spec.index,
                        which: Which::Subscribe,
                        remote,
                    })
                    .map_err(|_| "media worker gone".to_owned())?;
            }
            _ => {}
        }
    }
}

/// The next message of the outbox; never, without one.
async fn next_out(
    outbox: &mut Option<tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>>,
) -> Option<serde_json::Value> {
    match outbox.as_mut() {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
