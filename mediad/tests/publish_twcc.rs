//! Transport-cc feedback to a publisher: once its offer negotiates the
//! transport-wide sequence number extension, mediad answers with it and
//! reports every 50 ms which of the publisher's packets arrived and when;
//! a lost packet is reported lost; recording and reporting allocate nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use common::{Net, publish_offer};
use salon_mediad::{Command, Event};
use salon_proto::rtcp::{RtcpIter, RtcpPacket};
use salon_proto::twcc::{PacketStatus, TwccFeedback};

const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Counts allocations made by the current thread while it is counting
/// (tests run on several threads at once).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Browser `a` renegotiates its publication with the transport-wide
/// extension (id 3) and transport-cc on both codecs, as Chrome offers;
/// returns its video SSRC once mediad answered with both.
fn negotiate_twcc(net: &mut Net, a: usize) -> u32 {
    negotiate(net, a, true)
}

/// Renegotiate browser `a`'s publication, with transport-cc or without.
fn negotiate(net: &mut Net, a: usize, twcc: bool) -> u32 {
    let (id, audio, video) = {
        let b = &net.browsers[a];
        (b.id, b.audio_ssrc, b.video_ssrc)
    };
    let mut offer = publish_offer(&net.browsers[a].publish, audio, video);
    if twcc {
        offer = offer
            .replace(
                "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
                &format!(
                    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:3 {TWCC_URI}\r\n"
                ),
            )
            .replace(
                "a=rtcp-fb:96 nack\r\n",
                "a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 nack\r\n",
            )
            .replace(
                "a=rtpmap:111 opus/48000/2\r\n",
                "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n",
            );
    }
    net.command(Command::PublishOffer {
        participant: id,
        request: salon_mediad::RequestId::default(),
        sdp: offer,
    });
    net.settle(Duration::from_millis(100));
    let answer = net
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::PublishAnswer {
                participant, sdp, ..
            } if *participant == id => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    if !twcc {
        assert!(!answer.contains("transport-cc"), "{answer}");
        return video;
    }
    // Both m-lines: the extension and the feedback type; never REMB.
    assert_eq!(
        answer
            .matches(&format!("a=extmap:3 {TWCC_URI}\r\n"))
            .count(),
        2,
        "{answer}"
    );
    assert!(
        answer.contains("a=rtcp-fb:111 transport-cc\r\n"),
        "{answer}"
    );
    assert!(answer.contains("a=rtcp-fb:96 transport-cc\r\n"), "{answer}");
    assert!(!answer.contains("goog-remb"), "{answer}");
    video
}

#[test]
fn the_publisher_gets_transport_feedback_with_arrivals_and_losses() {
    let mut net = Net::new(81);
    let a = net.join("Retour");
    let _b = net.join("Retour");
    net.settle(Duration::from_millis(300));
    assert_eq!(
        net.metrics().twcc_feedback_sent.get(),
        0,
        "not negotiated yet"
    );
    let video = negotiate_twcc(&mut net, a);

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
    assert_eq!(reported.iter().filter(|r| r.1.is_none()).count(), 3);
    // Arrivals 20 ms apart per sequence number (the virtual clock), within
    // the 250 µs resolution, across feedback packets too.
    let (seq0, at0) = (reported[0].0, reported[0].1.unwrap());
    for &(seq, at) in &reported {
        if let Some(at) = at {
            let want = i64::from(seq - seq0) * 20_000;
            assert!((at - at0 - want).abs() <= 250, "{seq}: {} µs", at - at0);
        }
    }
    assert!(net.metrics().twcc_feedback_sent.get() >= 3);
}

/// Allocations counted while the worker takes `packets` video packets
/// (every 7th lost) one per ms, and while its timeouts run every 10 ms;
/// and the feedback packets it sent.
struct AllocRun {
    packets: u64,
    in_datagrams: u64,
    in_timeouts: u64,
    feedback: u64,
}

fn alloc_run(twcc: bool) -> AllocRun {
    let mut net = Net::new(82);
    let a = net.join("Retour-Alloc");
    net.settle(Duration::from_millis(300));
    let video = negotiate(&mut net, a, twcc);
    // Encrypted beforehand (the browser's work).
    for i in 0..2000u16 {
        if i % 7 != 3 {
            let ext = i.wrapping_add(65000).to_be_bytes();
            let vp8 = [0x10u8, 0x01, 0x42, 0x42];
            net.browsers[a].publish.send_rtp(
                96,
                100 + i,
                u32::from(i) * 90,
                video,
                &[(3, &ext[..])],
                &vp8,
            );
        }
    }
    let src = net.browsers[a].publish.addr;
    let mut inbound: Vec<Vec<u8>> = net.browsers[a].publish.outbox.drain(..).collect();
    let sent_before = net.metrics().twcc_feedback_sent.get();
    let mut now = net.now;
    let (mut in_datagrams, mut in_timeouts) = (0, 0);
    for (i, d) in inbound.iter_mut().enumerate() {
        now += Duration::from_millis(1);
        ALLOCS.with(|c| c.set(0));
        // The layer's first packet allocates its retransmission cache
        // (once per layer, lazily); count from the second on.
        COUNTING.with(|c| c.set(i > 0));
        net.worker.handle_datagram(src, d, now, &mut net.tx);
        COUNTING.with(|c| c.set(false));
        in_datagrams += ALLOCS.with(Cell::get);
        // The same timeout calls in both runs (feedback when due).
        if i % 10 == 9 {
            ALLOCS.with(|c| c.set(0));
            COUNTING.with(|c| c.set(true));
            net.worker.handle_timeout(now, &mut net.tx);
            COUNTING.with(|c| c.set(false));
            in_timeouts += ALLOCS.with(Cell::get);
            net.tx.drain(|_| {});
        }
    }
    AllocRun {
        packets: inbound.len() as u64,
        in_datagrams,
        in_timeouts,
        feedback: net.metrics().twcc_feedback_sent.get() - sent_before,
    }
}

#[test]
fn recording_and_reporting_allocate_nothing() {
    let with = alloc_run(true);
    let without = alloc_run(false);
    // One packet per ms, timeouts every 10 ms: a report every 50 to 60 ms.
    let ms = with.packets;
    assert!(
        (ms / 60..=ms / 50 + 1).contains(&with.feedback),
        "{} feedback packets in {ms} ms",
        with.feedback
    );
    assert_eq!(without.feedback, 0);
    assert_eq!(with.in_datagrams, 0, "recording arrivals allocated");
    // The worker's other periodic work (speakers, allocation rounds) may
    // allocate; reporting must add nothing to it.
    assert_eq!(
        with.in_timeouts, without.in_timeouts,
        "{} feedback packets cost allocations",
        with.feedback
    );
}
