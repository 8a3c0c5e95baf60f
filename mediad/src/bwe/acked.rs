//! The acknowledged (received) bitrate over a sliding window of arrival
//! times.

/// Sliding-window receive rate. A fixed ring; no allocation after `new`.
#[derive(Debug)]
pub(crate) struct AckedBitrate {
    ring: Box<[(i64, u32)]>,
    head: usize,
    len: usize,
    bytes: u64,
    window_us: i64,
}

impl AckedBitrate {
    pub fn new(capacity: usize, window_us: i64) -> Self {
        Self {
            ring: vec![(0, 0); capacity.max(4)].into_boxed_slice(),
            head: 0,
            len: 0,
            bytes: 0,
            window_us,
        }
    }

    fn at(&self, i: usize) -> (i64, u32) {
        self.ring
            .get((self.head + i) % self.ring.len())
            .copied()
            .unwrap_or((0, 0))
    }

    fn pop(&mut self) {
        let (_, size) = self.at(0);
        self.bytes -= u64::from(size);
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
    }

    /// A packet of `size` bytes arrived at `arrival_us` (receiver clock).
    pub fn on_received(&mut self, arrival_us: i64, size: u32) {
        if self.len == self.ring.len() {
            self.pop();
        }
        let i = (self.head + self.len) % self.ring.len();
        if let Some(slot) = self.ring.get_mut(i) {
            *slot = (arrival_us, size);
            self.len += 1;
            self.bytes += u64::from(size);
        }
        while self.len > 1 && arrival_us.saturating_sub(self.at(0).0) > self.window_us {
            self.pop();
        }
    }

    /// The rate in bit/s over the window, once it spans at least 50 ms.
    pub fn bitrate_bps(&self) -> Option<u64> {
        if self.len < 2 {
            return None;
        }
        let (first_t, first_size) = self.at(0);
        let (last_t, _) = self.at(self.len - 1);
        let span = last_t.saturating_sub(first_t);
        if span < 50_000 {
            return None;
        }
        let bits = (self.bytes - u64::from(first_size)) as f64 * 8.0;
        Some((bits * 1e6 / span as f64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_flow_rate() {
        let mut a = AckedBitrate::new(1024, 500_000);
        assert_eq!(a.bitrate_bps(), None);
        // 1000 bytes every 4 ms = 2 Mbit/s.
        for i in 0..1000 {
            a.on_received(i * 4000, 1000);
        }
        let r = a.bitrate_bps().unwrap();
        assert!((1_990_000..=2_010_000).contains(&r), "{r}");
        // A small ring keeps working (shorter window).
        let mut a = AckedBitrate::new(8, 500_000);
        for i in 0..100 {
            a.on_received(i * 4000, 1000);
        }
        assert_eq!(a.bitrate_bps(), None); // 28 ms span < 50 ms
    }
}
