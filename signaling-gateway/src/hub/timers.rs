//! The hub's own deadlines besides reconnect grace periods: coalesced
//! sends that wait for the end of their interval, and TURN credential
//! refreshes. Each is set once per
//! interval by its [`super::limits::Pacer`]; a timer whose owner is gone
//! by then fires into nothing.

use std::collections::BTreeSet;
use std::time::Instant;

use super::PadConnId;
use super::reconnect::TimeoutReason;
use crate::control::{ParticipantId, RoomId};

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A room's lobby changes go to its moderators.
    LobbyUpdate(RoomId),
    /// A member's latest `media-state` / `screen` goes to the room.
    MemberState(ParticipantId),
    /// A member's latest `video-constraints` go to mediad.
    Constraints(ParticipantId),
    /// A pad socket's coalesced SyncStep1 is answered.
    PadSync(PadConnId),
    /// A pad socket's latest awareness message is relayed.
    PadAwareness(PadConnId),
    /// A member's TURN credentials are half-way through their life.
    TurnRefresh(ParticipantId),
    /// An idle socket's connectivity probe reaches its lifetime.
    ProbeEnd(ParticipantId),
}

impl Timer {
    pub(super) fn reason(&self) -> TimeoutReason {
        match self {
            Timer::LobbyUpdate(_) => TimeoutReason::LobbyUpdate,
            Timer::MemberState(_) => TimeoutReason::MemberState,
            Timer::Constraints(_) => TimeoutReason::VideoConstraints,
            Timer::PadSync(_) | Timer::PadAwareness(_) => TimeoutReason::PadPacing,
            Timer::TurnRefresh(_) => TimeoutReason::TurnRefresh,
            Timer::ProbeEnd(_) => TimeoutReason::ProbeEnd,
        }
    }
}

/// Pending deadlines, earliest first.
#[derive(Debug, Default)]
pub(super) struct Timers(BTreeSet<(Instant, Timer)>);

impl Timers {
    pub(super) fn set(&mut self, at: Instant, timer: Timer) {
        self.0.insert((at, timer));
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<(Instant, TimeoutReason)> {
        self.0.first().map(|(at, t)| (*at, t.reason()))
    }

    /// Takes out the timers due by `now`, earliest first.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.0.first() {
            if *at > now {
                break;
            }
            if let Some((_, t)) = self.0.pop_first() {
                due.push(t);
            }
        }
        due
    }
}
