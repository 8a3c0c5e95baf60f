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

use crate::metrics::{Histogram, Kind, SeqTracker, Stamp};
use crate::scenario::MediaConfig;

/// Time allowed from the remote description to SRTP keys.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CHECK_INTERVAL: Duration = Duration::from_millis(200);
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(2500);
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_millis(5);
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
    /// Audio SSRC in the publish offer.
    pub audio_ssrc: u32,
    /// Video SSRC in the publish offer.
    pub video_ssrc: u32,
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
    /// Negotiated `ssrc-audio-level` extension id (publish only).
    pub audio_level_ext: Option<u8>,
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
    /// Stop sending media (receiving goes on).
    StopSending,
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
        cert: DtlsCertificate,
        now: Instant,
    ) -> Self {
        let mut dtls = Dtls::new_12(Arc::new(dimpl::Config::default()), cert, now);
        dtls.set_active(true);
        Self {
            socket,
            local_ufrag: ufrag,
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
        if self.phase == Phase::WaitRemote {
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
                    match salon_srtp::contexts_from_keying_material(profile, &km, true) {
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
                    self.send_check(buf, totals);
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
                    self.send_check(buf, totals);
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

    fn on_stun(&mut self, data: &[u8], now: Instant, buf: &mut [u8], totals: &mut Totals) -> Step {
        let Ok(m) = stun::StunMessage::parse(data) else {
            return Step::Nothing;
        };
        if !m.is_binding_success() || !m.verify_integrity(self.remote_pwd.as_bytes()) {
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

    fn on_dtls(&mut self, data: &[u8], buf: &mut [u8], totals: &mut Totals) -> Step {
        if matches!(
            self.phase,
            Phase::WaitRemote | Phase::Failed | Phase::Checking
        ) {
            return Step::Nothing;
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
}

struct Participant {
    index: usize,
    id: u64,
    room: u32,
    video: bool,
    publish: Transport,
    subscribe: Transport,
    audio_ssrc: u32,
    video_ssrc: u32,
    audio_seq: u16,
    video_seq: u16,
    audio_ts: u32,
    video_ts: u32,
    level_ext: Option<u8>,
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
    participants: Vec<Participant>,
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
                self.participants.push(Participant {
                    index: p.index,
                    id: p.id,
                    room: p.room,
                    video: p.video,
                    publish: Transport::new(pub_sock, p.publish_ufrag, p.cert.clone(), now),
                    subscribe: Transport::new(sub_sock, p.subscribe_ufrag, p.cert, now),
                    audio_ssrc: p.audio_ssrc,
                    video_ssrc: p.video_ssrc,
                    audio_seq: (p.index as u16).wrapping_mul(7919),
                    video_seq: (p.index as u16).wrapping_mul(104_729u32 as u16),
                    audio_ts: 0,
                    video_ts: 0,
                    level_ext: None,
                    sending: false,
                    next_audio: now,
                    next_frame: now,
                    frame: 0,
                    force_key: false,
                    rx: Vec::new(),
                });
                self.by_index.insert(p.index, li);
            }
            Command::Remote {
                index,
                which,
                remote,
            } => {
                if let Some(&li) = self.by_index.get(&index)
                    && let Some(p) = self.participants.get_mut(li)
                {
                    match which {
                        Which::Publish => {
                            p.level_ext = remote.audio_level_ext;
                            p.publish.set_remote(&remote, now);
                        }
                        Which::Subscribe => p.subscribe.set_remote(&remote, now),
                    }
                    self.next_due = now;
                }
            }
            Command::StopSending => self.sending = false,
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
            let Some(p) = self.participants.get_mut(li) else {
                return;
            };
            let t = match which {
                Which::Publish => &mut p.publish,
                Which::Subscribe => &mut p.subscribe,
            };
            let n = match t.socket.recv_from(&mut self.rx_buf[..]) {
                Ok((n, _)) => n,
                Err(_) => return, // WouldBlock (or an ICMP error): done for now.
            };
            let data = &mut self.rx_buf[..n];
            let step = match classify(data) {
                PacketKind::Stun => t.on_stun(data, now, &mut self.tx_buf[..], &mut self.totals),
                PacketKind::Dtls => t.on_dtls(data, &mut self.tx_buf[..], &mut self.totals),
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
                && let Some(p) = self.participants.get_mut(li)
            {
                p.sending = true;
                p.next_audio = now + spread(p.index, AUDIO_INTERVAL);
                p.next_frame = now + spread(p.index, self.frame_interval);
            }
            if !matches!(step, Step::Nothing) {
                self.next_due = now;
            }
            let index = self.participants.get(li).map_or(0, |p| p.index);
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
                let p = &mut self.participants[li];
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
            let index = self.participants[li].index;
            for (which, step) in steps {
                self.report(index, which, step);
            }
        }
        self.next_due = next;
    }

    fn publish_snapshot(&mut self) {
        let (mut expected, mut lost) = (0, 0);
        for p in &self.participants {
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
        }
    }

    fn details(&self) -> Vec<ReceiverDetail> {
        self.participants
            .iter()
            .map(|p| ReceiverDetail {
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
                    })
                    .collect(),
            })
            .collect()
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
    let Some(ctx) = t.srtp_in.as_mut() else {
        return;
    };
    // Every packet is authenticated (and replay-checked) here.
    let Ok(len) = ctx.unprotect_rtp(data) else {
        totals.srtp_errors += 1;
        return;
    };
    totals.packets_in += 1;
    totals.bytes_in += wire;
    let plain = &data[..len];
    let Ok(h) = RtpHeader::parse(plain) else {
        totals.other_packets += 1;
        return;
    };
    if which != Which::Subscribe || (h.payload_type != OPUS_PT && h.payload_type != VP8_PT) {
        totals.other_packets += 1;
        return;
    }
    let Some(stamp) = Stamp::read(h.payload(plain)) else {
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
            });
            p.rx.len() - 1
        }
    };
    if let Some(s) = p.rx.get_mut(slot) {
        s.seq.record(h.sequence);
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
        let level = [0x80u8 | 30];
        let one;
        let exts: &[(u8, &[u8])] = match p.level_ext {
            Some(id) => {
                one = [(id, &level[..])];
                &one
            }
            None => &[],
        };
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
        };
        send_one(
            p,
            &fields,
            exts,
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
        let packets = if key {
            media.keyframe_packets
        } else {
            media.video_packets_per_frame
        };
        for k in 0..packets {
            let fields = RtpFields {
                marker: k + 1 == packets,
                payload_type: VP8_PT,
                sequence: p.video_seq,
                timestamp: p.video_ts,
                ssrc: p.video_ssrc,
            };
            // VP8 payload descriptor (RFC 7741): S=1 PID=0 on the first
            // packet of a frame, then the VP8 header (P=0 on key frames,
            // with start code and a 640x360 size).
            let key_head = [
                0x10u8, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
            ];
            let delta_head = [0x10u8, 0x51, 0x2a, 0x00];
            let head: &[u8] = match (k, key) {
                (0, true) => &key_head,
                (0, false) => &delta_head,
                _ => &[0x00],
            };
            let stamp = Stamp {
                sender: p.id,
                sent_ns: now_ns,
                kind: Kind::Video,
            };
            send_one(
                p,
                &fields,
                &[],
                head,
                media.video_payload_bytes,
                &stamp,
                buf,
                totals,
            );
            p.video_seq = p.video_seq.wrapping_add(1);
        }
        p.frame += 1;
        p.video_ts = p
            .video_ts
            .wrapping_add((90_000 / media.video_fps.max(1)).max(1));
        p.next_frame += frame_interval;
    }
}

#[allow(clippy::too_many_arguments)]
fn send_one(
    p: &mut Participant,
    fields: &RtpFields,
    exts: &[(u8, &[u8])],
    head: &[u8],
    payload_len: usize,
    stamp: &Stamp,
    buf: &mut [u8],
    totals: &mut Totals,
) {
    let Ok(h) = write_header(buf, fields, exts) else {
        return;
    };
    let Some(payload) = buf.get_mut(h..h + payload_len) else {
        return;
    };
    let hl = head.len().min(payload_len);
    payload[..hl].copy_from_slice(&head[..hl]);
    payload[hl..].fill(0);
    stamp.write(payload);
    let Some(ctx) = p.publish.srtp_out.as_mut() else {
        return;
    };
    let Ok(n) = ctx.protect_rtp(buf, h + payload_len) else {
        return;
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
