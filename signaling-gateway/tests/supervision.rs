//! Supervision: a panic in a media worker makes `salon` exit with status
//! 70 after saying why at error level, for its supervisor to restart it
//! (`docs/security.md`). The panic is injected with SIGUSR2, which
//! only `--enable-fault-injection` honours.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SALON: &str = env!("CARGO_BIN_EXE_salon");

/// Starts salon with `args`; returns once it announced its address.
fn start(args: &[&str]) -> Child {
    let mut child = Command::new(SALON)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--io-backend",
            "epoll",
            // No admin listener: the tests run at once, and its default
            // port is one.
            "--admin-listen",
            "off",
            "--policy",
            &format!("{}/../lua/policy.lua", env!("CARGO_MANIFEST_DIR")),
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("Salon: http://"), "{line}");
    // Keep draining stdout so salon never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

fn usr2(child: &Child) {
    let ok = Command::new("kill")
        .args(["-USR2", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Its exit status within `limit`, or `None` (then it is killed).
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

#[test]
fn a_panicking_media_worker_exits_the_process_with_status_70() {
    let mut child = start(&["--enable-fault-injection"]);
    usr2(&child);
    let status = wait(&mut child, Duration::from_secs(10)).expect("salon exited");
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(70), "{status:?}\n{err}");
    assert!(
        err.contains("ERROR") && err.contains("media worker failed"),
        "the reason at error level:\n{err}"
    );
    assert!(
        err.contains("fault injection: a panic was requested"),
        "the panic's message:\n{err}"
    );
}

#[test]
fn without_the_flag_sigusr2_does_not_reach_the_media_workers() {
    let mut child = start(&[]);
    usr2(&child);
    // Without a handler SIGUSR2 terminates the process by the signal, not
    // by a worker's panic: no status 70, nothing about a worker.
    let status = wait(&mut child, Duration::from_secs(10)).expect("salon exited");
    let err = stderr_of(&mut child);
    assert_ne!(status.code(), Some(70), "{err}");
    assert!(!err.contains("media worker failed"), "{err}");
}
