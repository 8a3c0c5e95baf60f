//! Key frame requests to publishers: the one owner of every PLI decision
//! (mediasoup's `KeyFrameRequestManager`). Whoever needs a key frame — a
//! receiver's PLI or FIR, the allocator switching a receiver's layer, a
//! receiver waiting to start, a transport that just connected, moderation
//! resuming a track — asks here; the rate limit (one request per layer per
//! [`KEYFRAME_REQUEST_INTERVAL`], later ones deferred to its end) and the
//! retry while a receiver still waits ([`KEYFRAME_RETRY`]) live here too.

use std::time::{Duration, Instant};

use salon_io::TxQueue;
use salon_proto::rtcp;

use super::Worker;
use super::deadline::{Earliest, Reason};
use super::ids::{LayerIdx, TrackId, TransportId};
use super::track::{InTrack, Legs};
use crate::control::{MediaKind, ParticipantId};

/// The shortest interval between two key frame requests for one stream.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// While a live receiver still waits for a key frame, ask again this often
/// (a request can be lost, or reach a publisher before its encoder runs).
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// The first retry after a request comes sooner: Chrome's sender acts on
/// one PLI per 300 ms for all its layers (libwebrtc `EncoderRtcpFeedback`,
/// `min_keyframe_send_interval`) and drops the others, so a request for
/// one layer right after one for another is lost — a receiver switching
/// down right after a switch up froze 1.2 s in the browser.
pub const KEYFRAME_FIRST_RETRY: Duration = Duration::from_millis(400);
/// A receiver whose feedback (RTCP: transport-wide feedback every ~100 ms
/// while it receives video, reports every second) stopped this long lost
/// what it was sent meanwhile: when it is heard again, its videos need key
/// frames.
pub const RECEIVER_SILENCE: Duration = Duration::from_secs(1);

/// Request state of one layer.
#[derive(Debug, Clone, Copy, Default)]
struct LayerRequests {
    last: Option<Instant>,
    /// A request is owed: it goes when the rate limit allows.
    pending: bool,
    /// An owed request could not go (no SSRC learnt yet, the publisher's
    /// transport not ready): not tried again before this, so a layer that
    /// never arrives does not keep the timer in the past.
    held_until: Option<Instant>,
    /// The next request is a retry ([`KeyframeRequests::note_retry`]).
    retrying: bool,
    /// The last request sent was a retry: the next one waits
    /// [`KEYFRAME_RETRY`], else [`KEYFRAME_FIRST_RETRY`].
    retried: bool,
    /// The last request went within [`KEYFRAME_REQUEST_INTERVAL`] of one
    /// for another layer of the track, which Chrome's sender drops: it is
    /// retried once that interval is over (this instant), not after
    /// [`KEYFRAME_FIRST_RETRY`], and the retry may go inside this layer's
    /// own interval.
    shadowed_until: Option<Instant>,
}

impl LayerRequests {
    /// When the last request, if any, is retried.
    fn retry_at(&self) -> Option<Instant> {
        let last = self.last?;
        let at = if self.retried {
            last + KEYFRAME_RETRY
        } else {
            let first = last + KEYFRAME_FIRST_RETRY;
            self.shadowed_until.map_or(first, |s| s.min(first))
        };
        // A retry that could not go (the publisher's transport not ready)
        // waits out its hold: never a deadline left in the past.
        Some(self.held_until.map_or(at, |h| at.max(h)))
    }
}

/// After another layer's request, how much later than Chrome's 300 ms a
/// shadowed request is retried (its PLI reaches the publisher after the
/// other's, by about the same path).
const SHADOW_MARGIN: Duration = Duration::from_millis(20);

/// Key frame request state of one track, per layer.
#[derive(Debug, Clone, Default)]
pub struct KeyframeRequests {
    layers: Vec<LayerRequests>,
    /// The last request sent for any layer.
    last_any: Option<Instant>,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Send a PLI for this SSRC now.
    Send(u32),
    /// Owed; sent when the rate limit or the SSRC allows.
    Deferred,
    /// Nothing can be sent (the publisher's transport is not ready).
    Nothing,
}

