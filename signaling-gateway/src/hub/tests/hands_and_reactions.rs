//! Raised hands (in order of raising, lowered by their owner or a
//! moderator, gone with their owner, kept over a resume, told to late
//! joiners) and reactions (an allow-list, relayed, rate-limited).

use serde_json::json;

use super::support::*;
use crate::protocol::Reaction;

fn hand(id: u64, raised: bool, by: Option<u64>) -> ServerMessage {
    ServerMessage::Hand { id, raised, by }
}

/// Moderator 1 (first in, open rules), then 2, 3, 4 in room R.
fn room_of_four() -> Hub {
    let mut hub = Hub::with_seed(3);
    for (id, name) in [(1, "Mod"), (2, "Bea"), (3, "Cyr"), (4, "Ada")] {
        join(&mut hub, id, "R", name);
    }
    hub
}

#[test]
fn hands_are_shown_in_order_of_raising_and_a_moderator_lowers_any() {
    let mut hub = room_of_four();
    // Raised in the order B (2), C (3), A (4): everyone hears each one.
    for id in [2, 3, 4] {
        let out = frame(&mut hub, id, json!({"type": "hand", "raised": true}), t0());
        for to in 1..=4 {
            assert_eq!(sends_to(&out, p(to)), vec![hand(id, true, None)], "to {to}");
        }
    }
    assert_eq!(hub.raised_hands("R"), vec![2, 3, 4]);
    // One hand per participant: raising it again changes nothing.
    let out = frame(&mut hub, 2, json!({"type": "hand", "raised": true}), t0());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(hub.raised_hands("R"), vec![2, 3, 4]);

    // A late joiner gets the list, oldest first, right after `joined`.
    let out = join(&mut hub, 5, "R", "Eve");
    let to5 = types(&sends_to(&out, p(5)));
    assert_eq!(to5[..2], ["joined", "hands"]);
    assert!(
        sends_to(&out, p(5)).contains(&ServerMessage::Hands { ids: vec![2, 3, 4] }),
        "{to5:?}"
    );

    // A participant cannot lower someone else's hand: a clear error, and
    // nothing changes for anyone.
    let out = frame(&mut hub, 2, json!({"type": "lower-hand", "id": 3}), t0());
    assert_eq!(out.len(), 1, "{out:?}");
    match &sends_to(&out, p(2))[..] {
        [ServerMessage::Error { code, message }] => {
            assert_eq!(*code, ErrorCode::Forbidden);
            assert!(message.contains("lower someone else's hand"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hub.raised_hands("R"), vec![2, 3, 4]);

    // The moderator lowers C's hand: everyone, C included, hears who did it.
    let out = frame(&mut hub, 1, json!({"type": "lower-hand", "id": 3}), t0());
    for to in 1..=5 {
        assert_eq!(
            sends_to(&out, p(to)),
            vec![hand(3, false, Some(1))],
            "to {to}"
        );
    }
    assert_eq!(hub.raised_hands("R"), vec![2, 4]);
    // Not across rooms, nor on strangers.
    join(&mut hub, 9, "X", "Other");
    for target in [9, 99] {
        let out = frame(
            &mut hub,
            1,
            json!({"type": "lower-hand", "id": target}),
            t0(),
        );
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::NoSuchParticipant)
        );
    }
    // Anyone lowers their own, with `hand` or `lower-hand`.
    let out = frame(&mut hub, 4, json!({"type": "lower-hand", "id": 4}), t0());
    assert_eq!(sends_to(&out, p(1)), vec![hand(4, false, None)]);
    assert_eq!(hub.raised_hands("R"), vec![2]);
    // Raised again: to the end of the queue.
    frame(
        &mut hub,
        4,
        json!({"type": "hand", "raised": true}),
        at(100),
    );
    frame(
        &mut hub,
        3,
        json!({"type": "hand", "raised": true}),
        at(100),
    );
    assert_eq!(hub.raised_hands("R"), vec![2, 4, 3]);

    // Leaving takes the hand down (`participant-left` says so).
    let out = frame(&mut hub, 2, json!({"type": "leave"}), at(200));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantLeft { id: 2 }]
    );
    assert_eq!(hub.raised_hands("R"), vec![4, 3]);
    // So does a kick.
    frame(&mut hub, 1, json!({"type": "kick", "id": 4}), at(300));
    assert_eq!(hub.raised_hands("R"), vec![3]);
    // Outside a room: not joined.
    hub.handle_open(p(20));
    let out = frame(
        &mut hub,
        20,
        json!({"type": "hand", "raised": true}),
        at(300),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(20))),
        Some(ErrorCode::NotJoined)
    );
    assert_eq!(hub.gesture_counts().hands_raised, 5);
}

