//! Abuse bounds, each as a user would check it: tokens open only their own
//! room and moderate only with the flag; names cannot impersonate; bans,
//! kicks and deny cooldowns survive a new socket; the lobby, state
//! broadcasts, video constraints and the pad stay bounded under a flood,
//! and nobody is dropped for someone else's flood.

use std::time::Duration;

use bytes::Bytes;
use salon_plugins::Role;
use yrs::updates::encoder::Encode as _;
use yrs::{Doc, GetString as _, Text as _, Transact as _};

use super::support::*;
use crate::hub::{DEFAULT_KICK_BAN, DEFAULT_LOBBY_CAP, DEFAULT_PAD_QUEUE_BYTES};

fn ms_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

// ---- tokens, roles, names ----------------------------------------------

/// A token for `equipe` opened `Equipe` and `EQUIPE` — as moderator under
/// the default policy. Room names are case-sensitive: refused.
#[test]
fn a_token_for_one_room_does_not_open_its_case_variants() {
    let mut hub = policy_hub("policy");
    for (id, room) in [(1, "Equipe"), (2, "EQUIPE")] {
        let out = join_at(&mut hub, id, room, "A", Some(&token("equipe", "a1")), t0());
        let msgs = sends_to(&out, p(id));
        assert!(
            matches!(&msgs[..], [ServerMessage::Error { code: ErrorCode::AuthFailed, message }]
                if message == "token not valid for this room"),
            "{room}: {msgs:?}"
        );
    }
    assert_eq!(hub.room_count(), 0);
    let out = join_at(
        &mut hub,
        3,
        "equipe",
        "A",
        Some(&token("equipe", "a1")),
        t0(),
    );
    assert!(matches!(
        &sends_to(&out, p(3))[0],
        ServerMessage::Joined { .. }
    ));
}

/// Default policy: a token without the moderator flag does not moderate a
/// running room, even one valid for every room (`"*"`); with the flag it
/// does; its holder still opens (and so hosts) a new room.
#[test]
fn default_policy_moderates_by_the_tokens_flag_only() {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    let plain = |room: &str, user: &str| {
        token_with(serde_json::json!({
            "sub": "tenant", "room": room,
            "context": {"user": {"id": user, "name": user}}
        }))
    };
    for (id, tok) in [(2, plain("R", "u2")), (3, plain("*", "u3"))] {
        let out = join_at(&mut hub, id, "R", "x", Some(&tok), t0());
        assert!(
            matches!(
                &sends_to(&out, p(id))[0],
                ServerMessage::Joined {
                    role: WireRole::Participant,
                    ..
                }
            ),
            "{id}"
        );
        assert_eq!(hub.role(p(id)), Some(Role::Participant));
        // …and cannot moderate.
        let out = frame(
            &mut hub,
            id,
            serde_json::json!({"type":"kick","id":1}),
            t0(),
        );
        assert_eq!(
            error_code(&sends_to(&out, p(id))),
            Some(ErrorCode::Forbidden)
        );
    }
    // A "*" token without the flag hosts the room it opens, nothing more.
    let out = join_at(&mut hub, 4, "Autre", "x", Some(&plain("*", "u4")), t0());
    assert!(matches!(
        &sends_to(&out, p(4))[0],
        ServerMessage::Joined {
            role: WireRole::Moderator,
            ..
        }
    ));
    // With the flag: a moderator of a running room.
    let flagged = token_with(serde_json::json!({
        "sub": "tenant", "room": "*",
        "context": {"user": {"id": "u5", "name": "Five", "moderator": true}}
    }));
    join_at(&mut hub, 5, "R", "x", Some(&flagged), t0());
    assert_eq!(hub.role(p(5)), Some(Role::Moderator));
}

