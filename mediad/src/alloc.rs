//! Which layer of which video each receiver gets: the bandwidth allocator.
//!
//! Policy apart from mechanism: [`distribute`] is a pure function from a
//! receiver's budget and candidate videos to a proposal; [`AllocatorState`]
//! (one per receiver) adds hysteresis and commits. Nothing here reads the
//! clock or allocates once its buffers have grown to the number of videos.
//!
//! The distribution follows mediasoup's
//! `Transport::DistributeAvailableOutgoingBitrate`: propose, then commit,
//! giving layers one step at a time while bandwidth remains. Salon's policy:
//!
//! 1. Only videos within last-N take part; audio-only receivers get nothing.
//! 2. Budget = min(estimate, operator cap).
//! 3. In priority order (screen share, dominant speaker, recent speakers by
//!    rank, others; ties in input order), each video gets its lowest
//!    eligible layer if it fits — thumbnails first. The first video gets
//!    its lowest layer even when it does not fit (never freeze the most
//!    important tile; its packets carry the probes).
//! 4. Then the classes climb in priority order: round-robin within a class,
//!    one step (the next eligible (spatial, temporal) layer) per video per
//!    pass, until no step of that class fits; then the next class.
//! 5. Eligible layers are active, have a measured bitrate, and a spatial
//!    layer no taller than the receiver's tile (the lowest spatial layer is
//!    always eligible).
//! 6. Hysteresis: a step to a layer above the committed one needs the
//!    budget to exceed the new total by a margin (15 %), and the state
//!    commits an up-switch only after it has
//!    been proposed for a hold time (1 s), one spatial layer at a time (the
//!    next after 0.4 s more); a down-switch commits at once. An estimate a
//!    probe has just proven (no queue over the whole cluster) needs no
//!    hold: the up-switch commits in that round (one spatial layer still).
//!    A down-switch the budget did not cause — the committed layer got
//!    dearer, the budget is what it was when the layer was chosen (the
//!    frames after a key frame) — is held as an up-switch is.
//!    A video seen for the first time, or resuming from a pause, commits at
//!    once, and so does everything while the budget is unlimited (no
//!    estimate yet: only tile sizes decide).

use std::time::{Duration, Instant};

pub mod content;

pub use content::Content;

/// A video's identifier (the forwarding core's track id).
pub type VideoId = u64;

/// How much a receiver should see a video, most important first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A screen share.
    ScreenShare,
    /// The dominant speaker's camera.
    DominantSpeaker,
    /// A recent speaker; rank 0 spoke most recently.
    RecentSpeaker(u8),
    /// Anyone else.
    Other,
}

/// One layer a sender offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Spatial layer (simulcast encoding or SVC spatial id), 0 lowest.
    pub spatial: u8,
    /// Temporal layer, 0 lowest.
    pub temporal: u8,
    /// What forwarding this (spatial, temporal) selection costs, in bit/s
    /// (temporal layers included cumulatively). 0: not measured yet.
    pub bitrate_bps: u64,
    /// Height of the spatial layer in pixels (0: unknown).
    pub height: u16,
    /// Whether the sender currently sends it.
    pub active: bool,
}

/// A video a receiver could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoCandidate<'a> {
    /// Which video.
    pub id: VideoId,
    /// Its priority for this receiver.
    pub priority: Priority,
    /// The layers on offer, in any order.
    pub layers: &'a [Layer],
    /// The receiver's tile height for it, if it said.
    pub max_height: Option<u16>,
    /// Whether it is within the receiver's last-N.
    pub in_last_n: bool,
    /// What it shows: which ladder of layers it climbs ([`Content`]).
    pub content: Content,
}

/// What a receiver has to spend, on what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocInput<'a> {
    /// The bandwidth estimate towards the receiver.
    pub available_bps: u64,
    /// The operator's cap for this receiver, if any.
    pub cap_bps: Option<u64>,
    /// The receiver takes no video at all.
    pub audio_only: bool,
    /// A probe cluster has just raised `available_bps` without building a
    /// queue: the link carried it over the whole cluster. The up-switches
    /// it allows commit at once instead of after the hold (still one
    /// spatial layer at a time), as LiveKit's allocator does on a probe's
    /// success.
    pub probe_proven: bool,
    /// The candidates.
    pub videos: &'a [VideoCandidate<'a>],
}

/// What a receiver gets of one video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// Nothing.
    Paused,
    /// This layer.
    Layer {
        /// Spatial layer.
        spatial: u8,
        /// Temporal layer.
        temporal: u8,
    },
}

