//! Published test vectors: RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key
//! derivation), RFC 7714 §16 (SRTP AEAD_AES_128_GCM) and §17 (SRTCP), and the libsrtp
//! `srtp_validate` reference packets for AES_CM_128_HMAC_SHA1_80.

use crate::crypto::{CmTransform, GcmTransform, Label, Transform, derive};
use crate::{SrtpContext, SrtpError, SrtpProfile};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd hex length");
    digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// RFC 3711 B.2: session key 2B7E..., salt F0F1...FD, SSRC 0, index 0. The keystream is
/// what a zero payload encrypts to. Checks the first three counter blocks and those at
/// counters 0xFEFF, 0xFF00, 0xFF01.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let t = CmTransform::new(
        &arr("2B7E151628AED2A6ABF7158809CF4F3C"),
        &arr("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
        &[0; 20],
    )
    .unwrap();
    let mut ks = vec![0u8; 16 * 0xff02];
    t.xor(0, 0, &mut ks).unwrap();
    let block = |n: usize| &ks[16 * n..16 * (n + 1)];
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

/// RFC 3711 B.3: master key E1F9..., master salt 0EC6..., KDR 0, index 0.
#[test]
fn rfc3711_b3_key_derivation() {
    let key = arr("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut cipher_key = [0u8; 16];
    derive(&key, &salt, Label::RtpEncryption, &mut cipher_key).unwrap();
    assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut cipher_salt = [0u8; 14];
    derive(&key, &salt, Label::RtpSalt, &mut cipher_salt).unwrap();
    assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // The RFC lists 94 octets of the auth-key keystream; HMAC-SHA1 uses the first 20.
    let mut auth = [0u8; 94];
    derive(&key, &salt, Label::RtpAuth, &mut auth).unwrap();
    assert_eq!(
        auth.to_vec(),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

/// libsrtp `srtp_validate` (test/srtp_driver.c): master key/salt of RFC 3711 B.3, SSRC
/// 0xCAFEBABE, SEQ 0x1234, 16 × 0xAB; SRTCP with index 1. Exercises the whole CM path
/// (KDF, IV, HMAC over header+payload+ROC) against the implementation browsers use.
#[test]
fn libsrtp_reference_packets_aes_cm_hmac_sha1_80() {
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let profile = SrtpProfile::Aes128CmHmacSha1_80;
    let plain_rtp = hex("800f1234 decafbad cafebabe abababab abababab abababab abababab");
    let srtp = hex(
        "800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402
                    b78d6acc 99ea179b 8dbb",
    );
    let plain_rtcp = hex("81c8000b cafebabe abababab abababab abababab abababab");
    let srtcp = hex(
        "81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001
                     993e08cd 54d6c123 0798",
    );

    let mut tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut buf = [0u8; 64];
    buf[..plain_rtp.len()].copy_from_slice(&plain_rtp);
    let n = tx.protect_rtp(&mut buf, plain_rtp.len()).unwrap();
    assert_eq!(&buf[..n], &srtp[..]);

    tx.set_next_srtcp_index(0xcafe_babe, 1);
    buf[..plain_rtcp.len()].copy_from_slice(&plain_rtcp);
    let n = tx.protect_rtcp(&mut buf, plain_rtcp.len()).unwrap();
    assert_eq!(&buf[..n], &srtcp[..]);

    let mut rx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut pkt = srtp.clone();
    let n = rx.unprotect_rtp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain_rtp[..]);
    let mut pkt = srtcp.clone();
    let n = rx.unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain_rtcp[..]);
}

/// RFC 7714 §16 and §17 give session keys directly: key 000102..0f, salt "Quid pro quo",
/// used for both SRTP and SRTCP.
fn rfc7714_context() -> SrtpContext {
    let key = arr("000102030405060708090a0b0c0d0e0f");
    let salt = arr("517569642070726f2071756f");
    SrtpContext::from_transforms(
        SrtpProfile::AeadAes128Gcm,
        Transform::Gcm(GcmTransform::new(&key, &salt).unwrap()),
        Transform::Gcm(GcmTransform::new(&key, &salt).unwrap()),
    )
}

const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
                           20646976 69736120 696e2070 61727465 73207472 6573";
const RFC7714_SRTP: &str = "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
                            be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
                            6a9152cf 765ee439 0cce";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
                            4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
const RFC7714_SRTCP: &str = "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7
                             6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458
                             96cf4d2f c5abf872 45d9eade 800005d4";
/// §17.3: the same RTCP, authenticated only (E = 0).
const RFC7714_SRTCP_AUTH_ONLY: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a
                                       0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef
                                       deadbeef 841dd968 3dd78ec9 2ae58790 125f62b3 000005d4";

/// RFC 7714 §16.1.1 (encryption) and §16.1.2 (decryption), ROC 0, SEQ 0xf17b.
#[test]
fn rfc7714_16_srtp_aead_aes_128_gcm() {
    let plain = hex(RFC7714_RTP);
    let expected = hex(RFC7714_SRTP);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = rfc7714_context()
        .protect_rtp(&mut buf, plain.len())
        .unwrap();
    assert_eq!(&buf[..n], &expected[..]);

    let mut pkt = expected.clone();
    let n = rfc7714_context().unprotect_rtp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..]);
}

