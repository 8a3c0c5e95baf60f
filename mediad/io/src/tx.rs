//! Outgoing datagrams, in buffers the driver owns and reuses.
//!
//! The core asks for a buffer with [`TxQueue::buffer`], writes a datagram
//! into it and commits it with [`TxQueue::commit`]. Buffers come from a free
//! list that is filled once: after warm-up, queueing a datagram allocates
//! nothing.

use std::net::SocketAddr;

/// Largest datagram mediad sends or receives.
pub const MAX_DATAGRAM: usize = 1500;

/// One queued datagram: `buf[..len]` goes to `dst`.
#[derive(Debug)]
pub struct Transmit {
    /// Destination address.
    pub dst: SocketAddr,
    /// Number of valid bytes in `buf`.
    pub len: usize,
    /// The datagram's bytes (capacity [`MAX_DATAGRAM`]).
    pub buf: Box<[u8; MAX_DATAGRAM]>,
}

/// A queue of datagrams to send, with a pool of reusable buffers.
#[derive(Debug)]
pub struct TxQueue {
    queued: Vec<Transmit>,
    #[allow(
        clippy::vec_box,
        reason = "buffers move between the free list and `Transmit`s without copying"
    )]
    free: Vec<Box<[u8; MAX_DATAGRAM]>>,
    pending: Option<Box<[u8; MAX_DATAGRAM]>>,
    /// Datagrams dropped because the queue was full.
    pub dropped_full: u64,
    capacity: usize,
    /// Stream addresses the handler closed ([`TxQueue::close`]).
    pub(crate) closes: Vec<SocketAddr>,
}

impl TxQueue {
    /// A queue holding at most `capacity` datagrams between two flushes,
    /// with every buffer allocated now.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut free = Vec::with_capacity(capacity + 1);
        for _ in 0..capacity + 1 {
            free.push(Box::new([0u8; MAX_DATAGRAM]));
        }
        Self {
            queued: Vec::with_capacity(capacity),
            free,
            pending: None,
            dropped_full: 0,
            capacity,
            closes: Vec::with_capacity(16),
        }
    }

    /// A buffer to write the next datagram into, or `None` when the queue
    /// is full (the caller drops the datagram and counts it).
    pub fn buffer(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        if self.pending.is_none() {
            if self.queued.len() >= self.capacity {
                self.dropped_full += 1;
                return None;
            }
            self.pending = Some(match self.free.pop() {
                Some(b) => b,
                None => Box::new([0u8; MAX_DATAGRAM]),
            });
        }
        self.pending.as_deref_mut()
    }

    /// Queue the buffer last returned by [`TxQueue::buffer`], holding `len`
    /// bytes, for `dst`. Does nothing if no buffer was taken.
    pub fn commit(&mut self, dst: SocketAddr, len: usize) {
        if let Some(buf) = self.pending.take() {
            let len = len.min(MAX_DATAGRAM);
            self.queued.push(Transmit { dst, len, buf });
        }
    }

    /// Copy `data` into a buffer and queue it (for control traffic such as
    /// STUN and DTLS; the media path writes in place with `buffer`/`commit`).
    pub fn push(&mut self, dst: SocketAddr, data: &[u8]) -> bool {
        let n = data.len();
        if n > MAX_DATAGRAM {
            return false;
        }
        match self.buffer() {
            Some(b) => {
                b[..n].copy_from_slice(data);
                self.commit(dst, n);
                true
            }
            None => false,
        }
    }

    /// Close the TCP connection behind stream address `dst` (see
    /// [`crate::tcp`]) once what is queued for it has been handed to its
    /// socket. Ignored for a UDP address.
    pub fn close(&mut self, dst: SocketAddr) {
        if crate::tcp::is_stream(&dst) {
            self.closes.push(dst);
        }
    }

    /// The closes asked for since the last flush.
    pub fn closes(&self) -> &[SocketAddr] {
        &self.closes
    }

    /// Remove the queued datagrams for which `pred(dst)` holds, in order,
    /// handing each to `f` and returning its buffer to the pool.
    pub fn take_where(
        &mut self,
        mut pred: impl FnMut(&SocketAddr) -> bool,
        mut f: impl FnMut(&Transmit),
    ) {
        for t in self.queued.extract_if(.., |t| pred(&t.dst)) {
            f(&t);
            self.free.push(t.buf);
        }
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The queued datagrams, in order.
    pub fn queued(&self) -> &[Transmit] {
        &self.queued
    }

    /// Remove every queued datagram, handing each to `f`, and return the
    /// buffers to the pool.
    pub fn drain(&mut self, mut f: impl FnMut(&Transmit)) {
        for t in self.queued.drain(..) {
            f(&t);
            self.free.push(t.buf);
        }
        self.closes.clear();
    }

    /// Return the first `n` queued datagrams' buffers to the pool (after a
    /// partial batched send), keeping the rest queued in order.
    pub fn release_front(&mut self, n: usize) {
        let n = n.min(self.queued.len());
        for t in self.queued.drain(..n) {
            self.free.push(t.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused() {
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut q = TxQueue::with_capacity(4);
        for round in 0..3u8 {
            for i in 0..4u8 {
                let b = q.buffer().unwrap();
                b[0] = round * 10 + i;
                q.commit(dst, 1);
            }
            assert!(q.buffer().is_none(), "queue is full");
            let mut seen = Vec::new();
            q.drain(|t| seen.push(t.buf[0]));
            assert_eq!(
                seen,
                vec![round * 10, round * 10 + 1, round * 10 + 2, round * 10 + 3]
            );
        }
        assert_eq!(q.dropped_full, 3);
    }
}