/// A guest named "Agent" + U+202E, or with an isolate or a zero-width
/// space, is refused with `bad-name`; nothing is announced.
#[test]
fn names_with_bidi_or_invisible_characters_are_refused() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    for (id, name) in [
        (2, "Agent \u{202E}tnegA"),
        (3, "\u{2066}Agent\u{2069}"),
        (4, "Agent\u{200B}"),
    ] {
        let out = join(&mut hub, id, "R", name);
        let msgs = sends_to(&out, p(id));
        assert!(
            matches!(&msgs[..], [ServerMessage::Error { code: ErrorCode::BadName, message }] if message.contains("U+")),
            "{name:?}: {msgs:?}"
        );
        assert!(sends_to(&out, p(1)).is_empty());
    }
    assert_eq!(hub.participant_count(), 1);
}

/// A token holder is shown under the token's name (cleaned of format
/// characters), whatever it typed.
#[test]
fn a_token_holder_is_shown_under_the_tokens_name() {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    let tok = token_with(serde_json::json!({
        "sub": "tenant", "room": "R",
        "context": {"user": {"id": "u2", "name": "Camille\u{200B} Dupont"}}
    }));
    let out = join_at(&mut hub, 2, "R", "Le Ministre", Some(&tok), t0());
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantJoined {
            id: 2,
            name: "Camille Dupont".into(),
            role: WireRole::Participant
        }]
    );
    // A token without a name: the typed one.
    let tok = token_with(serde_json::json!({
        "sub": "tenant", "room": "R", "context": {"user": {"id": "u3"}}
    }));
    let out = join_at(&mut hub, 3, "R", "Typed", Some(&tok), t0());
    assert!(matches!(
        &sends_to(&out, p(1))[0],
        ServerMessage::ParticipantJoined { name, .. } if name == "Typed"
    ));
}

// ---- bans, kicks, cooldowns ---------------------------------------------

/// A banned anonymous guest who opens a new socket from the same address
/// is refused; another address is not; a token holder behind the same
/// address is judged by its identity.
#[test]
fn a_ban_is_not_evaded_by_reconnecting_from_the_same_address() {
    let mut hub = policy_hub("open");
    join_from(&mut hub, 1, [198, 51, 100, 1], "R", "Host", None, t0());
    join_from(&mut hub, 2, [192, 0, 2, 7], "R", "Troll", None, t0());
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"kick","id":2,"ban":true}),
        t0(),
    );
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::Kicked { by: 1, ban: true }]
    );
    hub.handle_close(p(2), t0());
    drain(&mut hub);
    // New socket, same address: refused, even hours later.
    let out = join_from(
        &mut hub,
        3,
        [192, 0, 2, 7],
        "R",
        "Troll2",
        None,
        at(7_200_000),
    );
    assert_eq!(error_code(&sends_to(&out, p(3))), Some(ErrorCode::Banned));
    // Another address: in.
    let out = join_from(&mut hub, 4, [203, 0, 113, 9], "R", "Other", None, t0());
    assert!(matches!(
        &sends_to(&out, p(4))[0],
        ServerMessage::Joined { .. }
    ));
    // A colleague with a token behind the same address: in.
    let out = join_from(
        &mut hub,
        5,
        [192, 0, 2, 7],
        "R",
        "x",
        Some(&token("R", "colleague")),
        t0(),
    );
    assert!(matches!(
        &sends_to(&out, p(5))[0],
        ServerMessage::Joined { .. }
    ));
}

/// A ban keys on the token's user (issuer, sub, user id), not on the bare
/// `sub`, which names a whole tenant: the banned user is refused from any
/// socket and address; another user of the same tenant is not.
#[test]
fn a_ban_holds_the_user_not_the_tenant() {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    let user = |id: &str| {
        token_with(serde_json::json!({
            "sub": "ministere.example", "room": "R",
            "context": {"user": {"id": id, "name": id}}
        }))
    };
    join_from(
        &mut hub,
        2,
        [192, 0, 2, 1],
        "R",
        "x",
        Some(&user("u2")),
        t0(),
    );
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"kick","id":2,"ban":true}),
        t0(),
    );
    let out = join_from(
        &mut hub,
        3,
        [203, 0, 113, 1],
        "R",
        "x",
        Some(&user("u2")),
        t0(),
    );
    assert_eq!(error_code(&sends_to(&out, p(3))), Some(ErrorCode::Banned));
    let out = join_from(
        &mut hub,
        4,
        [203, 0, 113, 2],
        "R",
        "x",
        Some(&user("u4")),
        t0(),
    );
    assert!(matches!(
        &sends_to(&out, p(4))[0],
        ServerMessage::Joined { .. }
    ));
}

