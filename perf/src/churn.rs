//! Churn runs: synthetic participants join, leave, reload and drop their
//! signaling socket at random in a few rooms, while the controller checks,
//! continuously, what a meeting must survive (`docs/perf.md`, "Churn"):
//!
//! - **media**: two participants present together (both publish
//!   transports connected, neither told to end) for 3 s have each
//!   received the other's audio (and video, if published) inside that
//!   window, and it still flows (last packet at most 2.5 s old);
//! - **negotiation**: every subscribe offer is answered within 5 s of its
//!   arrival, and a participant's view of the room (the publishers and
//!   kinds of the active m-lines of its last offer) does not differ from
//!   the roster for more than 5 s; a re-offer keeps the earlier m-lines,
//!   same mids in the same order;
//! - **SDP bound**: a subscribe offer has at most `2 × (most participants
//!   alive in the room at once, so far − 1)` m-lines, whatever the history.
//!
//! Streams are attributed by the SDP: the msid stream id of the m-line
//! carrying an SSRC names the publisher; the payload's stamp must agree.
//!
//! Every random choice (video or not, stay, how it ends, arrival delay)
//! comes from the scenario's `seed` and the participant's index.
//! Reload is leave + a new participant (a new identity) after a pause.
//! A **resume** (`resume_fraction` of the participants, once in their
//! stay) drops the signaling socket abruptly and takes the place back on a
//! new one with the resume token (`docs/signaling.md`, "Reconnect"): with
//! `media: "kept"` (a Wi-Fi blink) the participant is present throughout
//! and every check goes on; with `media: "new"` (a page reload) its
//! transports go too, and it is out of the checks until its new publish
//! transport is up. With a grace period, a participant that drops without
//! resuming lingers in the room until the grace ends: the others' views
//! may still show it (never past the grace + 5 s), and it counts towards
//! the SDP bound.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::media::{Command, StreamSeen, Which, WorkerEvent};
use crate::scenario::{ChurnConfig, Scenario};
use crate::signaling::{
    Ending, OfferedLine, ParticipantPlan, ResumePlan, SignalEvent, run_churn_participant,
};

/// Together this long, two participants must have each other's media.
pub const MEDIA_WITHIN: Duration = Duration::from_secs(3);
/// A stream whose last packet is older than this has stopped.
pub const MEDIA_STALE: Duration = Duration::from_millis(2500);
/// Longest allowed wait for an answer, and for the view to match the roster.
pub const NEGOTIATION_WITHIN: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(100);
const MAX_VIOLATIONS_KEPT: usize = 200;

/// One broken invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Seconds since the run began.
    pub t_s: f64,
    /// `no-media`, `stale-media`, `answer-late`, `view-differs`,
    /// `sdp-too-large`, `mids-changed`, `misattributed`, `participant-failed`.
    pub kind: &'static str,
    /// The receiver's gateway id (or index, before it had one).
    pub receiver: Option<u64>,
    /// The other participant's gateway id.
    pub other: Option<u64>,
    /// Details.
    pub detail: String,
}

/// The churn figures of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    /// Participants started.
    pub started: usize,
    /// `joined` received.
    pub joins: usize,
    /// Polite leaves (reloads not counted).
    pub leaves: usize,
    /// Reloads (leave, then a new participant).
    pub reloads: usize,
    /// Abrupt socket drops.
    pub drops: usize,
    /// Resumes with the media kept (a socket drop and back).
    pub resumes: usize,
    /// Resumes with new media (page reloads within the grace period).
    pub resume_reloads: usize,
    /// Longest socket drop → `resumed` (ms), the pause included.
    pub resume_max_ms: f64,
    /// Most participants alive at once, per room.
    pub max_present: Vec<u32>,
    /// Subscribe offers answered.
    pub offers: usize,
    /// Longest offer → answer wait (ms).
    pub answer_wait_max_ms: f64,
    /// Largest subscribe offer: m-lines.
    pub largest_sdp_mlines: usize,
    /// Largest subscribe offer: bytes.
    pub largest_sdp_bytes: usize,
    /// Participants that got every peer's media (peers present when
    /// they connected and still there).
    pub time_to_media_samples: usize,
    /// Median time from `joined` to the last of those first packets (ms).
    pub time_to_media_p50_ms: Option<f64>,
    /// Worst such time (ms).
    pub time_to_media_max_ms: Option<f64>,
    /// Pair × kind windows checked at 3 s (each counted once).
    pub pair_checks: usize,
    /// Violations in all.
    pub violations_total: usize,
    /// The first ones.
    pub violations: Vec<Violation>,
}

