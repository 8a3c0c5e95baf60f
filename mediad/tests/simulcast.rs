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

const HEIGHTS: [u16; 3] = [180, 360, 720];

/// One packet per layer; a key frame (with its frame size) every 10
/// packets. The payload ends with the layer's name.
fn send_layers(net: &mut Net, publisher: usize, seq: u16) {
    let b = &mut net.browsers[publisher];
    for (i, ssrc) in LAYER_SSRCS.iter().enumerate() {
        let mut vp8 = vec![0x10u8];
        if seq % 10 == 1 {
            vp8.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
            vp8.extend_from_slice(&(HEIGHTS[i] * 16 / 9).to_le_bytes());
            vp8.extend_from_slice(&HEIGHTS[i].to_le_bytes());
        } else {
            vp8.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        vp8.extend_from_slice(&[b'L', b'0' + i as u8]);
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

/// The layer names in the video packets `viewer` received on `ssrc` since
/// packet index `from`.
fn layers_seen(net: &Net, viewer: usize, ssrc: u32, from: usize) -> Vec<u8> {
    net.browsers[viewer].subscribe.rtp_in[from..]
        .iter()
        .filter_map(|p| {
            let h = salon_proto::rtp::RtpHeader::parse(p).unwrap();
            (h.ssrc == ssrc).then(|| *h.payload(p).last().unwrap())
        })
        .collect()
}

fn simulcast_room(seed: u64) -> (Net, usize, usize, u32) {
    let mut net = Net::new(seed);
    let publisher = net.join_with("Simulcast", |b| b.simulcast = true);
    let viewer = net.join("Simulcast");
    net.settle(Duration::from_millis(500));
    for s in 1..=20 {
        send_layers(&mut net, publisher, s);
        net.settle(Duration::from_millis(20));
    }
    let out = net.browsers[viewer]
        .out_ssrc(net.browsers[publisher].id, salon_sdp::MediaKind::Video)
        .unwrap();
    (net, publisher, viewer, out)
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
        assert!(
            h.payload(p).ends_with(b"L2"),
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

#[test]
fn a_small_tile_gets_the_small_layer_and_a_large_one_the_large() {
    let (mut net, publisher, viewer, out) = simulcast_room(32);
    let pid = net.browsers[publisher].id;
    let vid = net.browsers[viewer].id;
    let set = |net: &mut Net, h: Option<u16>| {
        net.command(salon_mediad::Command::SetReceiveConstraints {
            participant: vid,
            publisher: pid,
            mid: "1".into(),
            max_height: h,
        })
    };
    set(&mut net, Some(200));
    let from = net.browsers[viewer].subscribe.rtp_in.len();
    for s in 21..=60 {
        send_layers(&mut net, publisher, s);
        net.settle(Duration::from_millis(20));
    }
    let seen = layers_seen(&net, viewer, out, from);
    // The switch happens at the next key frame of the small layer.
    let tail: Vec<u8> = seen.iter().rev().take(20).copied().collect();
    assert!(
        tail.iter().all(|l| *l == b'0'),
        "small tile: lowest layer, got {seen:?}"
    );
    set(&mut net, Some(720));
    let from = net.browsers[viewer].subscribe.rtp_in.len();
    for s in 61..=100 {
        send_layers(&mut net, publisher, s);
        net.settle(Duration::from_millis(20));
    }
    let seen = layers_seen(&net, viewer, out, from);
    let tail: Vec<u8> = seen.iter().rev().take(20).copied().collect();
    assert!(
        tail.iter().all(|l| *l == b'2'),
        "large tile: best layer, got {seen:?}"
    );
    // Numbering stayed continuous across both switches.
    let seqs: Vec<u16> = net.browsers[viewer]
        .received()
        .iter()
        .filter(|h| h.ssrc == out)
        .map(|h| h.sequence)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    // A track that does not exist is refused.
    net.command(salon_mediad::Command::SetReceiveConstraints {
        participant: vid,
        publisher: pid,
        mid: "9".into(),
        max_height: None,
    });
    assert!(
        net.browsers[viewer]
            .errors
            .iter()
            .any(|e| e.contains("no such video track"))
    );
}

#[test]
fn audio_only_receivers_get_no_video_bytes() {
    let (mut net, publisher, viewer, out) = simulcast_room(33);
    let vid = net.browsers[viewer].id;
    net.command(salon_mediad::Command::SetAudioOnly {
        participant: vid,
        enabled: true,
    });
    let from = net.browsers[viewer].subscribe.rtp_in.len();
    for s in 21..=40 {
        send_layers(&mut net, publisher, s);
        net.send_media(s); // audio (and the viewer's own media)
        net.settle(Duration::from_millis(20));
    }
    let after = &net.browsers[viewer].received()[from..];
    assert!(
        after.iter().all(|h| h.payload_type != 96),
        "no video at all"
    );
    assert!(
        after.iter().any(|h| h.payload_type == 111),
        "audio still flows"
    );
    net.command(salon_mediad::Command::SetAudioOnly {
        participant: vid,
        enabled: false,
    });
    let from = net.browsers[viewer].subscribe.rtp_in.len();
    for s in 41..=60 {
        send_layers(&mut net, publisher, s);
        net.settle(Duration::from_millis(20));
    }
    assert!(
        !layers_seen(&net, viewer, out, from).is_empty(),
        "video resumes"
    );
}
