//! The subscribe offer (Salon sends, the browser receives) and the check of
//! the browser's answer.

use crate::answer::uri;
use crate::error::SdpError;
use crate::model::{Direction, LocalTransport, MediaKind, SessionDescription, Setup};
use crate::parse::{is_mid, is_msid_token, is_token};
use crate::write::{self, SdpWriter, ln};

/// Opus payload type in subscribe offers.
pub const OPUS_PT: u8 = 111;
/// VP8 payload type in subscribe offers.
pub const VP8_PT: u8 = 96;
/// VP8 RTX payload type in subscribe offers.
pub const VP8_RTX_PT: u8 = 97;
/// Opus fmtp in subscribe offers.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// abs-send-time extension id in subscribe offers.
pub const EXT_ABS_SEND_TIME: u8 = 2;
/// transport-wide-cc extension id in subscribe offers.
pub const EXT_TRANSPORT_CC: u8 = 3;
/// ssrc-audio-level extension id in subscribe offers (audio m-lines only).
pub const EXT_AUDIO_LEVEL: u8 = 4;

/// One forwarded track, i.e. one m-line of the subscribe offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTrack {
    /// Stable mid assigned by the caller (`"0"`, `"1"`, ...).
    pub mid: String,
    /// Audio (Opus) or video (VP8).
    pub kind: MediaKind,
    /// SSRC Salon sends the media with.
    pub ssrc: u32,
    /// SSRC of the RTX stream (video only; ignored for audio).
    pub rtx_ssrc: Option<u32>,
    /// RTCP cname.
    pub cname: String,
    /// MediaStream id (the publishing participant, for instance).
    pub stream_id: String,
    /// Track id.
    pub track_id: String,
    /// Payload type ([`OPUS_PT`] or [`VP8_PT`]).
    pub pt: u8,
    /// RTX payload type ([`VP8_RTX_PT`]); RTX is offered only with `rtx_ssrc`.
    pub rtx_pt: Option<u8>,
    /// `false`: no track on this m-line now (it was removed, and the line
    /// waits to be reused for the next track of its kind). The line stays
    /// in the BUNDLE group with `a=inactive` — never rejected with port 0 —
    /// so the transport stays up even when every line is inactive (JSEP
    /// §5.2.2) and the mid can carry a new track later.
    pub active: bool,
}

impl OutTrack {
    fn rtx(&self) -> Option<(u8, u32)> {
        match (self.kind, self.rtx_pt, self.rtx_ssrc) {
            (MediaKind::Video, Some(pt), Some(ssrc)) => Some((pt, ssrc)),
            _ => None,
        }
    }
}

/// Payload types usable for dynamic formats without clashing with RTCP
/// packet types under rtcp-mux (RFC 5761): 35..=63 and 96..=127.
fn is_dynamic_pt(pt: u8) -> bool {
    (35..=63).contains(&pt) || (96..=127).contains(&pt)
}

fn validate_tracks(tracks: &[OutTrack]) -> Result<(), SdpError> {
    if tracks.len() > crate::MAX_MEDIA {
        return Err(SdpError::TooManyMedia);
    }
    for (index, t) in tracks.iter().enumerate() {
        let err = |reason| SdpError::Media { index, reason };
        if !is_mid(&t.mid) {
            return Err(err("bad mid"));
        }
        if tracks.iter().take(index).any(|o| o.mid == t.mid) {
            return Err(err("duplicate mid"));
        }
        if !is_token(&t.cname, 255) {
            return Err(err("bad cname"));
        }
        if !is_msid_token(&t.stream_id) || !is_msid_token(&t.track_id) {
            return Err(err("bad stream or track id"));
        }
        if !is_dynamic_pt(t.pt) {
            return Err(err("payload type not dynamic"));
        }
        if let Some((rtx_pt, rtx_ssrc)) = t.rtx() {
            if !is_dynamic_pt(rtx_pt) || rtx_pt == t.pt {
                return Err(err("bad rtx payload type"));
            }
            if rtx_ssrc == t.ssrc {
                return Err(err("rtx ssrc equals media ssrc"));
            }
        }
    }
    Ok(())
}

/// Builds the subscribe offer: one `a=sendonly` m-line per track, in order.
///
/// Every m-line is BUNDLEd on the one transport; an inactive one (no track
/// now) carries `a=inactive` and no SSRC or msid, so an offer in which every
/// track has gone is still answerable and keeps the transport. With no
/// m-lines at all the result is a valid SDP, useless to a browser: the
/// caller does not send an offer in that case.
///
/// Errors only on invalid input (bad tokens, duplicate mids, payload types
/// outside the dynamic ranges, bad local transport).
pub fn offer_subscribe(tracks: &[OutTrack], local: &LocalTransport) -> Result<String, SdpError> {
    write::validate_local(local)?;
    validate_tracks(tracks)?;
    let bundle: Vec<&str> = tracks.iter().map(|t| t.mid.as_str()).collect();
    let mut w = SdpWriter::new();
    write::session_header(&mut w, local, &bundle, Setup::ActPass);
    ln!(w, "a=msid-semantic:WMS *");
    for t in tracks {
        if t.active {
            write_active(&mut w, local, t);
        } else {
            write_inactive(&mut w, local, t);
        }
    }
    Ok(w.finish())
}

fn m_line(w: &mut SdpWriter, t: &OutTrack, port: u16) {
    match t.rtx() {
        Some((rtx_pt, _)) => ln!(
            w,
            "m={} {} UDP/TLS/RTP/SAVPF {} {}",
            t.kind.as_str(),
            port,
            t.pt,
            rtx_pt
        ),
        None => ln!(
            w,
            "m={} {} UDP/TLS/RTP/SAVPF {}",
            t.kind.as_str(),
            port,
            t.pt
        ),
    }
}

