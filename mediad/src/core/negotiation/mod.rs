//! SDP offer/answer, out of the forwarding path. The publish side answers
//! the browser's offers ([`publish`]); the subscribe side owns the
//! [`SubscribeNegotiation`] state machine — nothing else sets
//! "negotiating" — and it never wedges:
//!
//! - one offer out at a time; a change while it is out is offered after
//!   its answer;
//! - every offer is answerable: an m-line whose track went stays in the
//!   BUNDLE group, `inactive` (so the transport lives on even when every
//!   track has gone);
//! - an inactive m-line whose inactivity the browser has answered is reused
//!   for the next track of its kind (JSEP mid reuse), so a receiver's SDP
//!   is bounded by the most tracks present at once, not by history;
//! - an answer that does not parse or does not match resets the
//!   negotiation, and a fresh offer goes out — at once the first time,
//!   after a growing delay when answers keep being refused
//!   ([`REFUSED_BACKOFF`]), so a browser cannot make the worker parse and
//!   write SDP in a loop at its round-trip rate;
//! - an offer unanswered for [`OFFER_TIMEOUT`] is offered again.

mod publish;
mod subscribe;

use std::time::{Duration, Instant};

use salon_sdp::SessionDescription;

use super::ids::TrackId;
use super::limits::WorkerLimits;
use super::{OUT_PT_OPUS, OUT_PT_VP8, OUT_PT_VP8_RTX};
use crate::control::{ControlError, MediaKind};

/// An offer unanswered this long is offered again (a lost message, a
/// browser that dropped it).
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(5);

/// The wait before the fresh offer after the second refused answer in a
/// row; it doubles with each further one, up to [`REFUSED_BACKOFF_MAX`].
pub const REFUSED_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a fresh offer after refused answers.
pub const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A participant's outgoing m-line on its subscribe transport.
#[derive(Debug, Clone)]
pub struct OutLine {
    /// Its mid.
    pub mid: String,
    /// The track it carries; `None` while the line is inactive.
    pub track: Option<TrackId>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRC mediad sends under.
    pub ssrc: u32,
    /// SSRC of its RTX stream (video).
    pub rtx_ssrc: Option<u32>,
    /// `msid` stream id: the publisher.
    pub stream_id: String,
    /// `msid` track id: `<publisher>-<mid>`.
    pub track_id: String,
    /// Whether the outstanding (or last) offer had it active.
    offered_active: bool,
    /// The browser answered an offer in which it was inactive: free to
    /// carry a new track.
    free: bool,
}

/// A new track's line, before it has a mid.
#[derive(Debug, Clone)]
pub struct NewLine {
    /// The track.
    pub track: TrackId,
    /// Its kind.
    pub kind: MediaKind,
    /// The SSRC mediad will send under.
    pub ssrc: u32,
    /// The RTX SSRC (video).
    pub rtx_ssrc: Option<u32>,
    /// `msid` stream id.
    pub stream_id: String,
    /// `msid` track id.
    pub track_id: String,
}

/// What an accepted answer made live: per answered line with a track, the
/// track and the RTX SSRC the answer kept (if any).
pub type Answered = Vec<(TrackId, Option<u32>)>;

/// The subscribe transport's offer/answer state: mediad offers, the browser
/// answers, one offer at a time.
#[derive(Debug)]
pub struct SubscribeNegotiation {
    lines: Vec<OutLine>,
    /// Lines in the outstanding offer (a prefix of `lines`).
    offered: usize,
    /// When the outstanding offer went out; `None`: no offer out.
    offered_at: Option<Instant>,
    /// Something changed that the last offer did not carry.
    dirty: bool,
    /// Answers refused in a row.
    refused: u32,
    /// No offer before this (after refused answers).
    hold_until: Option<Instant>,
    session_id: u64,
    version: u64,
}

