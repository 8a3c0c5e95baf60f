//! ICE-TCP in both driver loops, over loopback: RFC 4571 frames in and
//! out, the bounds (frame length, connections per IP, the first check's
//! deadline, the send buffer) and the handler's closes. Every test runs
//! once per backend; io_uring is skipped (with a notice) when
//! `probe_uring` fails.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should fail the test"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use salon_io::{
    Backend, Handler, IoError, IoStats, IoStatsSnapshot, TcpEndpoint, TcpLimits, TxQueue, Waker,
    bind_tcp, bind_udp, is_stream, probe_uring, run_with_tcp, stream_peer,
};

/// Echoes each frame (or datagram) to where it came from, except:
/// `flood` answers with `FLOOD` frames of 1400 bytes, `bye` answers then
/// closes the connection, and frames starting with `mute` get no answer
/// (a connection that never passes a check).
struct Echo {
    stop: Receiver<()>,
    stopped: bool,
    /// The peers seen behind stream addresses.
    peers: Sender<(SocketAddr, Option<SocketAddr>)>,
}

const FLOOD: usize = 1000;

impl Handler for Echo {
    fn handle_datagram(&mut self, src: SocketAddr, data: &mut [u8], _: Instant, tx: &mut TxQueue) {
        if is_stream(&src) {
            let _ = self.peers.send((src, stream_peer(src)));
        }
        if data.starts_with(b"mute") {
            return;
        }
        if data == b"flood" {
            for _ in 0..FLOOD {
                tx.push(src, &[0x80; 1400]);
            }
            return;
        }
        tx.push(src, data);
        if data == b"bye" {
            tx.close(src);
        }
    }
    fn handle_wake(&mut self, _: Instant, _: &mut TxQueue) {
        self.stopped |= self.stop.try_recv().is_ok();
    }
    fn handle_timeout(&mut self, _: Instant, _: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        self.stopped
    }
}

struct Server {
    udp: SocketAddr,
    tcp: SocketAddr,
    waker: Waker,
    stop: Sender<()>,
    stats: Arc<IoStats>,
    peers: Receiver<(SocketAddr, Option<SocketAddr>)>,
    thread: JoinHandle<Result<(), IoError>>,
}

impl Server {
    fn start(backend: Backend, limits: TcpLimits) -> Self {
        Self::start_on(backend, limits, "127.0.0.1")
    }

    /// Both listeners on `ip` (`::`: dual stack).
    fn start_on(backend: Backend, limits: TcpLimits, ip: &str) -> Self {
        let any: SocketAddr = SocketAddr::new(ip.parse().unwrap(), 0);
        let socket = bind_udp(any).unwrap();
        let udp = socket.local_addr().unwrap();
        let listener = bind_tcp(any).unwrap();
        let tcp = listener.local_addr().unwrap();
        let waker = Waker::new().unwrap();
        let (stop, stop_rx) = mpsc::channel();
        let (peers_tx, peers) = mpsc::channel();
        let stats = Arc::new(IoStats::new());
        let (w, s) = (waker.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let mut h = Echo {
                stop: stop_rx,
                stopped: false,
                peers: peers_tx,
            };
            let ep = TcpEndpoint { listener, limits };
            run_with_tcp(socket, Some(ep), backend, &w, &mut h, &s)
        });
        Self {
            udp,
            tcp,
            waker,
            stop,
            stats,
            peers,
            thread,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.tcp).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn stats(&self) -> IoStatsSnapshot {
        self.stats.snapshot()
    }

    fn stop(self) -> IoStatsSnapshot {
        self.stop.send(()).unwrap();
        self.waker.wake();
        let give_up = Instant::now() + Duration::from_secs(10);
        while !self.thread.is_finished() {
            assert!(Instant::now() < give_up, "driver loop did not return");
            std::thread::sleep(Duration::from_millis(2));
        }
        self.thread.join().unwrap().unwrap();
        self.stats.snapshot()
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut p = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut p)?;
    Ok(p)
}

/// True once the server closed `s` (EOF or reset), within 5 s.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            // A blocking read with a timeout reports EINTR around a
            // signal instead of restarting.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// `recv`, retrying when interrupted (a socket with a read timeout
