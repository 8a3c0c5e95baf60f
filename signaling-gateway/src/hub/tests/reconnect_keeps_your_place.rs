//! Reconnect: a dropped signaling socket is not a departure. The member
//! keeps its id, role, admission and media state for the grace period, the
//! room sees `participant-reconnecting`, and a new socket takes the place
//! back with the single-use resume token; past the grace period the member
//! leaves as today.

use std::time::Duration;

use salon_plugins::Role;
use serde_json::json;

use super::support::*;
use crate::control::MediaKind;
use crate::protocol::ResumeMedia;

const GRACE_MS: u64 = 30_000;

/// An agent (1) moderating room R, guest 2 admitted from the lobby; a 30 s
/// grace period. Returns the hub and the guest's resume token.
fn agent_and_admitted_guest() -> (Hub, String) {
    let mut hub = agent_and_waiting_guest();
    hub.set_reconnect_grace(Duration::from_millis(GRACE_MS));
    let out = frame(&mut hub, 1, json!({"type": "admit", "id": 2}), t0());
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
    (hub, resume_token_of(&out, p(2)))
}

fn resume(hub: &mut Hub, socket: u64, token: &str, media: &str, now: Now) -> Vec<Output> {
    hub.handle_open(p(socket));
    frame(
        hub,
        socket,
        json!({"type": "resume", "token": token, "media": media}),
        now,
    )
}

fn left(msgs: &[ServerMessage], id: u64) -> bool {
    msgs.iter()
        .any(|m| matches!(m, ServerMessage::ParticipantLeft { id: i } if *i == id))
}

#[test]
fn a_dropped_socket_keeps_id_role_and_admission_for_the_grace_period() {
    let (mut hub, _) = agent_and_admitted_guest();
    hub.handle_close(p(2), at(1_000));
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantReconnecting { id: 2 }]
    );
    assert!(commands(&out).is_empty(), "mediad keeps the participant");
    assert!(hub.is_reconnecting(p(2)));
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
    assert_eq!(hub.participant_count(), 2);
    assert_eq!(
        hub.poll_timeout().map(|(t, _)| t),
        Some(at(1_000 + GRACE_MS).mono)
    );
    // Within the grace period nothing happens; messages to it are dropped.
    hub.handle_timeout(at(GRACE_MS));
    assert!(drain(&mut hub).is_empty());
    let out = frame(
        &mut hub,
        1,
        json!({"type": "chat", "text": "là ?"}),
        at(2_000),
    );
    assert!(sends_to(&out, p(2)).is_empty());
    assert_eq!(chats(&sends_to(&out, p(1))).len(), 1);
    // A newcomer sees it in the roster, marked reconnecting.
    let out = join_at(
        &mut hub,
        3,
        "R",
        "Agent3",
        Some(&token("R", "a3")),
        at(3_000),
    );
    let Some(ServerMessage::Joined { participants, .. }) = sends_to(&out, p(3)).first().cloned()
    else {
        panic!("no joined");
    };
    let guest = participants.iter().find(|i| i.id == 2).unwrap();
    assert!(guest.reconnecting);
}

#[test]
fn resume_restores_the_session_and_tells_the_others() {
    let (mut hub, token) = agent_and_admitted_guest();
    let pad = hub.pad_token_of(p(2)).unwrap();
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    let out = resume(&mut hub, 10, &token, "kept", at(5_000));
    let to_new = sends_to(&out, p(10));
    let Some(ServerMessage::Resumed {
        id,
        room,
        role,
        participants,
        pad_token,
        resume_token,
        media,
        ..
    }) = to_new.first().cloned()
    else {
        panic!("expected resumed, got {to_new:?}");
    };
    assert_eq!((id, room.as_str(), role), (2, "R", WireRole::Guest));
    assert_eq!(participants.iter().map(|i| i.id).collect::<Vec<_>>(), [1]);
    assert_eq!(pad_token, pad, "the pad token stays valid");
    assert_ne!(resume_token, token, "a fresh token each time");
    assert_eq!(resume_token.len(), 32, "128 bits in hex");
    assert_eq!(media, ResumeMedia::Kept);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantResumed { id: 2 }]
    );
    assert!(commands(&out).is_empty(), "media kept: nothing for mediad");
    assert!(!hub.is_reconnecting(p(2)));
    assert!(hub.poll_timeout().is_none());
    // The new socket speaks for participant 2, and hears for it.
    let out = frame(
        &mut hub,
        10,
        json!({"type": "chat", "text": "revenu"}),
        at(6_000),
    );
    assert_eq!(
        chats(&sends_to(&out, p(1))),
        [(2, "revenu".to_owned(), None)]
    );
    assert_eq!(chats(&sends_to(&out, p(10))).len(), 1);
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(2),
        sdp: "v=0".into(),
    });
    assert!(matches!(
        &drain(&mut hub)[..],
        [Output::Send { to, msg: ServerMessage::SubscribeOffer { .. } }] if *to == p(10)
    ));
    // The pad still opens with the same token.
    hub.handle_pad_open(PadConnId(7), &pad);
    assert_eq!(pad_close(&drain(&mut hub), PadConnId(7)), None);
    // The new socket drops too: the same grace again, then a resume again.
    hub.handle_close(p(10), at(7_000));
    assert_eq!(
        sends_to(&drain(&mut hub), p(1)),
        vec![ServerMessage::ParticipantReconnecting { id: 2 }]
    );
    let out = resume(&mut hub, 11, &resume_token, "kept", at(8_000));
    assert!(matches!(
        sends_to(&out, p(11)).first(),
        Some(ServerMessage::Resumed { id: 2, .. })
    ));
}

