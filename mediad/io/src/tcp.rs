//! ICE-TCP, passive side (RFC 6544): a TCP listener served by the same
//! driver loop as the UDP socket, with RFC 4571 framing (a 16-bit
//! big-endian length before each STUN, DTLS, SRTP or SRTCP packet).
//!
//! **Addresses.** The handler keys transports by source address and says
//! where to send with [`crate::Transmit::dst`]. A TCP connection is given
//! a *stream address*: an IPv6 address in the discard-only prefix
//! `100::/64` (RFC 6666, never a real peer), holding the connection's slot
//! and generation and, for an IPv4 peer, the peer's address; the port is
//! the peer's port. [`is_stream`] tells a stream address from a UDP
//! one, [`stream_peer`] recovers the peer (for XOR-MAPPED-ADDRESS). A
//! transmit to a stream address is framed onto that connection; to a
//! connection that has gone, it is dropped. The handler closes a
//! connection with [`crate::TxQueue::close`].
//!
//! **Bounds** ([`TcpLimits`]): connections in all and per peer IP; a
//! connection that has not been sent anything (the core answers only
//! authenticated STUN, so: that has not sent a valid check) within
//! [`TcpLimits::first_stun_timeout`] is closed, as is one that received
//! nothing for [`TcpLimits::idle_timeout`]; a frame longer than
//! [`MAX_FRAME`] or a zero-length frame closes the connection (counted
//! malformed); each connection's outbound bytes are bounded by
//! [`TcpLimits::out_buffer_bytes`], a frame that does not fit is dropped
//! and counted (TCP is head-of-line blocking: the loop never waits for a
//! slow peer). Reads per connection per pass are bounded; a connection
//! with more to read is served again at the next pass.

use std::collections::HashMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::{Handler, IoError, IoStatsSnapshot, MAX_DATAGRAM, TX_FLUSH_AT, TxQueue};

/// Longest RFC 4571 frame accepted (one datagram's worth).
pub const MAX_FRAME: usize = MAX_DATAGRAM;

/// First 16-bit group of a stream address (`100::/64`, RFC 6666).
const STREAM_PREFIX: u16 = 0x0100;

/// The stream address of connection `slot`/`generation` from `peer`.
pub fn stream_addr(slot: u16, generation: u16, peer: SocketAddr) -> SocketAddr {
    let (hi, lo) = match peer.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
            )
        }
        // An IPv6 peer does not fit: its stream address carries no peer.
        IpAddr::V6(_) => (0, 0),
    };
    let ip = Ipv6Addr::new(STREAM_PREFIX, 0, 0, 0, slot, generation, hi, lo);
    SocketAddr::V6(SocketAddrV6::new(ip, peer.port(), 0, 0))
}

/// Whether `addr` is a stream address (a TCP connection), not a UDP peer.
#[inline]
pub fn is_stream(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(a) => {
            let s = a.ip().segments();
            s[0] == STREAM_PREFIX && s[1] == 0 && s[2] == 0 && s[3] == 0
        }
        SocketAddr::V4(_) => false,
    }
}

/// The peer of a stream address as seen on the wire, for an IPv4 peer;
/// `addr` itself when it is not a stream address. `None` for an IPv6
/// peer's stream address.
pub fn stream_peer(addr: SocketAddr) -> Option<SocketAddr> {
    if !is_stream(&addr) {
        return Some(addr);
    }
    let s = match addr {
        SocketAddr::V6(a) => a.ip().segments(),
        SocketAddr::V4(_) => return Some(addr),
    };
    if s[6] == 0 && s[7] == 0 {
        return None;
    }
    let [a, b] = s[6].to_be_bytes();
    let [c, d] = s[7].to_be_bytes();
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        addr.port(),
    ))
}

/// What the per-IP bound counts a peer by: its IPv4 address, or its IPv6
/// address's /64 (a host picks source addresses in its /64 at will).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Slot and generation of a stream address.
fn stream_id(addr: &SocketAddr) -> Option<(u16, u16)> {
    match addr {
        SocketAddr::V6(a) if is_stream(addr) => {
            let s = a.ip().segments();
            Some((s[4], s[5]))
        }
        _ => None,
    }
}

