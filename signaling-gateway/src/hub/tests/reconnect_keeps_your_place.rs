//! Reconnect: a dropped signaling socket is not a departure. The member
//! keeps its id, role, admission and media state for the grace period, the
//! room sees `participant-reconnecting`, and a new socket takes the place
//! back with the single-use resume token; past the grace period the member
//! leaves as today.

use std::collections::BTreeMap;
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
        vec![
            ServerMessage::Lobby {
                id: 11,
                room: "R".into(),
                lobby_token: lobby_token_of(&out, p(11)),
            },
            ServerMessage::LobbyPosition {
                position: 1,
                waiting: 1
            }
        ]
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
    assert_eq!(types(&sends_to(&out, p(10))), ["lobby", "lobby-position"]);
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
    // The old socket is closed by the driver ("replaced"), is not heard
    // any more, and its close changes nothing.
    assert!(out.iter().any(|o| matches!(o,
        Output::Close { to, code: 4001, reason: "replaced" } if *to == p(2))));
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

/// Seeded random drops, resumes (with live, used and dead tokens) and
/// grace periods in virtual time: no message goes to a closed or replaced
/// socket, mediad sees Join and Leave alternate for each participant, and
/// once every socket is closed and the grace periods are over, every Join
/// has its Leave and no room is left.
#[test]
fn seeded_random_drops_and_resumes_keep_invariants() {
    let mut seed = 0x0bad_cafe_5eed_0001u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut resumes_ok = 0;
    for _round in 0..150 {
        let mut hub = Hub::with_seed(5);
        hub.set_reconnect_grace(Duration::from_secs(5));
        let mut open = std::collections::BTreeSet::new();
        let mut tokens: Vec<String> = Vec::new();
        // Participant → the socket that carries it; sockets replaced by a resume.
        let mut carrier: BTreeMap<u64, ParticipantId> = BTreeMap::new();
        let mut replaced = std::collections::BTreeSet::new();
        let mut in_mediad: std::collections::BTreeSet<ParticipantId> = Default::default();
        let mut joins = 0;
        let mut leaves = 0;
        let mut slots = [None::<ParticipantId>; 5];
        let mut next = 1u64;
        let mut now_ms = 0;
        for _ in 0..80 {
            now_ms += 700;
            let now = at(now_ms);
            hub.handle_timeout(now);
            let slot = rnd(5) as usize;
            match (rnd(8), slots[slot]) {
                (0 | 1, None) => {
                    let id = p(next);
                    next += 1;
                    slots[slot] = Some(id);
                    open.insert(id);
                    hub.handle_open(id);
                }
                (2, Some(id)) => {
                    slots[slot] = None;
                    open.remove(&id);
                    hub.handle_close(id, now);
                }
                (3 | 4, Some(id)) if !tokens.is_empty() => {
                    let token = &tokens[rnd(tokens.len() as u64) as usize];
                    let media = if rnd(2) == 0 { "kept" } else { "new" };
                    let v = json!({"type": "resume", "token": token, "media": media});
                    hub.handle_frame(id, &v.to_string(), now);
                }
                (_, Some(id)) => {
                    let f = [
                        json!({"type": "join", "room": "A", "name": "x"}),
                        json!({"type": "join", "room": "B", "name": "y"}),
                        json!({"type": "chat", "text": "x"}),
                        json!({"type": "leave"}),
                    ];
                    hub.handle_frame(id, &f[rnd(4) as usize].to_string(), now);
                }
                _ => {}
            }
            for out in drain(&mut hub) {
                match out {
                    Output::Send { to, msg } => {
                        assert!(open.contains(&to), "message to closed socket {to}");
                        assert!(!replaced.contains(&to), "message to replaced socket {to}");
                        match msg {
                            ServerMessage::Joined {
                                id, resume_token, ..
                            } => {
                                carrier.insert(id, to);
                                tokens.push(resume_token);
                            }
                            ServerMessage::Resumed {
                                id, resume_token, ..
                            } => {
                                resumes_ok += 1;
                                if let Some(old) = carrier.insert(id, to) {
                                    replaced.insert(old);
                                }
                                tokens.push(resume_token);
                            }
                            _ => {}
                        }
                    }
                    Output::Media(Command::Join { participant, .. }) => {
                        assert!(in_mediad.insert(participant), "two Joins for {participant}");
                        joins += 1;
                    }
                    Output::Media(Command::Leave { participant }) => {
                        assert!(in_mediad.remove(&participant), "Leave without Join");
                        leaves += 1;
                    }
                    Output::Media(_)
                    | Output::Close { .. }
                    | Output::PadSend { .. }
                    | Output::PadClose { .. } => {}
                }
            }
        }
        for id in std::mem::take(&mut open) {
            hub.handle_close(id, at(now_ms));
        }
        hub.handle_timeout(at(now_ms + 5_000));
        for out in drain(&mut hub) {
            if let Output::Media(Command::Leave { participant }) = out {
                assert!(in_mediad.remove(&participant));
                leaves += 1;
            }
        }
        assert!(in_mediad.is_empty(), "still in mediad: {in_mediad:?}");
        assert_eq!(joins, leaves);
        assert_eq!(hub.participant_count(), 0);
        assert_eq!(hub.room_count(), 0);
        assert!(hub.poll_timeout().is_none());
    }
    assert!(resumes_ok > 50, "only {resumes_ok} resumes exercised");
}

