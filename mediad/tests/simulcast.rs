//! Simulcast in: a publisher sends three VP8 encodings identified by rid
//! (Chrome lists no SSRCs); mediad binds each SSRC to its layer through the
//! mid and rid header extensions and forwards one layer per receiver, under
//! one SSRC with continuous numbering. A rid that was never negotiated
//! binds nothing and is counted.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Net;

const LAYER_SSRCS: [u32; 3] = [7001, 7002, 7003];
const RIDS: [&[u8]; 3] = [b"q", b"h", b"f"];

fn send_layers(net: &mut Net, publisher: usize, seq: u16) {
    let b = &mut net.browsers[publisher];
    for (i, ssrc) in LAYER_SSRCS.iter().enumerate() {
        // Key frame every 10 packets; the payload says which layer it is.
        let key = if seq % 10 == 1 { 0x00 } else { 0x01 };
        let vp8 = [0x10u8, key, b'L', b'0' + i as u8];
        b.publish.send_rtp(
            96,
            seq,
            u32::from(seq) * 3000,
            *ssrc,
            &[(4, b"1"), (10, RIDS[i])],
            &vp8,
        );
    }
}

#[test]
fn one_layer_per_receiver_and_unknown_rids_counted() {
    let mut net = Net::new(31);
    let publisher = net.join_with("Simulcast", |b| b.simulcast = true);
    let viewer = net.join("Simulcast");
    let pid = net.browsers[publisher].id;
    net.settle(Duration::from_millis(500));
    assert!(
        net.browsers[publisher].errors.is_empty(),
        "{:?}",
        net.browsers[publisher].errors
    );
    for s in 1..=40 {
        send_layers(&mut net, publisher, s);
        net.settle(Duration::from_millis(20));
    }
    let v = &net.browsers[viewer];
    let offer = salon_sdp::parse(v.offers.last().unwrap()).unwrap();
    let out: Vec<u32> = offer
        .media
        .iter()
        .filter(|m| m.port != 0 && m.kind == Some(salon_sdp::MediaKind::Video))
        .filter(|m| {
            m.msid
                .as_ref()
                .is_some_and(|x| x.stream_id == pid.0.to_string())
        })
        .map(|m| m.ssrcs[0])
        .collect();
    assert_eq!(out.len(), 1, "one video m-line for the simulcast track");
    let got: Vec<&Vec<u8>> = v
        .subscribe
        .rtp_in
        .iter()
        .filter(|p| salon_proto::rtp::RtpHeader::parse(p).unwrap().ssrc == out[0])
        .collect();
    assert!(got.len() >= 30, "{} packets", got.len());
    for p in &got {
        let h = salon_proto::rtp::RtpHeader::parse(p).unwrap();
        assert_eq!(
            &h.payload(p)[2..],
            b"L2",
            "only the best layer is forwarded"
        );
    }
    let seqs: Vec<u16> = got
        .iter()
        .map(|p| salon_proto::rtp::RtpHeader::parse(p).unwrap().sequence)
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));

    // A rid that was never negotiated.
    let unknown0 = net.metrics().drop_rtp_unknown_ssrc.get();
    for s in 41..=50u16 {
        net.browsers[publisher].publish.send_rtp(
            96,
            s,
            0,
            7999,
            &[(4, b"1"), (10, b"zz")],
            &[0x10, 0],
        );
    }
    net.deliver();
    assert_eq!(net.metrics().drop_rtp_unknown_ssrc.get() - unknown0, 10);
}
