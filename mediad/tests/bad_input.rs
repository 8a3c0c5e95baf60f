//! A flood of malformed and hostile datagrams against a live call: every
//! one is dropped and counted, and the call's media keeps flowing.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Net;
use salon_proto::stun;

fn received_total(net: &Net) -> usize {
    net.browsers.iter().map(|b| b.subscribe.rtp_in.len()).sum()
}

#[test]
fn malformed_flood_is_dropped_counted_and_media_keeps_flowing() {
    let mut net = Net::new(11);
    let a = net.join("Salon-Flood");
    let b = net.join("Salon-Flood");
    net.settle(Duration::from_millis(500));
    for s in 1..=20 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    let flowing = received_total(&net);
    assert!(flowing > 40, "media flows before the flood: {flowing}");

    let now = net.now;
    let stranger: SocketAddr = "127.0.0.9:5555".parse().unwrap();
    let latched = net.browsers[a].publish.addr;
    let publish_ufrag = {
        let offer_answer = net.events.iter().find_map(|e| match e {
            salon_mediad::Event::PublishAnswer {
                participant, sdp, ..
            } if *participant == net.browsers[a].id => Some(sdp.clone()),
            _ => None,
        });
        salon_sdp::parse(&offer_answer.unwrap()).unwrap().ice_ufrag
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let m0 = net.metrics().snapshot();
    let mut sent = 0u64;
    for i in 0..2000u32 {
        let mut d: Vec<u8> = match i % 9 {
            // Truncated STUN header.
            0 => vec![0x00, 0x01, 0x00],
            // A binding request with the right user but a wrong password.
            1 => {
                let mut buf = [0u8; 256];
                let user = format!("{publish_ufrag}:x");
                let n = stun::write_binding_request(
                    &mut buf,
                    &[7; 12],
                    user.as_bytes(),
                    1,
                    2,
                    true,
                    b"not-the-password",
                )
                .unwrap();
                buf[..n].to_vec()
            }
            // An unknown ICE user.
            2 => {
                let mut buf = [0u8; 256];
                let n =
                    stun::write_binding_request(&mut buf, &[8; 12], b"nobody:x", 1, 2, true, b"pw")
                        .unwrap();
                buf[..n].to_vec()
            }
            // DTLS-looking garbage.
            3 => (0..(rnd() % 200) as usize)
                .map(|j| if j == 0 { 22 } else { rnd() as u8 })
                .collect(),
            // RTP-looking garbage (fails SRTP authentication).
            4 => (0..(12 + rnd() % 300) as usize)
                .map(|j| if j == 0 { 0x80 } else { rnd() as u8 })
                .collect(),
            // RTCP-looking garbage with absurd lengths.
            5 => vec![
                0x81, 200, 0xff, 0xff, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            // Unknown first byte.
            6 => vec![0xff; 40],
            // Empty.
            7 => vec![],
            // Pure noise.
            _ => (0..(rnd() % 1400) as usize).map(|_| rnd() as u8).collect(),
        };
        let src = if i % 2 == 0 { stranger } else { latched };
        net.worker.handle_datagram(src, &mut d, now, &mut net.tx);
        sent += 1;
    }
    // Authenticated but hostile: RTP for an SSRC never negotiated, and RTCP
    // whose inner length fields lie.
    for s in 0..50u16 {
        net.browsers[a]
            .publish
            .send_rtp(96, s, 0, 0xdead_beef, &[], b"\x10\x00xx");
        net.browsers[a]
            .publish
            .send_rtcp(&[0x81, 205, 0x00, 0x40, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
    net.deliver();
    let m1 = net.metrics().snapshot();
    let delta = |name: &str| {
        let get = |m: &Vec<(&str, &str, u64)>| m.iter().find(|x| x.0 == name).unwrap().2;
        get(&m1) - get(&m0)
    };
    assert_eq!(delta("rx_datagrams"), sent + 100);
    assert!(
        delta("drop_stun_malformed") >= 222,
        "truncated STUN counted"
    );
    assert!(delta("drop_stun_auth") >= 444, "bad credentials counted");
    // DTLS-, RTP- and RTCP-looking datagrams from the stranger.
    let from_stranger = (0..2000u32)
        .filter(|i| i % 2 == 0 && (3..=5).contains(&(i % 9)))
        .count() as u64;
    assert!(
        delta("drop_unlatched") >= from_stranger,
        "strangers counted"
    );
    assert!(delta("drop_srtp_auth") >= 100, "forged SRTP counted");
    assert!(
        delta("drop_unknown_kind") >= 200,
        "unknown first byte counted"
    );
    assert_eq!(delta("drop_rtp_unknown_ssrc"), 50);
    assert_eq!(delta("drop_rtcp_malformed"), 50);
    // Nothing was latched by the strangers, and the call goes on.
    assert!(net.browsers.iter().all(|x| x.errors.is_empty()));
    for s in 21..=40 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    let after = received_total(&net);
    assert!(
        after >= flowing + 70,
        "media keeps flowing after the flood: {flowing} -> {after}"
    );
    let _ = b;
}
