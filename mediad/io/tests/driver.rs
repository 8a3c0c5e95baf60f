//! Loopback tests of both driver backends. Every test body is generic over
//! the backend and runs once per backend; io_uring is skipped (with a
//! notice) when `probe_uring` fails, e.g. under a seccomp profile.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should fail the test"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use salon_io::{
    Backend, Handler, IoError, IoStats, IoStatsSnapshot, MAX_DATAGRAM, TxQueue, Waker, bind_udp,
    probe_uring, run,
};

enum Cmd {
    Stop,
}

/// What every test handler does with control commands.
#[derive(Default)]
struct Control {
    stop: bool,
    wakes: u64,
}

impl Control {
    fn on_wake(&mut self, cmds: &Receiver<Cmd>) {
        self.wakes += 1;
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Stop => self.stop = true,
            }
        }
    }
}

/// Echoes every datagram to its sender, writing in place into a TxQueue
/// buffer; optionally also sends a copy to `also` (to provoke send errors).
struct Echo {
    cmds: Receiver<Cmd>,
    ctl: Control,
    also: Option<SocketAddr>,
    /// Sleep this long on the first datagram (a stalled core), once.
    stall: Option<Duration>,
}

impl Handler for Echo {
    fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        _now: Instant,
        tx: &mut TxQueue,
    ) {
        if let Some(d) = self.stall.take() {
            std::thread::sleep(d);
        }
        if let Some(dst) = self.also {
            tx.push(dst, data);
        }
        if let Some(buf) = tx.buffer() {
            buf[..data.len()].copy_from_slice(data);
            tx.commit(src, data.len());
        }
    }
    fn handle_wake(&mut self, _now: Instant, _tx: &mut TxQueue) {
        self.ctl.on_wake(&self.cmds);
    }
    fn handle_timeout(&mut self, _now: Instant, _tx: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        self.ctl.stop
    }
}

/// A driver loop running on its own thread.
struct Server<H> {
    addr: SocketAddr,
    waker: Waker,
    cmds: Sender<Cmd>,
    stats: Arc<IoStats>,
    thread: JoinHandle<(H, Result<(), IoError>)>,
}

impl<H: Handler + Send + 'static> Server<H> {
    fn start(backend: Backend, bind: &str, make: impl FnOnce(Receiver<Cmd>) -> H) -> Self {
        let socket = bind_udp(bind.parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let waker = Waker::new().unwrap();
        let (cmds, rx) = mpsc::channel();
        let mut handler = make(rx);
        let stats = Arc::new(IoStats::new());
        let (w, s) = (waker.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let r = run(socket, backend, &w, &mut handler, &s);
            (handler, r)
        });
        Self {
            addr,
            waker,
            cmds,
            stats,
            thread,
        }
    }

    /// Ask the loop to stop through the channel + waker, and join it
    /// (failing the test if it does not return within 10 s).
    fn stop(self) -> (H, IoStatsSnapshot) {
        self.cmds.send(Cmd::Stop).unwrap();
        self.waker.wake();
        join_within(self.thread, Duration::from_secs(10), &self.stats)
    }
}

fn join_within<H>(
    thread: JoinHandle<(H, Result<(), IoError>)>,
    limit: Duration,
    stats: &IoStats,
) -> (H, IoStatsSnapshot) {
    let give_up = Instant::now() + limit;
    while !thread.is_finished() {
        assert!(Instant::now() < give_up, "driver loop did not return");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (h, r) = thread.join().unwrap();
    r.unwrap();
    (h, stats.snapshot())
}

fn client(bind: &str) -> UdpSocket {
    let c = bind_udp(bind.parse().unwrap()).unwrap();
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c
}

/// `recv_from`, retrying when interrupted (a socket with a read timeout
/// reports EINTR instead of restarting, e.g. around a process freeze).
fn recv(c: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match c.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Datagram number `seq`: 1..=1400 bytes, content derived from `seq`.
fn datagram(seq: u32) -> Vec<u8> {
    let len = 1 + (seq.wrapping_mul(7919) % 1400) as usize;
    (0..len)
        .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i * 7) as u8 ^ (seq >> 8) as u8)
        .collect()
}

