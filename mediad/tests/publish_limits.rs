//! One publisher cannot make the media plane hold more than a participant
//! needs: one microphone, a camera and a screen share, three simulcast
//! layers each. An offer with many m-lines and rids is answered with the
//! rest rejected, and nothing beyond is allocated.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::time::Duration;

use common::{Net, publish_offer_simulcast};
use salon_mediad::{Command, Event, RequestId};
use salon_sdp::MediaKind;

/// A simulcast offer grown to `audio` microphones and `video` cameras of
/// `rids` layers each (mids 0.. in order, all bundled).
fn greedy_offer(base: &str, audio: usize, video: usize, rids: usize) -> String {
    let v_at = base.find("m=video").unwrap();
    let a_at = base.find("m=audio").unwrap();
    let session = &base[..a_at];
    let audio_sec = &base[a_at..v_at];
    let rid_lines: String = (0..rids).map(|i| format!("a=rid:r{i} send\r\n")).collect();
    let names: Vec<String> = (0..rids).map(|i| format!("r{i}")).collect();
    let video_sec = base[v_at..].replace(
        "a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n",
        &format!("{rid_lines}a=simulcast:send {}\r\n", names.join(";")),
    );
    let mut mids = Vec::new();
    let mut body = String::new();
    for i in 0..audio + video {
        let (sec, old_mid) = if i < audio {
            (audio_sec, "a=mid:0")
        } else {
            (video_sec.as_str(), "a=mid:1")
        };
        body += &sec
            .replace(old_mid, &format!("a=mid:{i}"))
            .replace("a=ssrc:", &format!("a=ssrc:{}", 7 + i));
        mids.push(i.to_string());
    }
    session.replace(
        "a=group:BUNDLE 0 1",
        &format!("a=group:BUNDLE {}", mids.join(" ")),
    ) + &body
}

#[test]
fn a_greedy_offer_gets_one_microphone_two_videos_and_three_layers() {
    let mut net = Net::new(41);
    let a = net.join_with("Salle", |b| b.simulcast = true);
    let viewer = net.join("Salle");
    net.settle(Duration::from_millis(300));
    let base = {
        let b = &net.browsers[a];
        publish_offer_simulcast(&b.publish, b.audio_ssrc)
    };
    let offer = greedy_offer(&base, 3, 6, 8);
    assert!(salon_sdp::parse(&offer).is_ok(), "a well-formed offer");
    let a_id = net.browsers[a].id;
    let published_before = net
        .events
        .iter()
        .filter(|e| matches!(e, Event::TrackPublished { participant, .. } if *participant == a_id))
        .count();
    net.command(Command::PublishOffer {
        participant: a_id,
        request: RequestId(5),
        sdp: offer,
    });
    let answer = net
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::PublishAnswer { request, sdp, .. } if *request == RequestId(5) => {
                Some(sdp.clone())
            }
            _ => None,
        })
        .expect("answered");
    let ans = salon_sdp::parse(&answer).unwrap();
    assert_eq!(ans.media.len(), 9, "every m-line answered, in order");
    let live = |kind| {
        ans.media
            .iter()
            .filter(|m| m.kind == Some(kind) && !m.is_rejected())
            .count()
    };
    assert_eq!(live(MediaKind::Audio), 1);
    assert_eq!(live(MediaKind::Video), 2);
    for m in ans.media.iter().filter(|m| !m.is_rejected()) {
        assert!(m.rids.len() <= 3, "mid {}: {} rids", m.mid, m.rids.len());
    }
    let published = net
        .events
        .iter()
        .filter(|e| matches!(e, Event::TrackPublished { participant, .. } if *participant == a_id))
        .count();
    assert!(published - published_before <= 3);
    assert_eq!(
        net.worker.layer_states(a_id, "3", net.now).len(),
        3,
        "3 layers of 8"
    );
    assert_eq!(
        net.worker.layer_states(a_id, "5", net.now).len(),
        0,
        "a third video: none"
    );
    // The viewer is offered at most what the limits allow of A.
    net.settle(Duration::from_millis(100));
    let o = salon_sdp::parse(net.browsers[viewer].offers.last().unwrap()).unwrap();
    let of_a = o
        .media
        .iter()
        .filter(|m| {
            m.msid
                .as_ref()
                .is_some_and(|x| x.stream_id == a_id.0.to_string())
        })
        .count();
    assert!(of_a <= 3, "{of_a} of A's lines offered to the viewer");
}
