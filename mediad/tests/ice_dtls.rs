//! ICE-lite and DTLS rules, in virtual time: only authenticated checks
//! latch an address, only a nominated pair moves it, and media flows only
//! from a peer whose certificate matches the fingerprint of its SDP.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Net;
use salon_proto::stun;

fn publish_credentials(net: &Net, i: usize) -> (String, String) {
    let id = net.browsers[i].id;
    let sdp = net
        .events
        .iter()
        .find_map(|e| match e {
            salon_mediad::Event::PublishAnswer {
                participant, sdp, ..
            } if *participant == id => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    let d = salon_sdp::parse(&sdp).unwrap();
    (d.ice_ufrag, d.ice_pwd.as_str().to_owned())
}

fn check(net: &mut Net, from: SocketAddr, user: &str, key: &[u8], use_candidate: bool) -> usize {
    let mut buf = [0u8; 256];
    let n = stun::write_binding_request(
        &mut buf,
        &[3; 12],
        user.as_bytes(),
        1,
        2,
        use_candidate,
        key,
    )
    .unwrap();
    let mut d = buf[..n].to_vec();
    let before = net.tx.len();
    net.worker
        .handle_datagram(from, &mut d, net.now, &mut net.tx);
    let answered = net.tx.len() - before;
    net.tx.drain(|_| {});
    answered
}

#[test]
fn only_authenticated_checks_are_answered_and_latch() {
    let mut net = Net::new(21);
    let a = net.join("Ice");
    net.settle(Duration::from_millis(300));
    let (ufrag, pwd) = publish_credentials(&net, a);
    let peer_ufrag = net.browsers[a].publish.ufrag.clone();
    let user = format!("{ufrag}:{peer_ufrag}");
    let intruder: SocketAddr = "127.0.0.66:1234".parse().unwrap();
    let auth0 = net.metrics().drop_stun_auth.get();
    // Wrong password, wrong user, wrong remote ufrag: silence.
    assert_eq!(check(&mut net, intruder, &user, b"wrong-password", true), 0);
    assert_eq!(
        check(
            &mut net,
            intruder,
            &format!("nobody:{peer_ufrag}"),
            pwd.as_bytes(),
            true
        ),
        0
    );
    assert_eq!(
        check(
            &mut net,
            intruder,
            &format!("{ufrag}:someoneelse"),
            pwd.as_bytes(),
            true
        ),
        0
    );
    assert_eq!(net.metrics().drop_stun_auth.get() - auth0, 3);
    // The call still works from the latched address.
    for s in 1..=5 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    assert!(net.metrics().drop_unlatched.get() == 0);
    // A valid check without USE-CANDIDATE from a new address is answered but
    // does not move the latched address...
    let other: SocketAddr = "127.0.0.2:59999".parse().unwrap();
    assert_eq!(check(&mut net, other, &user, pwd.as_bytes(), false), 1);
    let mut junk = vec![0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
    net.worker
        .handle_datagram(other, &mut junk, net.now, &mut net.tx);
    assert_eq!(
        net.metrics().drop_unlatched.get(),
        1,
        "media from the new address is not accepted"
    );
    // ... a nominated one does.
    assert_eq!(check(&mut net, other, &user, pwd.as_bytes(), true), 1);
    net.worker
        .handle_datagram(other, &mut junk, net.now, &mut net.tx);
    assert_eq!(
        net.metrics().drop_unlatched.get(),
        1,
        "now latched: dropped by SRTP instead"
    );
    assert!(net.metrics().drop_srtp_auth.get() >= 1);
}

#[test]
fn a_certificate_that_does_not_match_the_fingerprint_never_connects() {
    let mut net = Net::new(22);
    let honest = net.join("Dtls");
    let forged = net.join_with("Dtls", |b| {
        // The SDP announces another certificate than the one DTLS presents.
        b.publish.fingerprint = vec![0xAB; 32];
    });
    net.settle(Duration::from_millis(500));
    assert!(net.browsers[honest].publish.connected);
    let f = &net.browsers[forged];
    assert!(
        f.errors
            .iter()
            .any(|e| e.contains("media transport failed")),
        "{:?}",
        f.errors
    );
    assert!(!net.events.contains(&salon_mediad::Event::Connected {
        participant: f.id,
        transport: salon_mediad::TransportKind::Publish,
    }));
    // Whatever it sends is not forwarded: it holds no keys mediad accepts.
    let got_before = net.browsers[honest].received().len();
    for s in 1..=10 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    let forged_id = net.browsers[forged].id.0.to_string();
    let offers = &net.browsers[honest].offers;
    let forged_ssrcs: Vec<u32> = offers
        .last()
        .map(|o| {
            salon_sdp::parse(o)
                .unwrap()
                .media
                .iter()
                .filter(|m| m.msid.as_ref().is_some_and(|x| x.stream_id == forged_id))
                .filter_map(|m| m.ssrcs.first().copied())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        net.browsers[honest].received()[got_before..]
            .iter()
            .all(|h| !forged_ssrcs.contains(&h.ssrc))
    );
    assert!(net.metrics().dtls_failed.get() + net.metrics().drop_not_connected.get() >= 1);
}
