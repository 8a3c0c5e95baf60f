//! Who a deny holds, and a waiting guest's place across a reload.
//!
//! A deny cooldown follows the knocker (its lobby token, its token
//! identity), not its network address: a colleague behind the same NAT
//! still reaches the moderator, while the denied guest who comes back with
//! its token is refused. A guest dropping its token is held by the
//! address's own bounds (guests waiting per address, an address cooldown
//! after several denies, told as such). A waiting guest whose socket drops
//! keeps its place in the queue for the grace period; its `join` with the
//! lobby token takes it back.

use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::hub::{DENIED_A_MOMENT_AGO, DENIED_NETWORK, HubLimits};

const OFFICE: [u8; 4] = [192, 0, 2, 7];
const GRACE_MS: u64 = 30_000;

/// A moderator (1) in room R under the shipped policy.
fn moderated_room() -> Hub {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    hub
}

/// `join` of socket `id` from `ip`, with a lobby token.
fn join_with_token(
    hub: &mut Hub,
    id: u64,
    ip: [u8; 4],
    name: &str,
    lobby_token: &str,
    now: Now,
) -> Vec<Output> {
    hub.handle_open_from(p(id), Some(std::net::IpAddr::from(ip)));
    frame(
        hub,
        id,
        json!({"type": "join", "room": "R", "name": name, "lobby_token": lobby_token}),
        now,
    )
}

fn denied_reason(msgs: &[ServerMessage]) -> Option<(String, u64)> {
    msgs.iter().find_map(|m| match m {
        ServerMessage::Denied {
            reason,
            retry_after_ms,
        } => Some((reason.clone(), *retry_after_ms)),
        _ => None,
    })
}

fn deny(hub: &mut Hub, id: u64, now: Now) {
    frame(hub, 1, json!({"type": "deny", "id": id}), now);
}

/// The bug of issue 16: behind one NAT, a deny refused every colleague
/// for 30 s, unseen by the moderator.
#[test]
fn a_deny_holds_the_knocker_not_its_colleagues_behind_the_same_address() {
    let mut hub = moderated_room();
    let out = join_from(&mut hub, 2, OFFICE, "R", "Spammer", None, t0());
    let spammer = lobby_token_of(&out, p(2));
    deny(&mut hub, 2, at(1_000));
    // A colleague from the same address, 300 ms later: the moderator sees
    // it knock (with the next lobby update), and it is told its place.
    let out = join_from(&mut hub, 3, OFFICE, "R", "Colleague", None, at(1_300));
    assert_eq!(types(&sends_to(&out, p(3))), ["lobby", "lobby-position"]);
    assert_ne!(lobby_token_of(&out, p(3)), spammer);
    let mut to_moderator = sends_to(&out, p(1));
    to_moderator.extend(sends_to(&run_timers(&mut hub, at(1_600)), p(1)));
    assert_eq!(
        to_moderator,
        vec![ServerMessage::Knock {
            id: 3,
            name: "Colleague".into()
        }]
    );
    assert_eq!(hub.knocking("R"), vec![3]);
    // The denied guest reloads (new socket) and joins with its token: still
    // refused, told so, with the time left; the moderator hears nothing.
    hub.handle_close(p(2), at(2_000));
    drain(&mut hub);
    let out = join_with_token(&mut hub, 4, OFFICE, "Spammer", &spammer, at(2_000));
    let msgs = sends_to(&out, p(4));
    assert_eq!(types(&msgs), ["lobby", "denied"]);
    assert_eq!(
        lobby_token_of(&out, p(4)),
        spammer,
        "the cooldown keeps its token"
    );
    assert_eq!(
        denied_reason(&msgs),
        Some((DENIED_A_MOMENT_AGO.to_owned(), 29_000))
    );
    assert!(sends_to(&run_timers(&mut hub, at(2_500)), p(1)).is_empty());
    assert_eq!(hub.knocking("R"), vec![3]);
    // Its `knock` is refused until the cooldown ends, then reaches the
    // moderator.
    let out = frame(&mut hub, 4, json!({"type": "knock"}), at(20_000));
    assert_eq!(
        error_code(&sends_to(&out, p(4))),
        Some(ErrorCode::KnockTooSoon)
    );
    let out = frame(&mut hub, 4, json!({"type": "knock"}), at(31_001));
    assert_eq!(types(&sends_to(&out, p(1))), ["knock"]);
    assert_eq!(hub.knocking("R"), vec![3, 4]);
}

