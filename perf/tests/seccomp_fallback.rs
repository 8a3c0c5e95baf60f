//! Salon under a seccomp profile that denies io_uring, as Docker's (≥ 25)
//! and containerd's default profiles do: with `--io-backend auto` it says
//! why io_uring is unavailable, runs its media workers on epoll, and still
//! serves a meeting — two synthetic participants (real ICE, DTLS and SRTP,
//! from this crate's harness) exchange audio and video through it, counted
//! by each receiver after SRTP decryption.
//!
//! The filter is installed in the child between `fork` and `exec`
//! (`pre_exec`): `PR_SET_NO_NEW_PRIVS`, then a classic BPF program that
//! makes `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail
//! with `EPERM` (Docker's profile) or `ENOSYS` (podman's, in Debian 12's
//! containers-common) and allows every other call. No root needed: with
//! `NO_NEW_PRIVS` any user may install a filter. It applies to that
//! process only, never to this test.
//!
//! Needs the `salon` binary (`SALON_BIN`, or `../target/debug/salon`, which
//! `scripts/test-all.sh` builds before `cargo test`), like `smoke.rs`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use salon_perf::metrics::Kind;
use salon_perf::run::{RunOptions, Target, run};
use salon_perf::scenario::Scenario;

fn salon_bin() -> Option<PathBuf> {
    let p = std::env::var_os("SALON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/salon"));
    p.exists().then_some(p)
}

/// `AUDIT_ARCH_*` of the architecture this test (and so `salon`) is built
/// for, as the kernel puts it in `seccomp_data.arch` (linux/audit.h).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE

/// Offsets in `struct seccomp_data { int nr; __u32 arch; … }`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The classic BPF program: on another architecture, allow (the x32 ABI
/// numbers differ and are not matched either: this is a test filter, not a
/// sandbox); the three io_uring calls fail with `errno`; the rest is
/// allowed.
fn deny_io_uring_program(errno: i32) -> Vec<libc::sock_filter> {
    let ld_w_abs = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq_k = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret_k = libc::BPF_RET | libc::BPF_K;
    let deny = libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA);
    let denied = [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    let mut prog = vec![
        stmt(ld_w_abs, OFFSET_ARCH),
        // Same arch: go on at the next instruction; else skip to ALLOW.
        jump(jeq_k, AUDIT_ARCH, 0, 1 + 2 * denied.len() as u8),
        stmt(ld_w_abs, OFFSET_NR),
    ];
    for nr in denied {
        // Match: the next instruction (the errno); no match: skip it, to the
        // next test (or ALLOW after the last one).
        prog.push(jump(jeq_k, nr as u32, 0, 1));
        prog.push(stmt(ret_k, deny));
    }
    prog.push(stmt(ret_k, libc::SECCOMP_RET_ALLOW));
    prog
}

