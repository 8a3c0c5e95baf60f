//! The media workers: each thread runs one non-blocking `mio` loop over the
//! UDP sockets of its participants (one socket per transport), doing ICE
//! (controlling, towards ICE-lite mediad), DTLS (client), SRTP, and sending
//! and receiving synthetic media. Buffers are owned by the worker and reused;
//! nothing is allocated per packet (only when a new SSRC first shows up).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dimpl::{Dtls, DtlsCertificate, Output};
use mio::{Events, Interest, Poll, Token};
use salon_proto::demux::{PacketKind, classify};
use salon_proto::rtp::{RtpFields, RtpHeader, write_header};
use salon_proto::stun;
use salon_srtp::{SrtpContext, SrtpProfile};

use crate::metrics::{Histogram, Kind, SeqTracker, Stamp, vp8_keyframe_size};
use crate::scenario::{LayerShape, MediaConfig, SIMULCAST_LAYERS};

/// Time allowed from the remote description to SRTP keys.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(2500);
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_millis(5);
/// What a participant sends a reflector to join (then every 2.5 s): the
/// magic, then the room as 4 bytes big-endian.
pub const REFLECTOR_MAGIC: &[u8; 8] = b"SALONRFL";
/// Payload types of our publish offer (and of mediad's subscribe offers).
pub const OPUS_PT: u8 = 111;
/// VP8 payload type.
pub const VP8_PT: u8 = 96;

/// Which of a participant's two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// We send (offerer).
    Publish,
    /// We receive (answerer).
    Subscribe,
}

/// A participant handed to a worker once the gateway has given it an id.
#[derive(Debug)]
pub struct NewParticipant {
    /// Index in join order.
    pub index: usize,
    /// Gateway participant id.
    pub id: u64,
    /// Room index.
    pub room: u32,
    /// Publishes video.
    pub video: bool,
    /// Plain RTP to a reflector: no ICE, DTLS or SRTP; both "transports"
    /// are the publish socket, which also receives.
    pub plain: bool,
    /// Publish transport socket (bound, any blocking mode).
    pub publish_socket: std::net::UdpSocket,
    /// Subscribe transport socket.
    pub subscribe_socket: std::net::UdpSocket,
    /// DTLS certificate (its fingerprint is in our SDP).
    pub cert: DtlsCertificate,
    /// Our ICE ufrag on the publish transport.
    pub publish_ufrag: String,
    /// Our ICE ufrag on the subscribe transport.
    pub subscribe_ufrag: String,
    /// Our ICE password on the publish transport (we answer the remote's
    /// connectivity checks with it).
    pub publish_pwd: String,
    /// Our ICE password on the subscribe transport.
    pub subscribe_pwd: String,
    /// Audio SSRC in the publish offer.
    pub audio_ssrc: u32,
    /// First video SSRC (simulcast layer `k` uses `video_ssrc + k`).
    pub video_ssrc: u32,
}

/// RTP header extension ids the remote accepted (from its description).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtIds {
    /// `ssrc-audio-level` (audio).
    pub audio_level: Option<u8>,
    /// `sdes:mid`.
    pub mid: Option<u8>,
    /// `sdes:rtp-stream-id` (video).
    pub rid: Option<u8>,
    /// `abs-send-time`.
    pub abs_send_time: Option<u8>,
    /// `transport-wide-cc-extensions-01`.
    pub transport_cc: Option<u8>,
}

/// What mediad's SDP told us about one transport.
#[derive(Debug, Clone)]
pub struct RemoteDescription {
    /// mediad's ufrag.
    pub ufrag: String,
    /// mediad's ICE password.
    pub pwd: String,
    /// mediad's host candidate.
    pub addr: SocketAddr,
    /// Negotiated header extension ids (publish only).
    pub ext: ExtIds,
    /// We are the DTLS client (the remote's `a=setup` is `passive` or
    /// `actpass`); otherwise the server.
    pub dtls_client: bool,
    /// We send connectivity checks (controlling, with USE-CANDIDATE);
    /// otherwise we only answer the remote's checks (controlled).
    pub send_checks: bool,
}

/// Control messages to a worker (control plane only).
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Take over a participant.
    Add(Box<NewParticipant>),
    /// mediad's description of a transport (answer or offer).
    Remote {
        /// Participant index.
        index: usize,
        /// Transport.
        which: Which,
        /// The description.
        remote: RemoteDescription,
    },
    /// The participant is gone (left or dropped): close its sockets and
    /// keep what it received for [`Worker::run`]'s result.
    Remove {
        /// Participant index.
        index: usize,
    },
    /// Stop sending media (receiving goes on).
    StopSending,
    /// Send media again after [`Command::StopSending`] (from now: the
    /// silence is not made up for).
    StartSending,
    /// Send `data` as it is from the transport's socket to its remote
    /// address (the abuse suite's STUN checks from a latched address).
    SendDatagram {
        /// Participant index.
        index: usize,
        /// Transport.
        which: Which,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Start a new gap window: every received stream's longest gap
    /// ([`StreamGap::max_gap_ns`]) counts again from now (the gap running
    /// at this moment counts in full when it ends).
    ResetGaps,
    /// Protect a plain RTCP packet (compound or reduced-size) with the
    /// transport's SRTCP context and send it `count` times, each with its
    /// own SRTCP index (the abuse suite's NACK storm). Dropped if the
    /// transport is not connected.
    SendRtcp {
        /// Participant index.
        index: usize,
        /// Transport.
        which: Which,
        /// The packet, unprotected.
        rtcp: Vec<u8>,
        /// How many times.
        count: u32,
    },
    /// Return the per-receiver details and end the thread.
    Shutdown,
}

/// What a worker tells the controller.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// ICE, DTLS and SRTP are up on a transport.
    Connected {
        /// Participant index.
        index: usize,
        /// Transport.
        which: Which,
    },
    /// A transport failed (timeout or DTLS error).
    Failed {
        /// Participant index.
        index: usize,
        /// Transport.
        which: Which,
        /// Why.
        reason: String,
    },
}

