//! Per-socket abuse bounds, as small sans-IO units the socket task drives
//! with the time (`now`): the message rate, failed joins, and the read
//! budget of a socket that has not joined yet. Byte-bounded queues from the
//! hub task to a socket are here too.

// Request input: never index or slice, never `expect` (CONTRIBUTING.md).
#![deny(clippy::indexing_slicing, clippy::expect_used)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// What [`RateLimit::check`] decides for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rate {
    /// Within the limit.
    Pass,
    /// Over the limit: drop the frame; `first` of this stretch over the
    /// limit (answer `rate-limited` once).
    Drop { first: bool },
    /// Over the limit for too long: close the socket.
    Close,
}

/// A token bucket over every frame a socket sends (`per_sec` sustained,
/// `burst` at once). A stretch over the limit starts with the first
/// dropped frame and ends once a second passes without a drop; a stretch
/// longer than `abuse` closes the socket.
#[derive(Debug)]
pub(super) struct RateLimit {
    per_sec: f64,
    burst: f64,
    abuse: Duration,
    tokens: f64,
    last: Instant,
    over_since: Option<Instant>,
    last_drop: Option<Instant>,
}

/// A second without a dropped frame ends a stretch over the limit.
const CALM: Duration = Duration::from_secs(1);

impl RateLimit {
    /// `per_sec == 0`: no limit.
    pub(super) fn new(per_sec: u32, burst: u32, abuse: Duration, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_sec: f64::from(per_sec),
            burst,
            abuse,
            tokens: burst,
            last: now,
            over_since: None,
            last_drop: None,
        }
    }

    /// One frame arrived at `now`.
    pub(super) fn check(&mut self, now: Instant) -> Rate {
        if self.per_sec <= 0.0 {
            return Rate::Pass;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self
            .last_drop
            .is_some_and(|t| now.saturating_duration_since(t) >= CALM)
        {
            self.over_since = None;
            self.last_drop = None;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Rate::Pass;
        }
        self.last_drop = Some(now);
        match self.over_since {
            None => {
                self.over_since = Some(now);
                Rate::Drop { first: true }
            }
            Some(since) if now.saturating_duration_since(since) >= self.abuse => Rate::Close,
            Some(_) => Rate::Drop { first: false },
        }
    }
}

/// What [`JoinGate::attempt`] says of a `join` or `resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Pass it on.
    Go,
    /// Too soon after a failure: refuse it (`join-too-soon`).
    TooSoon { retry_after: Duration },
    /// The last one is still being decided: refuse it (`join-too-soon`).
    Pending,
}

/// Failed joins of one socket before it first got in: each failure doubles
/// the wait before the next attempt is heard (from `first_backoff`, at most
/// 8 s), and `max` failures close the socket. Once in (joined, resumed or in a
/// lobby), the gate stays open.
#[derive(Debug)]
pub(super) struct JoinGate {
    max: u32,
    first_backoff: Duration,
    failures: u32,
    not_before: Option<Instant>,
    admitted: bool,
    /// A join or resume went to the hub and has no answer yet.
    pending: bool,
}

const MAX_BACKOFF: Duration = Duration::from_secs(8);

impl JoinGate {
    /// `max == 0`: failures never close the socket; `first_backoff` zero:
    /// no wait.
    pub(super) fn new(max: u32, first_backoff: Duration) -> Self {
        Self {
            max,
            first_backoff,
            failures: 0,
            not_before: None,
            admitted: false,
            pending: false,
        }
    }

    pub(super) fn admitted(&self) -> bool {
        self.admitted
    }

    /// The socket got in.
    pub(super) fn admit(&mut self) {
        self.admitted = true;
        self.pending = false;
    }

    /// A `join` or `resume` arrived at `now`.
    pub(super) fn attempt(&self, now: Instant) -> Attempt {
        if self.admitted {
            return Attempt::Go;
        }
        if self.pending {
            return Attempt::Pending;
        }
        match self.not_before {
            Some(t) if now < t => Attempt::TooSoon {
                retry_after: t - now,
            },
            _ => Attempt::Go,
        }
    }

