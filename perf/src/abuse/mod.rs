//! The abuse suite: attacks on a running `salon`, each while a bystander
//! meeting on the same mediad worker keeps talking (`docs/security.md`).
//!
//! [`Env`] spawns `salon` on loopback with one media worker, the suite's
//! policy and an auth config (issuer A; issuers A and B bound to their keys
//! for the cross-issuer attack), and starts the bystander
//! meeting: two synthetic participants ([`peer`]: real ICE, DTLS, SRTP)
//! exchanging audio and video in [`BYSTANDER_ROOM`]. Every attack
//! ([`attacks::Attack`]) runs in a *window*: the bystanders' longest gap
//! between received packets, the process's peak RSS (VmRSS sampled every
//! 25 ms) and its CPU seconds (whole process and the `mediad-0` thread)
//! are measured over it, and the suite checks that the bystanders lost no
//! media (longest gap < [`MAX_GAP`], still flowing afterwards), saw no
//! error and no bystander leave, and that `salon` is still alive. The
//! attack itself says what the attacker got (an error code, a closed
//! socket, a refused connection) and what it must not have got.

pub mod attacks;
pub mod peer;
pub mod ws;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::media::{Command, Snapshot, StreamGap, Worker};
use crate::metrics::Kind;
use crate::scenario::MediaConfig;
use crate::sut::{self, Spawned};

pub use attacks::Attack;

/// The bystanders' room.
pub const BYSTANDER_ROOM: &str = "AbuseRoom";
/// Longest gap a bystander may see between two packets of a stream.
pub const MAX_GAP: Duration = Duration::from_millis(500);
/// Time after an attack in which the bystanders' media must still flow.
pub const AFTER: Duration = Duration::from_millis(600);
/// Longest any single attack may take (it is then a failure).
pub const ATTACK_TIMEOUT: Duration = Duration::from_secs(40);
/// How much `salon`'s resident set may grow during any one window (peak
/// VmRSS over the window minus VmRSS at its start): memory stays bounded.
pub const WINDOW_RSS_GROWTH_MIB: f64 = 64.0;

/// The limits the fixes introduce (issue "abuse hardening"). The attacks
/// are sized from them (several times over each) but never assert the
/// exact value. None is a `salon` flag on this branch; once one is, pass
/// it in [`Env::start`] (see `docs/security.md`).
pub mod limits {
    use std::time::Duration;
    /// Open WebSockets per client IP (`--max-connections-per-ip`, planned).
    pub const CONNECTIONS_PER_IP: usize = 50;
    /// A socket that has not joined is closed after this (`--join-deadline-secs`, planned).
    pub const JOIN_DEADLINE: Duration = Duration::from_secs(10);
    /// Messages per second per socket, sustained.
    pub const MESSAGES_PER_S: u64 = 20;
    /// Messages per socket in a burst, before `rate-limited`.
    pub const MESSAGE_BURST: u64 = 50;
    /// Largest frame before `join`.
    pub const PRE_JOIN_FRAME: usize = 16 * 1024;
    /// Guests waiting in one room's lobby.
    pub const LOBBY_PER_ROOM: usize = 100;
    /// Largest publish offer (SDP bytes).
    pub const PUBLISH_OFFER: usize = 64 * 1024;
}

/// Key ids, issuers and secrets of the suite's auth config.
pub mod auth {
    /// The accepted audience.
    pub const AUDIENCE: &str = "salon";
    /// Issuer A and its key.
    pub const ISSUER_A: &str = "issuer-a";
    /// Key id of issuer A's key.
    pub const KEY_A: &str = "key-a";
    /// Issuer A's HS256 secret.
    pub const SECRET_A: &str = "abuse-suite-secret-of-issuer-a-0123456789";
    /// Issuer B.
    pub const ISSUER_B: &str = "issuer-b";
    /// Key id of issuer B's key.
    pub const KEY_B: &str = "key-b";
    /// Issuer B's HS256 secret.
    pub const SECRET_B: &str = "abuse-suite-secret-of-issuer-b-9876543210";
    /// The `[[keys]]` field that binds a key to the issuers it may sign
    /// for (a list; `plugins/src/auth.rs` on `main` since the auth fix).
    /// Only the cross-issuer attack's configuration uses it.
    pub const KEY_ISSUER_FIELD: &str = "issuers";
}

