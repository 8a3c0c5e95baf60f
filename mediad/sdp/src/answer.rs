//! The answer to a browser's publish offer.

use crate::error::SdpError;
use crate::model::{
    Codec, Direction, LocalTransport, MediaKind, MediaSection, Msid, RidDirection,
    SessionDescription, Setup, SsrcGroup,
};
use crate::write::{self, SdpWriter, ln};

/// Header extension URIs Salon understands.
pub mod uri {
    /// RFC 8843 `sdes:mid`.
    pub const SDES_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    /// RFC 8852 `sdes:rtp-stream-id`.
    pub const RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
    /// RFC 8852 `sdes:repaired-rtp-stream-id`.
    pub const REPAIRED_RTP_STREAM_ID: &str =
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
    /// RFC 6464 audio level.
    pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    /// Transport-wide sequence numbers (transport-cc).
    pub const TRANSPORT_CC: &str =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    /// Absolute send time (REMB).
    pub const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
}

/// The negotiated header extension ids of one accepted m-line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderExtIds {
    /// `sdes:mid`.
    pub mid: Option<u8>,
    /// `sdes:rtp-stream-id` (video).
    pub rtp_stream_id: Option<u8>,
    /// `sdes:repaired-rtp-stream-id` (video).
    pub repaired_rtp_stream_id: Option<u8>,
    /// `ssrc-audio-level` (audio).
    pub audio_level: Option<u8>,
    /// transport-wide-cc.
    pub transport_cc: Option<u8>,
    /// abs-send-time.
    pub abs_send_time: Option<u8>,
}

/// The negotiated RTCP feedback of one accepted codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpFeedback {
    /// `nack`.
    pub nack: bool,
    /// `nack pli`.
    pub nack_pli: bool,
    /// `ccm fir`.
    pub ccm_fir: bool,
    /// `goog-remb`.
    pub goog_remb: bool,
    /// `transport-cc`.
    pub transport_cc: bool,
}

/// The codec accepted on an m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedCodec {
    /// Payload type, as offered.
    pub pt: u8,
    /// RTX payload type, as offered (video only).
    pub rtx_pt: Option<u8>,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels (Opus: 2).
    pub channels: Option<u8>,
}

/// One m-line of the publish offer that Salon accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedMedia {
    /// Index of the m-line.
    pub index: usize,
    /// Its mid.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Whether the browser sends on it now (`false`: answered `a=inactive`).
    pub receiving: bool,
    /// The codec.
    pub codec: AcceptedCodec,
    /// Header extension ids.
    pub extmap: HeaderExtIds,
    /// RTCP feedback.
    pub rtcp_fb: RtcpFeedback,
    /// `a=rtcp-rsize` was offered and answered.
    pub rtcp_rsize: bool,
    /// Offered SSRCs (Chrome omits them for rid-based simulcast).
    pub ssrcs: Vec<u32>,
    /// Offered SSRC groups (FID, SIM).
    pub ssrc_groups: Vec<SsrcGroup>,
    /// Simulcast rids, in the offered `a=simulcast` order (else `a=rid` order).
    pub rids: Vec<String>,
    /// Offered msid.
    pub msid: Option<Msid>,
    /// Offered cname.
    pub cname: Option<String>,
}

/// An answer and what it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP (CRLF line endings).
    pub sdp: String,
    /// The accepted m-lines, in m-line order.
    pub accepted: Vec<AcceptedMedia>,
}

/// How much one publisher may send: receiving m-lines per kind, and
/// simulcast encodings per video m-line. Beyond them, m-lines are rejected
/// and rids left out of the answer, so one offer cannot make the media
/// plane hold thousands of streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLimits {
    /// Receiving audio m-lines (a microphone).
    pub audio: usize,
    /// Receiving video m-lines (a camera and a screen share).
    pub video: usize,
    /// Simulcast encodings per video m-line.
    pub rids: usize,
}

impl PublishLimits {
    /// No limits (tests of the SDP itself).
    pub const UNLIMITED: Self = Self {
        audio: usize::MAX,
        video: usize::MAX,
        rids: usize::MAX,
    };
    /// What a meeting participant needs: one microphone, a camera and a
    /// screen share, three simulcast layers each.
    pub const MEETING: Self = Self {
        audio: 1,
        video: 2,
        rids: 3,
    };
}

/// Answers a browser's publish offer, without limits (see
/// [`answer_publish_limited`]).
pub fn answer_publish(
    offer: &SessionDescription,
    local: &LocalTransport,
) -> Result<Answer, SdpError> {
    answer_publish_limited(offer, local, PublishLimits::UNLIMITED)
}

