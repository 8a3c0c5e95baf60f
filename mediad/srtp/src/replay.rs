//! Packet index estimation (RFC 3711 §3.3.1, Appendix A) and the replay window (§3.3.2).

/// Width of the replay window, in packets.
pub(crate) const WINDOW: u64 = 128;

/// Largest SRTP packet index: 48 bits (32-bit ROC, 16-bit SEQ).
pub(crate) const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// Why no index could be guessed for a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuessError {
    /// The packet would lie before index 0 (ROC would be -1).
    BeforeStart,
    /// The ROC would pass 2^32 - 1: the stream must be rekeyed.
    Exhausted,
}

/// Guess the 48-bit index of `seq` relative to the highest index seen so far
/// (RFC 3711 Appendix A): the candidate among ROC-1, ROC, ROC+1 closest to `highest`.
pub(crate) fn guess_rtp_index(highest: u64, seq: u16) -> Result<u64, GuessError> {
    let roc = highest >> 16;
    let s_l = i32::from(highest as u16);
    let seq_i = i32::from(seq);
    let v = if s_l < 0x8000 {
        if seq_i - s_l > 0x8000 {
            roc.checked_sub(1).ok_or(GuessError::BeforeStart)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq_i {
        roc + 1
    } else {
        roc
    };
    let index = (v << 16) | u64::from(seq);
    if index > MAX_RTP_INDEX {
        return Err(GuessError::Exhausted);
    }
    Ok(index)
}

/// Highest index accepted so far plus a bitmap of the `WINDOW` indices at and below it
/// (bit `n` set = index `highest - n` was accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    highest: u64,
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first accepted index is `index`.
    pub(crate) fn starting_at(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Would `index` be new? (Does not change the window.)
    pub(crate) fn is_fresh(&self, index: u64) -> bool {
        if index > self.highest {
            return true;
        }
        let age = self.highest - index;
        age < WINDOW && self.seen & (1u128 << age) == 0
    }

    /// Record `index` as received. Call only after the packet authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = index;
        } else {
            let age = self.highest - index;
            if age < WINDOW {
                self.seen |= 1u128 << age;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guess_follows_appendix_a() {
        // In order, no wrap.
        assert_eq!(guess_rtp_index(100, 101), Ok(101));
        // Wrap forward: highest seq 65535, ROC 0 -> seq 0 is ROC 1.
        assert_eq!(guess_rtp_index(0xffff, 0), Ok(0x1_0000));
        // Late packet from before the wrap: highest is ROC 1 seq 2, seq 65534 is ROC 0.
        assert_eq!(guess_rtp_index(0x1_0002, 0xfffe), Ok(0xfffe));
        // ...but with ROC 0 there is no ROC -1.
        assert_eq!(guess_rtp_index(2, 0xfffe), Err(GuessError::BeforeStart));
        // Exactly half a cycle away keeps the ROC.
        assert_eq!(guess_rtp_index(0x8000, 0), Ok(0));
        assert_eq!(
            guess_rtp_index(MAX_RTP_INDEX, 0),
            Err(GuessError::Exhausted)
        );
    }

    #[test]
    fn window_accepts_reordering_and_rejects_replays() {
        let mut w = ReplayWindow::starting_at(1000);
        assert!(!w.is_fresh(1000));
        assert!(w.is_fresh(999));
        w.accept(999);
        assert!(!w.is_fresh(999));
        w.accept(1005);
        assert!(w.is_fresh(1003));
        assert!(!w.is_fresh(1000));
        assert!(!w.is_fresh(1005));
        // Older than the window.
        assert!(!w.is_fresh(1005 - WINDOW));
        assert!(w.is_fresh(1005 - WINDOW + 1));
        // A big jump clears everything but the newest.
        w.accept(1005 + 1000);
        assert!(!w.is_fresh(2005));
        assert!(w.is_fresh(2004));
        assert_eq!(w.highest(), 2005);
    }
}
