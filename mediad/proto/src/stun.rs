//! STUN (RFC 8489, formerly RFC 5389) as ICE uses it (RFC 8445): Binding
//! requests and their responses, with short-term credentials
//! (MESSAGE-INTEGRITY, HMAC-SHA1) and FINGERPRINT (CRC-32).
//!
//! [`StunMessage::parse`] checks the header and walks the attributes once,
//! keeping the first occurrence of each one it knows and the offsets of
//! MESSAGE-INTEGRITY and FINGERPRINT; the `write_*` functions build the
//! messages an ICE-lite agent and an ICE client need into a caller's buffer.

#![deny(clippy::indexing_slicing, clippy::panic, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::{constant_time, hmac};

use crate::{be16, be32};

/// The magic cookie of every STUN message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Longest USERNAME RFC 8489 §14.3 allows, in bytes.
pub const MAX_USERNAME_LEN: usize = 513;
/// Longest ERROR-CODE reason phrase this crate writes, in bytes.
pub const MAX_REASON_LEN: usize = 128;
/// How many unknown comprehension-required attribute types a message keeps.
pub const MAX_UNKNOWN: usize = 4;

/// The Binding method.
pub const METHOD_BINDING: u16 = 0x001;
/// Message type of a Binding request.
pub const BINDING_REQUEST: u16 = 0x0001;
/// Message type of a Binding indication.
pub const BINDING_INDICATION: u16 = 0x0011;
/// Message type of a Binding success response.
pub const BINDING_SUCCESS: u16 = 0x0101;
/// Message type of a Binding error response.
pub const BINDING_ERROR: u16 = 0x0111;

/// Attribute types.
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// MESSAGE-INTEGRITY-SHA256 (understood to exist, not verified).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING.
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Why a STUN message was refused or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// Shorter than a header, or than its length field says.
    #[error("STUN message truncated")]
    Truncated,
    /// Not STUN: top bits set or wrong magic cookie.
    #[error("not a STUN message")]
    NotStun,
    /// Length not a multiple of four, or not matching the datagram.
    #[error("bad STUN length")]
    BadLength,
    /// An attribute runs past the end of the message, has the wrong size,
    /// or follows FINGERPRINT.
    #[error("malformed STUN attribute")]
    BadAttribute,
    /// The output buffer is too small.
    #[error("buffer too small for the STUN message")]
    BufferTooSmall,
    /// A value that cannot be written (username too long, ...).
    #[error("value too large for a STUN attribute")]
    ValueTooLarge,
    /// An error code outside 300..=699.
    #[error("STUN error code out of range")]
    BadErrorCode,
}

/// The class of a STUN message (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunClass {
    /// A request.
    Request,
    /// An indication.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

/// A parsed STUN message, borrowing the datagram.
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<'a> {
    raw: &'a [u8],
    msg_type: u16,
    username: Option<&'a [u8]>,
    integrity: Option<usize>,
    fingerprint: Option<usize>,
    priority: Option<u32>,
    use_candidate: bool,
    ice_controlling: Option<u64>,
    ice_controlled: Option<u64>,
    xor_mapped: Option<SocketAddr>,
    error_code: Option<u16>,
    error_reason: Option<&'a [u8]>,
    unknown: [u16; MAX_UNKNOWN],
    unknown_len: usize,
}

