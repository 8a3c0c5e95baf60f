//! Abuse bounds of the hub: the limits an operator may tune
//! ([`HubLimits`]), and the two small mechanisms that carry them out in
//! virtual time — a [`Pacer`] (coalescing: the first change goes out at
//! once, later ones wait for the end of the interval and only the latest
//! state is sent) and a [`RateBucket`] (a token bucket: refuse past the
//! rate).

use std::time::{Duration, Instant};

/// The hub's abuse bounds. Every field has a default (`HubLimits::default()`)
/// that a meeting of normal people never reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubLimits {
    /// Guests waiting in one room's lobby; the next one gets `lobby-full`.
    pub lobby_cap: usize,
    /// Guests from one network address waiting in one room's lobby; the
    /// next one gets `rate-limited` (a deny cooldown follows the knocker,
    /// not the address: this keeps one address from filling the lobby).
    pub lobby_per_address: usize,
    /// Moderators get the lobby's changes (`knock`, `knock-resolved`) at
    /// most once per this interval per room, coalesced.
    pub lobby_update_interval: Duration,
    /// Whether the client's network address keys the bans, kick bans,
    /// knock limits, lobby shares and address cooldowns of anonymous
    /// guests. Turn it off
    /// only where every client seems to come from one address (a reverse
    /// proxy whose clients' addresses the driver does not see): then a
    /// reconnecting anonymous guest escapes them again.
    pub address_keys: bool,
    /// Lobby entries and knocks from one network address (IPv4, or IPv6
    /// /64), across rooms: the burst…
    pub knocks_per_address_burst: u32,
    /// …and the sustained rate, per minute (0: no per-address limit).
    pub knocks_per_address_per_min: u32,
    /// A kick (without `ban`) holds its target to the lobby this long (or
    /// until the room ends): it comes back only when a moderator admits it.
    pub kick_ban: Duration,
    /// A member's `media-state` and `screen` changes reach the room at most
    /// once per this interval, the latest state winning.
    pub state_interval: Duration,
    /// A member's `video-constraints` reach mediad at most once per this
    /// interval, the latest value per track winning.
    pub constraints_interval: Duration,
    /// A pad socket gets at most one full-state answer (SyncStep2) per this
    /// interval; further SyncStep1s are coalesced into the next answer.
    pub pad_sync_interval: Duration,
    /// Bytes queued to one pad socket and not yet written (reported by the
    /// driver through `Hub::handle_pad_sent`); past it the pad socket is
    /// closed as a slow consumer (`pad-slow`).
    pub pad_queue_bytes: usize,
    /// A pad socket's awareness messages (cursors) are relayed at most once
    /// per this interval, the latest winning.
    pub awareness_interval: Duration,
    /// A member raises or lowers its own hand this many times in a burst…
    pub hand_burst: u32,
    /// …then this many times a minute; past it, `rate-limited`.
    pub hands_per_min: u32,
    /// A member's reactions reach the room in a burst of this many…
    pub reaction_burst: u32,
    /// …then this many a minute; past it, `too-many-reactions`.
    pub reactions_per_min: u32,
    /// Connectivity probes (`probe`) one socket starts in a burst…
    pub probe_burst: u32,
    /// …then this many a minute; past it, `rate-limited`.
    pub probes_per_min: u32,
    /// Probes from one network address in a burst…
    pub probes_per_address_burst: u32,
    /// …then this many a minute (0: no per-address limit).
    pub probes_per_address_per_min: u32,
    /// A probe transport lives this long at most in mediad.
    pub probe_lifetime: Duration,
}

/// Default lobby cap per room.
pub const DEFAULT_LOBBY_CAP: usize = 100;
/// Default kick ban.
pub const DEFAULT_KICK_BAN: Duration = Duration::from_secs(5 * 60);
/// Default bound of what one pad socket may have queued.
pub const DEFAULT_PAD_QUEUE_BYTES: usize = 2 * 1024 * 1024;

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            lobby_cap: DEFAULT_LOBBY_CAP,
            // A class behind one NAT: as many as the knock burst.
            lobby_per_address: 30,
            lobby_update_interval: Duration::from_millis(250),
            address_keys: true,
            // A class or a town hall's guests behind one NAT knock
            // within a minute: 30, not 10.
            knocks_per_address_burst: 30,
            knocks_per_address_per_min: 30,
            kick_ban: DEFAULT_KICK_BAN,
            state_interval: Duration::from_millis(200),
            constraints_interval: Duration::from_millis(100),
            pad_sync_interval: Duration::from_secs(1),
            pad_queue_bytes: DEFAULT_PAD_QUEUE_BYTES,
            awareness_interval: Duration::from_millis(100),
            hand_burst: 5,
            hands_per_min: 30,
            reaction_burst: 3,
            reactions_per_min: 60,
            // The `/test` page runs 4 checks, one probe each.
            probe_burst: 4,
            probes_per_min: 8,
            // A few people behind one NAT testing at once.
            probes_per_address_burst: 24,
            probes_per_address_per_min: 24,
            probe_lifetime: Duration::from_secs(20),
        }
    }
}

