//! Shared helpers of the hub's tests: virtual time, draining outputs,
//! picking messages and commands out of them, joining, the pad's browser
//! side, and a hub with the shipped Lua policy and test tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use salon_plugins::{AuthConfig, Authenticator, PolicyConfig, PolicyHost};
use yrs::updates::encoder::Encode as _;
use yrs::{Doc, ReadTxn as _, Text as _, Transact as _};

pub(super) use crate::control::{Command, Event, ParticipantId};
pub(super) use crate::hub::{Hub, Now, Output, PadConnId};
pub(super) use crate::protocol::{ErrorCode, ServerMessage, WireRole};

/// Virtual time: a fixed base instant plus `ms`.
pub(super) fn at(ms: u64) -> Now {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    Now {
        mono: base + Duration::from_millis(ms),
        unix_ms: 1_700_000_000_000 + ms,
    }
}

pub(super) fn t0() -> Now {
    at(0)
}

pub(super) fn p(n: u64) -> ParticipantId {
    ParticipantId(n)
}

pub(super) fn drain(hub: &mut Hub) -> Vec<Output> {
    std::iter::from_fn(|| hub.poll_output()).collect()
}

pub(super) fn sends_to(out: &[Output], id: ParticipantId) -> Vec<ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } if *to == id => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn commands(out: &[Output]) -> Vec<Command> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn join(hub: &mut Hub, id: u64, room: &str, name: &str) -> Vec<Output> {
    hub.handle_open(p(id));
    hub.handle_frame(
        p(id),
        &format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#),
        t0(),
    );
    drain(hub)
}

pub(super) fn token_of(out: &[Output], id: ParticipantId) -> String {
    sends_to(out, id)
        .iter()
        .find_map(|m| match m {
            ServerMessage::Joined { pad_token, .. } => Some(pad_token.clone()),
            _ => None,
        })
        .unwrap()
}

/// The resume token of the last `joined` or `resumed` sent to `id`.
pub(super) fn resume_token_of(out: &[Output], id: ParticipantId) -> String {
    sends_to(out, id)
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::Joined { resume_token, .. }
            | ServerMessage::Resumed { resume_token, .. } => Some(resume_token.clone()),
            _ => None,
        })
        .unwrap()
}

/// The lobby token of `id`'s `lobby` in `out` (32 hex digits).
pub(super) fn lobby_token_of(out: &[Output], id: ParticipantId) -> String {
    let token = sends_to(out, id)
        .into_iter()
        .find_map(|m| match m {
            ServerMessage::Lobby { lobby_token, .. } => Some(lobby_token),
            _ => None,
        })
        .expect("a `lobby` message");
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    token
}

pub(super) fn error_code(msgs: &[ServerMessage]) -> Option<ErrorCode> {
    msgs.iter().find_map(|m| match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    })
}

pub(super) fn chat_frame(text: &str, to: Option<u64>) -> String {
    serde_json::json!({"type": "chat", "text": text, "to": to}).to_string()
}

pub(super) fn chats(msgs: &[ServerMessage]) -> Vec<(u64, String, Option<u64>)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { from, text, to, .. } => Some((*from, text.clone(), *to)),
            _ => None,
        })
        .collect()
}

// ---- pad ----------------------------------------------------------------