impl<'a> StunMessage<'a> {
    /// Parse a datagram as one STUN message.
    ///
    /// Checks: at least a header, top two bits of the type zero, the magic
    /// cookie, a length that is a multiple of four and matches the
    /// datagram, every attribute inside the message, MESSAGE-INTEGRITY of
    /// 20 bytes, FINGERPRINT of 4 bytes and last. Attributes after
    /// MESSAGE-INTEGRITY other than FINGERPRINT are ignored (RFC 8489
    /// §14.5); for repeated attributes the first counts.
    pub fn parse(raw: &'a [u8]) -> Result<Self, StunError> {
        let msg_type = be16(raw, 0).ok_or(StunError::Truncated)?;
        let len = usize::from(be16(raw, 2).ok_or(StunError::Truncated)?);
        if raw.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        if msg_type & 0xC000 != 0 || be32(raw, 4) != Some(MAGIC_COOKIE) {
            return Err(StunError::NotStun);
        }
        if len % 4 != 0 || HEADER_LEN + len != raw.len() {
            return Err(StunError::BadLength);
        }
        let mut m = StunMessage {
            raw,
            msg_type,
            username: None,
            integrity: None,
            fingerprint: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            xor_mapped: None,
            error_code: None,
            error_reason: None,
            unknown: [0; MAX_UNKNOWN],
            unknown_len: 0,
        };
        let mut at = HEADER_LEN;
        while at < raw.len() {
            if m.fingerprint.is_some() {
                // Nothing may follow FINGERPRINT.
                return Err(StunError::BadAttribute);
            }
            let t = be16(raw, at).ok_or(StunError::BadAttribute)?;
            let l = usize::from(be16(raw, at + 2).ok_or(StunError::BadAttribute)?);
            let start = at + 4;
            let value = raw.get(start..start + l).ok_or(StunError::BadAttribute)?;
            let next = start + l.div_ceil(4) * 4;
            if next > raw.len() {
                return Err(StunError::BadAttribute);
            }
            if m.integrity.is_some() && t != attr::FINGERPRINT {
                at = next;
                continue;
            }
            match t {
                attr::USERNAME => {
                    m.username.get_or_insert(value);
                }
                attr::MESSAGE_INTEGRITY => {
                    if l != 20 {
                        return Err(StunError::BadAttribute);
                    }
                    m.integrity = Some(at);
                }
                attr::FINGERPRINT => {
                    if l != 4 {
                        return Err(StunError::BadAttribute);
                    }
                    m.fingerprint = Some(at);
                }
                attr::PRIORITY => {
                    if l != 4 {
                        return Err(StunError::BadAttribute);
                    }
                    m.priority = m.priority.or(be32(value, 0));
                }
                attr::USE_CANDIDATE => m.use_candidate = true,
                attr::ICE_CONTROLLING => {
                    if l != 8 {
                        return Err(StunError::BadAttribute);
                    }
                    m.ice_controlling = m.ice_controlling.or(be64(value));
                }
                attr::ICE_CONTROLLED => {
                    if l != 8 {
                        return Err(StunError::BadAttribute);
                    }
                    m.ice_controlled = m.ice_controlled.or(be64(value));
                }
                attr::XOR_MAPPED_ADDRESS => {
                    m.xor_mapped = m.xor_mapped.or(decode_xor_address(value, raw));
                }
                attr::ERROR_CODE => {
                    if let (None, Some(&class), Some(&number)) =
                        (m.error_code, value.get(2), value.get(3))
                    {
                        m.error_code = Some(u16::from(class & 0x7) * 100 + u16::from(number));
                        m.error_reason = value.get(4..);
                    }
                }
                attr::MAPPED_ADDRESS
                | attr::UNKNOWN_ATTRIBUTES
                | attr::MESSAGE_INTEGRITY_SHA256 => {}
                t if t < 0x8000 => {
                    // Comprehension-required and not understood: keep the
                    // first few so a server can answer 420 with them.
                    if let Some(slot) = m.unknown.get_mut(m.unknown_len) {
                        *slot = t;
                        m.unknown_len += 1;
                    }
                }
                _ => {}
            }
            at = next;
        }
        Ok(m)
    }

    /// The whole message.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The message type (method and class).
    pub fn message_type(&self) -> u16 {
        self.msg_type
    }

    /// The method (12 bits; [`METHOD_BINDING`] for Binding).
    pub fn method(&self) -> u16 {
        let t = self.msg_type;
        (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2)
    }

    /// The class.
    pub fn class(&self) -> StunClass {
        match ((self.msg_type >> 7) & 0x2) | ((self.msg_type >> 4) & 0x1) {
            0 => StunClass::Request,
            1 => StunClass::Indication,
            2 => StunClass::Success,
            _ => StunClass::Error,
        }
    }

