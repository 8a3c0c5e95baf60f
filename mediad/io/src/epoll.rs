//! The epoll backend: level-triggered epoll on the socket and the waker's
//! eventfd, `recvmmsg` batches into preallocated buffers, `sendmmsg`
//! batches straight from the [`TxQueue`] buffers. ICE-TCP connections
//! (see [`crate::tcp`]) are in the same epoll set, level-triggered.

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::sys::{self, RawAddr, decode_addr};
use crate::tcp::{PollOp, TcpServer};
use crate::{
    Handler, IoError, IoStats, IoStatsSnapshot, MAX_DATAGRAM, TX_FLUSH_AT, TX_QUEUE_CAPACITY,
    TxQueue, Waker,
};

/// Datagrams per `recvmmsg` / `sendmmsg` call.
const BATCH: usize = 32;
/// `recvmmsg` calls per pass at most (then the pass handles wake-ups,
/// timeouts and flushes the queue before receiving more).
const RX_CALLS_PER_PASS: usize = 2;

const TOKEN_SOCKET: u64 = 1;
const TOKEN_WAKER: u64 = 2;
/// Tag of a TCP token (the listener's or a connection's) in an event.
const TAG_TCP: u64 = 3 << 32;
const TAG_MASK: u64 = !0xffff_ffff;

/// Apply the TCP side's readiness changes to the epoll set.
fn apply_ops(ep: &OwnedFd, tcp: &mut Option<TcpServer>) {
    let Some(tcp) = tcp else {
        return;
    };
    tcp.drain_ops(|op| {
        let (fd, token, events, ctl) = match op {
            PollOp::Read { fd, token } => (fd, token, libc::EPOLLIN, libc::EPOLL_CTL_ADD),
            PollOp::Write { fd, token, on } => (
                fd,
                token,
                if on {
                    libc::EPOLLIN | libc::EPOLLOUT
                } else {
                    libc::EPOLLIN
                },
                libc::EPOLL_CTL_MOD,
            ),
            PollOp::Listen { fd, on } => (
                fd,
                crate::tcp::LISTEN_TOKEN,
                if on { libc::EPOLLIN } else { 0 },
                libc::EPOLL_CTL_MOD,
            ),
            // Closing the fd took it out of the set.
            PollOp::Remove { .. } => return,
        };
        if let Err(e) = epoll_ctl(ep, ctl, fd, events as u32, TAG_TCP | u64::from(token)) {
            tracing::debug!(error = %e, "epoll_ctl (tcp) failed");
        }
    });
}

/// Send what is queued: TCP transmits onto their connections, the rest
/// in `sendmmsg` batches.
fn flush(
    txb: &mut TxBatch,
    fd: RawFd,
    tcp: &mut Option<TcpServer>,
    tx: &mut TxQueue,
    c: &mut IoStatsSnapshot,
) {
    if let Some(t) = tcp {
        t.absorb(tx, c);
    }
    txb.flush(fd, tx, c);
}