pub(super) fn pad_frames(out: &[Output], conn: PadConnId) -> Vec<Bytes> {
    out.iter()
        .filter_map(|o| match o {
            Output::PadSend { to, data } if *to == conn => Some(data.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn pad_close(out: &[Output], conn: PadConnId) -> Option<&'static str> {
    out.iter().find_map(|o| match o {
        Output::PadClose { to, reason, .. } if *to == conn => Some(*reason),
        _ => None,
    })
}

/// A browser-side document: applies what the gateway sends.
pub(super) fn apply_frames(doc: &Doc, frames: &[Bytes]) {
    use yrs::sync::{Message, SyncMessage};
    use yrs::updates::decoder::Decode as _;
    for f in frames {
        if let Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) =
            Message::decode_v1(f).unwrap()
        {
            doc.transact_mut()
                .apply_update(yrs::Update::decode_v1(&u).unwrap())
                .unwrap();
        }
    }
}

pub(super) fn edit(doc: &Doc, at: u32, text: &str) -> Vec<u8> {
    use yrs::sync::{Message, SyncMessage};
    let t = doc.get_or_insert_text("pad");
    let before = doc.transact().state_vector();
    t.insert(&mut doc.transact_mut(), at, text);
    let update = doc.transact().encode_state_as_update_v1(&before);
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

pub(super) fn open_pad(hub: &mut Hub, out: &[Output], id: u64, conn: u64) -> PadConnId {
    let conn = PadConnId(conn);
    hub.handle_pad_open(conn, &token_of(out, p(id)));
    conn
}

// ---- policy and tokens --------------------------------------------------

const SECRET: &str = "hub-test-secret-0123456789abcdef";
const T0_S: u64 = 1_700_000_000;

pub(super) fn policy_hub(entry: &str) -> Hub {
    let mut hub = Hub::with_seed(9);
    let mut c = PolicyConfig::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua"));
    c.entry = entry.to_owned();
    c.wall_budget = None;
    hub.set_policy(PolicyHost::new(c).unwrap());
    let auth: AuthConfig = serde_json::from_value(serde_json::json!({
        "issuers": ["salon-test"], "audiences": ["salon"],
        "keys": [{"id": "k", "algorithms": ["HS256"], "secret": SECRET}]
    }))
    .unwrap();
    hub.set_auth(Arc::new(Authenticator::new(&auth).unwrap()));
    hub
}

pub(super) fn token(room: &str, sub: &str) -> String {
    let claims = serde_json::json!({
        "iss": "salon-test", "aud": "salon", "sub": sub, "room": room,
        "exp": T0_S + 3600, "nbf": T0_S - 10,
        "context": {"user": {"id": sub, "name": "Agent", "moderator": true}}
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub(super) fn join_at(
    hub: &mut Hub,
    id: u64,
    room: &str,
    name: &str,
    jwt: Option<&str>,
    now: Now,
) -> Vec<Output> {
    hub.handle_open(p(id));
    let mut v = serde_json::json!({"type": "join", "room": room, "name": name});
    if let Some(t) = jwt {
        v["jwt"] = t.into();
    }
    hub.handle_frame(p(id), &v.to_string(), now);
    drain(hub)
}

pub(super) fn frame(hub: &mut Hub, id: u64, v: serde_json::Value, now: Now) -> Vec<Output> {
    hub.handle_frame(p(id), &v.to_string(), now);
    drain(hub)
}

pub(super) fn types(msgs: &[ServerMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// An agent (id 1) in room R, guest 2 waiting in its lobby.
pub(super) fn agent_and_waiting_guest() -> Hub {
    let mut hub = policy_hub("policy");
    let out = join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
    assert!(matches!(
        &sends_to(&out, p(1))[0],
        ServerMessage::Joined {
            role: WireRole::Moderator,
            ..
        }
    ));
    let out = join_at(&mut hub, 2, "R", "Guest", None, t0());
    assert_eq!(
        sends_to(&out, p(2)),
        vec![
            ServerMessage::Lobby {
                id: 2,
                room: "R".into(),
                lobby_token: lobby_token_of(&out, p(2)),
            },
            ServerMessage::LobbyPosition {
                position: 1,
                waiting: 1
            }
        ]
    );
    assert_eq!(
        sends_to(&out, p(1)),
        vec![ServerMessage::Knock {
            id: 2,
            name: "Guest".into()
        }]
    );
    assert!(
        commands(&out).is_empty(),
        "nothing reaches mediad for a waiting guest"
    );
    assert_eq!(hub.knocking("R"), vec![2]);
    hub
}

/// A token signed with the test key for these claims (defaults filled in:
/// issuer, audience, times).
pub(super) fn token_with(mut claims: serde_json::Value) -> String {
    let defaults = serde_json::json!({
        "iss": "salon-test", "aud": "salon", "exp": T0_S + 3600, "nbf": T0_S - 10,
    });
    if let (Some(c), Some(d)) = (claims.as_object_mut(), defaults.as_object()) {
        for (k, v) in d {
            c.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Like [`join_at`], from network address `ip`.
pub(super) fn join_from(
    hub: &mut Hub,
    id: u64,
    ip: [u8; 4],
    room: &str,
    name: &str,
    jwt: Option<&str>,
    now: Now,
) -> Vec<Output> {
    hub.handle_open_from(p(id), Some(std::net::IpAddr::from(ip)));
    join_at(hub, id, room, name, jwt, now)
}

/// Runs the hub's deadlines due by `now` (virtual time), returning what
/// they produced.
pub(super) fn run_timers(hub: &mut Hub, now: Now) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some((t, _)) = hub.poll_timeout() {
        if t > now.mono {
            break;
        }
        hub.handle_timeout(now);
        out.extend(drain(hub));
    }
    out
}
