//! The forwarding core, end to end in virtual time: simulated browsers do
//! ICE, DTLS and SRTP against one worker; media goes to everyone else in the
//! room and to no one outside it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Net;
use salon_mediad::{Command, Event, MediaKind, TransportKind};
use salon_proto::rtcp;

fn connected_room() -> (Net, Vec<usize>, usize) {
    let mut net = Net::new(7);
    let a = net.join("NomDuSalon123");
    let b = net.join("NomDuSalon123");
    let c = net.join("NomDuSalon123");
    let other = net.join("AutreSalon");
    net.settle(Duration::from_millis(500));
    for i in [a, b, c, other] {
        let br = &net.browsers[i];
        assert!(br.publish.connected, "publish transport of {i} connected");
        assert!(br.errors.is_empty(), "no errors: {:?}", br.errors);
    }
    (net, vec![a, b, c], other)
}

/// The SSRCs a browser was told about in its last subscribe offer, by kind.
fn offered_ssrcs(offer: &str) -> Vec<(Option<salon_sdp::MediaKind>, u32, bool)> {
    let o = salon_sdp::parse(offer).unwrap();
    o.media
        .iter()
        .map(|m| (m.kind, m.ssrcs.first().copied().unwrap_or(0), is_live(m)))
        .collect()
}

/// An m-line carrying a track (not rejected, not inactive).
fn is_live(m: &salon_sdp::MediaSection) -> bool {
    m.port != 0 && m.direction != salon_sdp::Direction::Inactive
}

/// The SSRCs `publisher`'s m-lines carry in `offer`.
fn ssrcs_of(offer: &str, publisher: salon_mediad::ParticipantId) -> Vec<u32> {
    let o = salon_sdp::parse(offer).unwrap();
    o.media
        .iter()
        .filter(|m| {
            m.msid
                .as_ref()
                .is_some_and(|x| x.stream_id == publisher.0.to_string())
        })
        .flat_map(|m| m.ssrcs.iter().copied())
        .collect()
}

#[test]
fn three_participants_receive_each_other_and_no_one_else() {
    let (mut net, room, other) = connected_room();
    net.run_media(1, 60);
    for &i in &room {
        let b = &net.browsers[i];
        assert!(b.subscribe.connected, "subscribe transport connected");
        let offer = b.offers.last().unwrap();
        let lines = offered_ssrcs(offer);
        assert_eq!(lines.len(), 4, "two tracks from each of the two others");
        let got = b.received();
        for (kind, ssrc, _) in &lines {
            let n = got.iter().filter(|h| h.ssrc == *ssrc).count();
            match kind {
                Some(salon_sdp::MediaKind::Audio) => {
                    assert!(n >= 55, "audio packets on {ssrc}: {n}")
                }
                // Video waits for the first key frame after the leg goes live.
                _ => assert!(n >= 50, "video packets on {ssrc}: {n}"),
            }
        }
        // Nobody receives the publishers' own SSRCs: everything is rewritten.
        let own: HashSet<u32> = net
            .browsers
            .iter()
            .flat_map(|b| [b.audio_ssrc, b.video_ssrc])
            .collect();
        assert!(got.iter().all(|h| !own.contains(&h.ssrc)));
        // Sequence numbers per stream are contiguous.
        for (_, ssrc, _) in &lines {
            let seqs: Vec<u16> = got
                .iter()
                .filter(|h| h.ssrc == *ssrc)
                .map(|h| h.sequence)
                .collect();
            for w in seqs.windows(2) {
                assert_eq!(w[1], w[0].wrapping_add(1), "contiguous sequence on {ssrc}");
            }
        }
    }
    let lonely = &net.browsers[other];
    assert!(
        lonely.subscribe.rtp_in.is_empty(),
        "the other room receives nothing"
    );
    assert!(lonely.offers.is_empty(), "and is offered nothing");
    assert!(net.metrics().tx_rtp.get() > 0);
}

