//! The meeting pad: one Yjs document per meeting, created on first use and
//! dropped with the room. A member opens its pad socket with the token from
//! `joined`; frames go to the room's document, whose replies go back to the
//! sender and whose updates are relayed to the room's other pad sockets.
//!
//! Bounds per pad socket: a full-state answer (SyncStep2, up to the whole
//! document) at most once per `HubLimits::pad_sync_interval`, further
//! SyncStep1s coalesced into the next answer; awareness messages (at most
//! [`MAX_AWARENESS_BYTES`]) relayed at most once per
//! `HubLimits::awareness_interval`, the latest winning; and at most
//! `HubLimits::pad_queue_bytes` queued and not yet written (the driver
//! reports writes with [`Hub::handle_pad_sent`]): past it the socket is
//! closed as a slow consumer (`pad-slow`), and the others carry on.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::Rng as _;
use rand::rngs::StdRng;

use super::limits::{Pace, Pacer};
use super::timers::Timer;
use super::{Hub, Now, Output};
use crate::control::{ParticipantId, RoomId};
use crate::pad::{MAX_AWARENESS_BYTES, PadDoc, PadError};

/// Close code and reason of a pad socket that does not read what it asks for.
const SLOW: (u16, &str) = (1008, "pad-slow");

/// One accepted pad socket.
#[derive(Debug)]
struct PadConn {
    participant: ParticipantId,
    /// Bytes queued to it and not yet reported written.
    queued: usize,
    /// Paces its full-state answers.
    sync: Pacer,
    /// Its latest SyncStep1 waiting for the next answer.
    pending_sync: Option<Vec<u8>>,
    /// Paces the relay of its awareness messages.
    awareness: Pacer,
    /// Its latest awareness message waiting for the next relay.
    pending_awareness: Option<Bytes>,
}

impl PadConn {
    fn new(participant: ParticipantId) -> Self {
        Self {
            participant,
            queued: 0,
            sync: Pacer::default(),
            pending_sync: None,
            awareness: Pacer::default(),
            pending_awareness: None,
        }
    }
}

/// What kind of y-protocols message a frame is, from its first bytes (the
/// document checks the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// Sync, SyncStep1: asks for what the document has.
    SyncRequest,
    /// Awareness (cursors, names), relayed, never stored.
    Awareness,
    /// Anything else (updates, queries, garbage: the document decides).
    Other,
}

fn frame_kind(frame: &[u8]) -> FrameKind {
    match frame {
        [0, 0, ..] => FrameKind::SyncRequest,
        [1, ..] => FrameKind::Awareness,
        _ => FrameKind::Other,
    }
}

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
    /// Open, accepted pad sockets.
    conns: BTreeMap<PadConnId, PadConn>,
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
        self.conns.remove(&conn).map(|c| c.participant)
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
        self.pads.conns.insert(conn, PadConn::new(id));
        let pad = self.pads.docs.entry(room).or_insert_with(|| {
            tracing::debug!("pad created");
            PadDoc::new()
        });
        let greeting = Bytes::from(pad.greeting());
        self.pad_send(conn, greeting);
    }

    /// The driver wrote `bytes` of what was queued to pad socket `conn`.
    pub fn handle_pad_sent(&mut self, conn: PadConnId, bytes: usize) {
        if let Some(c) = self.pads.conns.get_mut(&conn) {
            c.queued = c.queued.saturating_sub(bytes);
        }
    }

    /// Bytes queued to pad socket `conn` and not yet reported written.
    pub fn pad_queued_bytes(&self, conn: PadConnId) -> Option<usize> {
        self.pads.conns.get(&conn).map(|c| c.queued)
    }

    /// Queues `data` to pad socket `conn`, or closes it as a slow consumer
    /// if that would queue more than the bound.
    fn pad_send(&mut self, conn: PadConnId, data: Bytes) {
        let bound = self.limits.pad_queue_bytes;
        let Some(c) = self.pads.conns.get_mut(&conn) else {
            return;
        };
        let queued = c.queued.saturating_add(data.len());
        if queued > bound {
            tracing::info!(%conn, "pad socket not reading: closed");
            let (code, reason) = SLOW;
            self.refuse_pad(conn, code, reason);
            return;
        }
        c.queued = queued;
        self.outputs.push_back(Output::PadSend { to: conn, data });
    }

    /// One binary frame from a pad socket at `now`. A refused frame closes
    /// that socket only; the document and the other sockets are unaffected.
    pub fn handle_pad_frame(&mut self, conn: PadConnId, frame: &[u8], now: Now) {
        let Some(c) = self.pads.conns.get_mut(&conn) else {
            return;
        };
        match frame_kind(frame) {
            FrameKind::SyncRequest => {
                // Latest wins: an older request is answered by the newer one.
                c.pending_sync = Some(frame.to_vec());
                match c.sync.change(now.mono, self.limits.pad_sync_interval) {
                    Pace::Now => self.pad_sync_due_now(conn),
                    Pace::At(at) => self.timers.set(at, Timer::PadSync(conn)),
                    Pace::Pending => {}
                }
            }
            FrameKind::Awareness => {
                if frame.len() > MAX_AWARENESS_BYTES {
                    let e = PadError::TooLarge;
                    tracing::debug!(%conn, error = e.as_str(), "pad frame refused");
                    self.refuse_pad(conn, e.close_code(), e.as_str());
                    return;
                }
                c.pending_awareness = Some(Bytes::copy_from_slice(frame));
                match c.awareness.change(now.mono, self.limits.awareness_interval) {
                    Pace::Now => self.relay_awareness(conn),
                    Pace::At(at) => self.timers.set(at, Timer::PadAwareness(conn)),
                    Pace::Pending => {}
                }
            }
            FrameKind::Other => self.pad_to_document(conn, frame),
        }
    }

    /// The coalesced SyncStep1 of pad socket `conn` is due.
    pub(super) fn pad_sync_due(&mut self, conn: PadConnId, now: Now) {
        if self
            .pads
            .conns
            .get_mut(&conn)
            .is_some_and(|c| c.sync.fire(now.mono))
        {
            self.pad_sync_due_now(conn);
        }
    }

    fn pad_sync_due_now(&mut self, conn: PadConnId) {
        if let Some(frame) = self
            .pads
            .conns
            .get_mut(&conn)
            .and_then(|c| c.pending_sync.take())
        {
            self.pad_to_document(conn, &frame);
        }
    }

    /// The awareness relay of pad socket `conn` is due.
    pub(super) fn pad_awareness_due(&mut self, conn: PadConnId, now: Now) {
        if self
            .pads
            .conns
            .get_mut(&conn)
            .is_some_and(|c| c.awareness.fire(now.mono))
        {
            self.relay_awareness(conn);
        }
    }

    /// Relays pad socket `conn`'s latest awareness message (through the
    /// document, which checks it).
    fn relay_awareness(&mut self, conn: PadConnId) {
        if let Some(frame) = self
            .pads
            .conns
            .get_mut(&conn)
            .and_then(|c| c.pending_awareness.take())
        {
            self.pad_to_document(conn, &frame);
        }
    }

    /// One frame of pad socket `conn` through its room's document: the
    /// reply to it, the relay to the room's other pad sockets.
    fn pad_to_document(&mut self, conn: PadConnId, frame: &[u8]) {
        let Some(id) = self.pads.conns.get(&conn).map(|c| c.participant) else {
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
                    self.pad_send(conn, Bytes::from(data));
                }
                if let Some(data) = reply.relay {
                    let data = Bytes::from(data);
                    for other in self.pad_conns_of(&room) {
                        if other != conn {
                            self.pad_send(other, data.clone());
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
