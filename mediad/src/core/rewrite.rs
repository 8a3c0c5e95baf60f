//! Per-receiver sequence number rewriting.
//!
//! Each receiver sees every forwarded stream under an SSRC mediad chose and
//! with sequence numbers that have no gaps of mediad's making: when mediad
//! stops forwarding a stream to a receiver (muted, waiting for a key frame)
//! and starts again, numbering resumes right after the last packet sent.

/// Maps a publisher's sequence numbers to one receiver's.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    offset: u16,
    last_in: Option<u16>,
    last_out: u16,
    floor_in: u16,
    resume: bool,
}

impl SeqRewriter {
    /// A rewriter whose first output sequence number is `first_out`.
    pub fn new(first_out: u16) -> Self {
        Self {
            offset: 0,
            last_in: None,
            last_out: first_out.wrapping_sub(1),
            floor_in: 0,
            resume: true,
        }
    }

    /// The next packets will follow a pause: number the first one sent
    /// `last + 1`, whatever the publisher's numbering did meanwhile.
    pub fn pause(&mut self) {
        self.resume = true;
    }

    /// Output sequence number for input `seq`, for a packet that will be
    /// sent. Returns `None` for a packet older than the last resume point
    /// (it cannot be numbered without colliding).
    pub fn map(&mut self, seq: u16) -> Option<u16> {
        if self.resume {
            self.resume = false;
            self.offset = self.last_out.wrapping_add(1).wrapping_sub(seq);
            self.last_in = Some(seq);
            self.floor_in = seq;
            self.last_out = seq.wrapping_add(self.offset);
            return Some(self.last_out);
        }
        let last_in = self.last_in?;
        if seq.wrapping_sub(self.floor_in) >= 0x8000 {
            return None;
        }
        let delta = seq.wrapping_sub(last_in);
        let out = seq.wrapping_add(self.offset);
        if delta != 0 && delta < 0x8000 {
            self.last_in = Some(seq);
            self.last_out = out;
            // The floor follows at a distance: past it, half the number
            // space ahead would read as "before the floor".
            if seq.wrapping_sub(self.floor_in) > 0x4000 {
                self.floor_in = seq.wrapping_sub(0x4000);
            }
        }
        Some(out)
    }

    /// A sequence number for a packet of mediad's own (probe padding)
    /// between the last one sent and the next: later input packets are
    /// numbered one further, and input packets from before it are no longer
    /// sent (their numbers are taken). `None` before anything was sent.
    pub fn insert(&mut self) -> Option<u16> {
        let last_in = self.last_in?;
        if self.resume {
            return None;
        }
        self.offset = self.offset.wrapping_add(1);
        self.last_out = self.last_out.wrapping_add(1);
        self.floor_in = last_in.wrapping_add(1);
        Some(self.last_out)
    }

    /// Input packet `seq` is not sent to this receiver (a dropped temporal
    /// layer): later packets are numbered one lower, so the receiver sees
    /// no gap, and packets from before it are no longer sent (their numbers
    /// may be taken). Only for a packet newer than the last one seen.
    pub fn skip(&mut self, seq: u16) {
        let Some(last_in) = self.last_in else {
            return;
        };
        if self.resume {
            return;
        }
        let delta = seq.wrapping_sub(last_in);
        if delta == 0 || delta >= 0x8000 {
            return;
        }
        self.offset = self.offset.wrapping_sub(1);
        self.last_in = Some(seq);
        self.floor_in = seq.wrapping_add(1);
    }

    /// The input sequence number that was sent as `out` (for NACKs).
    pub fn unmap(&self, out: u16) -> u16 {
        out.wrapping_sub(self.offset)
    }

    /// Like [`SeqRewriter::unmap`], but `None` for an output number from
    /// before the last resume point (it was numbered with another offset).
    pub fn unmap_checked(&self, out: u16) -> Option<u16> {
        self.last_in?;
        let seq = self.unmap(out);
        (seq.wrapping_sub(self.floor_in) < 0x8000).then_some(seq)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn continuous_across_pauses_and_wraps() {
        let mut r = SeqRewriter::new(100);
        assert_eq!(r.map(65530), Some(100));
        assert_eq!(r.map(65531), Some(101));
        assert_eq!(r.map(2), Some(108)); // wrap, with a real gap kept
        assert_eq!(r.unmap(108), 2);
        r.pause();
        assert_eq!(r.map(500), Some(109));
        assert_eq!(r.map(499), None); // from before the resume: not sent
        assert_eq!(r.map(501), Some(110));
        assert_eq!(r.unmap(110), 501);
        assert_eq!(r.unmap_checked(110), Some(501));
        assert_eq!(r.unmap_checked(108), None, "numbered before the resume");
    }

    #[test]
    fn long_runs_without_a_pause_keep_flowing() {
        let mut r = SeqRewriter::new(7);
        let mut expect = 7u16;
        // Three wraps of the publisher's numbering, one stream.
        for i in 0..200_000u32 {
            let seq = (i as u16).wrapping_add(40_000);
            assert_eq!(r.map(seq), Some(expect), "packet {i}");
            expect = expect.wrapping_add(1);
        }
    }

    #[test]
    fn skipped_packets_leave_no_gap() {
        let mut r = SeqRewriter::new(50);
        r.skip(9); // nothing sent yet: ignored
        assert_eq!(r.map(10), Some(50));
        r.skip(11);
        r.skip(12);
        assert_eq!(r.map(13), Some(51));
        assert_eq!(r.unmap_checked(51), Some(13));
        assert_eq!(r.map(12), None, "skipped, from before the last skip");
        r.skip(13); // not newer: ignored
        assert_eq!(r.map(14), Some(52));
    }

    #[test]
    fn inserted_numbers_shift_what_follows() {
        let mut r = SeqRewriter::new(10);
        assert_eq!(r.insert(), None, "nothing sent yet");
        assert_eq!(r.map(500), Some(10));
        assert_eq!(r.map(501), Some(11));
        assert_eq!(r.insert(), Some(12));
        assert_eq!(r.insert(), Some(13));
        assert_eq!(r.map(502), Some(14));
        assert_eq!(
            r.map(501),
            None,
            "from before the padding: its number is taken"
        );
        assert_eq!(r.unmap_checked(14), Some(502));
        assert_eq!(
            r.unmap_checked(12),
            None,
            "padding is not a publisher packet"
        );
        r.pause();
        assert_eq!(r.insert(), None, "not while resuming");
        assert_eq!(r.map(900), Some(15));
    }
}
