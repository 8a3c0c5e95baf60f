//! The signaling core: rooms, participants and their names, as a sans-IO
//! state machine.
//!
//! Driving contract: call one `handle_*` (a socket opened, a frame arrived, a
//! socket closed, a media event), then drain [`Hub::poll_output`] until it
//! returns `None`. Outputs are either a message for one socket or a command
//! for the media plane. No clock, no IO, deterministic iteration (BTreeMap).
//!
//! The hub holds only session state (who is in which room, with which name);
//! media state lives in mediad.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::control::{Command, Event, ParticipantId, RoomId};
use crate::protocol::{
    ClientMessage, DisplayName, ErrorCode, ParticipantInfo, ProtocolError, ServerMessage,
    parse_client,
};

/// What the hub asks its driver to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// Send a message to one socket.
    Send {
        /// The socket (its participant id).
        to: ParticipantId,
        /// The message.
        msg: ServerMessage,
    },
    /// Send a command to the media plane.
    Media(Command),
}

#[derive(Debug)]
enum SessionState {
    /// Socket open, no `join` yet.
    Lobby,
    /// In a room.
    Joined { room: RoomId, name: DisplayName },
    /// Sent `leave`; the socket may stay open but cannot join again.
    Left,
}

/// Room and participant bookkeeping for every open socket.
#[derive(Debug, Default)]
pub struct Hub {
    sessions: BTreeMap<ParticipantId, SessionState>,
    rooms: BTreeMap<RoomId, BTreeSet<ParticipantId>>,
    outputs: VecDeque<Output>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of participants currently in a room.
    pub fn participant_count(&self) -> usize {
        self.rooms.values().map(BTreeSet::len).sum()
    }

    /// Number of non-empty rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// A socket opened; `id` is its (process-unique) participant id.
    pub fn handle_open(&mut self, id: ParticipantId) {
        self.sessions.insert(id, SessionState::Lobby);
    }

    /// A text frame arrived from socket `id`.
    pub fn handle_frame(&mut self, id: ParticipantId, text: &str) {
        match parse_client(text) {
            Ok(msg) => self.handle_message(id, msg),
            Err(e) => self.send_error(id, &e),
        }
    }

    /// A frame that is refused before parsing (too large, binary).
    pub fn handle_refused(&mut self, id: ParticipantId, code: ErrorCode) {
        self.send_error(
            id,
            &ProtocolError {
                code,
                detail: code.default_message().to_owned(),
            },
        );
    }

    /// A parsed message from socket `id`.
    pub fn handle_message(&mut self, id: ParticipantId, msg: ClientMessage) {
        let Some(state) = self.sessions.get(&id) else {
            return;
        };
        match (msg, state) {
            (ClientMessage::Join { room, name }, SessionState::Lobby) => self.join(id, room, name),
            (ClientMessage::Join { .. }, _) => self.refuse(id, ErrorCode::AlreadyJoined),
            (_, SessionState::Lobby | SessionState::Left) => self.refuse(id, ErrorCode::NotJoined),
            (ClientMessage::PublishOffer { sdp }, SessionState::Joined { .. }) => {
                self.outputs.push_back(Output::Media(Command::PublishOffer {
                    participant: id,
                    sdp,
                }));
            }
            (ClientMessage::SubscribeAnswer { sdp }, SessionState::Joined { .. }) => {
                self.outputs
                    .push_back(Output::Media(Command::SubscribeAnswer {
                        participant: id,
                        sdp,
                    }));
            }
            (ClientMessage::Leave, SessionState::Joined { .. }) => {
                self.leave(id);
                self.sessions.insert(id, SessionState::Left);
            }
        }
    }

    /// Socket `id` closed (or was dropped by the driver).
    pub fn handle_close(&mut self, id: ParticipantId) {
        self.leave(id);
        self.sessions.remove(&id);
    }

