//! ICE-TCP in the worker, in virtual time: a browser whose transports are
//! TCP connections (the driver names each by a stream address,
//! `salon_io::stream_addr`) meets one on UDP. The SDP offers the passive
//! TCP candidate after the UDP one; checks over TCP latch like UDP ones
//! (answered with the peer's real address as XOR-MAPPED-ADDRESS); DTLS and
//! SRTP flow both ways; the counters tell the protocols apart; the
//! connections are closed when their transports go or lose consent.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Net;
use salon_mediad::{Command, Event};
use salon_proto::stun;

/// Browser `i`'s two transports over TCP: connections from its real
/// addresses, each under its stream address.
fn over_tcp(b: &mut common::Browser, slot: u16) {
    for (k, c) in [&mut b.publish, &mut b.subscribe].into_iter().enumerate() {
        c.addr = salon_io::stream_addr(slot + k as u16, 1, c.addr);
    }
}

fn answers(net: &Net) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|e| match e {
            Event::PublishAnswer { sdp, .. } | Event::SubscribeOffer { sdp, .. } => {
                Some(sdp.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_browser_over_tcp_and_one_over_udp_exchange_media() {
    let mut net = Net::new(61);
    let a = net.join_with("Pont", |b| over_tcp(b, 7));
    let b = net.join("Pont");
    net.settle(Duration::from_millis(500));

    for sdp in answers(&net) {
        let udp = sdp.find("a=candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host\r\n");
        let tcp =
            sdp.find("a=candidate:2 1 tcp 1520435199 127.0.0.1 10000 typ host tcptype passive\r\n");
        assert!(
            udp.is_some() && tcp.is_some() && udp < tcp,
            "UDP, then TCP: {sdp}"
        );
    }
    for c in [&net.browsers[a].publish, &net.browsers[a].subscribe] {
        assert!(c.connected, "DTLS over TCP connected");
        assert!(salon_io::is_stream(&c.addr));
    }

    net.run_media(1, 20);
    assert!(
        net.audio_received(b, a) >= 15,
        "B hears A (who sends over TCP)"
    );
    assert!(net.audio_received(a, b) >= 15, "A hears B (sent over TCP)");
    let m = net.metrics();
    assert_eq!(m.ice_succeeded_tcp.get(), 2, "A's two transports");
    assert_eq!(m.ice_succeeded_udp.get(), 2, "B's two transports");
    assert!(net.closed.is_empty());

    // A leaves: both its connections are closed, B's UDP is not touched.
    let id = net.browsers[a].id;
    net.command(Command::Leave { participant: id });
    net.settle(Duration::from_millis(100));
    let mut closed = net.closed.clone();
    closed.sort();
    let mut want = vec![net.browsers[a].publish.addr, net.browsers[a].subscribe.addr];
    want.sort();
    assert_eq!(closed, want);
}

#[test]
fn a_check_over_tcp_is_answered_with_the_peers_real_address() {
    let mut net = Net::new(62);
    let a = net.join("Miroir");
    net.settle(Duration::from_millis(300));
    let sdp = answers(&net).into_iter().next().unwrap();
    let d = salon_sdp::parse(&sdp).unwrap();
    let peer: SocketAddr = "198.51.100.23:51234".parse().unwrap();
    let conn = salon_io::stream_addr(3, 9, peer);
    let mut buf = [0u8; 256];
    let user = format!("{}:{}", d.ice_ufrag, net.browsers[a].publish.ufrag);
    let n = stun::write_binding_request(
        &mut buf,
        &[5; 12],
        user.as_bytes(),
        1,
        2,
        true,
        d.ice_pwd.as_str().as_bytes(),
    )
    .unwrap();
    let mut check = buf[..n].to_vec();
    net.tx.drain(|_| {});
    net.worker
        .handle_datagram(conn, &mut check, net.now, &mut net.tx);
    let mut replies = Vec::new();
    net.tx
        .drain(|t| replies.push((t.dst, t.buf[..t.len].to_vec())));
    assert_eq!(replies.len(), 1, "answered once");
    let (dst, reply) = &replies[0];
    assert_eq!(*dst, conn, "on the connection it came by");
    let m = stun::StunMessage::parse(reply).unwrap();
    assert_eq!(m.xor_mapped_address(), Some(peer));
    assert_eq!(
        net.metrics().ice_succeeded_tcp.get(),
        0,
        "its live UDP path is kept (see the next test)"
    );
}

/// A check with USE-CANDIDATE from `from` on browser `i`'s publish
/// transport; returns whether it was answered.
fn nominate(net: &mut Net, i: usize, from: SocketAddr) -> bool {
    let sdp = answers(net)
        .into_iter()
        .find(|s| s.contains(&net.browsers[i].publish.remote_ufrag))
        .unwrap();
    let d = salon_sdp::parse(&sdp).unwrap();
    let user = format!("{}:{}", d.ice_ufrag, net.browsers[i].publish.ufrag);
    let mut buf = [0u8; 256];
    let n = stun::write_binding_request(
        &mut buf,
        &[6; 12],
        user.as_bytes(),
        1,
        2,
        true,
        d.ice_pwd.as_str().as_bytes(),
    )
    .unwrap();
    let mut check = buf[..n].to_vec();
    net.tx.drain(|_| {});
    net.worker
        .handle_datagram(from, &mut check, net.now, &mut net.tx);
    let answered = net.tx.queued().iter().any(|t| t.dst == from);
    net.tx.drain(|_| {});
    answered
}

/// Firefox nominates every pair it checks (aggressive nomination) and
/// uses the best, UDP: a TCP nomination does not take the transport from
/// a live UDP address. A browser whose UDP went silent moves to TCP with
/// its nomination; and back to UDP at once.
#[test]
fn a_nomination_over_tcp_takes_over_only_a_silent_udp_path() {
    let mut net = Net::new(64);
    let a = net.join("Agressif");
    let b = net.join("Agressif");
    net.settle(Duration::from_millis(500));
    let udp = net.browsers[a].publish.addr;
    let tcp = salon_io::stream_addr(11, 1, udp);
    let udp_latches = net.metrics().ice_succeeded_udp.get();

    assert!(nominate(&mut net, a, tcp), "answered (the pair works)");
    assert_eq!(net.metrics().ice_succeeded_tcp.get(), 0, "not moved");
    let before = net.audio_received(b, a);
    net.run_media(1, 10);
    assert!(
        net.audio_received(b, a) > before,
        "A's media still arrives over UDP"
    );

    // A's UDP goes silent (no checks from it).
    net.browsers[a].publish.consent_checks = false;
    net.settle(Duration::from_secs(5));
    assert!(nominate(&mut net, a, tcp));
    assert_eq!(net.metrics().ice_succeeded_tcp.get(), 0, "5 s: still alive");
    net.settle(Duration::from_secs(4));
    assert!(nominate(&mut net, a, tcp));
    assert_eq!(
        net.metrics().ice_succeeded_tcp.get(),
        1,
        "9 s silent: moved to TCP"
    );

    // Back to UDP: a nomination from it moves the latch at once.
    assert!(nominate(&mut net, a, udp));
    assert_eq!(net.metrics().ice_succeeded_udp.get(), udp_latches + 1);
}

#[test]
fn a_connection_whose_peer_stops_consenting_is_closed() {
    let mut net = Net::new(63);
    let a = net.join_with("Silence", |b| over_tcp(b, 1));
    let b = net.join("Silence");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 5);
    assert!(net.audio_received(a, b) > 0);
    net.browsers[a].subscribe.consent_checks = false;
    net.settle(Duration::from_secs(25));
    assert!(net.closed.is_empty(), "consent holds for 25 s");
    net.settle(Duration::from_secs(6));
    assert_eq!(
        net.closed,
        [net.browsers[a].subscribe.addr],
        "closed on consent loss"
    );
    assert_eq!(net.metrics().consent_lost.get(), 1);
}
