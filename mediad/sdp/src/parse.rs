//! A strict, line-based SDP parser (RFC 8866 grammar, JSEP/WebRTC attributes).
//!
//! Bounded: input size, line length, m-line count and every per-section list
//! are capped, and nothing here indexes or slices without a check, so any
//! input gives `Ok` or `Err`, never a panic.

use crate::error::SdpError;
use crate::model::{
    Codec, Direction, Extmap, Fingerprint, IcePwd, MediaKind, MediaSection, Msid, Rid,
    RidDirection, SessionDescription, Setup, SsrcGroup,
};

/// Largest accepted SDP, in bytes: a browser's answer to the subscribe
/// offer of a room near [`MAX_MEDIA`] m-lines (about 700 bytes each).
pub const MAX_SDP_LEN: usize = 512 * 1024;
/// Longest accepted line, in bytes (without the line ending).
pub const MAX_LINE_LEN: usize = 4096;
/// Most m-lines accepted: a subscriber has one per remote track, so a room
/// of 100 people publishing audio and video needs 198.
pub const MAX_MEDIA: usize = 512;

const MAX_FORMATS: usize = 128;
const MAX_SSRCS: usize = 64;
const MAX_SSRC_GROUPS: usize = 32;
const MAX_GROUP_SSRCS: usize = 16;
const MAX_RIDS: usize = 16;
const MAX_SIMULCAST_STREAMS: usize = 16;
const MAX_EXTMAPS: usize = 64;
const MAX_RTCP_FB: usize = 256;
const MAX_TOKEN_LEN: usize = 256;
const MAX_MID_LEN: usize = 32;
const MAX_RID_LEN: usize = 16;
const MAX_MSID_LEN: usize = 64;

/// Parses an SDP given as bytes (as received from signaling).
pub fn parse_bytes(input: &[u8]) -> Result<SessionDescription, SdpError> {
    if input.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { len: input.len() });
    }
    let text = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
    parse(text)
}

/// Parses and validates an offer or an answer.
///
/// Strict: the first line must be `v=0`, `o=` and `s=` must be present, every
/// m-line needs `a=mid`, every active RTP m-line needs `a=rtcp-mux`, and ICE
/// ufrag/pwd, a fingerprint and `a=setup` must be known (session level or media
/// level). Media sections outside the BUNDLE group must carry the same
/// transport parameters as the BUNDLE transport (Salon has exactly one).
/// Lines may end in CRLF or LF.
pub fn parse(sdp: &str) -> Result<SessionDescription, SdpError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { len: sdp.len() });
    }
    let body = sdp.strip_suffix('\n').unwrap_or(sdp);
    if body.is_empty() {
        return Err(SdpError::Missing("v=0 line"));
    }
    let mut p = Parser::default();
    for (idx, raw) in body.split('\n').enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        p.line(line_no, line)?;
    }
    p.finish()
}

fn syntax(line: usize, reason: &'static str) -> SdpError {
    SdpError::Syntax { line, reason }
}

fn too_many(line: usize, what: &'static str) -> SdpError {
    SdpError::TooMany { line, what }
}

/// Unsigned decimal, digits only (no sign, no spaces).
fn dec<T: TryFrom<u64>>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    T::try_from(v).ok()
}

