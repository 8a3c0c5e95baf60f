//! Pacing towards one receiver: a leaky bucket at a multiple of its
//! bandwidth estimate (libwebrtc's pacing factor, 2.5), so a key frame's
//! packets leave spread over a few milliseconds instead of as one burst
//! that a token-bucket link (`tbf … burst 2k`) drops at its tail.
//!
//! Sans-IO: [`Pacer::book`] says when a packet of some size may leave
//! (now, or later when the bucket is busy) and books it; a packet booked
//! for later is held, already encrypted, in a ring allocated once
//! ([`Pacer::hold`]), and [`Pacer::release`] moves the packets due by
//! `now` into the send queue; [`Pacer::poll_timeout`] is the next one.
//! A held packet's transport-wide number is taken when it is booked, but
//! the estimator hears of it when it really leaves ([`Pacer::release`]
//! reports it then): the delay it measures is the network's, not the
//! pacer's nor a late timer's.
//!
//! Audio is never held (it is small and late audio is heard): it is sent
//! at once and only charged to the bucket. Nothing here allocates after
//! the first packet held.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use salon_io::{MAX_DATAGRAM, TxQueue};

/// The pacing rate as a multiple of the estimate (libwebrtc
/// `PacingController`'s default pacing factor).
pub const PACING_FACTOR: f64 = 2.5;
/// The lowest pacing rate (bit/s): under it a pacer only adds delay.
pub const MIN_PACING_BPS: u64 = 250_000;
/// A packet due this soon goes at once (the bucket's depth: a driver
/// wakes up about this late anyway).
pub const PACING_SLACK: Duration = Duration::from_millis(2);
/// Packets one receiver's pacer holds at most (a 720p key frame is about
/// 40): past it, packets go at once, counted.
pub const PACER_SLOTS: usize = 64;
/// Past this much backlog the pacer stops holding and lets packets go
/// (a stale estimate must not turn into seconds of delay).
pub const MAX_PACER_DELAY: Duration = Duration::from_millis(150);

/// One held packet.
#[derive(Debug, Clone, Copy)]
struct Held {
    at: Instant,
    dst: SocketAddr,
    len: usize,
    /// Its transport-wide number and size, told the estimator on release.
    sent: Option<(u64, usize)>,
}

/// One receiver's pacer (see the module doc).
#[derive(Debug, Default)]
pub struct Pacer {
    /// When the bucket has drained what was booked so far.
    free_at: Option<Instant>,
    /// Ring of held packets: metadata, and their bytes (slot i at
    /// `i * MAX_DATAGRAM`), allocated at the first packet held.
    slots: Box<[Option<Held>]>,
    bytes: Box<[u8]>,
    head: usize,
    len: usize,
}

/// When a packet may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Now: write it into the send queue.
    Now,
    /// At this instant: hold it ([`Pacer::hold`]).
    Later(Instant),
    /// Now, after everything held ([`Pacer::flush`]): the pacer is full
    /// or too far behind.
    FlushThenNow,
}

impl Slot {
    /// The instant the packet is to leave.
    pub fn at(self, now: Instant) -> Instant {
        match self {
            Slot::Now | Slot::FlushThenNow => now,
            Slot::Later(at) => at,
        }
    }
}

impl Pacer {
    /// The pacing rate for an estimate (bit/s).
    pub fn rate_for(estimate_bps: u64) -> u64 {
        ((estimate_bps as f64 * PACING_FACTOR) as u64).max(MIN_PACING_BPS)
    }

