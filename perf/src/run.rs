//! The controller: start (or reach) the SUT, ramp participants up at the
//! join rate, wait until everyone is connected, measure for the scenario's
//! duration, stop, and build the [`Report`]. Any fatal problem (refused
//! connection, timeout, SUT gone) ends the run early with a partial report.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::media::{Command, ReceiverDetail, Snapshot, Totals, Which, Worker, WorkerEvent};
use crate::metrics::Histogram;
use crate::report::{Report, Sample};
use crate::scenario::Scenario;
use crate::signaling::{ParticipantPlan, SignalEvent, run_participant};
use crate::sut;

/// Where the SUT is.
#[derive(Debug, Clone)]
pub enum Target {
    /// An already running gateway (`http://host:port/` or `ws://host:port/ws`).
    Url(String),
    /// Spawn this `salon` binary on loopback.
    Spawn(PathBuf),
    /// Spawn this bare UDP reflector binary (plain RTP, no signaling).
    Reflector(PathBuf),
    /// Spawn this `janus` binary (the harness must already run inside the
    /// network namespace, see [`crate::janus`]).
    Janus(PathBuf),
}

impl Target {
    /// Short name for reports: `salon`, `reflector` or `url`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Url(_) => "url",
            Target::Spawn(_) => "salon",
            Target::Reflector(_) => "reflector",
            Target::Janus(_) => "janus",
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The scenario.
    pub scenario: Scenario,
    /// The SUT.
    pub target: Target,
    /// `--io-backend` for a spawned SUT.
    pub io_backend: String,
    /// `--workers` for a spawned SUT.
    pub sut_workers: usize,
    /// Harness media threads.
    pub threads: usize,
    /// Report prefix (the SUT's log goes to `<prefix>.salon.log`).
    pub out: Option<PathBuf>,
    /// Print a progress line every second on stderr.
    pub progress: bool,
    /// Extra time after the ramp for everybody to connect.
    pub connect_grace: Duration,
    /// Count a participant whose transport fails to connect (ICE/DTLS
    /// timeout) and go on without it, instead of ending the run.
    pub tolerate_failures: bool,
    /// Join this existing room instead of rooms named after the scenario
    /// (one-room scenarios only: refused otherwise). Lets the harness fill
    /// a meeting that browsers are already in (`tests/e2e/layout.test.mjs`,
    /// the room of 30).
    pub room: Option<String>,
}

/// The WebSocket URL of a gateway URL.
pub fn ws_url(target: &str) -> String {
    let t = target.trim_end_matches('/');
    if t.starts_with("ws://") || t.starts_with("wss://") {
        return if t.ends_with("/ws") {
            t.to_owned()
        } else {
            format!("{t}/ws")
        };
    }
    let t = t
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| t.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| format!("ws://{t}"));
    format!("{t}/ws")
}

fn host_ip(ws: &str) -> IpAddr {
    let rest = ws.split("://").nth(1).unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.trim_matches(['[', ']'])
        .parse()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

struct WorkerHandle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Mutex<Snapshot>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<Vec<ReceiverDetail>>>>,
}

fn gather(workers: &[WorkerHandle], hist: &mut Histogram) -> Totals {
    let mut t = Totals::default();
    *hist = Histogram::new();
    for w in workers {
        if let Ok(s) = w.shared.lock() {
            t.add(&s.totals);
            hist.merge(&s.latency);
        }
    }
    t
}

struct Mark {
    at: Instant,
    totals: Totals,
    hist: Histogram,
    cpu: Option<f64>,
    /// The harness's own CPU seconds.
    hcpu: Option<f64>,
    /// The namespace's UDP counters.
    udp: Option<sut::UdpCounters>,
}

/// Run a scenario to its end (or to its first fatal error).
pub fn run(opts: &RunOptions) -> Report {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run_async(opts)),
        Err(e) => empty_report(opts, format!("tokio runtime: {e}")),
    }
}