#[test]
fn a_hand_stays_up_through_a_resume_and_goes_down_when_the_grace_period_ends() {
    let mut hub = room_of_four();
    hub.set_reconnect_grace(std::time::Duration::from_secs(30));
    // Tokens are issued at join: join 6 afresh to read its token.
    let out = join(&mut hub, 6, "R", "Flo");
    let token = resume_token_of(&out, p(6));
    frame(&mut hub, 6, json!({"type": "hand", "raised": true}), t0());
    frame(&mut hub, 2, json!({"type": "hand", "raised": true}), t0());
    hub.handle_close(p(6), at(1_000));
    drain(&mut hub);
    assert_eq!(hub.raised_hands("R"), vec![6, 2]);
    // While 6 is away, 2 lowers its hand: 6 misses it, and hears the list
    // as it is now with `resumed`.
    frame(
        &mut hub,
        2,
        json!({"type": "hand", "raised": false}),
        at(2_000),
    );
    hub.handle_open(p(16));
    let out = frame(
        &mut hub,
        16,
        json!({"type": "resume", "token": token, "media": "kept"}),
        at(3_000),
    );
    let to6 = sends_to(&out, p(16));
    assert_eq!(types(&to6)[0], "resumed");
    assert!(
        to6.contains(&ServerMessage::Hands { ids: vec![6] }),
        "{to6:?}"
    );
    assert_eq!(hub.raised_hands("R"), vec![6]);
    // Refusals reach the new socket too (a burst of reactions, over the limit).
    let mut refused = 0;
    for _ in 0..5 {
        let out = frame(
            &mut hub,
            16,
            json!({"type": "react", "emoji": "👍"}),
            at(3_000),
        );
        if error_code(&sends_to(&out, p(16))) == Some(ErrorCode::TooManyReactions) {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    // Dropped again, and the grace period runs out: the hand goes with it.
    hub.handle_close(p(16), at(4_000));
    drain(&mut hub);
    let out = run_timers(&mut hub, at(40_000));
    assert!(sends_to(&out, p(1)).contains(&ServerMessage::ParticipantLeft { id: 6 }));
    assert!(hub.raised_hands("R").is_empty());
    // Nobody's hand up: a newcomer gets no `hands`.
    let out = join(&mut hub, 7, "R", "Gus");
    assert!(!types(&sends_to(&out, p(7))).contains(&"hands".to_owned()));
}

#[test]
fn reactions_are_relayed_from_the_allow_list_and_a_burst_is_refused() {
    let mut hub = room_of_four();
    // Unknown emoji: refused by the parser, nothing relayed.
    let out = frame(&mut hub, 2, json!({"type": "react", "emoji": "💩"}), t0());
    assert_eq!(out.len(), 1);
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::BadMessage)
    );
    // A burst of 6 at once: 3 reach everyone, 3 are refused to the sender.
    let mut relayed = 0;
    let mut refused = 0;
    for _ in 0..6 {
        let out = frame(&mut hub, 2, json!({"type": "react", "emoji": "👏"}), at(10));
        let to3 = sends_to(&out, p(3));
        match &sends_to(&out, p(2))[..] {
            [ServerMessage::Reaction { id: 2, emoji }] => {
                assert_eq!(*emoji, Reaction::Clap);
                assert_eq!(
                    to3,
                    vec![ServerMessage::Reaction {
                        id: 2,
                        emoji: Reaction::Clap
                    }]
                );
                relayed += 1;
            }
            [ServerMessage::Error { code, .. }] => {
                assert_eq!(*code, ErrorCode::TooManyReactions);
                assert!(to3.is_empty() && sends_to(&out, p(1)).is_empty());
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((relayed, refused), (3, 3));
    // Another member has its own bucket.
    let out = frame(&mut hub, 3, json!({"type": "react", "emoji": "❤️"}), at(10));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::Reaction {
            id: 3,
            emoji: Reaction::Heart
        }]
    );
    // One a second after that: at 1.01 s one more goes, the next does not.
    let out = frame(
        &mut hub,
        2,
        json!({"type": "react", "emoji": "🎉"}),
        at(1_010),
    );
    assert_eq!(sends_to(&out, p(4)).len(), 1);
    let out = frame(
        &mut hub,
        2,
        json!({"type": "react", "emoji": "🎉"}),
        at(1_020),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::TooManyReactions)
    );
    let counts = hub.gesture_counts();
    assert_eq!((counts.reactions_relayed, counts.reactions_refused), (5, 4));
}

#[test]
fn hand_toggles_are_rate_limited() {
    let mut hub = room_of_four();
    // Burst 5, then 30 a minute (one every 2 s).
    for i in 0..5 {
        let out = frame(
            &mut hub,
            2,
            json!({"type": "hand", "raised": i % 2 == 0}),
            at(10),
        );
        assert_eq!(sends_to(&out, p(1)).len(), 1, "toggle {i}");
    }
    let out = frame(
        &mut hub,
        2,
        json!({"type": "hand", "raised": false}),
        at(20),
    );
    assert_eq!(
        error_code(&sends_to(&out, p(2))),
        Some(ErrorCode::RateLimited)
    );
    assert!(sends_to(&out, p(1)).is_empty());
    assert_eq!(hub.raised_hands("R"), vec![2]);
    // Two seconds later: one more.
    let out = frame(
        &mut hub,
        2,
        json!({"type": "hand", "raised": false}),
        at(2_100),
    );
    assert_eq!(sends_to(&out, p(1)), vec![hand(2, false, None)]);
    // A moderator lowering someone's hand is not the owner's toggle.
    frame(
        &mut hub,
        3,
        json!({"type": "hand", "raised": true}),
        at(2_100),
    );
    for _ in 0..10 {
        frame(
            &mut hub,
            1,
            json!({"type": "lower-hand", "id": 3}),
            at(2_100),
        );
    }
    assert!(hub.raised_hands("R").is_empty());
}