    /// Book a packet of `size` bytes at `rate_bps`: when it may leave.
    /// `urgent` (audio): at once whatever the backlog, only charged.
    /// Nothing else overtakes a held packet: a receiver's packets leave
    /// in the order they were forwarded.
    pub fn book(&mut self, size: usize, rate_bps: u64, urgent: bool, now: Instant) -> Slot {
        let start = self.free_at.map_or(now, |f| f.max(now));
        let nanos = (size as u128 * 8 * 1_000_000_000) / u128::from(rate_bps.max(1));
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        if urgent {
            self.free_at = Some(start + cost);
            return Slot::Now;
        }
        if start > now + MAX_PACER_DELAY || self.is_full() {
            // Too far behind (a stale estimate) or full: what is held
            // goes now, then this packet; the backlog starts afresh.
            self.free_at = Some(now + cost);
            return if self.len > 0 {
                Slot::FlushThenNow
            } else {
                Slot::Now
            };
        }
        self.free_at = Some(start + cost);
        if start <= now + PACING_SLACK && self.len == 0 {
            return Slot::Now;
        }
        Slot::Later(start)
    }

    /// Queue everything held, in order, whatever its time (`on_sent` as
    /// for [`Pacer::release`]).
    pub fn flush(&mut self, tx: &mut TxQueue, on_sent: &mut impl FnMut(u64, usize)) -> usize {
        let n = self.len;
        let Some(last) = self
            .slots
            .get((self.head + n.saturating_sub(1)) % PACER_SLOTS.max(1))
            .copied()
            .flatten()
        else {
            return 0;
        };
        self.release(last.at, tx, on_sent)
    }

    /// Whether no more packets can be held.
    pub fn is_full(&self) -> bool {
        self.len >= PACER_SLOTS
    }

    /// Packets held.
    pub fn held(&self) -> usize {
        self.len
    }

