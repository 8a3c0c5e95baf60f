//! The glue between the worker and the allocator ([`crate::alloc`], policy
//! apart from mechanism): each round gathers, per receiver, the room's
//! live videos in priority order with their layers priced, asks the
//! allocator, and hands its decisions to each leg's layer selector (a
//! target layer, switched at its next key frame, or a pause). It also
//! tells publishers which encodings some receiver can use.

use std::time::{Duration, Instant};

use super::ids::{LayerIdx, TrackId};
use super::track::{InTrack, MAX_TIDS};
use super::{MAX_LAYERS, Worker, select};
use crate::alloc::{self, Choice, Content, Priority, VideoCandidate};
use crate::control::{Event, MediaKind, ParticipantId};

/// Shortest interval between two [`Event::LayersWanted`] for one track.
pub const LAYERS_WANTED_INTERVAL: Duration = Duration::from_millis(500);

/// After a receiver steps up a layer, no probe towards it until
/// [`super::forward::KEYFRAME_PROBE_HOLD`] after a switch's key frame has
/// gone (that hold replaces this one), for this long if none comes: the
/// key frame (three frames' worth) and a probe for the next step sent
/// together filled an 800 kbit/s bucket's queue, the probe failed, the
/// estimate fell and the layer with it, every 3 s
/// (`tests/layers_real_link.rs`, `tbf_800k_burst_10k_chrome_pli`). With
/// several videos switching at once, the first key frame ends the hold
/// (left: a count of the switches under way would keep it).
const UP_SWITCH_PROBE_HOLD: Duration = Duration::from_secs(1);

/// Buffers of an allocation round, kept between rounds.
#[derive(Debug, Default)]
pub struct AllocScratch {
    layers: Vec<alloc::Layer>,
    /// Per candidate: track, priority, its range in `layers`, content.
    videos: Vec<(TrackId, Priority, std::ops::Range<usize>, Content)>,
    order: Vec<usize>,
    in_last_n: Vec<bool>,
    /// Per video: track, choice, and its price (for the log).
    decisions: Vec<(TrackId, Choice, u64)>,
    /// What the receiver's audio costs (bit/s), off its video budget.
    audio_bps: u64,
}

/// Push `t`'s layers, as offered to `receiver`, onto `layers`: each
/// encoding up to what the receiver's tile shows, one step per temporal
/// layer priced cumulatively (or the whole encoding without TIDs).
fn price_layers(
    t: &InTrack,
    max_height: Option<u16>,
    since: Duration,
    now: Instant,
    layers: &mut Vec<alloc::Layer>,
) {
    let mut sizes = [None; MAX_LAYERS];
    let n = t.layers.len().min(MAX_LAYERS);
    for (sz, l) in sizes.iter_mut().zip(&t.layers) {
        *sz = l.size;
    }
    let top = select::choose_layer(sizes.get(..n).unwrap_or(&[]), max_height);
    for (li, l) in t.layers.iter().enumerate().take(top + 1) {
        let active = l.is_active(now);
        let spatial = u8::try_from(li).unwrap_or(u8::MAX);
        let height = l.size.map_or(0, |(_, h)| h);
        let tids = l.max_tid.map_or(0, |m| usize::from(m).min(MAX_TIDS - 1));
        for tid in 0..=tids {
            let cumulative = l.price_bps(l.max_tid.map(|_| tid), since);
            layers.push(alloc::Layer {
                spatial,
                temporal: u8::try_from(tid).unwrap_or(0),
                bitrate_bps: if active { cumulative.max(1) } else { 0 },
                height,
                active,
            });
        }
    }
}

/// What a decision cost, for the log: the chosen layer's price and the
/// receiver's audio (both bit/s).
#[derive(Debug, Clone, Copy)]
struct Prices {
    layer_bps: u64,
    audio_bps: u64,
}

/// One audio track's share at most (bit/s): Opus in WebRTC sends 6–128
/// kbit/s (stereo music up to 256); a publisher sending more is not let
/// to push every receiver's video out.
const AUDIO_TRACK_MAX_BPS: u64 = 256_000;

/// What audio track `t` costs forwarding to `receiver` (bit/s over the
/// last second, at most [`AUDIO_TRACK_MAX_BPS`]; 0 for video, a muted
/// track, or a receiver without a leg).
fn audio_to(t: &InTrack, receiver: ParticipantId, since: Duration) -> u64 {
    if t.kind != MediaKind::Audio
        || !t.enabled
        || !t.legs.outs().any(|o| o.receiver == receiver && o.live)
    {
        return 0;
    }
    t.layers
        .first()
        .map_or(0, |l| l.forwarded.bps(since))
        .min(AUDIO_TRACK_MAX_BPS)
}