    /// A Binding request.
    pub fn is_binding_request(&self) -> bool {
        self.msg_type == BINDING_REQUEST
    }

    /// A Binding success response.
    pub fn is_binding_success(&self) -> bool {
        self.msg_type == BINDING_SUCCESS
    }

    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> &'a [u8; 12] {
        // parse() checked the header is there.
        self.raw
            .get(8..20)
            .and_then(|s| <&[u8; 12]>::try_from(s).ok())
            .unwrap_or(&[0; 12])
    }

    /// USERNAME, if present.
    pub fn username(&self) -> Option<&'a [u8]> {
        self.username
    }

    /// USERNAME split as ICE writes it, `"<recipient ufrag>:<sender ufrag>"`
    /// (see [`split_ice_username`]).
    pub fn ice_username(&self) -> Option<(&'a [u8], &'a [u8])> {
        split_ice_username(self.username?)
    }

    /// PRIORITY, if present.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }

    /// USE-CANDIDATE is present.
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }

    /// ICE-CONTROLLING tie-breaker, if present.
    pub fn ice_controlling(&self) -> Option<u64> {
        self.ice_controlling
    }

    /// ICE-CONTROLLED tie-breaker, if present.
    pub fn ice_controlled(&self) -> Option<u64> {
        self.ice_controlled
    }

    /// XOR-MAPPED-ADDRESS, if present and well formed.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped
    }

    /// ERROR-CODE as a number (e.g. 401), if present.
    pub fn error_code(&self) -> Option<u16> {
        self.error_code
    }

    /// The reason phrase of ERROR-CODE, if present.
    pub fn error_reason(&self) -> Option<&'a [u8]> {
        self.error_reason
    }

    /// Comprehension-required attribute types (below 0x8000) this parser
    /// does not understand, in order, at most [`MAX_UNKNOWN`] of them.
    /// RFC 8489 §7.3.1 has a server answer such a request with 420.
    pub fn unknown_required(&self) -> &[u16] {
        self.unknown.get(..self.unknown_len).unwrap_or(&[])
    }

    /// Offset of the MESSAGE-INTEGRITY attribute (its header), if present.
    pub fn integrity_offset(&self) -> Option<usize> {
        self.integrity
    }

    /// Offset of the FINGERPRINT attribute (its header), if present.
    pub fn fingerprint_offset(&self) -> Option<usize> {
        self.fingerprint
    }

    /// True when FINGERPRINT is present and right.
    pub fn verify_fingerprint(&self) -> bool {
        let Some(at) = self.fingerprint else {
            return false;
        };
        let Some(expected) = be32(self.raw, at + 4) else {
            return false;
        };
        fingerprint(self.raw, at) == Some(expected)
    }

    /// True when MESSAGE-INTEGRITY is present and verifies with `key` (for
    /// ICE short-term credentials, the password of the agent the request is
    /// addressed to, as bytes). The comparison is constant-time.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity else {
            return false;
        };
        let Some(received) = self.raw.get(at + 4..at + 24) else {
            return false;
        };
        let Some(tag) = integrity(self.raw, at, key) else {
            return false;
        };
        constant_time::verify_slices_are_equal(tag.as_ref(), received).is_ok()
    }
}