/// A page cannot choose its lobby token: an unknown one is replaced by a
/// fresh one (and holds no one else's place).
#[test]
fn an_unknown_lobby_token_gets_a_fresh_one() {
    let mut hub = moderated_room();
    let forged = "0123456789abcdef0123456789abcdef";
    let out = join_with_token(&mut hub, 2, OFFICE, "Guest", forged, t0());
    assert_eq!(types(&sends_to(&out, p(2))), ["lobby", "lobby-position"]);
    assert_ne!(lobby_token_of(&out, p(2)), forged);
}

/// A hostile guest drops its token and knocks again after each deny: the
/// third deny from its address within the cooldown holds the address, and
/// the message does not claim a moderator refused the newcomer. Another
/// address is not affected; after the cooldown the address knocks again.
#[test]
fn repeated_denies_from_one_address_hold_the_address_with_its_own_message() {
    let mut hub = moderated_room();
    // A colleague already knocking before the denies stays in the list.
    join_from(&mut hub, 9, OFFICE, "R", "Colleague", None, at(500));
    for (i, id) in [2u64, 3, 4].into_iter().enumerate() {
        let t = 1_000 * (i as u64 + 1);
        let out = join_from(&mut hub, id, OFFICE, "R", "Troll", None, at(t));
        assert_eq!(
            types(&sends_to(&out, p(id))),
            ["lobby", "lobby-position"],
            "knock {id} reaches the lobby"
        );
        deny(&mut hub, id, at(t + 100));
        hub.handle_close(p(id), at(t + 200));
        drain(&mut hub);
    }
    let out = join_from(&mut hub, 5, OFFICE, "R", "Troll", None, at(4_000));
    let msgs = sends_to(&out, p(5));
    assert_eq!(types(&msgs), ["lobby", "denied"]);
    let (reason, left) = denied_reason(&msgs).unwrap();
    assert_eq!(reason, DENIED_NETWORK);
    assert_eq!(left, 30_000 - 900, "until 30 s after the third deny");
    assert_eq!(hub.knocking("R"), vec![9]);
    let out = frame(&mut hub, 9, json!({"type": "knock"}), at(4_100));
    assert!(
        sends_to(&out, p(9)).is_empty(),
        "still knocking, not denied"
    );
    assert_eq!(hub.knocking("R"), vec![9]);
    assert!(sends_to(&run_timers(&mut hub, at(4_500)), p(1)).is_empty());
    // Another address knocks normally.
    let out = join_from(
        &mut hub,
        6,
        [198, 51, 100, 1],
        "R",
        "Other",
        None,
        at(4_600),
    );
    assert_eq!(types(&sends_to(&out, p(6))), ["lobby", "lobby-position"]);
    // After the address cooldown, the waiting one may knock again.
    let out = frame(&mut hub, 5, json!({"type": "knock"}), at(33_200));
    assert_eq!(
        sends_to(&out, p(5)),
        vec![ServerMessage::LobbyPosition {
            position: 3,
            waiting: 3
        }]
    );
    assert_eq!(hub.knocking("R"), vec![9, 6, 5]);
}

/// Two denies from one address (two colleagues refused) do not hold the
/// third colleague.
#[test]
fn two_denies_from_one_address_do_not_hold_the_next_colleague() {
    let mut hub = moderated_room();
    for id in [2u64, 3] {
        join_from(&mut hub, id, OFFICE, "R", "Guest", None, at(id * 100));
        deny(&mut hub, id, at(id * 100 + 50));
    }
    let out = join_from(&mut hub, 4, OFFICE, "R", "Colleague", None, at(1_000));
    assert_eq!(types(&sends_to(&out, p(4))), ["lobby", "lobby-position"]);
}