fn empty_report(opts: &RunOptions, error: String) -> Report {
    Report {
        scenario: opts.scenario.name.clone(),
        backend: backend_name(opts),
        target_kind: opts.target.kind().to_owned(),
        target: String::new(),
        complete: false,
        error: Some(error),
        participants: opts.scenario.participants(),
        participants_joined: 0,
        participants_connected: 0,
        participants_failed: 0,
        harness_threads: opts.threads,
        window_s: 0.0,
        packets_out_per_s: 0.0,
        packets_in_per_s: 0.0,
        bytes_out_per_s: 0.0,
        bytes_in_per_s: 0.0,
        loss_percent: 0.0,
        latency_p50_ms: None,
        latency_p99_ms: None,
        latency_max_ms: None,
        latency_samples: 0,
        sut_cpu_s: None,
        sut_cpu_percent: None,
        sut_peak_rss_mb: None,
        forwarded_packets_per_cpu_s: None,
        harness_cpu_s: None,
        harness_cpu_window_s: None,
        udp_window: None,
        host_load_1m: sut::load_1m(),
        video_layers_received: [0; 4],
        window_totals: Totals::default(),
        run_totals: Totals::default(),
        gateway_errors: Vec::new(),
        timeline: Vec::new(),
        receivers: Vec::new(),
        churn: None,
    }
}

fn backend_name(opts: &RunOptions) -> String {
    match opts.target {
        Target::Spawn(_) | Target::Reflector(_) => opts.io_backend.clone(),
        Target::Janus(_) => "janus (libnice, its own threads)".to_owned(),
        Target::Url(_) => "unknown (--target)".to_owned(),
    }
}

fn log_path(out: &Option<PathBuf>) -> Option<PathBuf> {
    out.as_deref()
        .map(|p: &Path| crate::report::with_ext(p, "salon.log"))
}

