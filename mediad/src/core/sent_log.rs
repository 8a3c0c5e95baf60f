//! What one receiver's leg of a video track was sent, by output sequence
//! number, so a NACK finds the packet it means.
//!
//! Mapping a NACKed number back through the [`super::rewrite::SeqRewriter`]
//! only works for packets numbered with its current offset: after a layer
//! switch, a dropped temporal-layer packet or a probe, older numbers map to
//! the wrong input packet (or none). The log remembers, for each of the
//! last [`SLOTS`] packets sent, which layer and input packet it was and the
//! timestamp offset and VP8 picture id / TL0PICIDX it was sent with, so a
//! retransmission is byte-for-byte what was lost. Fixed size, allocated
//! at the leg's first packet (a leg that never sends — outside last-N, an
//! audio-only receiver — costs nothing) and charged to the worker's memory
//! budget; recording a later packet allocates nothing.

use std::time::{Duration, Instant};

use super::limits::{Charge, MemoryBudget};
use super::vp8::Vp8Out;

/// Most times one packet is sent again: past that, the receiver's link is
/// losing it for good and a key frame does better.
pub const MAX_RESENDS: u8 = 3;

/// Packets remembered per leg (at 1.5 Mbit/s in 1100-byte packets, about
/// two seconds: longer than any NACK is worth answering).
pub const SLOTS: usize = 256;

/// One packet sent to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Index of the layer (encoding) it came from.
    pub layer: u8,
    /// The publisher's sequence number (the key in that layer's cache).
    pub in_seq: u16,
    /// Timestamp offset it was sent with.
    pub ts_offset: u32,
    /// Picture id / TL0PICIDX it was sent with (VP8 with a picture id).
    pub vp8: Option<Vp8Out>,
    /// A packet of a key frame: what ends a receiver's freeze (a layer
    /// switch, a key frame it asked for), resent before the budget's
    /// delta frames ([`super::nack`]).
    pub key: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    out_seq: u16,
    sent: Option<Sent>,
    /// Times it was sent again, and the last time.
    resends: u8,
    last_resend: Option<Instant>,
}

/// Why a NACKed packet is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoResend {
    /// Not (or no longer) in the log.
    Unknown,
    /// Sent again less than a round trip ago (a repeated NACK, or a
    /// duplicate within one).
    TooSoon,
    /// Sent again [`MAX_RESENDS`] times already.
    TooMany,
}

/// The last [`SLOTS`] packets sent on one leg, by output sequence number.
#[derive(Debug, Default)]
pub struct SentLog {
    /// The slots and the budget they hold, from the first packet on.
    slots: Option<(Box<[Slot; SLOTS]>, Charge)>,
}

impl SentLog {
    /// What one log holds (8 KiB), the charge it needs.
    pub const BYTES: u64 = std::mem::size_of::<[Slot; SLOTS]>() as u64;

    /// An empty log: nothing allocated before the first packet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the slots are allocated (a packet was recorded).
    pub fn is_allocated(&self) -> bool {
        self.slots.is_some()
    }

    /// The slots, allocated now (the leg's first packet) and charged to
    /// `memory`. Charged even over the budget: the budget is kept by
    /// refusing publishes, not by breaking a receiver's leg.
    #[cold]
    fn allocate(memory: &MemoryBudget) -> (Box<[Slot; SLOTS]>, Charge) {
        let slots = Box::new(
            [Slot {
                out_seq: 0,
                sent: None,
                resends: 0,
                last_resend: None,
            }; SLOTS],
        );
        (slots, memory.charge(Self::BYTES))
    }

    /// Packet `out_seq` was sent (the first allocates the log, charged to
    /// `memory`).
    #[inline]
    pub fn record(&mut self, out_seq: u16, sent: Sent, memory: &MemoryBudget) {
        let (slots, _) = self.slots.get_or_insert_with(|| Self::allocate(memory));
        if let Some(slot) = slots.get_mut(usize::from(out_seq) % SLOTS) {
            *slot = Slot {
                out_seq,
                sent: Some(sent),
                resends: 0,
                last_resend: None,
            };
        }
    }

