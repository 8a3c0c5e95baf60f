//! mediad for real: worker threads, UDP sockets and the io drivers (both
//! backends), with simulated browsers over loopback. Two participants
//! connect and exchange media; a flood of malformed datagrams hits the live
//! call from a stranger and from a participant's own address; everything is
//! dropped and counted and the media keeps flowing.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{PeerConn, publish_offer, subscribe_answer};
use salon_mediad::{Command, Event, EventQueue, Mediad, MediadConfig, ParticipantId, RoomId};

struct LiveBrowser {
    id: ParticipantId,
    publish: PeerConn,
    subscribe: PeerConn,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    audio_ssrc: u32,
    video_ssrc: u32,
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

impl LiveBrowser {
    fn new(n: u64) -> Self {
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let (pub_sock, sub_sock) = (socket(), socket());
        let now = Instant::now();
        Self {
            id: ParticipantId(n),
            publish: PeerConn::new(
                pub_sock.local_addr().unwrap(),
                &format!("{n}p"),
                cert.clone(),
                now,
            ),
            subscribe: PeerConn::new(sub_sock.local_addr().unwrap(), &format!("{n}s"), cert, now),
            pub_sock,
            sub_sock,
            audio_ssrc: 1000 * n as u32,
            video_ssrc: 1000 * n as u32 + 10,
        }
    }

    /// Send what is queued, read what arrived, run timers.
    fn pump(&mut self, server: SocketAddr) {
        let now = Instant::now();
        for (conn, sock) in [
            (&mut self.publish, &self.pub_sock),
            (&mut self.subscribe, &self.sub_sock),
        ] {
            for d in conn.outbox.drain(..) {
                let _ = sock.send_to(&d, server);
            }
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                conn.handle(&mut buf[..n], now);
            }
            conn.handle_timeout(now);
        }
    }
}

fn handle_events(mediad: &Mediad, events: &EventQueue, browsers: &mut [LiveBrowser]) {
    while let Some(e) = events.try_recv() {
        match e {
            Event::PublishAnswer {
                participant, sdp, ..
            } => {
                let b = browsers.iter_mut().find(|b| b.id == participant).unwrap();
                b.publish.set_remote(&sdp);
                b.publish.send_check();
            }
            Event::SubscribeOffer { participant, sdp } => {
                let b = browsers.iter_mut().find(|b| b.id == participant).unwrap();
                let first = b.subscribe.remote_ufrag.is_empty();
                b.subscribe.set_remote(&sdp);
                if first {
                    b.subscribe.send_check();
                }
                mediad.send(Command::SubscribeAnswer {
                    participant,
                    request: salon_mediad::RequestId::default(),
                    sdp: subscribe_answer(&b.subscribe, &sdp),
                });
            }
            Event::Error { error, .. } => panic!("mediad error: {error}"),
            _ => {}
        }
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn live_call_survives_a_flood(backend: &str) {
    let (mediad, events) = Mediad::start(MediadConfig {
        first_port: 0,
        io_backend: backend.parse().unwrap(),
        ..MediadConfig::default()
    })
    .unwrap();
    let server: SocketAddr = format!("127.0.0.1:{}", mediad.ports()[0]).parse().unwrap();
    let mut browsers = vec![LiveBrowser::new(1), LiveBrowser::new(2)];
    for b in &browsers {
        mediad.send(Command::Join {
            room: RoomId("Salon-Live".into()),
            participant: b.id,
        });
        mediad.send(Command::PublishOffer {
            participant: b.id,
            request: salon_mediad::RequestId::default(),
            sdp: publish_offer(&b.publish, b.audio_ssrc, b.video_ssrc),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !browsers
        .iter()
        .all(|b| b.publish.connected && b.subscribe.connected)
    {
        assert!(Instant::now() < deadline, "transports connect within 15 s");
        handle_events(&mediad, &events, &mut browsers);
        for b in &mut browsers {
            b.pump(server);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut seq = 0u16;
    let mut send_round = |browsers: &mut Vec<LiveBrowser>, rounds: u16| {
        for _ in 0..rounds {
            seq += 1;
            for b in browsers.iter_mut() {
                if b.publish.srtp_out.is_some() {
                    b.publish
                        .send_rtp(111, seq, u32::from(seq) * 960, b.audio_ssrc, &[], b"opus");
                    let vp8 = [
                        0x10u8,
                        if seq.is_multiple_of(2) { 0x00 } else { 0x01 },
                        0x42,
                    ];
                    b.publish
                        .send_rtp(96, seq, u32::from(seq) * 3000, b.video_ssrc, &[], &vp8);
                }
            }
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                handle_events(&mediad, &events, browsers);
                for b in browsers.iter_mut() {
                    b.pump(server);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    send_round(&mut browsers, 40);
    let before: Vec<usize> = browsers.iter().map(|b| b.subscribe.rtp_in.len()).collect();
    assert!(
        before.iter().all(|&n| n >= 40),
        "media flows before the flood: {before:?}"
    );

    // The flood: from a stranger, and from a participant's own (latched)
    // address, on the live port.
    let stranger = socket();
    let m0 = mediad.metrics_text();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut sent = 0u64;
    for i in 0..3000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 300) as usize;
        let first = [0u8, 22, 0x80, 0x81, 0xff][(i % 5) as usize];
        let mut d: Vec<u8> = (0..len.max(2)).map(|j| (x >> (j % 56)) as u8).collect();
        d[0] = first;
        if first == 0x81 {
            d[1] = 200;
        }
        let sock = if i % 2 == 0 {
            &stranger
        } else {
            &browsers[0].pub_sock
        };
        if sock.send_to(&d, server).is_ok() {
            sent += 1;
        }
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    send_round(&mut browsers, 40);
    let m1 = mediad.metrics_text();
    let delta = |n: &str| metric(&m1, n) - metric(&m0, n);
    let dropped = delta("mediad_drop_stun_malformed_total")
        + delta("mediad_drop_stun_auth_total")
        + delta("mediad_drop_unlatched_total")
        + delta("mediad_drop_srtp_auth_total")
        + delta("mediad_drop_unknown_kind_total")
        + delta("mediad_drop_not_connected_total")
        + delta("mediad_io_rx_truncated_total");
    // Loopback may drop a few under load; nearly all arrive and every one
    // that arrives is dropped and counted.
    assert!(
        dropped >= sent * 9 / 10,
        "{dropped} of {sent} malformed datagrams counted"
    );
    assert!(delta("mediad_drop_unlatched_total") > 0);
    assert!(delta("mediad_drop_srtp_auth_total") > 0);
    for (b, n0) in browsers.iter().zip(&before) {
        let n1 = b.subscribe.rtp_in.len();
        assert!(
            n1 >= n0 + 60,
            "media keeps flowing after the flood: {n0} -> {n1}"
        );
    }
    for b in &browsers {
        mediad.send(Command::Leave { participant: b.id });
    }
    mediad.shutdown();
}

#[test]
fn live_call_survives_a_flood_epoll() {
    live_call_survives_a_flood("epoll");
}

#[test]
fn live_call_survives_a_flood_uring() {
    if let Err(e) = salon_io::probe_uring() {
        eprintln!("io_uring unavailable here ({e}); the epoll variant covers this machine");
        return;
    }
    live_call_survives_a_flood("uring");
}
