//! Media: SDP and settings reach mediad with the sender's id, and mediad's
//! events reach only their participant (or the room, for the dominant
//! speaker); screen shares are announced.

use super::support::*;
use crate::control::{ControlError, MediaKind, RequestId, RoomId, TransportKind};
use crate::protocol::WireTransport;

#[test]
fn sdp_goes_to_media_with_the_sender_id() {
    let mut hub = Hub::with_seed(7);
    join(&mut hub, 4, "R", "Ana");
    hub.handle_frame(p(4), r#"{"type":"publish-offer","sdp":"offer"}"#, t0());
    hub.handle_frame(p(4), r#"{"type":"subscribe-answer","sdp":"answer"}"#, t0());
    let cmds = commands(&drain(&mut hub));
    assert!(matches!(&cmds[..], [
        Command::PublishOffer { participant: a, request: r1, sdp: s1 },
        Command::SubscribeAnswer { participant: b, request: r2, sdp: s2 },
    ] if *a == p(4) && *b == p(4) && s1 == "offer" && s2 == "answer" && r1 != r2));
}

#[test]
fn media_events_reach_only_their_socket() {
    let mut hub = Hub::with_seed(7);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    hub.handle_open(p(3)); // lobby: no media events
    let events = [
        Event::PublishAnswer {
            participant: p(1),
            request: RequestId(1),
            sdp: "ans".into(),
        },
        Event::SubscribeOffer {
            participant: p(2),
            sdp: "off".into(),
        },
        Event::Connected {
            participant: p(1),
            transport: TransportKind::Subscribe,
        },
        Event::Error {
            participant: p(2),
            request: Some(RequestId(2)),
            error: ControlError::InvalidAnswer("bad sdp".into()),
        },
        Event::TrackPublished {
            participant: p(1),
            kind: MediaKind::Video,
        },
        Event::PublishAnswer {
            participant: p(3),
            request: RequestId(3),
            sdp: "x".into(),
        },
        Event::PublishAnswer {
            participant: p(99),
            request: RequestId(3),
            sdp: "x".into(),
        },
    ];
    for e in events {
        hub.handle_media_event(e);
    }
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![
            ServerMessage::PublishAnswer { sdp: "ans".into() },
            ServerMessage::Connected {
                transport: WireTransport::Subscribe
            },
        ]
    );
    assert_eq!(
        sends_to(&out, p(2)),
        vec![
            ServerMessage::SubscribeOffer { sdp: "off".into() },
            ServerMessage::Error {
                code: ErrorCode::Media,
                message: "invalid answer: bad sdp".into()
            },
        ]
    );
    assert!(sends_to(&out, p(3)).is_empty());
    assert_eq!(out.len(), 4);
    // After leaving, late events are dropped.
    hub.handle_close(p(1), t0());
    drain(&mut hub);
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(1),
        sdp: "late".into(),
    });
    assert!(drain(&mut hub).is_empty());
}

#[test]
fn screen_share_is_announced_to_the_room_and_to_newcomers() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "X", "Cy");
    hub.handle_frame(p(1), r#"{"type":"screen","mid":"2"}"#, t0());
    let out = drain(&mut hub);
    let share = ServerMessage::ScreenShare {
        id: 1,
        track_id: Some("1-2".into()),
    };
    assert_eq!(sends_to(&out, p(1)), vec![share.clone()]);
    assert_eq!(sends_to(&out, p(2)), vec![share.clone()]);
    assert!(sends_to(&out, p(3)).is_empty());
    // Repeating it changes nothing.
    hub.handle_frame(p(1), r#"{"type":"screen","mid":"2"}"#, t0());
    assert!(drain(&mut hub).is_empty());
    // A newcomer learns about the running share right after `joined`.
    let out = join(&mut hub, 4, "R", "Dan");
    let msgs = sends_to(&out, p(4));
    assert!(matches!(msgs[0], ServerMessage::Joined { .. }));
    assert_eq!(msgs[1..], [share]);
    // Stop, later than the state interval (sooner waits for its end).
    hub.handle_frame(p(1), r#"{"type":"screen","mid":null}"#, at(1000));
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::ScreenShare {
            id: 1,
            track_id: None
        }]
    );
}

#[test]
fn audio_only_is_recorded_and_sent_to_mediad() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    assert_eq!(hub.audio_only(p(1)), Some(false));
    hub.handle_frame(p(1), r#"{"type":"audio-only","on":true}"#, t0());
    let out = drain(&mut hub);
    assert!(matches!(
        commands(&out)[..],
        [Command::SetAudioOnly { participant, enabled: true }] if participant == p(1)
    ));
    assert_eq!(hub.audio_only(p(1)), Some(true));
    // A repeat reaches nobody (a flood of them costs mediad nothing).
    for _ in 0..100 {
        hub.handle_frame(p(1), r#"{"type":"audio-only","on":true}"#, t0());
    }
    assert!(drain(&mut hub).is_empty());
}

#[test]
fn dominant_speaker_goes_to_the_room() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "X", "Cy");
    hub.handle_media_event(Event::DominantSpeaker {
        room: RoomId("R".into()),
        participant: p(2),
    });
    // A stale event (wrong room) is dropped.
    hub.handle_media_event(Event::DominantSpeaker {
        room: RoomId("X".into()),
        participant: p(2),
    });
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::DominantSpeaker { id: 2 }]
    );
    assert_eq!(out.len(), 2);
}

/// The shipped policy's media settings reach mediad: the room's last-N
/// for everyone, a receive cap for the guest admitted from the lobby
/// (not for the agent); mediad's layers-wanted reaches the publisher.
#[test]
fn media_settings_reach_mediad_and_layers_wanted_the_publisher() {
    let mut hub = policy_hub("policy");
    let out = join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
    let cmds = commands(&out);
    assert!(
        cmds.contains(&Command::SetLastN {
            participant: p(1),
            last_n: Some(20)
        }),
        "{cmds:?}"
    );
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::SetBitrateCap { .. })),
        "agents are not capped: {cmds:?}"
    );
    join_at(&mut hub, 2, "R", "Guest", None, t0());
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        t0(),
    );
    let cmds = commands(&out);
    assert!(cmds.contains(&Command::SetLastN {
        participant: p(2),
        last_n: Some(20)
    }));
    assert!(
        cmds.contains(&Command::SetBitrateCap {
            participant: p(2),
            bps: Some(2_500_000)
        }),
        "{cmds:?}"
    );
    hub.handle_media_event(Event::LayersWanted {
        participant: p(1),
        mid: "1".into(),
        active: vec![true, false, false],
    });
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::LayersWanted {
            mid: "1".into(),
            active: vec![true, false, false]
        }]
    );
    assert!(sends_to(&out, p(2)).is_empty());
    // Without a policy setting, the server default applies.
    let mut hub = Hub::with_seed(3);
    hub.set_default_last_n(Some(7));
    let out = join(&mut hub, 5, "S", "Ana");
    assert!(commands(&out).contains(&Command::SetLastN {
        participant: p(5),
        last_n: Some(7)
    }));
}
