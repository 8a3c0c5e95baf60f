//! salon-io: the thin UDP (and ICE-TCP) drivers under mediad.
//!
//! A driver owns one UDP socket, optionally one TCP listener
//! ([`run_with_tcp`], see [`tcp`]: each RFC 4571 frame of a connection is
//! handed over as a datagram from the connection's stream address), and
//! one thread. It knows nothing of ICE,
//! DTLS or RTP: it hands every received datagram to a [`Handler`] (the
//! sans-IO core), and sends whatever the handler queued in the [`TxQueue`]
//! it lent it, in batches. The driving contract, per pass of the loop:
//!
//! 1. receive a batch of datagrams; for each, `handler.handle_datagram(..)`;
//! 2. if the wake-up eventfd fired (control commands crossed threads),
//!    `handler.handle_wake(..)`;
//! 3. if the handler's deadline (`poll_timeout`) has passed,
//!    `handler.handle_timeout(..)`;
//! 4. send everything in the [`TxQueue`] in one batch;
//! 5. sleep until a datagram, a wake-up or the next deadline.
//!
//! Two backends implement that loop: io_uring (multishot `RecvMsgMulti` on
//! a provided-buffer ring, batched `SendMsg`) and epoll + `recvmmsg` /
//! `sendmmsg`, chosen with [`Backend`].
//!
//! Details both backends keep:
//!
//! - `data` handed to [`Handler::handle_datagram`] is at most
//!   [`MAX_DATAGRAM`] bytes; larger datagrams are dropped before the handler
//!   sees them and counted in [`IoStatsSnapshot::rx_truncated`].
//! - The [`TxQueue`] holds [`TX_QUEUE_CAPACITY`] datagrams per pass; a
//!   datagram pushed beyond that is refused (`buffer()` returns `None`) and
//!   counted in [`IoStatsSnapshot::tx_queue_full`]. Within a pass the driver
//!   sends early once [`TX_FLUSH_AT`] datagrams are queued, so only a single
//!   datagram fanned out to more than the rest can fill it.
//! - A send that fails is counted in [`IoStatsSnapshot::tx_errors`] and logged at
//!   debug level; it never ends the loop. `ECONNREFUSED` / `EHOSTUNREACH` /
//!   `ENETUNREACH` (ICMP feedback on UDP) are ignored.
//! - [`run`] returns `Ok(())` only once [`Handler::should_stop`] is true,
//!   which is checked at the start of every pass (so after every
//!   `handle_*`). It returns an error only if the backend itself fails
//!   (creating the ring or the epoll set, a failing wait).
//! - Counters are published to the [`IoStats`] given to [`run`] once per
//!   pass (relaxed atomics; a handler or a metrics thread may read them
//!   through an `Arc<IoStats>` they share with the caller).
//! - One [`Waker`] per loop: other threads push commands on a channel, then
//!   call [`Waker::wake`]; the loop then calls `handle_wake` (several wakes
//!   may fold into one call, and a call may be spurious).

#![deny(unsafe_op_in_unsafe_fn)]

mod epoll;
mod sys;
pub mod tcp;
pub mod tx;
mod uring;

pub use tcp::{TcpEndpoint, TcpLimits, bind_tcp, is_stream, stream_addr, stream_peer};
pub use tx::{MAX_DATAGRAM, Transmit, TxQueue};

use std::fmt;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Datagrams the [`TxQueue`] a driver lends its handler holds per pass.
pub const TX_QUEUE_CAPACITY: usize = 2048;

/// Once this many datagrams are queued, a driver sends them before it hands
/// the handler the next received datagram: one packet fanned out to a large
/// room (up to [`TX_QUEUE_CAPACITY`] − this many receivers) never finds the
/// queue full, however many arrived in the same batch.
pub const TX_FLUSH_AT: usize = TX_QUEUE_CAPACITY / 2;

