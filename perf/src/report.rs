//! The report: JSON, a table for the terminal and a hand-written SVG plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::media::{ReceiverDetail, Totals};

/// One progress sample (one per second).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub t_s: f64,
    /// Participants with every transport connected.
    pub connected: usize,
    /// Packets sent per second over the last interval.
    pub pps_out: f64,
    /// Packets received per second over the last interval.
    pub pps_in: f64,
    /// Loss over the last interval (%).
    pub loss_percent: f64,
    /// p99 latency over the last interval (ms).
    pub p99_ms: Option<f64>,
    /// SUT CPU over the last interval (% of one core), when spawned.
    pub sut_cpu_percent: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `--io-backend` given to the SUT (`"unknown"` with `--target`).
    pub backend: String,
    /// `salon`, `janus`, `reflector` or `url`.
    pub target_kind: String,
    /// The URL driven.
    pub target: String,
    /// The run went to its end.
    pub complete: bool,
    /// Why it did not.
    pub error: Option<String>,
    /// Participants in the scenario.
    pub participants: usize,
    /// Participants that got `joined`.
    pub participants_joined: usize,
    /// Participants with every transport connected.
    pub participants_connected: usize,
    /// Participants with a transport that failed to connect (only with
    /// `tolerate_failures`; otherwise the first failure ends the run).
    pub participants_failed: usize,
    /// Harness media threads.
    pub harness_threads: usize,
    /// Length of the measurement window (s).
    pub window_s: f64,
    /// Packets sent by all synthetic publishers, per second.
    pub packets_out_per_s: f64,
    /// Packets received by all synthetic subscribers, per second.
    pub packets_in_per_s: f64,
    /// Bytes sent per second.
    pub bytes_out_per_s: f64,
    /// Bytes received per second.
    pub bytes_in_per_s: f64,
    /// Loss from sequence numbers over all received SSRCs (%).
    pub loss_percent: f64,
    /// Median added latency (ms).
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile added latency (ms).
    pub latency_p99_ms: Option<f64>,
    /// Largest latency seen during the whole run (ms).
    pub latency_max_ms: Option<f64>,
    /// Latency samples in the window.
    pub latency_samples: u64,
    /// SUT CPU seconds in the window (spawned SUT only).
    pub sut_cpu_s: Option<f64>,
    /// SUT CPU in the window, % of one core.
    pub sut_cpu_percent: Option<f64>,
    /// SUT peak RSS (VmHWM), MiB.
    pub sut_peak_rss_mb: Option<f64>,
    /// Packets received by subscribers per SUT CPU-second (window).
    pub forwarded_packets_per_cpu_s: Option<f64>,
    /// The harness's own CPU seconds over the whole run (ramp included).
    pub harness_cpu_s: Option<f64>,
    /// The harness's own CPU seconds in the window (same 2 cores as the SUT).
    pub harness_cpu_window_s: Option<f64>,
    /// UDP counters of the network namespace over the window (all sockets
    /// of the host, or of the namespace in Janus/compare runs): buffer
    /// drops by the kernel show in `rcvbuf_errors`.
    pub udp_window: Option<crate::sut::UdpCounters>,
    /// The host's 1-minute load average at the end (other processes on a
    /// shared machine distort every figure above when it exceeds the cores).
    pub host_load_1m: Option<f64>,
    /// Video packets received over the whole run by the sender's
    /// simulcast layer: `[no simulcast, low, mid, high]`.
    pub video_layers_received: [u64; 4],
    /// Counters over the window.
    pub window_totals: Totals,
    /// Counters over the whole run.
    pub run_totals: Totals,
    /// Gateway `error` messages (first 20).
    pub gateway_errors: Vec<String>,
    /// One sample per second.
    pub timeline: Vec<Sample>,
    /// What each participant received.
    pub receivers: Vec<ReceiverDetail>,
    /// Churn figures and invariant violations (churn runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<crate::churn::ChurnReport>,
}

type Series = (
    &'static str,
    &'static str,
    Box<dyn Fn(&Sample) -> Option<f64>>,
    f64,
);

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"))
}