#[test]
fn audio_level_is_carried_and_payload_intact() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 5);
    let b = &net.browsers[room[1]];
    let audio: Vec<&Vec<u8>> = b
        .subscribe
        .rtp_in
        .iter()
        .filter(|p| salon_proto::rtp::RtpHeader::parse(p).unwrap().payload_type == 111)
        .collect();
    assert!(!audio.is_empty());
    for p in audio {
        let h = salon_proto::rtp::RtpHeader::parse(p).unwrap();
        assert_eq!(
            &p[h.payload_offset..h.payload_offset + h.payload_len],
            b"opus-frame-bytes"
        );
        let exts: Vec<(u8, Vec<u8>)> = salon_proto::rtp::extensions(p, &h)
            .map(|(i, d)| (i, d.to_vec()))
            .collect();
        // The transport-wide sequence number (id 3) and the audio level,
        // re-numbered to the subscribe offer's id 4.
        assert_eq!(exts.len(), 2, "{exts:?}");
        assert_eq!((exts[0].0, exts[0].1.len()), (3, 2));
        assert_eq!(exts[1], (4, vec![0x80 | 30]));
    }
}

#[test]
fn nack_is_answered_from_the_cache() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 20);
    let (a, b) = (room[0], room[1]);
    // b asks for a video packet of a again.
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let got = net.browsers[b].seqs(ssrc);
    // The network loses the next video packet of a on its way to b.
    let wanted = got.last().unwrap().wrapping_add(1);
    net.browsers[b].subscribe.lose.push((ssrc, wanted));
    net.run_media(21, 3);
    let got = net.browsers[b].seqs(ssrc);
    assert!(!got.contains(&wanted), "lost on the way");
    let before = net.browsers[b].subscribe.rtp_in.len();
    let mut buf = [0u8; 200];
    let n = rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
    let m = rtcp::write_nack(&mut buf[n..], 1, ssrc, &[wanted]).unwrap();
    net.browsers[b].subscribe.send_rtcp(&buf[..n + m]);
    net.deliver();
    let again = &net.browsers[b].received()[before..];
    assert_eq!(again.len(), 1, "exactly the asked packet comes back");
    assert_eq!((again[0].ssrc, again[0].sequence), (ssrc, wanted));
    assert_eq!(net.metrics().nack_answered.get(), 1);
}

/// A receiver that accepted RTX (as Chrome does) gets retransmissions on
/// the RTX stream its offer announced: its own numbering, the lost number
/// first in the payload, then the original payload.
#[test]
fn nack_is_answered_on_the_rtx_stream_when_accepted() {
    let mut net = Net::new(8);
    let a = net.join("NomDuSalon123");
    let b = net.join_with("NomDuSalon123", |b| b.rtx = true);
    net.settle(Duration::from_millis(500));
    net.run_media(1, 20);
    let ssrc = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let offer = salon_sdp::parse(net.browsers[b].offers.last().unwrap()).unwrap();
    let video = offer
        .media
        .iter()
        .find(|m| m.ssrcs.first() == Some(&ssrc))
        .unwrap();
    assert_eq!(video.ssrc_groups.len(), 1, "{:?}", video.ssrc_groups);
    let rtx_ssrc = video.ssrc_groups[0].ssrcs[1];
    let wanted = net.browsers[b].seqs(ssrc).last().unwrap().wrapping_add(1);
    net.browsers[b].subscribe.lose.push((ssrc, wanted));
    net.run_media(21, 3);
    assert!(
        !net.browsers[b].seqs(ssrc).contains(&wanted),
        "lost on the way"
    );
    let before = net.browsers[b].subscribe.rtp_in.len();
    let mut buf = [0u8; 200];
    let n = rtcp::write_nack(&mut buf, 1, ssrc, &[wanted]).unwrap();
    net.browsers[b].subscribe.send_rtcp(&buf[..n]);
    net.deliver();
    let again = &net.browsers[b].subscribe.rtp_in[before..];
    assert_eq!(again.len(), 1, "exactly the asked packet comes back");
    let h = salon_proto::rtp::RtpHeader::parse(&again[0]).unwrap();
    assert_eq!((h.ssrc, h.payload_type), (rtx_ssrc, 97));
    let payload = h.payload(&again[0]);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), wanted);
    assert_eq!(payload[2] & 0x10, 0x10, "then the VP8 payload: {payload:?}");
    assert_eq!(net.metrics().nack_answered.get(), 1);
    // Nothing was slipped into the media stream's numbering.
    let seqs = net.browsers[b].seqs(ssrc);
    assert!(
        seqs.windows(2)
            .all(|w| w[1] == w[0].wrapping_add(1) || w[1] == wanted.wrapping_add(1)),
        "{seqs:?}"
    );
}

