//! Published test vectors: RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key
//! derivation), RFC 7714 §16 (SRTP AEAD_AES_128_GCM / AEAD_AES_256_GCM) and §17 (SRTCP),
//! and the libsrtp `srtp_validate*` reference packets (AES_CM_128_HMAC_SHA1_80,
//! AEAD_AES_128_GCM, and AES_256_CM_HMAC_SHA1_80 to pin the AES-256 KDF).

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
        &hex("2B7E151628AED2A6ABF7158809CF4F3C"),
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
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
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

/// RFC 7714 §16 and §17 give session keys directly: key 000102..0f (AES-128) or
/// 000102..1f (AES-256), salt "Quid pro quo", used for both SRTP and SRTCP.
fn rfc7714_context(profile: SrtpProfile) -> SrtpContext {
    let key: Vec<u8> = (0..profile.master_key_len() as u8).collect();
    let salt = arr("517569642070726f2071756f");
    SrtpContext::from_transforms(
        profile,
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
/// §16.2.1: the §16 RTP packet under AEAD_AES_256_GCM.
const RFC7714_SRTP_256: &str = "8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa
                                b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff
                                d6b0f9bb 7878d7a7 6c13";
/// §17.2.1: the §17 RTCP packet under AEAD_AES_256_GCM.
const RFC7714_SRTCP_256: &str = "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d
                                 bffe0a50 a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c
                                 4446839f 57ff6f6c b26ac3be 800005d4";
/// §17.4: the same RTCP under AEAD_AES_256_GCM, authenticated only (E = 0).
const RFC7714_SRTCP_256_AUTH_ONLY: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a
                                           0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef
                                           deadbeef 91db4afb feee5a97 8fab4393 ed2615fe 000005d4";

/// Protect `RFC7714_RTP` (ROC 0, SEQ 0xf17b) and compare with `srtp`; unprotect `srtp`.
fn check_rfc7714_srtp(profile: SrtpProfile, srtp: &str) {
    let plain = hex(RFC7714_RTP);
    let expected = hex(srtp);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = rfc7714_context(profile)
        .protect_rtp(&mut buf, plain.len())
        .unwrap();
    assert_eq!(&buf[..n], &expected[..], "{profile:?}");

    let mut pkt = expected.clone();
    let n = rfc7714_context(profile).unprotect_rtp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..], "{profile:?}");
}

/// Protect `RFC7714_RTCP` (SRTCP index 0x5d4) and compare with `srtcp`; unprotect `srtcp`
/// and the authenticated-only (E = 0) `auth_only`; a tampered E = 0 packet fails.
fn check_rfc7714_srtcp(profile: SrtpProfile, srtcp: &str, auth_only: &str) {
    let plain = hex(RFC7714_RTCP);
    let expected = hex(srtcp);
    let mut tx = rfc7714_context(profile);
    tx.set_next_srtcp_index(0x4d61_7273, 0x5d4);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..], "{profile:?}");

    let mut pkt = expected.clone();
    let n = rfc7714_context(profile).unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..], "{profile:?}");

    let auth_only = hex(auth_only);
    let mut pkt = auth_only.clone();
    let n = rfc7714_context(profile).unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..], "{profile:?}");

    // A flipped bit in the clear payload of the E = 0 packet fails, and the packet is
    // left as it was on the wire.
    let mut pkt = auth_only.clone();
    pkt[20] ^= 1;
    let mut tampered = pkt.clone();
    assert_eq!(
        rfc7714_context(profile).unprotect_rtcp(&mut tampered),
        Err(SrtpError::AuthFailed)
    );
    assert_eq!(tampered, pkt);
}

/// RFC 7714 §16.1.1 (encryption) and §16.1.2 (decryption), ROC 0, SEQ 0xf17b.
#[test]
fn rfc7714_16_1_srtp_aead_aes_128_gcm() {
    check_rfc7714_srtp(SrtpProfile::AeadAes128Gcm, RFC7714_SRTP);
}

/// RFC 7714 §16.2.1 (encryption) and §16.2.2 (decryption), ROC 0, SEQ 0xf17b.
#[test]
fn rfc7714_16_2_srtp_aead_aes_256_gcm() {
    check_rfc7714_srtp(SrtpProfile::AeadAes256Gcm, RFC7714_SRTP_256);
}

/// RFC 7714 §17.1 (encryption and decryption), SRTCP index 0x5d4; and §17.3
/// (authentication only, E = 0) on the receive side.
#[test]
fn rfc7714_17_1_srtcp_aead_aes_128_gcm() {
    check_rfc7714_srtcp(
        SrtpProfile::AeadAes128Gcm,
        RFC7714_SRTCP,
        RFC7714_SRTCP_AUTH_ONLY,
    );
}

