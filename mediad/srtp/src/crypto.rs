//! Key derivation and the two packet transforms, on top of `aws-lc-rs`.
//!
//! AES keys are 128 or 256 bits; the AES variant (AES-128/AES-256 for the KDF and CTR,
//! `AES_128_GCM`/`AES_256_GCM` for the AEAD) follows from the key length, so one code path
//! serves every key size.
//!
//! Per-packet calls used here do not allocate: AES-CTR goes through
//! `cipher::EncryptingKey::less_safe_encrypt` with a caller-built 128-bit IV
//! (AWS-LC's `AES_ctr128_encrypt`), HMAC-SHA1 clones a pre-keyed `HMAC_CTX`
//! (fixed-size, copied by value in AWS-LC), AES-GCM seals/opens in place.

use aws_lc_rs::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey},
    cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey},
    constant_time, hmac,
    iv::FixedLength,
};

use crate::SrtpError;

/// AES-128 key length (`AES_CM_128_HMAC_SHA1_80`, `AEAD_AES_128_GCM`).
pub(crate) const AES_128_KEY_LEN: usize = 16;
/// AES-256 key length (`AEAD_AES_256_GCM`); also the longest key, for stack buffers.
pub(crate) const AES_256_KEY_LEN: usize = 32;
/// Session salt of AES-CM (112 bits).
pub(crate) const CM_SALT_LEN: usize = 14;
/// Session salt of AES-GCM (96 bits).
pub(crate) const GCM_SALT_LEN: usize = 12;
/// HMAC-SHA1 session authentication key length (160 bits).
pub(crate) const CM_AUTH_KEY_LEN: usize = 20;
/// Truncated HMAC-SHA1 tag of `AES_CM_128_HMAC_SHA1_80`.
pub(crate) const CM_TAG_LEN: usize = 10;
/// AES-GCM tag.
pub(crate) const GCM_TAG_LEN: usize = 16;

/// KDF labels (RFC 3711 §4.3.1 and §4.3.2).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(crate) enum Label {
    RtpEncryption = 0x00,
    RtpAuth = 0x01,
    RtpSalt = 0x02,
    RtcpEncryption = 0x03,
    RtcpAuth = 0x04,
    RtcpSalt = 0x05,
}

/// Build an AES-CTR key: AES-128 or AES-256 by the key length.
fn ctr_key(key: &[u8]) -> Result<EncryptingKey, SrtpError> {
    let algorithm = match key.len() {
        AES_128_KEY_LEN => &AES_128,
        AES_256_KEY_LEN => &AES_256,
        _ => return Err(SrtpError::BadKeyLength),
    };
    let unbound = UnboundCipherKey::new(algorithm, key).map_err(|_| SrtpError::BadKeyLength)?;
    EncryptingKey::ctr(unbound).map_err(|_| SrtpError::Crypto)
}

/// XOR `data` with the AES-CTR keystream that starts at counter block `iv`.
fn ctr_xor(key: &EncryptingKey, iv: [u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
    if data.is_empty() {
        return Ok(());
    }
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map(|_| ())
        .map_err(|_| SrtpError::Crypto)
}

/// The SRTP key derivation function with key derivation rate 0 (RFC 3711 §4.3):
/// `out` = AES-CM keystream under the master key, IV = ((label << 48) XOR master_salt) << 16.
/// The PRF is AES-128-CM for a 128-bit master key and AES-256-CM for a 256-bit one
/// (RFC 6188 §3, which RFC 7714 §11 uses for `AEAD_AES_256_GCM`).
///
/// A 96-bit (GCM) master salt is padded with two zero octets on the right to 112 bits,
/// as libsrtp (and so every browser) does for RFC 7714, whatever the key length.
pub(crate) fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: Label,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..CM_SALT_LEN]
        .get_mut(..master_salt.len())
        .ok_or(SrtpError::BadKeyLength)?
        .copy_from_slice(master_salt);
    // key_id = label || r (48 bits, r = 0 with KDR 0), right-aligned in the 112-bit salt.
    iv[7] ^= label as u8;
    out.fill(0);
    ctr_xor(&ctr_key(master_key)?, iv, out)
}

/// One direction-and-protocol (SRTP or SRTCP) worth of session keys.
pub(crate) enum Transform {
    /// Boxed: AWS-LC's HMAC and AES key schedules make it ~1.7 KB (allocated once).
    Cm(Box<CmTransform>),
    Gcm(GcmTransform),
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            Transform::Cm(_) => f.write_str("Transform::Cm(..)"),
            Transform::Gcm(_) => f.write_str("Transform::Gcm(..)"),
        }
    }
}

