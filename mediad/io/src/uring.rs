//! The io_uring backend.
//!
//! - Receive: ONE multishot `RecvMsgMulti` on a provided-buffer ring of
//!   [`NBUF`] × [`BUF_SIZE`] bytes, re-armed only when the kernel ends it
//!   (e.g. `ENOBUFS` when every buffer is out). Each completion names a
//!   buffer; [`RecvMsgOut`] locates the source address and payload inside
//!   it, the payload is lent in place to the handler as `&mut [u8]` (the
//!   kernel does not touch a buffer between handing it to us and our
//!   putting it back in the ring), then the buffer goes back to the ring.
//! - Wake-ups: a multishot `PollAdd` on the waker's eventfd.
//! - Deadlines: the wait itself (`submit_with_args` + `SubmitArgs::timespec`).
//! - Send: one `SendMsg` per queued datagram, from preallocated
//!   msghdr/iovec/sockaddr slots, then `submit_and_wait`; the [`TxQueue`]
//!   buffers are released only once every send has completed. Receive
//!   completions that arrive meanwhile are kept (in a preallocated list) for
//!   the next pass, so the handler sees events in the contract's order.
//!
//! - ICE-TCP (see [`crate::tcp`]): a multishot `PollAdd` (POLLIN) on the
//!   listener and on each connection, a one-shot `PollAdd` (POLLOUT) while
//!   a connection has bytes the socket did not take; the reads, writes and
//!   accepts themselves are plain non-blocking calls, shared with epoll.
//!   A closed connection's polls are cancelled by user data; completions
//!   of a connection that has gone are recognised by its generation.
//!
//! All memory the kernel may write (buffer pool, buffer ring, recv msghdr)
//! is owned by [`Driver`]; on exit the armed requests are cancelled and
//! their final completions awaited before that memory is freed (if that
//! cannot be confirmed, the memory is leaked rather than freed).

use std::collections::VecDeque;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::sys::{self, RawAddr, decode_addr};
use crate::tcp::{PollOp, TcpServer};
use crate::{
    Handler, IoError, IoStats, IoStatsSnapshot, MAX_DATAGRAM, TX_FLUSH_AT, TX_QUEUE_CAPACITY,
    TxQueue, Waker,
};

/// Provided receive buffers.
const NBUF: u16 = 512;
/// Size of one provided buffer: the `io_uring_recvmsg_out` header, the
/// source address and up to ~2 KB of payload (so a datagram a little larger
/// than [`MAX_DATAGRAM`] is still seen whole, and dropped as oversized).
const BUF_SIZE: usize = 2048;
/// Buffer group id of the ring.
const BGID: u16 = 0;
const SQ_ENTRIES: u32 = 1024;
const CQ_ENTRIES: u32 = 8192;
/// Sends in flight at once.
const SEND_SLOTS: usize = 512;
/// Receive completions handled per pass before the queue is flushed.
const RX_BUDGET: usize = 128;

const UD_RECV: u64 = 1 << 32;
const UD_WAKE: u64 = 2 << 32;
const UD_CANCEL: u64 = 3 << 32;
const UD_SEND: u64 = 4 << 32;
const UD_TCP_READ: u64 = 5 << 32;
const UD_TCP_WRITE: u64 = 6 << 32;
const UD_TAG: u64 = !0xffff_ffff;

/// Name of an io_uring failure for [`IoError::UringUnavailable`].
fn unavailable(reason: impl Into<String>) -> IoError {
    IoError::UringUnavailable {
        reason: reason.into(),
    }
}

pub(crate) fn probe() -> Result<(), IoError> {
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let mut it = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = it.next().unwrap_or(0);
        if major < 6 {
            return Err(unavailable(format!(
                "kernel {} is older than 6.0 (no multishot recvmsg)",
                release.trim()
            )));
        }
    }
    let ring = IoUring::new(8).map_err(|e| unavailable(format!("io_uring_setup: {e}")))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(unavailable("kernel lacks IORING_FEAT_EXT_ARG"));
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| unavailable(format!("io_uring_register(PROBE): {e}")))?;
    for (code, name) in [
        (opcode::RecvMsgMulti::CODE, "RECVMSG"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(unavailable(format!("opcode {name} not supported")));
        }
    }
    let bufs = BufRing::new(1, 64)?;
    bufs.register(&ring)
        .map_err(|e| unavailable(format!("register_buf_ring: {e}")))?;
    let _ = ring.submitter().unregister_buf_ring(BGID);
    drop(ring);
    drop(bufs);
    Ok(())
}

