//! What the fuzz targets in `mediad/fuzz/` run on one input, shared with
//! `tests/fuzz_regressions.rs` so that the regression corpus replays exactly
//! the fuzzed code on stable. Not part of the API.
//!
//! - [`control_wire`]: the control interface's wire decoding.
//! - [`worker_datagram`]: one datagram into a [`Worker`] from an unknown
//!   address or from the latched address of a transport that passed ICE but
//!   has not started DTLS.
//! - [`tcp_deframe`]: the RFC 4571 deframer of ICE-TCP connections
//!   (`salon_io::tcp::Deframer`), fed a stream in arbitrary pieces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dimpl::DtlsCertificate;
use salon_io::TxQueue;
use salon_proto::stun;

use crate::control::wire;
use crate::core::{Worker, WorkerConfig};
use crate::metrics::Metrics;
use crate::{Command, Event, ParticipantId, RequestId, RoomId};

/// The `control_wire` target: decoding a command or an event never panics,
/// and whatever decodes encodes to a text that decodes to the same value.
pub fn control_wire(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cmd) = wire::decode_command(text) {
        let again = wire::encode_command(&cmd);
        match wire::decode_command(&again) {
            Ok(back) => assert_eq!(back, cmd, "command round trip via {again}"),
            Err(e) => panic!("re-encoded command does not decode: {e} ({again})"),
        }
    }
    if let Ok(event) = wire::decode_event(text) {
        let again = wire::encode_event(&event);
        match wire::decode_event(&again) {
            Ok(back) => assert_eq!(back, event, "event round trip via {again}"),
            Err(e) => panic!("re-encoded event does not decode: {e} ({again})"),
        }
    }
}

/// The browser's address whose STUN check latched the publish transport.
pub const LATCHED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000);
/// An address no transport knows.
pub const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 5555);

const CLIENT_UFRAG: &str = "fuzzufrag";
const CLIENT_PWD: &str = "fuzzpasswordfuzzpassword";

/// The worker's certificate, made once per process (key generation is the
/// one slow step of the setup).
fn certificate() -> &'static (DtlsCertificate, Vec<u8>) {
    static CERT: OnceLock<(DtlsCertificate, Vec<u8>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let cert = dimpl::certificate::generate_self_signed_certificate()
            .expect("self-signed certificate");
        let fp = crate::core::transport::digest("sha-256", &cert.certificate)
            .expect("sha-256 fingerprint");
        (cert, fp)
    })
}

fn publish_offer() -> String {
    let fp = [0xabu8; 32]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let media = |kind: &str, mid: u8, pt: &str, rtpmap: &str, ssrc: u32| {
        format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{CLIENT_UFRAG}\r\n\
a=ice-pwd:{CLIENT_PWD}\r\na=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:{mid}\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendonly\r\na=msid:stream {kind}\r\n\
a=rtcp-mux\r\na=rtpmap:{pt} {rtpmap}\r\na=ssrc:{ssrc} cname:c\r\n"
        )
    };
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n{}{}",
        media("audio", 0, "111", "opus/48000/2", 1000),
        media("video", 1, "96", "VP8/90000", 1010),
    )
}

/// A worker with one participant whose publish transport passed ICE from
/// [`LATCHED`] (a binding request with USE-CANDIDATE and
/// MESSAGE-INTEGRITY) and waits for the browser's DTLS ClientHello.
#[derive(Debug)]
pub struct LatchedWorker {
    /// The worker.
    pub worker: Worker,
    /// Its transmit queue, empty.
    pub tx: TxQueue,
    /// The worker's virtual clock.
    pub now: Instant,
}