/// The suite's Lua policy: anyone may create a room and its first member
/// is its moderator (so is a token holder with the moderator flag); in
/// rooms named `Lobby…` everyone else waits in the lobby for a moderator.
pub const POLICY: &str = r#"
local p = {}
function p.on_room_create(ctx) return true end
function p.on_join(ctx)
  local first = not ctx.room.exists or ctx.room.size == 0
  if ctx.identity ~= nil and ctx.identity.moderator then
    return { action = "allow", role = "moderator" }
  end
  if first then return { action = "allow", role = "moderator" } end
  if string.sub(ctx.room.name, 1, 5) == "Lobby" then return { action = "lobby" } end
  return { action = "allow", role = "participant" }
end
function p.on_knock(ctx) return false, "waiting for a moderator" end
function p.on_moderation(ctx, action) return ctx.role == "moderator" end
return p
"#;

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The `salon` binary.
    pub salon: PathBuf,
    /// Scratch folder (policy, auth configs, `salon` logs).
    pub dir: PathBuf,
    /// Run only the attacks with these names (all when empty).
    pub only: Vec<String>,
}

/// Which auth config a `salon` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Issuer A and its key only: valid before and after keys were bound
    /// to issuers (a single-issuer configuration binds every key to it).
    OneIssuer,
    /// Issuers A and B, each key bound to its issuer with
    /// [`auth::KEY_ISSUER_FIELD`] (a configuration of several issuers
    /// without it is refused once keys are bound).
    BoundKeys,
}

fn auth_config(mode: AuthMode) -> String {
    let key = |id: &str, secret: &str, iss: &str| {
        let bind = match mode {
            AuthMode::OneIssuer => String::new(),
            AuthMode::BoundKeys => format!("{} = [\"{iss}\"]\n", auth::KEY_ISSUER_FIELD),
        };
        format!(
            "\n[[keys]]\nid = \"{id}\"\nalgorithms = [\"HS256\"]\nsecret = \"{secret}\"\n{bind}"
        )
    };
    match mode {
        AuthMode::OneIssuer => format!(
            "issuers = [\"{a}\"]\naudiences = [\"{aud}\"]\n{ka}",
            a = auth::ISSUER_A,
            aud = auth::AUDIENCE,
            ka = key(auth::KEY_A, auth::SECRET_A, auth::ISSUER_A),
        ),
        AuthMode::BoundKeys => format!(
            "issuers = [\"{a}\", \"{b}\"]\naudiences = [\"{aud}\"]\n{ka}{kb}",
            a = auth::ISSUER_A,
            b = auth::ISSUER_B,
            aud = auth::AUDIENCE,
            ka = key(auth::KEY_A, auth::SECRET_A, auth::ISSUER_A),
            kb = key(auth::KEY_B, auth::SECRET_B, auth::ISSUER_B),
        ),
    }
}

/// Samples a process's VmRSS every 25 ms; keeps the largest since the last
/// [`RssSampler::reset`].
#[derive(Debug)]
struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kb.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("abuse-rss".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(kb) = rss_kb(pid) {
                        p.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            })
            .ok();
        Self {
            peak_kb,
            stop,
            thread,
        }
    }

    fn reset(&self, pid: u32) {
        self.peak_kb
            .store(rss_kb(pid).unwrap_or(0), Ordering::Relaxed);
    }

    fn peak_kb(&self) -> u64 {
        self.peak_kb.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Current resident set (VmRSS) of `pid`, kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    sut::parse_status_kb(&s, "VmRSS:")
}

/// CPU seconds of the thread of `pid` named `name` (`/proc/PID/task/*/comm`).
pub fn thread_cpu_seconds(pid: u32, name: &str) -> Option<f64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for e in dir.flatten() {
        let tid = e.file_name();
        let tid = tid.to_string_lossy();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
        if comm.trim() == name {
            return sut::cpu_seconds(&format!("{pid}/task/{tid}"));
        }
    }
    None
}

