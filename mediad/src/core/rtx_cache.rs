//! A per-stream retransmission cache: the last packets of an incoming
//! stream, decrypted, by sequence number, so a receiver's NACK can be
//! answered without asking the publisher. Every slot is allocated when the
//! cache is created — at the layer's first packet, not when it is
//! negotiated ([`super::track::Layer`]), and only if the worker's memory
//! budget has room ([`RtxCache::BYTES`]); storing a packet copies it into
//! its slot.

use salon_io::MAX_DATAGRAM;

use super::limits::Charge;

/// Packets kept per stream.
pub const SLOTS: usize = 512;

#[derive(Clone)]
struct Slot {
    seq: u16,
    len: u16,
    valid: bool,
    data: [u8; MAX_DATAGRAM],
}

/// The last [`SLOTS`] packets of one stream.
pub struct RtxCache {
    slots: Box<[Slot]>,
    _charge: Charge,
}

impl std::fmt::Debug for RtxCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtxCache")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl RtxCache {
    /// What one cache holds (~750 KiB), the charge it needs.
    pub const BYTES: u64 = (SLOTS * std::mem::size_of::<Slot>()) as u64;

    /// An empty cache with every slot allocated, holding `charge` (of
    /// [`RtxCache::BYTES`]) while it lives.
    pub fn new(charge: Charge) -> Self {
        let slot = Slot {
            seq: 0,
            len: 0,
            valid: false,
            data: [0u8; MAX_DATAGRAM],
        };
        Self {
            slots: vec![slot; SLOTS].into_boxed_slice(),
            _charge: charge,
        }
    }

    /// Keep a copy of a plain RTP packet with sequence number `seq`.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) {
        let n = packet.len();
        if n > MAX_DATAGRAM {
            return;
        }
        if let Some(slot) = self.slots.get_mut(usize::from(seq) % SLOTS)
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
        let slot = self.slots.get(usize::from(seq) % SLOTS)?;
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

    #[test]
    fn keeps_the_last_packets_and_forgets_older_ones() {
        let mut c = RtxCache::new(Charge::untracked());
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
}