#[test]
fn reused_forged_or_expired_tokens_are_refused() {
    let (mut hub, token) = agent_and_admitted_guest();
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    resume(&mut hub, 10, &token, "kept", at(2_000));
    // Reused: refused, and the participant is untouched.
    hub.handle_close(p(10), at(3_000));
    drain(&mut hub);
    let out = resume(&mut hub, 11, &token, "kept", at(4_000));
    assert_eq!(
        error_code(&sends_to(&out, p(11))),
        Some(ErrorCode::ResumeFailed)
    );
    assert!(sends_to(&out, p(1)).is_empty());
    assert!(hub.is_reconnecting(p(2)));
    // Forged (and malformed).
    for forged in ["00000000000000000000000000000000", "x", ""] {
        let out = frame(
            &mut hub,
            11,
            json!({"type": "resume", "token": forged}),
            at(4_000),
        );
        let code = error_code(&sends_to(&out, p(11)));
        assert!(
            matches!(code, Some(ErrorCode::ResumeFailed | ErrorCode::BadMessage)),
            "{forged:?}: {code:?}"
        );
    }
    // `resume` is only a first message: a member cannot resume another.
    let out = frame(
        &mut hub,
        1,
        json!({"type": "resume", "token": token}),
        at(4_000),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::AlreadyJoined)
    );
    // The refused socket may join normally: a guest knocks again.
    let out = frame(
        &mut hub,
        11,
        json!({"type": "join", "room": "R", "name": "Guest"}),
        at(4_500),
    );
    assert_eq!(
        sends_to(&out, p(11)),
        vec![ServerMessage::Lobby {
            id: 11,
            room: "R".into()
        }]
    );
}

#[test]
fn past_the_grace_period_the_participant_has_left_and_a_guest_knocks_again() {
    let (mut hub, token) = agent_and_admitted_guest();
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    hub.handle_timeout(at(1_000 + GRACE_MS));
    let out = drain(&mut hub);
    assert!(left(&sends_to(&out, p(1)), 2));
    assert!(
        commands(&out)
            .iter()
            .any(|c| matches!(c, Command::Leave { participant } if *participant == p(2)))
    );
    assert_eq!(hub.role(p(2)), None);
    assert_eq!(hub.participant_count(), 1);
    assert!(hub.poll_timeout().is_none());
    // Too late: the token is dead; joining again means knocking again.
    let out = resume(&mut hub, 10, &token, "new", at(40_000));
    assert_eq!(
        error_code(&sends_to(&out, p(10))),
        Some(ErrorCode::ResumeFailed)
    );
    assert!(commands(&out).is_empty());
    let out = frame(
        &mut hub,
        10,
        json!({"type": "join", "room": "R", "name": "Guest"}),
        at(40_000),
    );
    assert_eq!(types(&sends_to(&out, p(10))), ["lobby"]);
    assert_eq!(hub.knocking("R"), vec![10]);
}

#[test]
fn leave_kills_the_resume_token_and_zero_grace_leaves_at_once() {
    let (mut hub, token) = agent_and_admitted_guest();
    let out = frame(&mut hub, 2, json!({"type": "leave"}), at(1_000));
    assert!(left(&sends_to(&out, p(1)), 2));
    hub.handle_close(p(2), at(1_100));
    assert!(drain(&mut hub).is_empty());
    let out = resume(&mut hub, 10, &token, "kept", at(2_000));
    assert_eq!(
        error_code(&sends_to(&out, p(10))),
        Some(ErrorCode::ResumeFailed)
    );
    // Reconnect off: a drop is a departure, as before.
    let mut hub = Hub::with_seed(3);
    hub.set_reconnect_grace(Duration::ZERO);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    hub.handle_close(p(2), at(1_000));
    let out = drain(&mut hub);
    assert!(left(&sends_to(&out, p(1)), 2));
    assert!(hub.poll_timeout().is_none());
}