/// Visible ASCII, no spaces, 1..=max bytes.
pub(crate) fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/".
pub(crate) fn is_ice_chars(s: &str, min: usize, max: usize) -> bool {
    s.len() >= min
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// RFC 8851 rid-id: 1*(ALPHA / DIGIT / "-" / "_"), capped at 16 (one-byte header ext).
pub(crate) fn is_rid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_RID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn is_mid(s: &str) -> bool {
    is_token(s, MAX_MID_LEN)
}

pub(crate) fn is_msid_token(s: &str) -> bool {
    is_token(s, MAX_MSID_LEN)
}

fn parse_fingerprint(v: &str) -> Option<Fingerprint> {
    let (alg, hex) = v.trim().split_once(' ')?;
    let alg = alg.to_ascii_lowercase();
    if !is_token(&alg, 16) {
        return None;
    }
    let hex = hex.trim();
    if hex.is_empty() || hex.len() > 64 * 3 {
        return None;
    }
    let mut bytes = Vec::with_capacity(hex.len().div_ceil(3));
    for pair in hex.split(':') {
        let &[hi, lo] = pair.as_bytes() else {
            return None;
        };
        let hi = char::from(hi).to_digit(16)?;
        let lo = char::from(lo).to_digit(16)?;
        bytes.push(((hi << 4) | lo) as u8);
    }
    if let Some(n) = Fingerprint::expected_len(&alg)
        && n != bytes.len()
    {
        return None;
    }
    Some(Fingerprint {
        algorithm: alg,
        bytes,
    })
}

fn parse_setup(v: &str) -> Option<Setup> {
    match v.trim() {
        s if s.eq_ignore_ascii_case("active") => Some(Setup::Active),
        s if s.eq_ignore_ascii_case("passive") => Some(Setup::Passive),
        s if s.eq_ignore_ascii_case("actpass") => Some(Setup::ActPass),
        _ => None,
    }
}

fn parse_direction(name: &str) -> Option<Direction> {
    match name {
        "sendrecv" => Some(Direction::SendRecv),
        "sendonly" => Some(Direction::SendOnly),
        "recvonly" => Some(Direction::RecvOnly),
        "inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

/// ICE / DTLS attributes that may appear at session or media level.
#[derive(Default, Clone)]
struct TransportAttrs {
    ufrag: Option<String>,
    pwd: Option<String>,
    fingerprint: Option<Fingerprint>,
    setup: Option<Setup>,
}

impl TransportAttrs {
    /// Handles the attribute if it is a transport one; returns whether it was.
    fn apply(&mut self, line: usize, name: &str, val: Option<&str>) -> Result<bool, SdpError> {
        match name {
            "ice-ufrag" => {
                let v = val.map(str::trim).unwrap_or("");
                if !is_ice_chars(v, 4, 256) {
                    return Err(syntax(line, "bad ice-ufrag"));
                }
                if self.ufrag.is_some() {
                    return Err(syntax(line, "duplicate ice-ufrag"));
                }
                self.ufrag = Some(v.to_owned());
            }
            "ice-pwd" => {
                let v = val.map(str::trim).unwrap_or("");
                if !is_ice_chars(v, 22, 256) {
                    return Err(syntax(line, "bad ice-pwd"));
                }
                if self.pwd.is_some() {
                    return Err(syntax(line, "duplicate ice-pwd"));
                }
                self.pwd = Some(v.to_owned());
            }
            "fingerprint" => {
                let fp = val
                    .and_then(parse_fingerprint)
                    .ok_or_else(|| syntax(line, "bad fingerprint"))?;
                // Several fingerprints are allowed (RFC 8122); keep the first
                // sha-256 one, else the first one.
                let replace = match &self.fingerprint {
                    None => true,
                    Some(cur) => cur.algorithm != "sha-256" && fp.algorithm == "sha-256",
                };
                if replace {
                    self.fingerprint = Some(fp);
                }
            }
            "setup" => {
                let s = val
                    .and_then(parse_setup)
                    .ok_or_else(|| syntax(line, "bad setup"))?;
                if self.setup.is_some() {
                    return Err(syntax(line, "duplicate setup"));
                }
                self.setup = Some(s);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn or(&self, fallback: &TransportAttrs) -> TransportAttrs {
        TransportAttrs {
            ufrag: self.ufrag.clone().or_else(|| fallback.ufrag.clone()),
            pwd: self.pwd.clone().or_else(|| fallback.pwd.clone()),
            fingerprint: self
                .fingerprint
                .clone()
                .or_else(|| fallback.fingerprint.clone()),
            setup: self.setup.or(fallback.setup),
        }
    }
}

struct RtpMap {
    pt: u8,
    name: String,
    clock_rate: u32,
    channels: Option<u8>,
}

struct MediaBuilder {
    kind: Option<MediaKind>,
    media: String,
    port: u16,
    proto: String,
    formats: Vec<String>,
    pts: Vec<u8>,
    mid: Option<String>,
    direction: Option<Direction>,
    rtpmaps: Vec<RtpMap>,
    fmtps: Vec<(u8, String)>,
    rtcp_fb: Vec<(Option<u8>, String)>,
    extmaps: Vec<Extmap>,
    ssrcs: Vec<u32>,
    ssrc_groups: Vec<SsrcGroup>,
    cname: Option<String>,
    msid: Option<Msid>,
    rids: Vec<Rid>,
    simulcast: Option<(Vec<String>, Vec<String>)>,
    rtcp_mux: bool,
    rtcp_rsize: bool,
    bundle_only: bool,
    transport: TransportAttrs,
}

#[derive(Default)]
struct Parser {
    saw_version: bool,
    origin: Option<(u64, u64)>,
    saw_name: bool,
    ice_lite: bool,
    bundle: Option<(usize, Vec<String>)>,
    transport: TransportAttrs,
    media: Vec<MediaBuilder>,
}

impl Parser {
    fn line(&mut self, n: usize, line: &str) -> Result<(), SdpError> {
        if line.len() > MAX_LINE_LEN {
            return Err(SdpError::LineTooLong { line: n });
        }
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(syntax(n, "control character"));
        }
        let ty = match *line.as_bytes() {
            [ty, b'=', ..] if ty.is_ascii_lowercase() => ty,
            _ => return Err(syntax(n, "not a <type>=<value> line")),
        };
        // Both leading bytes are ASCII, so index 2 is a char boundary.
        let value = line.get(2..).unwrap_or("");

        if !self.saw_version {
            if ty == b'v' && value == "0" {
                self.saw_version = true;
                return Ok(());
            }
            return Err(syntax(n, "first line must be v=0"));
        }
        let in_media = !self.media.is_empty();
        match ty {
            b'v' => Err(syntax(n, "repeated v= line")),
            b'o' if !in_media => {
                if self.origin.is_some() {
                    return Err(syntax(n, "repeated o= line"));
                }
                self.origin = Some(parse_origin(value).ok_or_else(|| syntax(n, "bad o= line"))?);
                Ok(())
            }
            b's' if !in_media => {
                if self.saw_name {
                    return Err(syntax(n, "repeated s= line"));
                }
                self.saw_name = true;
                Ok(())
            }
            b't' | b'r' | b'z' | b'u' | b'e' | b'p' if !in_media => Ok(()),
            b'i' | b'c' | b'b' | b'k' => Ok(()),
            b'm' => self.media_line(n, value),
            b'a' => {
                let (name, val) = match value.split_once(':') {
                    Some((name, val)) => (name, Some(val)),
                    None => (value, None),
                };
                if !is_token(name, 64) {
                    return Err(syntax(n, "bad attribute name"));
                }
                match self.media.last_mut() {
                    Some(m) => m.attribute(n, name, val),
                    None => self.session_attribute(n, name, val),
                }
            }
            b'o' | b's' | b't' | b'r' | b'z' | b'u' | b'e' | b'p' => {
                Err(syntax(n, "session-level line inside a media section"))
            }
            _ => Err(syntax(n, "unknown line type")),
        }
    }

    fn session_attribute(
        &mut self,
        n: usize,
        name: &str,
        val: Option<&str>,
    ) -> Result<(), SdpError> {
        if self.transport.apply(n, name, val)? {
            return Ok(());
        }
        match name {
            "ice-lite" => self.ice_lite = true,
            "group" => {
                let v = val.ok_or_else(|| syntax(n, "empty group"))?;
                let mut it = v.split_ascii_whitespace();
                let semantics = it.next().ok_or_else(|| syntax(n, "empty group"))?;
                if semantics.eq_ignore_ascii_case("BUNDLE") {
                    if self.bundle.is_some() {
                        return Err(SdpError::Unsupported("more than one BUNDLE group"));
                    }
                    let mut mids: Vec<String> = Vec::new();
                    for mid in it {
                        if !is_mid(mid) {
                            return Err(syntax(n, "bad mid in group"));
                        }
                        if mids.len() >= MAX_MEDIA {
                            return Err(too_many(n, "mids in group"));
                        }
                        if mids.iter().any(|m| m == mid) {
                            return Err(syntax(n, "duplicate mid in group"));
                        }
                        mids.push(mid.to_owned());
                    }
                    self.bundle = Some((n, mids));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn media_line(&mut self, n: usize, v: &str) -> Result<(), SdpError> {
        if self.origin.is_none() {
            return Err(SdpError::Missing("o= line"));
        }
        if !self.saw_name {
            return Err(SdpError::Missing("s= line"));
        }
        if self.media.len() >= MAX_MEDIA {
            return Err(SdpError::TooManyMedia);
        }
        let mut it = v.split_ascii_whitespace();
        let media = it.next().ok_or_else(|| syntax(n, "empty m= line"))?;
        if !is_token(media, 32) {
            return Err(syntax(n, "bad media type"));
        }
        let port_s = it.next().ok_or_else(|| syntax(n, "m= line without port"))?;
        if port_s.contains('/') {
            return Err(SdpError::Unsupported("port count in m= line"));
        }
        let port: u16 = dec(port_s).ok_or_else(|| syntax(n, "bad port"))?;
        let proto = it
            .next()
            .ok_or_else(|| syntax(n, "m= line without proto"))?;
        if !is_token(proto, 64) {
            return Err(syntax(n, "bad proto"));
        }
        let is_rtp = proto.contains("RTP/");
        let mut formats = Vec::new();
        let mut pts = Vec::new();
        for f in it {
            if formats.len() >= MAX_FORMATS {
                return Err(too_many(n, "formats"));
            }
            if !is_token(f, 64) {
                return Err(syntax(n, "bad format"));
            }
            if is_rtp {
                let pt: u8 = dec(f)
                    .filter(|p| *p <= 127)
                    .ok_or_else(|| syntax(n, "bad payload type"))?;
                if pts.contains(&pt) {
                    return Err(syntax(n, "duplicate payload type"));
                }
                pts.push(pt);
            }
            formats.push(f.to_owned());
        }
        if formats.is_empty() {
            return Err(syntax(n, "m= line without formats"));
        }
        let kind = match media {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        };
        self.media.push(MediaBuilder {
            kind,
            media: media.to_owned(),
            port,
            proto: proto.to_owned(),
            formats,
            pts,
            mid: None,
            direction: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            rtcp_fb: Vec::new(),
            extmaps: Vec::new(),
            ssrcs: Vec::new(),
            ssrc_groups: Vec::new(),
            cname: None,
            msid: None,
            rids: Vec::new(),
            simulcast: None,
            rtcp_mux: false,
            rtcp_rsize: false,
            bundle_only: false,
            transport: TransportAttrs::default(),
        });
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        if !self.saw_version {
            return Err(SdpError::Missing("v=0 line"));
        }
        let (session_id, session_version) = self.origin.ok_or(SdpError::Missing("o= line"))?;
        if !self.saw_name {
            return Err(SdpError::Missing("s= line"));
        }
        let (bundle_line, bundle) = self.bundle.unwrap_or((0, Vec::new()));

        // Per-section checks that do not depend on the transport.
        let mut built = Vec::with_capacity(self.media.len());
        for (i, m) in self.media.into_iter().enumerate() {
            let b = m.finish(i)?;
            if built
                .iter()
                .any(|(o, _): &(MediaSection, TransportAttrs)| o.mid == b.0.mid)
            {
                return Err(SdpError::Media {
                    index: i,
                    reason: "duplicate mid",
                });
            }
            built.push(b);
        }
        for mid in &bundle {
            if !built.iter().any(|(m, _)| &m.mid == mid) {
                return Err(syntax(bundle_line, "BUNDLE group names an unknown mid"));
            }
        }

        // The transport: BUNDLE-tagged section, else the first active one.
        let tag = match bundle.first() {
            Some(mid) => built.iter().find(|(m, _)| &m.mid == mid),
            None => built.iter().find(|(m, _)| m.port != 0),
        };
        let transport = match tag {
            Some((_, t)) => t.or(&self.transport),
            None => self.transport.clone(),
        };
        let ice_ufrag = transport.ufrag.ok_or(SdpError::Missing("ice-ufrag"))?;
        let ice_pwd = transport.pwd.ok_or(SdpError::Missing("ice-pwd"))?;
        let fingerprint = transport
            .fingerprint
            .ok_or(SdpError::Missing("fingerprint"))?;
        let setup = transport.setup.ok_or(SdpError::Missing("setup"))?;

        let mut media = Vec::with_capacity(built.len());
        for (i, (mut m, own)) in built.into_iter().enumerate() {
            let own = own.or(&self.transport);
            let bundled = bundle.contains(&m.mid);
            let active = m.port != 0 || bundled;
            let err = |reason| SdpError::Media { index: i, reason };
            if active {
                let differs = own.ufrag.as_ref().is_some_and(|u| *u != ice_ufrag)
                    || own.pwd.as_ref().is_some_and(|p| p != ice_pwd.as_str())
                    || own.fingerprint.as_ref().is_some_and(|f| *f != fingerprint)
                    || own.setup.is_some_and(|s| s != setup);
                if differs {
                    return Err(err(
                        "transport parameters differ from the session transport",
                    ));
                }
                if !bundled {
                    if own.ufrag.is_none() || own.pwd.is_none() {
                        return Err(err("missing ice-ufrag/ice-pwd"));
                    }
                    if own.fingerprint.is_none() {
                        return Err(err("missing fingerprint"));
                    }
                    if own.setup.is_none() {
                        return Err(err("missing setup"));
                    }
                }
                if m.is_rtp() && !m.rtcp_mux {
                    return Err(err("missing a=rtcp-mux"));
                }
            }
            m.ice_ufrag = own.ufrag.unwrap_or_else(|| ice_ufrag.clone());
            m.ice_pwd = IcePwd::new(own.pwd.unwrap_or_else(|| ice_pwd.clone()));
            m.fingerprint = own.fingerprint.unwrap_or_else(|| fingerprint.clone());
            m.setup = own.setup.unwrap_or(setup);
            media.push(m);
        }

        Ok(SessionDescription {
            session_id,
            session_version,
            ice_ufrag,
            ice_pwd: IcePwd::new(ice_pwd),
            fingerprint,
            setup,
            bundle,
            media,
            ice_lite: self.ice_lite,
        })
    }
}

fn parse_origin(v: &str) -> Option<(u64, u64)> {
    let f: Vec<&str> = v.split_ascii_whitespace().take(7).collect();
    let &[username, sess_id, sess_version, "IN", addrtype, _] = f.as_slice() else {
        return None;
    };
    if !is_token(username, MAX_TOKEN_LEN) || (addrtype != "IP4" && addrtype != "IP6") {
        return None;
    }
    Some((dec(sess_id)?, dec(sess_version)?))
}

fn parse_simulcast(v: &str) -> Result<(Vec<String>, Vec<String>), &'static str> {
    let toks: Vec<&str> = v.split_ascii_whitespace().take(5).collect();
    if toks.len() != 2 && toks.len() != 4 {
        return Err("bad simulcast");
    }
    let mut send: Option<Vec<String>> = None;
    let mut recv: Option<Vec<String>> = None;
    for pair in toks.chunks(2) {
        let (dir, list) = match pair {
            [d, l] => (*d, *l),
            _ => return Err("bad simulcast"),
        };
        let slot = match dir {
            "send" => &mut send,
            "recv" => &mut recv,
            _ => return Err("bad simulcast direction"),
        };
        if slot.is_some() {
            return Err("duplicate simulcast direction");
        }
        if list.starts_with("rid=") {
            return Err("draft simulcast syntax not supported");
        }
        let mut ids: Vec<String> = Vec::new();
        for stream in list.split(';') {
            if ids.len() >= MAX_SIMULCAST_STREAMS {
                return Err("too many simulcast streams");
            }
            let mut first = None;
            for alt in stream.split(',') {
                let id = alt.strip_prefix('~').unwrap_or(alt);
                if !is_rid_id(id) {
                    return Err("bad rid in simulcast");
                }
                first.get_or_insert(id);
            }
            let id = first.ok_or("bad simulcast")?;
            if ids.iter().any(|x| x == id) {
                return Err("duplicate rid in simulcast");
            }
            ids.push(id.to_owned());
        }
        *slot = Some(ids);
    }
    Ok((send.unwrap_or_default(), recv.unwrap_or_default()))
}

impl MediaBuilder {
    fn knows_pt(&self, pt: u8) -> bool {
        self.pts.contains(&pt)
    }

    fn attribute(&mut self, n: usize, name: &str, val: Option<&str>) -> Result<(), SdpError> {
        if self.transport.apply(n, name, val)? {
            return Ok(());
        }
        if let Some(d) = parse_direction(name) {
            if self.direction.is_some() {
                return Err(syntax(n, "duplicate direction"));
            }
            self.direction = Some(d);
            return Ok(());
        }
        let v = val.unwrap_or("").trim();
        match name {
            "mid" => {
                if !is_mid(v) {
                    return Err(syntax(n, "bad mid"));
                }
                if self.mid.is_some() {
                    return Err(syntax(n, "duplicate mid"));
                }
                self.mid = Some(v.to_owned());
            }
            "rtcp-mux" => self.rtcp_mux = true,
            "rtcp-rsize" => self.rtcp_rsize = true,
            "bundle-only" => self.bundle_only = true,
            "rtpmap" => self.rtpmap(n, v)?,
            "fmtp" => {
                let (pt, params) = v.split_once(' ').ok_or_else(|| syntax(n, "bad fmtp"))?;
                let pt: u8 = dec(pt).ok_or_else(|| syntax(n, "bad fmtp payload type"))?;
                let params = params.trim();
                if params.is_empty() {
                    return Err(syntax(n, "empty fmtp"));
                }
                if self.knows_pt(pt) {
                    if self.fmtps.iter().any(|(p, _)| *p == pt) {
                        return Err(syntax(n, "duplicate fmtp"));
                    }
                    self.fmtps.push((pt, params.to_owned()));
                }
            }
            "rtcp-fb" => {
                let mut it = v.split_ascii_whitespace();
                let pt = it.next().ok_or_else(|| syntax(n, "bad rtcp-fb"))?;
                let pt = if pt == "*" {
                    None
                } else {
                    Some(dec::<u8>(pt).ok_or_else(|| syntax(n, "bad rtcp-fb payload type"))?)
                };
                let mut value = String::new();
                for t in it {
                    if !is_token(t, 64) {
                        return Err(syntax(n, "bad rtcp-fb"));
                    }
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(t);
                }
                if value.is_empty() {
                    return Err(syntax(n, "bad rtcp-fb"));
                }
                if pt.is_none_or(|p| self.knows_pt(p)) {
                    if self.rtcp_fb.len() >= MAX_RTCP_FB {
                        return Err(too_many(n, "rtcp-fb"));
                    }
                    if !self.rtcp_fb.iter().any(|(p, s)| *p == pt && *s == value) {
                        self.rtcp_fb.push((pt, value));
                    }
                }
            }
            "extmap" => {
                let mut it = v.split_ascii_whitespace();
                let head = it.next().ok_or_else(|| syntax(n, "bad extmap"))?;
                let uri = it.next().ok_or_else(|| syntax(n, "bad extmap"))?;
                let (id, dir) = match head.split_once('/') {
                    Some((id, d)) => (
                        id,
                        Some(parse_direction(d).ok_or_else(|| syntax(n, "bad extmap direction"))?),
                    ),
                    None => (head, None),
                };
                let id: u8 = dec(id)
                    .filter(|i| *i != 0)
                    .ok_or_else(|| syntax(n, "bad extmap id"))?;
                if !is_token(uri, MAX_TOKEN_LEN) {
                    return Err(syntax(n, "bad extmap uri"));
                }
                if self.extmaps.iter().any(|e| e.id == id) {
                    return Err(syntax(n, "duplicate extmap id"));
                }
                if self.extmaps.len() >= MAX_EXTMAPS {
                    return Err(too_many(n, "extmaps"));
                }
                self.extmaps.push(Extmap {
                    id,
                    direction: dir,
                    uri: uri.to_owned(),
                });
            }
            "ssrc" => {
                let (ssrc, rest) = v.split_once(' ').ok_or_else(|| syntax(n, "bad ssrc"))?;
                let ssrc: u32 = dec(ssrc).ok_or_else(|| syntax(n, "bad ssrc"))?;
                let rest = rest.trim();
                let (attr, value) = match rest.split_once(':') {
                    Some((a, v)) => (a, Some(v)),
                    None => (rest, None),
                };
                if !is_token(attr, 64) {
                    return Err(syntax(n, "bad ssrc attribute"));
                }
                if !self.ssrcs.contains(&ssrc) {
                    if self.ssrcs.len() >= MAX_SSRCS {
                        return Err(too_many(n, "ssrcs"));
                    }
                    self.ssrcs.push(ssrc);
                }
                if attr == "cname" {
                    let cname = value.map(str::trim).unwrap_or("");
                    if !is_token(cname, MAX_TOKEN_LEN) {
                        return Err(syntax(n, "bad cname"));
                    }
                    if self.cname.is_none() {
                        self.cname = Some(cname.to_owned());
                    }
                }
            }
            "ssrc-group" => {
                let mut it = v.split_ascii_whitespace();
                let semantics = it.next().ok_or_else(|| syntax(n, "bad ssrc-group"))?;
                if !is_token(semantics, 32) {
                    return Err(syntax(n, "bad ssrc-group"));
                }
                let mut ssrcs = Vec::new();
                for s in it {
                    if ssrcs.len() >= MAX_GROUP_SSRCS {
                        return Err(too_many(n, "ssrcs in group"));
                    }
                    ssrcs.push(dec::<u32>(s).ok_or_else(|| syntax(n, "bad ssrc in group"))?);
                }
                if ssrcs.is_empty() {
                    return Err(syntax(n, "empty ssrc-group"));
                }
                if self.ssrc_groups.len() >= MAX_SSRC_GROUPS {
                    return Err(too_many(n, "ssrc groups"));
                }
                self.ssrc_groups.push(SsrcGroup {
                    semantics: semantics.to_owned(),
                    ssrcs,
                });
            }
            "msid" => {
                let mut it = v.split_ascii_whitespace();
                let stream = it.next().ok_or_else(|| syntax(n, "bad msid"))?;
                let track = it.next().unwrap_or("");
                if it.next().is_some()
                    || !is_msid_token(stream)
                    || !(track.is_empty() || is_msid_token(track))
                {
                    return Err(syntax(n, "bad msid"));
                }
                if self.msid.is_none() {
                    self.msid = Some(Msid {
                        stream_id: stream.to_owned(),
                        track_id: track.to_owned(),
                    });
                }
            }
            "rid" => {
                let mut it = v.splitn(3, ' ');
                let id = it.next().unwrap_or("");
                let dir = it.next().unwrap_or("");
                let restrictions = it.next().map(str::trim).filter(|r| !r.is_empty());
                if !is_rid_id(id) {
                    return Err(syntax(n, "bad rid"));
                }
                let direction = match dir {
                    "send" => RidDirection::Send,
                    "recv" => RidDirection::Recv,
                    _ => return Err(syntax(n, "bad rid direction")),
                };
                if self.rids.iter().any(|r| r.id == id) {
                    return Err(syntax(n, "duplicate rid"));
                }
                if self.rids.len() >= MAX_RIDS {
                    return Err(too_many(n, "rids"));
                }
                self.rids.push(Rid {
                    id: id.to_owned(),
                    direction,
                    restrictions: restrictions.map(str::to_owned),
                });
            }
            "simulcast" => {
                if self.simulcast.is_some() {
                    return Err(syntax(n, "duplicate simulcast"));
                }
                self.simulcast = Some(parse_simulcast(v).map_err(|r| syntax(n, r))?);
            }
            // Candidates are ignored: an ICE-lite server learns the remote
            // address from the connectivity checks.
            _ => {}
        }
        Ok(())
    }

    fn rtpmap(&mut self, n: usize, v: &str) -> Result<(), SdpError> {
        let (pt, enc) = v.split_once(' ').ok_or_else(|| syntax(n, "bad rtpmap"))?;
        let pt: u8 = dec(pt)
            .filter(|p| *p <= 127)
            .ok_or_else(|| syntax(n, "bad rtpmap payload type"))?;
        let mut parts = enc.trim().split('/');
        let name = parts.next().unwrap_or("");
        let clock_rate: u32 = parts
            .next()
            .and_then(dec)
            .filter(|c| *c > 0)
            .ok_or_else(|| syntax(n, "bad rtpmap clock rate"))?;
        let channels = match parts.next() {
            Some(c) => Some(
                dec::<u8>(c)
                    .filter(|c| *c > 0)
                    .ok_or_else(|| syntax(n, "bad rtpmap channels"))?,
            ),
            None => None,
        };
        if parts.next().is_some() || !is_token(name, 32) {
            return Err(syntax(n, "bad rtpmap"));
        }
        if !self.knows_pt(pt) {
            return Ok(());
        }
        if self.rtpmaps.iter().any(|r| r.pt == pt) {
            return Err(syntax(n, "duplicate rtpmap"));
        }
        self.rtpmaps.push(RtpMap {
            pt,
            name: name.to_owned(),
            clock_rate,
            channels,
        });
        Ok(())
    }

    fn finish(self, index: usize) -> Result<(MediaSection, TransportAttrs), SdpError> {
        let err = |reason| SdpError::Media { index, reason };
        let mid = self.mid.ok_or_else(|| err("missing a=mid"))?;
        let (simulcast_send, simulcast_recv) = self.simulcast.unwrap_or_default();
        for (list, want) in [
            (&simulcast_send, RidDirection::Send),
            (&simulcast_recv, RidDirection::Recv),
        ] {
            for id in list {
                if !self.rids.iter().any(|r| &r.id == id && r.direction == want) {
                    return Err(err("simulcast names an undeclared rid"));
                }
            }
        }

        let fmtp = |pt: u8| {
            self.fmtps
                .iter()
                .find(|(p, _)| *p == pt)
                .map(|(_, f)| f.clone())
        };
        let mut codecs: Vec<Codec> = Vec::new();
        for &pt in &self.pts {
            let (name, clock_rate, channels) = match self.rtpmaps.iter().find(|r| r.pt == pt) {
                Some(r) => (r.name.clone(), r.clock_rate, r.channels),
                None => match static_payload_type(pt) {
                    Some((name, rate)) => (name.to_owned(), rate, None),
                    // A dynamic pt without rtpmap cannot be used; skip it.
                    None => continue,
                },
            };
            if name.eq_ignore_ascii_case("rtx") {
                continue;
            }
            let rtcp_fb = self
                .rtcp_fb
                .iter()
                .filter(|(p, _)| p.is_none_or(|p| p == pt))
                .map(|(_, v)| v.clone())
                .collect();
            codecs.push(Codec {
                pt,
                name,
                clock_rate,
                channels,
                fmtp: fmtp(pt),
                rtcp_fb,
                rtx_pt: None,
            });
        }
        for r in self
            .rtpmaps
            .iter()
            .filter(|r| r.name.eq_ignore_ascii_case("rtx"))
        {
            let apt = fmtp(r.pt).and_then(|f| {
                f.split(';')
                    .filter_map(|kv| kv.trim().split_once('='))
                    .find(|(k, _)| *k == "apt")
                    .and_then(|(_, v)| dec::<u8>(v.trim()))
            });
            if let Some(c) = apt.and_then(|apt| codecs.iter_mut().find(|c| c.pt == apt))
                && c.rtx_pt.is_none()
            {
                c.rtx_pt = Some(r.pt);
            }
        }

        let section = MediaSection {
            kind: self.kind,
            media: self.media,
            port: self.port,
            proto: self.proto,
            formats: self.formats,
            mid,
            direction: self.direction.unwrap_or(Direction::SendRecv),
            codecs,
            extmaps: self.extmaps,
            ssrcs: self.ssrcs,
            ssrc_groups: self.ssrc_groups,
            cname: self.cname,
            msid: self.msid,
            rids: self.rids,
            simulcast_send,
            simulcast_recv,
            rtcp_mux: self.rtcp_mux,
            rtcp_rsize: self.rtcp_rsize,
            bundle_only: self.bundle_only,
            // Filled in once the transport is known.
            ice_ufrag: String::new(),
            ice_pwd: IcePwd::new(String::new()),
            fingerprint: Fingerprint {
                algorithm: String::new(),
                bytes: Vec::new(),
            },
            setup: Setup::ActPass,
        };
        Ok((section, self.transport))
    }
}

/// RFC 3551 static payload types browsers may list without `a=rtpmap`.
fn static_payload_type(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        13 => Some(("CN", 8000)),
        _ => None,
    }
}
