//! Announced address ≠ bound address (a 1:1 NAT, as on cloud VMs): mediad
//! binds 127.0.0.1 and announces 203.0.113.7 (TEST-NET-3). Its SDP — the
//! publish answer and the subscribe offer — names only the announced
//! address, and a simulated browser that sends to the bound address (as
//! the NAT would deliver it) connects: ICE and DTLS complete there.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{PeerConn, publish_offer, subscribe_answer};
use salon_mediad::{Command, Event, Mediad, MediadConfig, ParticipantId, RequestId, RoomId};

const ANNOUNCED: &str = "203.0.113.7";

/// The `c=` addresses and the candidate lines of `sdp`.
fn addresses(sdp: &str) -> (Vec<&str>, Vec<&str>) {
    let c = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("c=IN IP4 "))
        .collect();
    let candidates = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    (c, candidates)
}

fn assert_announces(sdp: &str, port: u16, what: &str) {
    let (c, candidates) = addresses(sdp);
    assert!(!c.is_empty(), "{what} has c= lines");
    assert!(c.iter().all(|a| a.trim() == ANNOUNCED), "{what}: c= {c:?}");
    assert!(!candidates.is_empty(), "{what} has candidates");
    for line in &candidates {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // a=candidate:<foundation> <component> udp <priority> <address> <port> typ host
        assert_eq!(fields[4], ANNOUNCED, "{what}: {line}");
        assert_eq!(fields[5], port.to_string(), "{what}: {line}");
    }
    // (`o=- … IN IP4 127.0.0.1` is JSEP's fixed placeholder, not the bound
    // address: only `c=` and the candidates say where to send.)
}

/// A simulated browser: its two transports and their sockets.
struct Peer {
    id: ParticipantId,
    publish: PeerConn,
    subscribe: PeerConn,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    offered: bool,
}

impl Peer {
    fn new(n: u64) -> Self {
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let socket = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
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
            offered: false,
        }
    }

    /// What the NAT does: packets for the announced address arrive at the
    /// bound one.
    fn pump(&mut self, bound: SocketAddr) {
        let now = Instant::now();
        for (conn, sock) in [
            (&mut self.publish, &self.pub_sock),
            (&mut self.subscribe, &self.sub_sock),
        ] {
            for d in conn.outbox.drain(..) {
                let _ = sock.send_to(&d, bound);
            }
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                assert_eq!(from, bound, "mediad answers from its bound address");
                conn.handle(&mut buf[..n], now);
            }
            conn.handle_timeout(now);
        }
    }
}