/// Socket buffer size (`SO_RCVBUF` / `SO_SNDBUF`) asked for by [`bind_udp`].
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Errors of the UDP drivers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// io_uring cannot be used here (old kernel, or blocked by a seccomp
    /// profile such as Docker's or Kubernetes' default).
    #[error("io_uring is unavailable: {reason}")]
    UringUnavailable {
        /// Why the probe failed.
        reason: String,
    },
    /// A system call the driver depends on failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The failing operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A backend name that is not `auto`, `uring` or `epoll`.
    #[error("unknown I/O backend {0:?} (expected auto, uring or epoll)")]
    UnknownBackend(String),
}

impl IoError {
    pub(crate) fn sys(op: &'static str, source: std::io::Error) -> Self {
        IoError::Sys { op, source }
    }

    pub(crate) fn last_os(op: &'static str) -> Self {
        IoError::Sys {
            op,
            source: std::io::Error::last_os_error(),
        }
    }
}

/// The I/O backend a driver loop runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring: multishot `RecvMsgMulti` on a provided-buffer ring,
    /// batched `SendMsg`.
    Uring,
    /// epoll + `recvmmsg` / `sendmmsg`.
    Epoll,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        })
    }
}

/// The backend asked for in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// io_uring when [`probe_uring`] passes, else epoll (with a warning).
    #[default]
    Auto,
    /// io_uring, or an error if it is unavailable.
    Uring,
    /// epoll.
    Epoll,
}

impl BackendChoice {
    /// The backend to run on. `Auto` falls back to epoll with a
    /// `tracing::warn!` when io_uring is unavailable; an explicit `Uring`
    /// fails with [`IoError::UringUnavailable`] instead.
    pub fn resolve(self) -> Result<Backend, IoError> {
        match self {
            BackendChoice::Epoll => Ok(Backend::Epoll),
            BackendChoice::Uring => probe_uring().map(|()| Backend::Uring),
            BackendChoice::Auto => match probe_uring() {
                Ok(()) => Ok(Backend::Uring),
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable, falling back to epoll");
                    Ok(Backend::Epoll)
                }
            },
        }
    }
}

impl FromStr for BackendChoice {
    type Err = IoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            _ => Err(IoError::UnknownBackend(s.to_owned())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
        })
    }
}

/// Check that io_uring can run the io_uring backend here: the ring can be
/// created (seccomp allows `io_uring_setup`), the kernel is at least 6.0
/// (multishot `RecvMsg`), supports `EXT_ARG` waits, the opcodes used, and
/// provided-buffer rings.
pub fn probe_uring() -> Result<(), IoError> {
    uring::probe()
}

