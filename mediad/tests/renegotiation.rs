//! Renegotiation that never wedges, in virtual time: a meeting that
//! empties and refills, an answer that is refused, an offer nobody answers,
//! and a thousand comings and goings with a bounded SDP.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::{Net, PeerConn, publish_offer, server_addr, subscribe_answer};
use salon_mediad::{Command, Event, ParticipantId, RequestId, RoomId};
use salon_sdp::{Direction, MediaKind};

/// Whether browser `to` received audio and video from `from` since its
/// `since`-th received packet.
fn receives(net: &Net, to: usize, from: usize, since: usize) -> bool {
    let b = &net.browsers[to];
    let id = net.browsers[from].id;
    let (Some(audio), Some(video)) = (
        b.out_ssrc(id, MediaKind::Audio),
        b.out_ssrc(id, MediaKind::Video),
    ) else {
        return false;
    };
    let got = &b.received()[since..];
    got.iter().any(|h| h.ssrc == audio) && got.iter().any(|h| h.ssrc == video)
}

fn last_offer(net: &Net, i: usize) -> salon_sdp::SessionDescription {
    salon_sdp::parse(net.browsers[i].offers.last().unwrap()).unwrap()
}

#[test]
fn a_meeting_that_empties_and_refills_keeps_the_one_who_stayed() {
    let mut net = Net::new(13);
    let a = net.join("Reunion");
    let b = net.join("Reunion");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 5);
    assert!(receives(&net, a, b, 0));

    // B leaves: A's offer has every line inactive, yet keeps its BUNDLE
    // group and transport, and A's answer to it is taken.
    net.command(Command::Leave {
        participant: net.browsers[b].id,
    });
    net.settle(Duration::from_millis(50));
    let o = last_offer(&net, a);
    assert_eq!(o.media.len(), 2);
    assert!(o.media.iter().all(|m| m.direction == Direction::Inactive));
    assert!(o.media.iter().all(|m| !m.is_rejected()));
    assert_eq!(o.bundle.len(), 2);
    assert!(
        net.browsers[a].errors.is_empty(),
        "{:?}",
        net.browsers[a].errors
    );

    // C joins: its tracks reuse B's lines, and A receives C.
    let c = net.join("Reunion");
    net.settle(Duration::from_millis(500));
    let o = last_offer(&net, a);
    assert_eq!(o.media.len(), 2, "C's tracks reuse B's two m-lines");
    let since = net.browsers[a].received().len();
    net.run_media(6, 10);
    assert!(receives(&net, a, c, since), "A receives C");
    assert!(receives(&net, c, a, 0), "C receives A");

    // B comes back (a new participant): A receives B too.
    let b2 = net.join("Reunion");
    net.settle(Duration::from_millis(500));
    let since = net.browsers[a].received().len();
    net.run_media(16, 10);
    assert!(receives(&net, a, b2, since), "A receives B again");
    assert!(receives(&net, a, c, since), "and still C");
    assert_eq!(last_offer(&net, a).media.len(), 4);
    assert!(net.browsers[a].errors.is_empty());
    assert_eq!(net.metrics().lines_recycled.get(), 2);
}

#[test]
fn a_refused_answer_resets_the_negotiation_and_a_fresh_offer_goes_out() {
    let mut net = Net::new(14);
    let a = net.join_with("Reunion", |b| b.hold_answers = true);
    let b = net.join("Reunion");
    net.settle(Duration::from_millis(200));
    let a_id = net.browsers[a].id;
    let offers = net.browsers[a].offers.len();
    assert!(offers >= 1, "A was offered B's tracks");
    // A's browser answers garbage.
    net.command(Command::SubscribeAnswer {
        participant: a_id,
        request: RequestId(77),
        sdp: "v=0\r\nthis is not an answer\r\n".into(),
    });
    assert!(net.events.iter().any(|e| matches!(e,
        Event::Error { participant, request: Some(RequestId(77)), .. } if *participant == a_id)));
    assert_eq!(net.metrics().negotiation_failed.get(), 1);
    assert_eq!(
        net.browsers[a].offers.len(),
        offers + 1,
        "a fresh offer at once"
    );
    // The fresh offer is answerable: A answers it properly, then B's media
    // reaches A.
    let offer = net.browsers[a].offers.last().unwrap().clone();
    net.browsers[a].subscribe.set_remote(&offer);
    let answer = subscribe_answer(&net.browsers[a].subscribe, &offer);
    net.browsers[a].subscribe.send_check();
    net.command(Command::SubscribeAnswer {
        participant: a_id,
        request: RequestId(78),
        sdp: answer,
    });
    net.settle(Duration::from_millis(500));
    net.run_media(1, 10);
    assert!(receives(&net, a, b, 0), "A receives B after the reset");
    assert_eq!(net.browsers[a].errors.len(), 1, "only the refused answer");
}