    /// An event from the media plane: route it to its participant's socket.
    pub fn handle_media_event(&mut self, event: Event) {
        let (to, msg) = match event {
            Event::PublishAnswer { participant, sdp } => {
                (participant, ServerMessage::PublishAnswer { sdp })
            }
            Event::SubscribeOffer { participant, sdp } => {
                (participant, ServerMessage::SubscribeOffer { sdp })
            }
            Event::Connected {
                participant,
                transport,
            } => (
                participant,
                ServerMessage::Connected {
                    transport: transport.into(),
                },
            ),
            Event::Error {
                participant,
                reason,
            } => (
                participant,
                ServerMessage::Error {
                    code: ErrorCode::Media,
                    message: reason,
                },
            ),
            Event::TrackPublished { participant, kind } => {
                tracing::debug!(%participant, ?kind, "track published");
                return;
            }
            // `Event` is non-exhaustive in mediad (unreachable only when the
            // control types are compiled into this crate).
            #[allow(unreachable_patterns)]
            other => {
                tracing::debug!(?other, "media event not forwarded");
                return;
            }
        };
        // Only participants still in a room get media events: a late event
        // for someone who left (or a stranger id) is dropped.
        if matches!(self.sessions.get(&to), Some(SessionState::Joined { .. })) {
            self.outputs.push_back(Output::Send { to, msg });
        } else {
            tracing::debug!(participant = %to, "media event for absent participant dropped");
        }
    }

