//! A receiver's NACKs as Chrome sends them (libwebrtc `NackRequester`,
//! reduced): a gap in a stream's numbering is NACKed at once, each missing
//! packet again once per round trip until it arrives (on the media or the
//! RTX stream), up to `max_retries` times; more than 1000 missing at once
//! clears the list (Chrome then asks for a key frame).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// NACK state of one received video stream.
#[derive(Debug, Clone)]
pub struct Nacker {
    /// The media stream NACKed.
    pub ssrc: u32,
    /// Its RTX stream (retransmissions carry the original number first).
    pub rtx_ssrc: Option<u32>,
    /// How long before a number is asked for again.
    pub rtt: Duration,
    /// How often a number is asked for at most (Chrome: 10).
    pub max_retries: u32,
    highest: Option<i64>,
    /// Missing (unwrapped) numbers: when last asked, how often.
    missing: BTreeMap<i64, (Option<Instant>, u32)>,
    /// Numbers asked for, retries included.
    pub asked: u64,
    /// Packets that arrived on the RTX stream and filled a gap.
    pub repaired: u64,
    /// Numbers given up after `max_retries`.
    pub given_up: u64,
}

const MAX_MISSING: usize = 1000;

impl Nacker {
    /// NACK `ssrc` (and take repairs on `rtx_ssrc`).
    pub fn new(ssrc: u32, rtx_ssrc: Option<u32>, rtt: Duration) -> Self {
        Self {
            ssrc,
            rtx_ssrc,
            rtt,
            max_retries: 10,
            highest: None,
            missing: BTreeMap::new(),
            asked: 0,
            repaired: 0,
            given_up: 0,
        }
    }

    fn unwrap(&self, seq: u16) -> i64 {
        match self.highest {
            None => i64::from(seq),
            Some(h) => {
                let d = i64::from(seq.wrapping_sub(h as u16) as i16);
                h + d
            }
        }
    }

    /// A packet of the stream arrived: `seq` is its media number (for an
    /// RTX packet, the original one it carries).
    pub fn on_packet(&mut self, seq: u16, rtx: bool) {
        let s = self.unwrap(seq);
        if rtx {
            if self.missing.remove(&s).is_some() {
                self.repaired += 1;
            }
            return;
        }
        match self.highest {
            Some(h) if s > h => {
                for m in h + 1..s {
                    self.missing.insert(m, (None, 0));
                }
                if self.missing.len() > MAX_MISSING {
                    self.missing.clear();
                }
                self.highest = Some(s);
            }
            Some(_) => {
                self.missing.remove(&s);
            }
            None => self.highest = Some(s),
        }
    }

    /// The numbers to NACK now.
    pub fn due(&mut self, now: Instant) -> Vec<u16> {
        let mut out = Vec::new();
        let (rtt, max) = (self.rtt, self.max_retries);
        let mut gone = Vec::new();
        for (&s, e) in self.missing.iter_mut() {
            if e.0.is_some_and(|at| now < at + rtt) {
                continue;
            }
            if e.1 >= max {
                gone.push(s);
                continue;
            }
            e.0 = Some(now);
            e.1 += 1;
            out.push(s as u16);
        }
        for s in gone {
            self.missing.remove(&s);
            self.given_up += 1;
        }
        self.asked += out.len() as u64;
        out
    }
}