/// reports EINTR instead of restarting, e.g. around io_uring's task work).
fn recv(u: &UdpSocket, b: &mut [u8]) -> usize {
    loop {
        match u.recv(b) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r.unwrap(),
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let give_up = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < give_up, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Frames of every size, written in pieces that cut them anywhere (and
/// several in one write), come back whole and in order; UDP on the same
/// loop still works.
fn frames_round_trip(backend: Backend) {
    let server = Server::start(backend, TcpLimits::default());
    let mut c = server.connect();
    let payloads: Vec<Vec<u8>> = (0..300u32)
        .map(|k| {
            let len = 1 + (k.wrapping_mul(7919) % 1500) as usize;
            (0..len).map(|i| (i as u32 ^ k) as u8).collect()
        })
        .collect();
    let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    let mut reader = c.try_clone().unwrap();
    let expect = payloads.clone();
    let check = std::thread::spawn(move || {
        for want in expect {
            assert_eq!(read_frame(&mut reader).unwrap(), want);
        }
    });
    // Pieces of 1, 2, 3, ... 997 bytes: some split the length prefix, some
    // hold several frames.
    let mut at = 0;
    let mut n = 1;
    while at < stream.len() {
        let end = (at + n).min(stream.len());
        c.write_all(&stream[at..end]).unwrap();
        at = end;
        n = n % 997 + 1;
    }
    check.join().unwrap();

    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.send_to(b"udp", server.udp).unwrap();
    let mut b = [0u8; 16];
    let n = recv(&u, &mut b);
    assert_eq!(&b[..n], b"udp");

    let (src, peer) = server.peers.recv().unwrap();
    assert!(is_stream(&src));
    assert_eq!(
        peer,
        Some(c.local_addr().unwrap()),
        "the stream address names the peer"
    );
    let s = server.stop();
    assert_eq!(s.tcp_accepted, 1);
    assert_eq!(s.tcp_rx_frames, 300);
    assert_eq!(s.tcp_tx_frames, 300);
    assert_eq!(s.tcp_closed_malformed, 0);
}

/// A listener on `[::]` (dual stack) takes an IPv4 and an IPv6
/// connection: the IPv4 peer is named by its plain address (its stream
/// address carries it, for XOR-MAPPED-ADDRESS), not `::ffff:127.0.0.1`.
fn dual_stack_listener(backend: Backend) {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping dual-stack test: no ::1 here");
        return;
    }
    let server = Server::start_on(backend, TcpLimits::default(), "::");
    let port = server.tcp.port();
    for to in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut c = TcpStream::connect(to.as_str()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&frame(b"check")).unwrap();
        assert_eq!(read_frame(&mut c).unwrap(), b"check", "{to}");
        let (src, peer) = server.peers.recv().unwrap();
        assert!(is_stream(&src));
        let me = c.local_addr().unwrap();
        if me.is_ipv4() {
            assert_eq!(peer, Some(me), "the IPv4 peer, plain");
        } else {
            assert_eq!(peer, None, "an IPv6 peer does not fit a stream address");
        }
    }
    let s = server.stop();
    assert_eq!((s.tcp_accepted, s.tcp_rx_frames), (2, 2));
}

/// A length over 1500, or zero, closes the connection and is counted; the
/// loop carries on.
fn malformed_frames_close(backend: Backend) {
    let server = Server::start(backend, TcpLimits::default());
    for bad in [
        &[0x05, 0xdd][..],
        &[0xff, 0xff, 1, 2, 3],
        &[0, 0, 0, 4, b'p', b'i', b'n', b'g'],
    ] {
        let mut c = server.connect();
        c.write_all(&frame(b"fine")).unwrap();
        assert_eq!(read_frame(&mut c).unwrap(), b"fine");
        c.write_all(bad).unwrap();
        assert!(closed_by_server(&mut c), "{bad:?} closes the connection");
    }
    let mut c = server.connect();
    c.write_all(&frame(b"still here")).unwrap();
    assert_eq!(read_frame(&mut c).unwrap(), b"still here");
    let s = server.stop();
    assert_eq!(s.tcp_closed_malformed, 3);
}

/// Connections beyond the per-IP limit are closed at once and counted;
/// those within it work.
fn connections_per_ip_are_bounded(backend: Backend) {
    let limits = TcpLimits {
        max_per_ip: 2,
        ..TcpLimits::default()
    };
    let server = Server::start(backend, limits);
    let mut a = server.connect();
    let mut b = server.connect();
    let mut over = server.connect();
    assert!(
        closed_by_server(&mut over),
        "the third connection is refused"
    );
    for s in [&mut a, &mut b] {
        s.write_all(&frame(b"hello")).unwrap();
        assert_eq!(read_frame(s).unwrap(), b"hello");
    }
    drop(a);
    wait_for("a slot freed", Duration::from_secs(5), || {
        server.stats().tcp_open == 1
    });
    let mut again = server.connect();
    again.write_all(&frame(b"room again")).unwrap();
    assert_eq!(read_frame(&mut again).unwrap(), b"room again");
    let s = server.stop();
    assert_eq!(s.tcp_refused, 1);
    assert_eq!(s.tcp_accepted, 3);
}

/// A connection that is never answered (sends no valid check) is closed
/// after the first-check deadline; one that was answered stays.
fn a_connection_without_a_valid_check_times_out(backend: Backend) {
    let limits = TcpLimits {
        first_stun_timeout: Duration::from_millis(1500),
        ..TcpLimits::default()
    };
    let server = Server::start(backend, limits);
    let mut silent = server.connect();
    silent
        .write_all(&frame(b"mute: not a valid check"))
        .unwrap();
    let mut good = server.connect();
    good.write_all(&frame(b"check")).unwrap();
    assert_eq!(read_frame(&mut good).unwrap(), b"check");
    let opened = Instant::now();
    assert!(closed_by_server(&mut silent));
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(1200),
        "closed at the deadline, not before ({after:?})"
    );
    good.write_all(&frame(b"still answered")).unwrap();
    assert_eq!(read_frame(&mut good).unwrap(), b"still answered");
    let s = server.stop();
    assert_eq!(s.tcp_closed_timeout, 1);
}

