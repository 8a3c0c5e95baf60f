//! SRTP and SRTCP for mediad: in place, sans-IO, no allocation per packet.
//!
//! # Profiles
//! - [`SrtpProfile::AeadAes256Gcm`] — `SRTP_AEAD_AES_256_GCM` (RFC 7714, 0x0008): what our
//!   DTLS stack selects whenever the browser offers it (Chrome does).
//! - [`SrtpProfile::AeadAes128Gcm`] — `SRTP_AEAD_AES_128_GCM` (RFC 7714, 0x0007).
//! - [`SrtpProfile::Aes128CmHmacSha1_80`] — `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 3711, 0x0001),
//!   the one every browser must offer.
//!
//! | profile | master key | master salt | keying material | RTP / RTCP overhead |
//! |---|---|---|---|---|
//! | `AeadAes256Gcm` | 32 | 12 | 88 | 16 / 20 |
//! | `AeadAes128Gcm` | 16 | 12 | 56 | 16 / 20 |
//! | `Aes128CmHmacSha1_80` | 16 | 14 | 60 | 10 / 14 |
//!
//! Session keys come from the RFC 3711 §4.3 KDF with key derivation rate 0, once per
//! context; its PRF is AES-CM under the master key, AES-256-CM for the 256-bit profile
//! (RFC 6188 §3, RFC 7714 §11). Session keys are as long as the master key. For AES-GCM
//! the 96-bit master salt is padded with two zero octets to the 112 bits the KDF takes
//! (what libsrtp does for both GCM key sizes, hence what browsers expect).
//!
//! # Driving contract
//! A context holds the keys of **one direction**: [`contexts_from_keying_material`] returns
//! the inbound context (unprotects what the peer sends) and the outbound one (protects what
//! we send). Nothing here does IO or reads a clock; each call takes a caller-owned buffer and
//! works in place:
//! - [`SrtpContext::unprotect_rtp`] / [`SrtpContext::unprotect_rtcp`] take the whole received
//!   datagram, check it, decrypt it in place and return the length of the plain packet at the
//!   start of the buffer.
//! - [`SrtpContext::protect_rtp`] / [`SrtpContext::protect_rtcp`] take a buffer whose first
//!   `len` bytes are the plain packet and which has room for [`SrtpProfile::rtp_overhead`] /
//!   [`SrtpProfile::rtcp_overhead`] more bytes; they return the protected length.
//! - On any error the packet must be dropped; the buffer content is then unspecified (the
//!   context's state is unchanged).
//!
//! # State and security rules
//! - Per-SSRC state (ROC and highest sequence number, a 128-packet replay window, SRTCP
//!   index and window, the outbound SRTCP counter) lives in a table of at most
//!   [`MAX_SSRCS`] entries, sorted (binary search); room for a few is reserved at creation
//!   and grows only when a new SSRC is first seen, never per packet. A new SSRC beyond that is
//!   [`SrtpError::TooManySsrcs`]; [`SrtpContext::remove_ssrc`] frees a slot.
//! - Inbound state for an SSRC is created or changed **only after the packet authenticated**:
//!   forged packets cannot move the ROC, fill the table or poison the replay window.
//! - The ROC is estimated as in RFC 3711 Appendix A in both directions: inbound from the
//!   highest authenticated index, outbound from the highest index sent, so the outbound ROC
//!   increments when the sequence number wraps 65535 → 0 and a late (re)send of a pre-wrap
//!   packet still uses the old ROC. A new inbound SSRC starts at ROC 0 (RFC 3711 §3.3.1).
//! - Outbound SRTCP indices start at 0 and increment per packet (RFC 3711 §3.3.2); packets
//!   are always sent encrypted (E = 1). Both E = 1 and E = 0 are accepted inbound.
//! - The caller must never protect two *different* payloads under the same SSRC and
//!   sequence number within one ROC (retransmitting the same bytes is fine): with AES-GCM
//!   that would reuse a nonce.
//! - MKI is not supported (WebRTC does not use it).
//!
//! # Crypto backend
//! `aws-lc-rs`: AES-128-GCM and AES-256-GCM through `aead::LessSafeKey` (in place, separate
//! tag), AES-128/256-CTR (SRTP encryption and the KDF) through `cipher::EncryptingKey::less_safe_encrypt` with an IV we build (it
//! maps to AWS-LC's `AES_ctr128_encrypt` and allocates nothing), HMAC-SHA1 through
//! `hmac::Context` cloned from a pre-keyed `hmac::Key` (AWS-LC's `HMAC_CTX` is a fixed-size
//! struct copied by value). `tests/no_alloc.rs` checks with a counting global allocator
//! that the packet path allocates nothing.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::expect_used)]