/// Bounds of the TCP listener of one loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections at most (further ones are accepted and closed at
    /// once, counted refused). At most 65,535.
    pub max_connections: usize,
    /// Open connections per peer IP address (an IPv6 peer: per /64, which
    /// one host may hold whole) at most. Generous: an office behind one
    /// NAT address (the case ICE-TCP is for) opens two or more per
    /// participant.
    pub max_per_ip: usize,
    /// A connection must have sent a valid STUN check (been answered)
    /// within this long of being accepted.
    pub first_stun_timeout: Duration,
    /// A connection that received nothing for this long is closed (above
    /// the 30 s of consent freshness: browsers check every few seconds).
    pub idle_timeout: Duration,
    /// Bytes waiting to be sent per connection at most.
    pub out_buffer_bytes: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_ip: 256,
            first_stun_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(40),
            out_buffer_bytes: 256 << 10,
        }
    }
}

/// A listening socket for a driver loop, with its bounds.
#[derive(Debug)]
pub struct TcpEndpoint {
    /// The non-blocking listener (see [`bind_tcp`]).
    pub listener: TcpListener,
    /// Its bounds.
    pub limits: TcpLimits,
}

/// A non-blocking TCP listener bound to `addr`.
pub fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, IoError> {
    let l: TcpListener = if crate::is_dual_stack(&addr) {
        let s = crate::dual_stack_socket(socket2::Type::STREAM)?;
        s.set_reuse_address(true)
            .map_err(|e| IoError::sys("setsockopt(SO_REUSEADDR)", e))?;
        s.bind(&addr.into())
            .map_err(|e| IoError::sys("bind (tcp)", e))?;
        s.listen(1024).map_err(|e| IoError::sys("listen", e))?;
        s.into()
    } else {
        TcpListener::bind(addr).map_err(|e| IoError::sys("bind (tcp)", e))?
    };
    l.set_nonblocking(true)
        .map_err(|e| IoError::sys("set_nonblocking", e))?;
    Ok(l)
}

/// An RFC 4571 frame that cannot be valid: the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length above [`MAX_FRAME`].
    #[error("frame of {0} bytes is longer than allowed")]
    TooLong(usize),
    /// A zero length (no STUN, DTLS or RTP packet is empty).
    #[error("empty frame")]
    Empty,
}

/// Bytes a [`Deframer`] holds: a few frames' worth.
pub const DEFRAME_BUFFER: usize = 4 * (2 + MAX_FRAME);

/// The receive side of one connection: bytes read from the stream, cut
/// into RFC 4571 frames in place. Allocates once, at creation.
#[derive(Debug)]
pub struct Deframer {
    buf: Box<[u8; DEFRAME_BUFFER]>,
    start: usize,
    end: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    /// An empty deframer.
    pub fn new() -> Self {
        Self {
            buf: Box::new([0; DEFRAME_BUFFER]),
            start: 0,
            end: 0,
        }
    }

    /// Free room to read into (after moving any partial frame to the
    /// front); commit what was read with [`Deframer::filled`]. Never empty
    /// while no complete frame is buffered.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// `n` bytes were written at the start of [`Deframer::space`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(DEFRAME_BUFFER);
    }

    /// Copy as much of `data` as fits; returns how much was taken (for
    /// tests and fuzzing; the drivers read straight into `space`).
    pub fn push(&mut self, data: &[u8]) -> usize {
        let space = self.space();
        let n = data.len().min(space.len());
        space[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// The next complete frame, if buffered.
    pub fn next_frame(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        let avail = self.end - self.start;
        if avail < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([
            self.buf[self.start],
            self.buf[self.start + 1],
        ]));
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if avail < 2 + len {
            return Ok(None);
        }
        let from = self.start + 2;
        self.start += 2 + len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // The frame's bytes stay where they are until the next read.
        }
        Ok(self.buf.get_mut(from..from + len))
    }

    /// Bytes buffered that are not yet a complete frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