#[test]
fn an_id_in_use_is_known_while_its_participant_may_come_back() {
    // Random ids can meet: the driver refuses a new socket whose id the
    // hub still knows (a live session, or a participant in its grace).
    let mut hub = Hub::with_seed(3);
    hub.set_reconnect_grace(Duration::from_secs(30));
    join(&mut hub, 1, "R", "Ana");
    assert!(hub.id_in_use(p(1)));
    assert!(!hub.id_in_use(p(2)));
    hub.handle_close(p(1), t0());
    assert!(hub.id_in_use(p(1)), "reconnecting: still hers");
    hub.handle_timeout(at(31_000));
    drain(&mut hub);
    assert!(!hub.id_in_use(p(1)), "gone after the grace period");
}

#[test]
fn a_subscribe_offer_that_came_during_the_gap_is_delivered_on_resume() {
    let (mut hub, token) = agent_and_admitted_guest();
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    // mediad re-offers while the guest has no socket: kept, not lost.
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(2),
        sdp: "offer-1".into(),
    });
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(2),
        sdp: "offer-2".into(),
    });
    assert!(drain(&mut hub).is_empty());
    let out = resume(&mut hub, 10, &token, "kept", at(3_000));
    let to_new = sends_to(&out, p(10));
    assert!(matches!(
        to_new.first(),
        Some(ServerMessage::Resumed { .. })
    ));
    let offers: Vec<&ServerMessage> = to_new
        .iter()
        .filter(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
        .collect();
    assert_eq!(
        offers,
        [&ServerMessage::SubscribeOffer {
            sdp: "offer-2".into()
        }],
        "the latest offer, once, after `resumed`"
    );
    // A reload (media: new) gets no stale offer: its new join brings one.
    let token = match to_new.first() {
        Some(ServerMessage::Resumed { resume_token, .. }) => resume_token.clone(),
        _ => unreachable!(),
    };
    hub.handle_close(p(10), at(4_000));
    drain(&mut hub);
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(2),
        sdp: "offer-3".into(),
    });
    assert!(drain(&mut hub).is_empty());
    let out = resume(&mut hub, 11, &token, "new", at(5_000));
    assert!(
        !sends_to(&out, p(11))
            .iter()
            .any(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
    );
}

#[test]
fn an_offer_sent_just_before_the_drop_and_unanswered_is_delivered_again_on_resume() {
    let (mut hub, token) = agent_and_admitted_guest();
    // Sent to the live socket, which drops before the guest's answer.
    hub.handle_media_event(Event::SubscribeOffer {
        participant: p(2),
        sdp: "offer-lost".into(),
    });
    let out = drain(&mut hub);
    assert_eq!(
        sends_to(&out, p(2)),
        [ServerMessage::SubscribeOffer {
            sdp: "offer-lost".into()
        }]
    );
    hub.handle_close(p(2), at(1_000));
    drain(&mut hub);
    let out = resume(&mut hub, 10, &token, "kept", at(2_000));
    let offers: Vec<ServerMessage> = sends_to(&out, p(10))
        .into_iter()
        .filter(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
        .collect();
    assert_eq!(
        offers,
        [ServerMessage::SubscribeOffer {
            sdp: "offer-lost".into()
        }],
        "the unanswered offer again, not 5 s later from mediad"
    );
    // Answered: a later drop and resume brings nothing stale.
    let token = resume_token_of(&out, p(10));
    frame(
        &mut hub,
        10,
        json!({"type": "subscribe-answer", "sdp": "v=0\r\n"}),
        at(2_100),
    );
    hub.handle_close(p(10), at(3_000));
    drain(&mut hub);
    let out = resume(&mut hub, 11, &token, "kept", at(4_000));
    assert!(
        !sends_to(&out, p(11))
            .iter()
            .any(|m| matches!(m, ServerMessage::SubscribeOffer { .. }))
    );
}