/// Wake-up handle of one driver loop: an eventfd. Clone it into the threads
/// that send the loop commands; after pushing a command on the channel they
/// call [`Waker::wake`], and the loop calls [`Handler::handle_wake`].
#[derive(Debug, Clone)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// A new eventfd-backed waker.
    pub fn new() -> Result<Self, IoError> {
        Ok(Self {
            fd: Arc::new(sys::eventfd()?),
        })
    }

    /// Signal the loop. Never blocks; errors (only possible if the counter
    /// would overflow, i.e. the loop is long gone) are ignored.
    pub fn wake(&self) {
        sys::eventfd_write(self.fd.as_raw_fd());
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `addr` with a v4-mapped IPv6 address (`[::ffff:a.b.c.d]:p`, how a
/// dual-stack socket names an IPv4 peer) as the plain IPv4 one; any other
/// address unchanged.
#[inline]
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Whether binding `addr` makes a dual-stack socket: the IPv6 unspecified
/// address (`[::]`) takes IPv4 peers too, as v4-mapped addresses, which the
/// drivers turn back into plain IPv4 ones both ways (`sys::decode_addr`,
/// `RawAddr::encode`; the TCP listener's peers likewise).
pub fn is_dual_stack(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified())
}

/// The addresses to announce for a socket bound to the unspecified
/// address `bind` (`0.0.0.0`: IPv4 only; `::`: both families): the host's
/// interface addresses that are up, neither loopback nor link-local, at
/// most two per family (IPv6 first, in the kernel's order); loopback
/// (`127.0.0.1`, and `::1` for `::`) when there is nothing else.
pub fn host_addresses(bind: IpAddr) -> Vec<IpAddr> {
    let both = bind.is_ipv6();
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            both && !v6.is_loopback()
                && !v6.is_unspecified()
                && !v6.is_unicast_link_local()
                && v6.to_ipv4_mapped().is_none()
        }
    };
    let found: Vec<IpAddr> = sys::interface_addrs()
        .into_iter()
        .filter(|(_, flags)| flags & (libc::IFF_LOOPBACK as u32) == 0)
        .map(|(ip, _)| ip)
        .filter(usable)
        .collect();
    let mut out: Vec<IpAddr> = Vec::new();
    for v6 in [true, false] {
        for ip in found.iter().filter(|ip| ip.is_ipv6() == v6) {
            if !out.contains(ip) && out.iter().filter(|o| o.is_ipv6() == v6).count() < 2 {
                out.push(*ip);
            }
        }
    }
    if out.is_empty() {
        if both {
            out.push(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
        }
        out.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    out
}

/// An IPv6 socket with `IPV6_V6ONLY` off (whatever `net.ipv6.bindv6only`
/// says), close-on-exec.
pub(crate) fn dual_stack_socket(ty: socket2::Type) -> Result<socket2::Socket, IoError> {
    let s = socket2::Socket::new(socket2::Domain::IPV6, ty, None)
        .map_err(|e| IoError::sys("socket", e))?;
    s.set_only_v6(false)
        .map_err(|e| IoError::sys("setsockopt(IPV6_V6ONLY)", e))?;
    Ok(s)
}

/// A non-blocking UDP socket bound to `addr` (IPv4 or IPv6; an IPv6
/// wildcard socket is dual-stack where the system allows), with
/// `SO_RCVBUF` / `SO_SNDBUF` raised to [`SOCKET_BUFFER_BYTES`] where
/// permitted (failure to raise them is logged, not fatal).
pub fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, IoError> {
    let socket: UdpSocket = if is_dual_stack(&addr) {
        let s = dual_stack_socket(socket2::Type::DGRAM)?;
        s.bind(&addr.into()).map_err(|e| IoError::sys("bind", e))?;
        s.into()
    } else {
        UdpSocket::bind(addr).map_err(|e| IoError::sys("bind", e))?
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| IoError::sys("set_nonblocking", e))?;
    sys::raise_buffers(&socket, SOCKET_BUFFER_BYTES);
    Ok(socket)
}

/// Run the driver loop on `socket` until `handler.should_stop()`.
///
/// `waker` is the loop's wake-up handle (see [`Waker`]). Counters are
/// published to `stats` once per pass. The socket is consumed and closed on
/// return. See the crate doc for the contract.
pub fn run<H: Handler>(
    socket: UdpSocket,
    backend: Backend,
    waker: &Waker,
    handler: &mut H,
    stats: &IoStats,
) -> Result<(), IoError> {
    run_with_tcp(socket, None, backend, waker, handler, stats)
}

/// [`run`], also serving ICE-TCP connections accepted on `tcp` (RFC 4571
/// framing; see [`tcp`]): each frame goes to
/// [`Handler::handle_datagram`] under the connection's stream address,
/// and transmits to stream addresses go back on their connections.
pub fn run_with_tcp<H: Handler>(
    socket: UdpSocket,
    tcp: Option<TcpEndpoint>,
    backend: Backend,
    waker: &Waker,
    handler: &mut H,
    stats: &IoStats,
) -> Result<(), IoError> {
    tracing::debug!(%backend, tcp = tcp.is_some(), "driver loop starting");
    let tcp = tcp.map(tcp::TcpServer::new);
    match backend {
        Backend::Epoll => epoll::run(socket, tcp, waker, handler, stats),
        Backend::Uring => uring::run(socket, tcp, waker, handler, stats),
    }
}

/// Counters of one driver loop, published once per pass with relaxed
/// stores (a single writer: the loop). Share it as `Arc<IoStats>` with a
/// metrics reader or with the handler; read with [`IoStats::snapshot`].
#[derive(Debug, Default)]
pub struct IoStats {
    rx_datagrams: AtomicU64,
    rx_bytes: AtomicU64,
    rx_truncated: AtomicU64,
    rx_errors: AtomicU64,
    tx_datagrams: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
    tx_queue_full: AtomicU64,
    wakes: AtomicU64,
    passes: AtomicU64,
    rx_rearms: AtomicU64,
    tcp_accepted: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_open: AtomicU64,
    tcp_closed: AtomicU64,
    tcp_closed_malformed: AtomicU64,
    tcp_closed_timeout: AtomicU64,
    tcp_rx_frames: AtomicU64,
    tcp_tx_frames: AtomicU64,
    tcp_tx_dropped: AtomicU64,
}

/// A copy of [`IoStats`] at one instant: plain counters since the loop
/// started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStatsSnapshot {
    /// Datagrams handed to the handler.
    pub rx_datagrams: u64,
    /// Their payload bytes.
    pub rx_bytes: u64,
    /// Datagrams dropped for being larger than [`MAX_DATAGRAM`].
    pub rx_truncated: u64,
    /// Failed receives (not counting "would block").
    pub rx_errors: u64,
    /// Datagrams sent.
    pub tx_datagrams: u64,
    /// Their payload bytes.
    pub tx_bytes: u64,
    /// Failed sends (ICMP-caused ECONNREFUSED / EHOSTUNREACH excluded).
    pub tx_errors: u64,
    /// Datagrams refused because the [`TxQueue`] was full.
    pub tx_queue_full: u64,
    /// Wake-ups seen (`handle_wake` calls).
    pub wakes: u64,
    /// Passes of the loop.
    pub passes: u64,
    /// io_uring only: times the multishot receive was re-armed after the
    /// kernel ended it (e.g. `ENOBUFS`: every provided buffer was out).
    pub rx_rearms: u64,
    /// TCP connections accepted (ICE-TCP).
    pub tcp_accepted: u64,
    /// TCP connections refused (over the global or per-IP limit).
    pub tcp_refused: u64,
    /// TCP connections open now (a gauge).
    pub tcp_open: u64,
    /// TCP connections closed, for any reason.
    pub tcp_closed: u64,
    /// TCP connections closed for a malformed RFC 4571 frame.
    pub tcp_closed_malformed: u64,
    /// TCP connections closed for sending no valid check in time, or nothing for too long.
    pub tcp_closed_timeout: u64,
    /// Frames received on TCP connections.
    pub tcp_rx_frames: u64,
    /// Frames queued on TCP connections.
    pub tcp_tx_frames: u64,
    /// Frames dropped: the connection's send buffer was full, or it had gone.
    pub tcp_tx_dropped: u64,
}