#[test]
fn media_new_rejoins_mediad_with_the_same_id_and_reapplies_settings() {
    let (mut hub, _) = agent_and_admitted_guest();
    hub.set_default_last_n(Some(4));
    let out = frame(&mut hub, 2, json!({"type": "audio-only", "on": true}), t0());
    assert_eq!(commands(&out).len(), 1);
    frame(&mut hub, 1, json!({"type": "mute", "id": 2}), t0());
    frame(&mut hub, 1, json!({"type": "stop-video", "id": 2}), t0());
    frame(&mut hub, 2, json!({"type": "screen", "mid": "2"}), t0());
    let token = hub.resume_token(p(2)).unwrap();
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    let out = resume(&mut hub, 10, &token, "new", at(3_000));
    let cmds = commands(&out);
    assert!(
        matches!(&cmds[..2], [Command::Leave { participant: a }, Command::Join { participant: b, room }]
            if *a == p(2) && *b == p(2) && room.0 == "R"),
        "{cmds:?}"
    );
    assert!(cmds.iter().any(|c| matches!(c,
        Command::SetAudioOnly { participant, enabled: true } if *participant == p(2))));
    assert!(cmds.iter().any(|c| matches!(c,
        Command::SetForwarding { participant, kind: MediaKind::Audio, enabled: false } if *participant == p(2))));
    assert!(cmds.iter().any(|c| matches!(c,
        Command::SetForwarding { participant, kind: MediaKind::Video, enabled: false } if *participant == p(2))));
    assert!(
        cmds.iter()
            .all(|c| !matches!(c, Command::Leave { participant } if *participant != p(2)))
    );
    let to_new = sends_to(&out, p(10));
    assert!(matches!(
        to_new.first(),
        Some(ServerMessage::Resumed {
            id: 2,
            media: ResumeMedia::New,
            audio_muted: true,
            video_stopped: true,
            audio_only: true,
            ..
        })
    ));
    // The old page's share is gone; the others never see it leave.
    let to_agent = sends_to(&out, p(1));
    assert!(to_agent.contains(&ServerMessage::ScreenShare {
        id: 2,
        track_id: None
    }));
    assert!(to_agent.contains(&ServerMessage::ParticipantResumed { id: 2 }));
    assert!(!left(&to_agent, 2));
}

#[test]
fn a_moderator_who_reconnects_is_still_moderator() {
    let mut hub = agent_and_waiting_guest();
    hub.set_reconnect_grace(Duration::from_millis(GRACE_MS));
    // A second agent, who will drop and come back.
    let out = join_at(&mut hub, 3, "R", "Agent3", Some(&token("R", "a3")), t0());
    let agent_token = resume_token_of(&out, p(3));
    hub.handle_close(p(3), at(1_000));
    drain(&mut hub);
    let out = resume(&mut hub, 20, &agent_token, "kept", at(2_000));
    let msgs = sends_to(&out, p(20));
    assert!(matches!(
        msgs.first(),
        Some(ServerMessage::Resumed {
            id: 3,
            role: WireRole::Moderator,
            ..
        })
    ));
    // A moderator learns of the guests still waiting.
    assert!(msgs.contains(&ServerMessage::Knock {
        id: 2,
        name: "Guest".into()
    }));
    assert_eq!(hub.role(p(3)), Some(Role::Moderator));
    // And acts as one from the new socket.
    let out = frame(&mut hub, 20, json!({"type": "admit", "id": 2}), at(3_000));
    assert!(matches!(
        sends_to(&out, p(2)).first(),
        Some(ServerMessage::Admitted {})
    ));
}

#[test]
fn a_resume_while_the_old_socket_lingers_replaces_it() {
    let (mut hub, token) = agent_and_admitted_guest();
    // The client saw its socket die; the gateway did not yet.
    let out = resume(&mut hub, 10, &token, "kept", at(1_000));
    assert!(matches!(
        sends_to(&out, p(10)).first(),
        Some(ServerMessage::Resumed { id: 2, .. })
    ));
    // The old socket is not heard any more, and its close changes nothing.
    let out = frame(&mut hub, 2, json!({"type": "leave"}), at(2_000));
    assert!(out.is_empty());
    hub.handle_close(p(2), at(3_000));
    assert!(drain(&mut hub).is_empty());
    assert!(!hub.is_reconnecting(p(2)));
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
    // The new one's close is the drop that counts.
    hub.handle_close(p(10), at(4_000));
    assert_eq!(
        sends_to(&drain(&mut hub), p(1)),
        vec![ServerMessage::ParticipantReconnecting { id: 2 }]
    );
    hub.handle_timeout(at(4_000 + GRACE_MS));
    assert!(left(&sends_to(&drain(&mut hub), p(1)), 2));
    assert_eq!(hub.participant_count(), 1);
}