/// A media worker thread of the harness.
struct MediaThread {
    tx: mpsc::Sender<Command>,
    shared: Arc<Mutex<Snapshot>>,
    epoch: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaThread {
    fn start(name: &str) -> Result<Self, String> {
        let epoch = Instant::now();
        let shared = Arc::new(Mutex::new(Snapshot::default()));
        let (tx, rx) = mpsc::channel();
        // Worker events (connected, failed) are read from the snapshots instead.
        let (etx, _erx) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaConfig {
            simulcast: false,
            ..MediaConfig::default()
        };
        let worker = Worker::new(epoch, media, shared.clone(), etx).track_gaps();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = worker.run(rx);
            })
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Self {
            tx,
            shared,
            epoch,
            thread: Some(thread),
        })
    }

    fn gaps(&self) -> Vec<StreamGap> {
        self.shared
            .lock()
            .map(|s| s.gaps.clone())
            .unwrap_or_default()
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

impl Drop for MediaThread {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `salon`, its bystander meeting, and a media thread for the
/// attackers that need real transports.
pub struct Env {
    salon: Spawned,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws_url: String,
    /// The bystanders' logs (index 0 and 1).
    pub bystanders: [peer::SharedLog; 2],
    bystander_media: MediaThread,
    bystander_stop: watch::Sender<bool>,
    bystander_thread: Option<std::thread::JoinHandle<()>>,
    attacker_media: MediaThread,
    next_index: usize,
    rss: RssSampler,
    log_path: PathBuf,
    tag: String,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("pid", &self.pid)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// The loopback address `127.0.a.b`.
pub fn lo(a: u8, b: u8) -> IpAddr {
    IpAddr::from([127, 0, a, b])
}

impl Env {
    /// Spawn `salon` and the bystander meeting; ready when both bystanders
    /// receive the other's audio and video.
    pub fn start(opts: &SuiteOptions, auth_mode: AuthMode, tag: &str) -> Result<Self, String> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| format!("creating {}: {e}", opts.dir.display()))?;
        let policy = opts.dir.join("abuse.lua");
        std::fs::write(&policy, POLICY).map_err(|e| format!("writing the policy: {e}"))?;
        let auth_path = opts.dir.join(format!("auth-{tag}.toml"));
        std::fs::write(&auth_path, auth_config(auth_mode))
            .map_err(|e| format!("writing the auth config: {e}"))?;
        let log_path = opts.dir.join(format!("salon-{tag}.log"));
        let args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--media-ip",
            "127.0.0.1",
            "--media-port",
            "0",
            "--workers",
            "1",
            "--policy",
            &policy.display().to_string(),
            "--auth-config",
            &auth_path.display().to_string(),
            // The suite reads `/metrics` on the public listener (an
            // operator's choice too); no admin listener, so that two
            // salons of the suite never compete for its default port.
            "--admin-listen",
            "off",
            "--metrics-on-public",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let salon = sut::spawn_process(
            &opts.salon,
            &args,
            "Salon: ",
            Some(&log_path),
            Duration::from_secs(10),
        )
        .map_err(|e| format!("{e}; its log ends: {}", log_tail(&log_path)))?;
        let http = salon.url.trim_end_matches('/').to_owned();
        let ws_url = format!("{}/ws", http.replacen("http://", "ws://", 1));
        let pid = salon.pid();
        let bystander_media = MediaThread::start("abuse-bystanders")?;
        let attacker_media = MediaThread::start("abuse-attackers")?;
        let bystanders: [peer::SharedLog; 2] = Default::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let specs: Vec<peer::PeerSpec> = (0..2)
            .map(|i| peer::PeerSpec {
                index: i,
                room: BYSTANDER_ROOM.into(),
                name: format!("bystander {i}"),
                video: true,
                ws_url: ws_url.clone(),
                from: lo(0, 1),
            })
            .collect();
        let logs = bystanders.clone();
        let tx = bystander_media.tx.clone();
        let thread = std::thread::Builder::new()
            .name("abuse-bystander-signaling".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for (spec, log) in specs.into_iter().zip(logs) {
                        tasks.push(tokio::spawn(peer::run_peer(
                            spec,
                            tx.clone(),
                            log,
                            stop_rx.clone(),
                            None,
                        )));
                        // One after the other: the first is the moderator.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    for t in tasks {
                        let _ = t.await;
                    }
                });
            })
            .map_err(|e| format!("starting the bystanders: {e}"))?;
        let mut env = Self {
            rss: RssSampler::start(pid),
            salon,
            pid,
            http,
            ws_url,
            bystanders,
            bystander_media,
            bystander_stop: stop_tx,
            bystander_thread: Some(thread),
            attacker_media,
            next_index: 100,
            log_path,
            tag: tag.to_owned(),
        };
        let t0 = Instant::now();
        loop {
            if env.health().is_ok() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(15) {
                return Err(format!(
                    "the bystander meeting did not start in 15 s: {}",
                    env.health().err().unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let ids: Vec<u64> = env.bystander_ids();
        for b in &env.bystanders {
            if let Ok(mut l) = b.lock() {
                l.protected = ids.clone();
            }
        }
        Ok(env)
    }

    /// The bystanders' gateway ids.
    pub fn bystander_ids(&self) -> Vec<u64> {
        self.bystanders
            .iter()
            .filter_map(|b| b.lock().ok().and_then(|l| l.id))
            .collect()
    }

    /// A fresh participant index for an attacker peer.
    pub fn next_index(&mut self) -> usize {
        self.next_index += 1;
        self.next_index
    }

    /// The attackers' media thread: commands, and its received streams.
    pub fn attacker_media(&self) -> (mpsc::Sender<Command>, Vec<StreamGap>) {
        (self.attacker_media.tx.clone(), self.attacker_media.gaps())
    }

    /// Bytes and packets the attackers' media thread received so far.
    pub fn attacker_received(&self) -> (u64, u64) {
        self.attacker_media
            .shared
            .lock()
            .map(|s| (s.totals.bytes_in, s.totals.packets_in))
            .unwrap_or((0, 0))
    }

    /// `salon`'s exit status, if it has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.salon.exited()
    }

    /// The end of `salon`'s log (stderr).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// The bystanders' streams from each other: both receive the other's
    /// audio and video.
    fn bystander_streams(&self) -> Vec<StreamGap> {
        let ids = self.bystander_ids();
        self.bystander_media
            .gaps()
            .into_iter()
            .filter(|g| g.index < 2 && ids.contains(&g.sender))
            .collect()
    }

    /// `Ok` when `salon` runs and both bystanders received the other's
    /// audio and video in the last 300 ms.
    pub fn health(&mut self) -> Result<(), String> {
        if let Some(s) = self.salon.exited() {
            return Err(format!("salon exited ({s})"));
        }
        if self.bystander_ids().len() < 2 {
            return Err("the bystanders have not both joined".into());
        }
        for b in &self.bystanders {
            if let Ok(l) = b.lock()
                && l.ended
            {
                return Err(format!(
                    "a bystander's signaling ended: {:?}",
                    l.incidents.last()
                ));
            }
        }
        let streams = self.bystander_streams();
        let now = self.bystander_media.now_ns();
        for index in 0..2 {
            for kind in [Kind::Audio, Kind::Video] {
                let fresh = streams.iter().any(|g| {
                    g.index == index
                        && g.kind == kind
                        && now.saturating_sub(g.last_ns) < 300_000_000
                });
                if !fresh {
                    return Err(format!(
                        "bystander {index} receives no {kind:?} from the other"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Count of incidents per bystander so far.
    fn incident_marks(&self) -> Vec<usize> {
        self.bystanders
            .iter()
            .map(|b| b.lock().map(|l| l.incidents.len()).unwrap_or(0))
            .collect()
    }

    /// Incidents since `marks`.
    fn incidents_since(&self, marks: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for (b, &m) in self.bystanders.iter().zip(marks) {
            if let Ok(l) = b.lock() {
                out.extend(l.incidents.iter().skip(m).cloned());
            }
        }
        out
    }

    /// Fetch `path` (`/metrics`, …) over plain HTTP/1.1 from `127.0.0.1`.
    pub async fn http_get(&self, path: &str) -> Result<String, String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let host = self.http.trim_start_matches("http://").to_owned();
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(&host)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| format!("write: {e}"))?;
            let mut body = Vec::new();
            s.read_to_end(&mut body)
                .await
                .map_err(|e| format!("read: {e}"))?;
            Ok::<_, String>(String::from_utf8_lossy(&body).into_owned())
        };
        tokio::time::timeout(ws::REPLY, fut)
            .await
            .map_err(|_| format!("GET {path} timed out"))?
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.bystander_stop.send(true);
        if let Some(t) = self.bystander_thread.take() {
            let _ = t.join();
        }
        self.salon.stop();
    }
}

/// The lines of `salon`'s log that say what went wrong (a panic, an
/// error), else its last five.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let telling: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("panicked") || l.contains("error") || l.contains("unknown field")
        })
        .take(5)
        .collect();
    if telling.is_empty() {
        lines[lines.len().saturating_sub(5)..].join(" | ")
    } else {
        telling.join(" | ")
    }
}

/// What an attack reports: what the attacker got, and what went wrong
/// (empty: the defence held).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The attacker's side, for the table: errors by code, closes, refusals.
    pub attacker: String,
    /// Failed checks, each a sentence.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Record `failure` unless `ok`.
    pub fn check(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(failure());
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct AttackRow {
    /// The attack's name.
    pub name: &'static str,
    /// What the attacker got.
    pub attacker: String,
    /// The bystanders' longest gap between two packets, ms.
    pub gap_ms: Option<f64>,
    /// Largest VmRSS during the window, MiB.
    pub peak_rss_mib: f64,
    /// VmRSS when the window began, MiB.
    pub start_rss_mib: f64,
    /// CPU seconds of the whole process during the window.
    pub cpu_s: f64,
    /// CPU seconds of the `mediad-0` thread during the window.
    pub worker_cpu_s: Option<f64>,
    /// Window length.
    pub secs: f64,
    /// Everything that failed (empty: passed).
    pub failures: Vec<String>,
}

impl AttackRow {
    /// No check failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// One per attack run.
    pub rows: Vec<AttackRow>,
    /// Environment restarts and other remarks.
    pub notes: Vec<String>,
    /// Wall time of the suite.
    pub secs: f64,
}

impl SuiteReport {
    /// The rows that failed.
    pub fn failed(&self) -> Vec<&AttackRow> {
        self.rows.iter().filter(|r| !r.passed()).collect()
    }

    /// The table as Markdown, then the failures one by one.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| attack | result | attacker got | bystander longest gap | peak RSS (start) | CPU s (mediad-0) | window |\n|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} MiB ({:.1}) | {:.2} ({}) | {:.1} s |\n",
                r.name,
                if r.passed() { "pass" } else { "**FAIL**" },
                r.attacker.replace('|', "/"),
                match r.gap_ms {
                    Some(g) => format!("{g:.0} ms"),
                    // Measured, and no stream left: the bystanders lost their media.
                    None if r.secs > 0.0 => "media lost".into(),
                    None => "—".into(),
                },
                r.peak_rss_mib,
                r.start_rss_mib,
                r.cpu_s,
                r.worker_cpu_s.map_or("—".into(), |c| format!("{c:.2}")),
                r.secs,
            ));
        }
        s.push_str(&format!(
            "\n{} attacks, {} passed, {} failed, {:.0} s in all.\n",
            self.rows.len(),
            self.rows.len() - self.failed().len(),
            self.failed().len(),
            self.secs
        ));
        if !self.failed().is_empty() {
            s.push_str("\nFailures:\n\n");
            for r in self.failed() {
                for f in &r.failures {
                    s.push_str(&format!("- `{}`: {}\n", r.name, f.replace('\n', " ")));
                }
            }
        }
        if !self.notes.is_empty() {
            s.push_str("\nNotes:\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        s
    }
}