/// Cumulative counters of one worker (or summed over all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// SRTP packets sent.
    pub packets_out: u64,
    /// Bytes sent (SRTP, UDP payload).
    pub bytes_out: u64,
    /// SRTP packets received and authenticated.
    pub packets_in: u64,
    /// Bytes received (UDP payload).
    pub bytes_in: u64,
    /// Sends refused by the kernel (buffer full).
    pub send_errors: u64,
    /// Received packets that failed SRTP authentication or replay checks.
    pub srtp_errors: u64,
    /// Authenticated RTP packets without our stamp or with another payload type.
    pub other_packets: u64,
    /// PLI/FIR received on publish transports.
    pub keyframe_requests: u64,
    /// Packets expected (sum over received SSRCs).
    pub expected: u64,
    /// Packets lost (sum over received SSRCs).
    pub lost: u64,
    /// Media send ticks that were late by more than 100 ms (harness overload).
    pub late_ticks: u64,
}

impl Totals {
    /// Add `o` into `self`.
    pub fn add(&mut self, o: &Totals) {
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.send_errors += o.send_errors;
        self.srtp_errors += o.srtp_errors;
        self.other_packets += o.other_packets;
        self.keyframe_requests += o.keyframe_requests;
        self.expected += o.expected;
        self.lost += o.lost;
        self.late_ticks += o.late_ticks;
    }

    /// `self − earlier`.
    pub fn since(&self, e: &Totals) -> Totals {
        Totals {
            packets_out: self.packets_out.saturating_sub(e.packets_out),
            bytes_out: self.bytes_out.saturating_sub(e.bytes_out),
            packets_in: self.packets_in.saturating_sub(e.packets_in),
            bytes_in: self.bytes_in.saturating_sub(e.bytes_in),
            send_errors: self.send_errors.saturating_sub(e.send_errors),
            srtp_errors: self.srtp_errors.saturating_sub(e.srtp_errors),
            other_packets: self.other_packets.saturating_sub(e.other_packets),
            keyframe_requests: self.keyframe_requests.saturating_sub(e.keyframe_requests),
            expected: self.expected.saturating_sub(e.expected),
            lost: self.lost.saturating_sub(e.lost),
            late_ticks: self.late_ticks.saturating_sub(e.late_ticks),
        }
    }
}

/// What a worker publishes every 100 ms.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Counters.
    pub totals: Totals,
    /// Latency (µs) of every stamped packet received.
    pub latency: Histogram,
    /// Every stream every present participant receives (only from a
    /// worker made with [`Worker::track_streams`]: churn runs).
    pub streams: Vec<StreamSeen>,
    /// Every stream's longest gap between two packets since the last
    /// [`Command::ResetGaps`] (only from a worker made with
    /// [`Worker::track_gaps`]: the abuse suite).
    pub gaps: Vec<StreamGap>,
}

/// The longest silence of one received stream (the abuse suite's
/// bystander check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamGap {
    /// The receiver's index.
    pub index: usize,
    /// SSRC mediad used towards it.
    pub ssrc: u32,
    /// The sender's gateway id, from the payload's stamp.
    pub sender: u64,
    /// Audio or video.
    pub kind: Kind,
    /// Packets received.
    pub packets: u64,
    /// Last packet's arrival, ns since the run's epoch.
    pub last_ns: u64,
    /// Longest time between two consecutive packets, ns, since the last
    /// [`Command::ResetGaps`] (or the stream's first packet).
    pub max_gap_ns: u64,
}

/// One received stream, as the churn checks read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSeen {
    /// The receiver's index.
    pub index: usize,
    /// SSRC mediad used towards it.
    pub ssrc: u32,
    /// The sender's gateway id, from the payload's stamp.
    pub sender: u64,
    /// Packets received.
    pub packets: u64,
    /// First packet's arrival, ns since the run's epoch.
    pub first_ns: u64,
    /// Last packet's arrival, ns since the run's epoch.
    pub last_ns: u64,
}

/// What one participant received from one sender, at the end.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FromDetail {
    /// Sender's gateway id.
    pub sender: u64,
    /// Media kind.
    pub kind: Kind,
    /// SSRC mediad used towards us.
    pub ssrc: u32,
    /// Packets received.
    pub packets: u64,
    /// Packets expected from sequence numbers.
    pub expected: u64,
    /// Packets lost.
    pub lost: u64,
    /// Packets by the sender's simulcast layer: `[none, low, mid, high]`.
    pub layer_packets: [u64; 4],
    /// Frame size in the last key frame received (video).
    pub keyframe_size: Option<(u16, u16)>,
}

/// One participant at the end of the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReceiverDetail {
    /// Index in join order.
    pub index: usize,
    /// Gateway id.
    pub id: u64,
    /// Room index.
    pub room: u32,
    /// Published video.
    pub video: bool,
    /// Publish transport connected.
    pub publish_connected: bool,
    /// Subscribe transport connected.
    pub subscribe_connected: bool,
    /// Streams received.
    pub from: Vec<FromDetail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WaitRemote,
    Checking,
    Handshaking,
    Connected,
    Failed,
}

struct Transport {
    socket: mio::net::UdpSocket,
    local_ufrag: String,
    local_pwd: String,
    plain: bool,
    /// Join datagram for a reflector (plain only).
    hello: [u8; 12],
    send_checks: bool,
    /// Transport-wide sequence number (publish, when negotiated).
    twcc_seq: u16,
    remote: Option<SocketAddr>,
    username: String,
    remote_pwd: String,
    dtls: Dtls,
    phase: Phase,
    dtls_connected: bool,
    srtp_in: Option<SrtpContext>,
    srtp_out: Option<SrtpContext>,
    next_check: Instant,
    dtls_timer: Option<Instant>,
    deadline: Instant,
    txid: u64,
}

/// Outcome of feeding a transport.
enum Step {
    Nothing,
    Connected,
    Failed(String),
}

impl Transport {
    fn new(
        socket: mio::net::UdpSocket,
        ufrag: String,
        pwd: String,
        cert: DtlsCertificate,
        now: Instant,
    ) -> Self {
        let mut dtls = Dtls::new_12(Arc::new(dimpl::Config::default()), cert, now);
        dtls.set_active(true);
        Self {
            socket,
            local_ufrag: ufrag,
            local_pwd: pwd,
            plain: false,
            hello: [0; 12],
            send_checks: true,
            twcc_seq: 0,
            remote: None,
            username: String::new(),
            remote_pwd: String::new(),
            dtls,
            phase: Phase::WaitRemote,
            dtls_connected: false,
            srtp_in: None,
            srtp_out: None,
            next_check: now,
            dtls_timer: None,
            deadline: now + CONNECT_TIMEOUT,
            txid: 0,
        }
    }

