//! The bare UDP reflector: the physical limit the SFUs are compared with.
//!
//! No ICE, DTLS, SRTP or RTP parsing: a member joins a room with a hello
//! datagram ([`REFLECTOR_MAGIC`] then the room as 4 bytes big-endian, sent
//! again every few seconds as a keepalive), and every other datagram from
//! a member is copied to each other member of its room. It runs on the same
//! `salon-io` driver loops as mediad (io_uring or epoll), so the difference
//! to Salon is the SFU's own work: crypto, RTP handling, layer selection.
//!
//! [`Reflector`] is the sans-IO core ([`salon_io::Handler`]); the binary
//! `reflector` (`src/bin/reflector.rs`) is the thin driver around it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use salon_io::{Handler, TxQueue};

pub use crate::media::REFLECTOR_MAGIC;

/// Counters of a reflector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReflectorStats {
    /// Hello datagrams (joins and keepalives).
    pub hellos: u64,
    /// Datagrams received from members and forwarded.
    pub received: u64,
    /// Copies queued towards other members.
    pub forwarded: u64,
    /// Datagrams from unknown sources (dropped).
    pub strangers: u64,
    /// Copies dropped because the send queue was full.
    pub dropped: u64,
}

/// Rooms of addresses; forwards each member's datagrams to the others.
#[derive(Debug, Default)]
pub struct Reflector {
    member_room: HashMap<SocketAddr, u32>,
    rooms: HashMap<u32, Vec<SocketAddr>>,
    /// Counters.
    pub stats: ReflectorStats,
}

/// The room of a hello datagram, if `data` is one.
pub fn parse_hello(data: &[u8]) -> Option<u32> {
    if data.len() != 12 || data.get(..8)? != REFLECTOR_MAGIC {
        return None;
    }
    let r = data.get(8..12)?;
    Some(u32::from_be_bytes([r[0], r[1], r[2], r[3]]))
}

impl Reflector {
    /// An empty reflector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Members of `room`.
    pub fn members(&self, room: u32) -> &[SocketAddr] {
        self.rooms.get(&room).map_or(&[], Vec::as_slice)
    }

    fn join(&mut self, src: SocketAddr, room: u32) {
        match self.member_room.insert(src, room) {
            Some(old) if old == room => return,
            Some(old) => {
                if let Some(v) = self.rooms.get_mut(&old) {
                    v.retain(|a| *a != src);
                }
            }
            None => {}
        }
        self.rooms.entry(room).or_default().push(src);
    }
}

impl Handler for Reflector {
    fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        _now: Instant,
        tx: &mut TxQueue,
    ) {
        if let Some(room) = parse_hello(data) {
            self.stats.hellos += 1;
            self.join(src, room);
            return;
        }
        let Some(room) = self.member_room.get(&src) else {
            self.stats.strangers += 1;
            return;
        };
        self.stats.received += 1;
        let n = data.len();
        for &dst in self.rooms.get(room).map_or(&[][..], Vec::as_slice) {
            if dst == src {
                continue;
            }
            match tx.buffer() {
                Some(b) => {
                    b[..n].copy_from_slice(data);
                    tx.commit(dst, n);
                    self.stats.forwarded += 1;
                }
                None => self.stats.dropped += 1,
            }
        }
    }

    fn handle_wake(&mut self, _now: Instant, _tx: &mut TxQueue) {}

    fn handle_timeout(&mut self, _now: Instant, _tx: &mut TxQueue) {}

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(room: u32) -> Vec<u8> {
        let mut h = REFLECTOR_MAGIC.to_vec();
        h.extend_from_slice(&room.to_be_bytes());
        h
    }

    #[test]
    fn forwards_to_the_other_members_of_the_room_only() {
        let mut r = Reflector::new();
        let mut tx = TxQueue::with_capacity(16);
        let now = Instant::now();
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:1003".parse().unwrap();
        for (x, room) in [(a, 1), (b, 1), (c, 1), (d, 2), (a, 1)] {
            r.handle_datagram(x, &mut hello(room), now, &mut tx);
        }
        assert_eq!(r.members(1), [a, b, c]);
        r.handle_datagram(a, &mut [0x80, 1, 2, 3], now, &mut tx);
        let dsts: Vec<SocketAddr> = tx.queued().iter().map(|t| t.dst).collect();
        assert_eq!(dsts, [b, c]);
        assert!(
            tx.queued()
                .iter()
                .all(|t| t.buf[..t.len] == [0x80, 1, 2, 3])
        );
        tx.drain(|_| {});
        // A stranger is dropped; a member moving rooms leaves the old one.
        let e: SocketAddr = "127.0.0.1:1004".parse().unwrap();
        r.handle_datagram(e, &mut [1, 2], now, &mut tx);
        assert!(tx.is_empty());
        r.handle_datagram(c, &mut hello(2), now, &mut tx);
        assert_eq!(r.members(1), [a, b]);
        r.handle_datagram(d, &mut [9], now, &mut tx);
        assert_eq!(tx.queued().len(), 1);
        assert_eq!(tx.queued()[0].dst, c);
        assert_eq!(r.stats.strangers, 1);
        assert_eq!(r.stats.forwarded, 3);
    }

    #[test]
    fn arbitrary_datagrams_never_panic() {
        let mut r = Reflector::new();
        let mut tx = TxQueue::with_capacity(4);
        let now = Instant::now();
        let mut x = 0x0123_4567_89ab_cdefu64;
        let base = hello(7);
        for i in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut m = base.clone();
            let k = (x % m.len() as u64) as usize;
            m[k] = (x >> 8) as u8;
            let len = ((x >> 20) % (m.len() as u64 + 1)) as usize;
            let src = SocketAddr::from(([127, 0, 0, 1], (i % 64) as u16 + 1));
            r.handle_datagram(src, &mut m[..len], now, &mut tx);
            let _ = parse_hello(&m[..len]);
            tx.drain(|_| {});
        }
    }
}