/// Under `open.lua` (whose `on_join` and `on_knock` admit at once) a kicked
/// member used to be back in a second. During the kick ban it comes back
/// only through the lobby and a moderator's `admit`, from any socket; after
/// it, directly again.
#[test]
fn a_kicked_member_under_the_open_policy_is_not_readmitted_at_once() {
    let mut hub = policy_hub("open");
    join_from(&mut hub, 1, [198, 51, 100, 1], "R", "Host", None, t0());
    join_from(&mut hub, 2, [192, 0, 2, 7], "R", "Pest", None, t0());
    let out = frame(&mut hub, 1, serde_json::json!({"type":"kick","id":2}), t0());
    assert_eq!(
        sends_to(&out, p(2))[0],
        ServerMessage::Kicked { by: 1, ban: false }
    );
    hub.handle_close(p(2), t0());
    drain(&mut hub);
    // A new socket from the same address: the lobby, not the room.
    let out = join_from(&mut hub, 3, [192, 0, 2, 7], "R", "Pest", None, at(1000));
    assert_eq!(types(&sends_to(&out, p(3))), ["lobby", "lobby-position"]);
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::Knock {
            id: 3,
            name: "Pest".into()
        }]
    );
    assert_eq!(hub.participant_count(), 1);
    // Knocking again does not ask the policy either.
    let out = frame(&mut hub, 3, serde_json::json!({"type":"knock"}), at(2000));
    assert!(commands(&out).is_empty());
    assert_eq!(hub.participant_count(), 1);
    // The moderator may still let it in.
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"admit","id":3}),
        at(3000),
    );
    assert_eq!(types(&sends_to(&out, p(3)))[..2], ["admitted", "joined"]);
    frame(
        &mut hub,
        1,
        serde_json::json!({"type":"kick","id":3}),
        at(4000),
    );
    hub.handle_close(p(3), at(4000));
    drain(&mut hub);
    // After the kick ban: straight in.
    let after = at(4000 + ms_of(DEFAULT_KICK_BAN) + 1);
    let out = join_from(&mut hub, 4, [192, 0, 2, 7], "R", "Pest", None, after);
    assert!(matches!(
        &sends_to(&out, p(4))[0],
        ServerMessage::Joined { .. }
    ));
}

// The deny cooldown (it follows the knocker, not the address) and the
// per-address lobby bounds: `lobby_knockers.rs`.

// ---- the lobby ----------------------------------------------------------

/// 150 guests knock at once: 100 wait, 50 get `lobby-full`; the moderator
/// gets the first knock at once and the other 99 in one update 250 ms
/// later. A guest who knocks and leaves inside an update costs the
/// moderators nothing.
#[test]
fn a_knock_flood_fills_the_lobby_to_its_cap_and_moderators_get_coalesced_updates() {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    let mut to_moderator = Vec::new();
    let mut full = 0;
    for g in 0..150u64 {
        let id = 100 + g;
        let ip = [10, 0, (g / 250) as u8, (g % 250) as u8];
        let out = join_from(&mut hub, id, ip, "R", "Guest", None, at(g));
        if error_code(&sends_to(&out, p(id))) == Some(ErrorCode::LobbyFull) {
            full += 1;
        }
        to_moderator.extend(sends_to(&out, p(1)));
    }
    assert_eq!(hub.lobby_count(), DEFAULT_LOBBY_CAP);
    assert_eq!(full, 50);
    assert_eq!(types(&to_moderator), ["knock"], "only the first, at once");
    let out = run_timers(&mut hub, at(250));
    let knocks = sends_to(&out, p(1));
    assert_eq!(knocks.len(), DEFAULT_LOBBY_CAP - 1);
    assert!(types(&knocks).iter().all(|t| t == "knock"));
    // Churn inside one interval: 100 leaves (told at once: the interval
    // since the last update is over), 300 comes and goes, 101 leaves.
    hub.handle_close(p(100), at(1000));
    assert_eq!(
        sends_to(&drain(&mut hub), p(1)),
        vec![ServerMessage::KnockResolved {
            id: 100,
            by: None,
            admitted: false
        }]
    );
    let out = join_from(&mut hub, 300, [10, 9, 9, 9], "R", "Passing", None, at(1010));
    assert_eq!(types(&sends_to(&out, p(300))), ["lobby", "lobby-position"]);
    assert!(sends_to(&out, p(1)).is_empty());
    hub.handle_close(p(300), at(1020));
    hub.handle_close(p(101), at(1030));
    assert!(sends_to(&drain(&mut hub), p(1)).is_empty());
    let out = run_timers(&mut hub, at(1250));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::KnockResolved {
            id: 101,
            by: None,
            admitted: false
        }]
    );
}

