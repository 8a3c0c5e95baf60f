//! Measurement primitives: a fixed-bucket latency histogram, a loss counter
//! per SSRC, and the stamp every synthetic payload carries. None of them
//! allocates per sample.

/// Linear buckets below this value (µs); above it, 64 sub-buckets per power
/// of two (relative error under 1/64).
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;
/// Largest recorded exponent: values from 2^26 µs (67 s) up clamp here.
const MAX_EXP: u32 = 25;
/// Number of buckets.
pub const BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS + 1) as u64 * SUB) as usize;

/// A log-linear histogram of microsecond values with fixed buckets.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    if e > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + sub) as usize
}

/// Lowest and highest value of bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let e = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let lo = (1u64 << e) + sub * width;
    (lo, lo + width - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    /// Record one value (µs).
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value recorded (µs).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Overwrite `self` with `other` without allocating.
    pub fn copy_from(&mut self, other: &Histogram) {
        self.counts.copy_from_slice(&other.counts[..]);
        self.total = other.total;
        self.max = other.max;
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// `self − earlier` (the samples recorded since `earlier` was copied).
    /// `max` stays the overall maximum.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut h = self.clone();
        for (a, b) in h.counts.iter_mut().zip(earlier.counts.iter()) {
            *a = a.saturating_sub(*b);
        }
        h.total = h.counts.iter().sum();
        h
    }

    /// The value at quantile `q` (0..=1), as the middle of its bucket; `None`
    /// when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_range(i);
                return Some((lo + (hi - lo) / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Loss from RTP sequence numbers of one SSRC (RFC 3550 appendix A.1 style):
/// sequence numbers are extended across wraps, reordered packets count as
/// received, and expected = highest − lowest + 1. Duplicates are not
/// filtered here (SRTP's replay window drops them before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    started: bool,
    lowest: u64,
    highest: u64,
    received: u64,
}

impl SeqTracker {
    /// Count one received packet.
    pub fn record(&mut self, seq: u16) {
        if !self.started {
            // Start high so that reordering before the first packet stays positive.
            let ext = (1u64 << 32) + u64::from(seq);
            *self = Self {
                started: true,
                lowest: ext,
                highest: ext,
                received: 1,
            };
            return;
        }
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = (self.highest as i64 + delta) as u64;
        self.highest = self.highest.max(ext);
        self.lowest = self.lowest.min(ext);
        self.received += 1;
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected between the lowest and highest sequence seen.
    pub fn expected(&self) -> u64 {
        if self.started {
            self.highest - self.lowest + 1
        } else {
            0
        }
    }

    /// Packets lost (never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

/// What a synthetic packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Opus-like.
    Audio,
    /// VP8-like.
    Video,
}

/// The trailer of every synthetic payload: who sent it and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sender's participant id (the gateway's).
    pub sender: u64,
    /// Send time, nanoseconds since the run's epoch (monotonic clock).
    pub sent_ns: u64,
    /// Media kind.
    pub kind: Kind,
    /// Simulcast layer the sender put this packet in: 0 none, 1 low,
    /// 2 mid, 3 high.
    pub layer: u8,
}

/// Bytes of a [`Stamp`] at the end of a payload.
pub const STAMP_LEN: usize = 20;
const STAMP_MAGIC: [u8; 2] = *b"SP";

impl Stamp {
    /// Write the stamp into the last [`STAMP_LEN`] bytes of `payload`;
    /// false if the payload is too short.
    pub fn write(&self, payload: &mut [u8]) -> bool {
        let Some(at) = payload.len().checked_sub(STAMP_LEN) else {
            return false;
        };
        let t = &mut payload[at..];
        t[..2].copy_from_slice(&STAMP_MAGIC);
        t[2] = match self.kind {
            Kind::Audio => 1,
            Kind::Video => 2,
        };
        t[3] = self.layer;
        t[4..12].copy_from_slice(&self.sender.to_be_bytes());
        t[12..20].copy_from_slice(&self.sent_ns.to_be_bytes());
        true
    }

    /// Read the stamp from the end of `payload`, if there is one.
    pub fn read(payload: &[u8]) -> Option<Self> {
        let at = payload.len().checked_sub(STAMP_LEN)?;
        let t = payload.get(at..)?;
        if t[..2] != STAMP_MAGIC {
            return None;
        }
        let kind = match t[2] {
            1 => Kind::Audio,
            2 => Kind::Video,
            _ => return None,
        };
        let layer = t[3];
        if layer > 3 {
            return None;
        }
        let sender = u64::from_be_bytes(t[4..12].try_into().ok()?);
        let sent_ns = u64::from_be_bytes(t[12..20].try_into().ok()?);
        Some(Self {
            sender,
            sent_ns,
            kind,
            layer,
        })
    }
}

/// The frame size of a VP8 key frame from an RTP payload that starts with
/// the VP8 payload descriptor (RFC 7741 §4.2), if this packet is the first
/// packet of a key frame (S=1, PID=0, P=0 and the start code).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let b0 = *payload.first()?;
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let mut at = 1usize;
    if b0 & 0x80 != 0 {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    let h = payload.get(at..at + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let hh = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((w, hh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut prev_hi = None;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert!(lo <= hi);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i}");
            }
            prev_hi = Some(hi);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.02, "p50 {p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.02, "p99 {p99}");
        assert!(h.quantile(1.0).unwrap() <= 10_000);
        assert_eq!(h.count(), 10_000);
        assert_eq!(Histogram::new().quantile(0.5), None);
    }

    #[test]
    fn small_values_are_exact_and_outliers_show_in_p99() {
        let mut h = Histogram::new();
        for _ in 0..98 {
            h.record(10);
        }
        h.record(50_000);
        h.record(50_000);
        assert_eq!(h.quantile(0.5), Some(10));
        assert_eq!(h.quantile(0.98), Some(10));
        let p99 = h.quantile(0.99).unwrap();
        assert!((49_000..=51_000).contains(&p99), "{p99}");
    }

    #[test]
    fn merge_and_since() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..100 {
            a.record(v);
            b.record(v + 1000);
        }
        let before = a.clone();
        a.merge(&b);
        assert_eq!(a.count(), 200);
        let d = a.since(&before);
        assert_eq!(d.count(), 100);
        assert!(d.quantile(0.0).unwrap() >= 990);
    }

    #[test]
    fn loss_in_order_with_a_gap() {
        let mut t = SeqTracker::default();
        for s in [1u16, 2, 3, 5, 6] {
            t.record(s);
        }
        assert_eq!((t.expected(), t.received(), t.lost()), (6, 5, 1));
    }

    #[test]
    fn loss_across_the_wrap() {
        let mut t = SeqTracker::default();
        for s in 65530u16..=65535 {
            t.record(s);
        }
        for s in [0u16, 1, 3, 4, 5] {
            t.record(s);
        }
        assert_eq!(t.expected(), 12);
        assert_eq!(t.lost(), 1);
    }

    #[test]
    fn reordering_is_not_loss() {
        let mut t = SeqTracker::default();
        for s in [10u16, 12, 11, 14, 13, 9, 15] {
            t.record(s);
        }
        assert_eq!((t.expected(), t.lost()), (7, 0));
        // Reordered across the wrap.
        let mut t = SeqTracker::default();
        for s in [65534u16, 0, 65535, 1, 2] {
            t.record(s);
        }
        assert_eq!((t.expected(), t.lost()), (5, 0));
    }

    #[test]
    fn many_wraps() {
        let mut t = SeqTracker::default();
        let mut s = 100u16;
        for i in 0..300_000u32 {
            if i % 1000 != 0 {
                t.record(s);
            }
            s = s.wrapping_add(1);
        }
        assert_eq!(t.expected(), 300_000 - 1);
        assert_eq!(t.lost(), 299);
    }

    #[test]
    fn stamp_round_trip_and_garbage() {
        let mut p = [0u8; 80];
        let s = Stamp {
            sender: 42,
            sent_ns: 123_456_789,
            kind: Kind::Video,
            layer: 2,
        };
        assert!(s.write(&mut p));
        assert_eq!(Stamp::read(&p), Some(s));
        assert!(!s.write(&mut [0u8; 10]));
        assert_eq!(Stamp::read(&p[..10]), None);
        // Seeded mutation loop: never panics.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut q = p;
            let i = (x % 80) as usize;
            q[i] = (x >> 8) as u8;
            let len = ((x >> 16) % 81) as usize;
            let _ = Stamp::read(&q[..len]);
            let _ = vp8_keyframe_size(&q[..len]);
            let mut t = SeqTracker::default();
            t.record(x as u16);
            t.record((x >> 16) as u16);
            assert!(t.lost() <= t.expected());
        }
    }
}
