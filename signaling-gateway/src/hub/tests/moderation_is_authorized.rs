//! Moderation under the shipped policy: only moderators act, only on their
//! own room, and the actions reach mediad and the room.

use salon_plugins::Role;

use super::support::*;
use crate::control::MediaKind;
use crate::protocol::MediaKindWire;

#[test]
fn moderation_is_checked_in_rust_and_reaches_mediad() {
    let mut hub = agent_and_waiting_guest();
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        t0(),
    );
    // Another room with its own agent, and its participant 6.
    join_at(&mut hub, 5, "X", "AgentX", Some(&token("X", "a5")), t0());
    only_moderators_act_and_only_in_their_room(&mut hub);
    mute_unmute_and_mute_all(&mut hub);
    stop_video_and_stop_screen(&mut hub);
    lock_grant_and_revoke(&mut hub);
    video_constraints_and_media_state_stay_in_the_room(&mut hub);
}

/// Step: the guest (2) is refused every moderation; the agent (1) cannot
/// reach room X (5) or strangers.
fn only_moderators_act_and_only_in_their_room(hub: &mut Hub) {
    // The guest tries to mute / kick / lock / end / grant itself: forbidden, nothing happens.
    for v in [
        serde_json::json!({"type":"mute","id":1}),
        serde_json::json!({"type":"kick","id":1}),
        serde_json::json!({"type":"mute-all"}),
        serde_json::json!({"type":"lock","on":true}),
        serde_json::json!({"type":"grant-moderator","id":2}),
        serde_json::json!({"type":"end-meeting"}),
        serde_json::json!({"type":"stop-video","id":1}),
    ] {
        let out = frame(hub, 2, v.clone(), t0());
        assert_eq!(out.len(), 1, "{v}");
        assert_eq!(
            error_code(&sends_to(&out, p(2))),
            Some(ErrorCode::Forbidden),
            "{v}"
        );
    }
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
    assert_eq!(hub.role(p(1)), Some(Role::Moderator));
    // A moderator cannot act across rooms, nor on strangers.
    for target in [5, 99] {
        let out = frame(hub, 1, serde_json::json!({"type":"mute","id":target}), t0());
        assert_eq!(out.len(), 1);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::NoSuchParticipant)
        );
    }
}

/// Step: mute reaches mediad and the room; the guest unmutes itself, not
/// after `mute-all` until `allow-unmute`.
fn mute_unmute_and_mute_all(hub: &mut Hub) {
    // Mute: mediad stops the guest's audio; the room is told.
    let out = frame(hub, 1, serde_json::json!({"type":"mute","id":2}), t0());
    assert!(matches!(
        commands(&out)[..],
        [Command::SetForwarding { participant, kind: MediaKind::Audio, enabled: false }] if participant == p(2)
    ));
    let muted = ServerMessage::Muted {
        id: 2,
        by: 1,
        kind: MediaKindWire::Audio,
    };
    assert_eq!(sends_to(&out, p(2)), vec![muted.clone()]);
    assert_eq!(sends_to(&out, p(1)), vec![muted]);
    assert!(sends_to(&out, p(5)).is_empty());
    // Self-unmute.
    let out = frame(
        hub,
        2,
        serde_json::json!({"type":"unmute","kind":"audio"}),
        t0(),
    );
    assert!(matches!(
        commands(&out)[..],
        [Command::SetForwarding {
            kind: MediaKind::Audio,
            enabled: true,
            ..
        }]
    ));
    assert_eq!(types(&sends_to(&out, p(1))), ["unmuted"]);
    // Mute-all locks unmuting until allow-unmute.
    let out = frame(hub, 1, serde_json::json!({"type":"mute-all"}), t0());
    assert_eq!(commands(&out).len(), 1, "everyone but the sender");
    let out = frame(
        hub,
        2,
        serde_json::json!({"type":"unmute","kind":"audio"}),
        t0(),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::Forbidden)
    );
    assert!(commands(&out).is_empty());
    frame(hub, 1, serde_json::json!({"type":"allow-unmute"}), t0());
    let out = frame(
        hub,
        2,
        serde_json::json!({"type":"unmute","kind":"audio"}),
        t0(),
    );
    assert_eq!(commands(&out).len(), 1);
}

/// Step: stop-video and stop-screen reach mediad.
fn stop_video_and_stop_screen(hub: &mut Hub) {
    // Stop video.
    let out = frame(
        hub,
        1,
        serde_json::json!({"type":"stop-video","id":2}),
        t0(),
    );
    assert!(matches!(
        commands(&out)[..],
        [Command::SetForwarding {
            kind: MediaKind::Video,
            enabled: false,
            ..
        }]
    ));
    // Screen share: marked in mediad, then stopped by the moderator.
    let out = frame(hub, 2, serde_json::json!({"type":"screen","mid":"3"}), t0());
    assert!(
        matches!(&commands(&out)[..], [Command::SetScreenShare { mid: Some(m), .. }] if m == "3")
    );
    let out = frame(
        hub,
        1,
        serde_json::json!({"type":"stop-screen","id":2}),
        t0(),
    );
    assert!(matches!(
        &commands(&out)[..],
        [Command::SetTrackForwarding { mid, enabled: false, .. }, Command::SetScreenShare { mid: None, .. }] if mid == "3"
    ));
    assert_eq!(types(&sends_to(&out, p(1))), ["screen-share", "muted"]);
}