/// A small seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of participant `index` under `seed`.
    pub fn new(seed: u64, index: usize) -> Self {
        Self(seed ^ (index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What participant `index` will do: video or not, how long it stays, how
/// it ends, and the arrival delay of whoever replaces it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fate {
    /// Publishes video.
    pub video: bool,
    /// Stay from start to its end.
    pub stay: Duration,
    /// How it ends.
    pub how: Ending,
    /// Its replacement starts this long after its end.
    pub replaced_after: Duration,
    /// A socket drop and resume during the stay.
    pub resume: Option<ResumePlan>,
}

/// The fate of participant `index` (a function of the seed and the index).
pub fn fate(c: &ChurnConfig, video_fraction: f64, index: usize) -> Fate {
    let mut r = Rng::new(c.seed, index);
    let video = r.unit() < video_fraction;
    let exp = -(1.0 - r.unit()).ln() * c.mean_stay_s;
    let stay = exp.clamp(c.min_stay_s, c.mean_stay_s * 4.0);
    let u = r.unit();
    let how = if u < c.reload_fraction {
        Ending::Reload
    } else if u < c.reload_fraction + c.drop_fraction {
        Ending::Drop
    } else {
        Ending::Leave
    };
    let gap = r.unit() * c.arrival_gap_s;
    let replaced_after = if how == Ending::Reload {
        c.reload_pause_s
    } else {
        gap
    };
    // Drawn last, so the fates of runs without resumes do not change.
    let (u, at, reload) = (r.unit(), r.unit(), r.unit() < c.resume_reload_fraction);
    // Somewhere in the middle of the stay, with time left after it for the
    // checks to see it back.
    let resume = (u < c.resume_fraction && stay >= c.resume_pause_s + 4.0).then(|| ResumePlan {
        after: Duration::from_secs_f64(1.0 + at * (stay - c.resume_pause_s - 3.0)),
        pause: Duration::from_secs_f64(c.resume_pause_s),
        reload,
    });
    Fate {
        video,
        stay: Duration::from_secs_f64(stay),
        how,
        replaced_after: Duration::from_secs_f64(replaced_after),
        resume,
    }
}

/// Publisher id and video-or-audio of a stream.
type Track = (u64, bool);

#[derive(Debug)]
struct Member {
    room: u32,
    fate: Fate,
    started: Instant,
    id: Option<u64>,
    joined_ns: Option<u64>,
    present_at: Option<Instant>,
    end_at: Instant,
    end_tx: Option<oneshot::Sender<Ending>>,
    /// Told to end (or failed): out of every check.
    ending: bool,
    /// Dropped without resuming: the gateway keeps its place until then.
    linger_until: Option<Instant>,
    /// Out of the room count since its grace ended.
    linger_counted_out: bool,
    /// A reload in progress: its old and new tracks may both hold m-lines
    /// in the others' SDPs (the new ones arrive before the old ones' lines
    /// could be recycled), so it counts twice in the room until its new
    /// publish transport has been up for [`NEGOTIATION_WITHIN`].
    reloading: bool,
    counted_twice_until: Option<Instant>,
    /// Its task runs.
    alive: bool,
    /// SSRC → track, from the msids of its offers.
    ssrcs: HashMap<u32, Track>,
    mids: Vec<String>,
    /// Active tracks of its last offer, sorted.
    view: Vec<Track>,
    differs_since: Option<Instant>,
    /// Pairs (other, video) already reported or checked.
    checked: HashSet<Track>,
    /// Pairs whose media stopped (reported once).
    stale: HashSet<Track>,
    misattributed: HashSet<u32>,
    /// Peers whose media it must get for time-to-media; `None` before it
    /// is present, empty once measured.
    ttm_peers: Option<Vec<usize>>,
}

impl Member {
    /// One whose task starts at `started`, not joined yet.
    fn new(
        room: u32,
        fate: Fate,
        started: Instant,
        end_tx: Option<oneshot::Sender<Ending>>,
    ) -> Self {
        Self {
            room,
            fate,
            started,
            id: None,
            joined_ns: None,
            present_at: None,
            end_at: started + fate.stay,
            end_tx,
            ending: false,
            linger_until: None,
            linger_counted_out: false,
            reloading: false,
            counted_twice_until: None,
            alive: true,
            ssrcs: HashMap::new(),
            mids: Vec::new(),
            view: Vec::new(),
            differs_since: None,
            checked: HashSet::new(),
            stale: HashSet::new(),
            misattributed: HashSet::new(),
            ttm_peers: None,
        }
    }

    /// For violation details: where it is in its life.
    fn state(&self, now: Instant) -> String {
        let ago = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
        format!(
            "id {:?}: alive {} ending {} present {} reloading {} how {:?} end_at {:.1} s ago, linger_until {:?} s ago",
            self.id,
            self.alive,
            self.ending,
            self.present(),
            self.reloading,
            self.fate.how,
            ago(self.end_at),
            self.linger_until.map(ago),
        )
    }

    fn present(&self) -> bool {
        self.alive && !self.ending && self.present_at.is_some() && self.id.is_some()
    }
}

/// Where and how the participants run.
#[derive(Debug)]
pub(crate) struct Env {
    pub ws: String,
    pub bind_ip: IpAddr,
    pub salt: u64,
    pub room_prefix: String,
    pub epoch: Instant,
    pub progress: bool,
    pub txs: Vec<mpsc::Sender<Command>>,
}

/// The outcome of [`drive`].
#[derive(Debug)]
pub(crate) struct Outcome {
    pub report: ChurnReport,
    pub error: Option<String>,
    pub gateway_errors: Vec<String>,
    /// When the churn window began and ended.
    pub window: (Instant, Instant),
    pub stop: watch::Sender<bool>,
    pub tasks: tokio::task::JoinSet<()>,
    pub connected_now: usize,
}

struct Driver<'a> {
    sc: &'a Scenario,
    c: &'a ChurnConfig,
    env: &'a Env,
    members: Vec<Member>,
    alive: Vec<u32>,
    report: ChurnReport,
    ttm: Vec<f64>,
    tasks: tokio::task::JoinSet<()>,
    sev_tx: tokio::sync::mpsc::UnboundedSender<SignalEvent>,
    stop_rx: watch::Receiver<bool>,
    gateway_errors: Vec<String>,
}

impl Driver<'_> {
    fn violation(
        &mut self,
        now: Instant,
        kind: &'static str,
        receiver: Option<u64>,
        other: Option<u64>,
        detail: String,
    ) {
        self.report.violations_total += 1;
        if self.report.violations.len() < MAX_VIOLATIONS_KEPT {
            let t_s = now.duration_since(self.env.epoch).as_secs_f64();
            if self.env.progress {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "[{t_s:6.1}s] VIOLATION {kind} receiver {receiver:?} other {other:?}: {detail}"
                );
            }
            self.report.violations.push(Violation {
                t_s,
                kind,
                receiver,
                other,
                detail,
            });
        }
    }

    fn start(&mut self, room: u32, now: Instant) {
        let index = self.members.len();
        let fate = fate(self.c, self.sc.video_fraction, index);
        let (end_tx, end_rx) = oneshot::channel();
        let plan = ParticipantPlan {
            index,
            room_name: format!("{}-{room}", self.env.room_prefix),
            room,
            video: fate.video,
            simulcast: self.sc.media.simulcast,
            ws_url: self.env.ws.clone(),
            bind_ip: self.env.bind_ip,
            track_offers: true,
            resume: fate.resume,
        };
        let wtx = self.env.txs[index % self.env.txs.len()].clone();
        self.tasks.spawn(run_churn_participant(
            plan,
            wtx,
            self.sev_tx.clone(),
            self.stop_rx.clone(),
            self.env.salt,
            end_rx,
        ));
        self.members
            .push(Member::new(room, fate, now, Some(end_tx)));
        self.report.started += 1;
        count_in(&mut self.alive, &mut self.report.max_present, room);
    }

    /// Its task ended. `linger`: the gateway keeps its place that long (a
    /// drop with a grace period): it still counts as in the room.
    fn gone(&mut self, index: usize, now: Instant, linger: Duration) {
        if let Some(m) = self.members.get_mut(index)
            && m.alive
        {
            m.alive = false;
            m.ending = true;
            if linger.is_zero() {
                count_out(&mut self.alive, m.room);
            } else {
                m.linger_until = Some(now + linger);
            }
        }
    }

    /// Lingering participants whose grace is over, and reloads done, leave
    /// the room count.
    fn lingering_over(&mut self, now: Instant) {
        for m in &mut self.members {
            if m.counted_twice_until.is_some_and(|t| t <= now) {
                m.counted_twice_until = None;
                count_out(&mut self.alive, m.room);
            }
            if let Some(t) = m.linger_until
                && t <= now
                && !m.linger_counted_out
            {
                m.linger_counted_out = true;
                count_out(&mut self.alive, m.room);
            }
        }
    }

    /// Its socket dropped for a resume. A reload's transports are gone:
    /// out of the checks until its new publish transport is up, then
    /// checked afresh, both ways.
    fn on_resuming(&mut self, index: usize, reload: bool) {
        if !reload {
            return;
        }
        let Some(m) = self.members.get_mut(index) else {
            return;
        };
        // A new subscribe transport: a new SDP session, mids from 0.
        m.mids.clear();
        m.present_at = None;
        m.ttm_peers = None;
        if !m.reloading {
            m.reloading = true;
            count_in(&mut self.alive, &mut self.report.max_present, m.room);
        }
        let Some(m) = self.members.get_mut(index) else {
            return;
        };
        m.checked.clear();
        m.stale.clear();
        let Some(id) = m.id else { return };
        for o in &mut self.members {
            for video in [false, true] {
                o.checked.remove(&(id, video));
                o.stale.remove(&(id, video));
            }
        }
    }

    fn on_resumed(&mut self, index: usize, took: Duration, reload: bool, now: Instant) {
        if reload {
            self.report.resume_reloads += 1;
            // Its time to media counts from the resume.
            if let Some(m) = self.members.get_mut(index) {
                m.joined_ns = Some(now.duration_since(self.env.epoch).as_nanos() as u64);
            }
        } else {
            self.report.resumes += 1;
        }
        self.report.resume_max_ms = self.report.resume_max_ms.max(took.as_secs_f64() * 1000.0);
    }

    fn on_offer(&mut self, index: usize, lines: Vec<OfferedLine>, bytes: usize, wait: Duration) {
        let now = Instant::now();
        let Some(m) = self.members.get_mut(index) else {
            return;
        };
        let (room, id) = (m.room, m.id);
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        if !m.mids.is_empty()
            && (lines.len() < m.mids.len() || lines.iter().zip(&m.mids).any(|(l, p)| &l.mid != p))
        {
            problems.push((
                "mids-changed",
                format!(
                    "offer mids {:?} after {:?}",
                    lines.iter().map(|l| l.mid.as_str()).collect::<Vec<_>>(),
                    m.mids
                ),
            ));
        }
        m.mids = lines.iter().map(|l| l.mid.clone()).collect();
        let mut view = Vec::new();
        for l in lines.iter().filter(|l| l.active) {
            if let Some(p) = l.publisher {
                for &s in &l.ssrcs {
                    m.ssrcs.insert(s, (p, l.video));
                }
                view.push((p, l.video));
            }
        }
        view.sort_unstable();
        view.dedup();
        m.view = view;
        self.report.offers += 1;
        self.report.answer_wait_max_ms = self
            .report
            .answer_wait_max_ms
            .max(wait.as_secs_f64() * 1000.0);
        self.report.largest_sdp_mlines = self.report.largest_sdp_mlines.max(lines.len());
        self.report.largest_sdp_bytes = self.report.largest_sdp_bytes.max(bytes);
        if wait > NEGOTIATION_WITHIN {
            problems.push(("answer-late", format!("answered after {wait:?}")));
        }
        let most = self
            .report
            .max_present
            .get(room as usize)
            .copied()
            .unwrap_or(0) as usize;
        let bound = 2 * most.saturating_sub(1);
        if lines.len() > bound {
            problems.push((
                "sdp-too-large",
                format!(
                    "{} m-lines, bound {bound} (at most {most} present at once)",
                    lines.len()
                ),
            ));
        }
        for (kind, detail) in problems {
            self.violation(now, kind, id.or(Some(index as u64)), None, detail);
        }
    }

    /// The continuous checks, on every tick.
    fn check(&mut self, now: Instant, streams: &[StreamSeen]) {
        let now_ns = now.duration_since(self.env.epoch).as_nanos() as u64;
        let ns = |t: Instant| t.saturating_duration_since(self.env.epoch).as_nanos() as u64;
        // What each present receiver got, per track: (first, last) ns.
        let mut got: HashMap<usize, HashMap<Track, (u64, u64)>> = HashMap::new();
        let mut misattributed = Vec::new();
        for s in streams {
            let Some(m) = self.members.get_mut(s.index) else {
                continue;
            };
            let Some(&track) = m.ssrcs.get(&s.ssrc) else {
                continue;
            };
            if track.0 != s.sender && m.misattributed.insert(s.ssrc) {
                misattributed.push((m.id, track.0, s.ssrc, s.sender));
            }
            let e = got
                .entry(s.index)
                .or_default()
                .entry(track)
                .or_insert((u64::MAX, 0));
            e.0 = e.0.min(s.first_ns);
            e.1 = e.1.max(s.last_ns);
        }
        for (rx, p, ssrc, stamped) in misattributed {
            self.violation(
                now,
                "misattributed",
                rx,
                Some(p),
                format!("SSRC {ssrc} is {p}'s by the msid, its packets are stamped {stamped}"),
            );
        }
        let empty = HashMap::new();
        let mut found: Vec<(&'static str, Option<u64>, Option<u64>, String)> = Vec::new();
        let mut stale_now: Vec<(usize, Track)> = Vec::new();
        for a in 0..self.members.len() {
            if !self.members[a].present() {
                continue;
            }
            let ma = &self.members[a];
            let ga = got.get(&a).unwrap_or(&empty);
            let mut roster: Vec<Track> = Vec::new();
            // Tracks its view may show, or not: peers joining or reloading
            // (not connected yet), and dropped ones in their grace period.
            let mut optional: Vec<Track> = Vec::new();
            let mut ttm_ready = Some(ma.joined_ns.unwrap_or(0));
            let mut ttm_counted = false;
            for b in 0..self.members.len() {
                let mb = &self.members[b];
                if b == a || mb.room != ma.room {
                    continue;
                }
                if !mb.present() {
                    let lingers = mb
                        .linger_until
                        .is_some_and(|t| now < t + NEGOTIATION_WITHIN);
                    if let Some(bid) = mb.id
                        && (lingers || (mb.alive && !mb.ending))
                    {
                        optional.extend([(bid, false), (bid, true)]);
                    }
                    continue;
                }
                let (Some(bid), Some(pa), Some(pb)) = (mb.id, ma.present_at, mb.present_at) else {
                    continue;
                };
                roster.push((bid, false));
                if mb.fate.video {
                    roster.push((bid, true));
                }
                let since = pa.max(pb);
                for video in [false, true].into_iter().filter(|&v| !v || mb.fate.video) {
                    let g = ga.get(&(bid, video)).copied();
                    if let Some(peers) = &ma.ttm_peers
                        && peers.contains(&b)
                    {
                        ttm_counted = true;
                        ttm_ready = match (ttm_ready, g) {
                            (Some(t), Some((first, _))) => Some(t.max(first)),
                            _ => None,
                        };
                    }
                    if now < since + MEDIA_WITHIN {
                        continue;
                    }
                    let kind = if video { "video" } else { "audio" };
                    let first_check = !ma.checked.contains(&(bid, video));
                    let stale =
                        |last: u64| now_ns.saturating_sub(last) > MEDIA_STALE.as_nanos() as u64;
                    match g {
                        // Received in the window: it must go on flowing
                        // (reported once per pair and kind).
                        Some((_, last))
                            if last >= ns(since)
                                && stale(last)
                                && !ma.stale.contains(&(bid, video)) =>
                        {
                            stale_now.push((a, (bid, video)));
                            found.push((
                                "stale-media",
                                ma.id,
                                Some(bid),
                                format!(
                                    "{kind}: last packet {:.1} s ago",
                                    now_ns.saturating_sub(last) as f64 / 1e9
                                ),
                            ));
                        }
                        Some((_, last)) if last >= ns(since) => {}
                        _ if first_check => found.push((
                            "no-media",
                            ma.id,
                            Some(bid),
                            format!(
                                "{kind}: nothing within {:.1} s together",
                                now.duration_since(since).as_secs_f64()
                            ),
                        )),
                        _ => {}
                    }
                }
            }
            roster.sort_unstable();
            // Time to media: the peers present when it connected.
            let mut ttm_sample = None;
            let ma = &mut self.members[a];
            match &mut ma.ttm_peers {
                None => {}
                Some(peers) if peers.is_empty() => ttm_ready = None,
                // Every peer it had to hear left first: no sample.
                Some(peers) if !ttm_counted => {
                    peers.clear();
                    ttm_ready = None;
                }
                Some(_) => {}
            }
            if let (Some(peers), Some(t)) = (&mut ma.ttm_peers, ttm_ready)
                && !peers.is_empty()
                && let Some(j) = ma.joined_ns
            {
                ttm_sample = Some(t.saturating_sub(j) as f64 / 1e6);
                peers.clear();
            }
            if let Some(v) = ttm_sample {
                self.ttm.push(v);
            }
            // The view against the roster.
            let differs = roster.iter().any(|t| !ma.view.contains(t))
                || ma
                    .view
                    .iter()
                    .any(|t| !roster.contains(t) && !optional.contains(t));
            if !differs {
                ma.differs_since = None;
                continue;
            }
            let since = *ma.differs_since.get_or_insert(now);
            if now < since + NEGOTIATION_WITHIN {
                continue;
            }
            ma.differs_since = Some(now);
            let (id, view) = (ma.id, ma.view.clone());
            let extra: Vec<String> = view
                .iter()
                .filter(|t| !roster.contains(t) && !optional.contains(t))
                .filter_map(|t| self.members.iter().find(|m| m.id == Some(t.0)))
                .map(|m| m.state(now))
                .collect();
            found.push((
                "view-differs",
                id,
                None,
                format!(
                    "offered {view:?}, roster {roster:?} (optional {optional:?}); not in the roster: {extra:?}"
                ),
            ));
        }
        // Mark the checked pairs (once each: counted, and reported once).
        for a in 0..self.members.len() {
            if !self.members[a].present() {
                continue;
            }
            let (room, pa) = (self.members[a].room, self.members[a].present_at);
            let mut done = Vec::new();
            for b in 0..self.members.len() {
                let mb = &self.members[b];
                if b == a || mb.room != room || !mb.present() {
                    continue;
                }
                let (Some(bid), Some(pa), Some(pb)) = (mb.id, pa, mb.present_at) else {
                    continue;
                };
                if now >= pa.max(pb) + MEDIA_WITHIN {
                    done.push((bid, false));
                    if mb.fate.video {
                        done.push((bid, true));
                    }
                }
            }
            for t in done {
                if self.members[a].checked.insert(t) {
                    self.report.pair_checks += 1;
                }
            }
        }
        for (a, t) in stale_now {
            self.members[a].stale.insert(t);
        }
        for (kind, rx, other, detail) in found {
            self.violation(now, kind, rx, other, detail);
        }
    }

    /// A participant's publish transport is up: it is present; note the
    /// peers whose media it must get for time-to-media.
    fn on_present(&mut self, index: usize, now: Instant) {
        let Some(room) = self.members.get(index).map(|m| m.room) else {
            return;
        };
        let peers: Vec<usize> = (0..self.members.len())
            .filter(|&b| b != index && self.members[b].room == room && self.members[b].present())
            .collect();
        if let Some(m) = self.members.get_mut(index) {
            m.present_at = Some(now);
            m.ttm_peers = Some(peers);
            if m.reloading {
                m.reloading = false;
                m.counted_twice_until = Some(now + NEGOTIATION_WITHIN);
            }
        }
    }
}

