//! SDP for Salon's SFU: a strict parser and the two builders mediad needs.
//!
//! Every browser participant has two peer connections to mediad (LiveKit's
//! model), both BUNDLEd over one ICE-lite transport on which mediad is the
//! DTLS server:
//!
//! - **publish**: the browser offers (`sendonly` audio/video, maybe
//!   rid-based simulcast); [`parse`] it, then [`answer_publish`] builds the
//!   answer and reports what was accepted ([`AcceptedMedia`]: payload types,
//!   header extension ids, rids, SSRCs, feedback).
//! - **subscribe**: [`offer_subscribe`] builds the offer from the forwarded
//!   tracks ([`OutTrack`], stable mids chosen by the caller); the browser's
//!   answer goes through [`parse_answer`] and [`check_subscribe_answer`].
//!
//! The parser works on text only (no I/O, no clock). It is bounded
//! ([`MAX_SDP_LEN`], [`MAX_LINE_LEN`], [`MAX_MEDIA`]) and returns an
//! [`SdpError`] for any input it does not accept; it never panics. Error
//! messages carry line numbers and m-line indexes, never SDP content, and ICE
//! passwords are redacted from `Debug` output ([`IcePwd`]).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::expect_used)]

mod answer;
mod error;
mod model;
mod parse;
mod subscribe;
mod write;

pub use answer::{
    AcceptedCodec, AcceptedMedia, Answer, HeaderExtIds, PublishLimits, RtcpFeedback,
    answer_publish, answer_publish_limited, uri,
};
pub use error::SdpError;
pub use model::{
    Codec, Direction, Extmap, Fingerprint, IcePwd, LocalTransport, MAX_CANDIDATE_IPS, MediaKind,
    MediaSection, Msid, Rid, RidDirection, SessionDescription, Setup, SsrcGroup,
};
pub use parse::{MAX_LINE_LEN, MAX_MEDIA, MAX_SDP_LEN, parse, parse_bytes};
pub use subscribe::{
    EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_TRANSPORT_CC, OPUS_FMTP, OPUS_PT, OutTrack, VP8_PT,
    VP8_RTX_PT, check_subscribe_answer, offer_subscribe, parse_answer,
};