/// A video packet lost on its way from the publisher: mediad NACKs it,
/// the publisher resends it on its RTX stream, and the receiver gets it as
/// the packet it was, in its place; padding on the RTX stream goes nowhere.
#[test]
fn upstream_loss_is_nacked_and_the_publisher_rtx_repairs_it() {
    let mut net = Net::new(9);
    let a = net.join("NomDuSalon123");
    let b = net.join("NomDuSalon123");
    net.settle(Duration::from_millis(500));
    net.run_media(1, 20);
    let video = net.browsers[a].video_ssrc;
    let out = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    let delta = [0x10u8, 0x01, 0x42, 0x43];
    // Packet 21 never arrives; 22 does.
    net.browsers[a]
        .publish
        .send_rtp(96, 22, 22 * 3000, video, &[], &delta);
    net.deliver();
    let nacked: Vec<(u32, Vec<u16>)> = net.browsers[a]
        .publish
        .rtcp_in
        .iter()
        .flat_map(|p| salon_proto::rtcp::RtcpIter::new(p).collect::<Vec<_>>())
        .filter_map(|p| match p {
            Ok(salon_proto::rtcp::RtcpPacket::Nack(n)) => Some((n.media_ssrc, n.lost().collect())),
            _ => None,
        })
        .collect();
    assert_eq!(nacked, [(video, vec![21])]);
    assert_eq!(net.metrics().nack_sent.get(), 1);
    let before = net.browsers[b].seqs(out);
    let last = *before.last().unwrap();
    // The publisher's RTX stream (SSRC video + 1, payload type 97): the
    // original number, then the payload; then a padding-only probe.
    let mut rtx = vec![0u8, 21];
    rtx.extend_from_slice(&[0x10, 0x01, 0x42, 0x42]);
    net.browsers[a]
        .publish
        .send_rtp(97, 700, 21 * 3000, video + 1, &[], &rtx);
    net.browsers[a]
        .publish
        .send_rtp(97, 701, 21 * 3000, video + 1, &[], &[]);
    net.deliver();
    assert_eq!(net.metrics().rtx_received.get(), 1);
    assert_eq!(net.metrics().drop_rtx_unused.get(), 1, "the padding");
    let got: Vec<Vec<u8>> = net.browsers[b]
        .subscribe
        .rtp_in
        .iter()
        .filter(|p| salon_proto::rtp::RtpHeader::parse(p).unwrap().ssrc == out)
        .cloned()
        .collect();
    let repaired = got.last().unwrap();
    let h = salon_proto::rtp::RtpHeader::parse(repaired).unwrap();
    assert_eq!(
        h.sequence,
        last.wrapping_sub(1),
        "in the place of 21, before 22"
    );
    assert_eq!(h.payload_type, 96);
    assert_eq!(h.payload(repaired), [0x10, 0x01, 0x42, 0x42]);
    let mut seqs = net.browsers[b].seqs(out);
    seqs.sort_unstable();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no hole left: {seqs:?}"
    );
    // Chrome also probes by resending packets that did arrive: those (21
    // again, 22) reach no receiver.
    let n = net.browsers[b].subscribe.rtp_in.len();
    for (rtx_seq, osn) in [(702u16, 21u8), (703, 22)] {
        let mut again = vec![0u8, osn];
        again.extend_from_slice(&[0x10, 0x01, 0x42, 0x42]);
        net.browsers[a]
            .publish
            .send_rtp(97, rtx_seq, 21 * 3000, video + 1, &[], &again);
    }
    // Bad RTX: one byte (no room for the original number), a number far
    // behind the cache, one ahead of anything sent.
    net.browsers[a]
        .publish
        .send_rtp(97, 704, 0, video + 1, &[], &[7]);
    for (rtx_seq, osn) in [(705u16, 22u16.wrapping_sub(2000)), (706, 30)] {
        let mut bad = osn.to_be_bytes().to_vec();
        bad.extend_from_slice(&[0x10, 0x01, 0x42, 0x42]);
        net.browsers[a]
            .publish
            .send_rtp(97, rtx_seq, 0, video + 1, &[], &bad);
    }
    net.deliver();
    assert_eq!(net.browsers[b].subscribe.rtp_in.len(), n);
    assert_eq!(net.metrics().rtx_received.get(), 1);
    assert_eq!(net.metrics().drop_rtx_unused.get(), 6);
}