impl KeyframeRequests {
    /// No request made yet, for a track of `layers` encodings.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: vec![LayerRequests::default(); layers],
            last_any: None,
        }
    }

    /// Decide a request for layer `li` whose SSRC is `ssrc` (if learnt),
    /// with the publisher's transport `ready` to send or not.
    fn ask(&mut self, li: LayerIdx, ssrc: Option<u32>, ready: bool, now: Instant) -> Ask {
        let last_any = self.last_any;
        let Some(l) = self.layers.get_mut(li.index()) else {
            return Ask::Nothing;
        };
        // Whether this one is a retry: only for this request (one that
        // cannot go now is owed, and goes as a fresh one).
        let retrying = std::mem::take(&mut l.retrying);
        // The retry of a request Chrome dropped goes inside the interval.
        let unshadow = retrying && l.shadowed_until.is_some_and(|s| now >= s);
        if let Some(last) = l.last
            && now < last + KEYFRAME_REQUEST_INTERVAL
            && !unshadow
        {
            l.pending = true;
            return Ask::Deferred;
        }
        let Some(ssrc) = ssrc else {
            l.pending = true;
            l.held_until = Some(now + KEYFRAME_REQUEST_INTERVAL);
            return Ask::Deferred;
        };
        if !ready {
            if l.pending || retrying {
                l.held_until = Some(now + KEYFRAME_REQUEST_INTERVAL);
            }
            return Ask::Nothing;
        }
        // A retry of a request made long ago (a receiver starts waiting
        // for a layer last asked for minutes before) is a fresh one.
        let recent = l
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < 2 * KEYFRAME_RETRY);
        l.retried = retrying && recent && !unshadow;
        l.shadowed_until = last_any
            .filter(|a| now < *a + KEYFRAME_REQUEST_INTERVAL && l.last != Some(*a))
            .map(|a| a + KEYFRAME_REQUEST_INTERVAL + SHADOW_MARGIN);
        l.last = Some(now);
        l.pending = false;
        l.held_until = None;
        self.last_any = Some(now);
        Ask::Send(ssrc)
    }

    /// A request for `li` is owed (the allocator switched someone to it):
    /// the next timer sends it.
    pub fn owe(&mut self, li: LayerIdx) {
        if let Some(l) = self.layers.get_mut(li.index()) {
            l.pending = true;
        }
    }

    /// Layers whose owed request may go now.
    fn due(&self, now: Instant) -> impl Iterator<Item = LayerIdx> + '_ {
        self.layers
            .iter()
            .enumerate()
            .filter(move |(_, l)| {
                l.pending
                    && l.last
                        .is_none_or(|last| now >= last + KEYFRAME_REQUEST_INTERVAL)
                    && l.held_until.is_none_or(|h| now >= h)
            })
            .map(|(i, _)| LayerIdx::new(i))
    }

    /// Whether a request for `li` was made long enough ago to be retried.
    fn retry_due(&self, li: LayerIdx, now: Instant) -> bool {
        self.layers
            .get(li.index())
            .is_some_and(|l| l.retry_at().is_some_and(|at| now >= at))
    }

    /// The next request for `li` is a retry (the one after it waits
    /// [`KEYFRAME_RETRY`]).
    fn note_retry(&mut self, li: LayerIdx) {
        if let Some(l) = self.layers.get_mut(li.index()) {
            l.retrying = true;
        }
    }

    /// The next deadline: a retry for the `waiting` layer, or an owed
    /// request (at once, `asap`, if none was ever made).
    fn poll_timeout(&self, waiting: Option<LayerIdx>, asap: Instant, next: &mut Earliest) {
        if let Some(li) = waiting
            && let Some(l) = self.layers.get(li.index())
        {
            next.offer(l.retry_at(), Reason::KeyframeRetry);
        }
        for l in self.layers.iter().filter(|l| l.pending) {
            let at = l.last.map_or(asap, |last| last + KEYFRAME_REQUEST_INTERVAL);
            let at = l.held_until.map_or(at, |h| at.max(h));
            next.offer(Some(at), Reason::KeyframeDeferred);
        }
    }
}

impl InTrack {
    /// A layer some receiving leg waits to start or switch to, if any.
    pub fn waiting_layer(&self) -> Option<LayerIdx> {
        if self.kind != MediaKind::Video || !self.enabled {
            return None;
        }
        self.legs
            .video()
            .iter()
            .find(|l| l.waits_for_keyframe())
            .map(|l| l.sel.target())
    }