    fn set_remote(&mut self, r: &RemoteDescription, now: Instant) {
        self.username = format!("{}:{}", r.ufrag, self.local_ufrag);
        self.remote_pwd = r.pwd.clone();
        self.remote = Some(r.addr);
        self.send_checks = r.send_checks;
        if self.phase == Phase::WaitRemote {
            self.dtls.set_active(r.dtls_client);
            self.phase = Phase::Checking;
            self.next_check = now;
            self.deadline = now + CONNECT_TIMEOUT;
        }
    }

    fn send(&self, data: &[u8], totals: &mut Totals) -> bool {
        let Some(dst) = self.remote else {
            return false;
        };
        match self.socket.send_to(data, dst) {
            Ok(_) => true,
            Err(_) => {
                totals.send_errors += 1;
                false
            }
        }
    }

    fn send_check(&mut self, buf: &mut [u8], totals: &mut Totals) {
        self.txid = self.txid.wrapping_add(1);
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&self.txid.to_be_bytes());
        id[8..].copy_from_slice(&(self.local_ufrag.len() as u32).to_be_bytes());
        if let Ok(n) = stun::write_binding_request(
            buf,
            &id,
            self.username.as_bytes(),
            0x6e00_1eff,
            0x5a1f_0000_0000_0001,
            true,
            self.remote_pwd.as_bytes(),
        ) {
            self.send(&buf[..n], totals);
        }
    }

    fn drain(&mut self, buf: &mut [u8], totals: &mut Totals) -> Step {
        let mut step = Step::Nothing;
        loop {
            match self.dtls.poll_output(buf) {
                Output::Packet(p) => {
                    if let Some(dst) = self.remote
                        && self.socket.send_to(p, dst).is_err()
                    {
                        totals.send_errors += 1;
                    }
                }
                Output::Timeout(t) => {
                    self.dtls_timer = Some(t);
                    break;
                }
                Output::Connected => self.dtls_connected = true,
                Output::KeyingMaterial(km, profile) => {
                    let profile = match profile {
                        dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::Aes128CmHmacSha1_80,
                        dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
                        dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
                        _ => return Step::Failed("unsupported SRTP profile".into()),
                    };
                    match salon_srtp::contexts_from_keying_material(
                        profile,
                        &km,
                        self.dtls.is_active(),
                    ) {
                        Ok((i, o)) => {
                            self.srtp_in = Some(i);
                            self.srtp_out = Some(o);
                        }
                        Err(e) => return Step::Failed(format!("SRTP keys: {e}")),
                    }
                }
                Output::BufferTooSmall { .. } => break,
                _ => {}
            }
        }
        if self.phase == Phase::Handshaking && self.dtls_connected && self.srtp_in.is_some() {
            self.phase = Phase::Connected;
            step = Step::Connected;
        }
        step
    }

    fn on_timer(&mut self, now: Instant, buf: &mut [u8], totals: &mut Totals) -> Step {
        match self.phase {
            Phase::WaitRemote | Phase::Failed => return Step::Nothing,
            Phase::Checking | Phase::Handshaking if now >= self.deadline => {
                let what = if self.phase == Phase::Checking {
                    "ICE"
                } else {
                    "DTLS"
                };
                self.phase = Phase::Failed;
                return Step::Failed(format!("{what} not connected in {CONNECT_TIMEOUT:?}"));
            }
            Phase::Checking => {
                if now >= self.next_check {
                    if self.send_checks {
                        self.send_check(buf, totals);
                    }
                    self.next_check = now + CHECK_INTERVAL;
                }
            }
            Phase::Handshaking => {
                if self.dtls_timer.is_some_and(|t| now >= t) {
                    self.dtls_timer = None;
                    if let Err(e) = self.dtls.handle_timeout(now) {
                        self.phase = Phase::Failed;
                        return Step::Failed(format!("DTLS: {e}"));
                    }
                    return self.drain(buf, totals);
                }
            }
            Phase::Connected => {
                if now >= self.next_check {
                    if self.plain {
                        self.send(&self.hello, totals);
                    } else if self.send_checks {
                        self.send_check(buf, totals);
                    }
                    self.next_check = now + KEEPALIVE_INTERVAL;
                }
            }
        }
        Step::Nothing
    }

    fn next_due(&self) -> Option<Instant> {
        match self.phase {
            Phase::WaitRemote | Phase::Failed => None,
            Phase::Checking => Some(self.next_check.min(self.deadline)),
            Phase::Handshaking => Some(self.dtls_timer.unwrap_or(self.deadline).min(self.deadline)),
            Phase::Connected => Some(self.next_check),
        }
    }

    fn on_stun(
        &mut self,
        data: &[u8],
        src: SocketAddr,
        now: Instant,
        buf: &mut [u8],
        totals: &mut Totals,
    ) -> Step {
        let Ok(m) = stun::StunMessage::parse(data) else {
            return Step::Nothing;
        };
        if m.is_binding_request() {
            // A full ICE agent (Janus) checks us too: answer with our own
            // password when the request is for us.
            let for_us = m
                .ice_username()
                .is_some_and(|(ours, _)| ours == self.local_ufrag.as_bytes());
            if !for_us || !m.verify_integrity(self.local_pwd.as_bytes()) {
                return Step::Nothing;
            }
            if let Ok(n) =
                stun::write_binding_success(buf, m.transaction_id(), src, self.local_pwd.as_bytes())
                && self.socket.send_to(&buf[..n], src).is_err()
            {
                totals.send_errors += 1;
            }
            if self.send_checks || self.phase != Phase::Checking {
                return Step::Nothing;
            }
            // Controlled: the remote's valid check is our go.
            self.remote = Some(src);
        } else if !m.is_binding_success() || !m.verify_integrity(self.remote_pwd.as_bytes()) {
            return Step::Nothing;
        }
        if self.phase == Phase::Checking {
            self.phase = Phase::Handshaking;
            self.next_check = now + KEEPALIVE_INTERVAL;
            if let Err(e) = self.dtls.handle_timeout(now) {
                self.phase = Phase::Failed;
                return Step::Failed(format!("DTLS: {e}"));
            }
            return self.drain(buf, totals);
        }
        Step::Nothing
    }

    fn on_dtls(&mut self, data: &[u8], now: Instant, buf: &mut [u8], totals: &mut Totals) -> Step {
        match self.phase {
            Phase::WaitRemote | Phase::Failed => return Step::Nothing,
            Phase::Checking => {
                // The peer's ICE finished before ours: its DTLS shows the
                // path works.
                self.phase = Phase::Handshaking;
                self.next_check = now + KEEPALIVE_INTERVAL;
            }
            Phase::Handshaking | Phase::Connected => {}
        }
        if let Err(e) = self.dtls.handle_packet(data) {
            if self.phase == Phase::Handshaking {
                self.phase = Phase::Failed;
                return Step::Failed(format!("DTLS: {e}"));
            }
            return Step::Nothing;
        }
        self.drain(buf, totals)
    }
}