/// One address may enter lobbies 30 times in a burst, then once every 2 s.
#[test]
fn knocks_from_one_address_are_rate_limited() {
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Host", Some(&token("R", "host")), t0());
    let mut limited = 0;
    for id in 100..140u64 {
        let out = join_from(&mut hub, id, [192, 0, 2, 7], "R", "G", None, at(id));
        if let Some(code) = error_code(&sends_to(&out, p(id))) {
            assert_eq!(code, ErrorCode::RateLimited);
            limited += 1;
        }
        hub.handle_close(p(id), at(id));
        drain(&mut hub);
    }
    assert_eq!(limited, 10);
    // Another address is not affected.
    let out = join_from(&mut hub, 200, [192, 0, 2, 8], "R", "G", None, at(200));
    assert_eq!(types(&sends_to(&out, p(200))), ["lobby", "lobby-position"]);
    // Two seconds later, one more from the first address.
    let out = join_from(&mut hub, 201, [192, 0, 2, 7], "R", "G", None, at(2_200));
    assert_eq!(types(&sends_to(&out, p(201))), ["lobby", "lobby-position"]);
}

// ---- state broadcasts and video constraints -----------------------------

/// A participant toggles its microphone 1000 times in a second. Each other
/// member gets at most one `media-state` per 200 ms (at most 6 here, far
/// from any queue's limit), and the last one is the final state.
#[test]
fn a_media_state_storm_reaches_others_coalesced_with_the_final_state() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "R", "Cy");
    let mut to_cy = Vec::new();
    for i in 0..1000u64 {
        let on = i % 2 == 0;
        to_cy.extend(sends_to(
            &frame(
                &mut hub,
                1,
                serde_json::json!({"type":"media-state","audio":on,"video":true}),
                at(i),
            ),
            p(3),
        ));
        to_cy.extend(sends_to(&run_timers(&mut hub, at(i)), p(3)));
        // A screen share toggled along.
        let mid = if on {
            serde_json::json!("3")
        } else {
            serde_json::Value::Null
        };
        to_cy.extend(sends_to(
            &frame(
                &mut hub,
                1,
                serde_json::json!({"type":"screen","mid":mid}),
                at(i),
            ),
            p(3),
        ));
    }
    // The last toggle (i = 999) turned the microphone off and the share off.
    to_cy.extend(sends_to(&run_timers(&mut hub, at(5000)), p(3)));
    let states: Vec<_> = to_cy
        .iter()
        .filter(|m| matches!(m, ServerMessage::MediaState { .. }))
        .collect();
    assert!(states.len() <= 6, "{} media-state messages", states.len());
    assert_eq!(
        states.last(),
        Some(&&ServerMessage::MediaState {
            id: 1,
            audio: false,
            video: true
        })
    );
    let shares: Vec<_> = to_cy
        .iter()
        .filter(|m| matches!(m, ServerMessage::ScreenShare { .. }))
        .collect();
    assert!(shares.len() <= 6, "{} screen-share messages", shares.len());
    assert_eq!(
        shares.last(),
        Some(&&ServerMessage::ScreenShare {
            id: 1,
            track_id: None
        })
    );
    assert!(to_cy.len() <= 12, "{} messages to a bystander", to_cy.len());
    // Nobody was dropped: everyone is still in, and a newcomer sees the
    // final state.
    assert_eq!(hub.participant_count(), 3);
    let out = join(&mut hub, 4, "R", "Dan");
    assert!(matches!(
        &sends_to(&out, p(4))[0],
        ServerMessage::Joined { participants, .. }
            if participants.iter().any(|x| x.id == 1 && x.audio_muted)
    ));
}