impl Choice {
    fn key(self) -> Option<(u8, u8)> {
        match self {
            Choice::Paused => None,
            Choice::Layer { spatial, temporal } => Some((spatial, temporal)),
        }
    }
}

/// Tuning of the hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocatorConfig {
    /// Extra fraction of its bitrate an up-switch must fit (0.15 = 15 %).
    pub up_margin: f64,
    /// How long an up-switch must stay proposed before it is committed.
    pub up_hold: Duration,
    /// An up-switch commits one spatial layer at a time; while a higher
    /// one stays proposed, the next spatial step commits after this.
    pub step_hold: Duration,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            up_margin: 0.15,
            up_hold: Duration::from_secs(1),
            step_hold: Duration::from_millis(400),
        }
    }
}

/// Whether `l` is on offer to the receiver: active, measured.
fn offered(l: &Layer) -> bool {
    l.active && l.bitrate_bps > 0
}

/// The eligible layer right above `from` in the order of the video's
/// content ([`Content::rank`]), on its content's ladder
/// ([`Content::on_ladder`]): active, measured, and within the tile height
/// (the lowest spatial layer on offer is always within).
fn next_layer<'a>(v: &VideoCandidate<'a>, from: Choice) -> Option<&'a Layer> {
    let c = v.content;
    let from = from.key().map(|(s, t)| c.rank(s, t));
    let mut lowest_spatial = u8::MAX;
    for l in v.layers.iter().filter(|l| offered(l)) {
        lowest_spatial = lowest_spatial.min(l.spatial);
    }
    let too_tall = |l: &Layer| {
        v.max_height
            .is_some_and(|h| l.height > h && l.spatial != lowest_spatial)
    };
    let eligible = |l: &&Layer| offered(l) && !too_tall(l);
    let highest_spatial = v.layers.iter().filter(eligible).map(|l| l.spatial).max();
    let top_temporal = |s: u8| {
        v.layers
            .iter()
            .filter(eligible)
            .filter(|l| l.spatial == s)
            .map(|l| l.temporal)
            .max()
            .unwrap_or(0)
    };
    let mut best: Option<&'a Layer> = None;
    for l in v.layers.iter().filter(eligible) {
        let rank = c.rank(l.spatial, l.temporal);
        let on_ladder = c.on_ladder(
            l.spatial,
            l.temporal,
            lowest_spatial,
            highest_spatial.unwrap_or(0),
            top_temporal(l.spatial),
        );
        if !on_ladder || from.is_some_and(|f| rank <= f) {
            continue;
        }
        if best.is_none_or(|b| rank < c.rank(b.spatial, b.temporal)) {
            best = Some(l);
        }
    }
    best
}

/// One spatial step towards `proposed` from `from`: the best layer no more
/// than one spatial layer above `from` and no higher than `proposed`.
fn one_spatial_step(v: &VideoCandidate<'_>, from: Choice, proposed: Choice) -> Choice {
    let (Some((fs, _)), Some((ps, pt))) = (from.key(), proposed.key()) else {
        return proposed;
    };
    if ps <= fs.saturating_add(1) {
        return proposed;
    }
    let c = v.content;
    let limit = c.rank(ps, pt);
    v.layers
        .iter()
        .filter(|l| offered(l) && l.spatial <= fs + 1 && c.rank(l.spatial, l.temporal) <= limit)
        .max_by_key(|l| c.rank(l.spatial, l.temporal))
        .map_or(proposed, |l| Choice::Layer {
            spatial: l.spatial,
            temporal: l.temporal,
        })
}

/// What choice `c` of video `v` costs (bit/s; 0 for a pause or a layer
/// not on offer).
pub fn bitrate_of(v: &VideoCandidate<'_>, c: Choice) -> u64 {
    match c {
        Choice::Paused => 0,
        Choice::Layer { spatial, temporal } => v
            .layers
            .iter()
            .find(|l| l.spatial == spatial && l.temporal == temporal)
            .map_or(0, |l| l.bitrate_bps),
    }
}