    /// The attempt went to the hub: the next waits for its answer.
    pub(super) fn sent(&mut self) {
        if !self.admitted {
            self.pending = true;
        }
    }

    /// A join or resume failed at `now`; `true`: close the socket.
    pub(super) fn failed(&mut self, now: Instant) -> bool {
        if self.admitted {
            return false;
        }
        self.pending = false;
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(16);
        let backoff = self
            .first_backoff
            .saturating_mul(1 << shift)
            .min(MAX_BACKOFF);
        self.not_before = Some(now + backoff);
        self.max > 0 && self.failures >= self.max
    }
}

/// The read side of a signaling socket before it joins: at most `budget`
/// bytes are read past the last whole frame, so a client that has not
/// joined cannot make the server buffer a large frame (the WebSocket
/// layer's limit, 1 MiB, applies once joined). Past the budget, reads fail
/// with [`PreJoinTooLarge`].
#[derive(Debug)]
pub(super) struct PreJoin<S> {
    inner: S,
    /// `None`: no budget (joined, or a pad socket).
    budget: Option<usize>,
    left: usize,
    scratch: Vec<u8>,
}

/// The error a [`PreJoin`] read fails with past its budget.
#[derive(Debug, thiserror::Error)]
#[error("frame over the pre-join limit")]
pub(super) struct PreJoinTooLarge;

impl<S> PreJoin<S> {
    pub(super) fn new(inner: S, budget: Option<usize>) -> Self {
        Self {
            inner,
            budget,
            left: budget.unwrap_or(0),
            scratch: Vec::new(),
        }
    }

    /// A whole frame was read: the next one has the full budget again.
    pub(super) fn frame_read(&mut self) {
        if let Some(b) = self.budget {
            self.left = b;
        }
    }

    /// The socket joined: no budget any more.
    pub(super) fn lift(&mut self) {
        self.budget = None;
        self.scratch = Vec::new();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PreJoin<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.budget.is_none() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.left == 0 {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                PreJoinTooLarge,
            )));
        }
        let want = this.left.min(buf.remaining());
        this.scratch.resize(want, 0);
        let mut sub = ReadBuf::new(&mut this.scratch);
        match Pin::new(&mut this.inner).poll_read(cx, &mut sub) {
            Poll::Ready(Ok(())) => {
                let got = sub.filled();
                this.left = this.left.saturating_sub(got.len());
                buf.put_slice(got);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreJoin<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why [`OutTx::send`] did not queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsent {
    /// The socket is behind by more than its byte or message bound.
    Full,
    /// The socket's task ended.
    Closed,
}

/// The hub task's end of a queue to one socket, bounded in messages (the
/// channel) and in bytes (`limit`).
#[derive(Debug)]
pub(super) struct OutTx<T> {
    tx: mpsc::Sender<(T, usize)>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The socket task's end.
#[derive(Debug)]
pub(super) struct OutRx<T> {
    rx: mpsc::Receiver<(T, usize)>,
    queued: Arc<AtomicUsize>,
}

/// A queue of at most `messages` items and `bytes` bytes.
pub(super) fn out_queue<T>(messages: usize, bytes: usize) -> (OutTx<T>, OutRx<T>) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutTx {
            tx,
            queued: queued.clone(),
            limit: bytes,
        },
        OutRx { rx, queued },
    )
}

impl<T> OutTx<T> {
    /// Queues `item` of `len` bytes. A lone item over the limit still goes
    /// to an empty queue (a big offer to a socket that keeps up).
    pub(super) fn send(&self, item: T, len: usize) -> Result<(), Unsent> {
        let queued = self.queued.load(Ordering::Relaxed);
        if queued > 0 && queued.saturating_add(len) > self.limit {
            return Err(if self.tx.is_closed() {
                Unsent::Closed
            } else {
                Unsent::Full
            });
        }
        // Only the hub task adds: no other add can race this one.
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.try_send((item, len)).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => Unsent::Full,
                mpsc::error::TrySendError::Closed(_) => Unsent::Closed,
            }
        })
    }
}