fn echo_10k(backend: Backend) {
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: None,
        stall: None,
    });
    let c = client("127.0.0.1:0");
    let mut buf = [0u8; 2048];
    let (total, burst) = (10_000u32, 200u32);
    let mut resent = 0u32;
    for start in (0..total).step_by(burst as usize) {
        // Outstanding datagrams of this burst, as a multiset of contents.
        let mut want: HashMap<Vec<u8>, u32> = HashMap::new();
        for seq in start..(start + burst).min(total) {
            let d = datagram(seq);
            c.send_to(&d, server.addr).unwrap();
            *want.entry(d).or_default() += 1;
        }
        let mut rounds = 0;
        while !want.is_empty() {
            match recv(&c, &mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, server.addr);
                    let got = &buf[..n];
                    let left = want.get_mut(got).expect("echo matches a sent datagram");
                    *left -= 1;
                    if *left == 0 {
                        want.remove(got);
                    }
                }
                Err(_) => {
                    // Loopback should not drop; resend what is missing, a
                    // bounded number of times.
                    rounds += 1;
                    assert!(rounds <= 5, "{} datagrams never came back", want.len());
                    for (d, k) in &want {
                        for _ in 0..*k {
                            c.send_to(d, server.addr).unwrap();
                            resent += 1;
                        }
                    }
                }
            }
        }
    }
    let (h, s) = server.stop();
    assert!(h.ctl.stop && h.ctl.wakes >= 1);
    if resent > 0 {
        eprintln!("{backend}: resent {resent} datagrams");
    }
    assert!(s.rx_datagrams >= u64::from(total), "{s:?}");
    assert_eq!(s.tx_datagrams, s.rx_datagrams, "{s:?}");
    assert_eq!(s.rx_bytes, s.tx_bytes);
    assert_eq!((s.tx_errors, s.rx_truncated, s.tx_queue_full), (0, 0, 0));
}

fn echo_ipv6(backend: Backend) {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping IPv6 test: no ::1 here");
        return;
    }
    let server = Server::start(backend, "[::1]:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: None,
        stall: None,
    });
    let c = client("[::1]:0");
    let mut buf = [0u8; 2048];
    for seq in 0..50u32 {
        let d = datagram(seq);
        c.send_to(&d, server.addr).unwrap();
        let (n, from) = recv(&c, &mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&d[..], server.addr));
    }
    let (_, s) = server.stop();
    assert_eq!(s.rx_datagrams, 50);
}

/// Echoes like [`Echo`] and records each datagram's source as the handler
/// saw it.
struct Sources {
    cmds: Receiver<Cmd>,
    ctl: Control,
    seen: Vec<SocketAddr>,
}

impl Handler for Sources {
    fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        _now: Instant,
        tx: &mut TxQueue,
    ) {
        self.seen.push(src);
        tx.push(src, data);
    }
    fn handle_wake(&mut self, _now: Instant, _tx: &mut TxQueue) {
        self.ctl.on_wake(&self.cmds);
    }
    fn handle_timeout(&mut self, _now: Instant, _tx: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        self.ctl.stop
    }
}