/// Propose a layer per video (`out[i]` for `input.videos[i]`), given the
/// layers committed now (`committed[i]`, `Paused` if absent). A step to a
/// layer above the committed one must leave the budget `1 + up_margin`
/// times the new total; other steps need only fit. Pure; no allocation.
pub fn distribute(
    input: &AllocInput<'_>,
    committed: &[Choice],
    up_margin: f64,
    out: &mut [Choice],
) {
    out.fill(Choice::Paused);
    if input.audio_only {
        return;
    }
    let videos = input.videos;
    let budget = input.available_bps.min(input.cap_bps.unwrap_or(u64::MAX)) as f64;
    let mut spent = 0.0f64;
    // The total after moving video `i` from `c` to `to`, if it fits: at
    // face value for layers up to the committed one, with the margin on
    // the whole total for a layer above it.
    let fits = |spent: f64, i: usize, c: Choice, to: &Layer| -> Option<f64> {
        let cur = committed.get(i).copied().unwrap_or(Choice::Paused);
        let content = videos[i].content;
        let above = cur
            .key()
            .is_none_or(|(s, t)| content.rank(to.spatial, to.temporal) > content.rank(s, t));
        let total = spent + to.bitrate_bps as f64 - bitrate_of(&videos[i], c) as f64;
        let need = if above {
            total * (1.0 + up_margin)
        } else {
            total
        };
        (need <= budget).then_some(total)
    };
    let n = videos.len().min(out.len());
    // Classes in priority order, without sorting: repeatedly find the
    // smallest priority above the previous one.
    let next_class = |after: Option<Priority>| {
        videos[..n]
            .iter()
            .filter(|v| v.in_last_n && after.is_none_or(|a| v.priority > a))
            .map(|v| v.priority)
            .min()
    };
    // 3. Lowest layers, in priority order. The first video always gets
    // its lowest layer, even over budget: the most important tile never
    // freezes, and its packets carry the probes that find more bandwidth.
    let mut class = next_class(None);
    let mut first = true;
    while let Some(p) = class {
        for i in 0..n {
            let v = &videos[i];
            if v.priority != p || !v.in_last_n {
                continue;
            }
            let Some(l) = next_layer(v, Choice::Paused) else {
                continue;
            };
            let total = match fits(spent, i, Choice::Paused, l) {
                Some(t) => Some(t),
                None if first => Some(spent + l.bitrate_bps as f64),
                None => None,
            };
            first = false;
            if let Some(total) = total {
                spent = total;
                out[i] = Choice::Layer {
                    spatial: l.spatial,
                    temporal: l.temporal,
                };
            }
        }
        class = next_class(Some(p));
    }
    // 4. Climb, class by class.
    let mut class = next_class(None);
    while let Some(p) = class {
        loop {
            let mut stepped = false;
            for i in 0..n {
                let v = &videos[i];
                if v.priority != p || !v.in_last_n || out[i] == Choice::Paused {
                    continue;
                }
                if let Some(l) = next_layer(v, out[i])
                    && let Some(total) = fits(spent, i, out[i], l)
                {
                    spent = total;
                    out[i] = Choice::Layer {
                        spatial: l.spatial,
                        temporal: l.temporal,
                    };
                    stepped = true;
                }
            }
            if !stepped {
                break;
            }
        }
        class = next_class(Some(p));
    }
}

/// A video's committed layer and pending up-switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    id: VideoId,
    choice: Choice,
    pending: Option<(Choice, Instant)>,
    fresh: bool,
    /// The budget and the layer's price when `choice` was committed.
    at_commit: (u64, u64),
    /// Since when a down-switch caused by the price alone is proposed.
    pending_down: Option<Instant>,
    /// `pending` is the next spatial step of an up-switch already
    /// committed in part (held `step_hold`, which a probe does not skip).
    stepping: bool,
}

/// One decision of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Which video.
    pub id: VideoId,
    /// What the receiver gets now.
    pub choice: Choice,
}

/// A receiver's allocator: committed layers with hysteresis. Its buffers
/// grow to the number of videos and are reused.
#[derive(Debug, Default)]
pub struct AllocatorState {
    cfg: AllocatorConfig,
    videos: Vec<Committed>,
    committed: Vec<Choice>,
    proposal: Vec<Choice>,
    out: Vec<Decision>,
    /// The last round's budget (a fall since it switches down at once).
    last_budget: u64,
}