#[test]
fn an_offer_nobody_answers_is_offered_again() {
    let mut net = Net::new(15);
    let a = net.join_with("Reunion", |b| b.hold_answers = true);
    let b = net.join("Reunion");
    net.settle(Duration::from_millis(200));
    let offers = net.browsers[a].offers.len();
    assert!(offers >= 1);
    net.settle(Duration::from_millis(4_000));
    assert_eq!(net.browsers[a].offers.len(), offers, "not before 5 s");
    net.settle(Duration::from_millis(1_100));
    assert_eq!(net.browsers[a].offers.len(), offers + 1, "again after 5 s");
    assert_eq!(net.metrics().offer_timeouts.get(), 1);
    // Answering the new one works.
    net.browsers[a].hold_answers = false;
    let offer = net.browsers[a].offers.last().unwrap().clone();
    net.browsers[a].subscribe.set_remote(&offer);
    let answer = subscribe_answer(&net.browsers[a].subscribe, &offer);
    net.browsers[a].subscribe.send_check();
    let a_id = net.browsers[a].id;
    net.command(Command::SubscribeAnswer {
        participant: a_id,
        request: RequestId(1),
        sdp: answer,
    });
    net.settle(Duration::from_millis(500));
    net.run_media(1, 10);
    assert!(receives(&net, a, b, 0));
    assert!(net.browsers[a].errors.is_empty());
}

/// Drive `cmd` and answer every subscribe offer to `a` at once (others'
/// events are not routed: they have no browser here).
fn command_answering(net: &mut Net, a: usize, cmd: Command) -> usize {
    net.worker.handle_command(cmd, net.now, &mut net.tx);
    let a_id = net.browsers[a].id;
    let mut largest = 0;
    let mut answers = Vec::new();
    while let Some(e) = net.worker.poll_event() {
        match e {
            Event::SubscribeOffer { participant, sdp } if participant == a_id => {
                largest = largest.max(sdp.len());
                net.browsers[a].offers.push(sdp.clone());
                answers.push(subscribe_answer(&net.browsers[a].subscribe, &sdp));
            }
            Event::Error { participant, .. } if participant == a_id => {
                panic!("error for A: {e:?}")
            }
            _ => {}
        }
        for answer in answers.drain(..) {
            net.worker.handle_command(
                Command::SubscribeAnswer {
                    participant: a_id,
                    request: RequestId(0),
                    sdp: answer,
                },
                net.now,
                &mut net.tx,
            );
        }
    }
    largest
}

#[test]
fn a_thousand_comings_and_goings_keep_the_sdp_bounded() {
    let mut net = Net::new(16);
    let a = net.join("Reunion");
    net.settle(Duration::from_millis(200));
    let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
    let template = PeerConn::new(server_addr(), "visitor", cert, net.now);
    let mut largest = 0;
    for i in 0..1000u64 {
        // One or two visitors at a time.
        let visitors: Vec<ParticipantId> = (0..1 + i % 2)
            .map(|k| ParticipantId(10_000 + i * 2 + k))
            .collect();
        for &v in &visitors {
            command_answering(
                &mut net,
                a,
                Command::Join {
                    room: RoomId("Reunion".into()),
                    participant: v,
                },
            );
            let offer = publish_offer(&template, 7000 + v.0 as u32, 9000 + v.0 as u32);
            largest = largest.max(command_answering(
                &mut net,
                a,
                Command::PublishOffer {
                    participant: v,
                    request: RequestId(i),
                    sdp: offer,
                },
            ));
        }
        for &v in &visitors {
            largest = largest.max(command_answering(
                &mut net,
                a,
                Command::Leave { participant: v },
            ));
        }
        let lines = last_offer(&net, a).media.len();
        assert!(lines <= 4, "cycle {i}: {lines} m-lines");
    }
    assert_eq!(last_offer(&net, a).media.len(), 4);
    assert!(largest < 8_000, "largest offer {largest} bytes");
    assert!(net.metrics().lines_recycled.get() >= 2 * 1000);
    assert_eq!(net.metrics().negotiation_failed.get(), 0);
    assert_eq!(net.worker.participant_count(), 1);
}
