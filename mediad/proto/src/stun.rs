//! STUN (RFC 8489) as ICE uses it (RFC 8445): Binding requests and their
//! responses, with short-term credentials (MESSAGE-INTEGRITY, HMAC-SHA1)
//! and FINGERPRINT (CRC-32).

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::{constant_time, hmac};

use crate::{be16, be32};

/// The magic cookie of every STUN message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Message type of a Binding request.
pub const BINDING_REQUEST: u16 = 0x0001;
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
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
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
    /// An attribute runs past the end of the message.
    #[error("malformed STUN attribute")]
    BadAttribute,
    /// The output buffer is too small.
    #[error("buffer too small for the STUN message")]
    BufferTooSmall,
    /// A value that cannot be written (username too long, ...).
    #[error("value too large for a STUN attribute")]
    ValueTooLarge,
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
}

impl<'a> StunMessage<'a> {
    /// Parse a datagram as one STUN message.
    pub fn parse(raw: &'a [u8]) -> Result<Self, StunError> {
        if raw.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        let msg_type = be16(raw, 0).ok_or(StunError::Truncated)?;
        if msg_type & 0xC000 != 0 || be32(raw, 4) != Some(MAGIC_COOKIE) {
            return Err(StunError::NotStun);
        }
        let len = usize::from(be16(raw, 2).ok_or(StunError::Truncated)?);
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
        };
        let mut at = HEADER_LEN;
        while at < raw.len() {
            let t = be16(raw, at).ok_or(StunError::BadAttribute)?;
            let l = usize::from(be16(raw, at + 2).ok_or(StunError::BadAttribute)?);
            let start = at + 4;
            let value = raw.get(start..start + l).ok_or(StunError::BadAttribute)?;
            let next = start + l.div_ceil(4) * 4;
            if next > raw.len() {
                return Err(StunError::BadAttribute);
            }
            if m.fingerprint.is_some() {
                // Nothing may follow FINGERPRINT.
                return Err(StunError::BadAttribute);
            }
            if m.integrity.is_some() && t != attr::FINGERPRINT {
                // Attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5).
                at = next;
                continue;
            }
            match t {
                attr::USERNAME => m.username = Some(value),
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
                attr::PRIORITY => m.priority = be32(value, 0),
                attr::USE_CANDIDATE => m.use_candidate = true,
                attr::ICE_CONTROLLING => m.ice_controlling = be64(value),
                attr::ICE_CONTROLLED => m.ice_controlled = be64(value),
                attr::XOR_MAPPED_ADDRESS => m.xor_mapped = decode_xor_address(value, raw),
                attr::ERROR_CODE => {
                    if let (Some(&class), Some(&number)) = (value.get(2), value.get(3)) {
                        m.error_code = Some(u16::from(class & 0x7) * 100 + u16::from(number));
                    }
                }
                _ => {}
            }
            at = next;
        }
        Ok(m)
    }

    /// The message type (method and class).
    pub fn message_type(&self) -> u16 {
        self.msg_type
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

    /// True when FINGERPRINT is present and right.
    pub fn verify_fingerprint(&self) -> bool {
        let Some(at) = self.fingerprint else {
            return false;
        };
        let Some(expected) = be32(self.raw, at + 4) else {
            return false;
        };
        fingerprint(self.raw, at) == expected
    }

    /// True when MESSAGE-INTEGRITY is present and verifies with `key` (for
    /// ICE, the password of the agent the request is addressed to).
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity else {
            return false;
        };
        let Some(received) = self.raw.get(at + 4..at + 24) else {
            return false;
        };
        let tag = integrity(self.raw, at, key);
        constant_time::verify_slices_are_equal(tag.as_ref(), received).is_ok()
    }
}

