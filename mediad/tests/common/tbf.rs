//! A token-bucket bottleneck, as Linux's `tbf` qdisc shapes a real link
//! (`tc qdisc add dev … root tbf rate R burst B latency L`): packets leave
//! at line rate while the bucket holds tokens (at most `burst` bytes of
//! them, filled at `rate`), then at `rate`; the queue holds at most
//! `rate × latency + burst` bytes and drops at its tail. Unlike a plain
//! drop-tail bottleneck, a short burst — a probe cluster — passes at line
//! rate and says nothing about the rate behind it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One token bucket (see the module doc). Sizes are wire bytes.
#[derive(Debug, Clone)]
pub struct Tbf {
    /// Token rate in bit/s; `None`: unlimited (line rate only).
    rate_bps: Option<u64>,
    /// Largest number of tokens (bytes).
    pub burst: usize,
    /// Longest a packet may wait in the queue.
    pub latency: Duration,
    /// The rate of the line behind the bucket.
    pub line_bps: u64,
    /// Tokens at `at`.
    tokens: f64,
    at: Option<Instant>,
    /// When the line is free again.
    line_free: Option<Instant>,
    /// Packets in the queue: (departure, bytes).
    queue: VecDeque<(Instant, usize)>,
    /// Packets dropped at the tail.
    pub dropped: u64,
}

impl Tbf {
    /// `rate R burst B latency L` on a 100 Mbit/s line; the bucket starts full.
    pub fn new(rate_bps: u64, burst: usize, latency: Duration) -> Self {
        Self {
            rate_bps: Some(rate_bps),
            burst,
            latency,
            line_bps: 100_000_000,
            tokens: burst as f64,
            at: None,
            line_free: None,
            queue: VecDeque::new(),
            dropped: 0,
        }
    }

    /// The token rate (`None`: unlimited).
    pub fn rate_bps(&self) -> Option<u64> {
        self.rate_bps
    }

    /// `tc qdisc change … rate R` at `now` (`None`: lift the limit).
    pub fn set_rate(&mut self, rate_bps: Option<u64>, now: Instant) {
        self.refill(now.max(self.at.unwrap_or(now)));
        self.rate_bps = rate_bps;
    }

    fn refill(&mut self, t: Instant) {
        let at = *self.at.get_or_insert(t);
        if t > at {
            let add = match self.rate_bps {
                Some(r) => r as f64 / 8.0 * (t - at).as_secs_f64(),
                None => f64::INFINITY,
            };
            self.tokens = (self.tokens + add).min(self.burst as f64);
            self.at = Some(t);
        }
    }

    /// A packet of `bytes` arrives at `now`: when it leaves the line, or
    /// `None` if the queue is full (tail drop).
    pub fn enqueue(&mut self, now: Instant, bytes: usize) -> Option<Instant> {
        while self.queue.front().is_some_and(|(d, _)| *d <= now) {
            self.queue.pop_front();
        }
        let backlog: usize = self.queue.iter().map(|q| q.1).sum();
        let depart = match self.rate_bps {
            Some(rate) => {
                let limit = (rate as f64 / 8.0 * self.latency.as_secs_f64()) as usize + self.burst;
                if backlog + bytes > limit {
                    self.dropped += 1;
                    return None;
                }
                // FIFO: tokens are counted from when the packet ahead left.
                let last = self.queue.back().map_or(now, |q| q.0.max(now));
                self.refill(last);
                let bytes_f = bytes as f64;
                if self.tokens >= bytes_f {
                    self.tokens -= bytes_f;
                    last
                } else {
                    let wait = (bytes_f - self.tokens) * 8.0 / rate as f64;
                    let t = last + Duration::from_secs_f64(wait);
                    self.tokens = 0.0;
                    self.at = Some(t);
                    t
                }
            }
            None => now,
        };
        let start = self.line_free.map_or(depart, |f| f.max(depart));
        let done = start + Duration::from_nanos(bytes as u64 * 8_000_000_000 / self.line_bps);
        self.line_free = Some(done);
        self.queue.push_back((done, bytes));
        Some(done)
    }
}
