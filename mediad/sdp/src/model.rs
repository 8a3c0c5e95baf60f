//! The parsed form of a session description.

use std::fmt;
use std::net::IpAddr;

/// A DTLS certificate fingerprint (`a=fingerprint`, RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name, lowercase (`"sha-256"`).
    pub algorithm: String,
    /// The digest.
    pub bytes: Vec<u8>,
}

impl Fingerprint {
    /// A SHA-256 fingerprint.
    pub fn sha256(digest: [u8; 32]) -> Self {
        Fingerprint {
            algorithm: "sha-256".to_owned(),
            bytes: digest.to_vec(),
        }
    }

    /// Digest length in bytes for the hash functions of RFC 8122, `None` for others.
    pub fn expected_len(algorithm: &str) -> Option<usize> {
        match algorithm {
            "sha-1" => Some(20),
            "sha-224" => Some(28),
            "sha-256" => Some(32),
            "sha-384" => Some(48),
            "sha-512" => Some(64),
            "md5" | "md2" => Some(16),
            _ => None,
        }
    }
}

/// Formats as the attribute value: `sha-256 AB:CD:...` (uppercase hex).
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.algorithm)?;
        for (i, b) in self.bytes.iter().enumerate() {
            let sep = if i == 0 { ' ' } else { ':' };
            write!(f, "{sep}{b:02X}")?;
        }
        Ok(())
    }
}

/// An ICE password. Its `Debug` output is redacted so it never reaches logs.
#[derive(Clone, PartialEq, Eq)]
pub struct IcePwd(String);

impl IcePwd {
    /// Wraps a password (not validated here; builders validate it).
    pub fn new(pwd: impl Into<String>) -> Self {
        IcePwd(pwd.into())
    }

    /// The password, for STUN message integrity and SDP writing.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IcePwd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IcePwd(<redacted>)")
    }
}

/// DTLS role negotiation (`a=setup`, RFC 4145 / RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The endpoint starts the DTLS handshake (client).
    Active,
    /// The endpoint waits for the handshake (server).
    Passive,
    /// The endpoint can take either role (offers only).
    ActPass,
}

impl Setup {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
        }
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default when absent).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction seen from the other side.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d @ (Direction::SendRecv | Direction::Inactive) => d,
        }
    }

    /// Whether the describing endpoint sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing endpoint receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The media kinds Salon forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
}

impl MediaKind {
    /// The m-line media token.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// One RTP payload format of an m-line, with its RTX companion folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (`opus`, `VP8`, ...).
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channel count when given (audio).
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters, verbatim.
    pub fmtp: Option<String>,
    /// `a=rtcp-fb` values for this pt (and `*`), whitespace-normalised:
    /// `"nack"`, `"nack pli"`, `"ccm fir"`, `"goog-remb"`, `"transport-cc"`.
    pub rtcp_fb: Vec<String>,
    /// Payload type of the `rtx` format whose `apt=` names this codec.
    pub rtx_pt: Option<u8>,
}

impl Codec {
    /// Whether `a=rtcp-fb:<pt> <value>` was given for this codec.
    pub fn has_rtcp_fb(&self, value: &str) -> bool {
        self.rtcp_fb.iter().any(|v| v == value)
    }
}

/// An `a=extmap` line (RFC 8285).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    /// Extension id (1..=255).
    pub id: u8,
    /// Optional direction after the id (`a=extmap:1/sendonly ...`).
    pub direction: Option<Direction>,
    /// Extension URI.
    pub uri: String,
}

/// Direction of an `a=rid` (RFC 8851).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RidDirection {
    /// `send`.
    Send,
    /// `recv`.
    Recv,
}

impl RidDirection {
    /// The attribute token.
    pub fn as_str(self) -> &'static str {
        match self {
            RidDirection::Send => "send",
            RidDirection::Recv => "recv",
        }
    }
}

/// An `a=rid` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid {
    /// The RtpStreamId (1..=16 chars of `[A-Za-z0-9_-]`).
    pub id: String,
    /// Send or receive.
    pub direction: RidDirection,
    /// Restrictions (`pt=96;max-width=1280`), verbatim, if any.
    pub restrictions: Option<String>,
}

/// An `a=ssrc-group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// `FID`, `SIM`, `FEC-FR`, ...
    pub semantics: String,
    /// The SSRCs, in order (for FID: media, then RTX).
    pub ssrcs: Vec<u32>,
}

/// An `a=msid` line (RFC 8830).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// The MediaStream id (`-` when none).
    pub stream_id: String,
    /// The track id (empty when absent).
    pub track_id: String,
}

