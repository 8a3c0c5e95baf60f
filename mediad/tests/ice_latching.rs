//! ICE restarts and latching, in virtual time. The network of a
//! participant changes; its browser restarts ICE (publish side: a new offer
//! with new credentials; subscribe side: the gateway asks mediad to offer
//! new ones), checks latch the new address, and media flows again on the
//! same transports (no new DTLS handshake). An address another transport
//! latched is never taken over.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Net, publish_offer};
use salon_mediad::{Command, RequestId};

#[test]
fn a_publisher_that_restarts_ice_from_a_new_address_is_heard_again() {
    let mut net = Net::new(31);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 5);
    assert!(net.audio_received(b, a) > 0);
    let old_ufrag = net.browsers[a].publish.remote_ufrag.clone();

    // A's network changes: new address, new ICE credentials, same DTLS.
    let moved: SocketAddr = "127.0.0.9:41000".parse().unwrap();
    {
        let p = &mut net.browsers[a].publish;
        p.addr = moved;
        p.ufrag = "ufragmoved".into();
        p.pwd = "passwordofmoved0123456789abcdef".into();
    }
    let offer = {
        let br = &net.browsers[a];
        publish_offer(&br.publish, br.audio_ssrc, br.video_ssrc)
    };
    let a_id = net.browsers[a].id;
    net.command(Command::PublishOffer {
        participant: a_id,
        request: RequestId(2),
        sdp: offer,
    });
    assert!(
        net.browsers[a].errors.is_empty(),
        "{:?}",
        net.browsers[a].errors
    );
    assert_ne!(
        net.browsers[a].publish.remote_ufrag, old_ufrag,
        "mediad answers with new credentials"
    );
    net.settle(Duration::from_millis(200));
    assert_eq!(net.metrics().ice_restarts.get(), 1);
    let before = net.audio_received(b, a);
    net.run_media(6, 10);
    assert!(
        net.audio_received(b, a) > before,
        "A's media from its new address reaches B"
    );
    assert_eq!(net.metrics().transports_connected.get(), 4, "no new DTLS");
}

#[test]
fn a_subscriber_ice_restart_offers_new_credentials_on_the_same_transport() {
    let mut net = Net::new(32);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 5);
    let old_ufrag = net.browsers[b].subscribe.remote_ufrag.clone();
    let offers = net.browsers[b].offers.len();

    // B's network changes; the gateway asks for an ICE restart.
    net.browsers[b].subscribe.addr = "127.0.0.9:42000".parse().unwrap();
    let b_id = net.browsers[b].id;
    net.command(Command::RestartIce { participant: b_id });
    assert_eq!(net.browsers[b].offers.len(), offers + 1, "offered at once");
    assert_ne!(net.browsers[b].subscribe.remote_ufrag, old_ufrag);
    // The browser's next check (its consent check, within 5 s) latches the
    // new address under the new credentials.
    net.settle(Duration::from_secs(6));
    let before = net.audio_received(b, a);
    net.run_media(6, 10);
    assert!(
        net.audio_received(b, a) > before,
        "media reaches B's new address"
    );
    assert!(net.browsers[b].errors.is_empty());
    assert_eq!(net.metrics().ice_restarts.get(), 1);
}

#[test]
fn an_address_another_transport_latched_is_never_taken_over() {
    let mut net = Net::new(33);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 5);
    // A's valid check (its own credentials, USE-CANDIDATE), sent as if from
    // B's subscribe address.
    net.browsers[a].subscribe.send_check();
    let mut check = net.browsers[a].subscribe.outbox.pop().unwrap();
    let b_addr = net.browsers[b].subscribe.addr;
    let now = net.now;
    net.worker
        .handle_datagram(b_addr, &mut check, now, &mut net.tx);
    assert_eq!(net.metrics().drop_addr_taken.get(), 1);
    net.tx.drain(|_| {});
    // B still gets its media, A too.
    let (to_b, to_a) = (net.audio_received(b, a), net.audio_received(a, b));
    net.run_media(6, 10);
    assert!(net.audio_received(b, a) > to_b, "B's stream was not moved");
    assert!(net.audio_received(a, b) > to_a);
}
