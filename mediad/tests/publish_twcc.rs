//! Transport-cc feedback to a publisher: once its offer negotiates the
//! transport-wide sequence number extension, mediad answers with it and
//! reports every 50 ms which of the publisher's packets arrived and when;
//! a lost packet is reported lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Net, publish_offer};
use salon_mediad::{Command, Event};
use salon_proto::rtcp::{RtcpIter, RtcpPacket};
use salon_proto::twcc::{PacketStatus, TwccFeedback};

const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

#[test]
fn the_publisher_gets_transport_feedback_with_arrivals_and_losses() {
    let mut net = Net::new(81);
    let a = net.join("Retour");
    let _b = net.join("Retour");
    net.settle(Duration::from_millis(300));
    // Renegotiate with the transport-wide extension (id 3), as Chrome offers.
    let (id, audio, video) = {
        let b = &net.browsers[a];
        (b.id, b.audio_ssrc, b.video_ssrc)
    };
    let offer = publish_offer(&net.browsers[a].publish, audio, video).replace(
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
        &format!("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:3 {TWCC_URI}\r\n"),
    );
    net.command(Command::PublishOffer {
        participant: id,
        sdp: offer,
    });
    net.settle(Duration::from_millis(100));
    let answer = net
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::PublishAnswer { participant, sdp } if *participant == id => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        answer.contains(&format!("a=extmap:3 {TWCC_URI}")),
        "{answer}"
    );

    // 20 video packets, 20 ms apart, transport-wide 1000..=1019; 1010 to
    // 1012 lost (60 ms: a loss across a feedback boundary too).
    let seen = net.browsers[a].publish.rtcp_in.len();
    for i in 0..20u16 {
        let tw = 1000 + i;
        if !(1010..=1012).contains(&tw) {
            let ext = tw.to_be_bytes();
            let b = &mut net.browsers[a];
            let vp8 = [0x10u8, if i == 0 { 0x00 } else { 0x01 }, 0x42, 0x42];
            b.publish.send_rtp(
                96,
                500 + i,
                u32::from(i) * 1800,
                video,
                &[(3, &ext[..])],
                &vp8,
            );
        }
        net.settle(Duration::from_millis(20));
    }
    net.settle(Duration::from_millis(100));
    let mut reported: Vec<(u16, Option<i64>)> = Vec::new();
    for p in &net.browsers[a].publish.rtcp_in[seen..] {
        for pkt in RtcpIter::new(p).filter_map(Result::ok) {
            if let RtcpPacket::TransportCc(fb) = pkt {
                let fb = TwccFeedback::parse(fb.fci).unwrap();
                for (seq, st) in fb.packets() {
                    reported.push(match st {
                        PacketStatus::Received { arrival_us, .. } => (seq, Some(arrival_us)),
                        _ => (seq, None),
                    });
                }
            }
        }
    }
    let seqs: Vec<u16> = reported.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1000..1020).collect::<Vec<_>>(), "{reported:?}");
    for r in &reported[10..13] {
        assert_eq!(r.1, None, "{r:?} reported lost");
    }
    assert!(reported.iter().filter(|r| r.1.is_none()).count() == 3);
    // Arrivals 20 ms apart (the virtual clock), within the 250 µs resolution.
    let arrivals: Vec<i64> = reported.iter().filter_map(|r| r.1).collect();
    for w in arrivals.windows(2) {
        let d = w[1] - w[0];
        assert!((19_750..=40_250).contains(&d), "{d} µs");
    }
    assert!(net.metrics().twcc_feedback_sent.get() >= 3);
}