impl LatchedWorker {
    /// Build it (a few hundred microseconds once the certificate exists).
    pub fn new() -> Self {
        let (cert, fingerprint) = certificate();
        let now = Instant::now();
        let cfg = WorkerConfig {
            announce_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
            port: 10000,
            relay_ips: Vec::new(),
            tcp_port: Some(10000),
            cert: cert.clone(),
            fingerprint: fingerprint.clone(),
            dtls: Arc::new(dimpl::Config::default()),
            seed: Some(1),
            limits: crate::WorkerLimits::default(),
        };
        let mut worker = Worker::new(cfg, Arc::new(Metrics::default()), now);
        let mut tx = TxQueue::with_capacity(16);
        let participant = ParticipantId(1);
        worker.handle_command(
            Command::Join {
                room: RoomId("fuzz".to_owned()),
                participant,
            },
            now,
            &mut tx,
        );
        worker.handle_command(
            Command::PublishOffer {
                participant,
                request: RequestId(1),
                sdp: publish_offer(),
            },
            now,
            &mut tx,
        );
        let mut answer = None;
        while let Some(e) = worker.poll_event() {
            if let Event::PublishAnswer { sdp, .. } = e {
                answer = Some(sdp);
            }
        }
        let answer = salon_sdp::parse(&answer.expect("a publish answer")).expect("answer parses");
        let mut buf = [0u8; 512];
        let username = format!("{}:{CLIENT_UFRAG}", answer.ice_ufrag);
        let n = stun::write_binding_request(
            &mut buf,
            &[7; 12],
            username.as_bytes(),
            0x6e00_1eff,
            0x1234_5678_9abc_def0,
            true,
            answer.ice_pwd.as_str().as_bytes(),
        )
        .expect("binding request");
        let check = buf.get_mut(..n).expect("written");
        worker.handle_datagram(LATCHED, check, now, &mut tx);
        assert_eq!(tx.len(), 1, "the binding request is answered");
        tx.drain(|_| {});
        Self { worker, tx, now }
    }
}

impl Default for LatchedWorker {
    fn default() -> Self {
        Self::new()
    }
}

/// The `worker_datagram` target. `data[0]` bit 0 picks the source (0: an
/// unknown address, 1: the latched one), bit 1 runs the worker's timers one
/// second later; the rest is one datagram. A fresh [`LatchedWorker`] per
/// input, so that every input replays alone. Nothing may ever be sent to
/// the unknown address, and only to the latched one otherwise.
pub fn worker_datagram(data: &[u8]) {
    let Some((&choice, datagram)) = data.split_first() else {
        return;
    };
    let mut w = LatchedWorker::new();
    let src = if choice & 1 == 0 { STRANGER } else { LATCHED };
    let mut d = datagram.to_vec();
    w.worker.handle_datagram(src, &mut d, w.now, &mut w.tx);
    if choice & 2 != 0 {
        let later = w.now + Duration::from_secs(1);
        w.worker.handle_timeout(later, &mut w.tx);
    }
    while w.worker.poll_event().is_some() {}
    w.tx.drain(|t| {
        assert_eq!(
            t.dst, LATCHED,
            "a datagram from {src} sent one to {}",
            t.dst
        );
    });
}

/// The `tcp_deframe` target: byte 0 seeds how the rest, a TCP byte
/// stream, is cut into reads; fed to a [`salon_io::tcp::Deframer`] read by
/// read, it must give exactly the frames (and the error, if any) of a
/// plain sequential reading of the whole stream, never panic, and take
/// every byte offered while it holds no complete frame.
pub fn tcp_deframe(data: &[u8]) {
    use salon_io::tcp::{Deframer, FrameError, MAX_FRAME};
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    // The reference: the whole stream at once.
    let mut want: Vec<&[u8]> = Vec::new();
    let mut want_err = None;
    let mut i = 0;
    while let Some(h) = stream.get(i..i + 2) {
        let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
        if len > MAX_FRAME {
            want_err = Some(FrameError::TooLong(len));
            break;
        }
        if len == 0 {
            want_err = Some(FrameError::Empty);
            break;
        }
        let Some(f) = stream.get(i + 2..i + 2 + len) else {
            break;
        };
        want.push(f);
        i += 2 + len;
    }
    // The deframer, read by read.
    let mut d = Deframer::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut got_err = None;
    let mut x = u64::from(seed) | 0x100;
    let mut at = 0;
    'reads: while at < stream.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let end = (at + 1 + (x % 3100) as usize).min(stream.len());
        let took = d.push(&stream[at..end]);
        assert!(took > 0, "a deframer holding no complete frame takes bytes");
        at += took;
        loop {
            match d.next_frame() {
                Ok(Some(f)) => got.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    got_err = Some(e);
                    break 'reads;
                }
            }
        }
    }
    assert_eq!(got_err, want_err);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.as_slice(), *w);
    }
}