fn be64(b: &[u8]) -> Option<u64> {
    let hi = be32(b, 0)?;
    let lo = be32(b, 4)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// The header's length field as if the message ended `end` bytes in.
fn adjusted_len(end: usize) -> Option<[u8; 2]> {
    u16::try_from(end.checked_sub(HEADER_LEN)?)
        .ok()
        .map(u16::to_be_bytes)
}

/// HMAC-SHA1 over `msg[..at]` with the header length set to end just after
/// a MESSAGE-INTEGRITY attribute at `at` (RFC 8489 §14.5).
fn integrity(msg: &[u8], at: usize, key: &[u8]) -> Option<hmac::Tag> {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(msg.get(0..2)?);
    ctx.update(&adjusted_len(at + 24)?);
    ctx.update(msg.get(4..at)?);
    Some(ctx.sign())
}

/// CRC-32 over `msg[..at]` with the header length set to end just after a
/// FINGERPRINT attribute at `at`, XORed as RFC 8489 §14.7 says.
fn fingerprint(msg: &[u8], at: usize) -> Option<u32> {
    let mut h = crc32fast::Hasher::new();
    h.update(msg.get(0..2)?);
    h.update(&adjusted_len(at + 8)?);
    h.update(msg.get(4..at)?);
    Some(h.finalize() ^ FINGERPRINT_XOR)
}

fn decode_xor_address(v: &[u8], msg: &[u8]) -> Option<SocketAddr> {
    let family = *v.get(1)?;
    let port = be16(v, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
    match family {
        0x01 if v.len() == 8 => {
            let a = be32(v, 4)? ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::from(a.to_be_bytes()), port))
        }
        0x02 if v.len() == 20 => {
            let mut a = [0u8; 16];
            let key = msg.get(4..20)?;
            let raw = v.get(4..20)?;
            for ((o, r), k) in a.iter_mut().zip(raw).zip(key) {
                *o = r ^ k;
            }
            Some(SocketAddr::new(IpAddr::from(a), port))
        }
        _ => None,
    }
}

/// Split an ICE USERNAME `"<recipient ufrag>:<sender ufrag>"` at its first
/// colon (RFC 8445 §7.2.2); both halves must be non-empty. The recipient
/// ufrag is the local one for a request that arrived.
pub fn split_ice_username(username: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = username.iter().position(|&b| b == b':')?;
    let (a, b) = username.split_at(colon);
    let b = b.get(1..)?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// Copy `src` into `buf` at `at`, or fail if it does not fit.
fn put(buf: &mut [u8], at: usize, src: &[u8]) -> Result<(), StunError> {
    buf.get_mut(at..at + src.len())
        .ok_or(StunError::BufferTooSmall)?
        .copy_from_slice(src);
    Ok(())
}

/// Writes a STUN message attribute by attribute into a caller's buffer,
/// keeping the header's length field up to date.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    fn new(buf: &'b mut [u8], msg_type: u16, txid: &[u8; 12]) -> Result<Self, StunError> {
        if buf.len() < HEADER_LEN {
            return Err(StunError::BufferTooSmall);
        }
        put(buf, 0, &msg_type.to_be_bytes())?;
        put(buf, 2, &[0, 0])?;
        put(buf, 4, &MAGIC_COOKIE.to_be_bytes())?;
        put(buf, 8, txid)?;
        Ok(Self {
            buf,
            at: HEADER_LEN,
        })
    }

    fn attr(&mut self, t: u16, value: &[u8]) -> Result<(), StunError> {
        let l = u16::try_from(value.len()).map_err(|_| StunError::ValueTooLarge)?;
        let padded = value.len().div_ceil(4) * 4;
        let end = self.at + 4 + padded;
        let len = adjusted_len(end).ok_or(StunError::ValueTooLarge)?;
        let out = self
            .buf
            .get_mut(self.at..end)
            .ok_or(StunError::BufferTooSmall)?;
        out.fill(0);
        put(out, 0, &t.to_be_bytes())?;
        put(out, 2, &l.to_be_bytes())?;
        put(out, 4, value)?;
        put(self.buf, 2, &len)?;
        self.at = end;
        Ok(())
    }

    fn integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        let at = self.at;
        self.attr(attr::MESSAGE_INTEGRITY, &[0; 20])?;
        let tag = integrity(self.buf, at, key).ok_or(StunError::BufferTooSmall)?;
        put(self.buf, at + 4, tag.as_ref())
    }

    fn fingerprint(mut self) -> Result<usize, StunError> {
        let at = self.at;
        self.attr(attr::FINGERPRINT, &[0; 4])?;
        let crc = fingerprint(self.buf, at).ok_or(StunError::BufferTooSmall)?;
        put(self.buf, at + 4, &crc.to_be_bytes())?;
        Ok(self.at)
    }
}

