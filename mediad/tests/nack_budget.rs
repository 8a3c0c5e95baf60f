//! Retransmissions inside bounds, in virtual time: a NACKed packet goes
//! again at most once per round trip and three times in all; a NACK asking
//! for thousands of numbers (duplicates included) cannot amplify past the
//! receiver's retransmission budget.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::Net;
use salon_proto::rtcp;

fn nack(net: &mut Net, b: usize, ssrc: u32, seqs: &[u16]) {
    for chunk in seqs.chunks(60) {
        let mut buf = [0u8; 1200];
        let n = rtcp::write_nack(&mut buf, 1, ssrc, chunk).unwrap();
        net.browsers[b].subscribe.send_rtcp(&buf[..n]);
    }
    net.deliver();
}

#[test]
fn a_packet_goes_again_once_per_round_trip_and_three_times_at_most() {
    let mut net = Net::new(51);
    let a = net.join("Salle");
    // On the RTX stream (as Chrome): each retransmission has its own number.
    let b = net.join_with("Salle", |b| b.rtx = true);
    net.settle(Duration::from_millis(500));
    net.run_media(1, 20);
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let wanted = *net.browsers[b].seqs(ssrc).last().unwrap();
    let count = |net: &Net| net.metrics().nack_answered.get();
    // The same NACK five times at once: one retransmission.
    for _ in 0..5 {
        nack(&mut net, b, ssrc, &[wanted]);
    }
    assert_eq!(count(&net), 1, "once per round trip");
    assert_eq!(net.metrics().nack_too_soon.get(), 4);
    // After a round trip (100 ms before one is measured), again — three
    // times in all.
    for _ in 0..5 {
        net.settle(Duration::from_millis(110));
        nack(&mut net, b, ssrc, &[wanted]);
    }
    assert_eq!(count(&net), 3, "three retransmissions at most");
    assert_eq!(net.metrics().nack_too_many.get(), 3);
}

#[test]
fn a_flood_of_nacks_cannot_amplify_past_the_budget() {
    let mut net = Net::new(52);
    let a = net.join("Salle");
    let b = net.join_with("Salle", |b| b.rtx = true);
    net.settle(Duration::from_millis(500));
    // Feedback from the receiver, so its estimate (and budget) is known.
    for s in 0..40u16 {
        net.send_media(s + 1);
        net.settle(Duration::from_millis(20));
        if s % 3 == 0 {
            net.browsers[b].subscribe.send_twcc(false);
        }
    }
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let estimate = net.worker.estimate_bps(net.browsers[b].id).unwrap();
    let sent: Vec<u16> = net.browsers[b].seqs(ssrc);
    // 6,000 numbers asked for: every packet sent, many times over.
    let asked: Vec<u16> = sent.iter().copied().cycle().take(6_000).collect();
    let before = net.browsers[b].subscribe.rtp_in.len();
    nack(&mut net, b, ssrc, &asked);
    let resent = net.browsers[b].subscribe.rtp_in.len() - before;
    let bytes = net.metrics().rtx_bytes_sent.get();
    // At most one retransmission per packet, and no more bytes than the
    // budget's burst (a fifth of the estimate over a round trip, 3 kB at
    // least) — whatever the NACK asked.
    eprintln!(
        "asked 6000, resent {resent} packets / {bytes} B of {} sent, estimate {estimate}",
        sent.len()
    );
    assert!(resent <= sent.len(), "{resent} for {} packets", sent.len());
    let burst = (estimate as f64 * 0.2 / 8.0 * 0.5).max(3000.0);
    assert!(
        (bytes as f64) <= burst + 1500.0,
        "{bytes} B resent, budget {burst:.0} B (estimate {estimate})"
    );
    // 4,000 numbers looked up (`NACK_ITEMS`' burst), the rest not read.
    assert!(net.metrics().nack_too_soon.get() + net.metrics().nack_over_budget.get() > 3_000);
    assert!(net.metrics().nack_over_rate.get() > 0);
}

