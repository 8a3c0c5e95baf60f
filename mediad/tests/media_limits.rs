//! What one participant can make a worker do is bounded: publish offers
//! in size and rate, the memory its tracks hold (retransmission caches
//! only once a layer sends, a per-worker budget), and the allocation work
//! a storm of receive constraints costs. Other rooms on the worker carry
//! on meanwhile.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::{Net, publish_offer};
use salon_mediad::core::WorkerLimits;
use salon_mediad::core::rtx_cache::RtxCache;
use salon_mediad::core::sent_log::SentLog;
use salon_mediad::{Command, ControlError, Event, ParticipantId, RequestId};

/// The error events for `pid`'s request `request`.
fn errors_for(net: &Net, pid: ParticipantId, request: RequestId) -> Vec<ControlError> {
    net.events
        .iter()
        .filter_map(|e| match e {
            Event::Error {
                participant,
                request: Some(r),
                error,
            } if *participant == pid && *r == request => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn answered(net: &Net, pid: ParticipantId, request: RequestId) -> bool {
    net.events.iter().any(|e| {
        matches!(e, Event::PublishAnswer { participant, request: r, .. }
            if *participant == pid && *r == request)
    })
}

/// A two-person room whose audio flows; returns their indices.
fn bystanders(net: &mut Net) -> (usize, usize) {
    let a = net.join("Voisins");
    let b = net.join("Voisins");
    net.settle(Duration::from_millis(300));
    net.run_media(1, 10);
    assert!(net.audio_received(a, b) >= 9 && net.audio_received(b, a) >= 9);
    (a, b)
}

#[test]
fn an_offer_over_the_size_cap_is_refused_unparsed_and_other_rooms_carry_on() {
    let mut net = Net::new(71);
    let (a, b) = bystanders(&mut net);
    let m = net.join("Intrus");
    let m_id = net.browsers[m].id;
    let cap = WorkerLimits::default().max_offer_bytes;
    // A real offer, padded with attribute lines to one byte over the cap.
    let mut offer = {
        let br = &net.browsers[m];
        publish_offer(&br.publish, br.audio_ssrc, br.video_ssrc)
    };
    assert!(offer.len() < 4096, "a real offer: {} bytes", offer.len());
    while offer.len() < cap + 1 {
        offer.push_str("a=x-filler:0123456789abcdef0123456789abcdef\r\n");
    }
    offer.truncate(cap + 1);
    let before = (net.audio_received(a, b), net.audio_received(b, a));
    for i in 0..50 {
        net.command(Command::PublishOffer {
            participant: m_id,
            request: RequestId(100 + i),
            sdp: offer.clone(),
        });
    }
    assert_eq!(
        errors_for(&net, m_id, RequestId(100)),
        vec![ControlError::OfferTooLarge(cap)]
    );
    assert_eq!(
        ControlError::OfferTooLarge(cap).to_string(),
        "offer too large: over 65536 bytes"
    );
    assert_eq!(net.metrics().offers_too_large.get(), 50);
    // The bystanders' room: every packet of the next 20 rounds arrives.
    net.run_media(11, 20);
    assert_eq!(net.audio_received(a, b) - before.0, 20);
    assert_eq!(net.audio_received(b, a) - before.1, 20);
    // The intruder's earlier publish is untouched: its audio still flows.
    assert!(
        net.browsers[m]
            .errors
            .iter()
            .all(|e| e.contains("too large"))
    );
}

#[test]
fn publish_offers_are_rate_limited_per_participant() {
    let mut net = Net::new(72);
    let (a, b) = bystanders(&mut net);
    let m = net.join("Intrus");
    let m_id = net.browsers[m].id;
    let offer = {
        let br = &net.browsers[m];
        publish_offer(&br.publish, br.audio_ssrc, br.video_ssrc)
    };
    // Its join spent one offer of the burst of 5 (2/s since): 300 ms of
    // settling and 200 ms of media refilled one more.
    let mut outcome = Vec::new();
    for i in 0..20 {
        let request = RequestId(200 + i);
        net.command(Command::PublishOffer {
            participant: m_id,
            request,
            sdp: offer.clone(),
        });
        outcome.push(answered(&net, m_id, request));
    }
    let accepted = outcome.iter().filter(|x| **x).count();
    assert!((4..=5).contains(&accepted), "{outcome:?}");
    assert!(outcome[..accepted].iter().all(|x| *x), "the burst first");
    assert_eq!(
        errors_for(&net, m_id, RequestId(219)),
        vec![ControlError::TooManyOffers]
    );
    assert_eq!(
        net.metrics().offers_rate_limited.get(),
        20 - accepted as u64
    );
    // Another participant's offers are its own business.
    let a_id = net.browsers[a].id;
    let a_offer = {
        let br = &net.browsers[a];
        publish_offer(&br.publish, br.audio_ssrc, br.video_ssrc)
    };
    net.command(Command::PublishOffer {
        participant: a_id,
        request: RequestId(300),
        sdp: a_offer,
    });
    assert!(answered(&net, a_id, RequestId(300)));
    // A second later, the intruder may offer again.
    net.settle(Duration::from_secs(1));
    net.command(Command::PublishOffer {
        participant: m_id,
        request: RequestId(301),
        sdp: offer,
    });
    assert!(answered(&net, m_id, RequestId(301)));
    let before = net.audio_received(b, a);
    net.run_media(11, 10);
    assert_eq!(net.audio_received(b, a) - before, 10);
}

#[test]
fn a_subscribe_answer_larger_than_its_offer_warrants_is_refused_unparsed() {
    let mut net = Net::new(73);
    let a = net.join_with("Salle", |b| b.hold_answers = true);
    let _b = net.join("Salle");
    net.settle(Duration::from_millis(100));
    let a_id = net.browsers[a].id;
    let lines = salon_sdp::parse(net.browsers[a].offers.last().unwrap())
        .unwrap()
        .media
        .len();
    let max = WorkerLimits::default().max_answer_bytes(lines);
    net.command(Command::SubscribeAnswer {
        participant: a_id,
        request: RequestId(9),
        sdp: "v=0\r\n".to_owned() + &"a=x\r\n".repeat(max / 5 + 1),
    });
    assert_eq!(
        errors_for(&net, a_id, RequestId(9)),
        vec![ControlError::AnswerTooLarge(max)]
    );
    assert_eq!(net.metrics().offers_too_large.get(), 1);
    // Never wedged: a fresh offer went out.
    assert!(net.metrics().negotiation_failed.get() >= 1);
}

/// `rounds` rounds of media (audio and VP8) from every browser, 10 ms
/// apart: 100 packets a second per stream.
fn fast_media(net: &mut Net, from_seq: u16, rounds: u16) {
    for s in from_seq..from_seq + rounds {
        net.send_media(s);
        net.settle(Duration::from_millis(10));
    }
}

#[test]
fn caches_and_sent_logs_are_allocated_at_their_first_packet() {
    let mut net = Net::new(74);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(300));
    let (used, budget) = net.worker.memory_use();
    assert_eq!(budget, WorkerLimits::DEFAULT_MEMORY_BUDGET);
    assert_eq!(
        net.metrics().memory_budget_bytes.get(),
        WorkerLimits::DEFAULT_MEMORY_BUDGET
    );
    // Two published videos that never sent, a leg for each to the other:
    // no cache, no sent log.
    assert_eq!(used, 0, "{used} bytes before any media");
    net.run_media(1, 5);
    assert_eq!(
        net.worker.memory_use().0,
        2 * RtxCache::MIN_BYTES + 2 * SentLog::BYTES,
        "a small cache per layer, a log per leg"
    );
    assert!(net.audio_received(a, b) >= 4);
    // At 100 packets a second, a cache grows to hold 1.5 s of its stream.
    fast_media(&mut net, 6, 250);
    assert_eq!(
        net.worker.memory_use().0,
        2 * RtxCache::bytes_for(256) + 2 * SentLog::BYTES
    );
    // Leaving gives it all back.
    for i in [a, b] {
        let id = net.browsers[i].id;
        net.command(Command::Leave { participant: id });
    }
    assert_eq!(net.worker.memory_use().0, 0);
    assert_eq!(net.metrics().memory_used_bytes.get(), 0);
}

#[test]
fn a_publish_over_the_memory_budget_is_refused_and_publishers_are_untouched() {
    // Room for the two publishers there, not for a third's potential
    // (a full cache and a log per receiver).
    let limits = WorkerLimits {
        memory_budget_bytes: RtxCache::BYTES + 2 * RtxCache::MIN_BYTES + 4 * SentLog::BYTES - 1,
        ..WorkerLimits::default()
    };
    let mut net = Net::with_limits(75, limits);
    let (a, b) = bystanders(&mut net);
    assert_eq!(
        net.worker.memory_use().0,
        2 * RtxCache::MIN_BYTES + 2 * SentLog::BYTES
    );
    let c = net.join("Voisins");
    let c_id = net.browsers[c].id;
    assert_eq!(
        errors_for(&net, c_id, RequestId::default()),
        vec![ControlError::OverCapacity]
    );
    assert_eq!(
        ControlError::OverCapacity.to_string(),
        "the media server is at capacity"
    );
    assert_eq!(net.metrics().publish_over_budget.get(), 1);
    assert!(
        !net.events.iter().any(
            |e| matches!(e, Event::TrackPublished { participant, .. } if *participant == c_id)
        ),
        "nothing of the refused offer was taken"
    );
    // The publishers already there carry on, to each other and to C.
    let before = (net.audio_received(a, b), net.audio_received(b, a));
    net.run_media(11, 20);
    assert_eq!(net.audio_received(a, b) - before.0, 20);
    assert_eq!(net.audio_received(b, a) - before.1, 20);
    assert!(net.audio_received(c, a) >= 15);
    assert!(net.worker.memory_use().0 <= limits.memory_budget_bytes);
}

#[test]
fn caches_grow_only_as_far_as_the_budget_and_media_flows_on() {
    // Both publishes fit (nothing sends yet); at 100 packets a second
    // both caches want 256 slots, and only one growth fits.
    let limits = WorkerLimits {
        memory_budget_bytes: RtxCache::BYTES + SentLog::BYTES,
        ..WorkerLimits::default()
    };
    let mut net = Net::with_limits(76, limits);
    let a = net.join("Salle");
    let b = net.join("Salle");
    net.settle(Duration::from_millis(300));
    assert!(net.browsers.iter().all(|x| x.errors.is_empty()));
    fast_media(&mut net, 1, 150);
    assert!(net.metrics().rtx_cache_over_budget.get() >= 1);
    let used = net.worker.memory_use().0;
    assert!(used <= limits.memory_budget_bytes, "{used}");
    assert_eq!(
        used,
        RtxCache::bytes_for(256) + RtxCache::MIN_BYTES + 2 * SentLog::BYTES
    );
    assert!(net.audio_received(a, b) >= 145 && net.audio_received(b, a) >= 145);
    let video_to = |to: usize, from: usize| {
        let ssrc = net.browsers[to]
            .out_ssrc(net.browsers[from].id, salon_sdp::MediaKind::Video)
            .unwrap();
        net.browsers[to].seqs(ssrc).len()
    };
    assert!(
        video_to(a, b) >= 140 && video_to(b, a) >= 140,
        "video flows"
    );
}

#[test]
fn a_storm_of_receive_constraints_costs_one_allocation_round() {
    let mut net = Net::new(77);
    let a = net.join("Salle");
    let b = net.join("Salle");
    let c = net.join("Salle");
    net.run_media(1, 10);
    let ids: Vec<ParticipantId> = [a, b, c].iter().map(|&i| net.browsers[i].id).collect();
    // Right after a periodic round: the next is 100 ms away.
    let rounds = net.metrics().alloc_rounds.get();
    while net.metrics().alloc_rounds.get() == rounds {
        net.settle(Duration::from_millis(10));
    }
    let before = net.metrics().alloc_rounds.get();
    for i in 0..600u16 {
        let receiver = ids[usize::from(i) % 3];
        let publisher = ids[(usize::from(i) + 1) % 3];
        net.worker.handle_command(
            Command::SetReceiveConstraints {
                participant: receiver,
                publisher,
                mid: "1".into(),
                max_height: Some(90 + i % 600),
            },
            net.now,
            &mut net.tx,
        );
    }
    net.pump();
    assert_eq!(net.metrics().alloc_rounds.get(), before, "none inline");
    net.settle(Duration::from_millis(10));
    assert_eq!(net.metrics().alloc_rounds.get(), before + 1, "one round");
    // The periodic rounds go on at their pace: ~9 more in the next 90 ms
    // would be one per tick; there is one.
    net.settle(Duration::from_millis(80));
    assert_eq!(net.metrics().alloc_rounds.get(), before + 1);
    net.settle(Duration::from_millis(20));
    assert_eq!(net.metrics().alloc_rounds.get(), before + 2);
    assert!(net.browsers.iter().all(|x| x.errors.is_empty()));
}

// docs/security.md sizes the default budget with these.
const _: () = assert!(RtxCache::BYTES >= 750_000 && RtxCache::BYTES < 800_000);
const _: () = assert!(SentLog::BYTES <= 12 * 1024);
const _: () = {
    let layers = WorkerLimits::DEFAULT_MEMORY_BUDGET / RtxCache::BYTES;
    assert!(layers >= 650 && layers < 720);
};

#[test]
fn a_browser_answering_garbage_gets_fresh_offers_ever_more_slowly() {
    let mut net = Net::new(78);
    let a = net.join_with("Salle", |b| b.hold_answers = true);
    let _b = net.join("Salle");
    let a_id = net.browsers[a].id;
    let start = net.now;
    let mut answered = 0;
    // Ten seconds of answering every offer at once with something wrong.
    while net.now < start + Duration::from_secs(10) {
        while answered < net.browsers[a].offers.len() {
            answered += 1;
            net.command(Command::SubscribeAnswer {
                participant: a_id,
                request: RequestId(answered as u64),
                sdp: "v=0\r\nnot an answer\r\n".into(),
            });
        }
        net.settle(Duration::from_millis(10));
    }
    // Without a backoff this loop would have parsed and offered without
    // end; with it: at once, then 0.25, 0.5, 1, 2, 4 s apart.
    let offers = net.browsers[a].offers.len();
    assert!((5..=9).contains(&offers), "{offers} offers in 10 s");
    assert_eq!(net.metrics().negotiation_failed.get(), offers as u64);
    // The next fresh offer comes at most 5 s later; a right answer to it
    // ends the loop: the negotiation is live again.
    net.settle(Duration::from_secs(5));
    assert_eq!(net.browsers[a].offers.len(), offers + 1);
    let last = net.browsers[a].offers.last().unwrap().clone();
    let answer = {
        let b = &mut net.browsers[a];
        b.subscribe.set_remote(&last);
        b.subscribe.send_check();
        common::subscribe_answer(&b.subscribe, &last)
    };
    net.command(Command::SubscribeAnswer {
        participant: a_id,
        request: RequestId(999),
        sdp: answer,
    });
    assert!(errors_for(&net, a_id, RequestId(999)).is_empty());
    net.settle(Duration::from_millis(300));
    net.run_media(1, 10);
    assert!(net.audio_received(a, 1) >= 8);
}
