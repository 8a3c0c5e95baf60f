//! Joining and leaving a room from a signaling socket: who is told what,
//! and every refusal leaves the socket usable.

use super::support::*;
use crate::protocol::ParticipantInfo;

#[test]
fn join_announces_both_ways() {
    let mut hub = Hub::with_seed(7);
    let out = join(&mut hub, 1, "R", "Ana");
    assert!(matches!(
        commands(&out)[..],
        [Command::Join { ref room, participant }] if room.0 == "R" && participant == p(1)
    ));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::Joined {
            id: 1,
            room: "R".into(),
            role: WireRole::Moderator,
            locked: false,
            participants: vec![],
            pad_token: token_of(&out, p(1)),
            resume_token: resume_token_of(&out, p(1)),
            ice_servers: vec![],
        }]
    );

    let out = join(&mut hub, 2, "R", "Bob");
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantJoined {
            id: 2,
            name: "Bob".into(),
            role: WireRole::Participant,
        }]
    );
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::Joined {
            id: 2,
            room: "R".into(),
            role: WireRole::Participant,
            locked: false,
            participants: vec![ParticipantInfo {
                id: 1,
                name: "Ana".into(),
                role: WireRole::Moderator,
                audio_muted: false,
                video_stopped: false,
                reconnecting: false,
            }],
            pad_token: token_of(&out, p(2)),
            resume_token: resume_token_of(&out, p(2)),
            ice_servers: vec![],
        }]
    );

    // Another room sees nothing.
    let out = join(&mut hub, 3, "Other", "Cy");
    assert!(sends_to(&out, p(1)).is_empty());
    assert!(sends_to(&out, p(2)).is_empty());
    assert_eq!(hub.participant_count(), 3);
    assert_eq!(hub.room_count(), 2);
}

#[test]
fn close_sends_leave_and_tells_the_room() {
    let mut hub = Hub::with_seed(7);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    join(&mut hub, 3, "X", "Cy");
    hub.handle_close(p(2), t0());
    let out = drain(&mut hub);
    assert!(matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(2)));
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::ParticipantLeft { id: 2 }]
    );
    assert!(sends_to(&out, p(3)).is_empty());
    assert!(sends_to(&out, p(2)).is_empty());
    // Closing twice, or closing a lobby socket, does nothing.
    hub.handle_close(p(2), t0());
    hub.handle_open(p(9));
    hub.handle_close(p(9), t0());
    assert!(drain(&mut hub).is_empty());
    // Last one out removes the room.
    hub.handle_close(p(1), t0());
    drain(&mut hub);
    assert_eq!(hub.room_count(), 1);
}

#[test]
fn leave_message_then_rejoin_refused() {
    let mut hub = Hub::with_seed(7);
    join(&mut hub, 1, "R", "Ana");
    join(&mut hub, 2, "R", "Bob");
    hub.handle_frame(p(1), r#"{"type":"leave"}"#, t0());
    let out = drain(&mut hub);
    assert!(matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(1)));
    assert_eq!(
        sends_to(&out, p(2)),
        vec![ServerMessage::ParticipantLeft { id: 1 }]
    );
    hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#, t0());
    assert_eq!(
        error_code(&sends_to(&drain(&mut hub), p(1))),
        Some(ErrorCode::AlreadyJoined)
    );
    hub.handle_frame(p(1), r#"{"type":"publish-offer","sdp":"v=0"}"#, t0());
    assert_eq!(
        error_code(&sends_to(&drain(&mut hub), p(1))),
        Some(ErrorCode::NotJoined)
    );
    // The later close must not send a second Leave.
    hub.handle_close(p(1), t0());
    assert!(commands(&drain(&mut hub)).is_empty());
}

#[test]
fn every_session_error_code_and_socket_stays_usable() {
    let mut hub = Hub::with_seed(7);
    hub.handle_open(p(1));
    let cases: &[(&str, ErrorCode)] = &[
        ("nope", ErrorCode::BadJson),
        ("42", ErrorCode::BadMessage),
        (r#"{"type":"hello"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"publish-offer","sdp":"v=0"}"#,
            ErrorCode::NotJoined,
        ),
        (
            r#"{"type":"subscribe-answer","sdp":"v=0"}"#,
            ErrorCode::NotJoined,
        ),
        (r#"{"type":"leave"}"#, ErrorCode::NotJoined),
        (
            r#"{"type":"join","room":"a/b","name":"A"}"#,
            ErrorCode::BadRoom,
        ),
        (
            r#"{"type":"join","room":"ab","name":"\u0007"}"#,
            ErrorCode::BadName,
        ),
    ];
    for (frame, expected) in cases {
        hub.handle_frame(p(1), frame, t0());
        let out = drain(&mut hub);
        assert!(commands(&out).is_empty(), "{frame}");
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(*expected),
            "{frame}"
        );
    }
    for code in [ErrorCode::TooLarge, ErrorCode::NotText] {
        hub.handle_refused(p(1), code);
        assert_eq!(error_code(&sends_to(&drain(&mut hub), p(1))), Some(code));
    }
    // Still usable: a valid join works, a second one is refused.
    let out = join(&mut hub, 1, "R", "Ana");
    assert!(matches!(
        sends_to(&out, p(1))[..],
        [ServerMessage::Joined { .. }]
    ));
    hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#, t0());
    let out = drain(&mut hub);
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::AlreadyJoined)
    );
    assert!(commands(&out).is_empty());
}