/// A receiver that asks for numbers faster than any real loss would makes
/// mediad look up at most `NACK_ITEMS` of them (4,000 at once, then 2,000 a
/// second): the rest of each NACK is not even read.
#[test]
fn a_nack_flood_is_cut_short_past_the_lookup_rate() {
    let mut net = Net::new(53);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 20);
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let asked: Vec<u16> = (0..6_000u16).collect();
    // Three floods at once: 18,000 numbers, 4,000 looked up (each NACK
    // cut short counts its first number unread in both counters).
    let looked = |net: &Net| net.metrics().nack_received.get() - net.metrics().nack_over_rate.get();
    for _ in 0..3 {
        nack(&mut net, b, ssrc, &asked);
    }
    assert_eq!(looked(&net), 4_000);
    assert!(net.metrics().nack_over_rate.get() > 200);
    // A second later, 2,000 more.
    net.settle(Duration::from_secs(1));
    nack(&mut net, b, ssrc, &asked);
    let more = looked(&net) - 4_000;
    assert!((2_000..=2_030).contains(&more), "{more}");
    // A real receiver's NACK still goes through after a quiet second.
    net.settle(Duration::from_secs(2));
    let before = net.metrics().nack_over_rate.get();
    nack(&mut net, b, ssrc, &[5, 6, 7]);
    assert_eq!(net.metrics().nack_over_rate.get(), before);
}

/// One VP8 packet a frame: a key frame first, then temporal layers 0, 2,
/// 1, 2 in turn (Chrome's three-layer pattern).
fn send_layered(net: &mut Net, a: usize, frame: u16) {
    let tid: u8 = if frame == 0 {
        0
    } else {
        [0, 2, 1, 2][usize::from(frame % 4)]
    };
    // X=1 S=1 PID 0; T present; TID, Y=1; VP8 payload header P bit.
    let vp8 = [
        0x90u8,
        0x20,
        (tid << 6) | 0x20,
        u8::from(frame != 0),
        0x42,
        0x42,
    ];
    let ssrc = net.browsers[a].video_ssrc;
    net.browsers[a]
        .publish
        .send_rtp(96, frame + 1, u32::from(frame) * 3000, ssrc, &[], &vp8);
}

/// With its budget short, a receiver's resends of the base temporal layer
/// still go after the upper layers' were refused: those lose a frame each,
/// a base frame lost stops every frame after it until a key frame.
#[test]
fn the_base_temporal_layer_is_resent_before_the_upper_ones() {
    let mut net = Net::new(54);
    let a = net.join("Salle");
    let b = net.join_with("Salle", |b| b.rtx = true);
    net.settle(Duration::from_millis(500));
    for f in 0..160u16 {
        send_layered(&mut net, a, f);
        net.deliver();
        net.settle(Duration::from_millis(20));
        if f % 3 == 0 {
            net.browsers[b].subscribe.send_twcc(false);
        }
    }
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    // What the receiver got: each output number and its temporal layer.
    let mut upper = Vec::new();
    let mut base = Vec::new();
    for p in &net.browsers[b].subscribe.rtp_in {
        let h = salon_proto::rtp::RtpHeader::parse(p).unwrap();
        if h.ssrc != ssrc {
            continue;
        }
        let d = salon_proto::vp8::Vp8Descriptor::parse(h.payload(p)).unwrap();
        let key = h.payload(p).get(d.header_len).is_some_and(|b| b & 1 == 0);
        match d.tid {
            Some(0) if !key => base.push(h.sequence),
            Some(1 | 2) => upper.push(h.sequence),
            _ => {}
        }
    }
    assert!(
        upper.len() > 100 && base.len() > 30,
        "{} / {}",
        upper.len(),
        base.len()
    );
    let answered = |net: &Net| net.metrics().nack_answered.get();
    let refused = |net: &Net| net.metrics().nack_over_budget.get();
    // Every upper-layer packet asked for at once: the budget's half goes.
    nack(&mut net, b, ssrc, &upper);
    let (up_answered, up_refused) = (answered(&net), refused(&net));
    assert!(
        up_refused > 0,
        "the upper layers' resends ran into the budget"
    );
    // The base layer's, asked for right after, still go.
    nack(&mut net, b, ssrc, &base);
    let base_answered = answered(&net) - up_answered;
    eprintln!(
        "upper: {up_answered} resent, {up_refused} refused of {}; base: {base_answered} resent of {}",
        upper.len(),
        base.len()
    );
    assert!(base_answered >= 10, "{base_answered} base-layer resends");
}