/// Answers a browser's publish offer.
///
/// Accepts the first Opus codec on audio m-lines and the first VP8 codec (with
/// its RTX) on video m-lines, if the m-line is in the offer's BUNDLE group (or,
/// without a group, for the first usable m-line only). Everything else is
/// rejected with port 0, keeping the m-line count and mids. Accepted m-lines
/// are `a=recvonly` (or `a=inactive` if the browser no longer sends), with
/// `a=setup:passive`, `a=ice-lite` and one host candidate.
///
/// Header extensions are kept only with ids 1..=14, since Salon does not
/// answer `a=extmap-allow-mixed` (one-byte headers only).
/// Receiving m-lines past `limits` are rejected (inactive ones do not
/// count: a stopped sender's m-line stays in the offer), and rids past
/// `limits.rids` are left out.
pub fn answer_publish_limited(
    offer: &SessionDescription,
    local: &LocalTransport,
    limits: PublishLimits,
) -> Result<Answer, SdpError> {
    write::validate_local(local)?;
    if offer.setup == Setup::Passive {
        return Err(SdpError::Unsupported("offerer asks to be the DTLS server"));
    }

    let mut accepted: Vec<(AcceptedMedia, &Codec)> = Vec::new();
    for (index, m) in offer.media.iter().enumerate() {
        let bundled = if offer.bundle.is_empty() {
            accepted.is_empty()
        } else {
            offer.bundle.contains(&m.mid)
        };
        if !bundled || m.is_rejected() || !m.proto.ends_with("RTP/SAVPF") {
            continue;
        }
        if let Some((mut a, codec)) = accept(index, m) {
            let cap = match a.kind {
                MediaKind::Audio => limits.audio,
                MediaKind::Video => limits.video,
            };
            let receiving = accepted
                .iter()
                .filter(|(x, _)| x.kind == a.kind && x.receiving)
                .count();
            if a.receiving && receiving >= cap {
                continue;
            }
            a.rids.truncate(limits.rids);
            accepted.push((a, codec));
        }
    }

    // An answer may only BUNDLE what the offer BUNDLEd (RFC 8843).
    let bundle: Vec<&str> = if offer.bundle.is_empty() {
        Vec::new()
    } else {
        accepted.iter().map(|(a, _)| a.mid.as_str()).collect()
    };
    let mut w = SdpWriter::new();
    write::session_header(&mut w, local, &bundle, Setup::Passive);
    let mut next = accepted.iter().peekable();
    for (index, m) in offer.media.iter().enumerate() {
        match next.next_if(|(a, _)| a.index == index) {
            Some((a, codec)) => write_accepted(&mut w, local, m, a, codec),
            None => write_rejected(&mut w, m),
        }
    }
    Ok(Answer {
        sdp: w.finish(),
        accepted: accepted.into_iter().map(|(a, _)| a).collect(),
    })
}

fn accept(index: usize, m: &MediaSection) -> Option<(AcceptedMedia, &Codec)> {
    let kind = m.kind?;
    let codec = match kind {
        MediaKind::Audio => m.codec("opus", 48_000)?,
        MediaKind::Video => m.codec("VP8", 90_000)?,
    };
    let mut extmap = HeaderExtIds::default();
    for e in &m.extmaps {
        // An extension the offerer only receives is of no use to a receiver.
        if !(1..=14).contains(&e.id) || !e.direction.is_none_or(Direction::sends) {
            continue;
        }
        let slot = match (kind, e.uri.as_str()) {
            (_, uri::SDES_MID) => &mut extmap.mid,
            // mediad reports arrivals every 50 ms (transport-cc feedback):
            // the browser's send-side estimator sizes its encodings.
            (_, uri::TRANSPORT_CC) => &mut extmap.transport_cc,
            (_, uri::ABS_SEND_TIME) => &mut extmap.abs_send_time,
            (MediaKind::Audio, uri::AUDIO_LEVEL) => &mut extmap.audio_level,
            (MediaKind::Video, uri::RTP_STREAM_ID) => &mut extmap.rtp_stream_id,
            (MediaKind::Video, uri::REPAIRED_RTP_STREAM_ID) => &mut extmap.repaired_rtp_stream_id,
            _ => continue,
        };
        slot.get_or_insert(e.id);
    }
    let rtcp_fb = RtcpFeedback {
        nack: codec.has_rtcp_fb("nack"),
        nack_pli: codec.has_rtcp_fb("nack pli"),
        ccm_fir: codec.has_rtcp_fb("ccm fir"),
        // No REMB: with transport-cc Chrome estimates on the send side.
        goog_remb: false,
        transport_cc: codec.has_rtcp_fb("transport-cc") && extmap.transport_cc.is_some(),
    };
    let rids = if kind == MediaKind::Video {
        if m.simulcast_send.is_empty() {
            m.rids
                .iter()
                .filter(|r| r.direction == RidDirection::Send)
                .map(|r| r.id.clone())
                .collect()
        } else {
            m.simulcast_send.clone()
        }
    } else {
        Vec::new()
    };
    let a = AcceptedMedia {
        index,
        mid: m.mid.clone(),
        kind,
        receiving: m.direction.sends(),
        codec: AcceptedCodec {
            pt: codec.pt,
            rtx_pt: if kind == MediaKind::Video {
                codec.rtx_pt
            } else {
                None
            },
            clock_rate: codec.clock_rate,
            channels: codec.channels,
        },
        extmap,
        rtcp_fb,
        rtcp_rsize: m.rtcp_rsize,
        ssrcs: m.ssrcs.clone(),
        ssrc_groups: m.ssrc_groups.clone(),
        rids,
        msid: m.msid.clone(),
        cname: m.cname.clone(),
    };
    Some((a, codec))
}

