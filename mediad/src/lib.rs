#![forbid(unsafe_code)]
//! mediad: Salon's media plane, a selective forwarding unit.
//!
//! Layout (see `docs/architecture.md`):
//! - [`control`]: the command/event interface the signaling gateway speaks.
//! - [`core`]: the sans-IO forwarding core of one worker (ICE-lite, DTLS,
//!   SRTP, RTP/RTCP forwarding). It implements [`salon_io::Handler`] and
//!   never reads the clock or touches a socket itself.
//! - [`Mediad`]: starts one worker thread per configured core, each with its
//!   own UDP port, and routes commands to the worker that owns the room.
//!
//! **Supervision.** A worker that panics (or whose io loop fails) takes
//! the process down: it logs the reason at error level and exits with
//! [`EXIT_WORKER_FAILED`] (70, `EX_SOFTWARE`), for the supervisor
//! (systemd `Restart=on-failure`, a compose restart policy) to start a
//! fresh one; browsers reconnect by themselves. A room's state lives on
//! one worker thread with no way to rebuild it, so carrying on without
//! the worker would leave its rooms silent while the process looks
//! healthy. [`MediadConfig::fault_injection`] lets tests cause such a
//! panic ([`Mediad::inject_panic`]).

pub mod alloc;
pub mod bwe;
pub mod control;

use std::net::{IpAddr, Ipv4Addr};

pub use control::{
    Command, ControlError, Event, MediaKind, ParticipantId, RequestId, RoomId, TransportKind,
};
pub use salon_io::BackendChoice;

/// How to run mediad.
#[derive(Debug, Clone)]
pub struct MediadConfig {
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// Addresses announced in ICE candidates (the public ones): at most one
    /// per family, and of a family the socket takes (`bind_ip` `::` takes
    /// both). Empty: `bind_ip` itself, or for an unspecified `bind_ip`
    /// the host's interface addresses ([`salon_io::host_addresses`]).
    pub announce_ips: Vec<IpAddr>,
    /// Addresses TURN servers relay from (their listening addresses and
    /// any distinct relay address): an ICE success from one is counted as
    /// relayed.
    pub relay_ips: Vec<IpAddr>,
    /// UDP port of worker 0; worker `i` listens on `first_port + i`.
    /// 0 picks free ports (tests).
    pub first_port: u16,
    /// ICE-TCP (RFC 6544 passive candidates, RFC 4571 framing): the TCP
    /// port of worker 0's listener; worker `i` listens on `port + i`.
    pub tcp: MediaTcp,
    /// Number of worker threads (one per core is the intent).
    pub workers: usize,
    /// io_uring, epoll, or detect.
    pub io_backend: BackendChoice,
    /// Each worker's limits: SDP sizes and rates, memory budget.
    pub limits: WorkerLimits,
    /// Exit the process with [`EXIT_WORKER_FAILED`] when a worker panics
    /// or its io loop fails (the default; see the crate documentation).
    /// Off, the worker's rooms go silent and the rest carries on.
    pub exit_on_worker_failure: bool,
    /// Accept [`Mediad::inject_panic`] (tests of supervision; never in
    /// production).
    pub fault_injection: bool,
    /// Datagrams (in + out) per second a worker carries at full load: the
    /// denominator of its `stress` (`load.rs`).
    pub worker_capacity_pps: u64,
}

/// Where the workers listen for ICE-TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTcp {
    /// No TCP listener, no TCP candidate.
    Off,
    /// Each worker on the TCP port numbered as its UDP port (the
    /// default). With UDP ports picked by the system, the same number if
    /// free, else any free port.
    #[default]
    SameAsUdp,
    /// Worker `i` on `port + i`; 0 picks free ports.
    FirstPort(u16),
}

impl std::str::FromStr for MediaTcp {
    type Err = String;

    /// `off` (or `0`), `same`, or a port number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" | "0" => Ok(MediaTcp::Off),
            "same" => Ok(MediaTcp::SameAsUdp),
            p => p
                .parse::<u16>()
                .map(MediaTcp::FirstPort)
                .map_err(|_| format!("{p:?}: expected a port number, \"same\" or \"off\"")),
        }
    }
}

