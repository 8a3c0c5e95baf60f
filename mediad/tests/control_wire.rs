//! The control protocol's wire encoding: every command and event survives
//! a round trip through JSON, carries its version, and a message of
//! another version or shape is refused with a typed error, never misread.

#![allow(clippy::unwrap_used, missing_docs)]

use salon_mediad::control::wire::{self, WireError};
use salon_mediad::{
    Command, ControlError, Event, MediaKind, ParticipantId, RequestId, RoomId, TransportKind,
};

fn p(n: u64) -> ParticipantId {
    ParticipantId(n)
}

fn every_command() -> Vec<Command> {
    vec![
        Command::Join {
            room: RoomId("Équipe-42".into()),
            participant: p(1),
        },
        Command::PublishOffer {
            participant: p((1 << 53) - 1),
            request: RequestId(7),
            sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into(),
        },
        Command::SubscribeAnswer {
            participant: p(2),
            request: RequestId(u64::MAX),
            sdp: "v=0\r\n\"quoted\"\r\n".into(),
        },
        Command::SetForwarding {
            participant: p(3),
            kind: MediaKind::Audio,
            enabled: false,
        },
        Command::SetTrackForwarding {
            participant: p(3),
            mid: "2".into(),
            enabled: true,
        },
        Command::SetScreenShare {
            participant: p(3),
            mid: Some("3".into()),
        },
        Command::SetScreenShare {
            participant: p(3),
            mid: None,
        },
        Command::SetReceiveConstraints {
            participant: p(4),
            publisher: p(3),
            mid: "1".into(),
            max_height: Some(180),
        },
        Command::SetAudioOnly {
            participant: p(4),
            enabled: true,
        },
        Command::SetLastN {
            participant: p(4),
            last_n: Some(5),
        },
        Command::SetBitrateCap {
            participant: p(4),
            bps: None,
        },
        Command::RestartIce { participant: p(4) },
        Command::Leave { participant: p(4) },
    ]
}

fn every_error() -> Vec<ControlError> {
    vec![
        ControlError::NotJoined,
        ControlError::AlreadyJoined,
        ControlError::InvalidOffer("missing ice-ufrag".into()),
        ControlError::OfferNotAcceptable("no codec".into()),
        ControlError::CertificateChanged,
        ControlError::NoOfferPending,
        ControlError::InvalidAnswer("bad line 3".into()),
        ControlError::AnswerMismatch,
        ControlError::NoSuchTrack,
        ControlError::TransportFailed,
        ControlError::OfferTooLarge(65_536),
        ControlError::AnswerTooLarge(67_584),
        ControlError::TooManyOffers,
        ControlError::OverCapacity,
    ]
}

fn every_event() -> Vec<Event> {
    let mut events = vec![
        Event::PublishAnswer {
            participant: p(1),
            request: RequestId(7),
            sdp: "v=0\r\n".into(),
        },
        Event::SubscribeOffer {
            participant: p(1),
            sdp: "v=0\r\n".into(),
        },
        Event::Connected {
            participant: p(1),
            transport: TransportKind::Publish,
        },
        Event::Connected {
            participant: p(1),
            transport: TransportKind::Subscribe,
        },
        Event::TransportLost {
            participant: p(1),
            transport: TransportKind::Subscribe,
        },
        Event::TrackPublished {
            participant: p(1),
            kind: MediaKind::Video,
        },
        Event::DominantSpeaker {
            room: RoomId("R".into()),
            participant: p(2),
        },
        Event::LayersWanted {
            participant: p(2),
            mid: "1".into(),
            active: vec![true, false, false],
        },
    ];
    for (i, error) in every_error().into_iter().enumerate() {
        events.push(Event::Error {
            participant: p(9),
            request: (i % 2 == 0).then_some(RequestId(i as u64)),
            error,
        });
    }
    events
}

#[test]
fn the_samples_cover_every_variant() {
    let kinds = |v: Vec<usize>| {
        v.into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        kinds(every_command().iter().map(Command::variant_index).collect()),
        Command::VARIANTS
    );
    assert_eq!(
        kinds(every_event().iter().map(Event::variant_index).collect()),
        Event::VARIANTS
    );
    assert_eq!(
        kinds(
            every_error()
                .iter()
                .map(ControlError::variant_index)
                .collect()
        ),
        ControlError::VARIANTS
    );
}

#[test]
fn every_command_round_trips_with_its_version() {
    for cmd in every_command() {
        let text = wire::encode_command(&cmd);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["v"], wire::VERSION, "{text}");
        assert!(v["type"].is_string(), "{text}");
        assert_eq!(wire::decode_command(&text).unwrap(), cmd, "{text}");
    }
}

#[test]
fn every_event_round_trips_with_its_version() {
    for event in every_event() {
        let text = wire::encode_event(&event);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["v"], wire::VERSION, "{text}");
        assert_eq!(wire::decode_event(&text).unwrap(), event, "{text}");
    }
}

#[test]
fn the_wire_names_are_stable() {
    let text = wire::encode_command(&Command::PublishOffer {
        participant: p(5),
        request: RequestId(9),
        sdp: "x".into(),
    });
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"v": 1, "type": "publish-offer", "participant": 5, "request": 9, "sdp": "x"})
    );
    let text = wire::encode_event(&Event::Error {
        participant: p(5),
        request: Some(RequestId(9)),
        error: ControlError::InvalidAnswer("bad".into()),
    });
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"v": 1, "type": "error", "participant": 5, "request": 9,
            "error": {"code": "invalid-answer", "detail": "bad"}})
    );
}

#[test]
fn another_version_or_shape_is_refused() {
    let ok = wire::encode_command(&Command::Leave { participant: p(1) });
    let other = ok.replace("\"v\":1", "\"v\":2");
    assert!(matches!(
        wire::decode_command(&other),
        Err(WireError::Version { got: 2 })
    ));
    for bad in [
        "",
        "null",
        "{}",
        r#"{"v":1}"#,
        r#"{"v":1,"type":"no-such-command","participant":1}"#,
        r#"{"v":1,"type":"leave"}"#,
        r#"{"v":1,"type":"leave","participant":-1}"#,
        r#"{"v":1,"type":"leave","participant":"1"}"#,
        r#"{"type":"leave","participant":1}"#,
    ] {
        assert!(wire::decode_command(bad).is_err(), "{bad}");
        assert!(wire::decode_event(bad).is_err(), "{bad}");
    }
}

#[test]
fn errors_read_as_before_for_people() {
    let texts: Vec<String> = every_error().iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "not joined",
            "already joined",
            "invalid offer: missing ice-ufrag",
            "offer not acceptable: no codec",
            "a new DTLS certificate needs a new connection",
            "no subscribe offer is pending",
            "invalid answer: bad line 3",
            "answer does not match the offer",
            "no such video track",
            "media transport failed",
            "offer too large: over 65536 bytes",
            "answer too large: over 67584 bytes",
            "too many offers: try again in a moment",
            "the media server is at capacity",
        ]
    );
}

#[test]
fn random_participant_ids_are_json_safe_and_distinct() {
    let ids: std::collections::BTreeSet<u64> =
        (0..10_000).map(|_| ParticipantId::random().0).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(ids.iter().all(|&i| i > 0 && i < ParticipantId::LIMIT));
}