/// One address cannot fill a lobby: past the knock burst the rate limit
/// holds it, and past `lobby_per_address` guests waiting from it, the next
/// one is refused even when the rate allows it.
#[test]
fn one_address_holds_at_most_its_share_of_the_lobby() {
    let mut hub = moderated_room();
    let cap = HubLimits::default().lobby_per_address;
    let mut refused = Vec::new();
    // A burst (rate-limited past 30), then a minute later another wave
    // (the rate allows it; the per-address share does not).
    for id in 100..140u64 {
        let out = join_from(&mut hub, id, OFFICE, "R", "Flood", None, at(id));
        refused.extend(error_code(&sends_to(&out, p(id))));
    }
    for id in 200..210u64 {
        let out = join_from(&mut hub, id, OFFICE, "R", "Flood", None, at(60_000 + id));
        let msgs = sends_to(&out, p(id));
        assert_eq!(error_code(&msgs), Some(ErrorCode::RateLimited));
        assert!(
            matches!(&msgs[0], ServerMessage::Error { message, .. } if message.contains("waiting")),
            "{msgs:?}"
        );
    }
    assert_eq!(refused, vec![ErrorCode::RateLimited; 40 - cap]);
    assert_eq!(hub.lobby_count(), cap);
    // Another address still finds room.
    let out = join_from(
        &mut hub,
        300,
        [198, 51, 100, 1],
        "R",
        "Other",
        None,
        at(60_500),
    );
    assert_eq!(types(&sends_to(&out, p(300))), ["lobby", "lobby-position"]);
}

// ---- a waiting guest's reload -------------------------------------------

/// Moderator 1; guests 2 and 3 waiting (positions 1 and 2); a 30 s grace.
/// Returns the hub and 3's lobby token.
fn two_waiting() -> (Hub, String) {
    let mut hub = moderated_room();
    hub.set_reconnect_grace(Duration::from_millis(GRACE_MS));
    join_from(&mut hub, 2, [198, 51, 100, 2], "R", "First", None, at(10));
    let out = join_from(&mut hub, 3, OFFICE, "R", "Second", None, at(20));
    assert_eq!(
        sends_to(&out, p(3))[1],
        ServerMessage::LobbyPosition {
            position: 2,
            waiting: 2
        }
    );
    run_timers(&mut hub, at(500));
    (hub, lobby_token_of(&out, p(3)))
}

#[test]
fn a_waiting_guest_who_reloads_keeps_its_place_and_is_admitted() {
    let (mut hub, token) = two_waiting();
    hub.handle_close(p(3), at(1_000));
    let out = drain(&mut hub);
    assert!(out.is_empty(), "the moderators keep seeing it: {out:?}");
    assert_eq!(hub.knocking("R"), vec![2, 3]);
    // Within the grace nothing changes.
    assert!(sends_to(&run_timers(&mut hub, at(20_000)), p(1)).is_empty());
    // The reloaded page joins with its token: same id, same place; the
    // moderators see no duplicate.
    let out = join_with_token(&mut hub, 13, OFFICE, "Second", &token, at(25_000));
    assert_eq!(
        sends_to(&out, p(13)),
        vec![
            ServerMessage::Lobby {
                id: 3,
                room: "R".into(),
                lobby_token: token.clone(),
            },
            ServerMessage::LobbyPosition {
                position: 2,
                waiting: 2
            }
        ]
    );
    assert!(sends_to(&out, p(1)).is_empty());
    assert!(
        sends_to(&run_timers(&mut hub, at(60_000)), p(1)).is_empty(),
        "no grace end any more"
    );
    assert_eq!(hub.knocking("R"), vec![2, 3]);
    assert_eq!(hub.lobby_count(), 2);
    // The moderator admits it (by its id): the new socket gets in.
    let out = frame(&mut hub, 1, json!({"type": "admit", "id": 3}), at(61_000));
    assert_eq!(types(&sends_to(&out, p(13)))[..2], ["admitted", "joined"]);
    assert!(matches!(
        &sends_to(&out, p(13))[1],
        ServerMessage::Joined { id: 3, .. }
    ));
    // The token is used up: it opens nothing now.
    assert_eq!(hub.knocking("R"), vec![2]);
}

#[test]
fn past_the_grace_the_waiting_guest_is_gone_and_its_token_knocks_anew() {
    let (mut hub, token) = two_waiting();
    hub.handle_close(p(3), at(1_000));
    drain(&mut hub);
    let out = run_timers(&mut hub, at(1_000 + GRACE_MS));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::KnockResolved {
            id: 3,
            by: None,
            admitted: false
        }]
    );
    assert_eq!(hub.knocking("R"), vec![2]);
    let out = join_with_token(&mut hub, 13, OFFICE, "Second", &token, at(40_000));
    assert_eq!(types(&sends_to(&out, p(13))), ["lobby", "lobby-position"]);
    assert_ne!(lobby_token_of(&out, p(13)), token);
    assert_eq!(hub.knocking("R"), vec![2, 13]);
}