/// Step: lock keeps new guests out (not moderators); grant and revoke
/// moderator.
fn lock_grant_and_revoke(hub: &mut Hub) {
    // Lock: a new guest gets room-locked; moderators may still join.
    let out = frame(hub, 1, serde_json::json!({"type":"lock","on":true}), t0());
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::RoomLocked { on: true, by: 1 }]
    );
    let out = join_at(hub, 7, "R", "Late", None, t0());
    assert_eq!(
        error_code(&sends_to(&out, p(7))),
        Some(ErrorCode::RoomLocked)
    );
    let out = join_at(hub, 8, "R", "Agent8", Some(&token("R", "a8")), t0());
    assert_eq!(types(&sends_to(&out, p(8))), ["joined"]);
    // Grant / revoke.
    let out = frame(
        hub,
        1,
        serde_json::json!({"type":"grant-moderator","id":2}),
        t0(),
    );
    assert_eq!(
        sends_to(&out, p(8)),
        vec![ServerMessage::RoleChanged {
            id: 2,
            role: WireRole::Moderator
        }]
    );
    assert_eq!(hub.role(p(2)), Some(Role::Moderator));
    frame(
        hub,
        1,
        serde_json::json!({"type":"revoke-moderator","id":2}),
        t0(),
    );
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
}

/// Step: video constraints apply to publishers of the sender's room only;
/// media state is relayed to the others.
fn video_constraints_and_media_state_stay_in_the_room(hub: &mut Hub) {
    // Video constraints: only publishers of the sender's room.
    let out = frame(
        hub,
        1,
        serde_json::json!({"type":"video-constraints","constraints":[
            {"track_id":"2-1","max_height":180},{"track_id":"5-1","max_height":180},{"track_id":"zz"}]}),
        t0(),
    );
    assert!(matches!(
        &commands(&out)[..],
        [Command::SetReceiveConstraints { participant, publisher, mid, max_height: Some(180) }]
            if *participant == p(1) && *publisher == p(2) && mid == "1"
    ));
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::BadMessage)
    );
    // Media state is relayed to the others.
    let out = frame(
        hub,
        2,
        serde_json::json!({"type":"media-state","audio":false,"video":true}),
        at(1000),
    );
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::MediaState {
            id: 2,
            audio: false,
            video: true
        }]
    );
    assert!(sends_to(&out, p(2)).is_empty());
}

#[test]
fn kick_sends_guests_back_to_the_lobby_and_ban_keeps_them_out() {
    let mut hub = agent_and_waiting_guest();
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        t0(),
    );
    let out = frame(&mut hub, 1, serde_json::json!({"type":"kick","id":2}), t0());
    assert_eq!(types(&sends_to(&out, p(2))), ["kicked", "lobby"]);
    assert!(
        commands(&out)
            .iter()
            .any(|c| matches!(c, Command::Leave { participant } if *participant == p(2)))
    );
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantLeft { id: 2 }]
    );
    assert_eq!(hub.participant_count(), 1);
    // Re-knock: during the kick ban it waits for a moderator (the policy's
    // on_knock is not asked); admit, then kick with a ban. (Later than the
    // lobby update interval: the first knock went out at t0.)
    let out = frame(&mut hub, 2, serde_json::json!({"type":"knock"}), at(1000));
    assert_eq!(types(&sends_to(&out, p(1))), ["knock"]);
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        at(1000),
    );
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"kick","id":2,"ban":true}),
        at(1000),
    );
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::Kicked { by: 1, ban: true }]
    );
    let out = frame(
        &mut hub,
        2,
        serde_json::json!({"type":"join","room":"R","name":"Guest"}),
        at(1000),
    );
    assert_eq!(error_code(&sends_to(&out, p(2))), Some(ErrorCode::Banned));
    assert_eq!(hub.lobby_count(), 0);
    // A banned agent (by token user) cannot come back from another socket.
    join_at(&mut hub, 3, "R", "Agent3", Some(&token("R", "a3")), t0());
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"kick","id":3,"ban":true}),
        t0(),
    );
    let out = join_at(&mut hub, 4, "R", "Agent3", Some(&token("R", "a3")), t0());
    assert_eq!(error_code(&sends_to(&out, p(4))), Some(ErrorCode::Banned));
}

#[test]
fn ending_the_meeting_reaches_everyone_and_the_last_one_out_ends_it() {
    let mut hub = agent_and_waiting_guest();
    join_at(&mut hub, 3, "R", "Agent3", Some(&token("R", "a3")), t0());
    let out = frame(&mut hub, 1, serde_json::json!({"type":"end-meeting"}), t0());
    let ended = ServerMessage::MeetingEnded {
        reason: "ended-by-moderator".into(),
    };
    for id in [1, 2, 3] {
        assert_eq!(sends_to(&out, p(id)), vec![ended.clone()], "{id}");
    }
    assert_eq!(commands(&out).len(), 2, "Leave for both members");
    assert_eq!((hub.room_count(), hub.lobby_count()), (0, 0));
    // The last one leaving ends the room for the lobby too.
    let mut hub = agent_and_waiting_guest();
    hub.handle_close(p(1), t0());
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::MeetingEnded {
            reason: "room-empty".into()
        }]
    );
    assert_eq!((hub.room_count(), hub.lobby_count()), (0, 0));
    // The guest may join again (a refused / ended socket stays usable).
    let out = frame(
        &mut hub,
        2,
        serde_json::json!({"type":"join","room":"R","name":"Guest"}),
        t0(),
    );
    assert_eq!(error_code(&sends_to(&out, p(2))), Some(ErrorCode::Denied));
}
