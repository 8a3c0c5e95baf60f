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
    reconnect_grace: Duration,
) -> Result<Spawned, String> {
    let mut args: Vec<String> = [
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
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(policy) = open_policy(path) {
        args.push("--policy".into());
        args.push(policy);
    }
    // The reconnect grace period the scenario asks for (0 unless a churn
    // run resumes: a dropped socket is then a departure at once).
    if knows_flag(path, "--reconnect-grace-secs") {
        args.push("--reconnect-grace-secs".into());
        args.push((reconnect_grace.as_secs_f64().ceil() as u64).to_string());
    }
    // Every synthetic participant connects from 127.0.0.1: no per-address
    // cap. The harness reads no `/metrics`: no admin listener (and no
    // clash on its default port).
    if knows_flag(path, "--max-connections-per-ip") {
        args.extend(
            [
                "--max-connections-per-ip",
                "0",
                "--max-http-per-ip",
                "0",
                "--admin-listen",
                "off",
            ]
            .map(str::to_owned),
        );
    }
    spawn_process(path, &args, "Salon: ", log, timeout)
}

/// Whether the `salon` binary at `path` takes `flag`.
fn knows_flag(path: &Path, flag: &str) -> bool {
    Command::new(path)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

/// `<repo>/lua/open.lua` when the `salon` binary knows `--policy` (the
/// gateway's default policy refuses anonymous room creation).
fn open_policy(salon: &Path) -> Option<String> {
    let help = Command::new(salon).arg("--help").output().ok()?;
    if !String::from_utf8_lossy(&help.stdout).contains("--policy") {
        return None;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = repo.join("lua/open.lua");
    p.exists().then(|| p.display().to_string())
}

/// Start the bare UDP reflector and wait for its `Reflector: ADDR` line;
/// the returned `url` is `ADDR`.
pub fn spawn_reflector(
    path: &Path,
    io_backend: &str,
    log: Option<&Path>,
    timeout: Duration,
) -> Result<Spawned, String> {
    let args = ["--listen", "127.0.0.1:0", "--io-backend", io_backend].map(str::to_owned);
    let mut s = spawn_process(path, &args, "Reflector: ", log, timeout)?;
    s.url = s.url.split_whitespace().next().unwrap_or("").to_owned();
    Ok(s)
}

/// Start `path args…` and wait (at most `timeout`) for a stdout line
/// starting with `prefix`; the rest of that line becomes `url`.
pub fn spawn_process(
    path: &Path,
    args: &[String],
    prefix: &str,
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
        .args(args)
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
        return Err(format!("no stdout from {}", path.display()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix(prefix.as_str()) {
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
            Err(format!(
                "{} did not print its address within {timeout:?}",
                path.display()
            ))
        }
    }
}

impl Spawned {
    /// Wrap an already started child.
    pub fn from_child(child: Child, url: String) -> Self {
        Self { child, url }
    }

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

/// UDP counters of the network namespace (`/proc/net/snmp`): what the
/// kernel dropped for full socket buffers shows here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UdpCounters {
    /// Datagrams delivered to sockets.
    pub in_datagrams: u64,
    /// Datagrams that could not be delivered (includes buffer drops).
    pub in_errors: u64,
    /// Datagrams dropped because a receive buffer was full.
    pub rcvbuf_errors: u64,
    /// Sends that failed for a full send buffer.
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    /// `self − earlier`.
    pub fn since(&self, e: &UdpCounters) -> UdpCounters {
        UdpCounters {
            in_datagrams: self.in_datagrams.saturating_sub(e.in_datagrams),
            in_errors: self.in_errors.saturating_sub(e.in_errors),
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(e.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(e.sndbuf_errors),
        }
    }
}

/// The namespace's UDP counters now.
pub fn udp_counters() -> Option<UdpCounters> {
    parse_snmp_udp(&std::fs::read_to_string("/proc/net/snmp").ok()?)
}

/// The `Udp:` counters of a `/proc/net/snmp` text (a header line of names,
/// then a line of values).
pub fn parse_snmp_udp(text: &str) -> Option<UdpCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |k: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == k)?;
        values.get(i)?.parse().ok()
    };
    Some(UdpCounters {
        in_datagrams: get("InDatagrams")?,
        in_errors: get("InErrors")?,
        rcvbuf_errors: get("RcvbufErrors")?,
        sndbuf_errors: get("SndbufErrors")?,
    })
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
        let snmp = "Ip: a b\nIp: 1 2\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 1 5 9 4 2\n";
        assert_eq!(
            parse_snmp_udp(snmp),
            Some(UdpCounters {
                in_datagrams: 10,
                in_errors: 5,
                rcvbuf_errors: 4,
                sndbuf_errors: 2
            })
        );
        assert_eq!(parse_snmp_udp("Udp: x\n"), None);
        assert!(udp_counters().is_some());
        assert!(peak_rss_kb("self").unwrap() > 0);
    }
}