/// A denied guest who reloads within the grace is told its cooldown again.
#[test]
fn a_denied_guest_who_reloads_is_told_the_time_left() {
    let (mut hub, token) = two_waiting();
    deny(&mut hub, 3, at(1_000));
    hub.handle_close(p(3), at(2_000));
    drain(&mut hub);
    let out = join_with_token(&mut hub, 13, OFFICE, "Second", &token, at(3_000));
    let msgs = sends_to(&out, p(13));
    assert_eq!(types(&msgs), ["lobby", "denied"]);
    assert_eq!(
        denied_reason(&msgs),
        Some((DENIED_A_MOMENT_AGO.to_owned(), 28_000))
    );
    assert_eq!(hub.knocking("R"), vec![2]);
}

/// Admitted while its page reloaded: the join with the lobby token
/// resumes its place in the meeting (`resumed`, same id).
#[test]
fn a_guest_admitted_while_reloading_gets_its_place_in_the_meeting() {
    let (mut hub, token) = two_waiting();
    hub.handle_close(p(3), at(1_000));
    drain(&mut hub);
    frame(&mut hub, 1, json!({"type": "admit", "id": 3}), at(1_500));
    let out = join_with_token(&mut hub, 13, OFFICE, "Second", &token, at(3_000));
    let msgs = sends_to(&out, p(13));
    assert!(
        matches!(&msgs[0], ServerMessage::Resumed { id: 3, .. }),
        "{msgs:?}"
    );
    assert!(!hub.is_reconnecting(p(3)));
}

/// A second tab (the old socket still open) takes the place; the old
/// socket is closed as replaced.
#[test]
fn a_second_page_with_the_token_replaces_the_first() {
    let (mut hub, token) = two_waiting();
    let out = join_with_token(&mut hub, 13, OFFICE, "Second", &token, at(1_000));
    assert_eq!(types(&sends_to(&out, p(13))), ["lobby", "lobby-position"]);
    assert!(out.iter().any(|o| matches!(o, Output::Close { to, code, .. } if *to == p(3) && *code == crate::hub::CLOSE_REPLACED)));
    assert_eq!(hub.knocking("R"), vec![2, 3]);
    // The replaced socket's close changes nothing.
    hub.handle_close(p(3), at(1_100));
    assert!(drain(&mut hub).is_empty());
    assert_eq!(hub.knocking("R"), vec![2, 3]);
}

// ---- break-lobby: found by attacking the lobby --------------------------

/// A guest held by its address's cooldown (not refused itself) reloads:
/// it is told the same thing again, not that a moderator refused it.
#[test]
fn a_guest_held_by_its_address_who_reloads_is_told_it_was_its_network() {
    let mut hub = moderated_room();
    hub.set_reconnect_grace(Duration::from_millis(GRACE_MS));
    for id in [2u64, 3, 4] {
        join_from(&mut hub, id, OFFICE, "R", "Troll", None, at(id * 100));
        deny(&mut hub, id, at(id * 100 + 50));
    }
    let out = join_from(&mut hub, 5, OFFICE, "R", "Colleague", None, at(1_000));
    let msgs = sends_to(&out, p(5));
    assert_eq!(denied_reason(&msgs).unwrap().0, DENIED_NETWORK);
    let token = lobby_token_of(&out, p(5));
    hub.handle_close(p(5), at(2_000));
    drain(&mut hub);
    let out = join_with_token(&mut hub, 15, OFFICE, "Colleague", &token, at(3_000));
    let msgs = sends_to(&out, p(15));
    assert_eq!(types(&msgs), ["lobby", "denied"]);
    assert_eq!(
        denied_reason(&msgs),
        Some((DENIED_NETWORK.to_owned(), 27_450))
    );
}

/// A waiting guest's tab is gone (or reloading) and the moderator admits
/// it: the room sees it join *and* reconnecting (not present while it has
/// no page), and leave at the end of its grace if no page comes back.
#[test]
fn an_admitted_ghost_is_shown_reconnecting_until_its_grace_ends() {
    let (mut hub, _token) = two_waiting();
    hub.handle_close(p(3), at(1_000));
    drain(&mut hub);
    let out = frame(&mut hub, 1, json!({"type": "admit", "id": 3}), at(1_500));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![
            ServerMessage::ParticipantJoined {
                id: 3,
                name: "Second".into(),
                role: salon_plugins::Role::Guest.into(),
            },
            ServerMessage::ParticipantReconnecting { id: 3 },
        ]
    );
    let out = run_timers(&mut hub, at(1_000 + GRACE_MS));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantLeft { id: 3 }]
    );
}
