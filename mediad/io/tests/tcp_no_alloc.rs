//! No heap allocation per frame on an established ICE-TCP connection, in
//! both loops: reading, deframing, handing frames to the handler, framing
//! the answers into the connection's send ring and writing them. A
//! counting global allocator counts only on the driver thread, once the
//! connection is warm (the handler switches counting on).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should fail the test"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use salon_io::{
    Backend, Handler, IoStats, TcpEndpoint, TcpLimits, TxQueue, Waker, bind_tcp, bind_udp,
    probe_uring, run_with_tcp,
};

struct Counting;

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);

fn note() {
    if COUNT_HERE.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM: u64 = 200;
const FRAMES: u64 = 5_000;

/// Echoes every frame; counts allocations on this thread after `WARM`
/// frames; stops after `WARM + FRAMES`.
struct Echo {
    seen: u64,
    /// Woken once the client read every echo: the loop stops only then
    /// (stopping at the last frame seen could drop echoes not yet written
    /// to the connection, and the client then read an early EOF).
    stop: bool,
}

impl Handler for Echo {
    fn handle_datagram(&mut self, src: SocketAddr, data: &mut [u8], _: Instant, tx: &mut TxQueue) {
        tx.push(src, data);
        self.seen += 1;
        if self.seen == WARM {
            COUNT_HERE.with(|c| c.set(true));
        }
    }
    fn handle_wake(&mut self, _: Instant, _: &mut TxQueue) {
        self.stop = self.seen >= WARM + FRAMES;
    }
    fn handle_timeout(&mut self, _: Instant, _: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        if self.seen >= WARM + FRAMES {
            // Nothing the test counts happens after the last frame.
            COUNT_HERE.with(|c| c.set(false));
        }
        self.stop
    }
}

fn frames_allocate_nothing(backend: Backend) {
    ALLOCS.store(0, Ordering::SeqCst);
    let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let waker = Waker::new().unwrap();
    let wake = waker.clone();
    let stats = Arc::new(IoStats::new());
    let (done_tx, done) = mpsc::channel();
    let s = stats.clone();
    let thread = std::thread::spawn(move || {
        let mut h = Echo {
            seen: 0,
            stop: false,
        };
        let ep = TcpEndpoint {
            listener,
            limits: TcpLimits::default(),
        };
        let r = run_with_tcp(socket, Some(ep), backend, &waker, &mut h, &s);
        let _ = done_tx.send(());
        r
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = c.try_clone().unwrap();
    let total = WARM + FRAMES;
    // Bytes of echoes read back: the writer stays within 64 KiB of them, so
    // the driver's per-connection send buffer (256 KiB, whole frames dropped
    // when full, by design) never fills however slowly this reader runs
    // on a loaded machine.
    let read = Arc::new(AtomicU64::new(0));
    let read_by_echo = read.clone();
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 2 + 1200];
        for _ in 0..total {
            reader.read_exact(&mut b[..2]).unwrap();
            let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
            reader.read_exact(&mut b[2..2 + n]).unwrap();
            read_by_echo.fetch_add(2 + n as u64, Ordering::Relaxed);
        }
    });
    // Frames of 100..1200 bytes, several per write, in bursts.
    let mut out = Vec::new();
    let mut written = 0u64;
    for k in 0..total {
        let n = 100 + (k as usize * 37) % 1100;
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend(std::iter::repeat_n(k as u8, n));
        if out.len() > 8_000 || k + 1 == total {
            let give_up = Instant::now() + Duration::from_secs(10);
            while written - read.load(Ordering::Relaxed) > 64 * 1024 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            c.write_all(&out).unwrap();
            written += out.len() as u64;
            out.clear();
        }
    }
    echo.join().unwrap();
    wake.wake();
    done.recv_timeout(Duration::from_secs(10)).unwrap();
    thread.join().unwrap().unwrap();
    let snap = stats.snapshot();
    assert_eq!(snap.tcp_rx_frames, total);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on the driver thread for {FRAMES} frames"
    );
}

#[test]
fn epoll_frames_allocate_nothing() {
    frames_allocate_nothing(Backend::Epoll);
}

#[test]
fn uring_frames_allocate_nothing() {
    match probe_uring() {
        Ok(()) => frames_allocate_nothing(Backend::Uring),
        Err(e) => eprintln!("NOTICE: skipping the io_uring backend: {e}"),
    }
}