/// Bound on `[::]` (dual stack), the loop serves an IPv4 peer and an IPv6
/// one: the handler sees the IPv4 peer as plain IPv4 (not
/// `::ffff:127.0.0.1`), and its replies (to that plain address) arrive.
fn dual_stack(backend: Backend) {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping dual-stack test: no ::1 here");
        return;
    }
    let server = Server::start(backend, "[::]:0", |cmds| Sources {
        cmds,
        ctl: Control::default(),
        seen: Vec::new(),
    });
    assert!(server.addr.is_ipv6());
    let port = server.addr.port();
    let v4 = client("127.0.0.1:0");
    let v6 = client("[::1]:0");
    let to_v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let to_v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let mut buf = [0u8; 2048];
    for seq in 0..20u32 {
        for (c, to) in [(&v4, to_v4), (&v6, to_v6)] {
            let d = datagram(seq);
            c.send_to(&d, to).unwrap();
            let (n, from) = recv(c, &mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&d[..], to), "the echo comes back");
        }
    }
    let (h, s) = server.stop();
    let (a4, a6) = (v4.local_addr().unwrap(), v6.local_addr().unwrap());
    assert_eq!(h.seen.len(), 40);
    assert!(
        h.seen.iter().step_by(2).all(|a| *a == a4),
        "plain IPv4: {:?}",
        h.seen.first()
    );
    assert!(
        h.seen.iter().skip(1).step_by(2).all(|a| *a == a6),
        "{:?}",
        h.seen.get(1)
    );
    assert_eq!((s.tx_datagrams, s.tx_errors), (40, 0));
}

/// Sends that fail (an IPv6 destination on an IPv4 socket) are counted and
/// do not end the loop, which keeps echoing.
fn send_errors_are_not_fatal(backend: Backend) {
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: Some("[::1]:9".parse().unwrap()),
        stall: None,
    });
    let c = client("127.0.0.1:0");
    let mut buf = [0u8; 2048];
    for seq in 0..20u32 {
        let d = datagram(seq);
        c.send_to(&d, server.addr).unwrap();
        let (n, _) = recv(&c, &mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..]);
    }
    let (_, s) = server.stop();
    assert_eq!(s.tx_errors, 20, "{s:?}");
    assert_eq!(s.tx_datagrams, 20, "{s:?}");
}

/// The loop stalls while 2,000 datagrams queue up (more than the io_uring
/// backend's provided buffers: its multishot receive runs out and must be
/// re-armed); every datagram still comes back.
fn burst_during_stall(backend: Backend) {
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: None,
        stall: Some(Duration::from_millis(100)),
    });
    let c = client("127.0.0.1:0");
    let total = 2000u32;
    for seq in 0..total {
        c.send_to(&seq.to_be_bytes(), server.addr).unwrap();
    }
    let mut seen = vec![false; total as usize];
    let mut buf = [0u8; 64];
    for _ in 0..total {
        let (n, _) = recv(&c, &mut buf).expect("every datagram echoed");
        let seq = u32::from_be_bytes(buf[..n].try_into().unwrap());
        assert!(!std::mem::replace(&mut seen[seq as usize], true));
    }
    let (_, s) = server.stop();
    assert_eq!(s.rx_datagrams, u64::from(total), "{s:?}");
    if backend == Backend::Uring {
        assert!(s.rx_rearms >= 1, "{s:?}");
    }
}

/// Sends every datagram to `sink` `copies` times: one packet forwarded to
/// a large room.
struct FanOut {
    cmds: Receiver<Cmd>,
    ctl: Control,
    sink: SocketAddr,
    copies: usize,
    stall: Option<Duration>,
}

impl Handler for FanOut {
    fn handle_datagram(&mut self, _: SocketAddr, data: &mut [u8], _: Instant, tx: &mut TxQueue) {
        if let Some(d) = self.stall.take() {
            std::thread::sleep(d);
        }
        for _ in 0..self.copies {
            tx.push(self.sink, data);
        }
    }
    fn handle_wake(&mut self, _now: Instant, _tx: &mut TxQueue) {
        self.ctl.on_wake(&self.cmds);
    }
    fn handle_timeout(&mut self, _now: Instant, _tx: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        self.ctl.stop
    }
}

/// 40 datagrams arrive together (the loop is stalled) and each fans out
/// to 300 destinations: 12,000 sends in what used to be one pass, six
/// times the queue. The driver sends early; nothing is refused.
fn fan_out_beyond_the_queue(backend: Backend) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = Server::start(backend, "127.0.0.1:0", |cmds| FanOut {
        cmds,
        ctl: Control::default(),
        sink: sink.local_addr().unwrap(),
        copies: 300,
        stall: Some(Duration::from_millis(100)),
    });
    let c = client("127.0.0.1:0");
    for seq in 0..40u32 {
        c.send_to(&seq.to_be_bytes(), server.addr).unwrap();
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    while server.stats.snapshot().tx_datagrams < 12_000 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (_, s) = server.stop();
    assert_eq!(s.rx_datagrams, 40, "{s:?}");
    assert_eq!((s.tx_datagrams, s.tx_queue_full), (12_000, 0), "{s:?}");
}

