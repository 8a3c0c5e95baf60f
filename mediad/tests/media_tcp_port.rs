//! Where mediad listens for ICE-TCP (`MediadConfig::tcp`, `salon
//! --media-tcp-port`): by default on each worker's UDP port number, on
//! given ports, or not at all; and the candidate offered follows.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{PeerConn, publish_offer};

use salon_mediad::{Command, Event, MediaTcp, Mediad, MediadConfig, ParticipantId, RoomId};

fn start(tcp: MediaTcp, workers: usize) -> Mediad {
    let (mediad, _events) = Mediad::start(MediadConfig {
        first_port: 0,
        tcp,
        workers,
        io_backend: "epoll".parse().unwrap(),
        ..MediadConfig::default()
    })
    .unwrap();
    mediad
}

#[test]
fn the_tcp_port_defaults_to_the_udp_ports_number_and_can_be_off() {
    let m = start(MediaTcp::SameAsUdp, 2);
    let (udp, tcp) = (m.ports(), m.tcp_ports());
    assert_eq!(tcp.len(), 2);
    for (u, t) in udp.iter().zip(&tcp) {
        let t = t.unwrap();
        // The same number unless the system had given it to someone else.
        if t != *u {
            eprintln!("NOTICE: TCP port {u} was taken, {t} used");
        }
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{t}").parse().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap();
    }
    m.shutdown();

    let m = start(MediaTcp::Off, 1);
    assert_eq!(m.tcp_ports(), [None]);
    m.shutdown();

    let m = start(MediaTcp::FirstPort(0), 1);
    assert!(m.tcp_ports()[0].is_some_and(|p| p != 0));
    m.shutdown();
}

#[test]
fn the_answer_offers_the_tcp_candidate_only_when_listening() {
    for (tcp, want) in [(MediaTcp::SameAsUdp, true), (MediaTcp::Off, false)] {
        let (m, events) = Mediad::start(MediadConfig {
            first_port: 0,
            tcp,
            io_backend: "epoll".parse().unwrap(),
            ..MediadConfig::default()
        })
        .unwrap();
        let id = ParticipantId(1);
        m.send(Command::Join {
            room: RoomId("Ports".into()),
            participant: id,
        });
        m.send(Command::PublishOffer {
            participant: id,
            request: salon_mediad::RequestId::default(),
            sdp: {
                let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
                let peer =
                    PeerConn::new("127.0.0.1:9".parse().unwrap(), "1p", cert, Instant::now());
                publish_offer(&peer, 1000, 1010)
            },
        });
        let answer = loop {
            match events.recv_timeout(Duration::from_secs(5)).unwrap() {
                Event::PublishAnswer { sdp, .. } => break sdp,
                _ => continue,
            }
        };
        let line = m.tcp_ports()[0].map(|p| {
            format!("a=candidate:2 1 tcp 1520435199 127.0.0.1 {p} typ host tcptype passive\r\n")
        });
        assert_eq!(line.is_some(), want);
        match line {
            Some(l) => assert!(answer.contains(&l), "{answer}"),
            None => assert!(!answer.contains(" tcp "), "{answer}"),
        }
        m.shutdown();
    }
}

#[test]
fn media_tcp_parses_like_the_flag() {
    assert_eq!("off".parse::<MediaTcp>().unwrap(), MediaTcp::Off);
    assert_eq!("0".parse::<MediaTcp>().unwrap(), MediaTcp::Off);
    assert_eq!("same".parse::<MediaTcp>().unwrap(), MediaTcp::SameAsUdp);
    assert_eq!("443".parse::<MediaTcp>().unwrap(), MediaTcp::FirstPort(443));
    assert!("udp".parse::<MediaTcp>().is_err());
}