/// `cmd` will run under [`deny_io_uring_program`].
fn deny_io_uring(cmd: &mut Command, errno: i32) {
    // Built before the fork: the closure below only makes system calls
    // (no allocation after fork).
    let prog = deny_io_uring_program(errno);
    let len = u16::try_from(prog.len()).unwrap();
    let hook = move || {
        // On the child's stack, pointing into `prog`, which the closure
        // owns: nothing is allocated after the fork.
        let fprog = libc::sock_fprog {
            len,
            filter: prog.as_ptr().cast_mut(),
        };
        // prctl is variadic and the kernel reads its arguments as unsigned
        // longs: pass them as such.
        let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: prctl with integer arguments only; async-signal-safe.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fprog` points to `prog`, alive and unchanged for this
        // call (the kernel copies the program); async-signal-safe.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::c_ulong::from(libc::SECCOMP_MODE_FILTER),
                &raw const fprog,
                zero,
                zero,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec; it
    // allocates nothing, takes no lock, and calls only prctl.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// A `salon` child: its `http://…/` address and its stderr so far.
struct Salon {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Salon {
    /// `deny`: the errno the io_uring calls fail with, or `None` for no
    /// filter.
    fn start(bin: &Path, deny: Option<i32>) -> Salon {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--media-ip",
            "127.0.0.1",
            "--media-port",
            "0",
            "--io-backend",
            "auto",
            "--admin-listen",
            "off",
            "--policy",
        ])
        .arg(repo.join("lua/open.lua"))
        // `salon_io` at debug: its loop names the backend it runs on.
        .env("RUST_LOG", "info,salon_io=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(errno) = deny {
            deny_io_uring(&mut cmd, errno);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in err.lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut lines = out.lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("Salon: ") {
                    let _ = tx.send(url.trim().to_owned());
                    break;
                }
            }
            // Keep draining so salon never blocks on a full pipe.
            for _ in lines {}
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "salon did not print its address within 20 s:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Salon { child, url, log }
    }

    /// Waits (at most 10 s) until the log has a line with all of `parts`;
    /// returns that line, or `None`.
    fn log_line(&self, parts: &[&str]) -> Option<String> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned);
            if found.is_some() || Instant::now() > end {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Salon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MEETING: &str = "name = \"seccomp-fallback\"\nrooms = 1\nroom_sizes = [2]\nvideo_fraction = 1.0\njoin_rate = 10.0\nduration_s = 3.0\n";

#[test]
fn io_uring_denied_by_seccomp_falls_back_to_epoll_and_serves_a_meeting() {
    let Some(bin) = salon_bin() else {
        eprintln!(
            "SKIPPED: no salon binary at ../target/debug/salon (run `cargo build -p salon-gateway --bin salon` first)"
        );
        return;
    };
    // Where io_uring works (the test's own process is not filtered), the
    // same binary picks it without the filter: the fallback below is the
    // filter's doing, not the machine's.
    let uring_here = salon_io::probe_uring().is_ok();
    if uring_here {
        let plain = Salon::start(&bin, None);
        let line = plain.log_line(&["mediad worker started"]);
        assert!(
            line.as_deref().is_some_and(|l| l.contains("backend=uring")),
            "without the filter: {line:?}\n{}",
            plain.log()
        );
        assert!(!plain.log().contains("io_uring unavailable"));
    } else {
        eprintln!("io_uring is unavailable on this machine: only the fallback is checked");
    }

    let t0 = Instant::now();
    let salon = Salon::start(&bin, Some(libc::EPERM));
    // Why: at warn, with the errno of the denied io_uring_setup.
    let why = salon
        .log_line(&["io_uring unavailable", "falling back to epoll"])
        .unwrap_or_else(|| panic!("no fallback warning:\n{}", salon.log()));
    assert!(why.contains("WARN"), "{why}");
    eprintln!("{why}");
    if uring_here {
        assert!(
            why.contains("io_uring_setup: Operation not permitted (os error 1)"),
            "the reason is the EPERM from seccomp: {why}"
        );
    }
    // What: the worker and its loop run on epoll.
    let started = salon.log_line(&["mediad worker started"]);
    assert!(
        started
            .as_deref()
            .is_some_and(|l| l.contains("backend=epoll")),
        "{started:?}\n{}",
        salon.log()
    );
    assert!(
        salon
            .log_line(&["driver loop starting", "backend=epoll"])
            .is_some(),
        "{}",
        salon.log()
    );

    // And it serves: two participants, each publishing audio and video,
    // each receiving the other's through salon.
    let opts = RunOptions {
        scenario: Scenario::parse(MEETING).unwrap(),
        target: Target::Url(salon.url.clone()),
        io_backend: "auto".into(),
        sut_workers: 1,
        threads: 1,
        out: None,
        progress: false,
        connect_grace: Duration::from_secs(15),
        tolerate_failures: false,
        room: None,
    };
    let r = run(&opts);
    assert!(r.complete, "{:?}\n{}", r.error, salon.log());
    assert_eq!((r.participants, r.participants_connected), (2, 2));
    assert_eq!(r.receivers.len(), 2);
    for rx in &r.receivers {
        let other = r
            .receivers
            .iter()
            .map(|x| x.id)
            .find(|&id| id != rx.id)
            .unwrap();
        for kind in [Kind::Audio, Kind::Video] {
            let got: u64 = rx
                .from
                .iter()
                .filter(|f| f.sender == other && f.kind == kind)
                .map(|f| f.packets)
                .sum();
            // 3 s at 50 audio / ~60 video packets per second: ask for
            // a third of that, for a loaded machine.
            assert!(
                got > 50,
                "{} got {got} {kind:?} packets from {other}",
                rx.id
            );
        }
    }
    assert_eq!(r.run_totals.srtp_errors, 0);
    // Still on epoll, and still no io_uring: nothing retried it later.
    assert!(!salon.log().contains("backend=uring"), "{}", salon.log());
    eprintln!(
        "seccomp fallback: {:.1} s, {:.0} packets/s received, loss {:.2} %",
        t0.elapsed().as_secs_f64(),
        r.packets_in_per_s,
        r.loss_percent
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
}

#[test]
fn io_uring_missing_as_podman_reports_it_falls_back_to_epoll() {
    let Some(bin) = salon_bin() else {
        eprintln!("SKIPPED: no salon binary at ../target/debug/salon");
        return;
    };
    // podman's default profile (Debian 12) does not list io_uring: its
    // default action answers ENOSYS, as an old kernel would.
    let salon = Salon::start(&bin, Some(libc::ENOSYS));
    let why = salon
        .log_line(&["io_uring unavailable", "falling back to epoll"])
        .unwrap_or_else(|| panic!("no fallback warning:\n{}", salon.log()));
    if salon_io::probe_uring().is_ok() {
        assert!(
            why.contains("io_uring_setup: Function not implemented (os error 38)"),
            "{why}"
        );
    }
    let started = salon.log_line(&["mediad worker started"]);
    assert!(
        started
            .as_deref()
            .is_some_and(|l| l.contains("backend=epoll")),
        "{started:?}\n{}",
        salon.log()
    );
}
