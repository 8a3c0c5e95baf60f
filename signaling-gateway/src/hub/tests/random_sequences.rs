//! Seeded random sequences of socket events and messages: invariants hold
//! and nothing panics.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::*;
use crate::hub::session::SessionState;

/// Seeded random sessions: every Join to mediad is matched by exactly one
/// Leave once all sockets close, nobody hears about other rooms, and no
/// message goes to a closed socket.
#[test]
fn seeded_random_sessions_keep_invariants() {
    let mut seed = 0x00c0_ffee_1234_5678u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let frames = [
        r#"{"type":"join","room":"A","name":"x"}"#,
        r#"{"type":"join","room":"B","name":"y"}"#,
        r#"{"type":"publish-offer","sdp":"o"}"#,
        r#"{"type":"subscribe-answer","sdp":"a"}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"join","room":"bad room","name":"x"}"#,
        "garbage",
    ];
    let mut total_joins = 0;
    for _round in 0..200 {
        let mut hub = Hub::with_seed(7);
        let mut open = std::collections::BTreeSet::new();
        let mut room_of: BTreeMap<ParticipantId, String> = BTreeMap::new();
        let mut joins = BTreeMap::new();
        let mut leaves = BTreeMap::new();
        // Six socket slots; each open gets a fresh id, as in the server.
        let mut slots = [None::<ParticipantId>; 6];
        let mut next = 1u64;
        for _ in 0..60 {
            let slot = rnd(6) as usize;
            match (rnd(10), slots[slot]) {
                (0, None) => {
                    let id = p(next);
                    next += 1;
                    slots[slot] = Some(id);
                    open.insert(id);
                    hub.handle_open(id);
                }
                (1, Some(id)) => {
                    slots[slot] = None;
                    open.remove(&id);
                    hub.handle_close(id, t0());
                }
                (_, Some(id)) => {
                    hub.handle_frame(id, frames[rnd(frames.len() as u64) as usize], t0());
                }
                _ => {}
            }
            let outs = drain(&mut hub);
            for out in &outs {
                if let Output::Send {
                    to,
                    msg: ServerMessage::Joined { room, .. },
                } = out
                {
                    room_of.insert(*to, room.clone());
                }
            }
            for out in outs {
                match out {
                    Output::Send { to, msg } => {
                        assert!(open.contains(&to), "message to closed socket {to}");
                        if let ServerMessage::ParticipantJoined { id, .. } = &msg {
                            assert_eq!(room_of.get(&to), room_of.get(&p(*id)));
                        }
                    }
                    Output::Media(Command::Join { participant, .. }) => {
                        *joins.entry(participant).or_insert(0) += 1;
                    }
                    Output::Media(Command::Leave { participant }) => {
                        *leaves.entry(participant).or_insert(0) += 1;
                    }
                    Output::Media(_)
                    | Output::Close { .. }
                    | Output::PadSend { .. }
                    | Output::PadClose { .. } => {}
                }
            }
        }
        for id in std::mem::take(&mut open) {
            hub.handle_close(id, t0());
        }
        for out in drain(&mut hub) {
            if let Output::Media(Command::Leave { participant }) = out {
                *leaves.entry(participant).or_insert(0) += 1;
            }
        }
        assert_eq!(joins, leaves);
        assert!(joins.values().all(|n| *n == 1));
        total_joins += joins.len();
        assert_eq!(hub.participant_count(), 0);
        assert_eq!(hub.room_count(), 0);
    }
    assert!(total_joins > 200, "only {total_joins} joins exercised");
}

/// Seeded random sequences of v2 messages from random sockets (ids in
/// and out of range, lobby and joined): no panic, and the counters stay
/// consistent with the rooms.
#[test]
fn random_v2_sequences_never_panic() {
    let mut hub = policy_hub("policy");
    let mut x: u64 = 0x5a10_0004_2026_0001;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for id in 1..=12 {
        hub.handle_open(p(id));
    }
    let start = std::time::Instant::now();
    let mut steps = 0;
    while steps < 20_000 && start.elapsed() < Duration::from_millis(1500) {
        let who = 1 + next(12);
        let target = next(14);
        let room = ["R", "S"][next(2) as usize];
        let v = match next(22) {
            0 => serde_json::json!({"type":"join","room":room,"name":"n"}),
            1 => {
                serde_json::json!({"type":"join","room":room,"name":"a","jwt":token(room, &format!("s{who}"))})
            }
            2 => serde_json::json!({"type":"knock"}),
            3 => serde_json::json!({"type":"admit","id":target}),
            4 => serde_json::json!({"type":"deny","id":target}),
            5 => serde_json::json!({"type":"mute","id":target}),
            6 => serde_json::json!({"type":"mute-all"}),
            7 => serde_json::json!({"type":"allow-unmute"}),
            8 => serde_json::json!({"type":"stop-video","id":target}),
            9 => serde_json::json!({"type":"stop-screen","id":target}),
            10 => serde_json::json!({"type":"kick","id":target,"ban":next(4) == 0}),
            11 => serde_json::json!({"type":"lock","on":next(2) == 0}),
            12 => serde_json::json!({"type":"grant-moderator","id":target}),
            13 => serde_json::json!({"type":"revoke-moderator","id":target}),
            14 => serde_json::json!({"type":"end-meeting"}),
            15 => serde_json::json!({"type":"unmute","kind":"audio"}),
            16 => {
                serde_json::json!({"type":"screen","mid": if next(2) == 0 { serde_json::Value::Null } else { "3".into() }})
            }
            17 => {
                serde_json::json!({"type":"video-constraints","constraints":[{"track_id":format!("{target}-1"),"max_height":next(1000)}]})
            }
            18 => serde_json::json!({"type":"media-state","audio":next(2) == 0,"video":true}),
            19 => serde_json::json!({"type":"chat","text":"x"}),
            20 => {
                hub.handle_close(p(who), t0());
                hub.handle_open(p(who));
                steps += 1;
                continue;
            }
            _ => serde_json::json!({"type":"leave"}),
        };
        hub.handle_frame(p(who), &v.to_string(), at(steps * 50));
        drain(&mut hub);
        let members: usize = hub.rooms.values().map(|r| r.members.len()).sum();
        assert_eq!(members, hub.participant_count());
        for r in hub.rooms.values() {
            assert!(!r.members.is_empty(), "an empty room is dropped");
            for m in &r.members {
                assert!(matches!(hub.sessions.get(m), Some(SessionState::Joined(_))));
            }
            for w in r.lobby.iter() {
                assert!(matches!(
                    hub.sessions.get(&w),
                    Some(SessionState::Waiting(_))
                ));
            }
        }
        steps += 1;
    }
    assert!(steps > 1000, "only {steps} steps");
}