impl Report {
    /// A table for humans.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.clone()),
            ("target", self.target_kind.clone()),
            ("backend", self.backend.clone()),
            (
                "status",
                match &self.error {
                    None => "complete".to_owned(),
                    Some(e) => format!("PARTIAL: {e}"),
                },
            ),
            (
                "participants",
                format!(
                    "{} planned, {} joined, {} connected, {} failed",
                    self.participants,
                    self.participants_joined,
                    self.participants_connected,
                    self.participants_failed
                ),
            ),
            ("window", format!("{:.1} s", self.window_s)),
            ("packets out/s", format!("{:.0}", self.packets_out_per_s)),
            ("packets in/s", format!("{:.0}", self.packets_in_per_s)),
            (
                "Mbit/s out / in",
                format!(
                    "{:.2} / {:.2}",
                    self.bytes_out_per_s * 8e-6,
                    self.bytes_in_per_s * 8e-6
                ),
            ),
            ("loss", format!("{:.3} %", self.loss_percent)),
            (
                "latency p50 / p99 / max",
                format!(
                    "{} / {} / {} ms",
                    opt(self.latency_p50_ms, 2),
                    opt(self.latency_p99_ms, 2),
                    opt(self.latency_max_ms, 2)
                ),
            ),
            (
                "SUT CPU",
                format!(
                    "{} s ({} % of a core)",
                    opt(self.sut_cpu_s, 2),
                    opt(self.sut_cpu_percent, 1)
                ),
            ),
            (
                "SUT peak RSS",
                format!("{} MiB", opt(self.sut_peak_rss_mb, 1)),
            ),
            (
                "forwarded pkts / CPU-s",
                opt(self.forwarded_packets_per_cpu_s, 0),
            ),
            (
                "video layers rx (-/l/m/h)",
                format!(
                    "{} / {} / {} / {}",
                    self.video_layers_received[0],
                    self.video_layers_received[1],
                    self.video_layers_received[2],
                    self.video_layers_received[3]
                ),
            ),
            (
                "harness CPU run / window",
                format!(
                    "{} s / {} s",
                    opt(self.harness_cpu_s, 2),
                    opt(self.harness_cpu_window_s, 2)
                ),
            ),
            (
                "UDP rcvbuf / sndbuf drops",
                self.udp_window.map_or("-".to_owned(), |u| {
                    format!("{} / {} (window)", u.rcvbuf_errors, u.sndbuf_errors)
                }),
            ),
            ("host load (1 min)", opt(self.host_load_1m, 2)),
            ("late send ticks", self.run_totals.late_ticks.to_string()),
            (
                "send errors / SRTP errors",
                format!(
                    "{} / {}",
                    self.run_totals.send_errors, self.run_totals.srtp_errors
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<26} {v}");
        }
        if let Some(c) = &self.churn {
            let ms = |v: Option<f64>| opt(v, 0);
            let rows = [
                (
                    "churn: started / joins",
                    format!("{} / {}", c.started, c.joins),
                ),
                (
                    "churn: leaves/reloads/drops",
                    format!("{} / {} / {}", c.leaves, c.reloads, c.drops),
                ),
                (
                    "churn: resumes kept/new",
                    format!(
                        "{} / {} (worst {:.0} ms from the drop)",
                        c.resumes, c.resume_reloads, c.resume_max_ms
                    ),
                ),
                ("churn: most present/room", format!("{:?}", c.max_present)),
                (
                    "churn: time to media",
                    format!(
                        "p50 {} ms, worst {} ms ({} participants)",
                        ms(c.time_to_media_p50_ms),
                        ms(c.time_to_media_max_ms),
                        c.time_to_media_samples
                    ),
                ),
                (
                    "churn: offers, worst wait",
                    format!("{}, {:.1} ms", c.offers, c.answer_wait_max_ms),
                ),
                (
                    "churn: largest SDP",
                    format!(
                        "{} m-lines, {} bytes",
                        c.largest_sdp_mlines, c.largest_sdp_bytes
                    ),
                ),
                ("churn: pair checks (3 s)", c.pair_checks.to_string()),
                ("churn: VIOLATIONS", c.violations_total.to_string()),
            ];
            for (k, v) in rows {
                let _ = writeln!(s, "{k:<26} {v}");
            }
            for v in c.violations.iter().take(20) {
                let _ = writeln!(
                    s,
                    "  {:7.1}s {} receiver {:?} other {:?}: {}",
                    v.t_s, v.kind, v.receiver, v.other, v.detail
                );
            }
        }
        s
    }

    /// A small SVG chart: packets/s in and out (left axis) and SUT CPU %
    /// (right axis) over time.
    pub fn svg(&self) -> String {
        let (w, h, m) = (640.0f64, 320.0f64, 48.0f64);
        let t_max = self.timeline.last().map_or(1.0, |s| s.t_s).max(1.0);
        let pps_max = self
            .timeline
            .iter()
            .map(|s| s.pps_in.max(s.pps_out))
            .fold(1.0f64, f64::max)
            * 1.1;
        let cpu_max = self
            .timeline
            .iter()
            .filter_map(|s| s.sut_cpu_percent)
            .fold(100.0f64, f64::max);
        let x = |t: f64| m + (t / t_max) * (w - 2.0 * m);
        let y = |v: f64, max: f64| h - m - (v / max) * (h - 2.0 * m);
        let line = |f: &dyn Fn(&Sample) -> Option<f64>, max: f64| {
            let mut p = String::new();
            for s in &self.timeline {
                if let Some(v) = f(s) {
                    let _ = write!(p, "{:.1},{:.1} ", x(s.t_s), y(v, max));
                }
            }
            p
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{m}" y="20" font-size="13">salon-perf: {} ({}){}</text>"#,
            xml(&self.scenario),
            xml(&self.backend),
            if self.complete { "" } else { " — partial" }
        );
        let _ = writeln!(
            s,
            r##"<rect x="{m}" y="{m}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            w - 2.0 * m,
            h - 2.0 * m
        );
        for i in 0..=4 {
            let f = f64::from(i) / 4.0;
            let yy = h - m - f * (h - 2.0 * m);
            let _ = writeln!(
                s,
                r##"<line x1="{m}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text><text x="{:.1}" y="{:.1}">{:.0}%</text>"##,
                w - m,
                m - 4.0,
                yy + 4.0,
                f * pps_max,
                w - m + 4.0,
                yy + 4.0,
                f * cpu_max
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (s), 0 to {t_max:.0}</text>"#,
            w / 2.0,
            h - 12.0
        );
        let series: [Series; 3] = [
            (
                "pps out",
                "#1f77b4",
                Box::new(|s: &Sample| Some(s.pps_out)),
                pps_max,
            ),
            (
                "pps in",
                "#2ca02c",
                Box::new(|s: &Sample| Some(s.pps_in)),
                pps_max,
            ),
            (
                "SUT CPU %",
                "#d62728",
                Box::new(|s: &Sample| s.sut_cpu_percent),
                cpu_max,
            ),
        ];
        for (i, (name, color, f, max)) in series.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                line(f.as_ref(), *max).trim_end()
            );
            let lx = m + 10.0 + 110.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
                m + 6.0,
                lx + 14.0,
                m + 15.0
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write `<prefix>.json` and `<prefix>.svg`; returns their paths.
    pub fn write(&self, prefix: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        if let Some(dir) = prefix.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let json = with_ext(prefix, "json");
        let svg = with_ext(prefix, "svg");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&json, text)?;
        std::fs::write(&svg, self.svg())?;
        Ok((json, svg))
    }
}

