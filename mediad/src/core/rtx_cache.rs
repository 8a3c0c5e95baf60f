//! A per-stream retransmission cache: the last packets of an incoming
//! stream, decrypted, by sequence number, so a receiver's NACK can be
//! answered without asking the publisher.
//!
//! The cache is created at the layer's first packet, not when it is
//! negotiated ([`super::track::Layer`]), with [`MIN_SLOTS`] slots, and
//! grows by doubling, up to [`SLOTS`], so that it holds about
//! [`HORIZON_SECS`] of the stream at its packet rate (a 150 kbit/s
//! simulcast layer keeps 64 slots, ~94 KiB; a 2.5 Mbit/s one 512, ~750 KiB).
//! The worker resizes caches on its one-second report timer, never on the
//! packet path, and only as far as its memory budget allows
//! ([`RtxCache::bytes_for`]); storing a packet copies it into its slot.

use salon_io::MAX_DATAGRAM;

use super::limits::{Charge, MemoryBudget};

/// Most packets kept per stream.
pub const SLOTS: usize = 512;
/// Packets kept by a new cache.
pub const MIN_SLOTS: usize = 64;
/// Seconds of a stream a cache should hold (NACKs come within a round
/// trip; older ones are not worth answering), with a margin for bursts.
pub const HORIZON_SECS: f64 = 1.5;

#[derive(Clone)]
struct Slot {
    seq: u16,
    len: u16,
    valid: bool,
    data: [u8; MAX_DATAGRAM],
}

const EMPTY: Slot = Slot {
    seq: 0,
    len: 0,
    valid: false,
    data: [0u8; MAX_DATAGRAM],
};

/// The last packets of one stream, [`MIN_SLOTS`] to [`SLOTS`] of them.
pub struct RtxCache {
    slots: Box<[Slot]>,
    charge: Charge,
}

impl std::fmt::Debug for RtxCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtxCache")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl RtxCache {
    /// What a cache of [`SLOTS`] holds (~750 KiB): what a layer may come to
    /// hold, the price of a publish.
    pub const BYTES: u64 = Self::bytes_for(SLOTS);
    /// What a new cache holds (~94 KiB).
    pub const MIN_BYTES: u64 = Self::bytes_for(MIN_SLOTS);

    /// The bytes of a cache of `slots` slots.
    pub const fn bytes_for(slots: usize) -> u64 {
        (slots * std::mem::size_of::<Slot>()) as u64
    }

    /// An empty cache of [`MIN_SLOTS`], holding `charge` (of
    /// [`RtxCache::MIN_BYTES`]) while it lives.
    pub fn new(charge: Charge) -> Self {
        Self {
            slots: vec![EMPTY; MIN_SLOTS].into_boxed_slice(),
            charge,
        }
    }

    /// Its number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slots a stream of `packets_per_sec` needs: [`HORIZON_SECS`] of
    /// it, a power of two from [`MIN_SLOTS`] to [`SLOTS`].
    pub fn slots_for(packets_per_sec: f64) -> usize {
        let want = (packets_per_sec.max(0.0) * HORIZON_SECS).ceil();
        let want = if want.is_finite() {
            want as usize
        } else {
            SLOTS
        };
        want.clamp(MIN_SLOTS, SLOTS).next_power_of_two().min(SLOTS)
    }

    /// Grow to `slots` (a power of two, at most [`SLOTS`]; never shrinks),
    /// the extra charged to `memory`: false when the budget has no room
    /// (the cache stays as it is). The packets held keep their place.
    pub fn grow_to(&mut self, slots: usize, memory: &MemoryBudget) -> bool {
        let slots = slots.min(SLOTS);
        let have = self.slots.len();
        if slots <= have {
            return true;
        }
        let extra = Self::bytes_for(slots) - Self::bytes_for(have);
        if !self.charge.try_add(memory, extra) {
            return false;
        }
        let mut grown = vec![EMPTY; slots].into_boxed_slice();
        for old in self.slots.iter().filter(|s| s.valid) {
            if let Some(new) = grown.get_mut(usize::from(old.seq) % slots) {
                new.clone_from(old);
            }
        }
        self.slots = grown;
        true
    }

    /// Keep a copy of a plain RTP packet with sequence number `seq`.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) {
        let n = packet.len();
        if n > MAX_DATAGRAM {
            return;
        }
        let at = usize::from(seq) % self.slots.len().max(1);
        if let Some(slot) = self.slots.get_mut(at)
            && let Some(dst) = slot.data.get_mut(..n)
        {
            dst.copy_from_slice(packet);
            slot.len = n as u16;
            slot.seq = seq;
            slot.valid = true;
        }
    }

    /// The packet with sequence number `seq`, if still held.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let slot = self.slots.get(usize::from(seq) % self.slots.len().max(1))?;
        if !(slot.valid && slot.seq == seq) {
            return None;
        }
        slot.data.get(..usize::from(slot.len))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn full() -> RtxCache {
        let memory = MemoryBudget::new(u64::MAX, Arc::new(crate::metrics::Metrics::default()));
        let mut c = RtxCache::new(Charge::untracked());
        assert!(c.grow_to(SLOTS, &memory));
        c
    }

    #[test]
    fn keeps_the_last_packets_and_forgets_older_ones() {
        let mut c = full();
        for s in 0u16..1000 {
            c.insert(s.wrapping_add(65000), &s.to_be_bytes());
        }
        let newest = 999u16.wrapping_add(65000);
        assert_eq!(c.get(newest), Some(&999u16.to_be_bytes()[..]));
        assert_eq!(
            c.get(newest.wrapping_sub(511)),
            Some(&488u16.to_be_bytes()[..])
        );
        assert_eq!(c.get(newest.wrapping_sub(512)), None);
        assert_eq!(c.get(12345), None);
    }

    #[test]
    fn grows_in_steps_within_the_budget_keeping_what_it_holds() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let memory = MemoryBudget::new(RtxCache::bytes_for(256), metrics);
        let mut c = RtxCache::new(memory.try_charge(RtxCache::MIN_BYTES).expect("fits"));
        assert_eq!(c.capacity(), MIN_SLOTS);
        for s in 100u16..164 {
            c.insert(s, &s.to_be_bytes());
        }
        assert_eq!(c.get(100), Some(&100u16.to_be_bytes()[..]));
        assert!(c.grow_to(128, &memory));
        assert_eq!(memory.used(), RtxCache::bytes_for(128));
        assert!(
            (100u16..164).all(|s| c.get(s) == Some(&s.to_be_bytes()[..])),
            "kept across the growth"
        );
        assert!(c.grow_to(256, &memory));
        assert!(!c.grow_to(512, &memory), "over the budget");
        assert_eq!(c.capacity(), 256);
        assert!(c.grow_to(64, &memory), "never shrinks");
        assert_eq!(c.capacity(), 256);
        drop(c);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn sized_for_a_second_and_a_half_of_the_stream() {
        assert_eq!(RtxCache::slots_for(0.0), MIN_SLOTS);
        assert_eq!(RtxCache::slots_for(20.0), 64, "a 150 kbit/s layer");
        assert_eq!(RtxCache::slots_for(100.0), 256);
        assert_eq!(RtxCache::slots_for(280.0), 512, "2.5 Mbit/s");
        assert_eq!(RtxCache::slots_for(10_000.0), SLOTS);
        assert_eq!(RtxCache::slots_for(f64::NAN), MIN_SLOTS);
        assert_eq!(RtxCache::slots_for(f64::INFINITY), SLOTS);
    }
}