impl Worker {
    /// What the audio forwarded to `receiver` costs (bit/s): the allocator
    /// gives its videos the bandwidth estimate less this.
    pub fn audio_share_bps(&self, receiver: ParticipantId, now: Instant) -> u64 {
        let Some(p) = self.participants.get(&receiver) else {
            return 0;
        };
        let since = now.saturating_duration_since(self.epoch);
        let mut sum = 0u64;
        for member in self.rooms.get(&p.room).into_iter().flatten() {
            let Some(m) = self
                .participants
                .get(member)
                .filter(|_| *member != receiver)
            else {
                continue;
            };
            for t in m.published.iter().filter_map(|&ti| self.tracks.get(ti)) {
                sum = sum.saturating_add(audio_to(t, receiver, since));
            }
        }
        sum
    }

    /// One allocation round for every receiver (see [`crate::alloc`]): its
    /// budget is its bandwidth estimate once transport-cc feedback arrived
    /// (unlimited before: the tile sizes alone decide), capped by the
    /// operator; candidates are the room's live videos in priority order —
    /// screen shares, the dominant speaker, recent speakers, the others in
    /// join order — the first `last_n` of them eligible. Decisions become
    /// each leg's target layer (switched at its next key frame) or a
    /// pause; the next step up is what the estimator may probe towards.
    pub(super) fn allocate(&mut self, now: Instant) {
        let mut sc = std::mem::take(&mut self.alloc_scratch);
        let receivers: Vec<ParticipantId> = self.participants.keys().copied().collect();
        let mut held = 0;
        for pid in receivers {
            self.allocate_for(pid, now, &mut sc);
            if let Some(t) = self
                .participants
                .get(&pid)
                .and_then(|p| self.transports.get(p.subscribe))
                && let Some(e) = t.fed_estimate_bps()
            {
                self.metrics.receiver_estimate.observe(e);
                if let Some(rtt) = t.rtt() {
                    self.metrics
                        .receiver_rtt
                        .observe(u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX));
                }
                held += u64::from(t.bwe_ceiling_bps().is_some());
            }
        }
        self.metrics.receivers_held.set(held);
        self.alloc_scratch = sc;
        self.count_layers();
    }

    /// Per-worker gauges of what the legs forward (set each full round).
    fn count_layers(&self) {
        let mut by_layer = [0u64; 3];
        let (mut switching, mut thinned) = (0u64, 0u64);
        for t in self.tracks.values().filter(|t| t.kind == MediaKind::Video) {
            for leg in t.legs.video().iter().filter(|l| l.is_receiving()) {
                match leg.sel.current() {
                    Some(c) => {
                        if let Some(n) = by_layer.get_mut(c.index().min(2)) {
                            *n += 1;
                        }
                    }
                    None => switching += 1,
                }
                if leg.sel.current().is_some() && leg.sel.is_waiting() {
                    switching += 1;
                }
                thinned += u64::from(leg.sel.target_tid() != u8::MAX);
            }
        }
        let [l0, l1, l2] = by_layer;
        self.metrics.video_legs_spatial0.set(l0);
        self.metrics.video_legs_spatial1.set(l1);
        self.metrics.video_legs_spatial2.set(l2);
        self.metrics.video_legs_switching.set(switching);
        self.metrics.video_legs_thinned.set(thinned);
    }

    /// A round over the receivers whose constraints, last-N or cap changed
    /// since the last one ([`Worker::allocate_soon`]).
    pub(super) fn allocate_dirty(&mut self, now: Instant) {
        let mut sc = std::mem::take(&mut self.alloc_scratch);
        let receivers = std::mem::take(&mut self.alloc_dirty);
        for &pid in &receivers {
            self.allocate_for(pid, now, &mut sc);
        }
        self.alloc_scratch = sc;
    }

    /// One receiver's share of an allocation round.
    fn allocate_for(&mut self, pid: ParticipantId, now: Instant, sc: &mut AllocScratch) {
        let Some(p) = self.participants.get(&pid) else {
            return;
        };
        let (last_n, cap_bps, sub, audio_only) = (p.last_n, p.cap_bps, p.subscribe, p.audio_only);
        // A probe's proof is for this round only (not kept while the
        // receiver takes no video, to skip a hold later).
        let probe_proven = self
            .transports
            .get_mut(sub)
            .is_some_and(super::transport::Transport::take_probe_proven);
        if audio_only {
            return;
        }
        self.gather_candidates(pid, now, sc);
        // Last-N: the first `last_n` in priority order (stable: join
        // order among equals).
        sc.order.clear();
        sc.order.extend(0..sc.videos.len());
        sc.order.sort_by_key(|&i| sc.videos.get(i).map(|v| v.1));
        let limit = last_n.map_or(usize::MAX, |n| n as usize);
        sc.in_last_n.clear();
        sc.in_last_n.resize(sc.videos.len(), false);
        for (rank, &i) in sc.order.iter().enumerate() {
            if let Some(x) = sc.in_last_n.get_mut(i) {
                *x = rank < limit;
            }
        }
        let candidates: Vec<VideoCandidate<'_>> = sc
            .videos
            .iter()
            .zip(&sc.in_last_n)
            .map(|((ti, priority, range, content), &in_n)| VideoCandidate {
                id: ti.index_u64(),
                priority: *priority,
                layers: sc.layers.get(range.clone()).unwrap_or(&[]),
                max_height: None,
                in_last_n: in_n,
                content: *content,
            })
            .collect();
        let estimate = self.transports.get(sub).and_then(|t| t.fed_estimate_bps());
        // The videos get what the audio leaves (the estimate covers both);
        // the audio never takes more than half.
        if let Some(e) = estimate {
            sc.audio_bps = sc.audio_bps.min(e / 2);
        }
        let input = alloc::AllocInput {
            available_bps: estimate.map_or(u64::MAX, |e| e.saturating_sub(sc.audio_bps)),
            cap_bps,
            audio_only: false,
            probe_proven,
            videos: &candidates,
        };
        sc.decisions.clear();
        let mut wanted = None;
        if let Some(p) = self.participants.get_mut(&pid) {
            let out = p.alloc.allocate(&input, now);
            sc.decisions
                .extend(out.iter().zip(&candidates).map(|(d, v)| {
                    (
                        TrackId::from_u64(d.id),
                        d.choice,
                        alloc::bitrate_of(v, d.choice),
                    )
                }));
            // Probe only towards the next step up (with the margin, and
            // 10 % more so a probe that passes shows the step fits).
            wanted = p
                .alloc
                .next_step_bps(&input)
                .map(|w| w + w / 10 + sc.audio_bps);
        }
        drop(candidates);
        if estimate.is_some()
            && let Some(t) = self.transports.get_mut(sub)
        {
            t.set_wanted_bps(wanted.unwrap_or(0), now);
        }
        for i in 0..sc.decisions.len() {
            if let Some(&(ti, choice, price_bps)) = sc.decisions.get(i) {
                let prices = Prices {
                    layer_bps: price_bps,
                    audio_bps: sc.audio_bps,
                };
                self.apply_choice(pid, ti, choice, prices, now);
            }
        }
    }

    /// The videos `pid` could receive, with their priced layers, into
    /// `sc.videos` and `sc.layers`.
    fn gather_candidates(&self, pid: ParticipantId, now: Instant, sc: &mut AllocScratch) {
        sc.layers.clear();
        sc.videos.clear();
        // The audio goes first, on the same link: the videos share what it
        // leaves (issue 17: "leaving room for audio and margin").
        sc.audio_bps = self.audio_share_bps(pid, now);
        let Some(p) = self.participants.get(&pid) else {
            return;
        };
        let since = now.saturating_duration_since(self.epoch);
        let dominant = self.speakers.get(&p.room).and_then(|d| d.current());
        let recent = self.recent.get(&p.room);
        for member in self.rooms.get(&p.room).into_iter().flatten() {
            if *member == pid {
                continue;
            }
            let Some(m) = self.participants.get(member) else {
                continue;
            };
            for &ti in &m.published {
                let Some(t) = self.tracks.get(ti) else {
                    continue;
                };
                if t.kind != MediaKind::Video || !t.enabled {
                    continue;
                }
                let Some(leg) = t
                    .legs
                    .video()
                    .iter()
                    .find(|l| l.out.receiver == pid && l.out.live)
                else {
                    continue;
                };
                let priority = if t.screen {
                    Priority::ScreenShare
                } else if dominant == Some(*member) {
                    Priority::DominantSpeaker
                } else if let Some(r) = recent.and_then(|r| r.iter().position(|x| x == member)) {
                    Priority::RecentSpeaker(u8::try_from(r).unwrap_or(u8::MAX))
                } else {
                    Priority::Other
                };
                let start = sc.layers.len();
                price_layers(t, leg.max_height, since, now, &mut sc.layers);
                if sc
                    .layers
                    .get(start..)
                    .is_some_and(|ls| ls.iter().all(|l| !l.active))
                {
                    // Nothing arrives (yet): leave this leg as it is.
                    sc.layers.truncate(start);
                    continue;
                }
                let content = if t.screen {
                    Content::Screen
                } else {
                    Content::Camera
                };
                sc.videos
                    .push((ti, priority, start..sc.layers.len(), content));
            }
        }
    }

    /// Hand one allocator decision to `pid`'s leg on track `ti`.
    fn apply_choice(
        &mut self,
        pid: ParticipantId,
        ti: TrackId,
        choice: Choice,
        prices: Prices,
        now: Instant,
    ) {
        let sub = self.participants.get(&pid).map(|p| p.subscribe);
        let estimate_bps = sub
            .and_then(|s| self.transports.get(s))
            .and_then(|t| t.fed_estimate_bps());
        let mut stepped_up = false;
        let Some(t) = self.tracks.get_mut(ti) else {
            return;
        };
        let top_tids: [Option<u8>; MAX_LAYERS] = {
            let mut a = [None; MAX_LAYERS];
            for (x, l) in a.iter_mut().zip(&t.layers) {
                *x = l.max_tid;
            }
            a
        };
        let Some(leg) = t
            .legs
            .video_mut()
            .iter_mut()
            .find(|l| l.out.receiver == pid)
        else {
            return;
        };
        match choice {
            Choice::Paused => {
                if !leg.alloc_paused {
                    leg.alloc_paused = true;
                    leg.hold();
                    self.metrics.layer_pauses.inc();
                }
            }
            Choice::Layer { spatial, temporal } => {
                let li = LayerIdx::from(spatial);
                // The top temporal layer on offer means "all".
                let top_tid = top_tids.get(li.index()).copied().flatten();
                leg.sel.set_target_tid(match top_tid {
                    Some(m) if temporal < m => temporal,
                    _ => u8::MAX,
                });
                let resumed = std::mem::take(&mut leg.alloc_paused);
                let from = leg.sel.target();
                let changed = leg.sel.set_target(li);
                if changed {
                    self.metrics.layer_switches.inc();
                    if li > from {
                        stepped_up = true;
                        self.metrics.layer_switches_up.inc();
                    } else {
                        self.metrics.layer_switches_down.inc();
                    }
                    // The price of the layer left, all its temporal layers.
                    let since = now.saturating_duration_since(self.epoch);
                    let from_bps = t
                        .layers
                        .get(from.index())
                        .map(|l| l.price_bps(l.max_tid.map(usize::from), since));
                    tracing::debug!(
                        receiver = %pid,
                        publisher = %t.publisher,
                        from = from.as_u8(),
                        to = spatial,
                        temporal,
                        estimate_bps = ?estimate_bps,
                        layer_bps = prices.layer_bps,
                        from_bps = ?from_bps,
                        audio_bps = prices.audio_bps,
                        "layer target changed"
                    );
                }
                // A key frame of the new layer (a receiver still waiting is
                // asked for again by the retry timer).
                if (changed || resumed) && leg.sel.current() != Some(li) {
                    t.keyframes.owe(li);
                }
            }
        }
        if stepped_up && let Some(t) = sub.and_then(|s| self.transports.get_mut(s)) {
            t.hold_probes(now + UP_SWITCH_PROBE_HOLD);
        }
    }

    /// Tell publishers which simulcast encodings some receiver's tile can
    /// use (at most every [`LAYERS_WANTED_INTERVAL`] per track, on change).
    /// By tile size, not by bandwidth, so a layer a receiver may climb back
    /// to keeps being sent; the lowest stays on while anyone watches.
    pub(super) fn report_wanted_layers(&mut self, now: Instant) {
        for t in self.tracks.values_mut() {
            if t.kind != MediaKind::Video || t.layers.len() < 2 {
                continue;
            }
            let n = t.layers.len().min(MAX_LAYERS);
            let mut sizes = [None; MAX_LAYERS];
            for (sz, l) in sizes.iter_mut().zip(&t.layers) {
                *sz = l.size;
            }
            let sizes = sizes.get(..n).unwrap_or(&[]);
            let mut wanted = [false; MAX_LAYERS];
            for leg in t.legs.video().iter().filter(|l| l.out.live && !l.paused) {
                let top = select::choose_layer(sizes, leg.max_height);
                for w in wanted.iter_mut().take(top + 1) {
                    *w = true;
                }
            }
            // A publisher starts with every encoding on.
            let prev = t.wanted_sent.map_or([true; MAX_LAYERS], |(w, _)| w);
            let changed = prev.get(..n) != wanted.get(..n);
            let due = t
                .wanted_sent
                .is_none_or(|(_, at)| now >= at + LAYERS_WANTED_INTERVAL);
            if changed && due {
                t.wanted_sent = Some((wanted, now));
                self.events.push_back(Event::LayersWanted {
                    participant: t.publisher,
                    mid: t.mid.clone(),
                    active: wanted.iter().take(n).copied().collect(),
                });
            }
        }
    }
}