/// RFC 7714 §17.1 (encryption), §17.1.2 (decryption), SRTCP index 0x5d4; and §17.3
/// (authentication only, E = 0) on the receive side.
#[test]
fn rfc7714_17_srtcp_aead_aes_128_gcm() {
    let plain = hex(RFC7714_RTCP);
    let expected = hex(RFC7714_SRTCP);
    let mut tx = rfc7714_context();
    tx.set_next_srtcp_index(0x4d61_7273, 0x5d4);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..]);

    let mut pkt = expected.clone();
    let n = rfc7714_context().unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..]);

    let auth_only = hex(RFC7714_SRTCP_AUTH_ONLY);
    let mut pkt = auth_only.clone();
    let n = rfc7714_context().unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..]);

    // A flipped bit in the clear payload of the E = 0 packet fails, and the packet is
    // left as it was on the wire.
    let mut pkt = auth_only.clone();
    pkt[20] ^= 1;
    let mut tampered = pkt.clone();
    assert_eq!(
        rfc7714_context().unprotect_rtcp(&mut tampered),
        Err(SrtpError::AuthFailed)
    );
    assert_eq!(tampered, pkt);
}

/// GCM KDF: the 96-bit master salt is zero-padded on the right, i.e. deriving with the
/// 12-byte salt equals deriving with that salt followed by two zero bytes.
#[test]
fn gcm_master_salt_is_right_padded_in_the_kdf() {
    let key = arr("000102030405060708090a0b0c0d0e0f");
    let salt12 = hex("517569642070726f2071756f");
    let mut salt14 = salt12.clone();
    salt14.extend_from_slice(&[0, 0]);
    for label in [Label::RtpEncryption, Label::RtcpSalt] {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        derive(&key, &salt12, label, &mut a).unwrap();
        derive(&key, &salt14, label, &mut b).unwrap();
        assert_eq!(a, b);
    }
}

/// libsrtp `srtp_validate_gcm`: master key 000102..0f, master salt a0a1..ab, through the
/// KDF. This pins the GCM KDF salt padding against the implementation browsers use.
#[test]
fn libsrtp_reference_packets_aead_aes_128_gcm() {
    let key = hex("000102030405060708090a0b0c0d0e0f");
    let salt = hex("a0a1a2a3a4a5a6a7a8a9aaab");
    let profile = SrtpProfile::AeadAes128Gcm;
    let plain_rtp = hex("800f1234 decafbad cafebabe abababab abababab abababab abababab");
    let srtp = hex(
        "800f1234 decafbad cafebabe c5002ede 04cfdd2e b91159e0 880aa06e
                    d2976826 f796b201 df3131a1 27e8a392",
    );
    let plain_rtcp = hex("81c8000b cafebabe abababab abababab abababab abababab");
    let srtcp = hex(
        "81c8000b cafebabe c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe
                     a2b3b446 ea31123b a88ce61e 80000001",
    );

    let mut tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut buf = [0u8; 64];
    buf[..plain_rtp.len()].copy_from_slice(&plain_rtp);
    let n = tx.protect_rtp(&mut buf, plain_rtp.len()).unwrap();
    assert_eq!(&buf[..n], &srtp[..]);
    tx.set_next_srtcp_index(0xcafe_babe, 1);
    buf[..plain_rtcp.len()].copy_from_slice(&plain_rtcp);
    let n = tx.protect_rtcp(&mut buf, plain_rtcp.len()).unwrap();
    assert_eq!(&buf[..n], &srtcp[..]);

    let mut rx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut pkt = srtp.clone();
    let n = rx.unprotect_rtp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain_rtp[..]);
    let mut pkt = srtcp.clone();
    let n = rx.unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain_rtcp[..]);
}