pub(crate) fn run<H: Handler>(
    socket: UdpSocket,
    mut tcp: Option<TcpServer>,
    waker: &Waker,
    handler: &mut H,
    stats: &IoStats,
) -> Result<(), IoError> {
    socket
        .set_nonblocking(true)
        .map_err(|e| IoError::sys("set_nonblocking", e))?;
    let fd = socket.as_raw_fd();
    let ep = epoll_create()?;
    epoll_add(&ep, fd, TOKEN_SOCKET)?;
    epoll_add(&ep, waker.raw_fd(), TOKEN_WAKER)?;
    apply_ops(&ep, &mut tcp);

    let mut rx = RxBatch::new();
    let mut txb = TxBatch::new(socket.local_addr().is_ok_and(|a| a.is_ipv6()));
    let mut tx = TxQueue::with_capacity(TX_QUEUE_CAPACITY);
    let mut c = IoStatsSnapshot::default();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    let mut more_rx = false;

    loop {
        if handler.should_stop() {
            stats.publish(&c);
            return Ok(());
        }
        let tcp_work = tcp.as_ref().is_some_and(TcpServer::has_work);
        let timeout_ms = if more_rx || tcp_work {
            0
        } else {
            let now = Instant::now();
            let tcp_due = tcp
                .as_ref()
                .and_then(TcpServer::poll_timeout)
                .map(|t| t.saturating_duration_since(now));
            let due = match (crate::until_deadline(handler, now), tcp_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match due {
                None => -1,
                // Round up: waking early would spin until the deadline.
                Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
            }
        };
        let n = epoll_wait(&ep, &mut events, timeout_ms)?;
        let now = Instant::now();
        c.passes += 1;

        let mut sock_ready = more_rx;
        let mut woke = false;
        for ev in &events[..n] {
            match ev.u64 {
                TOKEN_SOCKET => sock_ready = true,
                TOKEN_WAKER => woke = true,
                _ => {}
            }
        }

        // 1. Datagrams.
        more_rx = false;
        if sock_ready {
            for _ in 0..RX_CALLS_PER_PASS {
                let got = rx.recv(fd, handler, now, &mut tx, &mut txb, &mut tcp, &mut c);
                more_rx = got == BATCH;
                if !more_rx {
                    break;
                }
            }
        }
        // 1b. TCP: what was left last pass, then what is ready now.
        if let Some(t) = tcp.as_mut() {
            t.on_ready(handler, now, &mut tx, &mut c);
            for ev in &events[..n] {
                if ev.u64 & TAG_MASK != TAG_TCP {
                    continue;
                }
                let token = ev.u64 as u32;
                let flags = ev.events;
                if token == crate::tcp::LISTEN_TOKEN {
                    t.on_listen(now, &mut c);
                    continue;
                }
                if flags & libc::EPOLLOUT as u32 != 0 {
                    t.on_writable(token, &mut c);
                }
                if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    t.on_readable(token, handler, now, &mut tx, &mut c);
                }
            }
            t.end_pass();
        }
        apply_ops(&ep, &mut tcp);
        // 2. Wake-ups.
        if woke {
            sys::eventfd_drain(waker.raw_fd());
            c.wakes += 1;
            handler.handle_wake(now, &mut tx);
        }
        // 3. Deadline.
        if handler.poll_timeout().is_some_and(|d| d <= now) {
            handler.handle_timeout(now, &mut tx);
        }
        if let Some(t) = tcp.as_mut() {
            t.handle_timeout(now, &mut c);
        }
        // 4. Send.
        flush(&mut txb, fd, &mut tcp, &mut tx, &mut c);
        apply_ops(&ep, &mut tcp);
        c.tx_queue_full = tx.dropped_full;
        stats.publish(&c);
    }
}

fn epoll_create() -> Result<OwnedFd, IoError> {
    // SAFETY: plain system call with a constant flag.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(IoError::last_os("epoll_create1"));
    }
    // SAFETY: `fd` was just returned to us and has no other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_add(ep: &OwnedFd, fd: RawFd, token: u64) -> Result<(), IoError> {
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, token)
        .map_err(|e| IoError::sys("epoll_ctl", e))
}