/// Median of `v` (NaN-free values), `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Medians of one target's runs in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// Label (`salon-uring`, `janus`, …).
    pub label: String,
    /// Runs, and how many completed.
    pub runs: usize,
    /// Completed runs.
    pub complete: usize,
    /// Median packets out per second.
    pub pps_out: Option<f64>,
    /// Median packets in per second.
    pub pps_in: Option<f64>,
    /// Median loss (%).
    pub loss_percent: Option<f64>,
    /// Median p50 latency (ms).
    pub p50_ms: Option<f64>,
    /// Median p99 latency (ms).
    pub p99_ms: Option<f64>,
    /// Median SUT CPU seconds in the window.
    pub sut_cpu_s: Option<f64>,
    /// Median SUT peak RSS (MiB).
    pub peak_rss_mb: Option<f64>,
    /// Median forwarded packets per SUT CPU-second.
    pub fwd_per_cpu_s: Option<f64>,
    /// Median harness CPU seconds in the window.
    pub harness_cpu_s: Option<f64>,
    /// Median 1-minute load average at the end of the runs.
    pub load_1m: Option<f64>,
    /// Median UDP receive-buffer drops in the window (kernel).
    pub rcvbuf_drops: Option<f64>,
}

/// Per-label medians, in first-seen label order.
pub fn compare_rows(runs: &[(String, Report)]) -> Vec<CompareRow> {
    let mut labels: Vec<&str> = Vec::new();
    for (l, _) in runs {
        if !labels.contains(&l.as_str()) {
            labels.push(l);
        }
    }
    labels
        .iter()
        .map(|label| {
            let rs: Vec<&Report> = runs
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, r)| r)
                .collect();
            let m = |f: &dyn Fn(&Report) -> Option<f64>| {
                median(rs.iter().filter_map(|r| f(r)).collect())
            };
            CompareRow {
                label: (*label).to_owned(),
                runs: rs.len(),
                complete: rs.iter().filter(|r| r.complete).count(),
                pps_out: m(&|r| Some(r.packets_out_per_s)),
                pps_in: m(&|r| Some(r.packets_in_per_s)),
                loss_percent: m(&|r| Some(r.loss_percent)),
                p50_ms: m(&|r| r.latency_p50_ms),
                p99_ms: m(&|r| r.latency_p99_ms),
                sut_cpu_s: m(&|r| r.sut_cpu_s),
                peak_rss_mb: m(&|r| r.sut_peak_rss_mb),
                fwd_per_cpu_s: m(&|r| r.forwarded_packets_per_cpu_s),
                harness_cpu_s: m(&|r| r.harness_cpu_window_s),
                load_1m: m(&|r| r.host_load_1m),
                rcvbuf_drops: m(&|r| r.udp_window.map(|u| u.rcvbuf_errors as f64)),
            }
        })
        .collect()
}