/// The exit status of a process whose media worker failed (`EX_SOFTWARE`
/// of `sysexits.h`): a supervisor should restart it.
pub const EXIT_WORKER_FAILED: i32 = 70;

impl Default for MediadConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce_ips: Vec::new(),
            relay_ips: Vec::new(),
            first_port: 10000,
            tcp: MediaTcp::SameAsUdp,
            workers: 1,
            io_backend: BackendChoice::Auto,
            limits: WorkerLimits::default(),
            exit_on_worker_failure: true,
            fault_injection: false,
            worker_capacity_pps: load::DEFAULT_CAPACITY_PPS,
        }
    }
}

#[deny(clippy::indexing_slicing, clippy::expect_used)]
pub mod core;
pub mod exposition;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender};
use salon_io::{Backend, Handler, IoStats, TxQueue, Waker};

pub use crate::core::{OfferRate, WorkerLimits};
use crate::core::{Worker, WorkerConfig};
use crate::metrics::Metrics;

enum WorkerMsg {
    Command(Command),
    Stop,
    /// Fault injection: panic on the worker thread.
    Panic,
}

/// [`Mediad::inject_panic`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultInjectionError {
    /// mediad was not started with [`MediadConfig::fault_injection`].
    #[error("fault injection is not enabled")]
    Disabled,
    /// No worker of that index.
    #[error("no media worker {0}")]
    NoSuchWorker(usize),
}

/// The events of every worker, in the order each worker produced them:
/// the receiving end of mediad's event queue. Workers never block on it
/// (it is unbounded); whoever holds it should drain it promptly.
#[derive(Debug)]
pub struct EventQueue {
    rx: Receiver<Event>,
}

