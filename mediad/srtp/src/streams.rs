//! Bounded per-SSRC state. Storage is reserved once at context creation, so
//! neither lookups nor inserts allocate on the packet path.

use crate::{SrtpError, replay::ReplayWindow};

/// Most SSRCs one context tracks (inbound and outbound together).
pub const MAX_SSRCS: usize = 64;

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

/// SSRC → state, linear scan over a dense key array (64 × 4 bytes: one or two cache lines).
#[derive(Debug)]
pub(crate) struct StreamTable {
    ssrcs: Vec<u32>,
    states: Vec<StreamState>,
}

impl StreamTable {
    pub(crate) fn new() -> Self {
        Self {
            ssrcs: Vec::with_capacity(MAX_SSRCS),
            states: Vec::with_capacity(MAX_SSRCS),
        }
    }

    pub(crate) fn find(&self, ssrc: u32) -> Option<usize> {
        self.ssrcs.iter().position(|&s| s == ssrc)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.ssrcs.len() >= MAX_SSRCS
    }

    pub(crate) fn get(&self, slot: Option<usize>) -> Option<&StreamState> {
        slot.and_then(|i| self.states.get(i))
    }

    /// The state for `ssrc`, created (all empty) if absent.
    pub(crate) fn get_or_insert(&mut self, ssrc: u32) -> Result<&mut StreamState, SrtpError> {
        let slot = match self.find(ssrc) {
            Some(i) => i,
            None => {
                if self.is_full() {
                    return Err(SrtpError::TooManySsrcs);
                }
                // Within the reserved capacity: no reallocation.
                self.ssrcs.push(ssrc);
                self.states.push(StreamState::default());
                self.ssrcs.len() - 1
            }
        };
        self.states.get_mut(slot).ok_or(SrtpError::TooManySsrcs)
    }

    /// Forget an SSRC (e.g. when a track ends), freeing its slot.
    pub(crate) fn remove(&mut self, ssrc: u32) -> bool {
        match self.find(ssrc) {
            Some(i) => {
                self.ssrcs.swap_remove(i);
                self.states.swap_remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ssrcs.len()
    }
}