/// The send side of one connection: framed bytes waiting for the socket,
/// in a ring allocated once.
struct OutRing {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl OutRing {
    fn new(cap: usize) -> Self {
        Self {
            buf: vec![0; cap.max(2 + MAX_FRAME)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Append one frame, or refuse it whole when it does not fit.
    fn push_frame(&mut self, data: &[u8]) -> bool {
        let cap = self.buf.len();
        let Ok(n) = u16::try_from(data.len()) else {
            return false;
        };
        if self.len + 2 + data.len() > cap {
            return false;
        }
        self.put(&n.to_be_bytes());
        self.put(data);
        true
    }

    /// Copy `data` at the tail (room was checked), wrapping once at most.
    fn put(&mut self, data: &[u8]) {
        let cap = self.buf.len();
        let at = (self.head + self.len) % cap;
        let first = data.len().min(cap - at);
        self.buf[at..at + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
        self.len += data.len();
    }

    /// Write what the socket takes. `Err` when the connection failed.
    fn write_to(&mut self, s: &mut TcpStream) -> std::io::Result<()> {
        let cap = self.buf.len();
        while self.len > 0 {
            let contig = self.len.min(cap - self.head);
            match s.write(&self.buf[self.head..self.head + contig]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.head = (self.head + n) % cap;
                    self.len -= n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.head = 0;
        Ok(())
    }
}

/// The listener's token in [`PollOp`]s.
pub(crate) const LISTEN_TOKEN: u32 = u32::MAX;

/// What a backend must change in its readiness interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollOp {
    /// Watch `fd` for reading under `token`.
    Read { fd: RawFd, token: u32 },
    /// Tell `token` once `fd` is writable (`on`), or stop.
    Write { fd: RawFd, token: u32, on: bool },
    /// `token` is gone (its fd is already closed).
    Remove { token: u32 },
    /// Stop (`on: false`) or restart watching the listener `fd`, which
    /// is already registered (accepting failed, e.g. out of descriptors).
    Listen { fd: RawFd, on: bool },
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    addr: SocketAddr,
    rx: Deframer,
    out: OutRing,
    accepted: Instant,
    last_rx: Instant,
    /// Something was sent to it: it passed a STUN check.
    validated: bool,
    write_wanted: bool,
    in_ready: bool,
}

/// Why a connection is closed (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Peer,
    Malformed,
    Timeout,
    Handler,
}

/// Reads per connection per pass at most.
const READS_PER_PASS: usize = 4;
/// Accepts per pass at most.
const ACCEPTS_PER_PASS: usize = 32;
/// How often deadlines are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How long the listener rests after a failed accept.
const LISTEN_PAUSE: Duration = Duration::from_millis(100);

/// The TCP side of one driver loop.
pub(crate) struct TcpServer {
    listener: TcpListener,
    limits: TcpLimits,
    conns: Vec<Option<Conn>>,
    generations: Vec<u16>,
    free: Vec<u16>,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections with more to read (or frames left) after their budget.
    ready: Vec<u32>,
    ready_next: Vec<u32>,
    listen_ready: bool,
    /// Accepting failed (out of file descriptors, say): the listener is
    /// not watched until then, or a level-triggered loop would spin.
    listen_paused_until: Option<Instant>,
    next_sweep: Option<Instant>,
    /// Connections with bytes waiting in their send ring.
    pending_out: Vec<u16>,
    ops: Vec<PollOp>,
    open: usize,
}

impl TcpServer {
    pub(crate) fn new(ep: TcpEndpoint) -> Self {
        let max = ep.limits.max_connections.min(usize::from(u16::MAX));
        let mut s = Self {
            ops: Vec::with_capacity(64),
            listener: ep.listener,
            limits: TcpLimits {
                max_connections: max,
                ..ep.limits
            },
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            per_ip: HashMap::new(),
            ready: Vec::with_capacity(64),
            ready_next: Vec::with_capacity(64),
            listen_ready: false,
            listen_paused_until: None,
            next_sweep: None,
            pending_out: Vec::with_capacity(max),
            open: 0,
        };
        s.ops.push(PollOp::Read {
            fd: s.listener.as_raw_fd(),
            token: LISTEN_TOKEN,
        });
        s
    }

    /// Hand every pending readiness change to `f`.
    pub(crate) fn drain_ops(&mut self, mut f: impl FnMut(PollOp)) {
        for op in self.ops.drain(..) {
            f(op);
        }
    }

    /// Move up to `ops.len()` pending readiness changes into `ops`
    /// (without allocating), setting `n` to how many.
    pub(crate) fn drain_ops_into(&mut self, ops: &mut [Option<PollOp>], n: &mut usize) {
        let k = ops.len().min(self.ops.len());
        for (slot, op) in ops.iter_mut().zip(self.ops.drain(..k)) {
            *slot = Some(op);
        }
        *n = k;
    }

    /// A multishot read poll of `token` ended: ask for it again while the
    /// connection (or the listener) lives.
    pub(crate) fn rearm_read(&mut self, token: u32) {
        let fd = if token == LISTEN_TOKEN {
            // Paused: re-armed when the pause ends.
            self.listen_paused_until
                .is_none()
                .then(|| self.listener.as_raw_fd())
        } else {
            self.slot_of(token)
                .and_then(|i| self.conns[i].as_ref())
                .map(|k| k.stream.as_raw_fd())
        };
        if let Some(fd) = fd {
            self.ops.push(PollOp::Read { fd, token });
        }
    }

    /// The loop must not sleep: work is left from the last pass.
    pub(crate) fn has_work(&self) -> bool {
        self.listen_ready || !self.ready.is_empty()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_sweep, self.listen_paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn token(slot: u16, generation: u16) -> u32 {
        (u32::from(slot) << 16) | u32::from(generation)
    }

    fn slot_of(&self, token: u32) -> Option<usize> {
        let slot = (token >> 16) as u16;
        let generation = token as u16;
        let i = usize::from(slot);
        (self.generations.get(i) == Some(&generation) && self.conns.get(i)?.is_some()).then_some(i)
    }

    /// The listener is readable: accept what waits (bounded).
    pub(crate) fn on_listen(&mut self, now: Instant, c: &mut IoStatsSnapshot) {
        self.listen_ready = false;
        if self.listen_paused_until.is_some() {
            return; // a readiness report from before the pause
        }
        for _ in 0..ACCEPTS_PER_PASS {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now, c),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: the connection waits in the
                    // backlog; stop watching the listener for a while
                    // (it would stay readable and the loop spin).
                    tracing::warn!(error = %e, "tcp accept failed; pausing the listener");
                    c.rx_errors += 1;
                    self.listen_paused_until = Some(now + LISTEN_PAUSE);
                    self.ops.push(PollOp::Listen {
                        fd: self.listener.as_raw_fd(),
                        on: false,
                    });
                    return;
                }
            }
        }
        self.listen_ready = true;
    }

    fn admit(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        c: &mut IoStatsSnapshot,
    ) {
        // An IPv4 peer of a dual-stack listener: its plain IPv4 address.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let peer_ip = limit_key(peer.ip());
        let ip_count = self.per_ip.get(&peer_ip).copied().unwrap_or(0);
        if self.open >= self.limits.max_connections || ip_count >= self.limits.max_per_ip {
            c.tcp_refused += 1;
            tracing::debug!("tcp connection refused: too many connections");
            return; // dropped: closed
        }
        if stream.set_nonblocking(true).is_err() {
            c.tcp_refused += 1;
            return;
        }
        let _ = stream.set_nodelay(true);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let Ok(s) = u16::try_from(self.conns.len()) else {
                    c.tcp_refused += 1;
                    return;
                };
                self.conns.push(None);
                self.generations.push(0);
                s
            }
        };
        let i = usize::from(slot);
        let generation = self.generations[i].wrapping_add(1);
        self.generations[i] = generation;
        let addr = stream_addr(slot, generation, peer);
        let fd = stream.as_raw_fd();
        self.conns[i] = Some(Conn {
            stream,
            peer,
            addr,
            rx: Deframer::new(),
            out: OutRing::new(self.limits.out_buffer_bytes),
            accepted: now,
            last_rx: now,
            validated: false,
            write_wanted: false,
            in_ready: false,
        });
        *self.per_ip.entry(peer_ip).or_insert(0) += 1;
        self.open += 1;
        c.tcp_accepted += 1;
        c.tcp_open = self.open as u64;
        self.ops.push(PollOp::Read {
            fd,
            token: Self::token(slot, generation),
        });
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP_INTERVAL);
        }
    }

    fn close(&mut self, i: usize, why: Close, c: &mut IoStatsSnapshot) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        let ip = limit_key(conn.peer.ip());
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        self.open -= 1;
        c.tcp_open = self.open as u64;
        c.tcp_closed += 1;
        match why {
            Close::Malformed => c.tcp_closed_malformed += 1,
            Close::Timeout => c.tcp_closed_timeout += 1,
            Close::Peer | Close::Handler => {}
        }
        if let Ok(slot) = u16::try_from(i) {
            self.ops.push(PollOp::Remove {
                token: Self::token(slot, self.generations[i]),
            });
            self.free.push(slot);
        }
        tracing::debug!(?why, "tcp connection closed");
        drop(conn); // closes the socket
    }

    /// Connection `token` is readable: read (bounded) and hand each frame
    /// to the handler under the connection's stream address.
    pub(crate) fn on_readable<H: Handler>(
        &mut self,
        token: u32,
        handler: &mut H,
        now: Instant,
        tx: &mut TxQueue,
        c: &mut IoStatsSnapshot,
    ) {
        let Some(i) = self.slot_of(token) else {
            return;
        };
        let mut outcome = None;
        let mut again = false;
        if let Some(conn) = self.conns[i].as_mut() {
            conn.in_ready = false;
            let mut reads = 0;
            'conn: loop {
                loop {
                    if tx.len() >= TX_FLUSH_AT {
                        // The backend flushes at the end of the pass.
                        again = true;
                        break 'conn;
                    }
                    match conn.rx.next_frame() {
                        Ok(Some(frame)) => {
                            c.tcp_rx_frames += 1;
                            c.rx_bytes += frame.len() as u64;
                            handler.handle_datagram(conn.addr, frame, now, tx);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "malformed tcp frame");
                            outcome = Some(Close::Malformed);
                            break 'conn;
                        }
                    }
                }
                if reads >= READS_PER_PASS {
                    again = true;
                    break;
                }
                reads += 1;
                match conn.stream.read(conn.rx.space()) {
                    Ok(0) => {
                        outcome = Some(Close::Peer);
                        break;
                    }
                    Ok(n) => {
                        conn.rx.filled(n);
                        conn.last_rx = now;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        outcome = Some(Close::Peer);
                        break;
                    }
                }
            }
            if again && outcome.is_none() && !conn.in_ready {
                conn.in_ready = true;
                self.ready_next.push(token);
            }
        }
        if let Some(why) = outcome {
            self.close(i, why, c);
        }
    }

    /// Serve the connections left with work at the last pass.
    pub(crate) fn on_ready<H: Handler>(
        &mut self,
        handler: &mut H,
        now: Instant,
        tx: &mut TxQueue,
        c: &mut IoStatsSnapshot,
    ) {
        if self.listen_ready {
            self.on_listen(now, c);
        }
        let mut ready = std::mem::take(&mut self.ready);
        for token in ready.drain(..) {
            self.on_readable(token, handler, now, tx, c);
        }
        self.ready = ready;
    }

    /// End of a pass's receiving: what was left over is served next pass.
    pub(crate) fn end_pass(&mut self) {
        self.ready.append(&mut self.ready_next);
    }

    /// Connection `token` is writable.
    pub(crate) fn on_writable(&mut self, token: u32, c: &mut IoStatsSnapshot) {
        if let Some(i) = self.slot_of(token) {
            // Asked for again if bytes are still left (io_uring's write
            // poll is one-shot).
            self.write_out(i, true, c);
        }
    }

    fn write_out(&mut self, i: usize, rearm: bool, c: &mut IoStatsSnapshot) {
        let Some(conn) = self.conns[i].as_mut() else {
            return;
        };
        if conn.out.write_to(&mut conn.stream).is_err() {
            self.close(i, Close::Peer, c);
            return;
        }
        let want = conn.out.len > 0;
        if want != conn.write_wanted || (rearm && want) {
            conn.write_wanted = want;
            let fd = conn.stream.as_raw_fd();
            let token = Self::token(i as u16, self.generations[i]);
            self.ops.push(PollOp::Write {
                fd,
                token,
                on: want,
            });
        }
    }

    /// Take the transmits to stream addresses out of `tx` (framed onto
    /// their connections, written as far as the sockets take them) and
    /// carry out the handler's closes. UDP transmits stay queued.
    pub(crate) fn absorb(&mut self, tx: &mut TxQueue, c: &mut IoStatsSnapshot) {
        let conns = &mut self.conns;
        let generations = &self.generations;
        let pending = &mut self.pending_out;
        tx.take_where(is_stream, |t| {
            let Some((slot, generation)) = stream_id(&t.dst) else {
                return;
            };
            let i = usize::from(slot);
            let live = generations.get(i) == Some(&generation);
            match conns.get_mut(i).and_then(Option::as_mut) {
                Some(conn) if live => {
                    let was_empty = conn.out.len == 0;
                    if conn.out.push_frame(&t.buf[..t.len]) {
                        conn.validated = true;
                        c.tcp_tx_frames += 1;
                        c.tx_bytes += t.len as u64;
                        if was_empty {
                            pending.push(slot);
                        }
                    } else {
                        c.tcp_tx_dropped += 1;
                    }
                }
                _ => c.tcp_tx_dropped += 1,
            }
        });
        // Each connection that was given bytes (listed once: its ring was
        // empty before), written as far as its socket takes them; one the
        // socket left bytes in waits for writability.
        let mut pending = std::mem::take(&mut self.pending_out);
        for slot in pending.drain(..) {
            self.write_out(usize::from(slot), false, c);
        }
        self.pending_out = pending;
        let mut closes = std::mem::take(&mut tx.closes);
        for addr in closes.drain(..) {
            if let Some((slot, generation)) = stream_id(&addr) {
                let i = usize::from(slot);
                if self.generations.get(i) == Some(&generation) {
                    if let Some(conn) = self.conns[i].as_mut() {
                        // What is queued goes first, as far as it can.
                        let _ = conn.out.write_to(&mut conn.stream);
                    }
                    self.close(i, Close::Handler, c);
                }
            }
        }
        tx.closes = closes;
    }

    /// Sweep the deadlines: a first check too late, an idle connection.
    pub(crate) fn handle_timeout(&mut self, now: Instant, c: &mut IoStatsSnapshot) {
        if self.listen_paused_until.is_some_and(|t| t <= now) {
            self.listen_paused_until = None;
            self.listen_ready = true;
            self.ops.push(PollOp::Listen {
                fd: self.listener.as_raw_fd(),
                on: true,
            });
        }
        if self.next_sweep.is_none_or(|t| t > now) {
            return;
        }
        for i in 0..self.conns.len() {
            let expired = self.conns[i].as_ref().is_some_and(|k| {
                (!k.validated && now >= k.accepted + self.limits.first_stun_timeout)
                    || now >= k.last_rx + self.limits.idle_timeout
            });
            if expired {
                self.close(i, Close::Timeout, c);
            }
        }
        self.next_sweep = (self.open > 0).then(|| now + SWEEP_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-IP bound counts an IPv6 peer by its /64: a host holds a
    /// whole /64 and picks a source address in it at will, so counting
    /// each address would let one peer fill the listener for everyone
    /// (16 addresses × 256). An IPv4 peer counts by its address.
    #[test]
    fn an_ipv6_peer_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(other));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(limit_key(v4), v4);
        assert_ne!(limit_key(v4), limit_key("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn stream_addresses_round_trip() {
        let peer: SocketAddr = "192.0.2.7:50123".parse().unwrap();
        let a = stream_addr(513, 7, peer);
        assert!(is_stream(&a));
        assert_eq!(stream_id(&a), Some((513, 7)));
        assert_eq!(stream_peer(a), Some(peer));
        assert!(!is_stream(&peer));
        assert_eq!(stream_peer(peer), Some(peer));
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        assert!(!is_stream(&v6));
        let a6 = stream_addr(1, 1, v6);
        assert!(is_stream(&a6));
        assert_eq!(stream_peer(a6), None);
        assert_ne!(stream_addr(1, 2, peer), stream_addr(1, 3, peer));
    }

    #[test]
    fn out_ring_wraps_and_refuses_whole_frames() {
        let mut r = OutRing::new(2 + MAX_FRAME);
        assert!(r.push_frame(&[1; 1000]));
        assert!(!r.push_frame(&[2; 600]), "does not fit: refused whole");
        assert_eq!(r.len, 1002);
        // Consume 900 bytes as a socket would, then a frame that wraps.
        r.head = 900;
        r.len = 102;
        assert!(r.push_frame(&[3; 700]));
        let cap = r.buf.len();
        let bytes: Vec<u8> = (0..r.len).map(|k| r.buf[(r.head + k) % cap]).collect();
        assert_eq!(&bytes[102..104], &700u16.to_be_bytes());
        assert!(bytes[104..].iter().all(|&b| b == 3));
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    fn frames_of(d: &mut Deframer) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn a_frame_split_across_reads_comes_out_whole() {
        let f = frame(&[7; 300]);
        let mut d = Deframer::new();
        // One byte of the length, then the rest of it, then the payload
        // in three pieces.
        for piece in [&f[..1], &f[1..2], &f[2..50], &f[50..299], &f[299..]] {
            assert!(frames_of(&mut d).unwrap().is_empty());
            assert_eq!(d.push(piece), piece.len());
        }
        assert_eq!(frames_of(&mut d).unwrap(), [vec![7; 300]]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn two_frames_in_one_read_and_a_partial_third() {
        let mut bytes = frame(b"stun");
        bytes.extend(frame(&[0x80; 1200]));
        let third = frame(&[0x16; 100]);
        bytes.extend(&third[..40]);
        let mut d = Deframer::new();
        d.push(&bytes);
        assert_eq!(
            frames_of(&mut d).unwrap(),
            [b"stun".to_vec(), vec![0x80; 1200]]
        );
        assert_eq!(d.buffered(), 40);
        d.push(&third[40..]);
        assert_eq!(frames_of(&mut d).unwrap(), [vec![0x16; 100]]);
    }

    #[test]
    fn the_largest_frame_passes_and_longer_or_empty_ones_fail() {
        let mut d = Deframer::new();
        d.push(&frame(&[1; MAX_FRAME]));
        assert_eq!(frames_of(&mut d).unwrap(), [vec![1; MAX_FRAME]]);
        let mut d = Deframer::new();
        d.push(&((MAX_FRAME + 1) as u16).to_be_bytes());
        assert_eq!(d.next_frame(), Err(FrameError::TooLong(MAX_FRAME + 1)));
        let mut d = Deframer::new();
        d.push(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLong(65535)));
        let mut d = Deframer::new();
        d.push(&[0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn a_stream_cut_anywhere_gives_the_same_frames() {
        // Seeded xorshift: frames of random sizes, read in random pieces
        // (as a socket delivers them), taking frames out between reads.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for k in 0..500u32 {
            let len = 1 + (next() % MAX_FRAME as u64) as usize;
            let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ k) as u8).collect();
            stream.extend(frame(&payload));
            want.push(payload);
        }
        let mut d = Deframer::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = 1 + (next() % 4000) as usize;
            let end = (at + n).min(stream.len());
            at += d.push(&stream[at..end]);
            got.extend(frames_of(&mut d).unwrap());
        }
        assert_eq!(got, want);
    }
}