/// 1000 `video-constraints` of 256 entries each in a second become at most
/// one command per track present (2 per other member) per 100 ms, the
/// latest height winning.
#[test]
fn a_video_constraints_storm_becomes_bounded_commands() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "R", "Cy");
    let mut cmds = Vec::new();
    for i in 0..1000u64 {
        let mut entries: Vec<serde_json::Value> = ["2-0", "2-1", "3-0", "3-1"]
            .iter()
            .map(|t| serde_json::json!({"track_id": t, "max_height": 100 + i}))
            .collect();
        for m in 0..252 {
            entries.push(serde_json::json!({"track_id": format!("2-{}", m + 10), "max_height": 1}));
        }
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"video-constraints","constraints":entries}),
            at(i),
        );
        cmds.extend(commands(&out));
        cmds.extend(commands(&run_timers(&mut hub, at(i))));
    }
    cmds.extend(commands(&run_timers(&mut hub, at(5000))));
    // At most 4 tracks (2 other members × 2 videos), at most 11 sends.
    assert!(cmds.len() <= 4 * 11, "{} commands", cmds.len());
    let last = |track: &str| {
        cmds.iter().rev().find_map(|c| match c {
            Command::SetReceiveConstraints {
                participant,
                publisher,
                mid,
                max_height,
            } if *participant == p(1) && format!("{}-{mid}", publisher.0) == track => {
                Some(*max_height)
            }
            _ => None,
        })
    };
    for track in ["2-0", "2-1", "3-0", "3-1"] {
        assert_eq!(last(track), Some(Some(1099)), "{track}");
    }
    assert!(cmds.iter().all(
        |c| matches!(c, Command::SetReceiveConstraints { mid, .. } if mid == "0" || mid == "1")
    ));
}

// ---- the pad -------------------------------------------------------------

fn step1_empty() -> Vec<u8> {
    yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep1(
        yrs::StateVector::default(),
    ))
    .encode_v1()
}

/// An awareness message whose user state is `len` bytes of JSON.
fn awareness(len: usize) -> Vec<u8> {
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    let json = format!("{{\"n\":\"{}\"}}", "x".repeat(len));
    let update = AwarenessUpdate {
        clients: [(
            yrs::block::ClientID::new(7),
            AwarenessUpdateEntry {
                clock: u32::try_from(len).unwrap(),
                json: json.into(),
            },
        )]
        .into_iter()
        .collect(),
    };
    yrs::sync::Message::Awareness(update).encode_v1()
}

fn sent_all(hub: &mut Hub, out: &[Output], conn: PadConnId) -> Vec<Bytes> {
    let frames = pad_frames(out, conn);
    for f in &frames {
        hub.handle_pad_sent(conn, f.len());
    }
    frames
}