fn write_accepted(
    w: &mut SdpWriter,
    local: &LocalTransport,
    m: &MediaSection,
    a: &AcceptedMedia,
    codec: &Codec,
) {
    let pt = a.codec.pt;
    match a.codec.rtx_pt {
        Some(rtx) => ln!(
            w,
            "m={} {} {} {} {}",
            m.media,
            local.candidate_port,
            m.proto,
            pt,
            rtx
        ),
        None => ln!(
            w,
            "m={} {} {} {}",
            m.media,
            local.candidate_port,
            m.proto,
            pt
        ),
    }
    write::connection(w, write::connection_ip(local));
    write::transport_attrs(w, local, Setup::Passive);
    ln!(w, "a=mid:{}", a.mid);
    let ids = [
        (a.extmap.mid, uri::SDES_MID),
        (a.extmap.rtp_stream_id, uri::RTP_STREAM_ID),
        (a.extmap.repaired_rtp_stream_id, uri::REPAIRED_RTP_STREAM_ID),
        (a.extmap.audio_level, uri::AUDIO_LEVEL),
        (a.extmap.transport_cc, uri::TRANSPORT_CC),
        (a.extmap.abs_send_time, uri::ABS_SEND_TIME),
    ];
    // In offer order, with the offered direction mirrored.
    for e in &m.extmaps {
        if ids.iter().any(|(id, u)| *id == Some(e.id) && *u == e.uri) {
            match e.direction {
                Some(d) => ln!(w, "a=extmap:{}/{} {}", e.id, d.reverse().as_str(), e.uri),
                None => ln!(w, "a=extmap:{} {}", e.id, e.uri),
            }
        }
    }
    let dir = if a.receiving {
        Direction::RecvOnly
    } else {
        Direction::Inactive
    };
    ln!(w, "a={}", dir.as_str());
    ln!(w, "a=rtcp-mux");
    if a.rtcp_rsize {
        ln!(w, "a=rtcp-rsize");
    }
    match codec.channels {
        Some(ch) => ln!(
            w,
            "a=rtpmap:{} {}/{}/{}",
            pt,
            codec.name,
            codec.clock_rate,
            ch
        ),
        None => ln!(w, "a=rtpmap:{} {}/{}", pt, codec.name, codec.clock_rate),
    }
    let fb = a.rtcp_fb;
    for (on, v) in [
        (fb.goog_remb, "goog-remb"),
        (fb.transport_cc, "transport-cc"),
        (fb.ccm_fir, "ccm fir"),
        (fb.nack, "nack"),
        (fb.nack_pli, "nack pli"),
    ] {
        if on {
            ln!(w, "a=rtcp-fb:{} {}", pt, v);
        }
    }
    if let Some(f) = &codec.fmtp {
        ln!(w, "a=fmtp:{} {}", pt, f);
    }
    if let Some(rtx) = a.codec.rtx_pt {
        ln!(w, "a=rtpmap:{} rtx/{}", rtx, codec.clock_rate);
        ln!(w, "a=fmtp:{} apt={}", rtx, pt);
    }
    for rid in &a.rids {
        ln!(w, "a=rid:{} recv", rid);
    }
    if !m.simulcast_send.is_empty() && !a.rids.is_empty() {
        ln!(w, "a=simulcast:recv {}", a.rids.join(";"));
    }
    write::candidate(w, local);
}

fn write_rejected(w: &mut SdpWriter, m: &MediaSection) {
    ln!(w, "m={} 0 {} {}", m.media, m.proto, m.formats.join(" "));
    write::connection_disabled(w);
    ln!(w, "a=mid:{}", m.mid);
    ln!(w, "a=inactive");
}
