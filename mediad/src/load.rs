//! Each worker's load, for the operator and for a conference focus that
//! places rooms (jicofo reads a bridge's `stress_level` the same way):
//! the packets a worker moves per second against its configured capacity
//! (`stress`, JVB's packet-rate load: 1.0 is full), and the CPU its thread
//! used. Nothing on the packet path: a worker's thread records its Linux
//! thread id once at start, and a scrape reads the io counters and
//! `/proc/self/task/<tid>/stat`; rates are taken between two scrapes at
//! least a second apart (pure arithmetic in [`LoadSampler::update`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Packets a worker is taken to carry per second at full load, unless
/// configured: JVB's default packet-rate load threshold.
pub const DEFAULT_CAPACITY_PPS: u64 = 50_000;

/// The kernel's clock ticks per second in `/proc/…/stat` (`USER_HZ`: 100 on
/// every Linux architecture's ABI).
const USER_HZ: f64 = 100.0;

/// A worker thread's Linux thread id, 0 until it started.
#[derive(Debug, Default)]
pub(crate) struct ThreadId(AtomicU64);

impl ThreadId {
    /// Called on the worker's own thread.
    pub(crate) fn record_current(&self) {
        if let Some(tid) = current_tid() {
            self.0.store(tid, Ordering::Relaxed);
        }
    }

    fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }
}

/// The calling thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn current_tid() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU seconds (user + system) a thread of this process used.
fn cpu_seconds(tid: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / USER_HZ)
}

/// utime + stime (fields 14 and 15) of a `/proc/…/stat` line; the command
/// name in parentheses may hold spaces and parentheses itself.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// One worker's load as of the last update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerLoad {
    /// Datagrams received and sent per second.
    pub packet_rate: f64,
    /// `packet_rate` over the configured capacity (1.0: full).
    pub stress: f64,
    /// Share of one core its thread used (0.0 to 1.0).
    pub cpu: f64,
    /// CPU seconds its thread used since it started, if readable.
    pub cpu_seconds: Option<f64>,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    packets: Vec<u64>,
    cpu: Vec<Option<f64>>,
}

/// Rates between scrapes.
#[derive(Debug)]
pub(crate) struct LoadSampler {
    capacity_pps: u64,
    state: Mutex<(Option<Sample>, Vec<WorkerLoad>)>,
}

impl LoadSampler {
    pub(crate) fn new(capacity_pps: u64) -> Self {
        Self {
            capacity_pps: capacity_pps.max(1),
            state: Mutex::new((None, Vec::new())),
        }
    }

    /// Reads the workers' CPU times and updates the rates from `packets`
    /// (each worker's datagrams in + out since start).
    pub(crate) fn sample(
        &self,
        now: Instant,
        packets: &[u64],
        threads: &[&ThreadId],
    ) -> Vec<WorkerLoad> {
        let cpu: Vec<Option<f64>> = threads
            .iter()
            .map(|t| t.get().and_then(cpu_seconds))
            .collect();
        self.update(now, packets.to_vec(), cpu)
    }

    /// The pure part of [`LoadSampler::sample`]: rates over the interval
    /// since the previous sample, if it is at least a second old (else the
    /// previous rates, with the new CPU totals).
    pub(crate) fn update(
        &self,
        now: Instant,
        packets: Vec<u64>,
        cpu: Vec<Option<f64>>,
    ) -> Vec<WorkerLoad> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let (last, loads) = &mut *state;
        let due = last
            .as_ref()
            .is_none_or(|s| now.saturating_duration_since(s.at) >= Duration::from_secs(1));
        if due {
            let mut next = vec![WorkerLoad::default(); packets.len()];
            if let Some(prev) = last.as_ref() {
                let dt = now.saturating_duration_since(prev.at).as_secs_f64();
                for (i, w) in next.iter_mut().enumerate() {
                    let dp = packets[i].saturating_sub(prev.packets.get(i).copied().unwrap_or(0));
                    w.packet_rate = dp as f64 / dt;
                    w.stress = w.packet_rate / self.capacity_pps as f64;
                    if let (Some(c), Some(Some(p))) = (cpu[i], prev.cpu.get(i)) {
                        w.cpu = ((c - p) / dt).clamp(0.0, 1.0);
                    }
                }
            }
            *loads = next;
            *last = Some(Sample {
                at: now,
                packets,
                cpu: cpu.clone(),
            });
        }
        let mut out = loads.clone();
        out.resize(cpu.len(), WorkerLoad::default());
        for (w, c) in out.iter_mut().zip(cpu) {
            w.cpu_seconds = c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (mediad (0) x) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rates_come_from_two_samples_a_second_apart() {
        let s = LoadSampler::new(50_000);
        let t0 = Instant::now();
        let first = s.update(t0, vec![0, 0], vec![Some(1.0), None]);
        assert_eq!(first[0].stress, 0.0);
        // Too soon: the rates stay, the CPU totals move.
        let soon = s.update(
            t0 + Duration::from_millis(300),
            vec![9_000, 0],
            vec![Some(1.1), None],
        );
        assert_eq!(soon[0].packet_rate, 0.0);
        assert_eq!(soon[0].cpu_seconds, Some(1.1));
        let later = s.update(
            t0 + Duration::from_secs(2),
            vec![50_000, 10],
            vec![Some(1.5), None],
        );
        assert_eq!(later[0].packet_rate, 25_000.0);
        assert_eq!(later[0].stress, 0.5);
        assert_eq!(later[0].cpu, 0.25);
        assert_eq!(later[1].packet_rate, 5.0);
        assert_eq!(later[1].cpu, 0.0);
    }

    #[test]
    fn this_thread_has_an_id_and_a_cpu_time() {
        let t = ThreadId::default();
        t.record_current();
        let tid = t.get().expect("a Linux thread id");
        assert!(cpu_seconds(tid).is_some());
    }
}
