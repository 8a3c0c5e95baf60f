//! Out of file descriptors, the ICE-TCP listener rests instead of spinning:
//! a connection waits in the backlog while `accept` fails with EMFILE, the
//! loop stops watching the listener for a moment (a level-triggered loop
//! would otherwise wake for it without end), and accepts it once
//! descriptors are free again. One test in its own binary: it lowers the
//! process's descriptor limit.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should fail the test"
)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use salon_io::{
    Backend, Handler, IoStats, TcpEndpoint, TcpLimits, TxQueue, Waker, bind_tcp, bind_udp,
    probe_uring, run_with_tcp,
};

struct Echo {
    stop: mpsc::Receiver<()>,
    stopped: bool,
}

impl Handler for Echo {
    fn handle_datagram(&mut self, src: SocketAddr, data: &mut [u8], _: Instant, tx: &mut TxQueue) {
        tx.push(src, data);
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

fn rests_then_accepts(backend: Backend) {
    let socket = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let waker = Waker::new().unwrap();
    let stats = Arc::new(IoStats::new());
    let (stop, stop_rx) = mpsc::channel();
    let (w, s) = (waker.clone(), stats.clone());
    let thread = std::thread::spawn(move || {
        let mut h = Echo {
            stop: stop_rx,
            stopped: false,
        };
        let ep = TcpEndpoint {
            listener,
            limits: TcpLimits::default(),
        };
        run_with_tcp(socket, Some(ep), backend, &w, &mut h, &s)
    });
    std::thread::sleep(Duration::from_millis(100));

    // Take every descriptor but one, then connect with that one: the
    // connection is in the backlog and the server cannot accept it.
    let mut hogs = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hogs.push(f);
    }
    hogs.pop();
    let mut c = TcpStream::connect(addr).unwrap();
    let errors_before = stats.snapshot().rx_errors;
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.snapshot().rx_errors == errors_before {
        assert!(Instant::now() < deadline, "accept never failed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let passes = stats.snapshot().passes;
    std::thread::sleep(Duration::from_millis(500));
    let spent = stats.snapshot().passes - passes;
    // Resting 100 ms between attempts: about 5 passes per attempt at most.
    assert!(spent < 100, "{spent} passes in 500 ms without descriptors");
    let failed = stats.snapshot().rx_errors - errors_before;
    assert!(
        (2..=10).contains(&failed),
        "{failed} accepts tried in 500 ms"
    );

    drop(hogs);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&[0, 4, b'p', b'i', b'n', b'g']).unwrap();
    let mut back = [0u8; 6];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, &[0, 4, b'p', b'i', b'n', b'g']);
    assert_eq!(stats.snapshot().tcp_accepted, 1);

    stop.send(()).unwrap();
    waker.wake();
    thread.join().unwrap().unwrap();
}

#[test]
fn out_of_descriptors_the_listener_rests_then_accepts() {
    // A low limit so that taking every descriptor is quick.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a live local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim), 0);
        lim.rlim_cur = lim.rlim_cur.min(256);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim), 0);
    }
    rests_then_accepts(Backend::Epoll);
    match probe_uring() {
        Ok(()) => rests_then_accepts(Backend::Uring),
        Err(e) => eprintln!("NOTICE: skipping the io_uring backend: {e}"),
    }
}
