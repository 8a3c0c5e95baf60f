//! Fault injection is refused unless enabled; enabled, a worker panics on
//! request (here with the process exit turned off, so the test survives:
//! `signaling-gateway/tests/supervision.rs` checks the exit status 70).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use salon_mediad::{FaultInjectionError, Mediad, MediadConfig};

fn start(fault_injection: bool) -> Mediad {
    let (mediad, _events) = Mediad::start(MediadConfig {
        first_port: 0,
        io_backend: "epoll".parse().unwrap(),
        exit_on_worker_failure: false,
        fault_injection,
        ..MediadConfig::default()
    })
    .unwrap();
    mediad
}

#[test]
fn a_panic_is_injected_only_when_enabled() {
    let off = start(false);
    assert_eq!(off.inject_panic(0), Err(FaultInjectionError::Disabled));
    off.shutdown();

    let on = start(true);
    assert_eq!(
        on.inject_panic(3),
        Err(FaultInjectionError::NoSuchWorker(3))
    );
    assert_eq!(on.inject_panic(0), Ok(()));
    // The worker's thread ends with the panic; shutting down joins it at
    // once rather than waiting on a loop that is gone.
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    on.shutdown();
    assert!(t.elapsed() < Duration::from_secs(2));
}
