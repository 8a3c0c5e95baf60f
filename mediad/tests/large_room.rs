//! A room larger than a few dozen: every subscriber's offer carries an
//! m-line per remote track (here 2 × 39 = 78), its SRTP context an SSRC per
//! forwarded stream, and the last one in still gets everyone's audio and
//! video.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Net;

/// 40 by default (about 6 s in a debug build; the set-up is quadratic:
/// every join re-offers to everyone); `SALON_LARGE_ROOM=100` tries the
/// default policy's largest room.
fn people() -> usize {
    std::env::var("SALON_LARGE_ROOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

#[test]
fn forty_people_each_receive_the_thirty_nine_others() {
    let people_n = people();
    let mut net = Net::new(41);
    let people: Vec<usize> = (0..people_n).map(|_| net.join("GrandeSalle")).collect();
    net.settle(Duration::from_millis(500));
    for s in 1..=10u16 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    for &i in &people {
        let b = &net.browsers[i];
        assert!(b.errors.is_empty(), "{i}: {:?}", b.errors);
        assert!(b.subscribe.connected, "{i}: subscribe transport connected");
        let offer = salon_sdp::parse(b.offers.last().unwrap()).unwrap();
        assert_eq!(
            offer.media.len(),
            2 * (people_n - 1),
            "{i}: an m-line per remote track"
        );
        let got = b.received();
        for m in &offer.media {
            let ssrc = *m.ssrcs.first().unwrap();
            assert!(
                got.iter().any(|h| h.ssrc == ssrc),
                "{i}: nothing on m-line {} ({:?})",
                m.mid,
                m.kind
            );
        }
    }
    assert_eq!(net.metrics().drop_tx_full.get(), 0);
}