mod crypto;
mod header;
mod replay;
mod streams;

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests may index
mod vectors;

use crypto::{
    AES_128_KEY_LEN, AES_256_KEY_LEN, CM_AUTH_KEY_LEN, CM_SALT_LEN, CM_TAG_LEN, CmTransform,
    GCM_SALT_LEN, GCM_TAG_LEN, GcmTransform, Label, Transform,
};
use header::RTCP_HEADER_LEN;
use replay::{GuessError, ReplayWindow, guess_rtp_index};
pub use streams::MAX_SSRCS;
use streams::StreamTable;

/// Length of the E-flag + SRTCP index word.
const SRTCP_INDEX_LEN: usize = 4;
/// Highest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;
const E_FLAG: u32 = 0x8000_0000;

/// An SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (0x0001): AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM` (0x0007): AES-128-GCM, 128-bit tag.
    AeadAes128Gcm,
    /// `SRTP_AEAD_AES_256_GCM` (0x0008): AES-256-GCM, 128-bit tag.
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Master key length in bytes, also the session encryption key length: 16 (AES-128
    /// profiles) or 32 (`AeadAes256Gcm`).
    pub const fn master_key_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 | Self::AeadAes128Gcm => AES_128_KEY_LEN,
            Self::AeadAes256Gcm => AES_256_KEY_LEN,
        }
    }

    /// Master salt length in bytes: 14 (AES-CM) or 12 (AES-GCM).
    pub const fn master_salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => CM_SALT_LEN,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => GCM_SALT_LEN,
        }
    }

    /// Bytes SRTP adds to an RTP packet: the tag, 10 or 16.
    pub const fn rtp_overhead(self) -> usize {
        self.tag_len()
    }

    /// Bytes SRTCP adds to an RTCP packet: E + index (4) and the tag, 14 or 20.
    pub const fn rtcp_overhead(self) -> usize {
        SRTCP_INDEX_LEN + self.tag_len()
    }

    /// Length of the keying material DTLS-SRTP must export for this profile (RFC 5764 §4.2).
    pub const fn keying_material_len(self) -> usize {
        2 * (self.master_key_len() + self.master_salt_len())
    }

    const fn tag_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => CM_TAG_LEN,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }
}

/// Why a packet could not be protected or unprotected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The authentication tag did not verify (forged, corrupted, or wrong keys/ROC).
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// Already received, or older than the replay window.
    #[error("SRTP packet replayed or too old")]
    Replayed,
    /// Shorter than a header plus the SRTP/SRTCP trailer.
    #[error("packet too short")]
    TooShort,
    /// The RTP/RTCP header is not valid (version, CSRC count or extension length).
    #[error("malformed RTP/RTCP header")]
    Malformed,
    /// A new SSRC would exceed the per-context limit.
    #[error("too many SSRCs in one SRTP context")]
    TooManySsrcs,
    /// The buffer has no room for the tag (or `len` exceeds the buffer).
    #[error("buffer too small for the protected packet")]
    BufferTooSmall,
    /// Master key, salt or keying material of the wrong length.
    #[error("wrong key, salt or keying material length")]
    BadKeyLength,
    /// The packet index space is exhausted (ROC or SRTCP index would wrap): rekey.
    #[error("SRTP/SRTCP index exhausted, rekey needed")]
    IndexExhausted,
    /// The outbound sequence number would place the packet before index 0.
    #[error("sequence number before the start of the outbound stream")]
    BeforeStart,
    /// The crypto backend reported an internal failure.
    #[error("crypto backend failure")]
    Crypto,
}