    /// Next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn refuse(&mut self, id: ParticipantId, code: ErrorCode) {
        self.handle_refused(id, code);
    }

    fn send_error(&mut self, id: ParticipantId, e: &ProtocolError) {
        tracing::debug!(participant = %id, code = e.code.as_str(), "message refused");
        self.outputs.push_back(Output::Send {
            to: id,
            msg: ServerMessage::error(e),
        });
    }

    fn join(&mut self, id: ParticipantId, room: RoomId, name: DisplayName) {
        let members = self.rooms.entry(room.clone()).or_default();
        let participants: Vec<ParticipantInfo> = members
            .iter()
            .filter_map(|p| match self.sessions.get(p) {
                Some(SessionState::Joined { name, .. }) => Some(ParticipantInfo {
                    id: p.0,
                    name: name.as_str().to_owned(),
                }),
                _ => None,
            })
            .collect();
        for other in members.iter() {
            self.outputs.push_back(Output::Send {
                to: *other,
                msg: ServerMessage::ParticipantJoined {
                    id: id.0,
                    name: name.as_str().to_owned(),
                },
            });
        }
        members.insert(id);
        tracing::info!(participant = %id, "participant joined");
        self.outputs.push_back(Output::Media(Command::Join {
            room: room.clone(),
            participant: id,
        }));
        self.outputs.push_back(Output::Send {
            to: id,
            msg: ServerMessage::Joined {
                id: id.0,
                room: room.0.clone(),
                participants,
            },
        });
        self.sessions
            .insert(id, SessionState::Joined { room, name });
    }

    /// Removes `id` from its room (if any): Leave to mediad, participant-left
    /// to the others.
    fn leave(&mut self, id: ParticipantId) {
        let Some(SessionState::Joined { room, .. }) = self.sessions.get(&id) else {
            return;
        };
        let room = room.clone();
        self.outputs
            .push_back(Output::Media(Command::Leave { participant: id }));
        if let Some(members) = self.rooms.get_mut(&room) {
            members.remove(&id);
            for other in members.iter() {
                self.outputs.push_back(Output::Send {
                    to: *other,
                    msg: ServerMessage::ParticipantLeft { id: id.0 },
                });
            }
            if members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        tracing::info!(participant = %id, "participant left");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{MediaKind, TransportKind};
    use crate::protocol::WireTransport;

    fn p(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    fn drain(hub: &mut Hub) -> Vec<Output> {
        std::iter::from_fn(|| hub.poll_output()).collect()
    }

    fn sends_to(out: &[Output], id: ParticipantId) -> Vec<ServerMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, msg } if *to == id => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn commands(out: &[Output]) -> Vec<Command> {
        out.iter()
            .filter_map(|o| match o {
                Output::Media(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    fn join(hub: &mut Hub, id: u64, room: &str, name: &str) -> Vec<Output> {
        hub.handle_open(p(id));
        hub.handle_frame(
            p(id),
            &format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#),
        );
        drain(hub)
    }

    fn error_code(msgs: &[ServerMessage]) -> Option<ErrorCode> {
        msgs.iter().find_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn join_announces_both_ways() {
        let mut hub = Hub::new();
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
                participants: vec![]
            }]
        );

        let out = join(&mut hub, 2, "R", "Bob");
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantJoined {
                id: 2,
                name: "Bob".into()
            }]
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::Joined {
                id: 2,
                room: "R".into(),
                participants: vec![ParticipantInfo {
                    id: 1,
                    name: "Ana".into()
                }]
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
        let mut hub = Hub::new();
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "X", "Cy");
        hub.handle_close(p(2));
        let out = drain(&mut hub);
        assert!(
            matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(2))
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantLeft { id: 2 }]
        );
        assert!(sends_to(&out, p(3)).is_empty());
        assert!(sends_to(&out, p(2)).is_empty());
        // Closing twice, or closing a lobby socket, does nothing.
        hub.handle_close(p(2));
        hub.handle_open(p(9));
        hub.handle_close(p(9));
        assert!(drain(&mut hub).is_empty());
        // Last one out removes the room.
        hub.handle_close(p(1));
        drain(&mut hub);
        assert_eq!(hub.room_count(), 1);
    }

    #[test]
    fn leave_message_then_rejoin_refused() {
        let mut hub = Hub::new();
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        hub.handle_frame(p(1), r#"{"type":"leave"}"#);
        let out = drain(&mut hub);
        assert!(
            matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(1))
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::ParticipantLeft { id: 1 }]
        );
        hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#);
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(1))),
            Some(ErrorCode::AlreadyJoined)
        );
        hub.handle_frame(p(1), r#"{"type":"publish-offer","sdp":"v=0"}"#);
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(1))),
            Some(ErrorCode::NotJoined)
        );
        // The later close must not send a second Leave.
        hub.handle_close(p(1));
        assert!(commands(&drain(&mut hub)).is_empty());
    }

    #[test]
    fn every_session_error_code_and_socket_stays_usable() {
        let mut hub = Hub::new();
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
            hub.handle_frame(p(1), frame);
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
        hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#);
        let out = drain(&mut hub);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::AlreadyJoined)
        );
        assert!(commands(&out).is_empty());
    }

    #[test]
    fn sdp_goes_to_media_with_the_sender_id() {
        let mut hub = Hub::new();
        join(&mut hub, 4, "R", "Ana");
        hub.handle_frame(p(4), r#"{"type":"publish-offer","sdp":"offer"}"#);
        hub.handle_frame(p(4), r#"{"type":"subscribe-answer","sdp":"answer"}"#);
        let cmds = commands(&drain(&mut hub));
        assert!(matches!(&cmds[..], [
            Command::PublishOffer { participant: a, sdp: s1 },
            Command::SubscribeAnswer { participant: b, sdp: s2 },
        ] if *a == p(4) && *b == p(4) && s1 == "offer" && s2 == "answer"));
    }

    #[test]
    fn media_events_reach_only_their_socket() {
        let mut hub = Hub::new();
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        hub.handle_open(p(3)); // lobby: no media events
        let events = [
            Event::PublishAnswer {
                participant: p(1),
                sdp: "ans".into(),
            },
            Event::SubscribeOffer {
                participant: p(2),
                sdp: "off".into(),
            },
            Event::Connected {
                participant: p(1),
                transport: TransportKind::Subscribe,
            },
            Event::Error {
                participant: p(2),
                reason: "bad sdp".into(),
            },
            Event::TrackPublished {
                participant: p(1),
                kind: MediaKind::Video,
            },
            Event::PublishAnswer {
                participant: p(3),
                sdp: "x".into(),
            },
            Event::PublishAnswer {
                participant: p(99),
                sdp: "x".into(),
            },
        ];
        for e in events {
            hub.handle_media_event(e);
        }
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(1)),
            vec![
                ServerMessage::PublishAnswer { sdp: "ans".into() },
                ServerMessage::Connected {
                    transport: WireTransport::Subscribe
                },
            ]
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![
                ServerMessage::SubscribeOffer { sdp: "off".into() },
                ServerMessage::Error {
                    code: ErrorCode::Media,
                    message: "bad sdp".into()
                },
            ]
        );
        assert!(sends_to(&out, p(3)).is_empty());
        assert_eq!(out.len(), 4);
        // After leaving, late events are dropped.
        hub.handle_close(p(1));
        drain(&mut hub);
        hub.handle_media_event(Event::SubscribeOffer {
            participant: p(1),
            sdp: "late".into(),
        });
        assert!(drain(&mut hub).is_empty());
    }

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
            let mut hub = Hub::new();
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
                        hub.handle_close(id);
                    }
                    (_, Some(id)) => {
                        hub.handle_frame(id, frames[rnd(frames.len() as u64) as usize]);
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
                        Output::Media(_) => {}
                    }
                }
            }
            for id in std::mem::take(&mut open) {
                hub.handle_close(id);
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
}