fn rtpmaps(w: &mut SdpWriter, t: &OutTrack, with_feedback: bool) {
    let pt = t.pt;
    match t.kind {
        MediaKind::Audio => {
            ln!(w, "a=rtpmap:{} opus/48000/2", pt);
            if with_feedback {
                ln!(w, "a=rtcp-fb:{} transport-cc", pt);
            }
            ln!(w, "a=fmtp:{} {}", pt, OPUS_FMTP);
        }
        MediaKind::Video => {
            ln!(w, "a=rtpmap:{} VP8/90000", pt);
            if with_feedback {
                for fb in ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"] {
                    ln!(w, "a=rtcp-fb:{} {}", pt, fb);
                }
            }
            if let Some((rtx_pt, _)) = t.rtx() {
                ln!(w, "a=rtpmap:{} rtx/90000", rtx_pt);
                ln!(w, "a=fmtp:{} apt={}", rtx_pt, pt);
            }
        }
    }
}

fn write_active(w: &mut SdpWriter, local: &LocalTransport, t: &OutTrack) {
    m_line(w, t, local.candidate_port);
    write::connection(w, write::connection_ip(local));
    write::transport_attrs(w, local, Setup::ActPass);
    ln!(w, "a=mid:{}", t.mid);
    ln!(w, "a=extmap:{} {}", EXT_ABS_SEND_TIME, uri::ABS_SEND_TIME);
    ln!(w, "a=extmap:{} {}", EXT_TRANSPORT_CC, uri::TRANSPORT_CC);
    if t.kind == MediaKind::Audio {
        ln!(w, "a=extmap:{} {}", EXT_AUDIO_LEVEL, uri::AUDIO_LEVEL);
    }
    ln!(w, "a=sendonly");
    ln!(w, "a=msid:{} {}", t.stream_id, t.track_id);
    ln!(w, "a=rtcp-mux");
    rtpmaps(w, t, true);
    let mut ssrcs = vec![t.ssrc];
    if let Some((_, rtx_ssrc)) = t.rtx() {
        ln!(w, "a=ssrc-group:FID {} {}", t.ssrc, rtx_ssrc);
        ssrcs.push(rtx_ssrc);
    }
    for ssrc in ssrcs {
        ln!(w, "a=ssrc:{} cname:{}", ssrc, t.cname);
        ln!(w, "a=ssrc:{} msid:{} {}", ssrc, t.stream_id, t.track_id);
    }
    write::candidate(w, local);
}

fn write_inactive(w: &mut SdpWriter, local: &LocalTransport, t: &OutTrack) {
    m_line(w, t, local.candidate_port);
    write::connection(w, write::connection_ip(local));
    write::transport_attrs(w, local, Setup::ActPass);
    ln!(w, "a=mid:{}", t.mid);
    ln!(w, "a=extmap:{} {}", EXT_ABS_SEND_TIME, uri::ABS_SEND_TIME);
    ln!(w, "a=extmap:{} {}", EXT_TRANSPORT_CC, uri::TRANSPORT_CC);
    if t.kind == MediaKind::Audio {
        ln!(w, "a=extmap:{} {}", EXT_AUDIO_LEVEL, uri::AUDIO_LEVEL);
    }
    ln!(w, "a=inactive");
    ln!(w, "a=rtcp-mux");
    rtpmaps(w, t, true);
    write::candidate(w, local);
}

/// Parses the browser's answer to a subscribe offer (same rules as [`crate::parse`]).
pub fn parse_answer(sdp: &str) -> Result<SessionDescription, SdpError> {
    crate::parse(sdp)
}

/// Checks that `answer` answers the subscribe offer built from `offer_tracks`:
/// same m-line count, mids and kinds in order, the browser takes the DTLS
/// client role (`a=setup:active`), and each active track is accepted
/// (BUNDLEd, `recvonly`/`inactive`, with the offered payload type).
pub fn check_subscribe_answer(
    offer_tracks: &[OutTrack],
    answer: &SessionDescription,
) -> Result<(), SdpError> {
    if answer.media.len() != offer_tracks.len() {
        return Err(SdpError::MediaCountMismatch {
            expected: offer_tracks.len(),
            got: answer.media.len(),
        });
    }
    if answer.fingerprint.bytes.is_empty() {
        return Err(SdpError::Missing("fingerprint"));
    }
    if offer_tracks.iter().any(|t| t.active) && answer.setup != Setup::Active {
        return Err(SdpError::Unsupported("answer setup is not active"));
    }
    for (index, (t, m)) in offer_tracks.iter().zip(&answer.media).enumerate() {
        let err = |reason| SdpError::Media { index, reason };
        if m.mid != t.mid {
            return Err(err("mid differs from the offer"));
        }
        if m.kind != Some(t.kind) {
            return Err(err("media kind differs from the offer"));
        }
        if !t.active {
            continue;
        }
        if m.is_rejected() && !answer.bundle.contains(&m.mid) {
            return Err(err("track rejected by the answer"));
        }
        if !answer.bundle.contains(&m.mid) {
            return Err(err("track not in the answer's BUNDLE group"));
        }
        if !matches!(m.direction, Direction::RecvOnly | Direction::Inactive) {
            return Err(err("answer direction is not recvonly"));
        }
        if m.setup != Setup::Active {
            return Err(err("answer setup is not active"));
        }
        if m.codec_by_pt(t.pt).is_none() {
            return Err(err("offered payload type missing from the answer"));
        }
    }
    Ok(())
}
