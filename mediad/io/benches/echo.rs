//! Loopback echo throughput per backend: each iteration sends 1,000
//! datagrams of 200 bytes (at most 256 outstanding) to a driver loop that
//! echoes them, and receives all 1,000 back. `tcp_echo`: the same 1,000
//! packets as RFC 4571 frames over one ICE-TCP connection to the same
//! loop (written 250 at a time, read back before the next 250).

#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: a failure should abort the run"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use salon_io::{
    Backend, Handler, IoStats, TcpEndpoint, TcpLimits, TxQueue, Waker, bind_tcp, bind_udp,
    probe_uring, run, run_with_tcp,
};

const PER_ITER: usize = 1000;
const SIZE: usize = 200;
const WINDOW: usize = 256;

struct Echo {
    stop: Arc<AtomicBool>,
}

impl Handler for Echo {
    fn handle_datagram(&mut self, src: SocketAddr, data: &mut [u8], _: Instant, tx: &mut TxQueue) {
        if let Some(buf) = tx.buffer() {
            buf[..data.len()].copy_from_slice(data);
            tx.commit(src, data.len());
        }
    }
    fn handle_wake(&mut self, _: Instant, _: &mut TxQueue) {}
    fn handle_timeout(&mut self, _: Instant, _: &mut TxQueue) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn round_trip(c: &UdpSocket, server: SocketAddr, payload: &[u8], buf: &mut [u8]) {
    let (mut sent, mut got) = (0, 0);
    while got < PER_ITER {
        while sent < PER_ITER && sent - got < WINDOW {
            c.send_to(payload, server).unwrap();
            sent += 1;
        }
        match c.recv_from(buf) {
            Ok(_) => got += 1,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                // A loss would stall the window: count it as received.
                eprintln!("lost datagram(s): {e}");
                got += 1;
            }
        }
    }
}

fn bench_backend(cr: &mut Criterion, backend: Backend) {
    let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = socket.local_addr().unwrap();
    let waker = Waker::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(IoStats::new());
    let (w, s, st) = (waker.clone(), stats.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut h = Echo { stop: st };
        run(socket, backend, &w, &mut h, &s).unwrap();
    });

    let c = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let payload = [0x5au8; SIZE];
    let mut buf = [0u8; 2048];

    let mut g = cr.benchmark_group("udp_echo");
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.bench_function(BenchmarkId::new("1000x200B", backend), |b| {
        b.iter(|| round_trip(&c, server, &payload, &mut buf));
    });
    g.finish();

    stop.store(true, Ordering::Relaxed);
    waker.wake();
    thread.join().unwrap();
    eprintln!("{backend}: {:?}", stats.snapshot());
}

fn bench_tcp(cr: &mut Criterion, backend: Backend) {
    let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = listener.local_addr().unwrap();
    let waker = Waker::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(IoStats::new());
    let (w, s, st) = (waker.clone(), stats.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut h = Echo { stop: st };
        let ep = TcpEndpoint {
            listener,
            limits: TcpLimits::default(),
        };
        run_with_tcp(socket, Some(ep), backend, &w, &mut h, &s).unwrap();
    });
    let mut c = TcpStream::connect(server).unwrap();
    c.set_nodelay(true).unwrap();
    const BATCH: usize = 250;
    let mut frames = Vec::new();
    for _ in 0..BATCH {
        frames.extend_from_slice(&(SIZE as u16).to_be_bytes());
        frames.extend_from_slice(&[0x5au8; SIZE]);
    }
    let mut back = vec![0u8; frames.len()];

    let mut g = cr.benchmark_group("tcp_echo");
    g.throughput(Throughput::Elements(PER_ITER as u64));
    g.bench_function(BenchmarkId::new("1000x200B", backend), |b| {
        b.iter(|| {
            for _ in 0..PER_ITER / BATCH {
                c.write_all(&frames).unwrap();
                c.read_exact(&mut back).unwrap();
            }
        });
    });
    g.finish();

    stop.store(true, Ordering::Relaxed);
    waker.wake();
    thread.join().unwrap();
    eprintln!("{backend} tcp: {:?}", stats.snapshot());
}

fn echo(cr: &mut Criterion) {
    bench_backend(cr, Backend::Epoll);
    bench_tcp(cr, Backend::Epoll);
    match probe_uring() {
        Ok(()) => {
            bench_backend(cr, Backend::Uring);
            bench_tcp(cr, Backend::Uring);
        }
        Err(e) => eprintln!("NOTICE: skipping io_uring: {e}"),
    }
}

criterion_group!(benches, echo);
criterion_main!(benches);