/// One m-line and its attributes.
///
/// `ice_ufrag`, `ice_pwd`, `fingerprint` and `setup` are the values in force
/// for this section: its own, else the session-level ones, else (for bundled
/// or rejected sections) those of the session transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// `Some` for `audio` and `video`, `None` for anything else.
    pub kind: Option<MediaKind>,
    /// The media token as written (`audio`, `video`, `application`, ...).
    pub media: String,
    /// The m-line port; 0 means the section is rejected/disabled.
    pub port: u16,
    /// Transport protocol (`UDP/TLS/RTP/SAVPF`).
    pub proto: String,
    /// The format list as written.
    pub formats: Vec<String>,
    /// `a=mid` (always present: required).
    pub mid: String,
    /// Direction (default `sendrecv`).
    pub direction: Direction,
    /// Codecs in m-line preference order; `rtx` formats are folded into `rtx_pt`.
    pub codecs: Vec<Codec>,
    /// Header extensions.
    pub extmaps: Vec<Extmap>,
    /// Distinct SSRCs of `a=ssrc` lines, in first-seen order.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group` lines.
    pub ssrc_groups: Vec<SsrcGroup>,
    /// First `cname` of the `a=ssrc` lines.
    pub cname: Option<String>,
    /// First `a=msid`.
    pub msid: Option<Msid>,
    /// `a=rid` lines, in order.
    pub rids: Vec<Rid>,
    /// `a=simulcast` send streams, in order (first alternative, `~` removed).
    pub simulcast_send: Vec<String>,
    /// `a=simulcast` recv streams, in order (first alternative, `~` removed).
    pub simulcast_recv: Vec<String>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
    /// `a=bundle-only`.
    pub bundle_only: bool,
    /// ICE username fragment in force.
    pub ice_ufrag: String,
    /// ICE password in force.
    pub ice_pwd: IcePwd,
    /// DTLS fingerprint in force.
    pub fingerprint: Fingerprint,
    /// DTLS role in force.
    pub setup: Setup,
}

impl MediaSection {
    /// Port 0 without `a=bundle-only`: rejected by the answerer or
    /// stopped. A bundle-only section (RFC 8843 §7.2: port 0 in an offer,
    /// carried on the BUNDLE transport — Firefox offers a new transceiver
    /// this way) is not rejected.
    pub fn is_rejected(&self) -> bool {
        self.port == 0 && !self.bundle_only
    }

    /// Whether the transport protocol is RTP-based.
    pub fn is_rtp(&self) -> bool {
        self.proto.contains("RTP/")
    }

    /// The id negotiated for a header extension URI.
    pub fn extmap_id(&self, uri: &str) -> Option<u8> {
        self.extmaps.iter().find(|e| e.uri == uri).map(|e| e.id)
    }

    /// The first codec with this name (ASCII case-insensitive) and clock rate.
    pub fn codec(&self, name: &str, clock_rate: u32) -> Option<&Codec> {
        self.codecs
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name) && c.clock_rate == clock_rate)
    }

    /// The codec with this payload type.
    pub fn codec_by_pt(&self, pt: u8) -> Option<&Codec> {
        self.codecs.iter().find(|c| c.pt == pt)
    }
}

/// A parsed session description.
///
/// The transport fields are those of the BUNDLE transport (the first mid of
/// the BUNDLE group), else of the session level, else of the first
/// non-rejected m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` sess-id.
    pub session_id: u64,
    /// `o=` sess-version.
    pub session_version: u64,
    /// ICE username fragment of the transport.
    pub ice_ufrag: String,
    /// ICE password of the transport.
    pub ice_pwd: IcePwd,
    /// DTLS fingerprint of the transport.
    pub fingerprint: Fingerprint,
    /// DTLS role of the transport.
    pub setup: Setup,
    /// Mids of the (single supported) BUNDLE group, in order; empty if none.
    pub bundle: Vec<String>,
    /// The m-lines, in order.
    pub media: Vec<MediaSection>,
    /// `a=ice-lite` at session level.
    pub ice_lite: bool,
}

impl SessionDescription {
    /// The section with this mid.
    pub fn media_by_mid(&self, mid: &str) -> Option<&MediaSection> {
        self.media.iter().find(|m| m.mid == mid)
    }
}

/// Most addresses in [`LocalTransport::candidate_ips`] (one IPv4 and one
/// IPv6 in practice; a host with several public addresses may announce a
/// few).
pub const MAX_CANDIDATE_IPS: usize = 4;

/// Our side of the transport, written into answers and offers.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalTransport {
    /// ICE username fragment (4..=256 ice-chars).
    pub ice_ufrag: String,
    /// ICE password (22..=256 ice-chars).
    pub ice_pwd: IcePwd,
    /// Fingerprint of our DTLS certificate.
    pub fingerprint: Fingerprint,
    /// Addresses of the host candidates (the worker's UDP socket, as
    /// announced): 1 to [`MAX_CANDIDATE_IPS`]. Written IPv6 first (RFC
    /// 8421: a little preferred), each with its own local preference and
    /// foundation; the first written is also the `c=` address.
    pub candidate_ips: Vec<IpAddr>,
    /// Port of the host candidates.
    pub candidate_port: u16,
    /// Port of the passive TCP host candidates (ICE-TCP, RFC 6544) on
    /// each of `candidate_ips`, if the worker listens on TCP.
    pub tcp_candidate_port: Option<u16>,
    /// `o=` sess-id; the top bit is cleared when written (JSEP wants it to fit an i64).
    pub session_id: u64,
    /// `o=` sess-version; the caller increments it on every new description.
    pub session_version: u64,
}

impl fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTransport")
            .field("ice_ufrag", &self.ice_ufrag)
            .field("ice_pwd", &self.ice_pwd)
            .field("fingerprint", &self.fingerprint)
            .field("candidate_ips", &self.candidate_ips.len())
            .field("candidate_port", &self.candidate_port)
            .field("tcp_candidate_port", &self.tcp_candidate_port)
            .field("session_id", &self.session_id)
            .field("session_version", &self.session_version)
            .finish_non_exhaustive()
    }
}
