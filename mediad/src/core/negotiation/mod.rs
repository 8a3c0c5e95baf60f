//! SDP offer/answer, out of the forwarding path. The publish side answers
//! the browser's offers ([`publish`]); the subscribe side owns the
//! [`SubscribeNegotiation`] state machine (one m-line per remote track,
//! one offer outstanding at a time) — nothing else sets "negotiating".

mod publish;
mod subscribe;

use salon_sdp::SessionDescription;

use super::ids::TrackId;
use super::{OUT_PT_OPUS, OUT_PT_VP8, OUT_PT_VP8_RTX};
use crate::control::{ControlError, MediaKind};

/// A participant's outgoing m-line on its subscribe transport.
#[derive(Debug, Clone)]
pub struct OutLine {
    /// Its mid.
    pub mid: String,
    /// The track it carries; `None` once that track is gone (the m-line
    /// stays, inactive, so the others' mids do not move).
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
}

/// What an accepted answer made live: per answered line with a track, the
/// track and the RTX SSRC the answer kept (if any).
pub type Answered = Vec<(TrackId, Option<u32>)>;

/// The subscribe transport's offer/answer state: mediad offers, the browser
/// answers, one offer at a time; a change while an offer is out is offered
/// after its answer.
#[derive(Debug)]
pub struct SubscribeNegotiation {
    lines: Vec<OutLine>,
    /// Lines in the outstanding offer (a prefix of `lines`).
    offered: usize,
    /// Lines the browser accepted (a prefix of `lines`).
    answered: usize,
    /// An offer is out, its answer not in.
    negotiating: bool,
    /// Something changed that the last offer did not carry.
    dirty: bool,
    session_id: u64,
    version: u64,
}

impl SubscribeNegotiation {
    /// Nothing offered yet, in SDP session `session_id`.
    pub fn new(session_id: u64) -> Self {
        Self {
            lines: Vec::new(),
            offered: 0,
            answered: 0,
            negotiating: false,
            dirty: false,
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
        self.negotiating
    }

    /// The mid the next line gets.
    pub fn next_mid(&self) -> String {
        self.lines.len().to_string()
    }

    /// Whether an SSRC is used by a line (media or RTX).
    pub fn uses_ssrc(&self, ssrc: u32) -> bool {
        self.lines
            .iter()
            .any(|l| l.ssrc == ssrc || l.rtx_ssrc == Some(ssrc))
    }

    /// A new line (offered at the next [`Self::poll_offer`]).
    pub fn add_line(&mut self, line: OutLine) {
        self.lines.push(line);
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
        if self.negotiating {
            self.dirty = true;
            return false;
        }
        !(self.lines.is_empty() || (self.offered == self.lines.len() && !self.dirty))
    }

    /// The next offer's m-lines and session version, if one is due. The
    /// offer is then outstanding until [`Self::on_answer`].
    pub fn poll_offer(&mut self) -> Option<(u64, Vec<salon_sdp::OutTrack>)> {
        if !self.want_offer() {
            return None;
        }
        self.dirty = false;
        self.negotiating = true;
        self.version += 1;
        self.offered = self.lines.len();
        let tracks = self
            .lines
            .iter()
            .map(|l| salon_sdp::OutTrack {
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
            })
            .collect();
        Some((self.version, tracks))
    }

    /// The browser's answer to the outstanding offer: checked against it,
    /// then the offered lines are live.
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
        self.negotiating = false;
        self.answered = self.offered;
        self.lines
            .iter()
            .zip(&answer.media)
            .take(self.offered)
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

    /// Parse an answer, refusing one when no offer is out.
    pub fn parse_answer(&self, sdp: &str) -> Result<SessionDescription, ControlError> {
        if !self.negotiating {
            return Err(ControlError::NoOfferPending);
        }
        salon_sdp::parse(sdp).map_err(|e| ControlError::InvalidAnswer(e.to_string()))
    }
}