async fn run_async(opts: &RunOptions) -> Report {
    let sc = &opts.scenario;
    let epoch = Instant::now();
    let mut spawned = None;
    let url = match &opts.target {
        Target::Url(u) => u.clone(),
        Target::Janus(path) => {
            let log = opts
                .out
                .as_deref()
                .map(|p| crate::report::with_ext(p, "janus.log"));
            if let Some(d) = log.as_deref().and_then(Path::parent) {
                let _ = std::fs::create_dir_all(d);
            }
            match crate::janus::spawn(path, log.as_deref(), Duration::from_secs(15)).await {
                Ok(s) => {
                    let u = s.url.clone();
                    spawned = Some(s);
                    u
                }
                Err(e) => return empty_report(opts, e),
            }
        }
        Target::Reflector(path) => {
            let log = opts
                .out
                .as_deref()
                .map(|p| crate::report::with_ext(p, "reflector.log"));
            if let Some(d) = log.as_deref().and_then(Path::parent) {
                let _ = std::fs::create_dir_all(d);
            }
            match sut::spawn_reflector(
                path,
                &opts.io_backend,
                log.as_deref(),
                Duration::from_secs(10),
            ) {
                Ok(s) => {
                    let u = s.url.clone();
                    spawned = Some(s);
                    u
                }
                Err(e) => return empty_report(opts, e),
            }
        }
        Target::Spawn(path) => {
            let log = log_path(&opts.out);
            if let Some(l) = &log
                && let Some(d) = l.parent()
            {
                let _ = std::fs::create_dir_all(d);
            }
            match sut::spawn(
                path,
                &opts.io_backend,
                opts.sut_workers,
                log.as_deref(),
                Duration::from_secs(20),
                Duration::from_secs_f64(
                    opts.scenario
                        .churn
                        .as_ref()
                        .map_or(0.0, |c| c.reconnect_grace_s),
                ),
            ) {
                Ok(s) => {
                    let u = s.url.clone();
                    spawned = Some(s);
                    u
                }
                Err(e) => return empty_report(opts, e),
            }
        }
    };
    let sut_pid = spawned.as_ref().map(|s| s.pid().to_string());
    let sut_cpu = || sut_pid.as_deref().and_then(sut::cpu_seconds);
    let reflector: Option<std::net::SocketAddr> = match &opts.target {
        Target::Reflector(_) => match url.parse() {
            Ok(a) => Some(a),
            Err(_) => return empty_report(opts, format!("reflector address {url:?}")),
        },
        _ => None,
    };
    let ws = ws_url(&url);
    let janus_api = match &opts.target {
        Target::Janus(_) => crate::janus::Api::from_url(&url),
        _ => None,
    };
    let bind_ip = match (reflector, janus_api) {
        (Some(a), _) => a.ip(),
        (None, Some(_)) => IpAddr::from(crate::janus::JANUS_IP),
        (None, None) => host_ip(&ws),
    };
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let nonce = format!("{:06x}", salt & 0xff_ffff);

    // Media workers.
    let (wev_tx, mut wev_rx) = tokio::sync::mpsc::unbounded_channel::<WorkerEvent>();
    let mut workers = Vec::new();
    for i in 0..opts.threads.max(1) {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Mutex::new(Snapshot::default()));
        let mut w = Worker::new(epoch, sc.media.clone(), shared.clone(), wev_tx.clone());
        if sc.churn.is_some() {
            w = w.track_streams();
        }
        let thread = std::thread::Builder::new()
            .name(format!("perf-media-{i}"))
            .spawn(move || w.run(rx))
            .ok();
        workers.push(WorkerHandle { tx, shared, thread });
    }
    drop(wev_tx);

    if opts.room.is_some() && (sc.rooms != 1 || sc.churn.is_some()) {
        let mut r = empty_report(
            opts,
            "--room needs a one-room scenario without churn".into(),
        );
        stop_workers(&mut workers);
        if let Some(mut s) = spawned.take() {
            s.stop();
        }
        r.complete = false;
        return r;
    }
    if let Some(c) = &sc.churn {
        if reflector.is_some() || janus_api.is_some() {
            let mut r = empty_report(opts, "churn runs need a Salon target".into());
            stop_workers(&mut workers);
            if let Some(mut s) = spawned.take() {
                s.stop();
            }
            r.complete = false;
            return r;
        }
        let env = crate::churn::Env {
            ws: ws.clone(),
            bind_ip,
            salt,
            room_prefix: format!("perf-{}-{nonce}", sc.name),
            epoch,
            progress: opts.progress,
            txs: workers.iter().map(|w| w.tx.clone()).collect(),
        };
        let shared: Vec<_> = workers.iter().map(|w| w.shared.clone()).collect();
        let mut streams = || {
            let mut v = Vec::new();
            for s in &shared {
                if let Ok(s) = s.lock() {
                    v.extend_from_slice(&s.streams);
                }
            }
            v
        };
        let start_totals = gather(&workers, &mut Histogram::new());
        let start_cpu = sut_cpu();
        let start_hcpu = sut::cpu_seconds("self");
        let mut exited = || spawned.as_mut().and_then(|s| s.exited());
        let out = crate::churn::drive(sc, c, &env, &mut wev_rx, &mut streams, &mut exited).await;
        for w in &workers {
            let _ = w.tx.send(Command::StopSending);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut hist = Histogram::new();
        let end_totals = gather(&workers, &mut hist);
        let end_cpu = sut_cpu();
        let peak_rss = sut_pid.as_deref().and_then(sut::peak_rss_kb);
        let _ = out.stop.send(true);
        let mut tasks = out.tasks;
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        let receivers = stop_workers(&mut workers);
        if let Some(mut s) = spawned.take() {
            s.stop();
        }
        let secs = out
            .window
            .1
            .duration_since(out.window.0)
            .as_secs_f64()
            .max(1e-3);
        let wt = end_totals.since(&start_totals);
        let cpu_s = match (end_cpu, start_cpu) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let mut r = empty_report(opts, String::new());
        let failed = out.report.violations_total > 0;
        r.error = out.error.clone().or_else(|| {
            failed.then(|| format!("{} churn invariant violations", out.report.violations_total))
        });
        // A violation fails the run (exit code 1), like an early end.
        r.complete = out.error.is_none() && !failed;
        r.target = url;
        r.participants = out.report.started;
        r.participants_joined = out.report.joins;
        r.participants_connected = out.connected_now;
        r.harness_threads = workers.len();
        r.window_s = secs;
        r.packets_out_per_s = wt.packets_out as f64 / secs;
        r.packets_in_per_s = wt.packets_in as f64 / secs;
        r.bytes_out_per_s = wt.bytes_out as f64 / secs;
        r.bytes_in_per_s = wt.bytes_in as f64 / secs;
        r.loss_percent = pct(wt.lost, wt.expected);
        r.latency_p50_ms = hist.quantile(0.5).map(|v| v as f64 / 1000.0);
        r.latency_p99_ms = hist.quantile(0.99).map(|v| v as f64 / 1000.0);
        r.latency_max_ms = (hist.count() > 0).then(|| hist.max() as f64 / 1000.0);
        r.latency_samples = hist.count();
        r.sut_cpu_s = cpu_s;
        r.sut_cpu_percent = cpu_s.map(|c| c / secs * 100.0);
        r.sut_peak_rss_mb = peak_rss.map(|k| k as f64 / 1024.0);
        r.forwarded_packets_per_cpu_s =
            cpu_s.filter(|c| *c > 0.0).map(|c| wt.packets_in as f64 / c);
        r.harness_cpu_s = match (sut::cpu_seconds("self"), start_hcpu) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        r.window_totals = wt;
        r.run_totals = end_totals;
        r.gateway_errors = out.gateway_errors;
        for f in receivers
            .iter()
            .flat_map(|x| x.from.iter())
            .filter(|f| f.kind == crate::metrics::Kind::Video)
        {
            for (a, b) in r.video_layers_received.iter_mut().zip(f.layer_packets) {
                *a += b;
            }
        }
        r.receivers = receivers;
        r.churn = Some(out.report);
        return r;
    }

    // Participants, at the join rate.
    let plan = sc.plan();
    let n = plan.len();
    let needs_sub: Vec<bool> = plan.iter().map(|p| sc.room_size(p.room) > 1).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sev_tx, mut sev_rx) = tokio::sync::mpsc::unbounded_channel::<SignalEvent>();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let txs: Vec<mpsc::Sender<Command>> = workers.iter().map(|w| w.tx.clone()).collect();
        let ws = ws.clone();
        let stop_rx = stop_rx.clone();
        let sev_tx = sev_tx.clone();
        let join_rate = sc.join_rate;
        let simulcast = sc.media.simulcast;
        let room_sizes: Vec<u32> = (0..sc.rooms).map(|r| sc.room_size(r)).collect();
        let scen = sc.name.clone();
        let nonce = nonce.clone();
        let fixed_room = opts.room.clone();
        tasks.spawn(async move {
            let start = tokio::time::Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for p in plan {
                let at = start + Duration::from_secs_f64(p.index as f64 / join_rate);
                tokio::time::sleep_until(at).await;
                if *stop_rx.borrow() {
                    break;
                }
                let pp = ParticipantPlan {
                    index: p.index,
                    room_name: match &fixed_room {
                        Some(r) => r.clone(),
                        None => format!("perf-{scen}-{nonce}-{}", p.room),
                    },
                    room: p.room,
                    video: p.video,
                    simulcast,
                    ws_url: ws.clone(),
                    bind_ip,
                    track_offers: false,
                    resume: None,
                };
                let wtx = txs[p.index % txs.len()].clone();
                if let Some(api) = janus_api {
                    let room = crate::janus::room_number(salt as u32, p.room);
                    set.spawn(crate::janus::run_participant(
                        pp,
                        api,
                        room,
                        room_sizes[p.room as usize],
                        wtx,
                        sev_tx.clone(),
                        stop_rx.clone(),
                        salt,
                    ));
                    continue;
                }
                if let Some(addr) = reflector {
                    set.spawn(plain_participant(
                        pp,
                        addr,
                        wtx,
                        sev_tx.clone(),
                        stop_rx.clone(),
                    ));
                    continue;
                }
                set.spawn(run_participant(
                    pp,
                    wtx,
                    sev_tx.clone(),
                    stop_rx.clone(),
                    salt,
                ));
            }
            while set.join_next().await.is_some() {}
        });
    }
    drop(sev_tx);

    // Control loop.
    let ramp = Duration::from_secs_f64(sc.ramp_s());
    let connect_deadline = epoch + ramp + opts.connect_grace;
    let mut joined = 0usize;
    let mut failed = vec![false; n];
    let mut failed_count = 0usize;
    let mut pub_ok = vec![false; n];
    let mut sub_ok = vec![false; n];
    let mut gateway_errors = Vec::new();
    let mut error: Option<String> = None;
    let mut timeline = Vec::new();
    let mut hist = Histogram::new();
    let mut last = Mark {
        at: epoch,
        totals: Totals::default(),
        hist: Histogram::new(),
        cpu: sut_cpu(),
        hcpu: sut::cpu_seconds("self"),
        udp: sut::udp_counters(),
    };
    let start_cpu = last.cpu;
    let start_hcpu = last.hcpu;
    let start_udp = last.udp;
    let mut window: Option<Mark> = None;
    let mut window_end: Option<Mark> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let connected_count =
        |p: &[bool], s: &[bool]| (0..n).filter(|&i| p[i] && (s[i] || !needs_sub[i])).count();
    loop {
        tokio::select! {
            ev = sev_rx.recv() => match ev {
                Some(SignalEvent::Joined { .. }) => joined += 1,
                Some(SignalEvent::GatewayError { error: e, .. }) if gateway_errors.len() < 20 => {
                    gateway_errors.push(e);
                }
                Some(SignalEvent::GatewayError { .. }) => {}
                Some(SignalEvent::Fatal { index, reason }) => {
                    error = Some(format!("participant {index}: {reason}"));
                    break;
                }
                Some(_) | None => {}
            },
            ev = wev_rx.recv() => match ev {
                Some(WorkerEvent::Connected { index, which }) => {
                    if index < n {
                        match which {
                            Which::Publish => pub_ok[index] = true,
                            Which::Subscribe => sub_ok[index] = true,
                        }
                    }
                }
                Some(WorkerEvent::Failed { index, which, reason }) => {
                    let what = format!("participant {index} {which:?} transport: {reason}");
                    if !opts.tolerate_failures {
                        error = Some(what);
                        break;
                    }
                    if index < n && !failed[index] {
                        failed[index] = true;
                        failed_count += 1;
                        if gateway_errors.len() < 20 {
                            gateway_errors.push(what);
                        }
                    }
                }
                None => {
                    error = Some("media workers stopped".into());
                    break;
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let totals = gather(&workers, &mut hist);
                let cpu = sut_cpu();
                let dt = now.duration_since(last.at).as_secs_f64().max(1e-3);
                let d = totals.since(&last.totals);
                let dh = hist.since(&last.hist);
                let connected = connected_count(&pub_ok, &sub_ok);
                let sample = Sample {
                    t_s: now.duration_since(epoch).as_secs_f64(),
                    connected,
                    pps_out: d.packets_out as f64 / dt,
                    pps_in: d.packets_in as f64 / dt,
                    loss_percent: pct(d.lost, d.expected),
                    p99_ms: dh.quantile(0.99).map(|v| v as f64 / 1000.0),
                    sut_cpu_percent: match (cpu, last.cpu) {
                        (Some(a), Some(b)) => Some((a - b) / dt * 100.0),
                        _ => None,
                    },
                };
                if opts.progress {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "[{:6.1}s] connected {}/{}  out {:.0} pps  in {:.0} pps  loss {:.2}%  p99 {} ms  SUT CPU {} %{}",
                        sample.t_s, connected, n, sample.pps_out, sample.pps_in, sample.loss_percent,
                        sample.p99_ms.map_or("-".into(), |v| format!("{v:.2}")),
                        sample.sut_cpu_percent.map_or("-".into(), |v| format!("{v:.0}")),
                        if window.is_some() { "" } else { "  (ramp)" },
                    );
                }
                timeline.push(sample);
                last = Mark { at: now, totals, hist: hist.clone(), cpu, hcpu: sut::cpu_seconds("self"), udp: sut::udp_counters() };
                if let Some(s) = spawned.as_mut()
                    && let Some(status) = s.exited()
                {
                    error = Some(format!("the SUT exited during the run ({status})"));
                    break;
                }
                match &window {
                    None if connected + failed_count >= n && now >= epoch + ramp => {
                        window = Some(Mark { at: now, totals: last.totals, hist: last.hist.clone(), cpu: last.cpu, hcpu: last.hcpu, udp: last.udp });
                    }
                    None if now >= connect_deadline => {
                        error = Some(format!(
                            "only {connected}/{n} participants connected {:.0} s after the ramp",
                            opts.connect_grace.as_secs_f64()
                        ));
                        break;
                    }
                    Some(w) if now + Duration::from_millis(100) >= w.at + Duration::from_secs_f64(sc.duration_s) => {
                        window_end = Some(Mark { at: now, totals: last.totals, hist: last.hist.clone(), cpu: last.cpu, hcpu: last.hcpu, udp: last.udp });
                        break;
                    }
                    _ => {}
                }
            }
        }
    }

    // Stop: media first, let what is in flight arrive, then signaling.
    for w in &workers {
        let _ = w.tx.send(Command::StopSending);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = Instant::now();
    let end_totals = gather(&workers, &mut hist);
    let end_cpu = sut_cpu();
    let end_hcpu = sut::cpu_seconds("self");
    let end_udp = sut::udp_counters();
    let peak_rss = sut_pid.as_deref().and_then(sut::peak_rss_kb);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let mut receivers = Vec::new();
    for w in &mut workers {
        let _ = w.tx.send(Command::Shutdown);
        if let Some(t) = w.thread.take()
            && let Ok(Ok(d)) = t.join()
        {
            receivers.extend(d);
        }
    }
    receivers.sort_by_key(|r| r.index);
    let run_totals = gather(&workers, &mut hist);
    if let Some(mut s) = spawned.take() {
        s.stop();
    }

    // The window: the measured one, or whatever ran before the error.
    let (w0, w1) = match (window, window_end) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (
            a,
            Mark {
                at: end,
                totals: end_totals,
                hist: hist.clone(),
                cpu: end_cpu,
                hcpu: end_hcpu,
                udp: end_udp,
            },
        ),
        (None, _) => (
            Mark {
                at: epoch,
                totals: Totals::default(),
                hist: Histogram::new(),
                cpu: start_cpu,
                hcpu: start_hcpu,
                udp: start_udp,
            },
            Mark {
                at: end,
                totals: end_totals,
                hist: hist.clone(),
                cpu: end_cpu,
                hcpu: end_hcpu,
                udp: end_udp,
            },
        ),
    };
    let secs = w1.at.duration_since(w0.at).as_secs_f64().max(1e-3);
    let wt = w1.totals.since(&w0.totals);
    let wh = w1.hist.since(&w0.hist);
    let cpu_s = match (w1.cpu, w0.cpu) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let ms = |v: Option<u64>| v.map(|v| v as f64 / 1000.0);
    let mut video_layers_received = [0u64; 4];
    for f in receivers
        .iter()
        .flat_map(|r| r.from.iter())
        .filter(|f| f.kind == crate::metrics::Kind::Video)
    {
        for (a, b) in video_layers_received.iter_mut().zip(f.layer_packets) {
            *a += b;
        }
    }
    Report {
        scenario: sc.name.clone(),
        backend: backend_name(opts),
        target_kind: opts.target.kind().to_owned(),
        target: url,
        video_layers_received,
        complete: error.is_none(),
        error,
        participants: n,
        participants_joined: joined,
        participants_connected: connected_count(&pub_ok, &sub_ok),
        participants_failed: failed_count,
        harness_threads: workers.len(),
        window_s: secs,
        packets_out_per_s: wt.packets_out as f64 / secs,
        packets_in_per_s: wt.packets_in as f64 / secs,
        bytes_out_per_s: wt.bytes_out as f64 / secs,
        bytes_in_per_s: wt.bytes_in as f64 / secs,
        loss_percent: pct(wt.lost, wt.expected),
        latency_p50_ms: ms(wh.quantile(0.5)),
        latency_p99_ms: ms(wh.quantile(0.99)),
        latency_max_ms: ms((hist.count() > 0).then(|| hist.max())),
        latency_samples: wh.count(),
        sut_cpu_s: cpu_s,
        sut_cpu_percent: cpu_s.map(|c| c / secs * 100.0),
        sut_peak_rss_mb: peak_rss.map(|k| k as f64 / 1024.0),
        forwarded_packets_per_cpu_s: cpu_s.filter(|c| *c > 0.0).map(|c| wt.packets_in as f64 / c),
        harness_cpu_s: match (sut::cpu_seconds("self"), start_hcpu) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        },
        udp_window: match (w1.udp, w0.udp) {
            (Some(a), Some(b)) => Some(a.since(&b)),
            _ => None,
        },
        harness_cpu_window_s: match (w1.hcpu, w0.hcpu) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        },
        host_load_1m: sut::load_1m(),
        window_totals: wt,
        run_totals,
        gateway_errors,
        timeline,
        receivers,
        churn: None,
    }
}

