//! Meeting gestures: raised hands and reactions.
//!
//! A room keeps the members whose hand is raised, in the order they raised
//! it (one hand per member: raising a raised hand changes nothing). A
//! member raises and lowers its own hand; a moderator may lower anyone's
//! (checked here: anyone else gets `forbidden`). Every change goes to the
//! whole room (`hand`); a newcomer and a resumed member get the list
//! (`hands`) after `joined` / `resumed`. A member who leaves (or is kicked,
//! or whose grace period ends) takes its hand down with it: `participant-left`
//! says so, and a resume within the grace period keeps it up.
//!
//! Reactions are one of a fixed allow-list ([`Reaction`]), relayed to the
//! whole room, never stored. Both are token-bucketed per member
//! ([`super::HubLimits`]): hand toggles past the limit get `rate-limited`,
//! reactions past it `too-many-reactions` (which clients drop quietly).

use salon_plugins::Role;

use super::limits::RateBucket;
use super::{Hub, Now};
use crate::control::{ParticipantId, RoomId};
use crate::protocol::{ErrorCode, Reaction, ServerMessage};

/// A member's gesture buckets, made at its first gesture.
#[derive(Debug, Default)]
pub(super) struct GestureBuckets {
    hand: Option<RateBucket>,
    reactions: Option<RateBucket>,
}

/// What the gestures came to since the hub started (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GestureCounts {
    /// Hands raised.
    pub hands_raised: u64,
    /// Reactions relayed to a room.
    pub reactions_relayed: u64,
    /// Reactions refused (`too-many-reactions`).
    pub reactions_refused: u64,
}

/// Takes a token of `bucket` (made full at `now` if it is not yet);
/// `per_min` 0: no limit.
fn take(bucket: &mut Option<RateBucket>, burst: u32, per_min: u32, now: Now) -> bool {
    if per_min == 0 {
        return true;
    }
    bucket
        .get_or_insert_with(|| RateBucket::new(burst, now.mono))
        .take(now.mono, burst, per_min)
        .is_ok()
}

impl Hub {
    /// Ids of the members of `room` whose hand is raised, oldest first
    /// (tests, diagnostics).
    pub fn raised_hands(&self, room: &str) -> Vec<u64> {
        self.rooms
            .get(&RoomId(room.to_owned()))
            .map(|r| r.hands.iter().map(|p| p.0).collect())
            .unwrap_or_default()
    }

    /// Gestures so far (metrics).
    pub fn gesture_counts(&self) -> GestureCounts {
        self.gesture_counts
    }

    /// `hands` for a member arriving in `room` (`None`: no hand is raised).
    pub(super) fn hands_message(&self, room: &RoomId) -> Option<ServerMessage> {
        let r = self.rooms.get(room)?;
        (!r.hands.is_empty()).then(|| ServerMessage::Hands {
            ids: r.hands.iter().map(|p| p.0).collect(),
        })
    }

    /// `hand {raised}` from member `id`: its own hand, within its bucket.
    pub(super) fn hand(&mut self, id: ParticipantId, raised: bool, now: Now) {
        let (burst, per_min) = (self.limits.hand_burst, self.limits.hands_per_min);
        let Some(m) = self.member_mut(id) else {
            return;
        };
        if !take(&mut m.gestures.hand, burst, per_min, now) {
            self.refuse_with(
                id,
                ErrorCode::RateLimited,
                "too many hand changes: slow down",
            );
            return;
        }
        let room = m.room.clone();
        self.set_hand(&room, id, raised, None);
    }

    /// `lower-hand {id}` from member `by`: its own hand, or (a moderator)
    /// anyone's in its room.
    pub(super) fn lower_hand(&mut self, by: ParticipantId, target: u64, now: Now) {
        let target = ParticipantId(target);
        if target == by {
            self.hand(by, false, now);
            return;
        }
        let Some(me) = self.member(by) else {
            return;
        };
        if me.role != Role::Moderator {
            self.refuse_with(
                by,
                ErrorCode::Forbidden,
                "only moderators can lower someone else's hand",
            );
            return;
        }
        let room = me.room.clone();
        if !self
            .rooms
            .get(&room)
            .is_some_and(|r| r.members.contains(&target))
        {
            self.refuse(by, ErrorCode::NoSuchParticipant);
            return;
        }
        tracing::info!(participant = %by, target = %target, "moderator lowered a hand");
        self.set_hand(&room, target, false, Some(by));
    }

    /// Raises or lowers `id`'s hand in `room`; the room hears of a change.
    fn set_hand(
        &mut self,
        room: &RoomId,
        id: ParticipantId,
        raised: bool,
        by: Option<ParticipantId>,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let changed = if raised {
            r.hands.insert(id)
        } else {
            r.hands.remove(&id)
        };
        if !changed {
            return;
        }
        if raised {
            self.gesture_counts.hands_raised += 1;
        }
        self.broadcast(
            room,
            &ServerMessage::Hand {
                id: id.0,
                raised,
                by: by.map(|b| b.0),
            },
        );
    }

    /// `react {emoji}` from member `id`: relayed to its room, within its
    /// bucket.
    pub(super) fn react(&mut self, id: ParticipantId, emoji: Reaction, now: Now) {
        let (burst, per_min) = (self.limits.reaction_burst, self.limits.reactions_per_min);
        let Some(m) = self.member_mut(id) else {
            return;
        };
        if !take(&mut m.gestures.reactions, burst, per_min, now) {
            self.gesture_counts.reactions_refused += 1;
            self.refuse(id, ErrorCode::TooManyReactions);
            return;
        }
        let room = m.room.clone();
        self.gesture_counts.reactions_relayed += 1;
        self.broadcast(&room, &ServerMessage::Reaction { id: id.0, emoji });
    }
}