impl IoStats {
    /// A zeroed set of counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> IoStatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoStatsSnapshot {
            rx_datagrams: r(&self.rx_datagrams),
            rx_bytes: r(&self.rx_bytes),
            rx_truncated: r(&self.rx_truncated),
            rx_errors: r(&self.rx_errors),
            tx_datagrams: r(&self.tx_datagrams),
            tx_bytes: r(&self.tx_bytes),
            tx_errors: r(&self.tx_errors),
            tx_queue_full: r(&self.tx_queue_full),
            wakes: r(&self.wakes),
            passes: r(&self.passes),
            rx_rearms: r(&self.rx_rearms),
            tcp_accepted: r(&self.tcp_accepted),
            tcp_refused: r(&self.tcp_refused),
            tcp_open: r(&self.tcp_open),
            tcp_closed: r(&self.tcp_closed),
            tcp_closed_malformed: r(&self.tcp_closed_malformed),
            tcp_closed_timeout: r(&self.tcp_closed_timeout),
            tcp_rx_frames: r(&self.tcp_rx_frames),
            tcp_tx_frames: r(&self.tcp_tx_frames),
            tcp_tx_dropped: r(&self.tcp_tx_dropped),
        }
    }

    pub(crate) fn publish(&self, c: &IoStatsSnapshot) {
        let w = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        w(&self.rx_datagrams, c.rx_datagrams);
        w(&self.rx_bytes, c.rx_bytes);
        w(&self.rx_truncated, c.rx_truncated);
        w(&self.rx_errors, c.rx_errors);
        w(&self.tx_datagrams, c.tx_datagrams);
        w(&self.tx_bytes, c.tx_bytes);
        w(&self.tx_errors, c.tx_errors);
        w(&self.tx_queue_full, c.tx_queue_full);
        w(&self.wakes, c.wakes);
        w(&self.passes, c.passes);
        w(&self.rx_rearms, c.rx_rearms);
        w(&self.tcp_accepted, c.tcp_accepted);
        w(&self.tcp_refused, c.tcp_refused);
        w(&self.tcp_open, c.tcp_open);
        w(&self.tcp_closed, c.tcp_closed);
        w(&self.tcp_closed_malformed, c.tcp_closed_malformed);
        w(&self.tcp_closed_timeout, c.tcp_closed_timeout);
        w(&self.tcp_rx_frames, c.tcp_rx_frames);
        w(&self.tcp_tx_frames, c.tcp_tx_frames);
        w(&self.tcp_tx_dropped, c.tcp_tx_dropped);
    }
}

