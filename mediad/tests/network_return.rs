//! A network that goes and comes back, in virtual time: whoever lost
//! packets it cannot get back gets a key frame at once, instead of after
//! its decoder's own timeout (Chrome asks for one only after 3 s without a
//! decodable frame; measured in `tests/e2e/reconnect-netns.test.mjs`).

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::Net;
use salon_proto::rtcp;

/// PLIs publisher `a` received for its video since `from` (index into its
/// RTCP inbox).
fn plis(net: &Net, a: usize, from: usize) -> usize {
    let video = net.browsers[a].video_ssrc;
    net.browsers[a].publish.rtcp_in[from..]
        .iter()
        .flat_map(|p| {
            rtcp::RtcpIter::new(p)
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
        })
        .filter(|p| matches!(p, rtcp::RtcpPacket::Pli(pli) if pli.media_ssrc == video))
        .count()
}

fn room() -> (Net, usize, usize) {
    let mut net = Net::new(31);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 10);
    net.settle(Duration::from_millis(500));
    (net, a, b)
}

/// One receiver report from `b`'s subscribe side (its feedback).
fn report(net: &mut Net, b: usize) {
    let mut buf = [0u8; 64];
    let n = rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
    net.browsers[b].subscribe.send_rtcp(&buf[..n]);
    net.deliver();
}

#[test]
fn a_publisher_back_from_a_long_loss_is_asked_for_a_key_frame_at_once() {
    let (mut net, a, _b) = room();
    let video = net.browsers[a].video_ssrc;
    // A small gap is repaired by NACK: no key frame.
    let before = net.browsers[a].publish.rtcp_in.len();
    let vp8 = [0x10u8, 0x01, 0x42, 0x42];
    net.browsers[a]
        .publish
        .send_rtp(96, 15, 15 * 3000, video, &[], &vp8);
    net.deliver();
    assert_eq!(
        plis(&net, a, before),
        0,
        "a gap of 4 is NACKed, not a key frame"
    );
    assert_eq!(net.metrics().upstream_gaps.get(), 0);
    // Its network went for seconds: hundreds of packets never came.
    net.settle(Duration::from_millis(400));
    let before = net.browsers[a].publish.rtcp_in.len();
    net.browsers[a]
        .publish
        .send_rtp(96, 515, 515 * 3000, video, &[], &vp8);
    net.deliver();
    assert_eq!(
        plis(&net, a, before),
        1,
        "asked for a key frame on the spot"
    );
    assert_eq!(net.metrics().upstream_gaps.get(), 1);
}

#[test]
fn a_receiver_heard_again_after_a_silence_gets_key_frames_at_once() {
    let (mut net, a, b) = room();
    // B's feedback flows: nothing to ask for.
    for s in 0..10u16 {
        report(&mut net, b);
        net.run_media(20 + s * 5, 5);
    }
    net.settle(Duration::from_millis(400));
    let before = net.browsers[a].publish.rtcp_in.len();
    report(&mut net, b);
    assert_eq!(
        plis(&net, a, before),
        0,
        "regular feedback asks for nothing"
    );
    assert_eq!(net.metrics().receivers_back.get(), 0);

    // B's network goes for 3 s: mediad keeps sending (consent holds),
    // B hears nothing and says nothing.
    net.run_media(100, 150);
    let before = net.browsers[a].publish.rtcp_in.len();
    report(&mut net, b);
    assert_eq!(
        plis(&net, a, before),
        1,
        "B's first report after the silence: a key frame of what it is shown"
    );
    assert_eq!(net.metrics().receivers_back.get(), 1);
}
