//! Reception statistics of one incoming stream, as RFC 3550 §6.4.1 and
//! Appendix A.3/A.8 define them, for the receiver reports mediad sends to
//! publishers.

use std::time::{Duration, Instant};

/// What one report block says: the wire type, one definition.
pub use salon_proto::rtcp::ReportBlock;

/// Counters for one incoming stream.
#[derive(Debug, Clone)]
pub struct RecvStats {
    clock_rate: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    jitter_q4: u64,
    last_transit: Option<i64>,
    last_sr: Option<(u32, Instant)>,
}

impl RecvStats {
    /// Stats for a stream with the given RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            started: false,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            last_sr: None,
        }
    }

    /// Count a packet with sequence number `seq` and RTP timestamp `ts`
    /// arriving `since_epoch` after the worker started.
    pub fn on_packet(&mut self, seq: u16, ts: u32, since_epoch: Duration) {
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            }
        }
        self.received = self.received.wrapping_add(1);
        let arrival = (since_epoch.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64;
        let transit = arrival - i64::from(ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Highest sequence number received so far (`None` before the first).
    pub fn max_seq(&self) -> Option<u16> {
        self.started.then_some(self.max_seq)
    }

    /// Remember the NTP time of the publisher's last sender report.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// A report block, and start a new reporting interval.
    pub fn report(&mut self, ssrc: u32, now: Instant) -> Option<ReportBlock> {
        if !self.started {
            return None;
        }
        let extended_max = self.cycles.wrapping_add(u32::from(self.max_seq));
        let expected = extended_max.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (
                    lsr,
                    (d.as_micros() * 65536 / 1_000_000).min(u128::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: extended_max,
            jitter: (self.jitter_q4 >> 4) as u32,
            lsr,
            dlsr,
        })
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_wrap() {
        let t0 = Instant::now();
        let mut s = RecvStats::new(90_000);
        assert!(s.report(1, t0).is_none());
        let mut seq = 65_530u16;
        for i in 0..20u32 {
            if i % 5 != 4 {
                s.on_packet(seq, i * 3000, Duration::from_millis(u64::from(i) * 33));
            }
            seq = seq.wrapping_add(1);
        }
        let r = s.report(1, t0).unwrap();
        assert_eq!(r.highest_seq, (1 << 16) + u32::from(seq.wrapping_sub(2)));
        // Up to the highest received (i=18): 19 expected, 16 received.
        assert_eq!(r.cumulative_lost, 3);
        assert!(r.fraction_lost > 0);
        s.on_sender_report(0x1234_5678_9abc_def0, t0);
        let r2 = s.report(1, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(r2.lsr, 0x5678_9abc);
        assert_eq!(r2.dlsr, 65536);
        assert_eq!(r2.fraction_lost, 0);
    }
}