struct RxStream {
    ssrc: u32,
    sender: u64,
    kind: Kind,
    seq: SeqTracker,
    /// Packets per sender layer (stamp): none, low, mid, high.
    layer_packets: [u64; 4],
    /// Size in the last key frame received.
    keyframe_size: Option<(u16, u16)>,
    /// First and last arrival (ns since the epoch).
    first_ns: u64,
    last_ns: u64,
    /// Longest inter-arrival gap since the last [`Command::ResetGaps`].
    max_gap_ns: u64,
}

/// One outgoing video stream (a simulcast layer, or the only one).
#[derive(Debug, Clone, Copy)]
struct VideoLayer {
    shape: LayerShape,
    ssrc: u32,
    seq: u16,
    picture_id: u16,
    tl0picidx: u8,
    /// 0 without simulcast, else 1..=3.
    stamp_layer: u8,
}

struct Participant {
    index: usize,
    id: u64,
    room: u32,
    video: bool,
    publish: Transport,
    subscribe: Transport,
    audio_ssrc: u32,
    audio_seq: u16,
    audio_ts: u32,
    video_ts: u32,
    layers: [VideoLayer; 3],
    n_layers: usize,
    ext: ExtIds,
    sending: bool,
    next_audio: Instant,
    next_frame: Instant,
    frame: u64,
    force_key: bool,
    rx: Vec<RxStream>,
}

/// One media worker: its participants and reusable buffers.
pub struct Worker {
    epoch: Instant,
    media: MediaConfig,
    frame_interval: Duration,
    keyframe_every: u64,
    /// By token (`slot * 2` publish, `+ 1` subscribe); `None` once removed.
    participants: Vec<Option<Participant>>,
    /// What removed participants received.
    finished: Vec<ReceiverDetail>,
    removed_expected: u64,
    removed_lost: u64,
    track_streams: bool,
    track_gaps: bool,
    by_index: HashMap<usize, usize>,
    sending: bool,
    rx_buf: Box<[u8; 2048]>,
    tx_buf: Box<[u8; 16384]>,
    totals: Totals,
    latency: Histogram,
    shared: Arc<Mutex<Snapshot>>,
    events: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
    next_due: Instant,
    next_snapshot: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("participants", &self.participants.len())
            .finish_non_exhaustive()
    }
}