fn oversized_dropped(backend: Backend) {
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: None,
        stall: None,
    });
    let c = client("127.0.0.1:0");
    let mut buf = [0u8; 4096];
    for (len, echoed) in [
        (MAX_DATAGRAM + 1, false),
        (2000, false),
        (4000, false),
        (MAX_DATAGRAM, true),
        (60_000, false),
        (100, true),
    ] {
        let d: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        c.send_to(&d, server.addr).unwrap();
        if echoed {
            let (n, _) = recv(&c, &mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..]);
        }
    }
    // Nothing else comes back.
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert!(recv(&c, &mut buf).is_err());
    let (_, s) = server.stop();
    assert_eq!(s.rx_truncated, 4, "{s:?}");
    assert_eq!(s.rx_datagrams, 2, "{s:?}");
}

/// Another thread pushes a command and wakes the loop; the handler sees
/// `handle_wake`, reads the channel and stops.
fn wake_stops(backend: Backend) {
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Echo {
        cmds,
        ctl: Control::default(),
        also: None,
        stall: None,
    });
    let (cmds, waker) = (server.cmds.clone(), server.waker.clone());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        cmds.send(Cmd::Stop).unwrap();
        waker.wake();
    });
    let (h, s) = join_within(server.thread, Duration::from_secs(10), &server.stats);
    t.join().unwrap();
    assert!(h.ctl.stop);
    assert!(h.ctl.wakes >= 1 && s.wakes >= 1);
}

/// A handler with a deadline 20 ms ahead sees `handle_timeout` (not before
/// the deadline), then stops by itself.
struct Timer {
    cmds: Receiver<Cmd>,
    ctl: Control,
    deadline: Option<Instant>,
    fired_at: Option<Instant>,
    fired: u32,
}

impl Handler for Timer {
    fn handle_datagram(&mut self, _: SocketAddr, _: &mut [u8], _: Instant, _: &mut TxQueue) {}
    fn handle_wake(&mut self, _now: Instant, _tx: &mut TxQueue) {
        self.ctl.on_wake(&self.cmds);
    }
    fn handle_timeout(&mut self, now: Instant, _tx: &mut TxQueue) {
        self.fired += 1;
        if self.deadline.is_some_and(|d| d <= now) {
            self.fired_at = Some(now);
            self.deadline = None;
            self.ctl.stop = true;
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
    fn should_stop(&self) -> bool {
        self.ctl.stop
    }
}

fn timeout_fires(backend: Backend) {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(20);
    let server = Server::start(backend, "127.0.0.1:0", |cmds| Timer {
        cmds,
        ctl: Control::default(),
        deadline: Some(deadline),
        fired_at: None,
        fired: 0,
    });
    let give_up = Instant::now() + Duration::from_secs(10);
    while !server.thread.is_finished() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(2));
    }
    let (h, _) = server.stop_if_running();
    let at = h.fired_at.expect("handle_timeout ran");
    assert!(at >= deadline);
    assert_eq!(
        h.fired, 1,
        "handle_timeout runs only once the deadline passed"
    );
}

impl<H: Handler + Send + 'static> Server<H> {
    fn stop_if_running(self) -> (H, IoStatsSnapshot) {
        let _ = self.cmds.send(Cmd::Stop);
        self.waker.wake();
        join_within(self.thread, Duration::from_secs(10), &self.stats)
    }
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
    echo_10k,
    fan_out_beyond_the_queue,
    echo_ipv6,
    dual_stack,
    send_errors_are_not_fatal,
    oversized_dropped,
    burst_during_stall,
    wake_stops,
    timeout_fires,
);
