//! The meeting pad: one Yjs document per meeting, created on first use and
//! dropped with the room. A member opens its pad socket with the token from
//! `joined`; frames go to the room's document, whose replies go back to the
//! sender and whose updates are relayed to the room's other pad sockets.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::Rng as _;
use rand::rngs::StdRng;

use super::{Hub, Output};
use crate::control::{ParticipantId, RoomId};
use crate::pad::PadDoc;

/// One pad WebSocket (several may come and go per participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PadConnId(pub u64);

impl std::fmt::Display for PadConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pad{}", self.0)
    }
}

/// The pad documents, the pad tokens of members, and the accepted pad
/// sockets.
#[derive(Debug)]
pub(super) struct Pads {
    /// One pad per meeting, created on first use, dropped with the room.
    docs: BTreeMap<RoomId, PadDoc>,
    /// Pad token → its participant (while joined).
    tokens: BTreeMap<String, ParticipantId>,
    /// Open, accepted pad sockets → their participant.
    conns: BTreeMap<PadConnId, ParticipantId>,
    /// Pad tokens are drawn from this.
    rng: StdRng,
}

impl Pads {
    pub(super) fn new(rng: StdRng) -> Self {
        Self {
            docs: BTreeMap::new(),
            tokens: BTreeMap::new(),
            conns: BTreeMap::new(),
            rng,
        }
    }

    /// A fresh, unguessable pad token for member `id`.
    pub(super) fn issue_token(&mut self, id: ParticipantId) -> String {
        let token = loop {
            let n: u128 = self.rng.random();
            let token = format!("{n:032x}");
            if !self.tokens.contains_key(&token) {
                break token;
            }
        };
        self.tokens.insert(token.clone(), id);
        token
    }

    /// The token no longer opens anything (its member left).
    pub(super) fn revoke_token(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    /// Forgets pad socket `conn`; returns its participant if it was open.
    pub(super) fn detach(&mut self, conn: PadConnId) -> Option<ParticipantId> {
        self.conns.remove(&conn)
    }

    /// Destroys `room`'s document; whether there was one.
    pub(super) fn destroy(&mut self, room: &RoomId) -> bool {
        self.docs.remove(room).is_some()
    }
}

impl Hub {
    /// Number of live pad documents (one per meeting that opened its pad).
    pub fn pads_live(&self) -> usize {
        self.pads.docs.len()
    }

    /// Number of accepted pad sockets.
    pub fn pad_connections(&self) -> usize {
        self.pads.conns.len()
    }

    /// The text of a room's pad (`Y.Text` named `name`), if the pad exists
    /// (tests and diagnostics; never logged).
    pub fn pad_text(&self, room: &str, name: &str) -> Option<String> {
        self.pads
            .docs
            .get(&RoomId(room.to_owned()))
            .map(|pad| pad.text(name))
    }

    /// A pad socket opened with `token` (from `joined`). Accepted if the
    /// token belongs to a participant in a room; a second pad socket of the
    /// same participant replaces the first. The room's pad is created on
    /// first use. Refused sockets get [`Output::PadClose`] (`pad-denied`).
    pub fn handle_pad_open(&mut self, conn: PadConnId, token: &str) {
        let member = self
            .pads
            .tokens
            .get(token)
            .copied()
            .and_then(|id| Some((id, self.sessions.get_mut(&id)?.member_mut()?)));
        let Some((id, member)) = member else {
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1008,
                reason: "pad-denied",
            });
            return;
        };
        if let Some(old) = member.pad_conn.replace(conn) {
            self.pads.conns.remove(&old);
            self.outputs.push_back(Output::PadClose {
                to: old,
                code: 1000,
                reason: "pad-replaced",
            });
        }
        let room = member.room.clone();
        self.pads.conns.insert(conn, id);
        let pad = self.pads.docs.entry(room).or_insert_with(|| {
            tracing::debug!("pad created");
            PadDoc::new()
        });
        self.outputs.push_back(Output::PadSend {
            to: conn,
            data: Bytes::from(pad.greeting()),
        });
    }

    /// One binary frame from a pad socket. A refused frame closes that
    /// socket only; the document and the other sockets are unaffected.
    pub fn handle_pad_frame(&mut self, conn: PadConnId, frame: &[u8]) {
        let Some(&id) = self.pads.conns.get(&conn) else {
            return;
        };
        let Some(room) = self.room_of(id).cloned() else {
            return;
        };
        let Some(pad) = self.pads.docs.get_mut(&room) else {
            return;
        };
        match pad.handle_frame(frame) {
            Ok(reply) => {
                if let Some(data) = reply.reply {
                    self.outputs.push_back(Output::PadSend {
                        to: conn,
                        data: Bytes::from(data),
                    });
                }
                if let Some(data) = reply.relay {
                    let data = Bytes::from(data);
                    for other in self.pad_conns_of(&room) {
                        if other != conn {
                            self.outputs.push_back(Output::PadSend {
                                to: other,
                                data: data.clone(),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(participant = %id, error = e.as_str(), "pad frame refused");
                self.refuse_pad(conn, e.close_code(), e.as_str());
            }
        }
    }

    /// A pad frame refused before it reached the document (a text frame,
    /// or a frame over the socket's hard limit): closes that pad socket.
    pub fn handle_pad_refused(&mut self, conn: PadConnId, code: u16, reason: &'static str) {
        if self.pads.conns.contains_key(&conn) {
            self.refuse_pad(conn, code, reason);
        }
    }

    /// A pad socket closed.
    pub fn handle_pad_close(&mut self, conn: PadConnId) {
        if let Some(id) = self.pads.detach(conn)
            && let Some(m) = self.member_mut(id)
            && m.pad_conn == Some(conn)
        {
            m.pad_conn = None;
        }
    }

    fn refuse_pad(&mut self, conn: PadConnId, code: u16, reason: &'static str) {
        self.handle_pad_close(conn);
        self.outputs.push_back(Output::PadClose {
            to: conn,
            code,
            reason,
        });
    }

    /// The open pad sockets of `room`'s members.
    fn pad_conns_of(&self, room: &RoomId) -> Vec<PadConnId> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.members
            .iter()
            .filter_map(|p| self.member(*p).and_then(|m| m.pad_conn))
            .collect()
    }
}