    /// Hold `data` for `dst` until `at` (a slot [`Pacer::book`] gave).
    /// False when it cannot be held (full, or too big): send it now.
    /// `sent`: its transport-wide number and size, given back to
    /// [`Pacer::release`]'s `on_sent` when it leaves.
    pub fn hold(
        &mut self,
        at: Instant,
        dst: SocketAddr,
        data: &[u8],
        sent: Option<(u64, usize)>,
    ) -> bool {
        if self.is_full() || data.len() > MAX_DATAGRAM {
            return false;
        }
        if self.slots.is_empty() {
            self.slots = vec![None; PACER_SLOTS].into_boxed_slice();
            self.bytes = vec![0u8; PACER_SLOTS * MAX_DATAGRAM].into_boxed_slice();
        }
        let i = (self.head + self.len) % PACER_SLOTS;
        let Some(buf) = self
            .bytes
            .get_mut(i * MAX_DATAGRAM..i * MAX_DATAGRAM + data.len())
        else {
            return false;
        };
        buf.copy_from_slice(data);
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some(Held {
                at,
                dst,
                len: data.len(),
                sent,
            });
        }
        self.len += 1;
        true
    }

    /// When the next held packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.slots.get(self.head).copied().flatten().map(|h| h.at)
    }

    /// Move the packets due by `now` into `tx`, in order, telling
    /// `on_sent` each one's transport-wide number and size (they leave
    /// now); returns how many. A full send queue keeps the rest.
    pub fn release(
        &mut self,
        now: Instant,
        tx: &mut TxQueue,
        on_sent: &mut impl FnMut(u64, usize),
    ) -> usize {
        let mut n = 0;
        while self.len > 0 {
            let Some(h) = self.slots.get(self.head).copied().flatten() else {
                break;
            };
            if h.at > now + PACING_SLACK {
                break;
            }
            let from = self.head * MAX_DATAGRAM;
            let Some(data) = self.bytes.get(from..from + h.len) else {
                break;
            };
            if !tx.push(h.dst, data) {
                break;
            }
            if let Some((seq, size)) = h.sent {
                on_sent(seq, size);
            }
            if let Some(s) = self.slots.get_mut(self.head) {
                *s = None;
            }
            self.head = (self.head + 1) % PACER_SLOTS;
            self.len -= 1;
            n += 1;
        }
        n
    }

    /// Drop what is held (the transport is gone or restarts).
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        self.free_at = None;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    /// A key frame of 15 packets of 1,200 bytes at 1 Mbit/s: the first
    /// goes at once, the others 9.6 ms apart, released in order at their
    /// instants, never before.
    #[test]
    fn a_burst_leaves_at_the_pacing_rate() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        let mut tx = TxQueue::with_capacity(64);
        let mut times = Vec::new();
        for i in 0..15u8 {
            match p.book(1_200, 1_000_000, false, t0) {
                Slot::Now => {
                    assert!(tx.push(addr(), &[i; 1_200]));
                    times.push(t0);
                }
                Slot::Later(at) => {
                    assert!(p.hold(at, addr(), &[i; 1_200], Some((u64::from(i), 1_200))));
                    times.push(at);
                }
                Slot::FlushThenNow => panic!("packet {i}: within the backlog"),
            }
        }
        assert_eq!(tx.len(), 1);
        let step = Duration::from_micros(9_600);
        for (i, at) in times.iter().enumerate() {
            assert_eq!(*at, t0 + step * i as u32, "packet {i}");
        }
        // Nothing early (within the slack).
        let mut told = Vec::new();
        let early = t0 + step - PACING_SLACK - Duration::from_micros(1);
        assert_eq!(p.release(early, &mut tx, &mut |seq, _| told.push(seq)), 0);
        let mut now = t0;
        while p.held() > 0 {
            now = p.poll_timeout().unwrap();
            p.release(now, &mut tx, &mut |seq, _| told.push(seq));
        }
        // The estimator hears of each held packet as it leaves.
        assert_eq!(told, (1..15).collect::<Vec<u64>>());
        let order: Vec<u8> = tx.queued().iter().map(|t| t.buf[0]).collect();
        assert_eq!(order, (0..15).collect::<Vec<u8>>());
        assert!(now >= t0 + step * 14 - PACING_SLACK);
    }

    /// Audio is never held; a pacer far behind (a stale estimate) or full
    /// lets packets go.
    #[test]
    fn audio_and_a_backlog_go_at_once() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(p.book(1_200, 1_000_000, false, t0), Slot::Now);
        assert!(matches!(
            p.book(1_200, 1_000_000, false, t0),
            Slot::Later(_)
        ));
        assert_eq!(p.book(100, 1_000_000, true, t0), Slot::Now);
        // 150 ms of backlog at 100 kbit/s is 2 packets: the third
        // flushes what is held and goes.
        let mut q = Pacer::default();
        assert_eq!(q.book(1_200, 100_000, false, t0), Slot::Now);
        let Slot::Later(at) = q.book(1_200, 100_000, false, t0) else {
            panic!("held")
        };
        assert!(at <= t0 + MAX_PACER_DELAY);
        assert!(q.hold(at, addr(), &[1; 1_200], None));
        assert_eq!(q.book(1_200, 100_000, false, t0), Slot::FlushThenNow);
        let mut tx = TxQueue::with_capacity(8);
        assert_eq!(q.flush(&mut tx, &mut |_, _| {}), 1);
        assert_eq!(q.held(), 0);
        // A packet due now still waits behind one held.
        let mut r = Pacer::default();
        assert!(r.hold(t0 + Duration::from_millis(1), addr(), &[0; 10], None));
        assert!(matches!(r.book(10, 1_000_000, false, t0), Slot::Later(_)));
        for _ in 1..PACER_SLOTS {
            assert!(r.hold(t0 + Duration::from_secs(1), addr(), &[0; 10], None));
        }
        assert!(r.is_full() && !r.hold(t0, addr(), &[0; 10], None));
        assert_eq!(r.book(10, 1_000, false, t0), Slot::FlushThenNow);
    }

    #[test]
    fn the_rate_follows_the_estimate() {
        assert_eq!(Pacer::rate_for(400_000), 1_000_000);
        assert_eq!(Pacer::rate_for(50_000), MIN_PACING_BPS);
    }
}