impl SubscribeNegotiation {
    /// Nothing offered yet, in SDP session `session_id`.
    pub fn new(session_id: u64) -> Self {
        Self {
            lines: Vec::new(),
            offered: 0,
            offered_at: None,
            dirty: false,
            refused: 0,
            hold_until: None,
            session_id,
            version: 1,
        }
    }

    /// The SDP session id (`o=` line).
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Whether an offer is out.
    pub fn is_negotiating(&self) -> bool {
        self.offered_at.is_some()
    }

    /// Whether an SSRC is used by a line (media or RTX).
    pub fn uses_ssrc(&self, ssrc: u32) -> bool {
        self.lines
            .iter()
            .any(|l| l.ssrc == ssrc || l.rtx_ssrc == Some(ssrc))
    }

    /// A line for a new track: an inactive line of its kind the browser
    /// has answered as such (same mid, new SSRCs and msid), or a new one.
    /// Offered at the next [`Self::poll_offer`]. True when a line was
    /// reused.
    pub fn add_line(&mut self, new: NewLine) -> bool {
        let reuse = self
            .lines
            .iter_mut()
            .find(|l| l.free && l.track.is_none() && l.kind == new.kind);
        if let Some(l) = reuse {
            l.track = Some(new.track);
            l.ssrc = new.ssrc;
            l.rtx_ssrc = new.rtx_ssrc;
            l.stream_id = new.stream_id;
            l.track_id = new.track_id;
            l.free = false;
            self.dirty = true;
            return true;
        }
        let mid = self.lines.len().to_string();
        self.lines.push(OutLine {
            mid,
            track: Some(new.track),
            kind: new.kind,
            ssrc: new.ssrc,
            rtx_ssrc: new.rtx_ssrc,
            stream_id: new.stream_id,
            track_id: new.track_id,
            offered_active: false,
            free: false,
        });
        false
    }

    /// Track `track` is gone: its lines become inactive (re-offered).
    pub fn track_removed(&mut self, track: TrackId) {
        for l in self.lines.iter_mut().filter(|l| l.track == Some(track)) {
            l.track = None;
        }
        self.dirty = true;
    }

    /// A change to offer: offered now if no offer is out, else after the
    /// answer.
    fn want_offer(&mut self) -> bool {
        if self.is_negotiating() {
            self.dirty = true;
            return false;
        }
        !(self.lines.is_empty() || (self.offered == self.lines.len() && !self.dirty))
    }

    /// The next offer's m-lines and session version, if one is due. The
    /// offer is then outstanding until [`Self::on_answer`], [`Self::reset`]
    /// or [`Self::expire`].
    pub fn poll_offer(&mut self, now: Instant) -> Option<(u64, Vec<salon_sdp::OutTrack>)> {
        if self.hold_until.is_some_and(|t| now < t) {
            self.dirty = true;
            return None;
        }
        self.hold_until = None;
        if !self.want_offer() {
            return None;
        }
        self.dirty = false;
        self.offered_at = Some(now);
        self.version += 1;
        self.offered = self.lines.len();
        for l in &mut self.lines {
            l.offered_active = l.track.is_some();
        }
        let tracks = self.lines.iter().map(out_track).collect();
        Some((self.version, tracks))
    }

    /// The browser's answer to the outstanding offer: checked against it,
    /// then the offered lines are live (and inactive ones free to reuse).
    pub fn on_answer(&mut self, answer: &SessionDescription) -> Result<Answered, ControlError> {
        if answer.media.len() != self.offered
            || answer
                .media
                .iter()
                .zip(self.lines.iter())
                .any(|(m, l)| m.mid != l.mid)
        {
            return Err(ControlError::AnswerMismatch);
        }
        Ok(self.accept(answer))
    }