/// Split DTLS-SRTP exported keying material (RFC 5764 §4.2: client key, server key, client
/// salt, server salt).
///
/// Returns `(inbound, outbound)`: the inbound context decrypts what the peer sends, the
/// outbound context encrypts what we send.
pub fn contexts_from_keying_material(
    profile: SrtpProfile,
    km: &[u8],
    we_are_dtls_client: bool,
) -> Result<(SrtpContext, SrtpContext), SrtpError> {
    if km.len() != profile.keying_material_len() {
        return Err(SrtpError::BadKeyLength);
    }
    let (keys, salts) = km.split_at(2 * profile.master_key_len());
    let (client_key, server_key) = keys.split_at(profile.master_key_len());
    let (client_salt, server_salt) = salts.split_at(profile.master_salt_len());
    let client = SrtpContext::new(profile, client_key, client_salt)?;
    let server = SrtpContext::new(profile, server_key, server_salt)?;
    Ok(if we_are_dtls_client {
        (server, client)
    } else {
        (client, server)
    })
}

/// SRTP/SRTCP state for one direction of one DTLS-SRTP association: session keys plus
/// per-SSRC state. See the crate documentation for the contract.
#[derive(Debug)]
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Transform,
    rtcp: Transform,
    streams: StreamTable,
}