impl AllocatorState {
    /// An allocator with the given tuning.
    pub fn new(cfg: AllocatorConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// One allocation round: propose with [`distribute`], then commit
    /// down-switches at once and up-switches held for `up_hold`. Returns a
    /// decision per `input.videos`, in the same order.
    pub fn allocate(&mut self, input: &AllocInput<'_>, now: Instant) -> &[Decision] {
        let n = input.videos.len();
        // Align the committed state with the input order.
        for (i, v) in input.videos.iter().enumerate() {
            match self.videos.iter().skip(i).position(|c| c.id == v.id) {
                Some(j) => self.videos.swap(i, i + j),
                None => {
                    self.videos.push(Committed {
                        id: v.id,
                        choice: Choice::Paused,
                        pending: None,
                        fresh: true,
                        at_commit: (0, 0),
                        pending_down: None,
                        stepping: false,
                    });
                    let last = self.videos.len() - 1;
                    self.videos.swap(i, last);
                }
            }
        }
        self.videos.truncate(n);
        self.committed.clear();
        self.committed.extend(self.videos.iter().map(|c| c.choice));
        self.proposal.clear();
        self.proposal.resize(n, Choice::Paused);
        distribute(
            input,
            &self.committed,
            self.cfg.up_margin,
            &mut self.proposal,
        );
        self.out.clear();
        // The budget, and what the committed layers cost at today's prices.
        let budget = input.available_bps.min(input.cap_bps.unwrap_or(u64::MAX));
        let total_now: u64 = input
            .videos
            .iter()
            .zip(&self.committed)
            .map(|(v, c)| bitrate_of(v, *c))
            .sum();
        let fell = budget < self.last_budget;
        self.last_budget = budget;
        for (i, c) in self.videos.iter_mut().enumerate() {
            let proposed = self.proposal.get(i).copied().unwrap_or(Choice::Paused);
            let is_new = std::mem::take(&mut c.fresh);
            let before = c.choice;
            let Some(v) = input.videos.get(i) else {
                continue;
            };
            let content = v.content;
            let up = match (proposed.key(), c.choice.key()) {
                // Resuming a paused video is not held: it fits (with the
                // margin), and a frozen tile is worse than an oscillation.
                (None, _) | (Some(_), None) => false,
                (Some(p), Some(cur)) => content.rank(p.0, p.1) > content.rank(cur.0, cur.1),
            };
            let down = match (proposed.key(), c.choice.key()) {
                (Some(p), Some(cur)) => content.rank(p.0, p.1) < content.rank(cur.0, cur.1),
                _ => false,
            };
            // A down-switch because the layer got dearer while the budget
            // did not fall (the frames after a key frame a switch asked
            // for: a fake camera's 720p went over 1 Mbit/s for a moment,
            // and the receiver went up and down every 0.3–0.7 s) is held
            // as an up-switch is — if the layer is at most half again as
            // dear as when it was chosen and everything committed still
            // fits the budget with the up margin. One because the budget
            // fell (since the last round or since the layer was chosen)
            // is not.
            let (budget_then, price_then) = c.at_commit;
            let price_now = bitrate_of(v, c.choice);
            let price_spike = down
                && budget != u64::MAX
                && !fell
                && budget >= budget_then
                && price_now > price_then
                && price_now <= price_then.saturating_mul(3) / 2
                && (total_now as f64) <= budget as f64 * (1.0 + self.cfg.up_margin);
            if price_spike {
                // No up-switch counts its hold through a spike.
                c.pending = None;
                c.stepping = false;
                let since = *c.pending_down.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.cfg.up_hold {
                    c.choice = proposed;
                    c.pending_down = None;
                }
            } else if is_new || !up || input.available_bps == u64::MAX {
                // Without an estimate nothing oscillates: tile changes
                // apply now.
                c.choice = proposed;
                c.pending = None;
                c.stepping = false;
                c.pending_down = None;
            } else {
                c.pending_down = None;
                let since = match c.pending {
                    Some((_, since)) => since,
                    None => now,
                };
                // The hold counts from the first up-proposal while they
                // continue; what commits is the latest proposal (an
                // estimate still climbing commits its top, not each step).
                let target = proposed;
                // A probe proved the link carries it: no hold (but the next
                // spatial step of a switch under way still waits its own).
                let proven = input.probe_proven && !c.stepping;
                if proven || now.saturating_duration_since(since) >= self.cfg.up_hold {
                    // One spatial layer at a time; a higher one still
                    // proposed follows after `step_hold`.
                    let step = one_spatial_step(v, c.choice, target);
                    c.choice = step;
                    c.pending = (step != target).then(|| {
                        let back = self.cfg.up_hold.saturating_sub(self.cfg.step_hold);
                        (target, now.checked_sub(back).unwrap_or(now))
                    });
                    c.stepping = c.pending.is_some();
                } else {
                    c.pending = Some((target, since));
                }
            }
            if c.choice != before || is_new {
                c.at_commit = (input.available_bps, bitrate_of(v, c.choice));
            }
            self.out.push(Decision {
                id: c.id,
                choice: c.choice,
            });
        }
        &self.out
    }
}

impl AllocatorState {
    /// What probing should ask the link for after a round on `input` (the
    /// same input as the last [`AllocatorState::allocate`]): the committed
    /// layers plus the cheapest next step up of any video, with the up
    /// margin — so a probe asks exactly whether the next layer would fit.
    /// `None` when nothing can step up.
    pub fn next_step_bps(&self, input: &AllocInput<'_>) -> Option<u64> {
        if input.audio_only {
            return None;
        }
        let mut total = 0u64;
        let mut step: Option<u64> = None;
        for (c, v) in self.videos.iter().zip(input.videos) {
            if !v.in_last_n {
                continue;
            }
            let cur = bitrate_of(v, c.choice);
            total += cur;
            if let Some(l) = next_layer(v, c.choice) {
                let d = l.bitrate_bps.saturating_sub(cur);
                step = Some(step.map_or(d, |s| s.min(d)));
            }
        }
        // A step over the operator's cap is never taken: no probe for it.
        let cap = input.cap_bps.unwrap_or(u64::MAX);
        step.map(|d| total + d)
            .filter(|&t| t <= cap)
            .map(|t| (t as f64 * (1.0 + self.cfg.up_margin)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three spatial layers (180p, 360p, 720p) × three temporal layers.
    fn camera() -> Vec<Layer> {
        let mut v = Vec::new();
        for (s, (h, top)) in [(180u16, 150_000u64), (360, 500_000), (720, 1_500_000)]
            .into_iter()
            .enumerate()
        {
            for t in 0..3u8 {
                v.push(Layer {
                    spatial: s as u8,
                    temporal: t,
                    bitrate_bps: top * (u64::from(t) + 2) / 4,
                    height: h,
                    active: true,
                });
            }
        }
        v
    }

    fn cand(id: VideoId, priority: Priority, layers: &[Layer]) -> VideoCandidate<'_> {
        VideoCandidate {
            id,
            priority,
            layers,
            max_height: None,
            in_last_n: true,
            content: Content::Camera,
        }
    }

    fn input<'a>(bps: u64, videos: &'a [VideoCandidate<'a>]) -> AllocInput<'a> {
        AllocInput {
            available_bps: bps,
            cap_bps: None,
            audio_only: false,
            probe_proven: false,
            videos,
        }
    }

    fn layer(s: u8, t: u8) -> Choice {
        Choice::Layer {
            spatial: s,
            temporal: t,
        }
    }

    fn spent(videos: &[VideoCandidate<'_>], out: &[Choice]) -> u64 {
        videos.iter().zip(out).map(|(v, c)| bitrate_of(v, *c)).sum()
    }

    fn once(inp: &AllocInput<'_>) -> Vec<Choice> {
        let mut out = vec![Choice::Paused; inp.videos.len()];
        let committed = vec![Choice::Paused; inp.videos.len()];
        distribute(inp, &committed, 0.0, &mut out);
        out
    }

    #[test]
    fn screen_share_keeps_its_layer_while_cameras_drop() {
        let cam = camera();
        let screen = camera();
        let mut share = cand(2, Priority::ScreenShare, &screen);
        share.content = Content::Screen;
        let vids = [
            cand(1, Priority::Other, &cam),
            share,
            cand(3, Priority::Other, &cam),
        ];
        let rich = once(&input(6_000_000, &vids));
        assert_eq!(rich, vec![layer(2, 2), layer(2, 2), layer(2, 2)]);
        let poor = once(&input(2_000_000, &vids));
        assert_eq!(poor[1], layer(2, 2), "{poor:?}");
        assert!(
            poor[0].key() < Some((2, 0)) && poor[2].key() < Some((2, 0)),
            "{poor:?}"
        );
        assert!(spent(&vids, &poor) <= 2_000_000);
        // Even poorer: cameras keep thumbnails, the share still climbs first.
        let poorer = once(&input(1_300_000, &vids));
        assert_eq!(poorer[0].key().map(|k| k.0), Some(0));
        assert!(poorer[1].key() > Some((1, 0)), "{poorer:?}");
    }

    #[test]
    fn dominant_speaker_before_recent_before_others() {
        let cam = camera();
        let vids = [
            cand(1, Priority::Other, &cam),
            cand(2, Priority::RecentSpeaker(1), &cam),
            cand(3, Priority::RecentSpeaker(0), &cam),
            cand(4, Priority::DominantSpeaker, &cam),
        ];
        let out = once(&input(2_200_000, &vids));
        assert_eq!(out[3], layer(2, 2));
        assert!(
            out[2].key() >= out[1].key() && out[1].key() >= out[0].key(),
            "{out:?}"
        );
        assert!(out[2].key() > out[0].key(), "{out:?}");
        // Too little for all thumbnails: the lowest priority goes first.
        let out = once(&input(250_000, &vids));
        assert_eq!(out[0], Choice::Paused);
        assert_ne!(out[3], Choice::Paused);
    }

    #[test]
    fn small_tile_gets_the_lowest_spatial_layer() {
        let cam = camera();
        let mut v = cand(1, Priority::DominantSpeaker, &cam);
        v.max_height = Some(200);
        let out = once(&input(50_000_000, &[v]));
        assert_eq!(out, vec![layer(0, 2)]);
        v.max_height = Some(100); // smaller than any: the lowest still
        assert_eq!(once(&input(50_000_000, &[v])), vec![layer(0, 2)]);
        v.max_height = Some(360);
        assert_eq!(once(&input(50_000_000, &[v])), vec![layer(1, 2)]);
    }

    #[test]
    fn last_n_inactive_layers_audio_only_and_cap() {
        let cam = camera();
        let mut partial = camera();
        for l in &mut partial {
            l.active = l.spatial == 0;
        }
        let mut outside = cand(2, Priority::DominantSpeaker, &cam);
        outside.in_last_n = false;
        let vids = [cand(1, Priority::Other, &partial), outside];
        let out = once(&input(50_000_000, &vids));
        assert_eq!(out, vec![layer(0, 2), Choice::Paused]);
        let mut inp = input(50_000_000, &vids);
        inp.audio_only = true;
        assert_eq!(once(&inp), vec![Choice::Paused, Choice::Paused]);
        // Operator cap.
        let vids = [
            cand(1, Priority::Other, &cam),
            cand(2, Priority::Other, &cam),
        ];
        let mut inp = input(50_000_000, &vids);
        inp.cap_bps = Some(900_000);
        let out = once(&inp);
        assert!(spent(&vids, &out) <= 900_000, "{out:?}");
        // Cameras keep their frame rate: 360p and 180p, whole (650k).
        assert_eq!(out, vec![layer(1, 2), layer(0, 2)]);
    }

    #[test]
    fn hysteresis_holds_up_switches_and_drops_at_once() {
        let cam = camera();
        let vids = [cand(1, Priority::Other, &cam)];
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        // New video: committed at once.
        assert_eq!(
            a.allocate(&input(800_000, &vids), t0)[0].choice,
            layer(1, 2)
        );
        // 2 Mbit/s would fit 720p (1.5M, the camera's next step) only with
        // the 15 % margin (1.725M): it does, but must be held for 1 s.
        let s = |a: &mut AllocatorState, bps, ms| {
            a.allocate(&input(bps, &vids), t0 + Duration::from_millis(ms))[0].choice
        };
        assert_eq!(s(&mut a, 2_000_000, 100), layer(1, 2));
        assert_eq!(s(&mut a, 2_000_000, 900), layer(1, 2));
        assert_eq!(s(&mut a, 2_000_000, 1_100), layer(2, 2));
        // 1.6 Mbit/s: 1.5M still fits, no change; 1.4M: down at once.
        assert_eq!(s(&mut a, 1_600_000, 2_200), layer(2, 2));
        assert_eq!(s(&mut a, 1_400_000, 2_300), layer(1, 2));
        // 1.6M (1.5M fits but not with the margin): stays down.
        for ms in (2_400..10_000).step_by(100) {
            assert_eq!(s(&mut a, 1_600_000, ms), layer(1, 2));
        }
        // An interrupted hold starts over.
        assert_eq!(s(&mut a, 2_000_000, 10_000), layer(1, 2));
        assert_eq!(s(&mut a, 1_400_000, 11_000), layer(1, 2));
        assert_eq!(s(&mut a, 2_000_000, 11_100), layer(1, 2));
        assert_eq!(s(&mut a, 2_000_000, 11_900), layer(1, 2));
        assert_eq!(s(&mut a, 2_000_000, 12_100), layer(2, 2));
    }

    #[test]
    fn up_switches_climb_one_spatial_layer_at_a_time() {
        let cam = camera();
        let vids = [cand(1, Priority::Other, &cam)];
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        let s = |a: &mut AllocatorState, bps, ms| {
            a.allocate(&input(bps, &vids), t0 + Duration::from_millis(ms))[0].choice
        };
        assert_eq!(s(&mut a, 200_000, 0), layer(0, 2));
        // Plenty: 360p after the 1 s hold, 720p one step hold later.
        assert_eq!(s(&mut a, 5_000_000, 100), layer(0, 2));
        assert_eq!(s(&mut a, 5_000_000, 1_100), layer(1, 2));
        assert_eq!(s(&mut a, 5_000_000, 1_400), layer(1, 2));
        assert_eq!(s(&mut a, 5_000_000, 1_500), layer(2, 2));
    }

    #[test]
    fn a_probe_proven_estimate_commits_without_the_hold() {
        let cam = camera();
        let vids = [cand(1, Priority::Other, &cam)];
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        let s = |a: &mut AllocatorState, bps, proven, ms| {
            let mut inp = input(bps, &vids);
            inp.probe_proven = proven;
            a.allocate(&inp, t0 + Duration::from_millis(ms))[0].choice
        };
        assert_eq!(s(&mut a, 200_000, false, 0), layer(0, 2));
        // A probe proved 5 Mbit/s: 360p in that round, no 1 s hold; 720p
        // still one step later (the step hold, 0.4 s).
        assert_eq!(s(&mut a, 5_000_000, true, 100), layer(1, 2));
        assert_eq!(s(&mut a, 5_000_000, false, 400), layer(1, 2));
        assert_eq!(s(&mut a, 5_000_000, false, 500), layer(2, 2));
        // An estimate that is not a probe's result is held as before.
        let mut b = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut b, 200_000, false, 0), layer(0, 2));
        assert_eq!(s(&mut b, 5_000_000, false, 100), layer(0, 2));
        // A proven estimate too low for a step commits nothing.
        let mut c = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut c, 200_000, false, 0), layer(0, 2));
        assert_eq!(s(&mut c, 300_000, true, 100), layer(0, 2));
    }