impl<T> OutRx<T> {
    /// The next item (`None`: the hub task dropped this queue).
    pub(super) async fn recv(&mut self) -> Option<T> {
        let (item, len) = self.rx.recv().await?;
        self.queued.fetch_sub(len, Ordering::Relaxed);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_passes_a_burst_then_drops_then_closes_a_flood() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(20, 50, Duration::from_secs(5), t0);
        for _ in 0..50 {
            assert_eq!(r.check(t0), Rate::Pass);
        }
        assert_eq!(r.check(t0), Rate::Drop { first: true });
        assert_eq!(r.check(t0), Rate::Drop { first: false });
        // 100 frames a second for 5 s: some pass (the sustained rate), the
        // stretch never calms down, and it ends in a close.
        let mut closed = None;
        for i in 1..=600u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            if r.check(now) == Rate::Close {
                closed = Some(now - t0);
                break;
            }
        }
        let closed = closed.unwrap();
        assert!(
            closed >= Duration::from_secs(5) && closed < Duration::from_millis(5100),
            "{closed:?}"
        );
    }

    #[test]
    fn bucket_forgives_after_a_calm_second() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(20, 2, Duration::from_secs(5), t0);
        assert_eq!(r.check(t0), Rate::Pass);
        assert_eq!(r.check(t0), Rate::Pass);
        assert_eq!(r.check(t0), Rate::Drop { first: true });
        let later = t0 + Duration::from_secs(2);
        assert_eq!(r.check(later), Rate::Pass);
        assert_eq!(r.check(later), Rate::Pass);
        assert_eq!(r.check(later), Rate::Drop { first: true }, "a new stretch");
        // Sustained rate is never dropped.
        let mut r = RateLimit::new(20, 50, Duration::from_secs(5), t0);
        for i in 0..2000u64 {
            assert_eq!(r.check(t0 + Duration::from_millis(i * 50)), Rate::Pass);
        }
    }

    #[test]
    fn failed_joins_back_off_then_close() {
        let t0 = Instant::now();
        const FIRST_BACKOFF: Duration = Duration::from_millis(250);
        let mut g = JoinGate::new(5, FIRST_BACKOFF);
        assert_eq!(g.attempt(t0), Attempt::Go);
        let mut now = t0;
        for n in 1..=4u32 {
            g.sent();
            assert_eq!(g.attempt(now), Attempt::Pending);
            assert!(!g.failed(now));
            let wait = FIRST_BACKOFF * (1 << (n - 1));
            assert_eq!(
                g.attempt(now + wait / 2),
                Attempt::TooSoon {
                    retry_after: wait - wait / 2
                }
            );
            now += wait;
            assert_eq!(g.attempt(now), Attempt::Go);
        }
        assert!(g.failed(now), "the fifth failure closes");
        let mut g = JoinGate::new(5, FIRST_BACKOFF);
        g.admit();
        assert!(!g.failed(t0));
        assert_eq!(g.attempt(t0), Attempt::Go);
    }

    #[test]
    fn byte_bound_queue() {
        let (tx, mut rx) = out_queue::<u8>(10, 100);
        assert_eq!(tx.send(1, 200), Ok(()), "alone, a big item goes");
        assert_eq!(tx.send(2, 1), Err(Unsent::Full));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(rx.recv()), Some(1));
        assert_eq!(tx.send(3, 60), Ok(()));
        assert_eq!(tx.send(4, 40), Ok(()));
        assert_eq!(tx.send(5, 1), Err(Unsent::Full));
        drop(rx);
        assert_eq!(tx.send(6, 1000), Err(Unsent::Closed));
    }

    #[test]
    fn pre_join_reads_stop_at_the_budget() {
        use tokio::io::AsyncReadExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let data = [7u8; 100];
            let mut r = PreJoin::new(&data[..], Some(30));
            let mut buf = [0u8; 64];
            let n = r.read(&mut buf).await.unwrap();
            assert_eq!(n, 30);
            assert!(r.read(&mut buf).await.is_err());
            r.frame_read();
            assert_eq!(r.read(&mut buf).await.unwrap(), 30);
            r.lift();
            assert_eq!(r.read(&mut buf).await.unwrap(), 40);
        });
    }
}