impl SrtpContext {
    /// Derive the SRTP and SRTCP session keys from a master key and salt.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != profile.master_key_len()
            || master_salt.len() != profile.master_salt_len()
        {
            return Err(SrtpError::BadKeyLength);
        }
        let transform = |enc: Label, auth: Label, salt: Label| -> Result<Transform, SrtpError> {
            // The session encryption key is as long as the master key (16 or 32 bytes;
            // RFC 6188 for AES-256, RFC 7714 §11 for GCM).
            let mut k = [0u8; AES_256_KEY_LEN];
            let k = k
                .get_mut(..profile.master_key_len())
                .ok_or(SrtpError::BadKeyLength)?;
            crypto::derive(master_key, master_salt, enc, k)?;
            Ok(match profile {
                SrtpProfile::Aes128CmHmacSha1_80 => {
                    let mut a = [0u8; CM_AUTH_KEY_LEN];
                    let mut s = [0u8; CM_SALT_LEN];
                    crypto::derive(master_key, master_salt, auth, &mut a)?;
                    crypto::derive(master_key, master_salt, salt, &mut s)?;
                    Transform::Cm(Box::new(CmTransform::new(k, &s, &a)?))
                }
                SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => {
                    let mut s = [0u8; GCM_SALT_LEN];
                    crypto::derive(master_key, master_salt, salt, &mut s)?;
                    Transform::Gcm(GcmTransform::new(k, &s)?)
                }
            })
        };
        Ok(Self {
            profile,
            rtp: transform(Label::RtpEncryption, Label::RtpAuth, Label::RtpSalt)?,
            rtcp: transform(Label::RtcpEncryption, Label::RtcpAuth, Label::RtcpSalt)?,
            streams: StreamTable::new(),
        })
    }

    /// The profile this context was made for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Number of SSRCs with state in this context.
    pub fn ssrc_count(&self) -> usize {
        self.streams.len()
    }

    /// Forget all state of `ssrc` (ROC, replay windows, SRTCP counter). Returns whether it
    /// was known. A later packet of that SSRC starts a fresh stream at ROC 0.
    pub fn remove_ssrc(&mut self, ssrc: u32) -> bool {
        self.streams.remove(ssrc)
    }

    /// Verify and decrypt the SRTP packet `pkt` in place. Returns the length of the plain
    /// RTP packet (header + payload) now at `pkt[..n]`.
    pub fn unprotect_rtp(&mut self, pkt: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.tag_len();
        let body_len = pkt.len().checked_sub(tag_len).ok_or(SrtpError::TooShort)?;
        let (body, tag) = pkt.split_at_mut(body_len);
        let hdr = header::parse_rtp(body)?;

        let slot = self.streams.find(hdr.ssrc);
        let window = self.streams.get(slot).and_then(|s| s.rtp_rx);
        let index = match window {
            Some(w) => {
                let index = guess_rtp_index(w.highest(), hdr.seq).map_err(|e| match e {
                    GuessError::BeforeStart => SrtpError::Replayed,
                    GuessError::Exhausted => SrtpError::IndexExhausted,
                })?;
                if !w.is_fresh(index) {
                    return Err(SrtpError::Replayed);
                }
                index
            }
            None => {
                if slot.is_none() && self.streams.is_full() {
                    return Err(SrtpError::TooManySsrcs);
                }
                u64::from(hdr.seq)
            }
        };

        match &self.rtp {
            Transform::Cm(t) => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                t.verify(body, &roc, tag)?;
                let payload = body.get_mut(hdr.len..).ok_or(SrtpError::Malformed)?;
                t.xor(hdr.ssrc, index, payload)?;
            }
            Transform::Gcm(t) => {
                let (aad, payload) = body.split_at_mut(hdr.len);
                t.open(t.rtp_nonce(hdr.ssrc, index), aad, tag, payload)?;
            }
        }

        // Authenticated: now, and only now, create or advance the state.
        let state = self.streams.get_or_insert(hdr.ssrc)?;
        match &mut state.rtp_rx {
            Some(w) => w.accept(index),
            None => state.rtp_rx = Some(ReplayWindow::starting_at(index)),
        }
        Ok(body_len)
    }

    /// Encrypt and authenticate the RTP packet `buf[..len]` in place. `buf` must have room
    /// for [`SrtpProfile::rtp_overhead`] more bytes. Returns the SRTP packet length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.tag_len();
        let out_len = len.checked_add(tag_len).ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;
        let (body, tag) = out.split_at_mut(len);
        let hdr = header::parse_rtp(body)?;

        let state = self.streams.get_or_insert(hdr.ssrc)?;
        let index = match state.rtp_tx {
            Some(highest) => guess_rtp_index(highest, hdr.seq).map_err(|e| match e {
                GuessError::BeforeStart => SrtpError::BeforeStart,
                GuessError::Exhausted => SrtpError::IndexExhausted,
            })?,
            None => u64::from(hdr.seq),
        };

        match &self.rtp {
            Transform::Cm(t) => {
                let payload = body.get_mut(hdr.len..).ok_or(SrtpError::Malformed)?;
                t.xor(hdr.ssrc, index, payload)?;
                let roc = ((index >> 16) as u32).to_be_bytes();
                tag.copy_from_slice(&t.tag(body, &roc)?);
            }
            Transform::Gcm(t) => {
                let (aad, payload) = body.split_at_mut(hdr.len);
                tag.copy_from_slice(&t.seal(t.rtp_nonce(hdr.ssrc, index), aad, payload)?);
            }
        }

        state.rtp_tx = Some(state.rtp_tx.map_or(index, |h| h.max(index)));
        Ok(out_len)
    }

    /// Verify and (if E = 1) decrypt the SRTCP packet `pkt` in place. Returns the length of
    /// the plain (compound) RTCP packet now at `pkt[..n]`.
    pub fn unprotect_rtcp(&mut self, pkt: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let plain_len = pkt
            .len()
            .checked_sub(overhead)
            .filter(|&n| n >= RTCP_HEADER_LEN)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = header::parse_rtcp(pkt)?;

        // Layout: CM  = RTCP | E+index | tag;   GCM = RTCP | tag | E+index.
        let index_at = match self.profile {
            SrtpProfile::Aes128CmHmacSha1_80 => plain_len,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => plain_len + GCM_TAG_LEN,
        };
        let e_index = read_u32(pkt, index_at)?;
        let encrypted = e_index & E_FLAG != 0;
        let index = e_index & MAX_SRTCP_INDEX;

        let slot = self.streams.find(ssrc);
        match self.streams.get(slot).and_then(|s| s.rtcp_rx) {
            Some(w) if !w.is_fresh(u64::from(index)) => return Err(SrtpError::Replayed),
            Some(_) => {}
            None if slot.is_none() && self.streams.is_full() => {
                return Err(SrtpError::TooManySsrcs);
            }
            None => {}
        }

        match &self.rtcp {
            Transform::Cm(t) => {
                let (authenticated, tag) = pkt.split_at_mut(plain_len + SRTCP_INDEX_LEN);
                t.verify(authenticated, &[], tag)?;
                if encrypted {
                    let payload = authenticated
                        .get_mut(RTCP_HEADER_LEN..plain_len)
                        .ok_or(SrtpError::TooShort)?;
                    t.xor(ssrc, u64::from(index), payload)?;
                }
            }
            Transform::Gcm(t) => {
                let nonce = t.rtcp_nonce(ssrc, index);
                if encrypted {
                    // AAD = first 8 octets || E+index; ciphertext = the rest of the RTCP.
                    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                    let (head, rest) = pkt.split_at_mut(RTCP_HEADER_LEN);
                    aad[..RTCP_HEADER_LEN].copy_from_slice(head);
                    aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index.to_be_bytes());
                    let (payload, tail) = rest.split_at_mut(plain_len - RTCP_HEADER_LEN);
                    let tag = tail.get(..GCM_TAG_LEN).ok_or(SrtpError::TooShort)?;
                    t.open(nonce, &aad, tag, payload)?;
                } else {
                    // Authentication only (RFC 7714 §9.2): AAD = whole RTCP || E+index,
                    // which sits after the tag on the wire. Move the index word next to
                    // the RTCP (saving the tag) to make the AAD contiguous, then restore.
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(
                        pkt.get(plain_len..plain_len + GCM_TAG_LEN)
                            .ok_or(SrtpError::TooShort)?,
                    );
                    pkt.get_mut(plain_len..plain_len + SRTCP_INDEX_LEN)
                        .ok_or(SrtpError::TooShort)?
                        .copy_from_slice(&e_index.to_be_bytes());
                    let aad = pkt
                        .get(..plain_len + SRTCP_INDEX_LEN)
                        .ok_or(SrtpError::TooShort)?;
                    let verdict = t.open(nonce, aad, &tag, &mut []);
                    if let Some(dst) = pkt.get_mut(plain_len..plain_len + GCM_TAG_LEN) {
                        dst.copy_from_slice(&tag);
                    }
                    verdict?;
                }
            }
        }

        let state = self.streams.get_or_insert(ssrc)?;
        match &mut state.rtcp_rx {
            Some(w) => w.accept(u64::from(index)),
            None => state.rtcp_rx = Some(ReplayWindow::starting_at(u64::from(index))),
        }
        Ok(plain_len)
    }

    /// Encrypt and authenticate the (compound) RTCP packet `buf[..len]` in place. `buf` must
    /// have room for [`SrtpProfile::rtcp_overhead`] more bytes. Returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let out_len = len.checked_add(overhead).ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;
        let ssrc = header::parse_rtcp(out.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;

        let state = self.streams.get_or_insert(ssrc)?;
        let index = state.rtcp_tx_next;
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        let e_index = (E_FLAG | index).to_be_bytes();

        match &self.rtcp {
            Transform::Cm(t) => {
                let (authenticated, tag) = out.split_at_mut(len + SRTCP_INDEX_LEN);
                let (rtcp, index_word) = authenticated.split_at_mut(len);
                let payload = rtcp.get_mut(RTCP_HEADER_LEN..).ok_or(SrtpError::TooShort)?;
                t.xor(ssrc, u64::from(index), payload)?;
                index_word.copy_from_slice(&e_index);
                tag.copy_from_slice(&t.tag(authenticated, &[])?);
            }
            Transform::Gcm(t) => {
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                let (head, rest) = out.split_at_mut(RTCP_HEADER_LEN);
                aad[..RTCP_HEADER_LEN].copy_from_slice(head);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index);
                let (payload, tail) = rest.split_at_mut(len - RTCP_HEADER_LEN);
                let (tag, index_word) = tail.split_at_mut(GCM_TAG_LEN);
                tag.copy_from_slice(&t.seal(t.rtcp_nonce(ssrc, index), &aad, payload)?);
                index_word.copy_from_slice(&e_index);
            }
        }

        state.rtcp_tx_next = index + 1;
        Ok(out_len)
    }

    /// Set the next outbound SRTCP index of `ssrc` (test vectors use non-zero indices).
    #[cfg(test)]
    pub(crate) fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) {
        if let Ok(state) = self.streams.get_or_insert(ssrc) {
            state.rtcp_tx_next = index;
        }
    }

    /// A context from session keys directly (RFC 7714 vectors give no master key).
    #[cfg(test)]
    pub(crate) fn from_transforms(profile: SrtpProfile, rtp: Transform, rtcp: Transform) -> Self {
        Self {
            profile,
            rtp,
            rtcp,
            streams: StreamTable::new(),
        }
    }
}

fn read_u32(buf: &[u8], at: usize) -> Result<u32, SrtpError> {
    buf.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or(SrtpError::TooShort)
}