    /// Key frame deadlines of this track.
    pub fn keyframe_timeout(&self, asap: Instant, next: &mut Earliest) {
        self.keyframes
            .poll_timeout(self.waiting_layer(), asap, next);
    }
}

impl Worker {
    /// Ask the publisher of `ti` for a key frame of layer `li`, at most once
    /// per [`KEYFRAME_REQUEST_INTERVAL`]; a request inside it is sent when it
    /// ends.
    pub(super) fn request_keyframe(
        &mut self,
        ti: TrackId,
        li: LayerIdx,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(track) = self.tracks.get_mut(ti) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(ssrc) = track.layers.get(li.index()).map(|l| l.ssrc) else {
            return;
        };
        let transport = track.transport;
        let ready = self.transports.get(transport).is_some_and(|t| t.can_send());
        let Ask::Send(media_ssrc) = track.keyframes.ask(li, ssrc, ready, now) else {
            return;
        };
        let sent = self.send_rtcp(tx, transport, |buf, sender| {
            let n = rtcp::write_receiver_report(buf, sender, &[]).ok()?;
            let m = rtcp::write_pli(buf.get_mut(n..)?, sender, media_ssrc).ok()?;
            Some(n + m)
        });
        if sent {
            self.metrics.keyframe_requests.inc();
            tracing::debug!(layer = li.as_u8(), "key frame requested");
        }
    }

    /// Ask for a key frame of every layer of `ti` that a receiving leg
    /// waits to start or switch to.
    pub(super) fn request_wanted_keyframes(&mut self, ti: TrackId, now: Instant, tx: &mut TxQueue) {
        let Some(track) = self.tracks.get(ti) else {
            return;
        };
        let mut wanted = [false; super::MAX_LAYERS];
        for l in track.legs.video().iter().filter(|l| l.waits_for_keyframe()) {
            if let Some(w) = wanted.get_mut(l.sel.target().index()) {
                *w = true;
            }
        }
        for (li, w) in wanted.into_iter().enumerate() {
            if w {
                self.request_keyframe(ti, LayerIdx::new(li), now, tx);
            }
        }
    }