fn spread(index: usize, period: Duration) -> Duration {
    let h = (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    let ns = period.as_nanos() as u64;
    Duration::from_nanos(if ns == 0 { 0 } else { h % ns })
}

impl Worker {
    /// A worker publishing snapshots into `shared` and events into `events`.
    pub fn new(
        epoch: Instant,
        media: MediaConfig,
        shared: Arc<Mutex<Snapshot>>,
        events: tokio::sync::mpsc::UnboundedSender<WorkerEvent>,
    ) -> Self {
        let now = Instant::now();
        let fps = media.video_fps.max(1);
        Self {
            epoch,
            frame_interval: Duration::from_nanos(1_000_000_000 / u64::from(fps)),
            keyframe_every: ((media.keyframe_interval_s * f64::from(fps)).round() as u64).max(1),
            media,
            participants: Vec::new(),
            finished: Vec::new(),
            removed_expected: 0,
            removed_lost: 0,
            track_streams: false,
            track_gaps: false,
            by_index: HashMap::new(),
            sending: true,
            rx_buf: Box::new([0; 2048]),
            tx_buf: Box::new([0; 16384]),
            totals: Totals::default(),
            latency: Histogram::new(),
            shared,
            events,
            next_due: now,
            next_snapshot: now,
        }
    }

    /// Publish every received stream in the snapshots ([`Snapshot::streams`]).
    pub fn track_streams(mut self) -> Self {
        self.track_streams = true;
        self
    }

    /// Publish every received stream's longest gap in the snapshots
    /// ([`Snapshot::gaps`]).
    pub fn track_gaps(mut self) -> Self {
        self.track_gaps = true;
        self
    }

    /// Run the loop until [`Command::Shutdown`] (or the sender is dropped);
    /// returns what every participant received.
    pub fn run(mut self, commands: Receiver<Command>) -> std::io::Result<Vec<ReceiverDetail>> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        loop {
            loop {
                match commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                        self.publish_snapshot();
                        return Ok(self.details());
                    }
                    Ok(c) => self.command(c, &poll)?,
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            let wait = self.next_due.saturating_duration_since(now).min(MAX_WAIT);
            if let Err(e) = poll.poll(&mut events, Some(wait))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            let now = Instant::now();
            for ev in events.iter() {
                self.readable(ev.token(), now);
            }
            if now >= self.next_due {
                self.sweep(now);
            }
            if now >= self.next_snapshot {
                self.publish_snapshot();
                self.next_snapshot = now + SNAPSHOT_INTERVAL;
            }
        }
    }

    fn command(&mut self, c: Command, poll: &Poll) -> std::io::Result<()> {
        let now = Instant::now();
        match c {
            Command::Add(p) => {
                let p = *p;
                let li = self.participants.len();
                let mut pub_sock = mio::net::UdpSocket::from_std(p.publish_socket);
                let mut sub_sock = mio::net::UdpSocket::from_std(p.subscribe_socket);
                poll.registry()
                    .register(&mut pub_sock, Token(li * 2), Interest::READABLE)?;
                poll.registry()
                    .register(&mut sub_sock, Token(li * 2 + 1), Interest::READABLE)?;
                let mut publish = Transport::new(
                    pub_sock,
                    p.publish_ufrag,
                    p.publish_pwd,
                    p.cert.clone(),
                    now,
                );
                let mut subscribe =
                    Transport::new(sub_sock, p.subscribe_ufrag, p.subscribe_pwd, p.cert, now);
                if p.plain {
                    publish.plain = true;
                    publish.hello[..8].copy_from_slice(REFLECTOR_MAGIC);
                    publish.hello[8..].copy_from_slice(&p.room.to_be_bytes());
                    subscribe.plain = true;
                    subscribe.phase = Phase::Connected;
                }
                let (layers, n_layers) = video_layers(&self.media, p.index, p.video_ssrc);
                self.participants.push(Some(Participant {
                    index: p.index,
                    id: p.id,
                    room: p.room,
                    video: p.video,
                    publish,
                    subscribe,
                    audio_ssrc: p.audio_ssrc,
                    audio_seq: (p.index as u16).wrapping_mul(7919),
                    audio_ts: 0,
                    video_ts: 0,
                    layers,
                    n_layers,
                    ext: ExtIds::default(),
                    sending: false,
                    next_audio: now,
                    next_frame: now,
                    frame: 0,
                    force_key: false,
                    rx: Vec::new(),
                }));
                self.by_index.insert(p.index, li);
            }
            Command::Remote {
                index,
                which,
                remote,
            } => {
                if let Some(&li) = self.by_index.get(&index)
                    && let Some(Some(p)) = self.participants.get_mut(li)
                {
                    match which {
                        Which::Publish if p.publish.plain => {
                            p.publish.remote = Some(remote.addr);
                            p.publish.phase = Phase::Connected;
                            p.publish.send(&p.publish.hello, &mut self.totals);
                            p.publish.next_check = now + KEEPALIVE_INTERVAL;
                            p.sending = true;
                            p.next_audio = now + spread(p.index, AUDIO_INTERVAL);
                            p.next_frame = now + spread(p.index, self.frame_interval);
                            let _ = self.events.send(WorkerEvent::Connected {
                                index,
                                which: Which::Publish,
                            });
                            let _ = self.events.send(WorkerEvent::Connected {
                                index,
                                which: Which::Subscribe,
                            });
                        }
                        Which::Publish => {
                            p.ext = remote.ext;
                            p.publish.set_remote(&remote, now);
                        }
                        Which::Subscribe => p.subscribe.set_remote(&remote, now),
                    }
                    self.next_due = now;
                }
            }
            Command::Remove { index } => {
                if let Some(li) = self.by_index.remove(&index)
                    && let Some(slot) = self.participants.get_mut(li)
                    && let Some(mut p) = slot.take()
                {
                    let _ = poll.registry().deregister(&mut p.publish.socket);
                    let _ = poll.registry().deregister(&mut p.subscribe.socket);
                    // Its loss stays in the totals' sums.
                    for s in &p.rx {
                        self.removed_expected += s.seq.expected();
                        self.removed_lost += s.seq.lost();
                    }
                    self.finished.push(detail(&p));
                }
            }
            Command::StopSending => self.sending = false,
            Command::StartSending => self.sending = true,
            Command::SendDatagram { index, which, data } => {
                if let Some(&li) = self.by_index.get(&index)
                    && let Some(Some(p)) = self.participants.get_mut(li)
                {
                    let t = match which {
                        Which::Publish => &p.publish,
                        Which::Subscribe => &p.subscribe,
                    };
                    t.send(&data, &mut self.totals);
                }
            }
            Command::ResetGaps => {
                for p in self.participants.iter_mut().flatten() {
                    for s in &mut p.rx {
                        s.max_gap_ns = 0;
                    }
                }
            }
            Command::SendRtcp {
                index,
                which,
                rtcp,
                count,
            } => {
                if let Some(&li) = self.by_index.get(&index)
                    && let Some(Some(p)) = self.participants.get_mut(li)
                {
                    let t = match which {
                        Which::Publish => &mut p.publish,
                        Which::Subscribe => &mut p.subscribe,
                    };
                    let n = rtcp.len();
                    for _ in 0..count {
                        let Some(buf) = self.tx_buf.get_mut(..n) else {
                            break;
                        };
                        buf.copy_from_slice(&rtcp);
                        let Some(ctx) = t.srtp_out.as_mut() else {
                            break;
                        };
                        let Ok(len) = ctx.protect_rtcp(&mut self.tx_buf[..], n) else {
                            break;
                        };
                        if t.send(&self.tx_buf[..len], &mut self.totals) {
                            self.totals.packets_out += 1;
                            self.totals.bytes_out += len as u64;
                        }
                    }
                }
            }
            Command::Shutdown => {}
        }
        Ok(())
    }

    fn report(&self, index: usize, which: Which, step: Step) {
        let ev = match step {
            Step::Nothing => return,
            Step::Connected => WorkerEvent::Connected { index, which },
            Step::Failed(reason) => WorkerEvent::Failed {
                index,
                which,
                reason,
            },
        };
        let _ = self.events.send(ev);
    }

    fn readable(&mut self, token: Token, now: Instant) {
        let li = token.0 / 2;
        let which = if token.0.is_multiple_of(2) {
            Which::Publish
        } else {
            Which::Subscribe
        };
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        loop {
            let Some(Some(p)) = self.participants.get_mut(li) else {
                return;
            };
            let t = match which {
                Which::Publish => &mut p.publish,
                Which::Subscribe => &mut p.subscribe,
            };
            let (n, src) = match t.socket.recv_from(&mut self.rx_buf[..]) {
                Ok(r) => r,
                Err(_) => return, // WouldBlock (or an ICMP error): done for now.
            };
            let data = &mut self.rx_buf[..n];
            let step = match classify(data) {
                PacketKind::Stun => {
                    t.on_stun(data, src, now, &mut self.tx_buf[..], &mut self.totals)
                }
                PacketKind::Dtls => t.on_dtls(data, now, &mut self.tx_buf[..], &mut self.totals),
                PacketKind::Rtp => {
                    receive_rtp(p, which, data, now_ns, &mut self.totals, &mut self.latency);
                    Step::Nothing
                }
                PacketKind::Rtcp => {
                    receive_rtcp(p, which, data, &mut self.totals);
                    Step::Nothing
                }
                PacketKind::Unknown => Step::Nothing,
            };
            if let Step::Connected = step
                && which == Which::Publish
                && let Some(Some(p)) = self.participants.get_mut(li)
            {
                p.sending = true;
                p.next_audio = now + spread(p.index, AUDIO_INTERVAL);
                p.next_frame = now + spread(p.index, self.frame_interval);
            }
            if !matches!(step, Step::Nothing) {
                self.next_due = now;
            }
            let index = self
                .participants
                .get(li)
                .and_then(Option::as_ref)
                .map_or(0, |p| p.index);
            self.report(index, which, step);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let mut next = now + MAX_WAIT;
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        for li in 0..self.participants.len() {
            let mut steps = [
                (Which::Publish, Step::Nothing),
                (Which::Subscribe, Step::Nothing),
            ];
            {
                let Some(p) = self.participants[li].as_mut() else {
                    continue;
                };
                steps[0].1 = p
                    .publish
                    .on_timer(now, &mut self.tx_buf[..], &mut self.totals);
                steps[1].1 = p
                    .subscribe
                    .on_timer(now, &mut self.tx_buf[..], &mut self.totals);
                if let Step::Connected = steps[0].1 {
                    p.sending = true;
                    p.next_audio = now + spread(p.index, AUDIO_INTERVAL);
                    p.next_frame = now + spread(p.index, self.frame_interval);
                }
                if self.sending && p.sending && p.publish.phase == Phase::Connected {
                    send_media(
                        p,
                        now,
                        now_ns,
                        &self.media,
                        self.frame_interval,
                        self.keyframe_every,
                        &mut self.tx_buf[..],
                        &mut self.totals,
                    );
                    next = next.min(p.next_audio);
                    if p.video {
                        next = next.min(p.next_frame);
                    }
                }
                for t in [&p.publish, &p.subscribe] {
                    if let Some(d) = t.next_due() {
                        next = next.min(d);
                    }
                }
            }
            let index = self.participants[li].as_ref().map_or(0, |p| p.index);
            for (which, step) in steps {
                self.report(index, which, step);
            }
        }
        self.next_due = next;
    }

    fn publish_snapshot(&mut self) {
        let (mut expected, mut lost) = (self.removed_expected, self.removed_lost);
        for p in self.participants.iter().flatten() {
            for s in &p.rx {
                expected += s.seq.expected();
                lost += s.seq.lost();
            }
        }
        self.totals.expected = expected;
        self.totals.lost = lost;
        if let Ok(mut s) = self.shared.lock() {
            s.totals = self.totals;
            s.latency.copy_from(&self.latency);
            if self.track_streams {
                s.streams.clear();
                for p in self.participants.iter().flatten() {
                    s.streams.extend(p.rx.iter().map(|r| StreamSeen {
                        index: p.index,
                        ssrc: r.ssrc,
                        sender: r.sender,
                        packets: r.seq.received(),
                        first_ns: r.first_ns,
                        last_ns: r.last_ns,
                    }));
                }
            }
            if self.track_gaps {
                s.gaps.clear();
                for p in self.participants.iter().flatten() {
                    s.gaps.extend(p.rx.iter().map(|r| StreamGap {
                        index: p.index,
                        ssrc: r.ssrc,
                        sender: r.sender,
                        kind: r.kind,
                        packets: r.seq.received(),
                        last_ns: r.last_ns,
                        max_gap_ns: r.max_gap_ns,
                    }));
                }
            }
        }
    }

    fn details(&self) -> Vec<ReceiverDetail> {
        let mut out = self.finished.clone();
        out.extend(self.participants.iter().flatten().map(detail));
        out
    }
}

fn detail(p: &Participant) -> ReceiverDetail {
    ReceiverDetail {
        index: p.index,
        id: p.id,
        room: p.room,
        video: p.video,
        publish_connected: p.publish.phase == Phase::Connected,
        subscribe_connected: p.subscribe.phase == Phase::Connected,
        from: p
            .rx
            .iter()
            .map(|s| FromDetail {
                sender: s.sender,
                kind: s.kind,
                ssrc: s.ssrc,
                packets: s.seq.received(),
                expected: s.seq.expected(),
                lost: s.seq.lost(),
                layer_packets: s.layer_packets,
                keyframe_size: s.keyframe_size,
            })
            .collect(),
    }
}

fn receive_rtp(
    p: &mut Participant,
    which: Which,
    data: &mut [u8],
    now_ns: u64,
    totals: &mut Totals,
    latency: &mut Histogram,
) {
    let wire = data.len() as u64;
    let t = match which {
        Which::Publish => &mut p.publish,
        Which::Subscribe => &mut p.subscribe,
    };
    let len = if t.plain {
        data.len()
    } else {
        let Some(ctx) = t.srtp_in.as_mut() else {
            return;
        };
        // Every packet is authenticated (and replay-checked) here.
        match ctx.unprotect_rtp(data) {
            Ok(len) => len,
            Err(_) => {
                totals.srtp_errors += 1;
                return;
            }
        }
    };
    let plain = t.plain;
    totals.packets_in += 1;
    totals.bytes_in += wire;
    let clear = &data[..len];
    let Ok(h) = RtpHeader::parse(clear) else {
        totals.other_packets += 1;
        return;
    };
    let receiving = which == Which::Subscribe || plain;
    if !receiving || (h.payload_type != OPUS_PT && h.payload_type != VP8_PT) {
        totals.other_packets += 1;
        return;
    }
    let payload = h.payload(clear);
    let Some(stamp) = Stamp::read(payload) else {
        totals.other_packets += 1;
        return;
    };
    latency.record(now_ns.saturating_sub(stamp.sent_ns) / 1000);
    let slot = match p.rx.iter().position(|s| s.ssrc == h.ssrc) {
        Some(i) => i,
        None => {
            p.rx.push(RxStream {
                ssrc: h.ssrc,
                sender: stamp.sender,
                kind: stamp.kind,
                seq: SeqTracker::default(),
                layer_packets: [0; 4],
                keyframe_size: None,
                first_ns: now_ns,
                last_ns: now_ns,
                max_gap_ns: 0,
            });
            p.rx.len() - 1
        }
    };
    if let Some(s) = p.rx.get_mut(slot) {
        s.seq.record(h.sequence);
        s.max_gap_ns = s.max_gap_ns.max(now_ns.saturating_sub(s.last_ns));
        s.last_ns = now_ns;
        if let Some(c) = s.layer_packets.get_mut(usize::from(stamp.layer)) {
            *c += 1;
        }
        if h.payload_type == VP8_PT
            && let Some(size) = vp8_keyframe_size(payload)
        {
            s.keyframe_size = Some(size);
        }
    }
}

fn receive_rtcp(p: &mut Participant, which: Which, data: &mut [u8], totals: &mut Totals) {
    let t = match which {
        Which::Publish => &mut p.publish,
        Which::Subscribe => &mut p.subscribe,
    };
    let Some(ctx) = t.srtp_in.as_mut() else {
        return;
    };
    let Ok(len) = ctx.unprotect_rtcp(data) else {
        totals.srtp_errors += 1;
        return;
    };
    if which == Which::Publish && has_keyframe_request(&data[..len]) {
        totals.keyframe_requests += 1;
        p.force_key = true;
    }
}

/// Whether a compound RTCP packet holds a PLI or a FIR (RFC 4585, 5104).
pub fn has_keyframe_request(rtcp: &[u8]) -> bool {
    let mut at = 0usize;
    while let Some(h) = rtcp.get(at..at + 4) {
        if h[0] >> 6 != 2 {
            return false;
        }
        let fmt = h[0] & 0x1f;
        if h[1] == 206 && (fmt == 1 || fmt == 4) {
            return true;
        }
        let words = usize::from(u16::from_be_bytes([h[2], h[3]]));
        at += (words + 1) * 4;
    }
    false
}

/// The video streams a participant sends: three simulcast layers, or one
/// shaped by the scenario's `[media]` numbers.
fn video_layers(media: &MediaConfig, index: usize, first_ssrc: u32) -> ([VideoLayer; 3], usize) {
    let seed = (index as u16).wrapping_mul(40_503);
    let mut layers = [VideoLayer {
        shape: SIMULCAST_LAYERS[0],
        ssrc: first_ssrc,
        seq: seed,
        picture_id: seed & 0x7fff,
        tl0picidx: 0,
        stamp_layer: 0,
    }; 3];
    if media.simulcast {
        for (k, l) in layers.iter_mut().enumerate() {
            l.shape = SIMULCAST_LAYERS[k];
            l.ssrc = first_ssrc.wrapping_add(k as u32);
            l.seq = seed.wrapping_add(k as u16 * 10_007);
            l.stamp_layer = k as u8 + 1;
        }
        (layers, 3)
    } else {
        layers[0].shape = LayerShape {
            rid: "",
            width: 640,
            height: 360,
            payload_bytes: media.video_payload_bytes,
            packets_per_frame: media.video_packets_per_frame,
            keyframe_packets: media.keyframe_packets,
        };
        (layers, 1)
    }
}

/// `abs-send-time` (6.18 fixed-point seconds, 24 bits) of `now_ns`.
pub fn abs_send_time(now_ns: u64) -> [u8; 3] {
    let v = ((u128::from(now_ns) << 18) / 1_000_000_000) as u32 & 0x00ff_ffff;
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// Write the VP8 payload descriptor (RFC 7741 §4.2: X=1, I with a 15-bit
/// picture id, L with TL0PICIDX, T with TID=0 and Y=1) and, on the first
/// packet of a frame, the VP8 frame header (P=0, start code and size on key
/// frames). Returns the bytes written.
pub fn write_vp8_head(
    out: &mut [u8; 16],
    first: bool,
    key: bool,
    picture_id: u16,
    tl0picidx: u8,
    size: (u16, u16),
) -> usize {
    out[0] = 0x80 | if first { 0x10 } else { 0 };
    out[1] = 0xe0;
    out[2] = 0x80 | ((picture_id >> 8) as u8 & 0x7f);
    out[3] = picture_id as u8;
    out[4] = tl0picidx;
    out[5] = 0x20;
    if !first {
        return 6;
    }
    if !key {
        out[6..9].copy_from_slice(&[0x51, 0x2a, 0x00]);
        return 9;
    }
    out[6..9].copy_from_slice(&[0x50, 0x2a, 0x00]);
    out[9..12].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    out[12..14].copy_from_slice(&(size.0 & 0x3fff).to_le_bytes());
    out[14..16].copy_from_slice(&(size.1 & 0x3fff).to_le_bytes());
    16
}

/// Header extension values of one packet, written into stack arrays.
struct ExtValues {
    mid: [u8; 1],
    rid: [u8; 1],
    level: [u8; 1],
    ast: [u8; 3],
    twcc: [u8; 2],
}

#[allow(clippy::too_many_arguments)]
fn send_media(
    p: &mut Participant,
    now: Instant,
    now_ns: u64,
    media: &MediaConfig,
    frame_interval: Duration,
    keyframe_every: u64,
    buf: &mut [u8],
    totals: &mut Totals,
) {
    if now.saturating_duration_since(p.next_audio) > Duration::from_millis(100) {
        totals.late_ticks += 1;
        p.next_audio = now;
    }
    while p.next_audio <= now {
        let fields = RtpFields {
            marker: false,
            payload_type: OPUS_PT,
            sequence: p.audio_seq,
            timestamp: p.audio_ts,
            ssrc: p.audio_ssrc,
        };
        let stamp = Stamp {
            sender: p.id,
            sent_ns: now_ns,
            kind: Kind::Audio,
            layer: 0,
        };
        send_one(
            p,
            &fields,
            (b'0', None),
            &[],
            media.audio_payload_bytes,
            &stamp,
            buf,
            totals,
        );
        p.audio_seq = p.audio_seq.wrapping_add(1);
        p.audio_ts = p.audio_ts.wrapping_add(960);
        p.next_audio += AUDIO_INTERVAL;
    }
    if !p.video {
        return;
    }
    if now.saturating_duration_since(p.next_frame) > Duration::from_millis(100) {
        totals.late_ticks += 1;
        p.next_frame = now;
    }
    while p.next_frame <= now {
        let key = p.force_key || p.frame.is_multiple_of(keyframe_every);
        p.force_key = false;
        for li in 0..p.n_layers {
            let l = p.layers[li];
            let packets = if key {
                l.shape.keyframe_packets
            } else {
                l.shape.packets_per_frame
            };
            let rid = l.shape.rid.as_bytes().first().copied();
            let mut seq = l.seq;
            for k in 0..packets {
                let fields = RtpFields {
                    marker: k + 1 == packets,
                    payload_type: VP8_PT,
                    sequence: seq,
                    timestamp: p.video_ts,
                    ssrc: l.ssrc,
                };
                let mut head = [0u8; 16];
                let hl = write_vp8_head(
                    &mut head,
                    k == 0,
                    key,
                    l.picture_id,
                    l.tl0picidx,
                    (l.shape.width, l.shape.height),
                );
                let stamp = Stamp {
                    sender: p.id,
                    sent_ns: now_ns,
                    kind: Kind::Video,
                    layer: l.stamp_layer,
                };
                send_one(
                    p,
                    &fields,
                    (b'1', rid),
                    &head[..hl],
                    l.shape.payload_bytes,
                    &stamp,
                    buf,
                    totals,
                );
                seq = seq.wrapping_add(1);
            }
            let l = &mut p.layers[li];
            l.seq = seq;
            l.picture_id = l.picture_id.wrapping_add(1) & 0x7fff;
            l.tl0picidx = l.tl0picidx.wrapping_add(1);
        }
        p.frame += 1;
        p.video_ts = p
            .video_ts
            .wrapping_add((90_000 / media.video_fps.max(1)).max(1));
        p.next_frame += frame_interval;
    }
}

/// Build, protect (unless plain) and send one packet. `ids` is the `mid`
/// character and the rid character of the stream.
#[allow(clippy::too_many_arguments)]
fn send_one(
    p: &mut Participant,
    fields: &RtpFields,
    ids: (u8, Option<u8>),
    head: &[u8],
    payload_len: usize,
    stamp: &Stamp,
    buf: &mut [u8],
    totals: &mut Totals,
) {
    let audio = fields.payload_type == OPUS_PT;
    let v = ExtValues {
        mid: [ids.0],
        rid: [ids.1.unwrap_or(b'-')],
        level: [0x80 | 30],
        ast: abs_send_time(stamp.sent_ns),
        twcc: p.publish.twcc_seq.to_be_bytes(),
    };
    let mut exts: [(u8, &[u8]); 5] = [(0, &[]); 5];
    let mut n = 0;
    let e = p.ext;
    for (id, data) in [
        (e.mid, &v.mid[..]),
        (e.rid.filter(|_| ids.1.is_some()), &v.rid[..]),
        (e.audio_level.filter(|_| audio), &v.level[..]),
        (e.abs_send_time, &v.ast[..]),
        (e.transport_cc, &v.twcc[..]),
    ] {
        if let Some(id) = id
            && !p.publish.plain
        {
            exts[n] = (id, data);
            n += 1;
        }
    }
    if e.transport_cc.is_some() {
        p.publish.twcc_seq = p.publish.twcc_seq.wrapping_add(1);
    }
    let Ok(h) = write_header(buf, fields, &exts[..n]) else {
        return;
    };
    let Some(payload) = buf.get_mut(h..h + payload_len) else {
        return;
    };
    let hl = head.len().min(payload_len);
    payload[..hl].copy_from_slice(&head[..hl]);
    payload[hl..].fill(0);
    stamp.write(payload);
    let n = if p.publish.plain {
        h + payload_len
    } else {
        let Some(ctx) = p.publish.srtp_out.as_mut() else {
            return;
        };
        let Ok(n) = ctx.protect_rtp(buf, h + payload_len) else {
            return;
        };
        n
    };
    if p.publish.send(&buf[..n], totals) {
        totals.packets_out += 1;
        totals.bytes_out += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptor_round_trip_and_abs_send_time() {
        let mut h = [0u8; 16];
        let n = write_vp8_head(&mut h, true, true, 0x1234, 7, (1280, 720));
        assert_eq!(n, 16);
        assert_eq!(h[0], 0x90, "X and S");
        assert_eq!(
            &h[2..6],
            &[0x92, 0x34, 7, 0x20],
            "M-bit picture id, TL0PICIDX, Y"
        );
        assert_eq!(vp8_keyframe_size(&h[..n]), Some((1280, 720)));
        let n = write_vp8_head(&mut h, true, false, 1, 1, (320, 180));
        assert_eq!(vp8_keyframe_size(&h[..n]), None, "delta frame");
        let n = write_vp8_head(&mut h, false, true, 1, 1, (320, 180));
        assert_eq!(n, 6);
        assert_eq!(vp8_keyframe_size(&h[..n]), None, "not the first packet");
        assert_eq!(abs_send_time(1_000_000_000), [0x04, 0x00, 0x00]);
        assert_eq!(abs_send_time(64_000_000_000), [0, 0, 0], "wraps every 64 s");
        let layers = video_layers(&MediaConfig::default(), 3, 100).0;
        assert_eq!(layers.map(|l| l.ssrc), [100, 101, 102]);
        assert_eq!(layers.map(|l| l.stamp_layer), [1, 2, 3]);
    }

    #[test]
    fn keyframe_requests_in_compound_rtcp() {
        // RR (empty) then PLI.
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 1];
        let pli = [0x81u8, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        let mut c = rr.to_vec();
        c.extend_from_slice(&pli);
        assert!(has_keyframe_request(&c));
        assert!(!has_keyframe_request(&rr));
        // Mutation loop: never panics.
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut m = c.clone();
            let i = (x % m.len() as u64) as usize;
            m[i] = (x >> 8) as u8;
            let len = ((x >> 20) % (m.len() as u64 + 1)) as usize;
            let _ = has_keyframe_request(&m[..len]);
        }
    }
}