#[test]
fn pli_from_a_receiver_reaches_the_publisher() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 10);
    let (a, b) = (room[0], room[1]);
    let video_out = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    net.settle(Duration::from_millis(400));
    let before = net.browsers[a].publish.rtcp_in.len();
    let mut buf = [0u8; 100];
    let n = rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
    let m = rtcp::write_pli(&mut buf[n..], 1, video_out).unwrap();
    net.browsers[b].subscribe.send_rtcp(&buf[..n + m]);
    net.deliver();
    let video_ssrc = net.browsers[a].video_ssrc;
    let plis = net.browsers[a].publish.rtcp_in[before..]
        .iter()
        .flat_map(|p| {
            rtcp::RtcpIter::new(p)
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
        })
        .filter(|p| matches!(p, rtcp::RtcpPacket::Pli(pli) if pli.media_ssrc == video_ssrc))
        .count();
    assert_eq!(
        plis, 1,
        "the publisher is asked for a key frame of its own SSRC"
    );
}

#[test]
fn publishers_get_receiver_reports() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 60);
    let a = &net.browsers[room[0]];
    let blocks: Vec<u32> = a
        .publish
        .rtcp_in
        .iter()
        .flat_map(|p| {
            rtcp::RtcpIter::new(p)
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
        })
        .filter_map(|p| match p {
            rtcp::RtcpPacket::ReceiverReport(rr) => {
                Some(rr.reports().map(|b| b.ssrc).collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        blocks.contains(&a.audio_ssrc) && blocks.contains(&a.video_ssrc),
        "{blocks:?}"
    );
}

#[test]
fn muting_stops_forwarding_in_the_media_plane() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 10);
    let (a, b) = (room[0], room[1]);
    let a_id = net.browsers[a].id;
    net.command(Command::SetForwarding {
        participant: a_id,
        kind: MediaKind::Audio,
        enabled: false,
    });
    let before = net.browsers[b].received().len();
    net.run_media(11, 20);
    let after: Vec<u8> = net.browsers[b].received()[before..]
        .iter()
        .map(|h| h.payload_type)
        .collect();
    let a_audio_out = net.browsers[b]
        .out_ssrc(a_id, salon_sdp::MediaKind::Audio)
        .unwrap();
    let after_a_audio = net.browsers[b].received()[before..]
        .iter()
        .filter(|h| h.ssrc == a_audio_out)
        .count();
    assert_eq!(after_a_audio, 0, "a's audio no longer reaches b");
    assert!(after.contains(&96), "video still flows");
    assert!(net.metrics().drop_muted.get() >= 20);
    // Unmute: audio flows again, numbering continues without a gap.
    net.command(Command::SetForwarding {
        participant: a_id,
        kind: MediaKind::Audio,
        enabled: true,
    });
    let last_before: u16 = net.browsers[b]
        .received()
        .iter()
        .rfind(|h| h.ssrc == a_audio_out)
        .unwrap()
        .sequence;
    net.run_media(31, 5);
    let resumed = net.browsers[b].seqs(a_audio_out);
    let first_after = resumed.iter().position(|s| *s == last_before).unwrap() + 1;
    assert_eq!(resumed[first_after], last_before.wrapping_add(1));
}

#[test]
fn stopping_one_track_keeps_the_others() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 10);
    let (a, b) = (room[0], room[1]);
    let a_id = net.browsers[a].id;
    let a_video_out = net.browsers[b]
        .out_ssrc(a_id, salon_sdp::MediaKind::Video)
        .unwrap();
    let a_audio_out = net.browsers[b]
        .out_ssrc(a_id, salon_sdp::MediaKind::Audio)
        .unwrap();
    // The simulated browser publishes its video on mid 1.
    net.command(Command::SetTrackForwarding {
        participant: a_id,
        mid: "1".to_owned(),
        enabled: false,
    });
    let before = net.browsers[b].received().len();
    net.run_media(11, 20);
    let count = |net: &Net, ssrc: u32| {
        net.browsers[b].received()[before..]
            .iter()
            .filter(|h| h.ssrc == ssrc)
            .count()
    };
    assert_eq!(count(&net, a_video_out), 0, "a's video stopped");
    assert!(count(&net, a_audio_out) >= 15, "a's audio still flows");
    // A participant-wide video resume does not override the track stop.
    net.command(Command::SetForwarding {
        participant: a_id,
        kind: MediaKind::Video,
        enabled: true,
    });
    net.run_media(31, 10);
    assert_eq!(count(&net, a_video_out), 0, "still stopped");
    net.command(Command::SetTrackForwarding {
        participant: a_id,
        mid: "1".to_owned(),
        enabled: true,
    });
    net.run_media(41, 60);
    assert!(count(&net, a_video_out) > 0, "video resumes at a key frame");
}

