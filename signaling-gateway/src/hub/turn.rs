//! TURN credentials for members: minted at admission (in `joined`) and on
//! resume (in `resumed`), and again half-way through their life
//! (`ice-servers`), for as long as the participant is in its room. A guest
//! waiting in a lobby gets none: the relay is for admitted people only.
//!
//! Each member records when its next refresh is due; a refresh timer that
//! finds another due time (the member left and joined again) fires into
//! nothing.

use std::time::Instant;

use super::timers::Timer;
use super::{Hub, Now};
use crate::control::ParticipantId;
use crate::protocol::{IceServer, ServerMessage};
use crate::turn::TurnConfig;

impl Hub {
    /// Hands out credentials for these TURN servers to every member.
    pub fn set_turn(&mut self, turn: TurnConfig) {
        self.turn = Some(turn);
    }

    /// Fresh `iceServers` for member-to-be `id` (empty without TURN), and
    /// when to refresh them.
    pub(super) fn mint_ice_servers(
        &mut self,
        id: ParticipantId,
        now: Now,
    ) -> (Vec<IceServer>, Option<Instant>) {
        let Some(turn) = &self.turn else {
            return (Vec::new(), None);
        };
        let servers = turn.ice_servers(id, now.unix_ms / 1000);
        let due = now.mono + turn.refresh_after();
        self.timers.set(due, Timer::TurnRefresh(id));
        (servers, Some(due))
    }

    /// A member's refresh is due: fresh credentials to it (dropped while
    /// it has no socket: its `resume` brings new ones), and the next
    /// refresh set.
    pub(super) fn turn_refresh_due(&mut self, id: ParticipantId, now: Now) {
        let Some(due) = self.member(id).and_then(|m| m.turn_refresh_at) else {
            return;
        };
        if due > now.mono {
            // A later schedule replaced this one.
            return;
        }
        let (ice_servers, next) = self.mint_ice_servers(id, now);
        if let Some(m) = self.member_mut(id) {
            m.turn_refresh_at = next;
        }
        tracing::debug!(participant = %id, "TURN credentials refreshed");
        self.send(id, ServerMessage::IceServers { ice_servers });
    }
}