/// Coalesces changes: the first change after a quiet interval is sent at
/// once; changes inside the interval wait for its end, when the state of
/// that moment is sent (once). The owner keeps the state; the pacer only
/// says when to send it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Pacer {
    /// When the state was last sent.
    last: Option<Instant>,
    /// A send is scheduled for then.
    due: Option<Instant>,
}

/// What a [`Pacer`] says about a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// Send now.
    Now,
    /// Send at this deadline (newly scheduled: the owner sets a timer).
    At(Instant),
    /// A send is already scheduled; nothing to do.
    Pending,
}

impl Pacer {
    /// Something changed at `now`.
    pub(super) fn change(&mut self, now: Instant, interval: Duration) -> Pace {
        if self.due.is_some() {
            return Pace::Pending;
        }
        match self.last {
            Some(last) if now < last + interval => {
                let at = last + interval;
                self.due = Some(at);
                Pace::At(at)
            }
            _ => {
                self.last = Some(now);
                Pace::Now
            }
        }
    }

    /// The scheduled send is due at `now`: true once (then the owner sends).
    pub(super) fn fire(&mut self, now: Instant) -> bool {
        match self.due {
            Some(due) if due <= now => {
                self.due = None;
                self.last = Some(now);
                true
            }
            Some(_) | None => false,
        }
    }
}

/// A token bucket in virtual time: `burst` tokens, refilled at `per_min`
/// a minute.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateBucket {
    /// Tokens, in thousandths.
    milli: u64,
    last: Instant,
}

impl RateBucket {
    pub(super) fn new(burst: u32, now: Instant) -> Self {
        Self {
            milli: u64::from(burst) * 1000,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, burst: u32, per_min: u32) {
        let elapsed = now
            .saturating_duration_since(self.last)
            .min(Duration::from_secs(3600));
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        // per_min tokens a minute = per_min thousandths per 60 ms.
        let refill = ms.saturating_mul(u64::from(per_min)) / 60;
        self.milli = self
            .milli
            .saturating_add(refill)
            .min(u64::from(burst) * 1000);
        self.last = now;
    }

    /// Takes one token at `now`; `Err(wait)`: none left, one comes in `wait`.
    pub(super) fn take(&mut self, now: Instant, burst: u32, per_min: u32) -> Result<(), Duration> {
        self.refill(now, burst, per_min);
        if self.milli >= 1000 {
            self.milli -= 1000;
            return Ok(());
        }
        let missing = 1000 - self.milli;
        // Thousandths come at per_min per 60 ms.
        let ms = (missing * 60).div_ceil(u64::from(per_min.max(1)));
        Err(Duration::from_millis(ms))
    }

    /// Whether the bucket is full again at `now` (its entry can be forgotten).
    pub(super) fn is_full(&self, now: Instant, burst: u32, per_min: u32) -> bool {
        let mut b = *self;
        b.refill(now, burst, per_min);
        b.milli >= u64::from(burst) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacer_sends_the_first_change_at_once_then_one_per_interval() {
        let t = Instant::now();
        let i = Duration::from_millis(200);
        let mut p = Pacer::default();
        assert_eq!(p.change(t, i), Pace::Now);
        let due = t + i;
        assert_eq!(p.change(t + Duration::from_millis(10), i), Pace::At(due));
        assert_eq!(p.change(t + Duration::from_millis(20), i), Pace::Pending);
        assert!(!p.fire(t + Duration::from_millis(199)));
        assert!(p.fire(due));
        assert!(!p.fire(due), "once");
        // Right after a send: wait again.
        assert_eq!(
            p.change(due + Duration::from_millis(1), i),
            Pace::At(due + i)
        );
        assert!(p.fire(due + i));
        // After a quiet interval: at once.
        assert_eq!(p.change(due + i * 3, i), Pace::Now);
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills() {
        let t = Instant::now();
        let mut b = RateBucket::new(2, t);
        assert!(b.take(t, 2, 60).is_ok());
        assert!(b.take(t, 2, 60).is_ok());
        assert_eq!(b.take(t, 2, 60), Err(Duration::from_secs(1)));
        assert!(b.take(t + Duration::from_secs(1), 2, 60).is_ok());
        assert!(!b.is_full(t + Duration::from_secs(1), 2, 60));
        assert!(b.is_full(t + Duration::from_secs(3), 2, 60));
    }
}
