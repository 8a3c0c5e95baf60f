//! Chat: public to the room or private to one member of it, stamped by the
//! server, rate-limited per participant, and passed through the policy's
//! `on_chat` (which may rewrite or drop it). Routed, never stored.

use std::time::{Duration, Instant};

use salon_plugins::{ChatDecision, FAIL_CLOSED_REASON};

use super::{Hub, Now};
use crate::control::ParticipantId;
use crate::protocol::{ErrorCode, ProtocolError, ServerMessage};

/// Chat rate limit: sustained messages per second per participant.
pub const CHAT_RATE_PER_SEC: u32 = 5;
/// Chat rate limit: burst size per participant.
pub const CHAT_BURST: u32 = 10;

/// A token bucket (chat rate limit), in virtual time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    /// Tokens, in thousandths.
    milli: u64,
    last: Option<Instant>,
}

impl Bucket {
    const FULL: u64 = CHAT_BURST as u64 * 1000;

    pub(super) fn new() -> Self {
        Self {
            milli: Self::FULL,
            last: None,
        }
    }

    /// Takes one message's token at `now`, if there is one.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now
                .saturating_duration_since(last)
                .min(Duration::from_secs(60));
            let refill = elapsed.as_millis() as u64 * u64::from(CHAT_RATE_PER_SEC);
            self.milli = (self.milli + refill).min(Self::FULL);
        }
        self.last = Some(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

impl Hub {
    /// `chat {text, to?}` from member `id`.
    pub(super) fn chat(&mut self, id: ParticipantId, text: String, to: Option<u64>, now: Now) {
        let Some(member) = self.member_mut(id) else {
            return;
        };
        if !member.chat.take(now.mono) {
            self.refuse(id, ErrorCode::RateLimited);
            return;
        }
        let room = member.room.clone();
        let name = member.name.as_str().to_owned();
        if let Some(to) = to {
            let to = ParticipantId(to);
            let present = to != id
                && self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.members.contains(&to));
            if !present {
                self.refuse(id, ErrorCode::NoSuchParticipant);
                return;
            }
        }
        let data = self.member_ctx(id, now.unix_ms / 1000);
        let text = match (&mut self.policy, data) {
            (Some(policy), Some(data)) => match policy.on_chat(&data.ctx(), &text) {
                ChatDecision::Allow => text,
                ChatDecision::Rewrite { text } => text,
                ChatDecision::Drop { reason } => {
                    self.send_error(id, &ProtocolError::new(ErrorCode::Forbidden, reason));
                    return;
                }
                // `ChatDecision` is `#[non_exhaustive]` in salon-plugins: an
                // outcome this gateway does not know drops (fail closed).
                _ => {
                    self.send_error(
                        id,
                        &ProtocolError::new(ErrorCode::Forbidden, FAIL_CLOSED_REASON),
                    );
                    return;
                }
            },
            (None, _) | (Some(_), None) => text,
        };
        let msg = ServerMessage::Chat {
            from: id.0,
            name,
            text,
            time: now.unix_ms,
            to,
        };
        match to {
            None => self.broadcast(&room, &msg),
            Some(to) => {
                self.send(id, msg.clone());
                self.send(ParticipantId(to), msg);
            }
        }
    }
}