impl EventQueue {
    /// The next event, waiting for one. `None` once mediad is shut down
    /// and the queue is empty.
    pub fn recv(&self) -> Option<Event> {
        self.rx.recv().ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// The driver-side wrapper of a [`Worker`]: commands from the channel in,
/// events to the queue out.
struct Driven {
    worker: Worker,
    commands: Receiver<WorkerMsg>,
    events: Sender<Event>,
    stop: bool,
}

impl Driven {
    fn flush_events(&mut self) {
        while let Some(e) = self.worker.poll_event() {
            // The receiver gone means mediad is shutting down.
            let _ = self.events.send(e);
        }
    }
}

impl Handler for Driven {
    fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        self.worker.handle_datagram(src, data, now, tx);
        self.flush_events();
    }

    fn handle_wake(&mut self, now: Instant, tx: &mut TxQueue) {
        while let Ok(msg) = self.commands.try_recv() {
            match msg {
                WorkerMsg::Command(cmd) => self.worker.handle_command(cmd, now, tx),
                WorkerMsg::Stop => self.stop = true,
                WorkerMsg::Panic => {
                    #[allow(clippy::panic)] // what was asked for
                    {
                        panic!("fault injection: a panic was requested in this media worker")
                    }
                }
            }
        }
        self.flush_events();
    }

    fn handle_timeout(&mut self, now: Instant, tx: &mut TxQueue) {
        self.worker.handle_timeout(now, tx);
        self.flush_events();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.worker.poll_timeout().map(|d| d.at)
    }

    fn should_stop(&self) -> bool {
        self.stop
    }
}

struct WorkerHandle {
    commands: Sender<WorkerMsg>,
    waker: Waker,
    metrics: Arc<Metrics>,
    io: Arc<IoStats>,
    tid: Arc<load::ThreadId>,
    port: u16,
    tcp_port: Option<u16>,
    thread: Option<JoinHandle<()>>,
}

/// A running media plane: one worker thread per configured core.
pub struct Mediad {
    workers: Vec<WorkerHandle>,
    placement: Mutex<HashMap<ParticipantId, usize>>,
    backend: Backend,
    fault_injection: bool,
    load: load::LoadSampler,
}

impl std::fmt::Debug for Mediad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mediad")
            .field("workers", &self.workers.len())
            .field("backend", &self.backend)
            .finish()
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Worker `worker` is gone: say why, and exit for the supervisor to
/// restart the process (see the crate documentation).
fn worker_failed(worker: usize, reason: &str, exit: bool) {
    if exit {
        tracing::error!(
            worker,
            reason,
            status = EXIT_WORKER_FAILED,
            "media worker failed; exiting for the supervisor to restart the process"
        );
        std::process::exit(EXIT_WORKER_FAILED);
    }
    tracing::error!(worker, reason, "media worker failed; its rooms are silent");
}

/// Worker `i`'s ICE-TCP listener, whose UDP socket got port `udp_port`.
fn bind_worker_tcp(
    config: &MediadConfig,
    i: usize,
    udp_port: u16,
) -> anyhow::Result<Option<std::net::TcpListener>> {
    let port = match config.tcp {
        MediaTcp::Off => return Ok(None),
        MediaTcp::SameAsUdp => udp_port,
        MediaTcp::FirstPort(0) => 0,
        MediaTcp::FirstPort(p) => p
            .checked_add(i as u16)
            .context("worker TCP port out of range")?,
    };
    match salon_io::bind_tcp(SocketAddr::new(config.bind_ip, port)) {
        Ok(l) => Ok(Some(l)),
        // A system-picked UDP port may be taken on TCP: any free one then.
        Err(e) if config.tcp == MediaTcp::SameAsUdp && config.first_port == 0 => {
            tracing::debug!(error = %e, port, "TCP port taken, picking another");
            salon_io::bind_tcp(SocketAddr::new(config.bind_ip, 0))
                .map(Some)
                .with_context(|| format!("binding TCP {}:0", config.bind_ip))
        }
        Err(e) => Err(e).with_context(|| format!("binding TCP {}:{port}", config.bind_ip)),
    }
}

/// The addresses to announce for a socket bound to `bind`, given the
/// configured ones (see [`MediadConfig::announce_ips`]).
pub fn announced(bind: IpAddr, configured: &[IpAddr]) -> anyhow::Result<Vec<IpAddr>> {
    // A v4-mapped bind (`::ffff:10.0.0.1`) takes IPv4 only: it announces
    // its IPv4 address, never an IPv6 candidate browsers cannot reach.
    let bind = bind.to_canonical();
    if configured.is_empty() {
        return Ok(if bind.is_unspecified() {
            salon_io::host_addresses(bind)
        } else {
            vec![bind]
        });
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for &ip in configured {
        let ip = ip.to_canonical();
        anyhow::ensure!(!ip.is_unspecified(), "cannot announce {ip}");
        // A netmask or a broadcast address pasted by mistake, a multicast
        // group: no browser reaches mediad there.
        let not_a_host = match ip {
            IpAddr::V4(v4) => v4.is_multicast() || v4.octets()[0] >= 240,
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        anyhow::ensure!(
            !not_a_host,
            "cannot announce {ip}: a multicast, broadcast or reserved address, not a host's"
        );
        // One socket takes both families only when bound to `::`.
        let takes = match bind {
            IpAddr::V6(v6) if v6.is_unspecified() => true,
            _ => bind.is_ipv6() == ip.is_ipv6(),
        };
        anyhow::ensure!(
            takes,
            "cannot announce {ip}: media bound to {bind} does not take that address family (bind :: for both)"
        );
        anyhow::ensure!(
            !out.iter().any(|o| o.is_ipv6() == ip.is_ipv6()),
            "at most one announced address per family ({ip})"
        );
        out.push(ip);
    }
    Ok(out)
}

/// A stable hash of a room name (FNV-1a), to pin rooms to workers.
fn room_hash(room: &RoomId) -> u64 {
    room.0.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Mediad {
    /// Bind the workers' sockets and start their threads. Events come out
    /// of the returned queue.
    pub fn start(config: MediadConfig) -> anyhow::Result<(Self, EventQueue)> {
        let backend = config
            .io_backend
            .resolve()
            .context("choosing the io backend")?;
        let cert = dimpl::certificate::generate_self_signed_certificate()
            .map_err(|e| anyhow::anyhow!("generating the DTLS certificate: {e}"))?;
        let fingerprint = crate::core::transport::digest("sha-256", &cert.certificate)
            .context("fingerprinting the DTLS certificate")?;
        let dtls = Arc::new(
            dimpl::Config::builder()
                .build()
                .map_err(|e| anyhow::anyhow!("DTLS configuration: {e}"))?,
        );
        let announce_ips = announced(config.bind_ip, &config.announce_ips)?;
        tracing::info!(bind = %config.bind_ip, announced = ?announce_ips, "media addresses");
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let mut workers = Vec::new();
        for i in 0..config.workers.max(1) {
            let port = if config.first_port == 0 {
                0
            } else {
                config
                    .first_port
                    .checked_add(i as u16)
                    .context("worker port out of range")?
            };
            let socket = salon_io::bind_udp(SocketAddr::new(config.bind_ip, port))
                .with_context(|| format!("binding UDP {}:{port}", config.bind_ip))?;
            let port = socket.local_addr()?.port();
            let tcp = bind_worker_tcp(&config, i, port)?;
            let tcp_port = match &tcp {
                Some(l) => Some(l.local_addr()?.port()),
                None => None,
            };
            let waker = Waker::new().context("creating the wake-up eventfd")?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let metrics = Arc::new(Metrics::default());
            let cfg = WorkerConfig {
                announce_ips: announce_ips.clone(),
                port,
                relay_ips: config.relay_ips.clone(),
                tcp_port,
                cert: cert.clone(),
                fingerprint: fingerprint.clone(),
                dtls: dtls.clone(),
                seed: None,
                limits: config.limits,
            };
            let mut driven = Driven {
                worker: Worker::new(cfg, metrics.clone(), Instant::now()),
                commands: rx,
                events: events_tx.clone(),
                stop: false,
            };
            let thread_waker = waker.clone();
            let io = Arc::new(IoStats::new());
            let thread_io = io.clone();
            let exit_on_failure = config.exit_on_worker_failure;
            let tid = Arc::new(load::ThreadId::default());
            let thread_tid = tid.clone();
            let tcp = tcp.map(|listener| salon_io::TcpEndpoint {
                listener,
                limits: config.limits.tcp,
            });
            let thread = std::thread::Builder::new()
                .name(format!("mediad-{i}"))
                .spawn(move || {
                    thread_tid.record_current();
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        salon_io::run_with_tcp(
                            socket,
                            tcp,
                            backend,
                            &thread_waker,
                            &mut driven,
                            &thread_io,
                        )
                    }));
                    let reason = match run {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => format!("io loop failed: {e}"),
                        Err(panic) => format!("panicked: {}", panic_message(&*panic)),
                    };
                    worker_failed(i, &reason, exit_on_failure);
                })
                .context("spawning a worker thread")?;
            tracing::info!(worker = i, port, ?tcp_port, %backend, "mediad worker started");
            workers.push(WorkerHandle {
                commands: tx,
                waker,
                metrics,
                io,
                tid,
                port,
                tcp_port,
                thread: Some(thread),
            });
        }
        Ok((
            Self {
                workers,
                placement: Mutex::new(HashMap::new()),
                backend,
                fault_injection: config.fault_injection,
                load: load::LoadSampler::new(config.worker_capacity_pps),
            },
            EventQueue { rx: events_rx },
        ))
    }

    /// Make worker `worker` panic, to test supervision: the process exits
    /// with [`EXIT_WORKER_FAILED`] (unless
    /// [`MediadConfig::exit_on_worker_failure`] is off). Refused unless
    /// [`MediadConfig::fault_injection`] is on.
    pub fn inject_panic(&self, worker: usize) -> Result<(), FaultInjectionError> {
        if !self.fault_injection {
            return Err(FaultInjectionError::Disabled);
        }
        let w = self
            .workers
            .get(worker)
            .ok_or(FaultInjectionError::NoSuchWorker(worker))?;
        tracing::warn!(worker, "fault injection: asking a media worker to panic");
        if w.commands.send(WorkerMsg::Panic).is_ok() {
            w.waker.wake();
        }
        Ok(())
    }

    /// The io backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The UDP port of each worker.
    pub fn ports(&self) -> Vec<u16> {
        self.workers.iter().map(|w| w.port).collect()
    }

    /// The ICE-TCP port of each worker (`None` where TCP is off).
    pub fn tcp_ports(&self) -> Vec<Option<u16>> {
        self.workers.iter().map(|w| w.tcp_port).collect()
    }

    /// Hand a command to the worker that owns its room. Never blocks.
    pub fn send(&self, cmd: Command) {
        let n = self.workers.len().max(1);
        let idx = {
            let mut placement = match self.placement.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            match &cmd {
                Command::Join { room, participant } => {
                    let w = (room_hash(room) % n as u64) as usize;
                    placement.insert(*participant, w);
                    Some(w)
                }
                Command::Leave { participant } => placement.remove(participant),
                other => placement.get(&other.participant()).copied(),
            }
        };
        let Some(w) = idx.and_then(|i| self.workers.get(i)) else {
            return;
        };
        if w.commands.send(WorkerMsg::Command(cmd)).is_ok() {
            w.waker.wake();
        }
    }

    /// mediad's metrics (counters summed over workers, gauges per worker)
    /// as OpenMetrics text (`exposition`).
    pub fn metrics_text(&self) -> String {
        let all: Vec<&Metrics> = self.workers.iter().map(|w| &*w.metrics).collect();
        let io: Vec<salon_io::IoStatsSnapshot> =
            self.workers.iter().map(|w| w.io.snapshot()).collect();
        let mut e = exposition::Exposition::new();
        metrics::collect(&mut e, &all);
        metrics::collect_io(&mut e, &io);
        self.collect_load(&mut e, &io);
        e.encode()
    }

    /// Each worker's load (`load.rs`), and the highest as the process's
    /// `mediad_stress` (what a focus placing rooms reads).
    fn collect_load(&self, e: &mut exposition::Exposition, io: &[salon_io::IoStatsSnapshot]) {
        let packets: Vec<u64> = io.iter().map(|s| s.rx_datagrams + s.tx_datagrams).collect();
        let tids: Vec<&load::ThreadId> = self.workers.iter().map(|w| &*w.tid).collect();
        let loads = self.load.sample(Instant::now(), &packets, &tids);
        let mut max = 0.0f64;
        for (i, l) in loads.iter().enumerate() {
            let w = i.to_string();
            let worker = [("worker", w.as_str())];
            e.gauge_with(
                "mediad_worker_stress",
                "Datagrams (in + out) per second over the worker's configured capacity (--worker-capacity-pps); 1.0 is full",
                &worker,
                l.stress,
            );
            e.gauge_with(
                "mediad_worker_packet_rate",
                "Datagrams (in + out) per second through the worker, between the last two scrapes a second or more apart",
                &worker,
                l.packet_rate,
            );
            e.gauge_with(
                "mediad_worker_cpu_load",
                "Share of one core the worker's thread used between the last two scrapes a second or more apart",
                &worker,
                l.cpu,
            );
            if let Some(s) = l.cpu_seconds {
                e.gauge_with(
                    "mediad_worker_cpu_seconds",
                    "CPU seconds (user + system) the worker's thread used since it started",
                    &worker,
                    s,
                );
            }
            max = max.max(l.stress);
        }
        e.gauge(
            "mediad_stress",
            "The most loaded worker's stress (as jicofo reads a bridge's stress_level)",
            max,
        );
    }

    /// Stop every worker and wait for their threads.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for w in &self.workers {
            if w.commands.send(WorkerMsg::Stop).is_ok() {
                w.waker.wake();
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Mediad {
    fn drop(&mut self) {
        self.stop_all();
    }
}