/// Deadline of the handler, as a duration from `now` (zero when passed).
pub(crate) fn until_deadline<H: Handler>(handler: &H, now: Instant) -> Option<std::time::Duration> {
    handler
        .poll_timeout()
        .map(|d| d.saturating_duration_since(now))
}

/// Send errors that are ICMP feedback on an unconnected UDP socket.
pub(crate) fn is_ignored_send_error(errno: i32) -> bool {
    errno == libc::ECONNREFUSED || errno == libc::EHOSTUNREACH || errno == libc::ENETUNREACH
}

/// The sans-IO side of a driver: the forwarding core implements this.
pub trait Handler {
    /// One datagram arrived from `src`. `data` is the driver's receive
    /// buffer: the handler may rewrite it in place (SRTP decrypt) but must
    /// not keep it. Anything to send goes into `tx`.
    fn handle_datagram(&mut self, src: SocketAddr, data: &mut [u8], now: Instant, tx: &mut TxQueue);

    /// The wake-up handle was signalled (control commands are waiting).
    fn handle_wake(&mut self, now: Instant, tx: &mut TxQueue);

    /// The deadline returned by [`Handler::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant, tx: &mut TxQueue);

    /// The next instant at which `handle_timeout` must run.
    fn poll_timeout(&self) -> Option<Instant>;

    /// True once the handler wants the loop to return.
    fn should_stop(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_parses_and_prints() {
        for (s, c) in [
            ("auto", BackendChoice::Auto),
            ("uring", BackendChoice::Uring),
            ("epoll", BackendChoice::Epoll),
        ] {
            let parsed: BackendChoice = s.parse().unwrap();
            assert_eq!(parsed, c);
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(
            "EPOLL".parse::<BackendChoice>().unwrap(),
            BackendChoice::Epoll
        );
        assert!(matches!(
            "kqueue".parse::<BackendChoice>(),
            Err(IoError::UnknownBackend(_))
        ));
        assert_eq!(Backend::Uring.to_string(), "uring");
    }

    #[test]
    fn resolve_follows_the_probe() {
        assert_eq!(BackendChoice::Epoll.resolve().unwrap(), Backend::Epoll);
        match probe_uring() {
            Ok(()) => {
                assert_eq!(BackendChoice::Auto.resolve().unwrap(), Backend::Uring);
                assert_eq!(BackendChoice::Uring.resolve().unwrap(), Backend::Uring);
            }
            Err(_) => {
                assert_eq!(BackendChoice::Auto.resolve().unwrap(), Backend::Epoll);
                assert!(matches!(
                    BackendChoice::Uring.resolve(),
                    Err(IoError::UringUnavailable { .. })
                ));
            }
        }
    }

    #[test]
    fn waker_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Waker>();
        let w = Waker::new().unwrap();
        for _ in 0..10 {
            w.clone().wake();
        }
        sys::eventfd_drain(w.raw_fd());
    }
}