/// `AES_CM_128_HMAC_SHA1_80` session keys.
pub(crate) struct CmTransform {
    ctr: EncryptingKey,
    auth: hmac::Key,
    salt: [u8; CM_SALT_LEN],
}

impl CmTransform {
    /// `key` is the AES-128 (or, for tests against RFC 6188 vectors, AES-256) session key.
    pub(crate) fn new(
        key: &[u8],
        salt: &[u8; CM_SALT_LEN],
        auth_key: &[u8; CM_AUTH_KEY_LEN],
    ) -> Result<Self, SrtpError> {
        Ok(Self {
            ctr: ctr_key(key)?,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_key),
            salt: *salt,
        })
    }

    /// RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16).
    /// `index` is the 48-bit SRTP index or the 31-bit SRTCP index.
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&self.salt);
        for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *d ^= s;
        }
        for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *d ^= s;
        }
        iv
    }

    /// En- or decrypt `data` (AES-CM is its own inverse).
    pub(crate) fn xor(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), SrtpError> {
        ctr_xor(&self.ctr, self.iv(ssrc, index), data)
    }

    /// HMAC-SHA1 over `authenticated || trailer`, truncated to 80 bits.
    /// (The 160-bit HMAC-SHA1 is never shorter: the error cannot happen.)
    pub(crate) fn tag(
        &self,
        authenticated: &[u8],
        trailer: &[u8],
    ) -> Result<[u8; CM_TAG_LEN], SrtpError> {
        let mut ctx = hmac::Context::with_key(&self.auth);
        ctx.update(authenticated);
        ctx.update(trailer);
        let full = ctx.sign();
        full.as_ref()
            .first_chunk::<CM_TAG_LEN>()
            .copied()
            .ok_or(SrtpError::Crypto)
    }

    /// Constant-time check of a received tag.
    pub(crate) fn verify(
        &self,
        authenticated: &[u8],
        trailer: &[u8],
        received: &[u8],
    ) -> Result<(), SrtpError> {
        let expected = self.tag(authenticated, trailer)?;
        constant_time::verify_slices_are_equal(&expected, received)
            .map_err(|_| SrtpError::AuthFailed)
    }
}

/// `AEAD_AES_128_GCM` or `AEAD_AES_256_GCM` session keys (the key length decides).
pub(crate) struct GcmTransform {
    key: LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl GcmTransform {
    pub(crate) fn new(key: &[u8], salt: &[u8; GCM_SALT_LEN]) -> Result<Self, SrtpError> {
        let algorithm = match key.len() {
            AES_128_KEY_LEN => &aead::AES_128_GCM,
            AES_256_KEY_LEN => &aead::AES_256_GCM,
            _ => return Err(SrtpError::BadKeyLength),
        };
        let unbound = UnboundKey::new(algorithm, key).map_err(|_| SrtpError::BadKeyLength)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            salt: *salt,
        })
    }

    fn salted(&self, mut iv: [u8; GCM_SALT_LEN]) -> Nonce {
        for (d, s) in iv.iter_mut().zip(self.salt) {
            *d ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }

    /// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
    pub(crate) fn rtp_nonce(&self, ssrc: u32, index: u64) -> Nonce {
        let mut iv = [0u8; GCM_SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        // ROC || SEQ is the 48-bit index.
        iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
        self.salted(iv)
    }

    /// RFC 7714 §9.1: IV = (0x0000 || SSRC || 0x0000 || 0 || SRTCP index) XOR salt.
    pub(crate) fn rtcp_nonce(&self, ssrc: u32, index: u32) -> Nonce {
        let mut iv = [0u8; GCM_SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
        self.salted(iv)
    }

    /// Encrypt `data` in place; returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: Nonce,
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], SrtpError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), data)
            .map_err(|_| SrtpError::Crypto)?;
        let mut out = [0u8; GCM_TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticate and decrypt `data` in place.
    pub(crate) fn open(
        &self,
        nonce: Nonce,
        aad: &[u8],
        tag: &[u8],
        data: &mut [u8],
    ) -> Result<(), SrtpError> {
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(aad), tag, data)
            .map(|_| ())
            .map_err(|_| SrtpError::AuthFailed)
    }
}
