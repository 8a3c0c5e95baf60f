//! Chat: public to the room, private to one member, stamped by the server,
//! rate-limited, and passed through the policy.

use super::support::*;
use crate::hub::CHAT_BURST;

#[test]
fn public_chat_reaches_the_room_only_stamped_by_the_server() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "X", "Cy");
    hub.handle_frame(
        p(1),
        &chat_frame("<img src=x onerror=alert(1)>", None),
        at(1234),
    );
    let out = drain(&mut hub);
    for id in [1, 2] {
        let msgs = sends_to(&out, p(id));
        assert_eq!(
            msgs,
            vec![ServerMessage::Chat {
                from: 1,
                name: "Ana".into(),
                text: "<img src=x onerror=alert(1)>".into(),
                time: 1_700_000_001_234,
                to: None
            }]
        );
    }
    assert!(sends_to(&out, p(3)).is_empty());
    assert!(commands(&out).is_empty());
    // Not in a room: refused.
    hub.handle_open(p(4));
    hub.handle_frame(p(4), &chat_frame("hi", None), t0());
    assert_eq!(
        error_code(&sends_to(&drain(&mut hub), p(4))),
        Some(ErrorCode::NotJoined)
    );
}

#[test]
fn private_chat_reaches_only_its_addressee_and_sender() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "R", "Cy");
    join(&mut hub, 4, "X", "Dan");
    hub.handle_frame(p(1), &chat_frame("psst", Some(2)), t0());
    let out = drain(&mut hub);
    assert_eq!(
        chats(&sends_to(&out, p(1))),
        vec![(1, "psst".into(), Some(2))]
    );
    assert_eq!(
        chats(&sends_to(&out, p(2))),
        vec![(1, "psst".into(), Some(2))]
    );
    assert!(sends_to(&out, p(3)).is_empty());
    assert!(sends_to(&out, p(4)).is_empty());
    // To someone in another room, to nobody, to oneself: refused, and
    // nothing is delivered to anyone.
    for to in [4, 99, 1] {
        hub.handle_frame(p(1), &chat_frame("secret", Some(to)), t0());
        let out = drain(&mut hub);
        assert_eq!(out.len(), 1, "to {to}");
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::NoSuchParticipant)
        );
    }
    // Someone who left is no longer addressable.
    hub.handle_close(p(2), t0());
    drain(&mut hub);
    hub.handle_frame(p(1), &chat_frame("still there?", Some(2)), t0());
    assert_eq!(
        error_code(&sends_to(&drain(&mut hub), p(1))),
        Some(ErrorCode::NoSuchParticipant)
    );
}

#[test]
fn chat_rate_limit_per_participant() {
    let mut hub = Hub::with_seed(1);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    // Burst of 10 accepted, the 11th at the same instant refused.
    for i in 0..CHAT_BURST {
        hub.handle_frame(p(1), &chat_frame(&format!("m{i}"), None), t0());
    }
    hub.handle_frame(p(1), &chat_frame("one too many", None), t0());
    let out = drain(&mut hub);
    assert_eq!(chats(&sends_to(&out, p(2))).len(), CHAT_BURST as usize);
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::RateLimited)
    );
    // Bob is not limited by Ana's burst.
    hub.handle_frame(p(2), &chat_frame("moi", None), t0());
    assert_eq!(chats(&sends_to(&drain(&mut hub), p(1))).len(), 1);
    // 5 per second refill: after 200 ms one more passes, a second not.
    hub.handle_frame(p(1), &chat_frame("a", None), at(200));
    hub.handle_frame(p(1), &chat_frame("b", None), at(200));
    let out = drain(&mut hub);
    assert_eq!(chats(&sends_to(&out, p(2))).len(), 1);
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::RateLimited)
    );
    // After two seconds the bucket is full again.
    for i in 0..CHAT_BURST {
        hub.handle_frame(p(1), &chat_frame(&format!("n{i}"), None), at(2_500));
    }
    assert_eq!(
        chats(&sends_to(&drain(&mut hub), p(2))).len(),
        CHAT_BURST as usize
    );
    // An oversized message is refused and reaches nobody.
    hub.handle_frame(p(1), &chat_frame(&"x".repeat(2001), None), at(5_000));
    let out = drain(&mut hub);
    assert_eq!(out.len(), 1);
    assert_eq!(error_code(&sends_to(&out, p(1))), Some(ErrorCode::TooLong));
}

#[test]
fn chat_goes_through_on_chat_and_open_policy_makes_the_first_moderator() {
    let mut hub = policy_hub("open");
    let out = join_at(&mut hub, 1, "R", "Ana", None, t0());
    assert!(matches!(
        &sends_to(&out, p(1))[0],
        ServerMessage::Joined {
            role: WireRole::Moderator,
            ..
        }
    ));
    let out = join_at(&mut hub, 2, "R", "Bob", None, t0());
    assert!(matches!(
        &sends_to(&out, p(2))[0],
        ServerMessage::Joined {
            role: WireRole::Participant,
            ..
        }
    ));
    let mut hub = policy_hub("policy");
    join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
    let out = frame(
        &mut hub,
        1,
        serde_json::json!({"type":"chat","text":"bonjour"}),
        t0(),
    );
    assert_eq!(chats(&sends_to(&out, p(1))).len(), 1);
}