    /// Key frames for everything `receiver` waits for (its subscribe
    /// transport connected, or its answer brought new streams).
    pub(super) fn request_keyframes_for(
        &mut self,
        receiver: ParticipantId,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let wanted: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                t.legs
                    .video()
                    .iter()
                    .any(|l| l.out.receiver == receiver && l.out.live && l.sel.is_waiting())
            })
            .map(|(i, _)| i)
            .collect();
        for ti in wanted {
            self.request_wanted_keyframes(ti, now, tx);
        }
    }

    /// Key frames of the layers `receiver` is shown, for every video it is
    /// sent: it was cut off (see [`RECEIVER_SILENCE`]).
    pub(super) fn request_shown_keyframes_for(
        &mut self,
        receiver: ParticipantId,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let mut wanted: Vec<(TrackId, LayerIdx)> = Vec::new();
        for (ti, t) in self.tracks.iter() {
            for l in t.legs.video() {
                if l.out.receiver == receiver && l.out.live && !l.sel.is_waiting() {
                    wanted.push((ti, l.sel.shown()));
                }
            }
        }
        for (ti, li) in wanted {
            self.request_keyframe(ti, li, now, tx);
        }
    }

    /// A receiver's PLI or FIR for its stream `ssrc` on transport `idx`:
    /// a key frame of the layer it shows (or is about to).
    pub(super) fn on_receiver_keyframe_request(
        &mut self,
        idx: TransportId,
        ssrc: u32,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        if let Some((ti, li)) = self.out_layer(idx, ssrc) {
            // The receiver froze: the key frame that ends it is resent
            // before the budget's delta frames (`core::nack`).
            if let Some(leg) = self
                .tracks
                .get_mut(ti)
                .and_then(|t| t.legs.video_mut().iter_mut().find(|l| l.out.ssrc == ssrc))
            {
                leg.wants_key = true;
            }
            self.request_keyframe(ti, li, now, tx);
        }
    }

    /// The track and layer a receiver's stream `ssrc` on transport `idx`
    /// shows (or is about to show).
    fn out_layer(&self, idx: TransportId, ssrc: u32) -> Option<(TrackId, LayerIdx)> {
        let ti = self.transports.get(idx)?.out_track(ssrc)?;
        let track = self.tracks.get(ti)?;
        let li = match &track.legs {
            Legs::Video(v) => v.iter().find(|l| l.out.ssrc == ssrc)?.sel.shown(),
            Legs::Audio(a) => {
                a.iter().find(|l| l.out.ssrc == ssrc)?;
                LayerIdx::BASE
            }
        };
        Some((ti, li))
    }

    /// Key frame timers: retries for receivers still waiting, requests
    /// the rate limit held back.
    pub(super) fn keyframe_timers(&mut self, now: Instant, tx: &mut TxQueue) {
        for ti in self.tracks.handles() {
            let retry = self.tracks.get(ti).and_then(|t| {
                let li = t.waiting_layer()?;
                t.keyframes.retry_due(li, now).then_some(li)
            });
            if let Some(li) = retry {
                if let Some(t) = self.tracks.get_mut(ti) {
                    t.keyframes.note_retry(li);
                }
                self.request_keyframe(ti, li, now, tx);
            }
            let mut due = [false; super::MAX_LAYERS];
            if let Some(t) = self.tracks.get(ti) {
                for li in t.keyframes.due(now) {
                    if let Some(d) = due.get_mut(li.index()) {
                        *d = true;
                    }
                }
            }
            for (li, d) in due.into_iter().enumerate() {
                if d {
                    self.request_keyframe(ti, LayerIdx::new(li), now, tx);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    /// Chrome acts on one PLI per 300 ms for all its layers: a request
    /// for 180p 187 ms after one for 360p was lost in the browser and the
    /// receiver froze 0.7 s. It is retried as soon as Chrome listens
    /// again, inside its own layer's interval, once.
    #[test]
    fn a_request_right_after_another_layers_is_retried_when_chrome_listens_again() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (low, mid) = (LayerIdx::new(0), LayerIdx::new(1));
        let mut k = KeyframeRequests::new(2);
        assert_eq!(k.ask(mid, Some(2), true, t0), Ask::Send(2));
        assert_eq!(k.ask(low, Some(1), true, ms(187)), Ask::Send(1));
        assert!(!k.retry_due(low, ms(319)));
        assert!(
            k.retry_due(low, ms(320)),
            "300 ms after the other, and a margin"
        );
        k.note_retry(low);
        assert_eq!(k.ask(low, Some(1), true, ms(320)), Ask::Send(1));
        // Then the usual retries: 400 ms, then every second.
        assert!(!k.retry_due(low, ms(719)));
        assert!(k.retry_due(low, ms(720)));
        // A request alone is retried after 400 ms, as before.
        let mut alone = KeyframeRequests::new(2);
        assert_eq!(alone.ask(low, Some(1), true, t0), Ask::Send(1));
        assert!(!alone.retry_due(low, ms(399)));
        assert!(alone.retry_due(low, ms(400)));
    }

    /// A retry towards a publisher whose transport cannot send (consent
    /// lost) waits out a hold: its deadline is never left in the past (a
    /// worker woken in a loop until the track went).
    #[test]
    fn a_retry_that_cannot_go_is_not_due_again_at_once() {
        let t0 = Instant::now();
        let l = LayerIdx::BASE;
        let mut k = KeyframeRequests::new(1);
        assert_eq!(k.ask(l, Some(7), true, t0), Ask::Send(7));
        let t1 = t0 + KEYFRAME_FIRST_RETRY;
        assert!(k.retry_due(l, t1));
        k.note_retry(l);
        assert_eq!(k.ask(l, Some(7), false, t1), Ask::Nothing);
        assert!(!k.retry_due(l, t1), "held");
        let mut next = Earliest::default();
        k.poll_timeout(Some(l), t0, &mut next);
        assert!(next.get().is_some_and(|d| d.at > t1));
        assert!(k.retry_due(l, t1 + KEYFRAME_REQUEST_INTERVAL));
    }

    #[test]
    fn one_request_per_interval_and_the_rest_deferred() {
        let t0 = Instant::now();
        let l = LayerIdx::BASE;
        let mut k = KeyframeRequests::new(1);
        assert_eq!(k.ask(l, Some(7), true, t0), Ask::Send(7));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(k.ask(l, Some(7), true, t1), Ask::Deferred);
        assert_eq!(k.due(t1).count(), 0, "inside the interval");
        let t2 = t0 + KEYFRAME_REQUEST_INTERVAL;
        assert_eq!(k.due(t2).collect::<Vec<_>>(), [l]);
        let mut next = Earliest::default();
        k.poll_timeout(None, t0, &mut next);
        assert_eq!(
            next.get().map(|d| (d.at, d.reason)),
            Some((t2, Reason::KeyframeDeferred))
        );
        assert_eq!(k.ask(l, Some(7), true, t2), Ask::Send(7));
        assert_eq!(k.due(t2).count(), 0, "paid");
    }

    #[test]
    fn a_layer_that_never_arrives_does_not_keep_the_timer_in_the_past() {
        // Review finding: an owed request for a layer whose SSRC is never
        // learnt left its deadline at the worker's start, so the driver
        // spun. It is now held for an interval after each attempt.
        let epoch = Instant::now();
        let t0 = epoch + Duration::from_secs(2);
        let l = LayerIdx::new(2);
        let mut k = KeyframeRequests::new(3);
        k.owe(l);
        assert_eq!(k.due(t0).collect::<Vec<_>>(), [l]);
        assert_eq!(k.ask(l, None, true, t0), Ask::Deferred);
        assert_eq!(k.due(t0).count(), 0, "held");
        let mut next = Earliest::default();
        k.poll_timeout(None, epoch, &mut next);
        assert_eq!(
            next.get().map(|d| d.at),
            Some(t0 + KEYFRAME_REQUEST_INTERVAL),
            "not in the past"
        );
        // The same with the publisher's transport not ready.
        let t1 = t0 + KEYFRAME_REQUEST_INTERVAL;
        assert_eq!(k.ask(l, Some(9), false, t1), Ask::Nothing);
        assert_eq!(k.due(t1).count(), 0);
        let t2 = t1 + KEYFRAME_REQUEST_INTERVAL;
        assert_eq!(k.ask(l, Some(9), true, t2), Ask::Send(9));
        let mut next = Earliest::default();
        k.poll_timeout(None, epoch, &mut next);
        assert_eq!(next.get(), None, "paid");
    }

    #[test]
    fn without_an_ssrc_or_a_transport_nothing_is_sent() {
        let t0 = Instant::now();
        let l = LayerIdx::BASE;
        let mut k = KeyframeRequests::new(1);
        assert_eq!(k.ask(l, None, true, t0), Ask::Deferred);
        assert_eq!(k.ask(l, Some(1), false, t0), Ask::Nothing);
        assert_eq!(k.ask(LayerIdx::new(3), Some(1), true, t0), Ask::Nothing);
        assert!(!k.retry_due(l, t0 + KEYFRAME_RETRY), "never asked");
        assert_eq!(k.ask(l, Some(1), true, t0), Ask::Send(1));
        assert!(k.retry_due(l, t0 + KEYFRAME_RETRY));
    }

    /// The first retry after a request comes after 400 ms (Chrome may
    /// have dropped the request: one per 300 ms for all its layers), the
    /// later ones every second.
    #[test]
    fn the_first_retry_comes_sooner() {
        let t0 = Instant::now();
        let l = LayerIdx::BASE;
        let mut k = KeyframeRequests::new(1);
        assert_eq!(k.ask(l, Some(1), true, t0), Ask::Send(1));
        assert!(!k.retry_due(l, t0 + Duration::from_millis(399)));
        let t1 = t0 + KEYFRAME_FIRST_RETRY;
        assert!(k.retry_due(l, t1));
        k.note_retry(l);
        assert_eq!(k.ask(l, Some(1), true, t1), Ask::Send(1));
        assert!(!k.retry_due(l, t1 + KEYFRAME_FIRST_RETRY));
        assert!(k.retry_due(l, t1 + KEYFRAME_RETRY));
        // A fresh request (not a retry): 400 ms again.
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(k.ask(l, Some(1), true, t2), Ask::Send(1));
        assert!(k.retry_due(l, t2 + KEYFRAME_FIRST_RETRY));
    }
}
