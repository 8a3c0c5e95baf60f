//! Relayed transports (TURN): the worker knows the addresses its TURN
//! servers relay from; a browser whose checks come from one of them is
//! counted relayed (on top of UDP), and the gauge of relayed transports
//! follows its latches until it leaves.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::Net;
use salon_mediad::Command;

const RELAY: &str = "127.0.0.5";

/// Browser `b`'s two transports seen from coturn's relay address.
fn through_relay(b: &mut common::Browser) {
    for c in [&mut b.publish, &mut b.subscribe] {
        c.addr = SocketAddr::new(RELAY.parse().unwrap(), c.addr.port());
    }
}

#[test]
fn checks_from_a_relay_address_count_as_relayed() {
    let relay: IpAddr = RELAY.parse().unwrap();
    let mut net = Net::with_config(71, |cfg| cfg.relay_ips = vec![relay]);
    let a = net.join_with("Relais", through_relay);
    let b = net.join("Relais");
    net.settle(Duration::from_millis(500));
    for c in [&net.browsers[a].publish, &net.browsers[a].subscribe] {
        assert!(c.connected, "DTLS through the relay connected");
    }
    net.run_media(1, 20);
    assert!(net.audio_received(b, a) >= 15, "B hears A (relayed)");
    assert!(net.audio_received(a, b) >= 15, "A hears B (relayed)");

    let m = net.metrics();
    assert_eq!(m.ice_succeeded_relayed.get(), 2, "A's two transports");
    assert_eq!(m.ice_succeeded_udp.get(), 4, "relayed ones are UDP too");
    assert_eq!(m.ice_succeeded_tcp.get(), 0);
    assert_eq!(m.relayed_transports.get(), 2, "A's two, open");

    let id = net.browsers[a].id;
    net.command(Command::Leave { participant: id });
    net.settle(Duration::from_millis(100));
    let m = net.metrics();
    assert_eq!(m.relayed_transports.get(), 0, "A left: none open");
    assert_eq!(m.ice_succeeded_relayed.get(), 2, "a counter stays");
}

/// A dual-stack socket names an IPv4 peer `::ffff:a.b.c.d`: the worker
/// latches and matches it as the plain IPv4 address (answers go there;
/// DTLS and SRTP from the mapped name find the transport; a relay given
/// as IPv4 is recognised).
#[test]
fn a_v4_mapped_source_is_latched_and_matched_as_ipv4() {
    let relay: IpAddr = RELAY.parse().unwrap();
    let mut net = Net::with_config(73, |cfg| cfg.relay_ips = vec![relay]);
    let a = net.join_with("Double", |b| {
        for c in [&mut b.publish, &mut b.subscribe] {
            let mapped = format!("[::ffff:{RELAY}]:{}", c.addr.port());
            c.addr = mapped.parse().unwrap();
        }
    });
    let b = net.join("Double");
    net.settle(Duration::from_millis(500));
    for c in [&net.browsers[a].publish, &net.browsers[a].subscribe] {
        assert!(c.connected, "DTLS from the mapped name connected");
    }
    // From now on A's packets carry the plain IPv4 name: the latch made
    // from the mapped one must be that same address.
    let ba = &mut net.browsers[a];
    for c in [&mut ba.publish, &mut ba.subscribe] {
        c.addr = salon_io::canonical(c.addr);
        assert!(c.addr.is_ipv4());
    }
    net.run_media(1, 20);
    assert!(net.audio_received(b, a) >= 15, "B hears A");
    assert!(net.audio_received(a, b) >= 15, "A hears B");
    let m = net.metrics();
    assert_eq!(m.ice_succeeded_udp.get(), 4, "one latch per transport");
    assert_eq!(m.ice_succeeded_relayed.get(), 2, "the relay, given as IPv4");
    assert_eq!(m.drop_unlatched.get(), 0, "nothing from an unknown address");
    assert_eq!(m.drop_addr_taken.get(), 0);
}

#[test]
fn without_a_relay_set_nothing_counts_as_relayed() {
    let mut net = Net::new(72);
    net.join_with("Relais", through_relay);
    net.join("Relais");
    net.settle(Duration::from_millis(500));
    let m = net.metrics();
    assert_eq!(m.ice_succeeded_udp.get(), 4);
    assert_eq!(m.ice_succeeded_relayed.get(), 0);
    assert_eq!(m.relayed_transports.get(), 0);
}