/// Run one attack in a measured window.
async fn run_window(env: &mut Env, attack: Attack) -> AttackRow {
    let w = Window::begin(env).await;
    let outcome = match tokio::time::timeout(ATTACK_TIMEOUT, attack.run(env)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Outcome {
            attacker: "—".into(),
            failures: vec![format!("the attack could not run: {e}")],
        },
        Err(_) => Outcome {
            attacker: "—".into(),
            failures: vec![format!("the attack took over {ATTACK_TIMEOUT:?}")],
        },
    };
    w.end(env, attack.name(), outcome).await
}

/// The measurements of one window, from its start.
struct Window {
    start_rss: u64,
    marks: Vec<usize>,
    cpu0: Option<f64>,
    wcpu0: Option<f64>,
    t0: Instant,
}

impl Window {
    /// Start measuring: the bystanders' gaps count from now.
    async fn begin(env: &mut Env) -> Self {
        let _ = env.bystander_media.tx.send(Command::ResetGaps);
        tokio::time::sleep(Duration::from_millis(20)).await;
        env.rss.reset(env.pid);
        Self {
            start_rss: rss_kb(env.pid).unwrap_or(0),
            marks: env.incident_marks(),
            cpu0: sut::cpu_seconds(&env.pid.to_string()),
            wcpu0: thread_cpu_seconds(env.pid, "mediad-0"),
            t0: Instant::now(),
        }
    }