fn epoll_ctl(ep: &OwnedFd, op: i32, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live local the kernel only reads; a closed or
    // foreign `fd` makes the call fail, nothing else.
    let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &raw mut ev) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn epoll_wait(
    ep: &OwnedFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> Result<usize, IoError> {
    let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: the kernel writes at most `max` events into `events`.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
    if n < 0 {
        if sys::errno() == libc::EINTR {
            return Ok(0);
        }
        return Err(IoError::last_os("epoll_wait"));
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Receive buffers and headers for one `recvmmsg`, allocated once.
struct RxBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    names: Box<[RawAddr]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl RxBatch {
    fn new() -> Self {
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Self {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH].into_boxed_slice(),
            names: vec![RawAddr::ZERO; BATCH].into_boxed_slice(),
            iovs: vec![iov; BATCH].into_boxed_slice(),
            hdrs: vec![sys::zeroed_mmsghdr(); BATCH].into_boxed_slice(),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the loop's state, passed down")]
    /// One `recvmmsg`; hands each datagram to the handler. Returns the
    /// number of datagrams received (0 on would-block or error).
    fn recv<H: Handler>(
        &mut self,
        fd: RawFd,
        handler: &mut H,
        now: Instant,
        tx: &mut TxQueue,
        txb: &mut TxBatch,
        tcp: &mut Option<TcpServer>,
        c: &mut IoStatsSnapshot,
    ) -> usize {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = self.names[i].0.as_mut_ptr().cast();
            h.msg_namelen = sys::SOCKADDR_LEN as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let n = recvmmsg(fd, &mut self.hdrs);
        let n = match n {
            Ok(n) => n,
            Err(errno) => {
                if errno != libc::EAGAIN
                    && errno != libc::EINTR
                    && !crate::is_ignored_send_error(errno)
                {
                    c.rx_errors += 1;
                    tracing::debug!(errno, "recvmmsg failed");
                }
                return 0;
            }
        };
        for i in 0..n {
            let h = &self.hdrs[i];
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                c.rx_truncated += 1;
                continue;
            }
            let len = (h.msg_len as usize).min(MAX_DATAGRAM);
            let namelen = (h.msg_hdr.msg_namelen as usize).min(sys::SOCKADDR_LEN);
            let Some(src) = decode_addr(&self.names[i].0[..namelen]) else {
                c.rx_errors += 1;
                continue;
            };
            c.rx_datagrams += 1;
            c.rx_bytes += len as u64;
            if tx.len() >= TX_FLUSH_AT {
                flush(txb, fd, tcp, tx, c);
            }
            handler.handle_datagram(src, &mut self.bufs[i][..len], now, tx);
        }
        n
    }
}

/// `recvmmsg` into the prepared headers; `Err(errno)` on failure.
fn recvmmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> Result<usize, i32> {
    let vlen = u32::try_from(hdrs.len()).unwrap_or(u32::MAX);
    // SAFETY: every header points at live buffers/names/iovecs owned by the
    // RxBatch that also owns `hdrs`, with lengths matching their sizes;
    // MSG_DONTWAIT so the call never blocks.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        Err(sys::errno())
    } else {
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// Headers for one `sendmmsg`, allocated once.
struct TxBatch {
    /// The socket is IPv6 (IPv4 destinations are written v4-mapped).
    v6: bool,
    names: Box<[RawAddr]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

impl TxBatch {
    fn new(v6: bool) -> Self {
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Self {
            v6,
            names: vec![RawAddr::ZERO; BATCH].into_boxed_slice(),
            iovs: vec![iov; BATCH].into_boxed_slice(),
            hdrs: vec![sys::zeroed_mmsghdr(); BATCH].into_boxed_slice(),
        }
    }

    /// Send everything queued, `BATCH` at a time, and empty the queue.
    fn flush(&mut self, fd: RawFd, tx: &mut TxQueue, c: &mut IoStatsSnapshot) {
        let mut done = 0;
        let mut again = 0;
        let total = tx.len();
        while done < total {
            let chunk = &tx.queued()[done..total.min(done + BATCH)];
            for (i, t) in chunk.iter().enumerate() {
                let namelen = self.names[i].encode(&t.dst, self.v6);
                self.iovs[i] = libc::iovec {
                    // The kernel only reads through this pointer.
                    iov_base: t.buf.as_ptr().cast_mut().cast(),
                    iov_len: t.len,
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = self.names[i].0.as_mut_ptr().cast();
                h.msg_namelen = namelen;
                h.msg_iov = &raw mut self.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                self.hdrs[i].msg_len = 0;
            }
            match sendmmsg(fd, &mut self.hdrs[..chunk.len()]) {
                Ok(n) if n > 0 => {
                    for t in &chunk[..n.min(chunk.len())] {
                        c.tx_datagrams += 1;
                        c.tx_bytes += t.len as u64;
                    }
                    done += n;
                    again = 0;
                }
                Ok(_) | Err(libc::EAGAIN | libc::ENOBUFS) => {
                    // Socket buffer full: wait a little for room, a bounded
                    // number of times, then drop what is left.
                    again += 1;
                    if again > 3 {
                        let left = (total - done) as u64;
                        c.tx_errors += left;
                        tracing::debug!(dropped = left, "send buffer full, dropping");
                        break;
                    }
                    sys::wait_writable(fd, 5);
                }
                Err(libc::EINTR) => {}
                Err(errno) => {
                    // The first datagram of the chunk failed: skip it.
                    if !crate::is_ignored_send_error(errno) {
                        c.tx_errors += 1;
                        tracing::debug!(errno, "sendmmsg failed");
                    }
                    done += 1;
                }
            }
        }
        tx.drain(|_| {});
    }
}

/// `sendmmsg` of the prepared headers; `Err(errno)` on failure.
fn sendmmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> Result<usize, i32> {
    let vlen = u32::try_from(hdrs.len()).unwrap_or(u32::MAX);
    // SAFETY: every header points at a live name, iovec and TxQueue buffer
    // (not released until after this call returns), with matching lengths.
    let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), vlen, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(sys::errno())
    } else {
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