/// The value of an XOR-MAPPED-ADDRESS for `addr`; an IPv4-mapped IPv6
/// address (as a dual-stack socket reports IPv4 peers) is written as IPv4.
fn encode_xor_address(addr: SocketAddr, txid: &[u8; 12], out: &mut [u8; 20]) -> usize {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let [p0, p1] = port.to_be_bytes();
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => {
            let [a, b, c, d] = (u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes();
            let v = [0, 0x01, p0, p1, a, b, c, d];
            for (o, x) in out.iter_mut().zip(v) {
                *o = x;
            }
            8
        }
        IpAddr::V6(ip) => {
            let mut key = [0u8; 16];
            for (k, x) in key
                .iter_mut()
                .zip(MAGIC_COOKIE.to_be_bytes().iter().chain(txid))
            {
                *k = *x;
            }
            for (o, x) in out.iter_mut().zip([0, 0x02, p0, p1]) {
                *o = x;
            }
            for ((o, b), k) in out.iter_mut().skip(4).zip(ip.octets()).zip(key) {
                *o = b ^ k;
            }
            20
        }
    }
}

/// Write a Binding success response to `transaction_id` telling the
/// requester its address `mapped` (XOR-MAPPED-ADDRESS), authenticated with
/// `integrity_key` (MESSAGE-INTEGRITY; for ICE the local password), then
/// FINGERPRINT. Returns the length written.
pub fn write_binding_success(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    mapped: SocketAddr,
    integrity_key: &[u8],
) -> Result<usize, StunError> {
    let mut w = Writer::new(buf, BINDING_SUCCESS, transaction_id)?;
    let mut a = [0u8; 20];
    let n = encode_xor_address(mapped, transaction_id, &mut a);
    w.attr(attr::XOR_MAPPED_ADDRESS, a.get(..n).unwrap_or(&[]))?;
    w.integrity(integrity_key)?;
    w.fingerprint()
}

/// Write a Binding error response: ERROR-CODE (`code` in 300..=699, such
/// as 400 Bad Request, 401 Unauthenticated, 487 Role Conflict) with
/// `reason` (at most [`MAX_REASON_LEN`] bytes), MESSAGE-INTEGRITY when a
/// key is given (RFC 8489 §9.1.3 omits it for 400 and 401), FINGERPRINT.
pub fn write_binding_error(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    code: u16,
    reason: &str,
    integrity_key: Option<&[u8]>,
) -> Result<usize, StunError> {
    if !(300..=699).contains(&code) {
        return Err(StunError::BadErrorCode);
    }
    let reason = reason.as_bytes();
    if reason.len() > MAX_REASON_LEN {
        return Err(StunError::ValueTooLarge);
    }
    let mut w = Writer::new(buf, BINDING_ERROR, transaction_id)?;
    let mut v = [0u8; 4 + MAX_REASON_LEN];
    put(&mut v, 2, &[(code / 100) as u8, (code % 100) as u8])?;
    put(&mut v, 4, reason)?;
    w.attr(attr::ERROR_CODE, v.get(..4 + reason.len()).unwrap_or(&[]))?;
    if let Some(k) = integrity_key {
        w.integrity(k)?;
    }
    w.fingerprint()
}