    /// Mark the offer answered; the lines with tracks, with the RTX each
    /// answer kept.
    fn accept(&mut self, answer: &SessionDescription) -> Answered {
        self.offered_at = None;
        self.refused = 0;
        let offered = self.offered;
        for l in self.lines.iter_mut().take(offered) {
            l.free = !l.offered_active && l.track.is_none();
        }
        self.lines
            .iter()
            .zip(&answer.media)
            .take(offered)
            .filter(|(l, _)| l.offered_active)
            .filter_map(|(l, m)| {
                let ti = l.track?;
                // RTX only if the answer kept its payload type.
                let rtx = l.rtx_ssrc.filter(|_| {
                    m.codec_by_pt(OUT_PT_VP8)
                        .is_some_and(|c| c.rtx_pt == Some(OUT_PT_VP8_RTX))
                });
                Some((ti, rtx))
            })
            .collect()
    }

    /// Parse an answer, refusing one when no offer is out, and one larger
    /// than an answer to the outstanding offer can be (unparsed).
    pub fn parse_answer(
        &self,
        sdp: &str,
        limits: &WorkerLimits,
    ) -> Result<SessionDescription, ControlError> {
        if !self.is_negotiating() {
            return Err(ControlError::NoOfferPending);
        }
        let max = limits.max_answer_bytes(self.offered);
        if sdp.len() > max {
            return Err(ControlError::AnswerTooLarge(max));
        }
        salon_sdp::parse(sdp).map_err(|e| ControlError::InvalidAnswer(e.to_string()))
    }

    /// The answer was refused: forget the outstanding offer, so that a
    /// fresh one goes out at the next [`Self::poll_offer`].
    pub fn reset(&mut self) {
        self.offered_at = None;
        self.dirty = true;
    }

    /// The answer was refused (unparseable, too large, not matching): as
    /// [`Self::reset`], and the fresh offer waits [`REFUSED_BACKOFF`],
    /// doubling, when answers keep being refused (the first goes at once).
    pub fn refuse(&mut self, now: Instant) {
        self.reset();
        self.refused = self.refused.saturating_add(1);
        if self.refused >= 2 {
            let doublings = (self.refused - 2).min(8);
            let wait = REFUSED_BACKOFF
                .saturating_mul(1 << doublings)
                .min(REFUSED_BACKOFF_MAX);
            self.hold_until = Some(now + wait);
        }
    }

    /// Something outside the m-lines changed (ICE credentials): offer
    /// again.
    pub fn renegotiate(&mut self) {
        self.dirty = true;
    }

    /// When the outstanding offer times out, or (none out) when the fresh
    /// offer after refused answers may go.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.offered_at {
            Some(at) => Some(at + OFFER_TIMEOUT),
            None => self.hold_until,
        }
    }

    /// Whether a fresh offer held back after refused answers may go now.
    pub fn hold_over(&self, now: Instant) -> bool {
        self.offered_at.is_none() && self.hold_until.is_some_and(|t| now >= t)
    }

    /// The outstanding offer timed out by `now`: reset (true), so it is
    /// offered again.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.offered_at.is_some() && self.poll_timeout().is_some_and(|d| now >= d) {
            self.reset();
            return true;
        }
        false
    }
}

/// One line as the SDP writer takes it.
fn out_track(l: &OutLine) -> salon_sdp::OutTrack {
    salon_sdp::OutTrack {
        mid: l.mid.clone(),
        kind: match l.kind {
            MediaKind::Audio => salon_sdp::MediaKind::Audio,
            MediaKind::Video => salon_sdp::MediaKind::Video,
        },
        ssrc: l.ssrc,
        rtx_ssrc: l.rtx_ssrc,
        cname: format!("salon-{}", l.stream_id),
        stream_id: l.stream_id.clone(),
        track_id: l.track_id.clone(),
        pt: match l.kind {
            MediaKind::Audio => OUT_PT_OPUS,
            MediaKind::Video => OUT_PT_VP8,
        },
        rtx_pt: l.rtx_ssrc.map(|_| OUT_PT_VP8_RTX),
        active: l.track.is_some(),
    }
}