/// Anonymous, page-aligned memory that the kernel may read or write.
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    /// Set when the kernel might still write to it: never unmapped then.
    leak: bool,
}

impl Mmap {
    fn new(len: usize) -> Result<Self, IoError> {
        // SAFETY: anonymous private mapping at a kernel-chosen address; no
        // existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(IoError::last_os("mmap"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| IoError::last_os("mmap"))?;
        Ok(Self {
            ptr,
            len,
            leak: false,
        })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if !self.leak {
            // SAFETY: unmaps exactly the mapping created in `new`, which no
            // reference outlives (every borrow of it is tied to `&self`).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// The provided-buffer ring: `entries` ring slots (shared with the kernel)
/// and a pool of `entries` buffers of `size` bytes.
struct BufRing {
    ring: Mmap,
    pool: Mmap,
    entries: u16,
    size: usize,
    /// Our copy of the ring tail (published with [`BufRing::publish`]).
    tail: u16,
}

impl BufRing {
    fn new(entries: u16, size: usize) -> Result<Self, IoError> {
        let ring = Mmap::new(usize::from(entries) * std::mem::size_of::<BufRingEntry>())?;
        let pool = Mmap::new(usize::from(entries) * size)?;
        let mut r = Self {
            ring,
            pool,
            entries,
            size,
            tail: 0,
        };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    fn register(&self, ring: &IoUring) -> std::io::Result<()> {
        // SAFETY: the ring memory is a live, page-aligned mapping of
        // `entries` entries; it stays mapped until after the ring is
        // unregistered or destroyed (Driver drops the IoUring first, and
        // leaks this memory if in-flight requests could not be confirmed
        // finished).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                self.ring.ptr.as_ptr() as u64,
                self.entries,
                BGID,
                0,
            )
        }
    }

    /// Put buffer `bid` back at our tail (visible to the kernel after
    /// [`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        if bid >= self.entries {
            return;
        }
        let idx = usize::from(self.tail & (self.entries - 1));
        let addr = self.pool.ptr.as_ptr() as u64 + u64::from(bid) * self.size as u64;
        let len = u32::try_from(self.size).unwrap_or(u32::MAX);
        let entry = self.entry_mut(idx);
        entry.set_addr(addr);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn entry_mut(&mut self, idx: usize) -> &mut BufRingEntry {
        debug_assert!(idx < usize::from(self.entries));
        // SAFETY: idx < entries, so the entry lies inside the mapping. The
        // kernel only reads entries between its head and our published
        // tail; `idx` is at our unpublished tail, so nobody else accesses
        // its addr/len/bid now (the tail field shared with entry 0 is not
        // touched through this reference).
        unsafe { &mut *self.ring.ptr.as_ptr().cast::<BufRingEntry>().add(idx) }
    }

    /// Make every pushed buffer visible to the kernel.
    fn publish(&self) {
        let base = self.ring.ptr.as_ptr().cast::<BufRingEntry>().cast_const();
        // SAFETY: `base` is the first entry of a live, initialised ring, as
        // `BufRingEntry::tail` requires.
        let tail = unsafe { BufRingEntry::tail(base) };
        // SAFETY: the tail is a naturally aligned u16 inside the mapping,
        // shared with the kernel, which reads it atomically; the Release
        // store orders our entry writes before it.
        let tail = unsafe { AtomicU16::from_ptr(tail.cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Buffer `bid`, `len` bytes long, lent by the kernel in a completion.
    ///
    /// # Safety
    ///
    /// The kernel must have handed `bid` to us (a completion carrying it)
    /// and it must not have been pushed back yet; at most one slice per
    /// buffer may be alive.
    unsafe fn buffer_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let bid = usize::from(bid.min(self.entries - 1));
        let len = len.min(self.size);
        // SAFETY: the range lies inside the pool mapping; per the caller's
        // contract the kernel does not access this buffer until it is pushed
        // back, and no other slice of it exists (`&mut self` is held).
        unsafe { std::slice::from_raw_parts_mut(self.pool.ptr.as_ptr().add(bid * self.size), len) }
    }
}

/// Preallocated msghdr/iovec/sockaddr slots for in-flight sends.
struct SendSlots {
    /// The socket is IPv6 (IPv4 destinations are written v4-mapped).
    v6: bool,
    names: Box<[RawAddr]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::msghdr]>,
    /// Length of the datagram in each slot (for the byte counter).
    lens: Box<[usize]>,
}

impl SendSlots {
    fn new(v6: bool) -> Self {
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Self {
            v6,
            names: vec![RawAddr::ZERO; SEND_SLOTS].into_boxed_slice(),
            iovs: vec![iov; SEND_SLOTS].into_boxed_slice(),
            hdrs: vec![sys::zeroed_msghdr(); SEND_SLOTS].into_boxed_slice(),
            lens: vec![0; SEND_SLOTS].into_boxed_slice(),
        }
    }

    /// Fill slot `i` for `t` and return its msghdr pointer.
    fn fill(&mut self, i: usize, t: &crate::Transmit) -> *const libc::msghdr {
        let namelen = self.names[i].encode(&t.dst, self.v6);
        self.iovs[i] = libc::iovec {
            // The kernel only reads through this pointer.
            iov_base: t.buf.as_ptr().cast_mut().cast(),
            iov_len: t.len,
        };
        self.lens[i] = t.len;
        let h = &mut self.hdrs[i];
        *h = sys::zeroed_msghdr();
        h.msg_name = self.names[i].0.as_mut_ptr().cast();
        h.msg_namelen = namelen;
        h.msg_iov = &raw mut self.iovs[i];
        h.msg_iovlen = 1;
        &raw const self.hdrs[i]
    }
}

/// One completion, copied out of the ring.
#[derive(Clone, Copy)]
struct Cqe {
    user_data: u64,
    result: i32,
    flags: u32,
}

struct Driver {
    // Field order matters: the ring is dropped (closed) before the memory
    // it may write into.
    ring: IoUring,
    bufs: BufRing,
    recv_hdr: Box<libc::msghdr>,
    send: SendSlots,
    /// Completions seen while waiting for sends, handled next pass.
    deferred: VecDeque<Cqe>,
    fd: RawFd,
    wake_fd: RawFd,
    recv_armed: bool,
    wake_armed: bool,
    shut_down: bool,
}

impl Drop for Driver {
    /// Also on unwinding out of a handler: the kernel must be done with
    /// our memory before it is freed.
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn run<H: Handler>(
    socket: UdpSocket,
    mut tcp: Option<TcpServer>,
    waker: &Waker,
    handler: &mut H,
    stats: &IoStats,
) -> Result<(), IoError> {
    // A blocking socket lets the kernel park sends and receives on its
    // internal poll instead of failing them with EAGAIN; io_uring never
    // blocks this thread for it.
    socket
        .set_nonblocking(false)
        .map_err(|e| IoError::sys("set_nonblocking", e))?;
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    let mut d = Driver::new(socket.as_raw_fd(), waker.raw_fd(), v6)?;
    let mut tx = TxQueue::with_capacity(TX_QUEUE_CAPACITY);
    let mut c = IoStatsSnapshot::default();
    let result = d.run_loop(handler, &mut tcp, &mut tx, &mut c, stats);
    stats.publish(&c);
    drop(d); // cancels the armed requests (see `Driver::shutdown`)
    drop(socket);
    result
}

fn new_ring() -> Result<IoUring, IoError> {
    let tuned = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(SQ_ENTRIES);
    match tuned {
        Ok(r) => Ok(r),
        // Older kernels reject the optimisation flags: retry plainly.
        Err(_) => IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)
            .map_err(|e| unavailable(format!("io_uring_setup: {e}"))),
    }
}

impl Driver {
    fn new(fd: RawFd, wake_fd: RawFd, v6: bool) -> Result<Self, IoError> {
        let ring = new_ring()?;
        let bufs = BufRing::new(NBUF, BUF_SIZE)?;
        bufs.register(&ring)
            .map_err(|e| unavailable(format!("register_buf_ring: {e}")))?;
        let mut recv_hdr = Box::new(sys::zeroed_msghdr());
        // Only the name and control lengths matter for multishot recvmsg.
        recv_hdr.msg_namelen = sys::SOCKADDR_LEN as libc::socklen_t;
        recv_hdr.msg_controllen = 0;
        let mut d = Self {
            ring,
            bufs,
            recv_hdr,
            send: SendSlots::new(v6),
            deferred: VecDeque::with_capacity(usize::from(NBUF) * 2),
            fd,
            wake_fd,
            recv_armed: false,
            wake_armed: false,
            shut_down: false,
        };
        d.arm_recv();
        d.arm_wake();
        Ok(d)
    }

    /// Push one SQE, submitting first if the queue is full. False if the
    /// queue stayed full (the kernel refusing submissions); the caller
    /// then treats the operation as not started.
    fn push(&mut self, e: &squeue::Entry) -> bool {
        for _ in 0..16 {
            // SAFETY: every entry built by this driver points only at memory
            // the Driver owns (recv msghdr, send slots, buffer ring) or at
            // TxQueue buffers that are kept until the entry completes.
            let pushed = unsafe { self.ring.submission().push(e) };
            if pushed.is_ok() {
                return true;
            }
            if let Err(err) = self.ring.submit() {
                tracing::debug!(error = %err, "io_uring submit failed");
            }
        }
        false
    }

    fn arm_recv(&mut self) {
        let e = opcode::RecvMsgMulti::new(types::Fd(self.fd), &raw const *self.recv_hdr, BGID)
            .build()
            .user_data(UD_RECV);
        self.recv_armed = self.push(&e);
    }

    fn arm_wake(&mut self) {
        let e = opcode::PollAdd::new(types::Fd(self.wake_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UD_WAKE);
        self.wake_armed = self.push(&e);
    }

    /// Turn the TCP side's readiness changes into polls and cancels.
    fn apply_tcp_ops(&mut self, tcp: &mut Option<TcpServer>) {
        let Some(t) = tcp.as_mut() else {
            return;
        };
        let mut ops = [None; 16];
        loop {
            let mut n = 0;
            t.drain_ops_into(&mut ops, &mut n);
            if n == 0 {
                return;
            }
            for op in ops.iter_mut().take(n).filter_map(Option::take) {
                let e = match op {
                    PollOp::Read { fd, token } => {
                        opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                            .multi(true)
                            .build()
                            .user_data(UD_TCP_READ | u64::from(token))
                    }
                    PollOp::Write { fd, token, on } => {
                        if !on {
                            continue; // one-shot: it lapses by itself
                        }
                        opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
                            .build()
                            .user_data(UD_TCP_WRITE | u64::from(token))
                    }
                    PollOp::Listen { fd, on: true } => {
                        opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
                            .multi(true)
                            .build()
                            .user_data(UD_TCP_READ | u64::from(crate::tcp::LISTEN_TOKEN))
                    }
                    PollOp::Listen { on: false, .. } => {
                        let e = opcode::AsyncCancel::new(
                            UD_TCP_READ | u64::from(crate::tcp::LISTEN_TOKEN),
                        )
                        .build()
                        .user_data(UD_CANCEL);
                        self.push(&e);
                        continue;
                    }
                    PollOp::Remove { token } => {
                        for tag in [UD_TCP_READ, UD_TCP_WRITE] {
                            let e = opcode::AsyncCancel::new(tag | u64::from(token))
                                .build()
                                .user_data(UD_CANCEL);
                            self.push(&e);
                        }
                        continue;
                    }
                };
                if !self.push(&e) {
                    tracing::debug!("io_uring queue full: a tcp poll was not armed");
                }
            }
        }
    }

    fn pop(&mut self) -> Option<Cqe> {
        self.ring.completion().next().map(|e| Cqe {
            user_data: e.user_data(),
            result: e.result(),
            flags: e.flags(),
        })
    }

    /// Submit pending SQEs and wait for at least one completion, at most
    /// `timeout` (`None`: no limit).
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), IoError> {
        let r = match timeout {
            Some(t) => {
                let ts = Timespec::from(t);
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(IoError::sys("io_uring_enter", e)),
            },
        }
    }

    fn run_loop<H: Handler>(
        &mut self,
        handler: &mut H,
        tcp: &mut Option<TcpServer>,
        tx: &mut TxQueue,
        c: &mut IoStatsSnapshot,
        stats: &IoStats,
    ) -> Result<(), IoError> {
        loop {
            if handler.should_stop() {
                return Ok(());
            }
            self.apply_tcp_ops(tcp);
            // 5. (of the previous pass) Sleep until an event or the deadline.
            let tcp_work = tcp.as_ref().is_some_and(TcpServer::has_work);
            if self.deferred.is_empty() && self.ring.completion().is_empty() && !tcp_work {
                let now = Instant::now();
                let tcp_due = tcp
                    .as_ref()
                    .and_then(TcpServer::poll_timeout)
                    .map(|t| t.saturating_duration_since(now));
                let timeout = match (crate::until_deadline(handler, now), tcp_due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.wait(timeout)?;
            } else if !self.ring.submission().is_empty() {
                let _ = self.ring.submit();
            }
            let now = Instant::now();
            c.passes += 1;

            // 1. Datagrams (and note wake-ups and stray completions).
            let mut woke = false;
            let mut handled = 0;
            if let Some(t) = tcp.as_mut() {
                t.on_ready(handler, now, tx, c);
            }
            // Completions deferred while sending come first, in order.
            while handled < RX_BUDGET {
                if tx.len() >= TX_FLUSH_AT {
                    // May defer more completions (they queue behind).
                    self.flush(tx, tcp, c);
                }
                let Some(cqe) = self.deferred.pop_front().or_else(|| self.pop()) else {
                    break;
                };
                self.dispatch(cqe, handler, tcp, now, tx, c, &mut woke);
                handled += 1;
            }
            self.bufs.publish();
            if let Some(t) = tcp.as_mut() {
                t.end_pass();
            }
            // 2. Wake-ups.
            if woke {
                sys::eventfd_drain(self.wake_fd);
                c.wakes += 1;
                handler.handle_wake(now, tx);
            }
            // 3. Deadline.
            if handler.poll_timeout().is_some_and(|d| d <= now) {
                handler.handle_timeout(now, tx);
            }
            if let Some(t) = tcp.as_mut() {
                t.handle_timeout(now, c);
            }
            // 4. Send.
            self.flush(tx, tcp, c);
            c.tx_queue_full = tx.dropped_full;
            if !self.recv_armed {
                c.rx_rearms += 1;
                self.arm_recv();
            }
            if !self.wake_armed {
                self.arm_wake();
            }
            stats.publish(c);
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the loop's state, passed down")]
    fn dispatch<H: Handler>(
        &mut self,
        cqe: Cqe,
        handler: &mut H,
        tcp: &mut Option<TcpServer>,
        now: Instant,
        tx: &mut TxQueue,
        c: &mut IoStatsSnapshot,
        woke: &mut bool,
    ) {
        match cqe.user_data & UD_TAG {
            UD_RECV => self.on_recv(cqe, handler, now, tx, c),
            UD_WAKE => {
                *woke = true;
                if !cqueue::more(cqe.flags) {
                    self.wake_armed = false;
                }
            }
            UD_SEND => self.on_send(cqe, c),
            UD_TCP_READ | UD_TCP_WRITE => {
                let Some(t) = tcp.as_mut() else {
                    return;
                };
                let token = cqe.user_data as u32;
                if cqe.result == -libc::ECANCELED {
                    return;
                }
                if cqe.user_data & UD_TAG == UD_TCP_WRITE {
                    t.on_writable(token, c);
                } else {
                    if !cqueue::more(cqe.flags) {
                        // The multishot poll ended: arm it again if live.
                        t.rearm_read(token);
                    }
                    if token == crate::tcp::LISTEN_TOKEN {
                        t.on_listen(now, c);
                    } else {
                        t.on_readable(token, handler, now, tx, c);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_recv<H: Handler>(
        &mut self,
        cqe: Cqe,
        handler: &mut H,
        now: Instant,
        tx: &mut TxQueue,
        c: &mut IoStatsSnapshot,
    ) {
        if !cqueue::more(cqe.flags) {
            // The kernel ended the multishot receive (ENOBUFS when every
            // buffer was out, or an error): re-armed at the end of the pass.
            self.recv_armed = false;
        }
        let Some(bid) = cqueue::buffer_select(cqe.flags) else {
            if cqe.result < 0 && cqe.result != -libc::ENOBUFS {
                c.rx_errors += 1;
                tracing::debug!(errno = -cqe.result, "multishot recvmsg ended");
            }
            return;
        };
        if cqe.result >= 0 {
            let len = usize::try_from(cqe.result).unwrap_or(0);
            // SAFETY: this completion handed `bid` to us; it goes back to
            // the ring only below, after the last use of `buf`.
            let buf = unsafe { self.bufs.buffer_mut(bid, len) };
            deliver(buf, &self.recv_hdr, handler, now, tx, c);
        } else {
            c.rx_errors += 1;
        }
        self.bufs.push(bid);
    }

    fn on_send(&mut self, cqe: Cqe, c: &mut IoStatsSnapshot) {
        if cqe.result >= 0 {
            c.tx_datagrams += 1;
            c.tx_bytes += u64::try_from(cqe.result).unwrap_or(0);
        } else if !crate::is_ignored_send_error(-cqe.result) {
            c.tx_errors += 1;
            tracing::debug!(errno = -cqe.result, "sendmsg failed");
        }
    }

    /// Send everything queued, [`SEND_SLOTS`] at a time, waiting for every
    /// completion before releasing the buffers.
    fn flush(&mut self, tx: &mut TxQueue, tcp: &mut Option<TcpServer>, c: &mut IoStatsSnapshot) {
        if let Some(t) = tcp.as_mut() {
            t.absorb(tx, c);
        }
        let total = tx.len();
        let mut done = 0;
        while done < total {
            let n = SEND_SLOTS.min(total - done);
            let mut inflight = 0;
            for i in 0..n {
                let hdr = self.send.fill(i, &tx.queued()[done + i]);
                let e = opcode::SendMsg::new(types::Fd(self.fd), hdr)
                    .build()
                    .user_data(UD_SEND | i as u64);
                if self.push(&e) {
                    inflight += 1;
                } else {
                    c.tx_errors += 1;
                }
            }
            while inflight > 0 {
                if let Err(e) = self.ring.submitter().submit_and_wait(inflight) {
                    match e.raw_os_error() {
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                        _ => tracing::debug!(error = %e, "io_uring_enter (send) failed"),
                    }
                }
                while let Some(cqe) = self.pop() {
                    if cqe.user_data & UD_TAG == UD_SEND {
                        self.on_send(cqe, c);
                        inflight -= 1;
                    } else {
                        self.deferred.push_back(cqe);
                    }
                }
            }
            done += n;
        }
        tx.drain(|_| {});
    }

    /// Cancel the armed requests and wait (bounded) for their final
    /// completions, so the kernel no longer refers to our memory.
    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        if self.recv_armed {
            let e = opcode::AsyncCancel::new(UD_RECV)
                .build()
                .user_data(UD_CANCEL);
            self.push(&e);
        }
        if self.wake_armed {
            let e = opcode::AsyncCancel::new(UD_WAKE)
                .build()
                .user_data(UD_CANCEL);
            self.push(&e);
        }
        let give_up = Instant::now() + Duration::from_secs(2);
        while (self.recv_armed || self.wake_armed) && Instant::now() < give_up {
            let _ = self.wait(Some(Duration::from_millis(100)));
            while let Some(cqe) = self.pop() {
                let tag = cqe.user_data & UD_TAG;
                let last = !cqueue::more(cqe.flags);
                if tag == UD_RECV {
                    if let Some(bid) = cqueue::buffer_select(cqe.flags) {
                        self.bufs.push(bid);
                    }
                    if last {
                        self.recv_armed = false;
                    }
                } else if tag == UD_WAKE && last {
                    self.wake_armed = false;
                }
            }
        }
        if self.recv_armed || self.wake_armed {
            tracing::warn!("io_uring requests not confirmed cancelled; leaking their buffers");
            self.bufs.ring.leak = true;
            self.bufs.pool.leak = true;
            // The recv msghdr too: the kernel copied it at submission, but
            // be conservative.
            let hdr = std::mem::replace(&mut self.recv_hdr, Box::new(sys::zeroed_msghdr()));
            std::mem::forget(hdr);
        } else {
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
        }
    }
}

/// Parse one received buffer and hand its payload to the handler.
fn deliver<H: Handler>(
    buf: &mut [u8],
    hdr: &libc::msghdr,
    handler: &mut H,
    now: Instant,
    tx: &mut TxQueue,
    c: &mut IoStatsSnapshot,
) {
    let (src, start, len) = {
        let Ok(out) = RecvMsgOut::parse(buf, hdr) else {
            c.rx_errors += 1;
            return;
        };
        if out.is_payload_truncated() || out.incoming_payload_len() as usize > MAX_DATAGRAM {
            c.rx_truncated += 1;
            return;
        }
        let Some(src) = decode_addr(out.name_data()) else {
            c.rx_errors += 1;
            return;
        };
        let payload = out.payload_data();
        let start = payload.as_ptr() as usize - buf.as_ptr() as usize;
        (src, start, payload.len())
    };
    let Some(data) = buf.get_mut(start..start + len) else {
        c.rx_errors += 1;
        return;
    };
    c.rx_datagrams += 1;
    c.rx_bytes += len as u64;
    handler.handle_datagram(src, data, now, tx);
}