#[test]
fn sdp_carries_the_announced_address_while_the_socket_is_bound_elsewhere() {
    let (mediad, events) = Mediad::start(MediadConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        announce_ips: vec![ANNOUNCED.parse().unwrap()],
        first_port: 0,
        io_backend: "epoll".parse().unwrap(),
        ..MediadConfig::default()
    })
    .unwrap();
    let port = mediad.ports()[0];
    let bound = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port);

    // Two publishers, so that each gets a subscribe offer too.
    let mut peers = vec![Peer::new(1), Peer::new(2)];
    for p in &peers {
        mediad.send(Command::Join {
            room: RoomId("Salon-Nat".into()),
            participant: p.id,
        });
        mediad.send(Command::PublishOffer {
            participant: p.id,
            request: RequestId::default(),
            sdp: publish_offer(&p.publish, 1000 * p.id.0 as u32, 1000 * p.id.0 as u32 + 10),
        });
    }
    let mut answers = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !peers
        .iter()
        .all(|p| p.publish.connected && p.subscribe.connected)
    {
        assert!(
            Instant::now() < deadline,
            "every transport connects to the bound address within 15 s \
             ({answers} answers; offered, publish, subscribe: {:?})",
            peers
                .iter()
                .map(|p| (p.offered, p.publish.connected, p.subscribe.connected))
                .collect::<Vec<_>>()
        );
        while let Some(e) = events.try_recv() {
            match e {
                Event::PublishAnswer {
                    participant, sdp, ..
                } => {
                    assert_announces(&sdp, port, "the publish answer");
                    answers += 1;
                    let p = peers.iter_mut().find(|p| p.id == participant).unwrap();
                    p.publish.set_remote(&sdp);
                    p.publish.send_check();
                }
                Event::SubscribeOffer { participant, sdp } => {
                    assert_announces(&sdp, port, "the subscribe offer");
                    let p = peers.iter_mut().find(|p| p.id == participant).unwrap();
                    if !p.offered {
                        p.subscribe.set_remote(&sdp);
                        p.subscribe.send_check();
                    }
                    p.offered = true;
                    mediad.send(Command::SubscribeAnswer {
                        participant,
                        request: RequestId::default(),
                        sdp: subscribe_answer(&p.subscribe, &sdp),
                    });
                }
                Event::Error { error, .. } => panic!("mediad error: {error}"),
                _ => {}
            }
        }
        for p in &mut peers {
            p.pump(bound);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(answers, 2);
    mediad.shutdown();
}

/// Which addresses mediad announces for a bind address and the
/// configured `--announce-ip`s.
#[test]
fn announced_addresses_follow_the_bind_and_the_families() {
    use salon_mediad::announced;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // A specific bind, nothing configured: that address.
    assert_eq!(announced(ip("127.0.0.1"), &[]).unwrap(), [ip("127.0.0.1")]);
    // `::` takes both families; one of each.
    assert_eq!(
        announced(ip("::"), &[ip("203.0.113.10"), ip("2001:db8::10")]).unwrap(),
        [ip("203.0.113.10"), ip("2001:db8::10")]
    );
    // A v4-mapped announce is its IPv4 address.
    assert_eq!(
        announced(ip("::"), &[ip("::ffff:203.0.113.10")]).unwrap(),
        [ip("203.0.113.10")]
    );
    // A v4-mapped bind (`--media-ip ::ffff:10.0.0.1`) is an IPv4 socket in
    // all but name: it announces, and takes announces of, IPv4 — never an
    // IPv6 candidate `::ffff:…` that browsers' IPv6 sockets cannot reach.
    assert_eq!(
        announced(ip("::ffff:127.0.0.1"), &[]).unwrap(),
        [ip("127.0.0.1")]
    );
    assert_eq!(
        announced(ip("::ffff:10.0.0.1"), &[ip("203.0.113.10")]).unwrap(),
        [ip("203.0.113.10")]
    );
    assert!(announced(ip("::ffff:10.0.0.1"), &[ip("2001:db8::10")]).is_err());
    // Refused: two of one family, a family the socket does not take, `::`.
    for (bind, cfg) in [
        ("::", vec![ip("192.0.2.1"), ip("192.0.2.2")]),
        ("0.0.0.0", vec![ip("2001:db8::10")]),
        ("2001:db8::1", vec![ip("192.0.2.1")]),
        ("::", vec![ip("::")]),
        // Not a host: a netmask pasted by mistake, a multicast group.
        ("0.0.0.0", vec![ip("255.255.255.255")]),
        ("0.0.0.0", vec![ip("255.255.255.0")]),
        ("0.0.0.0", vec![ip("224.0.0.1")]),
        ("::", vec![ip("ff02::1")]),
    ] {
        assert!(announced(ip(bind), &cfg).is_err(), "{bind} {cfg:?}");
    }
    // Unspecified binds, nothing configured: the interfaces' addresses
    // (never link-local; loopback only when there is nothing else), at
    // most two per family, IPv4 only for 0.0.0.0.
    for bind in ["::", "0.0.0.0"] {
        let got = announced(ip(bind), &[]).unwrap();
        assert!(!got.is_empty(), "{bind}");
        assert!(got.iter().all(|a| !a.is_unspecified()), "{got:?}");
        let loopback = got.iter().filter(|a| a.is_loopback()).count();
        assert!(loopback == 0 || loopback == got.len(), "{got:?}");
        for v6 in [false, true] {
            assert!(
                got.iter().filter(|a| a.is_ipv6() == v6).count() <= 2,
                "{got:?}"
            );
        }
        assert!(
            got.iter().all(|a| match a {
                IpAddr::V6(v6) => bind == "::" && !v6.is_unicast_link_local(),
                IpAddr::V4(v4) => !v4.is_link_local(),
            }),
            "{got:?}"
        );
        eprintln!("{bind}: announces {got:?}");
    }
}