fn be64(b: &[u8]) -> Option<u64> {
    let hi = be32(b, 0)?;
    let lo = be32(b, 4)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// HMAC-SHA1 over `msg[..at]` with the header length set to end just after
/// a MESSAGE-INTEGRITY attribute at `at`.
fn integrity(msg: &[u8], at: usize, key: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    let len = (at + 24 - HEADER_LEN) as u16;
    ctx.update(msg.get(0..2).unwrap_or(&[]));
    ctx.update(&len.to_be_bytes());
    ctx.update(msg.get(4..at).unwrap_or(&[]));
    ctx.sign()
}

/// CRC-32 over `msg[..at]` with the header length set to end just after a
/// FINGERPRINT attribute at `at`, XORed as RFC 8489 §14.7 says.
fn fingerprint(msg: &[u8], at: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let len = (at + 8 - HEADER_LEN) as u16;
    h.update(msg.get(0..2).unwrap_or(&[]));
    h.update(&len.to_be_bytes());
    h.update(msg.get(4..at).unwrap_or(&[]));
    h.finalize() ^ FINGERPRINT_XOR
}

fn decode_xor_address(v: &[u8], msg: &[u8]) -> Option<SocketAddr> {
    let family = *v.get(1)?;
    let port = be16(v, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
    match family {
        0x01 => {
            let a = be32(v, 4)? ^ MAGIC_COOKIE;
            Some(SocketAddr::new(IpAddr::from(a.to_be_bytes()), port))
        }
        0x02 => {
            let mut a = [0u8; 16];
            let key = msg.get(4..20)?;
            let raw = v.get(4..20)?;
            for i in 0..16 {
                a[i] = raw[i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::from(a), port))
        }
        _ => None,
    }
}

/// Split an ICE USERNAME `"<recipient ufrag>:<sender ufrag>"`.
pub fn split_ice_username(username: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = username.iter().position(|&b| b == b':')?;
    let (a, b) = username.split_at(colon);
    let b = b.get(1..)?;
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// Writes a STUN message attribute by attribute into a caller's buffer.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    fn new(buf: &'b mut [u8], msg_type: u16, txid: &[u8; 12]) -> Result<Self, StunError> {
        let head = buf.get_mut(..HEADER_LEN).ok_or(StunError::BufferTooSmall)?;
        head[0..2].copy_from_slice(&msg_type.to_be_bytes());
        head[2..4].copy_from_slice(&[0, 0]);
        head[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        head[8..20].copy_from_slice(txid);
        Ok(Self {
            buf,
            at: HEADER_LEN,
        })
    }

    fn attr(&mut self, t: u16, value: &[u8]) -> Result<(), StunError> {
        let l = value.len();
        if l > 0xffff {
            return Err(StunError::ValueTooLarge);
        }
        let padded = l.div_ceil(4) * 4;
        let out = self
            .buf
            .get_mut(self.at..self.at + 4 + padded)
            .ok_or(StunError::BufferTooSmall)?;
        out[0..2].copy_from_slice(&t.to_be_bytes());
        out[2..4].copy_from_slice(&(l as u16).to_be_bytes());
        out[4..4 + l].copy_from_slice(value);
        out[4 + l..].fill(0);
        self.at += 4 + padded;
        self.set_len(self.at);
        Ok(())
    }

    fn set_len(&mut self, end: usize) {
        let len = ((end - HEADER_LEN) as u16).to_be_bytes();
        self.buf[2..4].copy_from_slice(&len);
    }

    fn integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        let at = self.at;
        self.attr(attr::MESSAGE_INTEGRITY, &[0; 20])?;
        let tag = integrity(self.buf, at, key);
        self.buf[at + 4..at + 24].copy_from_slice(tag.as_ref());
        Ok(())
    }

    fn fingerprint(mut self) -> Result<usize, StunError> {
        let at = self.at;
        self.attr(attr::FINGERPRINT, &[0; 4])?;
        let crc = fingerprint(self.buf, at);
        self.buf[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        Ok(self.at)
    }
}

fn encode_xor_address(addr: SocketAddr, txid: &[u8; 12], out: &mut [u8; 20]) -> usize {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    out[0] = 0;
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 0x01;
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            out[4..8].copy_from_slice(&x.to_be_bytes());
            8
        }
        IpAddr::V6(ip) => {
            out[1] = 0x02;
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(txid);
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ key[i];
            }
            20
        }
    }
}

/// Write a Binding success response to `transaction_id` telling the
/// requester its address `mapped`, authenticated with `integrity_key`.
pub fn write_binding_success(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    mapped: SocketAddr,
    integrity_key: &[u8],
) -> Result<usize, StunError> {
    let mut w = Writer::new(buf, BINDING_SUCCESS, transaction_id)?;
    let mut a = [0u8; 20];
    let n = encode_xor_address(mapped, transaction_id, &mut a);
    w.attr(attr::XOR_MAPPED_ADDRESS, &a[..n])?;
    w.integrity(integrity_key)?;
    w.fingerprint()
}

/// Write a Binding error response (`code` such as 400, 401 or 487).
pub fn write_binding_error(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    code: u16,
    reason: &str,
    integrity_key: Option<&[u8]>,
) -> Result<usize, StunError> {
    let mut w = Writer::new(buf, BINDING_ERROR, transaction_id)?;
    let reason = reason.as_bytes();
    if reason.len() > 128 {
        return Err(StunError::ValueTooLarge);
    }
    let mut v = [0u8; 4 + 128];
    v[2] = ((code / 100) & 0x7) as u8;
    v[3] = (code % 100) as u8;
    v[4..4 + reason.len()].copy_from_slice(reason);
    w.attr(attr::ERROR_CODE, &v[..4 + reason.len()])?;
    if let Some(k) = integrity_key {
        w.integrity(k)?;
    }
    w.fingerprint()
}

/// Write an ICE connectivity check: a Binding request from the controlling
/// agent, with USERNAME, PRIORITY, ICE-CONTROLLING, optionally
/// USE-CANDIDATE, MESSAGE-INTEGRITY (keyed with the *remote* password) and
/// FINGERPRINT.
pub fn write_binding_request(
    buf: &mut [u8],
    transaction_id: &[u8; 12],
    username: &[u8],
    priority: u32,
    tie_breaker: u64,
    use_candidate: bool,
    integrity_key: &[u8],
) -> Result<usize, StunError> {
    if username.len() > 513 {
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