/// One more participant counted in `room` (and its most so far).
fn count_in(alive: &mut [u32], most: &mut [u32], room: u32) {
    if let Some(a) = alive.get_mut(room as usize) {
        *a += 1;
        if let Some(m) = most.get_mut(room as usize) {
            *m = (*m).max(*a);
        }
    }
}

/// One participant fewer counted in `room`.
fn count_out(alive: &mut [u32], room: u32) {
    if let Some(a) = alive.get_mut(room as usize) {
        *a = a.saturating_sub(1);
    }
}

fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(i).copied()
}

/// Run the churn for `ramp + duration_s`: start the rooms at the join
/// rate, end participants as their fates say, replace them, check.
pub(crate) async fn drive(
    sc: &Scenario,
    c: &ChurnConfig,
    env: &Env,
    wev_rx: &mut tokio::sync::mpsc::UnboundedReceiver<WorkerEvent>,
    streams: &mut dyn FnMut() -> Vec<StreamSeen>,
    sut_exited: &mut dyn FnMut() -> Option<String>,
) -> Outcome {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sev_tx, mut sev_rx) = tokio::sync::mpsc::unbounded_channel::<SignalEvent>();
    let mut d = Driver {
        sc,
        c,
        env,
        members: Vec::new(),
        alive: vec![0; sc.rooms as usize],
        report: ChurnReport {
            max_present: vec![0; sc.rooms as usize],
            ..ChurnReport::default()
        },
        ttm: Vec::new(),
        tasks: tokio::task::JoinSet::new(),
        sev_tx,
        stop_rx,
        gateway_errors: Vec::new(),
    };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(sc.ramp_s() + sc.duration_s);
    // Arrivals: (when, room), the initial rooms at the join rate.
    let mut arrivals: Vec<(Instant, u32)> = Vec::new();
    let mut k = 0usize;
    for room in 0..sc.rooms {
        for _ in 0..sc.room_size(room) {
            arrivals.push((
                start + Duration::from_secs_f64(k as f64 / sc.join_rate),
                room,
            ));
            k += 1;
        }
    }
    let mut error = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_progress = start;
    loop {
        tokio::select! {
            ev = sev_rx.recv() => {
                let now = Instant::now();
                match ev {
                    Some(SignalEvent::Joined { index, id }) => {
                        d.report.joins += 1;
                        let ns = now.duration_since(env.epoch).as_nanos() as u64;
                        if let Some(m) = d.members.get_mut(index) {
                            m.id = Some(id);
                            m.joined_ns = Some(ns);
                        }
                    }
                    Some(SignalEvent::SubscribeOffer { index, lines, bytes, wait }) => {
                        d.on_offer(index, lines, bytes, wait);
                    }
                    Some(SignalEvent::Ended { index, how }) => {
                        let linger = if how == Ending::Drop {
                            Duration::from_secs_f64(c.reconnect_grace_s.ceil())
                        } else {
                            Duration::ZERO
                        };
                        d.gone(index, now, linger);
                    }
                    Some(SignalEvent::Resuming { index, reload }) => d.on_resuming(index, reload),
                    Some(SignalEvent::Resumed { index, took, reload }) => {
                        d.on_resumed(index, took, reload, now);
                    }
                    Some(SignalEvent::Fatal { index, reason }) => {
                        let id = d.members.get(index).and_then(|m| m.id);
                        let was_ending = d.members.get(index).is_some_and(|m| m.ending);
                        d.gone(index, now, Duration::ZERO);
                        let _ = env.txs[index % env.txs.len()].send(Command::Remove { index });
                        if !was_ending {
                            d.violation(now, "participant-failed", id, None, reason);
                            if let Some(m) = d.members.get(index) {
                                arrivals.push((now + m.fate.replaced_after, m.room));
                            }
                        }
                    }
                    Some(SignalEvent::GatewayError { error, .. }) if d.gateway_errors.len() < 20 => {
                        d.gateway_errors.push(error);
                    }
                    Some(SignalEvent::GatewayError { .. }) | None => {}
                }
            }
            ev = wev_rx.recv() => {
                let now = Instant::now();
                match ev {
                    Some(WorkerEvent::Connected { index, which: Which::Publish }) => d.on_present(index, now),
                    Some(WorkerEvent::Failed { index, which, reason }) => {
                        let m = d.members.get_mut(index);
                        if let Some(m) = m
                            && !m.ending
                        {
                            m.ending = true;
                            if let Some(tx) = m.end_tx.take() {
                                let _ = tx.send(Ending::Leave);
                            }
                            let (id, room, after) = (m.id, m.room, m.fate.replaced_after);
                            arrivals.push((now + after, room));
                            d.violation(now, "participant-failed", id, None, format!("{which:?} transport: {reason}"));
                        }
                    }
                    Some(_) => {}
                    None => {
                        error = Some("media workers stopped".to_owned());
                        break;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if let Some(e) = sut_exited() {
                    error = Some(format!("the SUT exited during the run ({e})"));
                    break;
                }
                // Arrivals due.
                let mut i = 0;
                while i < arrivals.len() {
                    if arrivals[i].0 <= now {
                        let (_, room) = arrivals.swap_remove(i);
                        d.start(room, now);
                    } else {
                        i += 1;
                    }
                }
                // Endings due.
                for index in 0..d.members.len() {
                    let m = &mut d.members[index];
                    if m.alive && !m.ending && now >= m.end_at {
                        m.ending = true;
                        let how = m.fate.how;
                        if let Some(tx) = m.end_tx.take() {
                            let _ = tx.send(how);
                        }
                        arrivals.push((now + m.fate.replaced_after, m.room));
                        match how {
                            Ending::Leave => d.report.leaves += 1,
                            Ending::Reload => d.report.reloads += 1,
                            Ending::Drop => d.report.drops += 1,
                        }
                    }
                }
                d.lingering_over(now);
                while d.tasks.try_join_next().is_some() {}
                let seen = streams();
                d.check(now, &seen);
                if env.progress && now >= next_progress {
                    next_progress = now + Duration::from_secs(1);
                    let present = d.members.iter().filter(|m| m.present()).count();
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "[{:6.1}s] churn: present {present}, started {}, joins {}, leaves {}, reloads {}, drops {}, resumes {}+{}, offers {}, violations {}",
                        now.duration_since(env.epoch).as_secs_f64(),
                        d.report.started, d.report.joins, d.report.leaves, d.report.reloads,
                        d.report.drops, d.report.resumes, d.report.resume_reloads, d.report.offers,
                        d.report.violations_total,
                    );
                }
            }
        }
    }
    let connected_now = d.members.iter().filter(|m| m.present()).count();
    let mut ttm = std::mem::take(&mut d.ttm);
    d.report.time_to_media_samples = ttm.len();
    d.report.time_to_media_p50_ms = quantile(&mut ttm, 0.5);
    d.report.time_to_media_max_ms = quantile(&mut ttm, 1.0);
    // Keep the members' start times out of the report, but use them:
    // nobody may stay unjoined for long.
    let now = Instant::now();
    let unjoined: Vec<usize> = (0..d.members.len())
        .filter(|&i| {
            let m = &d.members[i];
            m.alive && !m.ending && m.id.is_none() && now > m.started + NEGOTIATION_WITHIN
        })
        .collect();
    for i in unjoined {
        d.violation(
            now,
            "participant-failed",
            Some(i as u64),
            None,
            "no `joined` within 5 s".into(),
        );
    }
    Outcome {
        report: d.report,
        error,
        gateway_errors: d.gateway_errors,
        window: (start, Instant::now()),
        stop: stop_tx,
        tasks: d.tasks,
        connected_now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(room: u32, id: u64, video: bool, present_at: Instant) -> Member {
        let fate = Fate {
            video,
            stay: Duration::from_secs(60),
            how: Ending::Leave,
            replaced_after: Duration::ZERO,
            resume: None,
        };
        Member {
            id: Some(id),
            joined_ns: Some(0),
            present_at: Some(present_at),
            ..Member::new(room, fate, present_at, None)
        }
    }

    fn line(mid: &str, video: bool, active: bool, publisher: u64, ssrc: u32) -> OfferedLine {
        OfferedLine {
            mid: mid.into(),
            video,
            active,
            publisher: Some(publisher),
            ssrcs: vec![ssrc],
        }
    }

    /// The checks fire on what they must, and only then.
    #[test]
    fn checks_catch_missing_media_bad_offers_and_misattribution() {
        let sc = Scenario::parse(
            "name = \"t\"\nrooms = 1\nroom_sizes = [2]\nvideo_fraction = 0.0\njoin_rate = 1.0\nduration_s = 1.0\n[churn]\n",
        )
        .unwrap();
        let c = sc.churn.clone().unwrap();
        let epoch = Instant::now();
        let env = Env {
            ws: String::new(),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            salt: 0,
            room_prefix: String::new(),
            epoch,
            progress: false,
            txs: Vec::new(),
        };
        let (sev_tx, _sev_rx) = tokio::sync::mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut d = Driver {
            sc: &sc,
            c: &c,
            env: &env,
            members: vec![member(0, 10, false, epoch), member(0, 11, true, epoch)],
            alive: vec![2],
            report: ChurnReport {
                max_present: vec![2],
                ..ChurnReport::default()
            },
            ttm: Vec::new(),
            tasks: tokio::task::JoinSet::new(),
            sev_tx,
            stop_rx,
            gateway_errors: Vec::new(),
        };
        // Before 3 s together nothing is due; at 3.1 s with no media, each
        // misses the other's tracks (audio; and 10 misses 11's video), and
        // only once.
        d.check(epoch + Duration::from_secs(2), &[]);
        assert_eq!(d.report.violations_total, 0);
        let t = epoch + Duration::from_millis(3100);
        d.check(t, &[]);
        assert_eq!(d.report.violations_total, 3, "{:?}", d.report.violations);
        assert!(d.report.violations.iter().all(|v| v.kind == "no-media"));
        d.check(t + TICK, &[]);
        assert_eq!(d.report.violations_total, 3);
        assert_eq!(d.report.pair_checks, 3);

        // Offers: one within the bound (2 x (2 - 1) = 2 lines), one over
        // it that also drops a mid, one late.
        d.on_offer(
            0,
            vec![
                line("0", false, true, 11, 100),
                line("1", true, true, 11, 101),
            ],
            500,
            Duration::from_millis(3),
        );
        assert_eq!(d.report.violations_total, 3);
        d.on_offer(
            0,
            vec![
                line("1", true, true, 11, 101),
                line("2", false, true, 11, 102),
                line("3", false, false, 11, 103),
            ],
            700,
            Duration::from_secs(6),
        );
        let kinds: Vec<&str> = d.report.violations[3..].iter().map(|v| v.kind).collect();
        assert_eq!(kinds, ["mids-changed", "answer-late", "sdp-too-large"]);

        // A stream on SSRC 101 (11's video by the msid) stamped by 12.
        let ns = |t: Instant| t.duration_since(epoch).as_nanos() as u64;
        let now = epoch + Duration::from_secs(5);
        let seen = StreamSeen {
            index: 0,
            ssrc: 101,
            sender: 12,
            packets: 10,
            first_ns: ns(now) - 1_000_000,
            last_ns: ns(now),
        };
        let before = d.report.violations_total;
        d.check(now, &[seen]);
        assert!(
            d.report.violations[before..]
                .iter()
                .any(|v| v.kind == "misattributed")
        );

        // 10's view (11's audio + video per its last offer: 101 video,
        // 102 audio) matches the roster; 11 was never offered 10's audio:
        // its view differs for more than 5 s.
        let before = d.report.violations_total;
        d.check(now + Duration::from_secs(6), &[]);
        let differs: Vec<Option<u64>> = d.report.violations[before..]
            .iter()
            .filter(|v| v.kind == "view-differs")
            .map(|v| v.receiver)
            .collect();
        assert_eq!(differs, [Some(11)]);
    }

    #[test]
    fn fates_are_seeded_and_shaped() {
        let c = ChurnConfig {
            mean_stay_s: 10.0,
            min_stay_s: 2.0,
            reload_fraction: 0.25,
            drop_fraction: 0.25,
            ..ChurnConfig::default()
        };
        let a: Vec<Fate> = (0..2000).map(|i| fate(&c, 0.5, i)).collect();
        let b: Vec<Fate> = (0..2000).map(|i| fate(&c, 0.5, i)).collect();
        assert_eq!(a, b);
        let other = ChurnConfig {
            seed: 2,
            ..c.clone()
        };
        assert_ne!(
            a[0..20],
            (0..20).map(|i| fate(&other, 0.5, i)).collect::<Vec<_>>()[..]
        );
        let mean = a.iter().map(|f| f.stay.as_secs_f64()).sum::<f64>() / 2000.0;
        assert!((8.0..13.0).contains(&mean), "mean stay {mean}");
        assert!(
            a.iter()
                .all(|f| f.stay >= Duration::from_secs(2) && f.stay <= Duration::from_secs(40))
        );
        let n = |h: Ending| a.iter().filter(|f| f.how == h).count();
        for h in [Ending::Reload, Ending::Drop] {
            assert!((400..600).contains(&n(h)), "{h:?}: {}", n(h));
        }
        assert!((900..1100).contains(&n(Ending::Leave)));
        let video = a.iter().filter(|f| f.video).count();
        assert!((900..1100).contains(&video));
    }
}