    /// The attack is over: wait [`AFTER`], then check the bystanders and
    /// the process and make the row.
    async fn end(self, env: &mut Env, name: &'static str, mut outcome: Outcome) -> AttackRow {
        let Self {
            start_rss,
            marks,
            cpu0,
            wcpu0,
            t0,
        } = self;
        let before_after: Vec<StreamGap> = env.bystander_streams();
        tokio::time::sleep(AFTER).await;
        let secs = t0.elapsed().as_secs_f64();
        let cpu_s = match (cpu0, sut::cpu_seconds(&env.pid.to_string())) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        let worker_cpu_s = match (wcpu0, thread_cpu_seconds(env.pid, "mediad-0")) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let peak = env.rss.peak_kb().max(start_rss);
        // The bystanders' media over the window and after it.
        let streams = env.bystander_streams();
        let now = env.bystander_media.now_ns();
        let mut gap_ms = None;
        if streams.len() < 4 {
            outcome.failures.push(format!(
                "the bystanders receive {} of their 4 streams",
                streams.len()
            ));
        }
        for g in &streams {
            let gap = g.max_gap_ns.max(now.saturating_sub(g.last_ns));
            let ms = gap as f64 / 1e6;
            gap_ms = Some(gap_ms.map_or(ms, |m: f64| m.max(ms)));
            if Duration::from_nanos(gap) >= MAX_GAP {
                outcome.failures.push(format!(
                    "bystander {} went {ms:.0} ms without {:?} (limit {MAX_GAP:?})",
                    g.index, g.kind
                ));
            }
            let earlier = before_after
                .iter()
                .find(|b| b.index == g.index && b.ssrc == g.ssrc)
                .map_or(0, |b| b.packets);
            if g.packets <= earlier {
                outcome.failures.push(format!(
                    "bystander {}'s {:?} stopped after the attack",
                    g.index, g.kind
                ));
            }
        }
        let grew = peak.saturating_sub(start_rss) as f64 / 1024.0;
        if grew >= WINDOW_RSS_GROWTH_MIB {
            outcome.failures.push(format!(
            "salon's RSS grew by {grew:.0} MiB in the window (bound {WINDOW_RSS_GROWTH_MIB} MiB)"
        ));
        }
        for i in env.incidents_since(&marks) {
            outcome.failures.push(format!("bystander incident: {i}"));
        }
        if let Some(s) = env.exited() {
            outcome.failures.push(format!(
                "salon died ({s}); its log ends: {}",
                env.log_tail()
            ));
        }
        AttackRow {
            name,
            attacker: outcome.attacker,
            gap_ms,
            peak_rss_mib: peak as f64 / 1024.0,
            start_rss_mib: start_rss as f64 / 1024.0,
            cpu_s,
            worker_cpu_s,
            secs,
            failures: outcome.failures,
        }
    }
}