/// Write an ICE connectivity check as the controlling agent sends it (RFC
/// 8445 §7.1.1): a Binding request with USERNAME (`"<remote ufrag>:<local
/// ufrag>"`, at most [`MAX_USERNAME_LEN`] bytes), PRIORITY,
/// ICE-CONTROLLING with `tie_breaker`, USE-CANDIDATE when asked,
/// MESSAGE-INTEGRITY keyed with the *remote* password, and FINGERPRINT.
pub fn write_binding_request(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    username: &[u8],
    priority: u32,
    tie_breaker: u64,
    use_candidate: bool,
    integrity_key: &[u8],
) -> Result<usize, StunError> {
    if username.len() > MAX_USERNAME_LEN {
        return Err(StunError::ValueTooLarge);
    }
    let mut w = Writer::new(buf, BINDING_REQUEST, transaction_id)?;
    w.attr(attr::USERNAME, username)?;
    w.attr(attr::PRIORITY, &priority.to_be_bytes())?;
    w.attr(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())?;
    if use_candidate {
        w.attr(attr::USE_CANDIDATE, &[])?;
    }
    w.integrity(integrity_key)?;
    w.fingerprint()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1: sample request.
    const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    #[test]
    fn rfc5769_sample_request() {
        let m = StunMessage::parse(&RFC5769_REQUEST).unwrap();
        assert!(m.is_binding_request());
        assert_eq!(m.username(), Some(&b"evtj:h6vY"[..]));
        assert_eq!(m.priority(), Some(0x6e0001ff));
        assert_eq!(m.ice_controlled(), Some(0x932ff9b151263b36));
        assert!(m.verify_fingerprint());
        assert!(m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBu"));
        let mut tampered = RFC5769_REQUEST;
        tampered[30] ^= 1;
        let t = StunMessage::parse(&tampered).unwrap();
        assert!(!t.verify_fingerprint());
        assert!(!t.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
    }

    const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    const RFC5769_TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 §2.2: sample IPv4 response.
    const RFC5769_RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3: sample IPv6 response.
    const RFC5769_RESPONSE_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    /// RFC 5769 §2.4: sample request with long-term authentication
    /// (USERNAME, NONCE, REALM, MESSAGE-INTEGRITY, no FINGERPRINT).
    const RFC5769_LONG_TERM: [u8; 116] = [
        0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
        0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
        0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
        0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
        0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
        0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
        0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
        0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
    ];

    #[test]
    fn rfc5769_sample_responses() {
        for (raw, addr) in [
            (&RFC5769_RESPONSE_V4[..], "192.0.2.1:32853"),
            (
                &RFC5769_RESPONSE_V6[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let m = StunMessage::parse(raw).unwrap();
            assert!(m.is_binding_success());
            assert_eq!(m.class(), StunClass::Success);
            assert_eq!(m.method(), METHOD_BINDING);
            assert_eq!(m.transaction_id(), &RFC5769_TXID);
            assert_eq!(m.xor_mapped_address(), Some(addr.parse().unwrap()));
            assert!(m.verify_fingerprint());
            assert!(m.verify_integrity(RFC5769_PASSWORD));
            assert!(!m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxB"));
            assert!(m.unknown_required().is_empty());
        }
    }

    #[test]
    fn rfc5769_long_term_request() {
        let m = StunMessage::parse(&RFC5769_LONG_TERM).unwrap();
        assert!(m.is_binding_request());
        assert_eq!(
            m.username(),
            Some("\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}".as_bytes())
        );
        // Long-term key: MD5("<username>:example.org:TheMatrIX"), computed
        // once with md5sum (this crate does not do long-term credentials).
        let key = [
            0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda,
            0xb2, 0xa9,
        ];
        assert!(m.verify_integrity(&key));
        assert!(!m.verify_integrity(b"TheMatrIX"));
        assert!(!m.verify_fingerprint());
        assert_eq!(m.fingerprint_offset(), None);
        assert_eq!(m.integrity_offset(), Some(RFC5769_LONG_TERM.len() - 24));
        // NONCE and REALM are comprehension-required and not understood.
        assert_eq!(m.unknown_required(), &[0x0015, 0x0014]);
    }

    /// What Chrome sends as the controlling agent: short ufrags, a
    /// 24-character password, nomination, GOOG-NETWORK-INFO (0xC057).
    #[test]
    fn chrome_like_binding_request() {
        let local_pwd = b"x3ZlqIYMqJkTJ2P7kVh9rGoF";
        let txid = [
            0x4a, 0x2b, 0x11, 0, 0x9c, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ];
        let mut buf = [0u8; 200];
        let mut w = Writer::new(&mut buf, BINDING_REQUEST, &txid).unwrap();
        w.attr(attr::USERNAME, b"Sx1a:q7Zk").unwrap();
        w.attr(0xC057, &[0x00, 0x01, 0x00, 0x0a]).unwrap();
        w.attr(
            attr::ICE_CONTROLLING,
            &0x1c2d_3e4f_5a6b_7c8du64.to_be_bytes(),
        )
        .unwrap();
        w.attr(attr::USE_CANDIDATE, &[]).unwrap();
        w.attr(attr::PRIORITY, &1_853_824_767u32.to_be_bytes())
            .unwrap();
        w.integrity(local_pwd).unwrap();
        let n = w.fingerprint().unwrap();
        assert_eq!(n, 20 + 16 + 8 + 12 + 4 + 8 + 24 + 8);
        let raw = &buf[..n];
        let m = StunMessage::parse(raw).unwrap();
        assert_eq!(m.class(), StunClass::Request);
        assert_eq!(m.ice_username(), Some((&b"Sx1a"[..], &b"q7Zk"[..])));
        assert_eq!(m.priority(), Some(1_853_824_767));
        assert_eq!(m.ice_controlling(), Some(0x1c2d_3e4f_5a6b_7c8d));
        assert!(m.use_candidate());
        assert!(m.unknown_required().is_empty());
        assert!(m.verify_integrity(local_pwd));
        assert!(!m.verify_integrity(b"x3ZlqIYMqJkTJ2P7kVh9rGoG"));
        assert!(!m.verify_integrity(b""));
        assert!(m.verify_fingerprint());
        // Any byte changed before FINGERPRINT breaks both checks (header
        // bytes may make it unparseable instead).
        for i in 0..n - 8 {
            let mut t = raw.to_vec();
            t[i] ^= 0x40;
            if let Ok(m) = StunMessage::parse(&t) {
                assert!(!m.verify_fingerprint(), "byte {i}");
                if i < n - 32 && i != 2 && i != 3 {
                    assert!(!m.verify_integrity(local_pwd), "byte {i}");
                }
            }
        }
        // The writer gives the same message without GOOG-NETWORK-INFO.
        let n = write_binding_request(
            &mut buf,
            &txid,
            b"Sx1a:q7Zk",
            1_853_824_767,
            0x1c2d_3e4f_5a6b_7c8d,
            true,
            local_pwd,
        )
        .unwrap();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert!(m.verify_integrity(local_pwd) && m.verify_fingerprint());
    }

    #[test]
    fn unknown_and_repeated_attributes() {
        let mut buf = [0u8; 200];
        let mut w = Writer::new(&mut buf, BINDING_REQUEST, &[3; 12]).unwrap();
        w.attr(attr::USERNAME, b"a:b").unwrap();
        w.attr(attr::USERNAME, b"c:d").unwrap();
        for t in [0x0030u16, 0x0031, 0x0032, 0x0033, 0x0034, 0x7fff] {
            w.attr(t, &[1, 2, 3]).unwrap();
        }
        w.attr(0x8030, &[1]).unwrap();
        w.integrity(b"k").unwrap();
        // Ignored after MESSAGE-INTEGRITY.
        w.attr(attr::PRIORITY, &[0, 0, 0, 1]).unwrap();
        let n = w.fingerprint().unwrap();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert_eq!(m.username(), Some(&b"a:b"[..]));
        assert_eq!(m.unknown_required(), &[0x0030, 0x0031, 0x0032, 0x0033]);
        assert_eq!(m.priority(), None);
        assert!(m.verify_integrity(b"k"));
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn class_and_method() {
        let mut buf = [0u8; 20];
        for (t, class) in [
            (0x0001, StunClass::Request),
            (0x0011, StunClass::Indication),
            (0x0101, StunClass::Success),
            (0x0111, StunClass::Error),
            (0x0113, StunClass::Error),
        ] {
            Writer::new(&mut buf, t, &[0; 12]).unwrap();
            let m = StunMessage::parse(&buf).unwrap();
            assert_eq!(m.class(), class);
        }
        assert_eq!(StunMessage::parse(&buf).unwrap().method(), 0x003);
        Writer::new(&mut buf, 0x3eef, &[0; 12]).unwrap();
        assert_eq!(StunMessage::parse(&buf).unwrap().method(), 0xfff);
    }

    #[test]
    fn error_responses() {
        let mut buf = [0u8; 256];
        for (code, key) in [(400, None), (401, None), (487, Some(&b"pw"[..]))] {
            let n = write_binding_error(&mut buf, &[5; 12], code, "Role Conflict", key).unwrap();
            let m = StunMessage::parse(&buf[..n]).unwrap();
            assert_eq!(m.class(), StunClass::Error);
            assert_eq!(m.error_code(), Some(code));
            assert_eq!(m.error_reason(), Some(&b"Role Conflict"[..]));
            assert_eq!(m.verify_integrity(b"pw"), key.is_some());
            assert!(m.verify_fingerprint());
        }
        assert_eq!(
            write_binding_error(&mut buf, &[5; 12], 200, "", None).unwrap_err(),
            StunError::BadErrorCode
        );
        assert_eq!(
            write_binding_error(&mut buf, &[5; 12], 400, &"x".repeat(129), None).unwrap_err(),
            StunError::ValueTooLarge
        );
    }

    #[test]
    fn ipv4_mapped_peer_is_answered_as_ipv4() {
        let mut buf = [0u8; 128];
        let mapped: SocketAddr = "[::ffff:198.51.100.7]:5000".parse().unwrap();
        let n = write_binding_success(&mut buf, &[1; 12], mapped, b"pw").unwrap();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert_eq!(
            m.xor_mapped_address(),
            Some("198.51.100.7:5000".parse().unwrap())
        );
    }

    #[test]
    fn request_and_response_round_trip() {
        let mut buf = [0u8; 256];
        let txid = [9u8; 12];
        let n = write_binding_request(&mut buf, &txid, b"srv:cli", 7, 42, true, b"server-password")
            .unwrap();
        let m = StunMessage::parse(&buf[..n]).unwrap();
        assert!(m.is_binding_request());
        assert!(m.use_candidate());
        assert_eq!(m.ice_controlling(), Some(42));
        assert_eq!(
            split_ice_username(m.username().unwrap()),
            Some((&b"srv"[..], &b"cli"[..]))
        );
        assert!(m.verify_integrity(b"server-password"));
        assert!(m.verify_fingerprint());
        assert_eq!(m.transaction_id(), &txid);

        for addr in [
            "192.0.2.1:32853",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let n = write_binding_success(&mut buf, &txid, addr, b"server-password").unwrap();
            let r = StunMessage::parse(&buf[..n]).unwrap();
            assert!(r.is_binding_success());
            assert_eq!(r.xor_mapped_address(), Some(addr));
            assert!(r.verify_integrity(b"server-password"));
            assert!(r.verify_fingerprint());
        }
        let n = write_binding_error(&mut buf, &txid, 401, "Unauthorized", None).unwrap();
        let e = StunMessage::parse(&buf[..n]).unwrap();
        assert_eq!(e.error_code(), Some(401));
        assert!(e.verify_fingerprint());
    }

    #[test]
    fn malformed() {
        assert_eq!(
            StunMessage::parse(&[0, 1, 0]).unwrap_err(),
            StunError::Truncated
        );
        let mut m = RFC5769_REQUEST;
        m[4] = 0;
        assert_eq!(StunMessage::parse(&m).unwrap_err(), StunError::NotStun);
        assert_eq!(
            StunMessage::parse(&RFC5769_REQUEST[..100]).unwrap_err(),
            StunError::BadLength
        );
        let mut m = RFC5769_REQUEST;
        m[23] = 0xff; // first attribute's length beyond the message
        assert_eq!(StunMessage::parse(&m).unwrap_err(), StunError::BadAttribute);
        assert!(split_ice_username(b"nocolon").is_none());
        assert!(split_ice_username(b":x").is_none());
        let mut small = [0u8; 30];
        assert_eq!(
            write_binding_success(&mut small, &[0; 12], "1.2.3.4:5".parse().unwrap(), b"k")
                .unwrap_err(),
            StunError::BufferTooSmall
        );
    }
}
