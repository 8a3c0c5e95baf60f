//! Consent freshness (RFC 7675), in virtual time: a transport whose peer
//! stops sending checks stops receiving media after 30 s and the gateway is
//! told; when checks come back, so does the media. A peer that closes its
//! DTLS session stops receiving at once.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::Net;
use salon_mediad::{Event, TransportKind};

fn lost(net: &Net, i: usize) -> bool {
    let id = net.browsers[i].id;
    net.events.iter().any(|e| {
        *e == Event::TransportLost {
            participant: id,
            transport: TransportKind::Subscribe,
        }
    })
}

#[test]
fn a_peer_that_stops_consenting_stops_receiving_and_the_gateway_is_told() {
    let mut net = Net::new(21);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 10);
    assert!(net.audio_received(b, a) > 0);

    // B's network goes: its subscribe side sends no more checks.
    net.browsers[b].subscribe.consent_checks = false;
    net.settle(Duration::from_secs(24));
    assert!(!lost(&net, b), "consent holds for at least 25 s");
    let before = net.audio_received(b, a);
    net.run_media(11, 10);
    assert!(net.audio_received(b, a) > before, "media still flows");

    net.settle(Duration::from_secs(6));
    assert!(lost(&net, b), "consent lost within 30 s of the last check");
    assert_eq!(net.metrics().consent_lost.get(), 1);
    let before = net.audio_received(b, a);
    net.run_media(21, 20);
    assert_eq!(
        net.audio_received(b, a),
        before,
        "nothing more is sent to B"
    );
    // B's publish side still consents: A keeps receiving B.
    let from_b = net.audio_received(a, b);
    net.run_media(41, 10);
    assert!(net.audio_received(a, b) > from_b);
    assert!(!net.events.iter().any(|e| matches!(
        e,
        Event::TransportLost {
            transport: TransportKind::Publish,
            ..
        }
    )));

    // B's checks come back (the network returned): media resumes.
    net.browsers[b].subscribe.consent_checks = true;
    net.browsers[b].subscribe.send_check();
    net.settle(Duration::from_millis(100));
    assert_eq!(net.metrics().consent_regained.get(), 1);
    let before = net.audio_received(b, a);
    net.run_media(51, 10);
    assert!(net.audio_received(b, a) > before, "media resumes");
}

/// A page that reloads or leaves closes its connection's DTLS session
/// (`close_notify`): mediad stops sending to it at once, not 30 s later
/// when its consent lapses (behind 400 kbit/s, a reloading page's own
/// download competed with that media for 36 s), and the gateway is told.
#[test]
fn a_peer_that_closes_its_dtls_session_stops_receiving_at_once() {
    let mut net = Net::new(22);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 10);
    assert!(net.audio_received(b, a) > 0);
    let b_rtp = |net: &Net| net.browsers[b].subscribe.rtp_in.len();

    net.browsers[b].subscribe.close_dtls();
    net.deliver();
    net.settle(Duration::from_millis(20));
    assert!(lost(&net, b), "the gateway is told");
    assert_eq!(net.metrics().dtls_closed.get(), 1);
    assert_eq!(net.metrics().consent_lost.get(), 0, "not by consent");
    let before = b_rtp(&net);
    net.run_media(11, 20);
    assert_eq!(b_rtp(&net), before, "nothing more is sent to B");
    // B's publish side is still open: A keeps receiving B.
    let from_b = net.audio_received(a, b);
    net.run_media(31, 10);
    assert!(net.audio_received(a, b) > from_b);
    // And consent does not lapse on it a second time later.
    net.settle(Duration::from_secs(35));
    assert_eq!(net.metrics().consent_lost.get(), 0);
}