#[test]
fn leaving_removes_tracks_for_the_others() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 5);
    let (a, b) = (room[0], room[1]);
    let a_id = net.browsers[a].id;
    let offers_before = net.browsers[b].offers.len();
    let a_ssrcs = ssrcs_of(net.browsers[b].offers.last().unwrap(), a_id);
    assert!(!a_ssrcs.is_empty());
    net.command(Command::Leave { participant: a_id });
    net.settle(Duration::from_millis(50));
    assert_eq!(
        net.browsers[b].offers.len(),
        offers_before + 1,
        "b is re-offered"
    );
    let lines = offered_ssrcs(net.browsers[b].offers.last().unwrap());
    assert_eq!(
        lines.iter().filter(|l| !l.2).count(),
        2,
        "a's two m-lines are inactive"
    );
    let o = salon_sdp::parse(net.browsers[b].offers.last().unwrap()).unwrap();
    assert_eq!(
        o.bundle.len(),
        o.media.len(),
        "inactive lines stay in the BUNDLE group"
    );
    let before = net.browsers[b].received().len();
    net.run_media(6, 10);
    assert!(
        net.browsers[b].received()[before..]
            .iter()
            .all(|h| !a_ssrcs.contains(&h.ssrc))
    );
    assert_eq!(net.worker.participant_count(), 3);
}

#[test]
fn events_report_connection_and_tracks() {
    let (net, room, _) = connected_room();
    let id = net.browsers[room[0]].id;
    assert!(net.events.contains(&Event::Connected {
        participant: id,
        transport: TransportKind::Publish
    }));
    assert!(net.events.contains(&Event::Connected {
        participant: id,
        transport: TransportKind::Subscribe
    }));
    assert!(net.events.contains(&Event::TrackPublished {
        participant: id,
        kind: MediaKind::Video
    }));
}

#[test]
fn a_track_stopped_in_a_new_offer_is_removed_and_can_come_back() {
    let (mut net, room, _) = connected_room();
    net.run_media(1, 10);
    let (a, b) = (room[0], room[1]);
    let a_id = net.browsers[a].id;
    let a_video_out = |net: &Net| {
        let o = salon_sdp::parse(net.browsers[b].offers.last().unwrap()).unwrap();
        o.media
            .iter()
            .filter(|m| {
                m.msid
                    .as_ref()
                    .is_some_and(|x| x.stream_id == a_id.0.to_string())
            })
            .map(|m| (m.kind, m.ssrcs.first().copied(), is_live(m)))
            .collect::<Vec<_>>()
    };
    let (video_mid, stopped_ssrc) = {
        let o = salon_sdp::parse(net.browsers[b].offers.last().unwrap()).unwrap();
        let m = o
            .media
            .iter()
            .find(|m| {
                m.kind == Some(salon_sdp::MediaKind::Video)
                    && m.msid
                        .as_ref()
                        .is_some_and(|x| x.stream_id == a_id.0.to_string())
            })
            .unwrap();
        (m.mid.clone(), m.ssrcs[0])
    };
    // a stops its video (e.g. the end of a screen share).
    let offer = {
        let br = &net.browsers[a];
        common::publish_offer_video(&br.publish, br.audio_ssrc, br.video_ssrc, "inactive")
    };
    net.command(Command::PublishOffer {
        participant: a_id,
        request: salon_mediad::RequestId::default(),
        sdp: offer,
    });
    net.settle(Duration::from_millis(50));
    assert!(
        net.browsers[a].errors.is_empty(),
        "{:?}",
        net.browsers[a].errors
    );
    let o = salon_sdp::parse(net.browsers[b].offers.last().unwrap()).unwrap();
    let m = o.media_by_mid(&video_mid).unwrap();
    assert!(
        !is_live(m) && !m.is_rejected(),
        "a's video m-line is inactive for b, not rejected"
    );
    let before = net.browsers[b].received().len();
    net.run_media(11, 10);
    let after = &net.browsers[b].received()[before..];
    assert!(
        after.iter().all(|h| h.ssrc != stopped_ssrc),
        "no more video from a"
    );
    assert!(
        after.iter().any(|h| h.payload_type == 111),
        "audio still flows"
    );
    assert!(
        net.metrics().drop_rtp_unknown_ssrc.get() >= 10,
        "a's video is now unknown"
    );
    // a sends video again: a new track, a new m-line for b, media flows.
    let offer = {
        let br = &net.browsers[a];
        common::publish_offer(&br.publish, br.audio_ssrc, br.video_ssrc)
    };
    net.command(Command::PublishOffer {
        participant: a_id,
        request: salon_mediad::RequestId::default(),
        sdp: offer,
    });
    net.settle(Duration::from_millis(50));
    let lines = a_video_out(&net);
    let live: Vec<u32> = lines
        .iter()
        .filter(|l| l.0 == Some(salon_sdp::MediaKind::Video) && l.2)
        .filter_map(|l| l.1)
        .collect();
    assert_eq!(live.len(), 1, "one live video line again: {lines:?}");
    net.run_media(21, 10);
    assert!(net.browsers[b].received().iter().any(|h| h.ssrc == live[0]));
}

