//! Bounded per-SSRC state, sorted by SSRC: a lookup is a binary search
//! (ten comparisons at [`MAX_SSRCS`]). Storage for [`RESERVED_SSRCS`] is
//! reserved at context creation and grows (doubling, up to [`MAX_SSRCS`])
//! only when a new SSRC is first seen: never per packet of a known stream.

use crate::{SrtpError, replay::ReplayWindow};

/// Most SSRCs one context tracks (inbound and outbound together): a
/// subscriber in a large room receives an SSRC per remote track, plus
/// retransmission streams.
pub const MAX_SSRCS: usize = 1024;

/// SSRCs room is reserved for when a context is created.
const RESERVED_SSRCS: usize = 16;

/// Everything one SSRC needs, per direction of use.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamState {
    /// Inbound SRTP: highest authenticated index (ROC || SEQ) and replay bitmap.
    pub(crate) rtp_rx: Option<ReplayWindow>,
    /// Outbound SRTP: highest index sent (ROC || SEQ).
    pub(crate) rtp_tx: Option<u64>,
    /// Inbound SRTCP: highest authenticated SRTCP index and replay bitmap.
    pub(crate) rtcp_rx: Option<ReplayWindow>,
    /// Outbound SRTCP: index of the next packet (starts at 0, RFC 3711 §3.3.2).
    pub(crate) rtcp_tx_next: u32,
}

/// SSRC → state: a sorted key array and the states in the same order.
#[derive(Debug)]
pub(crate) struct StreamTable {
    ssrcs: Vec<u32>,
    states: Vec<StreamState>,
}

impl StreamTable {
    pub(crate) fn new() -> Self {
        Self {
            ssrcs: Vec::with_capacity(RESERVED_SSRCS),
            states: Vec::with_capacity(RESERVED_SSRCS),
        }
    }

    pub(crate) fn find(&self, ssrc: u32) -> Option<usize> {
        self.ssrcs.binary_search(&ssrc).ok()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.ssrcs.len() >= MAX_SSRCS
    }

    pub(crate) fn get(&self, slot: Option<usize>) -> Option<&StreamState> {
        slot.and_then(|i| self.states.get(i))
    }

    /// The state for `ssrc`, created (all empty) if absent.
    pub(crate) fn get_or_insert(&mut self, ssrc: u32) -> Result<&mut StreamState, SrtpError> {
        let slot = match self.ssrcs.binary_search(&ssrc) {
            Ok(i) => i,
            Err(i) => {
                if self.is_full() {
                    return Err(SrtpError::TooManySsrcs);
                }
                self.ssrcs.insert(i, ssrc);
                self.states.insert(i, StreamState::default());
                i
            }
        };
        self.states.get_mut(slot).ok_or(SrtpError::TooManySsrcs)
    }

    /// Forget an SSRC (e.g. when a track ends), freeing its slot.
    pub(crate) fn remove(&mut self, ssrc: u32) -> bool {
        match self.find(ssrc) {
            Some(i) => {
                self.ssrcs.remove(i);
                self.states.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ssrcs.len()
    }
}
