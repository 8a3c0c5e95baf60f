//! The hub task's stall watchdog. Every message, pad frame, media event
//! and timer runs on the one hub task; a handler that never returns (a
//! library looping on hostile input, as yrs did on a pad update — see
//! `docs/security.md`, "Fuzzing") would stop signaling for every meeting
//! while the process looks alive. The hub task marks when it starts and
//! ends each turn; a plain thread checks once a second, and a turn longer
//! than the limit ends the process with [`super::HubPanicked::EXIT_STATUS`]
//! for its supervisor to restart it (clients rejoin by themselves, as
//! after any restart). The same end as a hub panic: loud, bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When the hub task's current turn started (ms after `epoch`, plus one:
/// zero means idle).
#[derive(Debug)]
pub(super) struct Stall {
    epoch: Instant,
    since: AtomicU64,
}

impl Stall {
    pub(super) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            since: AtomicU64::new(0),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// A turn starts at `now`.
    pub(super) fn busy(&self, now: Instant) {
        self.since.store(self.ms(now), Ordering::Relaxed);
    }

    /// The turn ended.
    pub(super) fn idle(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    /// How long the current turn has lasted at `now`, if one is running.
    pub(super) fn busy_for(&self, now: Instant) -> Option<Duration> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.ms(now).saturating_sub(since))),
        }
    }
}

/// Starts the watchdog thread: a turn longer than `limit` logs and ends the
/// process. Zero `limit`: no watchdog.
pub(super) fn watch(stall: Arc<Stall>, limit: Duration) {
    if limit.is_zero() {
        return;
    }
    let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let spawned = std::thread::Builder::new()
        .name("hub-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                // The hub ended (the server stopped): nothing to watch.
                if Arc::strong_count(&stall) == 1 {
                    return;
                }
                if let Some(busy) = stall.busy_for(Instant::now())
                    && busy > limit
                {
                    tracing::error!(
                        busy_ms = u64::try_from(busy.as_millis()).unwrap_or(u64::MAX),
                        "the hub task is stuck in one turn: signaling stopped for every \
                         meeting; exiting for the supervisor to restart the process"
                    );
                    std::process::exit(super::HubPanicked::EXIT_STATUS);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the hub watchdog thread did not start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_timed_from_its_start_and_idle_is_none() {
        let t0 = Instant::now();
        let s = Stall::new(t0);
        assert_eq!(s.busy_for(t0 + Duration::from_secs(5)), None);
        s.busy(t0);
        assert_eq!(
            s.busy_for(t0 + Duration::from_secs(12)),
            Some(Duration::from_secs(12))
        );
        s.idle();
        assert_eq!(s.busy_for(t0 + Duration::from_secs(20)), None);
        s.busy(t0 + Duration::from_secs(20));
        assert_eq!(
            s.busy_for(t0 + Duration::from_millis(20_250)),
            Some(Duration::from_millis(250))
        );
    }
}