/// RFC 7714 §17.2 (encryption and decryption), SRTCP index 0x5d4; and §17.4
/// (authentication only, E = 0) on the receive side.
#[test]
fn rfc7714_17_2_srtcp_aead_aes_256_gcm() {
    check_rfc7714_srtcp(
        SrtpProfile::AeadAes256Gcm,
        RFC7714_SRTCP_256,
        RFC7714_SRTCP_256_AUTH_ONLY,
    );
}

/// A GCM transform refuses keys that are neither 128 nor 256 bits.
#[test]
fn gcm_transform_takes_128_or_256_bit_keys_only() {
    let salt = [0u8; 12];
    for len in [0, 15, 17, 24, 31, 33] {
        assert!(GcmTransform::new(&vec![0; len], &salt).is_err(), "{len}");
    }
}

/// GCM KDF: the 96-bit master salt is zero-padded on the right, i.e. deriving with the
/// 12-byte salt equals deriving with that salt followed by two zero bytes.
/// Holds for the AES-128 and the AES-256 PRF alike.
#[test]
fn gcm_master_salt_is_right_padded_in_the_kdf() {
    let salt12 = hex("517569642070726f2071756f");
    let mut salt14 = salt12.clone();
    salt14.extend_from_slice(&[0, 0]);
    for key_len in [16u8, 32] {
        let key: Vec<u8> = (0..key_len).collect();
        for label in [Label::RtpEncryption, Label::RtcpSalt] {
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            derive(&key, &salt12, label, &mut a).unwrap();
            derive(&key, &salt14, label, &mut b).unwrap();
            assert_eq!(a, b);
        }
    }
    // The PRF really depends on the key length: a 256-bit key is not its first half.
    let key: Vec<u8> = (0..32).collect();
    let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
    derive(&key, &salt12, Label::RtpEncryption, &mut a).unwrap();
    derive(&key[..16], &salt12, Label::RtpEncryption, &mut b).unwrap();
    assert_ne!(a, b);
    assert_eq!(
        derive(&key[..24], &salt12, Label::RtpEncryption, &mut a),
        Err(SrtpError::BadKeyLength)
    );
}

/// libsrtp `srtp_validate_aes_256` (test/srtp_driver.c): AES_256_CM_HMAC_SHA1_80 with master
/// key f0f04914..b6 and master salt 3b04..d2, SSRC 0xCAFEBABE, SEQ 0x1234, 16 × 0xAB.
///
/// We do not offer that profile, but it derives its session keys with the same AES-256-CM
/// KDF `AeadAes256Gcm` uses (RFC 6188 §3), and it is the only published AES-256 reference
/// packet that goes through a KDF: reproducing it pins our AES-256 KDF (32-byte
/// encryption key, salt, auth key) to libsrtp, as the RFC 7714 vectors (session keys given)
/// cannot. The transform is assembled by hand; the profile only sets the 10-byte tag.
#[test]
fn libsrtp_reference_packet_pins_the_aes_256_kdf() {
    let key = hex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6");
    let salt = hex("3b04803de51ee7c96423ab5b78d2");
    let plain_rtp = hex("800f1234 decafbad cafebabe abababab abababab abababab abababab");
    let srtp = hex(
        "800f1234 decafbad cafebabe f1d9de17 ff251ff1 aa007774 b0b4b40d
                    a08d9d9a 5b3a55d8 873b",
    );
    let transform = || {
        let mut k = [0u8; 32];
        let mut a = [0u8; 20];
        let mut s = [0u8; 14];
        derive(&key, &salt, Label::RtpEncryption, &mut k).unwrap();
        derive(&key, &salt, Label::RtpAuth, &mut a).unwrap();
        derive(&key, &salt, Label::RtpSalt, &mut s).unwrap();
        Transform::Cm(Box::new(CmTransform::new(&k, &s, &a).unwrap()))
    };
    let profile = SrtpProfile::Aes128CmHmacSha1_80;
    let mut tx = SrtpContext::from_transforms(profile, transform(), transform());
    let mut buf = [0u8; 64];
    buf[..plain_rtp.len()].copy_from_slice(&plain_rtp);
    let n = tx.protect_rtp(&mut buf, plain_rtp.len()).unwrap();
    assert_eq!(&buf[..n], &srtp[..]);

    let mut rx = SrtpContext::from_transforms(profile, transform(), transform());
    let mut pkt = srtp.clone();
    let n = rx.unprotect_rtp(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain_rtp[..]);
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