    /// What was sent as `out_seq`, to send it again now — at most once per
    /// `interval` (a round trip) and [`MAX_RESENDS`] times; counted as sent
    /// again when it is returned.
    pub fn take_for_resend(
        &mut self,
        out_seq: u16,
        now: Instant,
        interval: Duration,
    ) -> Result<Sent, NoResend> {
        let slot = self
            .slots
            .as_mut()
            .and_then(|(slots, _)| slots.get_mut(usize::from(out_seq) % SLOTS))
            .filter(|s| s.out_seq == out_seq)
            .ok_or(NoResend::Unknown)?;
        let sent = slot.sent.ok_or(NoResend::Unknown)?;
        if slot
            .last_resend
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
        {
            return Err(NoResend::TooSoon);
        }
        if slot.resends >= MAX_RESENDS {
            return Err(NoResend::TooMany);
        }
        slot.resends += 1;
        slot.last_resend = Some(now);
        Ok(sent)
    }

    /// What was sent as `out_seq`, if it is still remembered.
    pub fn get(&self, out_seq: u16) -> Option<Sent> {
        let slot = *self.slots.as_ref()?.0.get(usize::from(out_seq) % SLOTS)?;
        if slot.out_seq == out_seq {
            slot.sent
        } else {
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn budget() -> MemoryBudget {
        MemoryBudget::new(u64::MAX, Arc::new(crate::metrics::Metrics::default()))
    }

    #[test]
    fn a_packet_goes_again_once_per_round_trip_and_three_times_at_most() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut log = SentLog::new();
        log.record(500, sent(7), &budget());
        assert_eq!(log.take_for_resend(500, t0, rtt), Ok(sent(7)));
        assert_eq!(
            log.take_for_resend(500, t0 + Duration::from_millis(50), rtt),
            Err(NoResend::TooSoon),
            "a duplicate or a repeat inside the round trip"
        );
        assert!(log.take_for_resend(500, t0 + rtt, rtt).is_ok());
        assert!(log.take_for_resend(500, t0 + rtt * 2, rtt).is_ok());
        assert_eq!(
            log.take_for_resend(500, t0 + rtt * 3, rtt),
            Err(NoResend::TooMany)
        );
        assert_eq!(log.take_for_resend(501, t0, rtt), Err(NoResend::Unknown));
        // A new packet in the slot starts afresh.
        log.record(500 + SLOTS as u16, sent(8), &budget());
        assert_eq!(
            log.take_for_resend(500, t0 + rtt * 9, rtt),
            Err(NoResend::Unknown)
        );
        assert!(log.take_for_resend(500 + SLOTS as u16, t0, rtt).is_ok());
    }

    fn sent(in_seq: u16) -> Sent {
        Sent {
            key: false,
            layer: 1,
            in_seq,
            ts_offset: 7,
            vp8: Some(Vp8Out {
                picture_id: in_seq,
                tl0picidx: None,
            }),
        }
    }

    #[test]
    fn allocated_and_charged_at_the_first_packet_only() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let memory = MemoryBudget::new(1, metrics.clone());
        let mut log = SentLog::new();
        assert!(!log.is_allocated());
        assert_eq!(log.get(1), None);
        assert_eq!(memory.used(), 0);
        log.record(1, sent(1), &memory);
        log.record(2, sent(2), &memory);
        assert!(log.is_allocated());
        assert_eq!(
            memory.used(),
            SentLog::BYTES,
            "over the budget, still charged"
        );
        drop(log);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn remembers_the_last_slots_and_forgets_older_ones() {
        let mut log = SentLog::new();
        assert_eq!(log.get(5), None);
        // Output numbers wrap; input numbers jump (a switch, a skip).
        for i in 0..600u16 {
            log.record(65_400u16.wrapping_add(i), sent(i * 2), &budget());
        }
        let newest = 65_400u16.wrapping_add(599);
        assert_eq!(log.get(newest), Some(sent(1198)));
        let oldest_kept = newest.wrapping_sub(SLOTS as u16 - 1);
        assert_eq!(log.get(oldest_kept).map(|s| s.in_seq), Some(1198 - 2 * 255));
        assert_eq!(log.get(oldest_kept.wrapping_sub(1)), None, "overwritten");
        assert_eq!(log.get(newest.wrapping_add(1)), None, "never sent");
    }
}