/// The comparison as text: one line per label (medians), then the ratios
/// Salon / Janus, Salon / reflector and io_uring / epoll when both sides ran.
pub fn compare_table(rows: &[CompareRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:>5} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>10} {:>8} {:>9} {:>5}",
        "target",
        "ok",
        "pps out",
        "pps in",
        "loss %",
        "p50 ms",
        "p99 ms",
        "CPU s",
        "RSS MB",
        "fwd/CPU-s",
        "harn. s",
        "rcvbuf dr",
        "load"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<12} {:>5} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>10} {:>8} {:>9} {:>5}",
            r.label,
            format!("{}/{}", r.complete, r.runs),
            opt(r.pps_out, 0),
            opt(r.pps_in, 0),
            opt(r.loss_percent, 3),
            opt(r.p50_ms, 2),
            opt(r.p99_ms, 2),
            opt(r.sut_cpu_s, 2),
            opt(r.peak_rss_mb, 0),
            opt(r.fwd_per_cpu_s, 0),
            opt(r.harness_cpu_s, 1),
            opt(r.rcvbuf_drops, 0),
            opt(r.load_1m, 1),
        );
    }
    let find = |p: &str| {
        rows.iter()
            .find(|r| r.label == p || r.label.starts_with(&format!("{p}-")))
    };
    let salon = rows
        .iter()
        .find(|r| r.label == "salon-uring")
        .or_else(|| find("salon"));
    let pairs = [
        ("Salon / Janus", salon, find("janus")),
        ("Salon / reflector", salon, find("reflector")),
        (
            "io_uring / epoll (Salon)",
            rows.iter().find(|r| r.label == "salon-uring"),
            rows.iter().find(|r| r.label == "salon-epoll"),
        ),
    ];
    for (name, a, b) in pairs {
        let (Some(a), Some(b)) = (a, b) else { continue };
        let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            s,
            "{name} ({} / {}): CPU s {}, fwd pkts per CPU-s {}, p50 {}, p99 {}, loss {}, peak RSS {}",
            a.label,
            b.label,
            ratio(a.sut_cpu_s, b.sut_cpu_s),
            ratio(a.fwd_per_cpu_s, b.fwd_per_cpu_s),
            ratio(a.p50_ms, b.p50_ms),
            ratio(a.p99_ms, b.p99_ms),
            ratio(a.loss_percent, b.loss_percent),
            ratio(a.peak_rss_mb, b.peak_rss_mb),
        );
    }
    s
}

/// `prefix` with `.ext` appended (a trailing `.json` is dropped first).
pub fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let s = prefix.to_string_lossy();
    let base = s.strip_suffix(".json").unwrap_or(&s);
    PathBuf::from(format!("{base}.{ext}"))
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