/// The harness checks itself: the bystanders stop sending for 1.2 s in a
/// window, then start again, which must fail it with a gap over
/// [`MAX_GAP`] (and only that). Returns that row (the caller asserts it
/// failed for that reason).
pub async fn check_gap_monitor(opts: &SuiteOptions) -> Result<AttackRow, String> {
    let mut env = Env::start(opts, AuthMode::OneIssuer, "gap-check")?;
    let w = Window::begin(&mut env).await;
    let _ = env.bystander_media.tx.send(Command::StopSending);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let _ = env.bystander_media.tx.send(Command::StartSending);
    let outcome = Outcome {
        attacker: "none (the bystanders paused their media for 1.2 s)".into(),
        failures: Vec::new(),
    };
    Ok(w.end(&mut env, "gap-monitor-self-check", outcome).await)
}

/// Note what a `salon` cost over its whole life (peak RSS, CPU), then stop it.
fn retire(env: Option<Env>, report: &mut SuiteReport) {
    let Some(mut env) = env else { return };
    let hwm = sut::peak_rss_kb(&env.pid.to_string());
    let cpu = sut::cpu_seconds(&env.pid.to_string());
    let worker = thread_cpu_seconds(env.pid, "mediad-0");
    let status = env.exited();
    report.notes.push(format!(
        "salon `{}` (pid {}): peak RSS (VmHWM) {}, {} CPU-s in all, {} on mediad-0{}",
        env.tag,
        env.pid,
        hwm.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        cpu.map_or("?".into(), |c| format!("{c:.2}")),
        worker.map_or("?".into(), |c| format!("{c:.2}")),
        status.map_or(String::new(), |s| format!("; it had exited: {s}")),
    ));
}