/// A participant of a reflector run: a socket, a hello, plain RTP.
async fn plain_participant(
    plan: ParticipantPlan,
    reflector: std::net::SocketAddr,
    worker: mpsc::Sender<Command>,
    events: tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let index = plan.index;
    let fatal = |reason: String| {
        let _ = events.send(SignalEvent::Fatal { index, reason });
    };
    let bind = || -> Result<std::net::UdpSocket, String> {
        let s = std::net::UdpSocket::bind((plan.bind_ip, 0))
            .map_err(|e| format!("binding UDP: {e}"))?;
        s.set_nonblocking(true)
            .map_err(|e| format!("non-blocking UDP: {e}"))?;
        crate::signaling::set_recv_buffer(&s, 2 << 20);
        Ok(s)
    };
    let (publish_socket, subscribe_socket) = match (bind(), bind()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fatal(e),
    };
    let cert = match dimpl::certificate::generate_self_signed_certificate() {
        Ok(c) => c,
        Err(e) => return fatal(format!("certificate: {e}")),
    };
    let id = index as u64 + 1;
    let audio_ssrc = 0x1000_0000u32.wrapping_add((index as u32).wrapping_mul(16));
    let np = crate::media::NewParticipant {
        index,
        id,
        room: plan.room,
        video: plan.video,
        plain: true,
        publish_socket,
        subscribe_socket,
        cert,
        publish_ufrag: String::new(),
        subscribe_ufrag: String::new(),
        publish_pwd: String::new(),
        subscribe_pwd: String::new(),
        audio_ssrc,
        video_ssrc: audio_ssrc + 2,
    };
    let remote = crate::media::RemoteDescription {
        ufrag: String::new(),
        pwd: String::new(),
        addr: reflector,
        ext: crate::media::ExtIds::default(),
        dtls_client: true,
        send_checks: false,
    };
    if worker.send(Command::Add(Box::new(np))).is_err()
        || worker
            .send(Command::Remote {
                index,
                which: Which::Publish,
                remote,
            })
            .is_err()
    {
        return fatal("media worker gone".into());
    }
    let _ = events.send(SignalEvent::Joined { index, id });
    let _ = stop.wait_for(|s| *s).await;
}

/// Shut the media workers down; what their participants received.
fn stop_workers(workers: &mut [WorkerHandle]) -> Vec<ReceiverDetail> {
    let mut receivers = Vec::new();
    for w in workers.iter_mut() {
        let _ = w.tx.send(Command::Shutdown);
        if let Some(t) = w.thread.take()
            && let Ok(Ok(d)) = t.join()
        {
            receivers.extend(d);
        }
    }
    receivers.sort_by_key(|r| r.index);
    receivers
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(ws_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("ws://h:1/ws"), "ws://h:1/ws");
        assert_eq!(
            host_ip("ws://127.0.0.5:8080/ws"),
            IpAddr::from([127, 0, 0, 5])
        );
        assert_eq!(
            host_ip("ws://[::1]:8080/ws"),
            "::1".parse::<IpAddr>().unwrap()
        );
    }
}