/// A pad socket asks for the whole document (600 KB) 100 times a second
/// and never reads. It gets at most one full answer a second, and is
/// closed as a slow consumer before 2 MiB are queued to it; the others
/// keep editing and receiving updates.
#[test]
fn a_pad_sync_storm_from_a_socket_that_never_reads_stays_bounded() {
    let mut hub = Hub::with_seed(4);
    let o1 = join(&mut hub, 1, "R", "Mallory");
    let o2 = join(&mut hub, 2, "R", "Ana");
    let o3 = join(&mut hub, 3, "R", "Bob");
    let c1 = open_pad(&mut hub, &o1, 1, 1);
    let c2 = open_pad(&mut hub, &o2, 2, 2);
    let c3 = open_pad(&mut hub, &o3, 3, 3);
    let out = drain(&mut hub);
    for c in [c2, c3] {
        sent_all(&mut hub, &out, c);
    }
    let (d2, d3) = (Doc::with_client_id(2), Doc::with_client_id(3));
    for k in 0..3u32 {
        let f = edit(&d2, k * 200 * 1024, &"a".repeat(200 * 1024));
        hub.handle_pad_frame(c2, &f, t0());
        let out = drain(&mut hub);
        apply_frames(&d3, &sent_all(&mut hub, &out, c3));
    }
    let mut answers = 0;
    let mut closed = None;
    for i in 0..1000u64 {
        hub.handle_pad_frame(c1, &step1_empty(), at(i * 10));
        let mut out = drain(&mut hub);
        out.extend(run_timers(&mut hub, at(i * 10)));
        answers += pad_frames(&out, c1).len();
        if let Some(reason) = pad_close(&out, c1) {
            closed = Some((reason, i));
            break;
        }
        assert!(hub.pad_queued_bytes(c1).unwrap() <= DEFAULT_PAD_QUEUE_BYTES);
        // Ana keeps typing; Bob keeps reading.
        if i % 50 == 0 {
            let len = d2.get_or_insert_text("pad").len(&d2.transact());
            hub.handle_pad_frame(c2, &edit(&d2, len, "!"), at(i * 10));
            let out = drain(&mut hub);
            apply_frames(&d3, &sent_all(&mut hub, &out, c3));
        }
    }
    let (reason, i) = closed.expect("the silent reader is closed");
    assert_eq!(reason, "pad-slow");
    assert!(answers <= 4, "{answers} full answers queued");
    assert!(
        i * 10 >= 2_000,
        "at most one answer a second (closed at {} ms)",
        i * 10
    );
    assert_eq!(hub.pad_queued_bytes(c1), None);
    assert_eq!(hub.role(p(1)), Some(Role::Moderator), "only its pad socket");
    // The others go on.
    let len = d2.get_or_insert_text("pad").len(&d2.transact());
    hub.handle_pad_frame(c2, &edit(&d2, len, "fin"), at(20_000));
    let out = drain(&mut hub);
    apply_frames(&d3, &sent_all(&mut hub, &out, c3));
    let text = |d: &Doc| d.get_or_insert_text("pad").get_string(&d.transact());
    assert_eq!(text(&d3), text(&d2));
    assert!(text(&d3).ends_with("fin"));
}

/// Awareness (cursors) is relayed at most once per 100 ms per socket, the
/// latest winning; a message over 4 KiB closes its sender's pad socket.
#[test]
fn awareness_relays_are_paced_and_size_limited() {
    let mut hub = Hub::with_seed(4);
    let o1 = join(&mut hub, 1, "R", "Ana");
    let o2 = join(&mut hub, 2, "R", "Bob");
    let c1 = open_pad(&mut hub, &o1, 1, 1);
    let c2 = open_pad(&mut hub, &o2, 2, 2);
    drain(&mut hub);
    let mut relayed = Vec::new();
    for i in 0..1000u64 {
        hub.handle_pad_frame(c1, &awareness(10 + (i % 7) as usize), at(i));
        let mut out = drain(&mut hub);
        out.extend(run_timers(&mut hub, at(i)));
        relayed.extend(sent_all(&mut hub, &out, c2));
    }
    relayed.extend(pad_frames(&run_timers(&mut hub, at(2000)), c2));
    assert!(relayed.len() <= 11, "{} relays in a second", relayed.len());
    assert_eq!(
        relayed.last().map(Bytes::len),
        Some(awareness(10 + 999 % 7).len())
    );
    hub.handle_pad_frame(c1, &awareness(5000), at(3000));
    assert_eq!(pad_close(&drain(&mut hub), c1), Some("pad-too-large"));
}
