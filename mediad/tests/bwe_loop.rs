//! The congestion-control loop through the forwarding core: every packet
//! mediad sends a subscriber carries a transport-wide sequence number, the
//! simulated browser answers with transport-cc feedback (the real writer),
//! and the subscriber's estimate follows what the feedback says.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Net;

/// 20 ms rounds: the publisher sends two 1000-byte video packets (about
/// 800 kbit/s, a key frame every 50 packets); the viewer sends feedback
/// every 100 ms.
fn run(net: &mut Net, viewer: usize, from: u16, rounds: u16, all_lost: bool) {
    for s in from..from + rounds {
        for k in 0..2u16 {
            let seq = s.wrapping_mul(2).wrapping_add(k);
            let mut payload = [0x42u8; 1000];
            payload[0] = 0x10;
            payload[1] = if seq % 50 == 0 { 0x00 } else { 0x01 };
            let b = &mut net.browsers[0];
            let ssrc = b.video_ssrc;
            b.publish
                .send_rtp(96, seq, u32::from(s) * 1800, ssrc, &[], &payload);
        }
        net.settle(Duration::from_millis(20));
        if s % 5 == 0 {
            net.browsers[viewer].subscribe.send_twcc(all_lost);
            net.deliver();
        }
    }
}

#[test]
fn the_estimate_follows_transport_feedback() {
    let mut net = Net::new(51);
    let publisher = net.join("Bwe");
    assert_eq!(publisher, 0);
    let viewer = net.join("Bwe");
    net.settle(Duration::from_millis(500));
    let id = net.browsers[viewer].id;
    let start = net.worker.estimate_bps(id).unwrap();
    run(&mut net, viewer, 1, 250, false);
    let grown = net.worker.estimate_bps(id).unwrap();
    assert!(net.metrics().twcc_feedback.get() >= 40, "feedback used");
    assert!(
        grown > start,
        "clean feedback lets the estimate grow: {start} -> {grown}"
    );
    run(&mut net, viewer, 251, 100, true);
    let fallen = net.worker.estimate_bps(id).unwrap();
    assert!(
        fallen < grown / 2,
        "total loss brings it down: {grown} -> {fallen}"
    );
    // Hostile feedback: garbage FCI is counted, the estimate is untouched.
    let malformed0 = net.metrics().drop_rtcp_malformed.get();
    let mut buf = [0u8; 64];
    let n = salon_proto::rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
    let bad = [
        0x8f, 205, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff,
    ];
    buf[n..n + bad.len()].copy_from_slice(&bad);
    net.browsers[viewer]
        .subscribe
        .send_rtcp(&buf[..n + bad.len()]);
    net.deliver();
    assert_eq!(net.metrics().drop_rtcp_malformed.get() - malformed0, 1);
}