#[test]
fn the_dominant_speaker_is_announced() {
    let mut net = Net::new(41);
    let a = net.join("Parole");
    let b = net.join("Parole");
    net.settle(Duration::from_millis(500));
    let speak = |net: &mut Net, loud: usize, from: u16, n: u16| {
        for s in from..from + n {
            for i in [a, b] {
                let level = [if i == loud { 0x80 | 15 } else { 127 }];
                let br = &mut net.browsers[i];
                let ssrc = br.audio_ssrc;
                br.publish.send_rtp(
                    111,
                    s,
                    u32::from(s) * 960,
                    ssrc,
                    &[(1, &level[..])],
                    b"opus",
                );
            }
            net.settle(Duration::from_millis(20));
        }
    };
    let dominant = |net: &Net| -> Vec<salon_mediad::ParticipantId> {
        net.events
            .iter()
            .filter_map(|e| match e {
                Event::DominantSpeaker { participant, .. } => Some(*participant),
                _ => None,
            })
            .collect()
    };
    speak(&mut net, a, 1, 75);
    assert_eq!(dominant(&net), vec![net.browsers[a].id]);
    speak(&mut net, b, 76, 100);
    assert_eq!(dominant(&net), vec![net.browsers[a].id, net.browsers[b].id]);
}

#[test]
fn key_frame_requests_are_repeated_while_a_receiver_waits() {
    let mut net = Net::new(61);
    let a = net.join("Attente");
    let b = net.join("Attente");
    net.settle(Duration::from_millis(500));
    // a's video sends only delta frames: b's leg cannot start.
    let video_ssrc = net.browsers[a].video_ssrc;
    let plis_before = net.browsers[a].publish.rtcp_in.len();
    for s in 1..=150u16 {
        let br = &mut net.browsers[a];
        br.publish.send_rtp(
            96,
            s,
            u32::from(s) * 3000,
            video_ssrc,
            &[],
            &[0x10, 0x01, 0x42],
        );
        net.settle(Duration::from_millis(20));
    }
    let plis = net.browsers[a].publish.rtcp_in[plis_before..]
        .iter()
        .flat_map(|p| {
            rtcp::RtcpIter::new(p)
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
        })
        .filter(|p| matches!(p, rtcp::RtcpPacket::Pli(pli) if pli.media_ssrc == video_ssrc))
        .count();
    // 3 s of waiting: a request about every second, not a flood.
    assert!((2..=5).contains(&plis), "{plis} key frame requests");
    let b_out = net.browsers[b]
        .out_ssrc(net.browsers[a].id, salon_sdp::MediaKind::Video)
        .unwrap();
    assert!(
        net.browsers[b].seqs(b_out).is_empty(),
        "nothing before a key frame"
    );
}