    #[test]
    fn a_layer_dearer_for_a_moment_is_kept_a_budget_that_fell_is_not() {
        let normal = camera();
        // The frames after a key frame: 720p at 1.5× its price.
        let spiked: Vec<Layer> = normal
            .iter()
            .map(|l| Layer {
                bitrate_bps: if l.spatial == 2 {
                    l.bitrate_bps * 3 / 2
                } else {
                    l.bitrate_bps
                },
                ..*l
            })
            .collect();
        let t0 = Instant::now();
        let s = |a: &mut AllocatorState, layers: &[Layer], bps, ms| {
            let vids = [cand(1, Priority::Other, layers)];
            a.allocate(&input(bps, &vids), t0 + Duration::from_millis(ms))[0].choice
        };
        let mut a = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut a, &normal, 2_000_000, 0), layer(2, 2));
        // Dearer, same budget: kept for the hold, then down.
        assert_eq!(s(&mut a, &spiked, 2_000_000, 100), layer(2, 2));
        assert_eq!(s(&mut a, &spiked, 2_000_000, 900), layer(2, 2));
        assert_eq!(
            s(&mut a, &normal, 2_000_000, 1_000),
            layer(2, 2),
            "the spike passed"
        );
        assert_eq!(
            s(&mut a, &spiked, 2_000_000, 1_100),
            layer(2, 2),
            "a new hold"
        );
        assert_ne!(s(&mut a, &spiked, 2_000_000, 2_100), layer(2, 2));
        // The budget fell: down at once, dearer or not.
        let mut b = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut b, &normal, 2_000_000, 0), layer(2, 2));
        assert_ne!(s(&mut b, &spiked, 1_900_000, 100), layer(2, 2));
        let mut c = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut c, &normal, 2_000_000, 0), layer(2, 2));
        assert_ne!(s(&mut c, &normal, 1_000_000, 100), layer(2, 2));
        // Fell since the last round, though above the budget it was chosen
        // at: down at once.
        let mut d = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut d, &normal, 1_800_000, 0), layer(2, 2));
        assert_eq!(s(&mut d, &normal, 2_200_000, 100), layer(2, 2));
        assert_ne!(s(&mut d, &spiked, 2_100_000, 200), layer(2, 2));
        // Twice as dear: no hold, whatever the budget did.
        let doubled: Vec<Layer> = normal
            .iter()
            .map(|l| Layer {
                bitrate_bps: if l.spatial == 2 {
                    l.bitrate_bps * 2
                } else {
                    l.bitrate_bps
                },
                ..*l
            })
            .collect();
        let mut e = AllocatorState::new(AllocatorConfig::default());
        assert_eq!(s(&mut e, &normal, 2_000_000, 0), layer(2, 2));
        assert_ne!(s(&mut e, &doubled, 2_000_000, 100), layer(2, 2));
    }

    #[test]
    fn probing_asks_for_the_next_step_only() {
        let cam = camera();
        let vids = [cand(1, Priority::Other, &cam)];
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        let inp = input(300_000, &vids);
        a.allocate(&inp, t0);
        // At 180p whole (150k): the next step is 360p whole, 500k × 1.15.
        assert_eq!(a.next_step_bps(&inp), Some(575_000));
        // No estimate (unlimited): the top at once, nothing to probe for.
        let inp = input(u64::MAX, &vids);
        a.allocate(&inp, t0);
        assert_eq!(a.next_step_bps(&inp), None, "at the top");
    }

    #[test]
    fn camera_prefers_frame_rate_screen_prefers_resolution() {
        let layers = camera();
        let mut v = cand(1, Priority::Other, &layers);
        // 800 kbit/s: 720p at TID 0 (750k) would fit; a camera takes 360p
        // with every temporal layer (500k) instead.
        assert_eq!(once(&input(800_000, &[v])), vec![layer(1, 2)]);
        v.content = Content::Screen;
        assert_eq!(once(&input(800_000, &[v])), vec![layer(2, 0)]);
        // Below the lowest layer's full rate, both drop frame rate.
        v.content = Content::Camera;
        assert_eq!(once(&input(100_000, &[v])), vec![layer(0, 0)]);
    }

    #[test]
    fn wobbling_estimate_does_not_oscillate() {
        let cam = camera();
        let vids = [
            cand(1, Priority::DominantSpeaker, &cam),
            cand(2, Priority::Other, &cam),
            cand(3, Priority::Other, &cam),
        ];
        let t0 = Instant::now();
        let mut x = 0x853c_49e6_748f_ea9bu64;
        // Centers on and around layer thresholds.
        for center in [1_000_000u64, 1_650_000, 2_000_000, 2_250_000, 3_000_000] {
            let mut a = AllocatorState::new(AllocatorConfig::default());
            let mut last: Vec<Choice> = Vec::new();
            let mut switches = 0;
            // Ten minutes, one estimate every 100 ms, ±10 % uniform wobble.
            for step in 0..6_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let wobble = (x % 2001) as f64 / 1000.0 - 1.0; // -1..=1
                let bps = (center as f64 * (1.0 + 0.1 * wobble)) as u64;
                let now = t0 + Duration::from_millis(100 * step);
                let d: Vec<Choice> = a
                    .allocate(&input(bps, &vids), now)
                    .iter()
                    .map(|d| d.choice)
                    .collect();
                if !last.is_empty() {
                    switches += d.iter().zip(&last).filter(|(a, b)| a != b).count();
                }
                last = d;
            }
            eprintln!("wobble ±10 % around {center}: {switches} switches in 10 min");
            assert!(switches <= 6, "center {center}: {switches} switches");
        }
    }

    #[test]
    fn follows_the_input_as_videos_come_and_go() {
        let cam = camera();
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        let v12 = [
            cand(1, Priority::Other, &cam),
            cand(2, Priority::Other, &cam),
        ];
        let d = a.allocate(&input(1_000_000, &v12), t0).to_vec();
        assert_eq!(d.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1, 2]);
        let v321 = [
            cand(3, Priority::ScreenShare, &cam),
            cand(2, Priority::Other, &cam),
            cand(1, Priority::Other, &cam),
        ];
        let d = a.allocate(&input(1_000_000, &v321), t0 + Duration::from_secs(1));
        assert_eq!(d.iter().map(|d| d.id).collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_ne!(d[0].choice, Choice::Paused);
        let v2 = [cand(2, Priority::Other, &cam)];
        let d = a.allocate(&input(1_000_000, &v2), t0 + Duration::from_secs(2));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].id, 2);
    }

    #[test]
    fn one_round_with_50_senders() {
        let layers: Vec<Vec<Layer>> = (0..50).map(|_| camera()).collect();
        let vids: Vec<VideoCandidate<'_>> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| VideoCandidate {
                id: i as VideoId,
                priority: match i {
                    0 => Priority::ScreenShare,
                    1 => Priority::DominantSpeaker,
                    2..=5 => Priority::RecentSpeaker(i as u8 - 2),
                    _ => Priority::Other,
                },
                layers: l,
                max_height: if i > 5 { Some(180) } else { None },
                in_last_n: i < 40,
                content: if i == 0 {
                    Content::Screen
                } else {
                    Content::Camera
                },
            })
            .collect();
        let t0 = Instant::now();
        let mut a = AllocatorState::new(AllocatorConfig::default());
        let mut times = Vec::with_capacity(10_000);
        for round in 0..10_000u64 {
            let bps = 4_000_000 + (round % 7) * 300_000;
            let inp = input(bps, &vids);
            let start = Instant::now();
            let d = a.allocate(&inp, t0 + Duration::from_millis(100 * round));
            std::hint::black_box(d);
            times.push(start.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        eprintln!(
            "allocation round, 50 senders (40 in last-N), 9 layers each: median {median:?}, p99 {:?}",
            times[times.len() * 99 / 100]
        );
        let d = a.allocate(&input(4_000_000, &vids), t0);
        assert!(d.iter().skip(40).all(|d| d.choice == Choice::Paused));
    }
}