/// Run every attack (or those named in `opts.only`), in order, each in its
/// window. The environment is started once and started again whenever an
/// attack left it unhealthy (`salon` died, a bystander lost its socket or
/// its media); the cross-issuer attack gets its own (its auth config binds
/// keys to issuers).
pub async fn run_suite(opts: &SuiteOptions) -> SuiteReport {
    let t0 = Instant::now();
    let mut report = SuiteReport::default();
    let mut env: Option<Env> = None;
    for attack in Attack::ALL {
        if !opts.only.is_empty() && !opts.only.iter().any(|n| n == attack.name()) {
            continue;
        }
        if attack.auth_mode() == AuthMode::BoundKeys {
            // Its own salon: the main one must not depend on the new format.
            retire(env.take(), &mut report);
            match Env::start(opts, AuthMode::BoundKeys, attack.name()) {
                Ok(mut e) => {
                    report.rows.push(run_window(&mut e, attack).await);
                    retire(Some(e), &mut report);
                }
                Err(e) => report.rows.push(AttackRow {
                    name: attack.name(),
                    attacker: "—".into(),
                    gap_ms: None,
                    peak_rss_mib: 0.0,
                    start_rss_mib: 0.0,
                    cpu_s: 0.0,
                    worker_cpu_s: None,
                    secs: 0.0,
                    failures: vec![format!(
                        "salon with keys bound to issuers (`{}` in [[keys]]) did not start: {e}",
                        auth::KEY_ISSUER_FIELD
                    )],
                }),
            }
            continue;
        }
        let healthy = match env.as_mut().map(Env::health) {
            Some(Ok(())) => true,
            Some(Err(why)) => {
                report.notes.push(format!(
                    "before `{}`: restarted salon ({why})",
                    attack.name()
                ));
                false
            }
            None => false,
        };
        if !healthy {
            retire(env.take(), &mut report);
            // Let the closed sockets and ports go.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match Env::start(opts, AuthMode::OneIssuer, "main") {
                Ok(e) => env = Some(e),
                Err(e) => {
                    report.notes.push(format!(
                        "could not start the environment before `{}`: {e}",
                        attack.name()
                    ));
                    break;
                }
            }
        }
        if let Some(e) = env.as_mut() {
            report.rows.push(run_window(e, attack).await);
        }
    }
    retire(env.take(), &mut report);
    report.secs = t0.elapsed().as_secs_f64();
    report
}
