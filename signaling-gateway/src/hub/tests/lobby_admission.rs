//! Lobby and admission under the shipped policy: guests cannot create
//! rooms, tokens are checked, knocking guests are admitted or denied with a
//! cooldown.

use salon_plugins::Role;

use super::support::*;

#[test]
fn guest_cannot_create_a_room_and_bad_tokens_are_refused() {
    let mut hub = policy_hub("policy");
    let out = join_at(&mut hub, 1, "R", "Guest", None, t0());
    assert_eq!(error_code(&sends_to(&out, p(1))), Some(ErrorCode::Denied));
    assert_eq!(hub.room_count(), 0);
    // A token for room A does not open room B; garbage is malformed.
    for bad in [token("A", "a1"), "x.y.z".to_owned(), token("R", "a1") + "x"] {
        hub.handle_frame(
            p(1),
            &serde_json::json!({"type":"join","room":"R","name":"A","jwt": bad}).to_string(),
            t0(),
        );
        let out = drain(&mut hub);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::AuthFailed)
        );
        assert!(commands(&out).is_empty());
    }
    // Expired: the same token an hour and a minute later.
    hub.handle_frame(
        p(1),
        &serde_json::json!({"type":"join","room":"R","name":"A","jwt": token("R", "a1")})
            .to_string(),
        at(3_660_000),
    );
    let out = drain(&mut hub);
    assert!(
        matches!(&sends_to(&out, p(1))[0], ServerMessage::Error { code: ErrorCode::AuthFailed, message } if message.contains("expired"))
    );
    // The socket is still usable: a valid token now works.
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"join","room":"R","name":"A","jwt": token("R", "a1")}),
        t0(),
    );
    assert!(matches!(
        &sends_to(&out, p(1))[0],
        ServerMessage::Joined { .. }
    ));
}

#[test]
fn knock_admit_deny_and_cooldown() {
    let mut hub = agent_and_waiting_guest();
    // A second moderator joining later sees the waiting guest.
    let out = join_at(&mut hub, 3, "R", "Agent2", Some(&token("R", "a3")), t0());
    let m3 = sends_to(&out, p(3));
    assert_eq!(types(&m3), ["joined", "knock"]);
    // A third guest waits too; the moderators hear of it with the next
    // lobby update (one per 250 ms per room).
    let out = join_at(&mut hub, 4, "R", "Other", None, t0());
    assert!(sends_to(&out, p(1)).is_empty());
    assert_eq!(
        hub.poll_timeout().map(|(_, why)| why),
        Some(crate::hub::TimeoutReason::LobbyUpdate)
    );
    hub.handle_timeout(at(250));
    let out = drain(&mut hub);
    for m in [1, 3] {
        assert_eq!(types(&sends_to(&out, p(m))), ["knock"]);
    }
    // The guest tries to admit itself or the other guest: refused, no change.
    for target in [2, 4] {
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"admit","id":target}),
            t0(),
        );
        assert_eq!(
            error_code(&sends_to(&out, p(2))),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(out.len(), 1);
    }
    assert_eq!(hub.knocking("R"), vec![2, 4]);
    // Admit.
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        t0(),
    );
    assert_eq!(types(&sends_to(&out, p(2)))[..2], ["admitted", "joined"]);
    assert!(matches!(
        &sends_to(&out, p(2))[1],
        ServerMessage::Joined {
            role: WireRole::Guest,
            ..
        }
    ));
    assert_eq!(
        sends_to(&out, p(3)),
        vec![
            ServerMessage::KnockResolved {
                id: 2,
                by: Some(1),
                admitted: true
            },
            ServerMessage::ParticipantJoined {
                id: 2,
                name: "Guest".into(),
                role: WireRole::Guest
            }
        ]
    );
    assert_eq!(hub.role(p(2)), Some(Role::Guest));
    // The admitted guest cannot admit the other one.
    let out = frame(
        &mut hub,
        2,
        serde_json::json!({"type":"admit","id":4}),
        t0(),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(out.len(), 1);
    assert_eq!(hub.knocking("R"), vec![4]);
    // Deny, with a reason.
    let out = frame(
        &mut hub,
        3,
        serde_json::json!({"type":"deny","id":4,"reason":"complet"}),
        at(1_000),
    );
    assert_eq!(
        sends_to(&out, p(4)),
        vec![ServerMessage::Denied {
            reason: "complet".into(),
            retry_after_ms: 30_000
        }]
    );
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::KnockResolved {
            id: 4,
            by: Some(3),
            admitted: false
        }]
    );
    assert!(hub.knocking("R").is_empty());
    // Knock too soon, then after the cooldown.
    let out = frame(&mut hub, 4, serde_json::json!({"type":"knock"}), at(20_000));
    assert_eq!(
        error_code(&sends_to(&out, p(4))),
        Some(ErrorCode::KnockTooSoon)
    );
    assert_eq!(out.len(), 1);
    let out = frame(&mut hub, 4, serde_json::json!({"type":"knock"}), at(31_001));
    assert_eq!(types(&sends_to(&out, p(1))), ["knock"]);
    assert_eq!(hub.knocking("R"), vec![4]);
    // A joined participant cannot knock.
    let out = frame(&mut hub, 2, serde_json::json!({"type":"knock"}), t0());
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::NotInLobby)
    );
    // The waiting guest leaves: moderators drop it.
    hub.handle_close(p(4), at(32_000));
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::KnockResolved {
            id: 4,
            by: None,
            admitted: false
        }]
    );
    assert_eq!(hub.lobby_count(), 0);
}

#[test]
fn a_knocking_guest_is_told_its_place_in_the_queue_as_it_moves() {
    let position = |position, waiting| ServerMessage::LobbyPosition { position, waiting };
    // Guest 2 knocks first (position 1 of 1, in the helper); 3 is second.
    let mut hub = agent_and_waiting_guest();
    let out = join_at(&mut hub, 3, "R", "Second", None, at(10));
    assert_eq!(types(&sends_to(&out, p(3))), ["lobby", "lobby-position"]);
    assert_eq!(sends_to(&out, p(3))[1], position(2, 2));
    assert!(sends_to(&out, p(2)).is_empty(), "2's place did not change");
    // 2 is admitted: 3 moves up.
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":2}),
        at(20),
    );
    assert_eq!(sends_to(&out, p(3)), vec![position(1, 1)]);
    // 4 knocks behind 3; 3 is denied (no place any more: `denied` says
    // so) and 4 moves up.
    let out = join_at(&mut hub, 4, "R", "Third", None, at(30));
    assert_eq!(sends_to(&out, p(4))[1], position(2, 2));
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"deny","id":3}),
        at(40),
    );
    assert_eq!(types(&sends_to(&out, p(3))), ["denied"]);
    assert_eq!(sends_to(&out, p(4)), vec![position(1, 1)]);
    // 3 knocks again after the cooldown: at the end of the queue.
    let out = frame(&mut hub, 3, serde_json::json!({"type":"knock"}), at(31_000));
    assert_eq!(sends_to(&out, p(3)), vec![position(2, 2)]);
    assert!(sends_to(&out, p(4)).is_empty());
    assert_eq!(hub.knocking("R"), vec![4, 3]);
    // 4 leaves the lobby: 3 is next.
    hub.handle_close(p(4), at(31_100));
    let out = drain(&mut hub);
    assert_eq!(sends_to(&out, p(3)), vec![position(1, 1)]);
}