/// A peer that stops reading fills its connection's bounded send buffer:
/// frames beyond are dropped and counted, and the loop keeps serving
/// everyone else at once (TCP's head-of-line blocking stays on that
/// connection).
fn a_slow_reader_never_blocks_the_loop(backend: Backend) {
    let limits = TcpLimits {
        out_buffer_bytes: 64 << 10,
        ..TcpLimits::default()
    };
    let server = Server::start(backend, limits);
    let mut slow = server.connect();
    // 20 × 1000 × 1.4 kB = 28 MB asked for, never read.
    for _ in 0..20 {
        slow.write_all(&frame(b"flood")).unwrap();
    }
    wait_for("frames dropped", Duration::from_secs(10), || {
        server.stats().tcp_tx_dropped > 0
    });
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut b = [0u8; 16];
    for _ in 0..20 {
        let t = Instant::now();
        u.send_to(b"ping", server.udp).unwrap();
        let n = recv(&u, &mut b);
        assert_eq!(&b[..n], b"ping");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "UDP answered promptly"
        );
    }
    let mut other = server.connect();
    other.write_all(&frame(b"me too")).unwrap();
    assert_eq!(read_frame(&mut other).unwrap(), b"me too");
    let s = server.stop();
    assert!(
        s.tcp_tx_dropped > 10_000,
        "most of the flood dropped: {}",
        s.tcp_tx_dropped
    );
}

/// `TxQueue::close`: what was queued before goes out, then the
/// connection closes.
fn the_handler_closes_a_connection(backend: Backend) {
    let server = Server::start(backend, TcpLimits::default());
    let mut c = server.connect();
    c.write_all(&frame(b"bye")).unwrap();
    assert_eq!(read_frame(&mut c).unwrap(), b"bye");
    assert!(closed_by_server(&mut c));
    wait_for("closed", Duration::from_secs(5), || {
        server.stats().tcp_open == 0
    });
    let s = server.stop();
    assert_eq!(
        (s.tcp_closed, s.tcp_closed_malformed, s.tcp_closed_timeout),
        (1, 0, 0)
    );
}

fn uring() -> Option<Backend> {
    match probe_uring() {
        Ok(()) => Some(Backend::Uring),
        Err(e) => {
            eprintln!("NOTICE: skipping the io_uring backend: {e}");
            None
        }
    }
}

macro_rules! per_backend {
    ($($body:ident),* $(,)?) => {
        mod epoll {
            $(#[test] fn $body() { super::$body(salon_io::Backend::Epoll) })*
        }
        mod uring {
            $(#[test] fn $body() { if let Some(b) = super::uring() { super::$body(b) } })*
        }
    };
}

per_backend!(
    frames_round_trip,
    dual_stack_listener,
    malformed_frames_close,
    connections_per_ip_are_bounded,
    a_connection_without_a_valid_check_times_out,
    a_slow_reader_never_blocks_the_loop,
    the_handler_closes_a_connection,
);
