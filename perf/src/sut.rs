//! The system under test when we spawn it: start `salon` on loopback, read
//! its `Salon: http://ADDR/` line, sample CPU and memory from `/proc`.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A spawned `salon` process (killed on drop).
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

/// Start `salon` and wait (at most `timeout`) for its URL line.
pub fn spawn(
    path: &Path,
    io_backend: &str,
    workers: usize,
    log: Option<&Path>,
    timeout: Duration,
) -> Result<Spawned, String> {
    let stderr = match log {
        Some(p) => std::fs::File::create(p)
            .map(Stdio::from)
            .map_err(|e| format!("creating {}: {e}", p.display()))?,
        None => Stdio::null(),
    };
    let mut child = Command::new(path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--media-ip",
            "127.0.0.1",
            "--media-port",
            "0",
            "--io-backend",
            io_backend,
            "--workers",
            &workers.to_string(),
        ])
        .env(
            "RUST_LOG",
            std::env::var("SALON_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", path.display()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err("no stdout from salon".into());
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
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
    match rx.recv_timeout(timeout) {
        Ok(url) => Ok(Spawned { child, url }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("salon did not print its URL within {timeout:?}"))
        }
    }
}

impl Spawned {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if it has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Kill and reap.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Clock ticks per second for `/proc/<pid>/stat`.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU seconds (user + system) of `pid` from `/proc/<pid>/stat`
/// (`"self"` works too).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&s).map(|t| t as f64 / ticks_per_s())
}

/// utime + stime (ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_stat_cpu(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The host's 1-minute load average.
pub fn load_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peak resident set (VmHWM) of `pid`, in kB.
pub fn peak_rss_kb(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&s, "VmHWM:")
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let stat = "1234 (sa lon) (x) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 8 0 100 1000 50";
        assert_eq!(parse_stat_cpu(stat), Some(175));
        assert_eq!(parse_stat_cpu("garbage"), None);
        let status = "Name:\tsalon\nVmHWM:\t   20480 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(20480));
        assert!(cpu_seconds("self").is_some());
        assert!(peak_rss_kb("self").unwrap() > 0);
    }
}
