//! Transport-wide congestion control feedback *to* a publisher: mediad
//! records when each packet of a publish transport arrived (by its
//! transport-wide sequence number) and reports it every 50 ms
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), so the browser's
//! own send-side estimator (GoogCC in Chrome) sizes its encodings to the
//! uplink. Sans-IO, fixed capacity: no allocation per packet.

use std::time::{Duration, Instant};

use salon_proto::twcc::{self, TwccParams};

/// How often feedback is sent while packets arrive.
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Arrivals kept between two feedbacks (about 4 Mbit/s of 1200-byte
/// packets for 50 ms is 21; a burst may bring more). Beyond: dropped.
const CAPACITY: usize = 1024;
/// Feedback goes out at once when this many arrivals wait (one packet's
/// worth), without waiting for the interval.
const EARLY_AFTER: usize = 100;
/// Sequence numbers missing between the last report and the next arrival
/// are reported lost, up to this many (beyond: the sender restarted its
/// numbering, or so long an outage that the losses no longer matter).
const MAX_LEADING_GAP: u64 = 0x1000;

/// Arrival times of one publish transport's packets, until reported.
#[derive(Debug)]
pub struct TwccRecorder {
    /// (unwrapped transport-wide seq, arrival µs since the worker's epoch).
    arrivals: Vec<(u64, i64)>,
    /// Written feedback entries (reused).
    entries: Vec<(u16, Option<i64>)>,
    highest: Option<u64>,
    /// Everything up to this was reported (received or lost).
    reported: Option<u64>,
    fb_count: u8,
    next_at: Option<Instant>,
    /// SSRC of the newest packet, named as the feedback's media source.
    media_ssrc: u32,
    /// Arrivals dropped because the buffer was full or they came too late.
    pub dropped: u64,
}

impl Default for TwccRecorder {
    fn default() -> Self {
        Self {
            arrivals: Vec::with_capacity(CAPACITY),
            entries: Vec::with_capacity(CAPACITY),
            highest: None,
            reported: None,
            fb_count: 0,
            next_at: None,
            media_ssrc: 0,
            dropped: 0,
        }
    }
}

impl TwccRecorder {
    /// A packet of stream `ssrc` with transport-wide sequence number `seq`
    /// arrived at `arrival_us` (µs since the worker's epoch) at `now`.
    pub fn on_packet(&mut self, seq: u16, ssrc: u32, arrival_us: i64, now: Instant) {
        let unwrapped = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16);
                if delta < 0x8000 {
                    h + u64::from(delta)
                } else {
                    h.saturating_sub(u64::from(h as u16).wrapping_sub(u64::from(seq)) & 0xffff)
                }
            }
        };
        if self.reported.is_some_and(|r| unwrapped <= r) || self.arrivals.len() >= CAPACITY {
            self.dropped += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(unwrapped, |h| h.max(unwrapped)));
        self.arrivals.push((unwrapped, arrival_us));
        self.media_ssrc = ssrc;
        let due = if self.arrivals.len() >= EARLY_AFTER {
            now
        } else {
            now + FEEDBACK_INTERVAL
        };
        self.next_at = Some(self.next_at.map_or(due, |t| t.min(due)));
    }

    /// When feedback is due, if anything waits to be reported.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Write one transport-cc RTCP packet into `buf` if feedback is due:
    /// every sequence number from the first unreported one (the one after
    /// the last report) to the newest, the missing ones as lost. Returns
    /// its length.
    pub fn poll_feedback(
        &mut self,
        now: Instant,
        sender_ssrc: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
        if self.next_at.is_none_or(|t| now < t) {
            return None;
        }
        self.next_at = None;
        self.arrivals.sort_unstable_by_key(|a| a.0);
        self.arrivals.dedup_by_key(|a| a.0);
        self.entries.clear();
        // Packets lost right after the last report: start the report there
        // (the writer fills the gap up to the first arrival as lost).
        let lead = match (self.reported, self.arrivals.first()) {
            (Some(r), Some(&(first, _))) if first > r + 1 && first - r - 1 <= MAX_LEADING_GAP => {
                self.entries.push(((r + 1) as u16, None));
                1
            }
            _ => 0,
        };
        self.entries
            .extend(self.arrivals.iter().map(|&(s, at)| (s as u16, Some(at))));
        let params = TwccParams {
            sender_ssrc,
            media_ssrc: self.media_ssrc,
            fb_count: self.fb_count,
            max_len: 1200,
        };
        let written = twcc::write_feedback(buf, &params, &self.entries).ok()?;
        self.fb_count = self.fb_count.wrapping_add(1);
        let consumed = written
            .consumed
            .saturating_sub(lead)
            .min(self.arrivals.len());
        match consumed.checked_sub(1).and_then(|i| self.arrivals.get(i)) {
            Some(&(last, _)) => self.reported = Some(last),
            // Only (part of) the leading gap fit: it is reported.
            None if lead == 1 => self.reported = self.reported.map(|r| r + 1),
            None => {}
        }
        self.arrivals.drain(..consumed);
        if !self.arrivals.is_empty() {
            // The rest goes in the next packet, at once.
            self.next_at = Some(now);
        }
        Some(written.len)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;
    use salon_proto::twcc::{PacketStatus, TwccFeedback};

    fn parse(buf: &[u8]) -> Vec<(u16, Option<i64>)> {
        // RTCP header (4) + sender and media SSRC (8), then the FCI.
        let fb = TwccFeedback::parse(&buf[12..]).unwrap();
        fb.packets()
            .map(|(seq, st)| match st {
                PacketStatus::Received { arrival_us, .. } => (seq, Some(arrival_us)),
                _ => (seq, None),
            })
            .collect()
    }

    #[test]
    fn reports_arrivals_losses_reordering_and_wraps() {
        let t0 = Instant::now();
        let mut r = TwccRecorder::default();
        let mut buf = [0u8; 1500];
        assert_eq!(r.poll_feedback(t0, 1, &mut buf), None, "nothing yet");
        // 65533, 65534, (65535 lost), 0, 2 before 1 (reordered).
        for (seq, us) in [
            (65533u16, 1_000i64),
            (65534, 2_000),
            (0, 4_000),
            (2, 6_000),
            (1, 5_000),
        ] {
            r.on_packet(seq, 7, us, t0);
        }
        assert_eq!(r.poll_feedback(t0, 1, &mut buf), None, "not due yet");
        let t1 = t0 + FEEDBACK_INTERVAL;
        let n = r.poll_feedback(t1, 1, &mut buf).unwrap();
        let got = parse(&buf[..n]);
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, vec![65533, 65534, 65535, 0, 1, 2]);
        assert_eq!(got[2].1, None, "65535 was lost");
        // Arrival times survive within the 250 µs resolution.
        let base = got[0].1.unwrap();
        for (g, want) in got.iter().zip([0i64, 1000, -1, 3000, 4000, 5000]) {
            if let Some(at) = g.1 {
                assert!((at - base - want).abs() <= 250, "{g:?} vs {want}");
            }
        }
        // Reported: a late duplicate is not reported again.
        r.on_packet(1, 7, 9_000, t1);
        assert_eq!(r.dropped, 1);
        assert_eq!(r.poll_timeout(), None);
        // After a long silence, a new reference time.
        r.on_packet(3, 7, 60_000_000, t1);
        let n = r
            .poll_feedback(t1 + FEEDBACK_INTERVAL, 1, &mut buf)
            .unwrap();
        assert_eq!(parse(&buf[..n]).first().map(|g| g.0), Some(3));
    }

    #[test]
    fn losses_across_a_report_boundary_are_reported() {
        let t0 = Instant::now();
        let mut r = TwccRecorder::default();
        let mut buf = [0u8; 1500];
        r.on_packet(10, 0xabcd, 1_000, t0);
        r.on_packet(11, 0xabcd, 2_000, t0);
        let n = r
            .poll_feedback(t0 + FEEDBACK_INTERVAL, 1, &mut buf)
            .unwrap();
        // Sender SSRC, then the newest packet's SSRC as the media source.
        assert_eq!(buf[4..12], [0, 0, 0, 1, 0, 0, 0xab, 0xcd]);
        assert_eq!(parse(&buf[..n]).len(), 2);
        // 12 and 13 lost in between two reports; 14 arrives.
        let t1 = t0 + 2 * FEEDBACK_INTERVAL;
        r.on_packet(14, 0xabcd, 100_000, t1);
        let n = r
            .poll_feedback(t1 + FEEDBACK_INTERVAL, 1, &mut buf)
            .unwrap();
        let got = parse(&buf[..n]);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [12, 13, 14]);
        assert_eq!((got[0].1, got[1].1), (None, None));
        assert!(got[2].1.is_some());
        // The first report of all starts at the first arrival; a jump past
        // MAX_LEADING_GAP (a restarted sender) is not reported as losses.
        r.on_packet(30_000, 0xabcd, 200_000, t1);
        let n = r
            .poll_feedback(t1 + 2 * FEEDBACK_INTERVAL, 1, &mut buf)
            .unwrap();
        assert_eq!(parse(&buf[..n]), [(30_000, parse(&buf[..n])[0].1)]);
    }

    #[test]
    fn reports_at_once_after_many_arrivals() {
        let t0 = Instant::now();
        let mut r = TwccRecorder::default();
        for i in 0..EARLY_AFTER as u16 - 1 {
            r.on_packet(i, 7, i64::from(i) * 100, t0);
        }
        assert_eq!(r.poll_timeout(), Some(t0 + FEEDBACK_INTERVAL));
        r.on_packet(EARLY_AFTER as u16 - 1, 7, 10_000, t0);
        assert_eq!(r.poll_timeout(), Some(t0));
        let mut buf = [0u8; 1500];
        let n = r.poll_feedback(t0, 1, &mut buf).unwrap();
        assert_eq!(parse(&buf[..n]).len(), EARLY_AFTER);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn bounded_and_split() {
        let t0 = Instant::now();
        let mut r = TwccRecorder::default();
        for i in 0..2000u32 {
            r.on_packet(i as u16, 7, i64::from(i) * 100, t0);
        }
        assert_eq!(r.dropped, 2000 - CAPACITY as u64);
        let mut buf = [0u8; 1500];
        let mut covered = 0;
        let mut now = t0 + FEEDBACK_INTERVAL;
        for _ in 0..20 {
            match r.poll_feedback(now, 1, &mut buf) {
                Some(n) => covered += parse(&buf[..n]).len(),
                None => break,
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(covered, CAPACITY, "every kept arrival reported once");
    }
}
