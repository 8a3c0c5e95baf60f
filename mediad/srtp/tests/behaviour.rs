//! Behaviour of the public API: round trips, DTLS-SRTP key split, authentication,
//! replay protection, ROC across the sequence wrap, SSRC bounds, and robustness against
//! arbitrary bytes.

#![allow(clippy::unwrap_used)] // tests may unwrap (house rule)

use salon_srtp::{MAX_SSRCS, SrtpContext, SrtpError, SrtpProfile, contexts_from_keying_material};

const PROFILES: [SrtpProfile; 3] = [
    SrtpProfile::AeadAes256Gcm,
    SrtpProfile::AeadAes128Gcm,
    SrtpProfile::Aes128CmHmacSha1_80,
];

/// Deterministic keying material of the right length for `profile`.
fn keying_material(profile: SrtpProfile) -> Vec<u8> {
    (0..profile.keying_material_len())
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
        .collect()
}

/// (sender, receiver) for the DTLS client → server direction.
fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let km = keying_material(profile);
    let (_client_in, client_out) = contexts_from_keying_material(profile, &km, true).unwrap();
    let (server_in, _server_out) = contexts_from_keying_material(profile, &km, false).unwrap();
    (client_out, server_in)
}

/// An RTP packet: V=2, PT 96, given SEQ and SSRC, optional CSRCs and a one-word extension.
fn rtp(seq: u16, ssrc: u32, csrcs: u8, ext: bool, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80 | (u8::from(ext) << 4) | csrcs, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for c in 0..u32::from(csrcs) {
        p.extend_from_slice(&(0x1000 + c).to_be_bytes());
    }
    if ext {
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    }
    p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// A receiver report with one report block.
fn rtcp(ssrc: u32, fill: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 24));
    p
}

fn protect_rtp(tx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + tx.profile().rtp_overhead(), 0);
    let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(n, plain.len() + tx.profile().rtp_overhead());
    buf.truncate(n);
    buf
}

fn protect_rtcp(tx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + tx.profile().rtcp_overhead(), 0);
    let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(n, plain.len() + tx.profile().rtcp_overhead());
    buf.truncate(n);
    buf
}

fn unprotect_rtp(rx: &mut SrtpContext, wire: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = wire.to_vec();
    let n = rx.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect_rtcp(rx: &mut SrtpContext, wire: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = wire.to_vec();
    let n = rx.unprotect_rtcp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn profile_constants() {
    let gcm256 = SrtpProfile::AeadAes256Gcm;
    let gcm = SrtpProfile::AeadAes128Gcm;
    let cm = SrtpProfile::Aes128CmHmacSha1_80;
    assert_eq!(
        (gcm256.master_key_len(), gcm256.master_salt_len()),
        (32, 12)
    );
    assert_eq!((gcm.master_key_len(), gcm.master_salt_len()), (16, 12));
    assert_eq!((cm.master_key_len(), cm.master_salt_len()), (16, 14));
    assert_eq!((gcm256.rtp_overhead(), gcm256.rtcp_overhead()), (16, 20));
    assert_eq!((gcm.rtp_overhead(), gcm.rtcp_overhead()), (16, 20));
    assert_eq!((cm.rtp_overhead(), cm.rtcp_overhead()), (10, 14));
    assert_eq!(
        (
            gcm256.keying_material_len(),
            gcm.keying_material_len(),
            cm.keying_material_len()
        ),
        (88, 56, 60)
    );
}

/// RFC 5764 §4.2 on 88 bytes of AEAD_AES_256_GCM keying material: client key [0..32),
/// server key [32..64), client salt [64..76), server salt [76..88).
#[test]
fn aes_256_gcm_keying_material_layout() {
    let profile = SrtpProfile::AeadAes256Gcm;
    let km = keying_material(profile);
    assert_eq!(km.len(), 88);
    let mut client = SrtpContext::new(profile, &km[..32], &km[64..76]).unwrap();
    let mut server = SrtpContext::new(profile, &km[32..64], &km[76..88]).unwrap();
    let (mut client_in, mut client_out) =
        contexts_from_keying_material(profile, &km, true).unwrap();
    let (mut server_in, mut server_out) =
        contexts_from_keying_material(profile, &km, false).unwrap();
    let plain = rtp(300, 0x5eed, 0, false, 100);
    // The client writes with the client key and salt; the server with its own.
    let by_client = protect_rtp(&mut client, &plain);
    assert_eq!(protect_rtp(&mut client_out, &plain), by_client);
    assert_eq!(unprotect_rtp(&mut server_in, &by_client).unwrap(), plain);
    let by_server = protect_rtp(&mut server, &plain);
    assert_eq!(protect_rtp(&mut server_out, &plain), by_server);
    assert_eq!(unprotect_rtp(&mut client_in, &by_server).unwrap(), plain);
    assert_ne!(by_client, by_server);

    // 56 (AES-128-GCM) or 89 bytes are refused; so are AES-128 key/salt lengths.
    for len in [56, 87, 89] {
        let km: Vec<u8> = (0..len as u8).collect();
        assert_eq!(
            contexts_from_keying_material(profile, &km, true).err(),
            Some(SrtpError::BadKeyLength),
            "{len}"
        );
    }
    assert_eq!(
        SrtpContext::new(profile, &[0; 16], &[0; 12]).err(),
        Some(SrtpError::BadKeyLength)
    );
    assert_eq!(
        SrtpContext::new(profile, &[0; 32], &[0; 14]).err(),
        Some(SrtpError::BadKeyLength)
    );
    assert_eq!(
        SrtpContext::new(SrtpProfile::AeadAes128Gcm, &[0; 32], &[0; 12]).err(),
        Some(SrtpError::BadKeyLength)
    );
}

/// The same packet under AES-128-GCM and AES-256-GCM with the first 16 key bytes and the
/// salt shared: different bytes, and neither context accepts the other's packet.
#[test]
fn aes_128_and_256_gcm_do_not_interoperate() {
    let key: Vec<u8> = (0..32).collect();
    let salt = [7u8; 12];
    let mut tx128 = SrtpContext::new(SrtpProfile::AeadAes128Gcm, &key[..16], &salt).unwrap();
    let mut tx256 = SrtpContext::new(SrtpProfile::AeadAes256Gcm, &key, &salt).unwrap();
    let mut rx128 = SrtpContext::new(SrtpProfile::AeadAes128Gcm, &key[..16], &salt).unwrap();
    let mut rx256 = SrtpContext::new(SrtpProfile::AeadAes256Gcm, &key, &salt).unwrap();
    let plain = rtp(1, 2, 0, false, 40);
    let w128 = protect_rtp(&mut tx128, &plain);
    let w256 = protect_rtp(&mut tx256, &plain);
    assert_ne!(w128, w256);
    assert_eq!(unprotect_rtp(&mut rx256, &w128), Err(SrtpError::AuthFailed));
    assert_eq!(unprotect_rtp(&mut rx128, &w256), Err(SrtpError::AuthFailed));
    assert_eq!(unprotect_rtp(&mut rx256, &w256).unwrap(), plain);
    assert_eq!(unprotect_rtp(&mut rx128, &w128).unwrap(), plain);
}

#[test]
fn rtp_and_rtcp_round_trip_all_profiles() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        for (seq, csrcs, ext, len) in [
            (1u16, 0u8, false, 160usize),
            (2, 2, false, 1),
            (3, 0, true, 1200),
            (4, 15, true, 0),
        ] {
            let plain = rtp(seq, 0x1122_3344, csrcs, ext, len);
            let wire = protect_rtp(&mut tx, &plain);
            if len > 0 {
                assert_ne!(wire[..plain.len()], plain[..], "payload is encrypted");
            }
            assert_eq!(unprotect_rtp(&mut rx, &wire).unwrap(), plain, "{profile:?}");
        }
        for fill in 0..3 {
            let plain = rtcp(0x1122_3344, fill);
            let wire = protect_rtcp(&mut tx, &plain);
            assert_ne!(wire[8..plain.len()], plain[8..]);
            assert_eq!(unprotect_rtcp(&mut rx, &wire).unwrap(), plain);
        }
        // Header-only RTCP (8 bytes) also works.
        let plain = rtcp(0x1122_3344, 0)[..8].to_vec();
        let wire = protect_rtcp(&mut tx, &plain);
        assert_eq!(unprotect_rtcp(&mut rx, &wire).unwrap(), plain);
    }
}

#[test]
fn keying_material_split_pairs_client_and_server() {
    for profile in PROFILES {
        let km = keying_material(profile);
        let (mut client_in, mut client_out) =
            contexts_from_keying_material(profile, &km, true).unwrap();
        let (mut server_in, mut server_out) =
            contexts_from_keying_material(profile, &km, false).unwrap();
        let plain = rtp(7, 1, 0, false, 50);
        // client → server
        let wire = protect_rtp(&mut client_out, &plain);
        assert_eq!(unprotect_rtp(&mut server_in, &wire).unwrap(), plain);
        // A context never accepts its own direction's traffic from the other side's keys.
        assert_eq!(
            unprotect_rtp(&mut client_in, &wire),
            Err(SrtpError::AuthFailed)
        );
        // server → client
        let wire = protect_rtp(&mut server_out, &plain);
        assert_eq!(unprotect_rtp(&mut client_in, &wire).unwrap(), plain);

        assert_eq!(
            contexts_from_keying_material(profile, &km[1..], true).err(),
            Some(SrtpError::BadKeyLength)
        );
    }
    assert_eq!(
        SrtpContext::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).err(),
        Some(SrtpError::BadKeyLength)
    );
    assert_eq!(
        SrtpContext::new(SrtpProfile::Aes128CmHmacSha1_80, &[0; 32], &[0; 14]).err(),
        Some(SrtpError::BadKeyLength)
    );
}

#[test]
fn tampered_packets_fail_authentication_and_leave_no_state() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let wire = protect_rtp(&mut tx, &rtp(100, 0xabcd, 1, true, 200));
        // Flip one bit anywhere: header (SEQ changes the guessed index only), extension,
        // payload, tag.
        for pos in [1, 3, 7, 13, 21, 30, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[pos] ^= 0x04;
            assert_eq!(
                unprotect_rtp(&mut rx, &bad),
                Err(SrtpError::AuthFailed),
                "{profile:?} pos {pos}"
            );
        }
        assert_eq!(rx.ssrc_count(), 0, "no state from unauthenticated packets");
        // The genuine packet still goes through afterwards.
        assert!(unprotect_rtp(&mut rx, &wire).is_ok());
        assert_eq!(rx.ssrc_count(), 1);

        let wire = protect_rtcp(&mut tx, &rtcp(0xabcd, 9));
        for pos in [0, 5, 12, wire.len() - 12, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[pos] ^= 0x01;
            assert!(
                unprotect_rtcp(&mut rx, &bad).is_err(),
                "{profile:?} pos {pos}"
            );
        }
        assert!(unprotect_rtcp(&mut rx, &wire).is_ok());
    }
}

#[test]
fn forged_packets_cannot_fill_the_ssrc_table_or_move_the_roc() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        for ssrc in 0..200u32 {
            let mut forged = rtp(ssrc as u16, ssrc, 0, false, 40);
            forged.resize(forged.len() + profile.rtp_overhead(), 0x5a);
            assert_eq!(unprotect_rtp(&mut rx, &forged), Err(SrtpError::AuthFailed));
        }
        assert_eq!(rx.ssrc_count(), 0);

        // A real stream at SEQ 65000; a forger claiming SEQ 10 (would be ROC 1) fails and
        // does not advance the receiver: the real SEQ 65001 (ROC 0) still decrypts.
        assert!(
            unprotect_rtp(&mut rx, &protect_rtp(&mut tx, &rtp(65000, 9, 0, false, 20))).is_ok()
        );
        let mut forged = rtp(10, 9, 0, false, 20);
        forged.resize(forged.len() + profile.rtp_overhead(), 0);
        assert_eq!(unprotect_rtp(&mut rx, &forged), Err(SrtpError::AuthFailed));
        assert!(
            unprotect_rtp(&mut rx, &protect_rtp(&mut tx, &rtp(65001, 9, 0, false, 20))).is_ok()
        );
    }
}

#[test]
fn replays_are_rejected() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let wire = protect_rtp(&mut tx, &rtp(5, 77, 0, false, 30));
        assert!(unprotect_rtp(&mut rx, &wire).is_ok());
        assert_eq!(unprotect_rtp(&mut rx, &wire), Err(SrtpError::Replayed));

        let wire = protect_rtcp(&mut tx, &rtcp(77, 1));
        assert!(unprotect_rtcp(&mut rx, &wire).is_ok());
        assert_eq!(unprotect_rtcp(&mut rx, &wire), Err(SrtpError::Replayed));
    }
}

#[test]
fn out_of_order_within_the_window_is_accepted_and_older_is_not() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let wires: Vec<Vec<u8>> = (1000..1300u16)
            .map(|seq| protect_rtp(&mut tx, &rtp(seq, 5, 0, false, 10)))
            .collect();
        assert!(unprotect_rtp(&mut rx, &wires[0]).is_ok());
        assert!(unprotect_rtp(&mut rx, &wires[200]).is_ok()); // seq 1200
        // Reordered, within 128 of the highest: accepted once each.
        for i in (80..200).rev() {
            assert!(unprotect_rtp(&mut rx, &wires[i]).is_ok(), "{profile:?} {i}");
        }
        assert_eq!(
            unprotect_rtp(&mut rx, &wires[100]),
            Err(SrtpError::Replayed)
        );
        // 128 or more behind the highest: rejected even though never seen.
        assert_eq!(unprotect_rtp(&mut rx, &wires[72]), Err(SrtpError::Replayed));
        assert_eq!(unprotect_rtp(&mut rx, &wires[10]), Err(SrtpError::Replayed));
        assert!(unprotect_rtp(&mut rx, &wires[299]).is_ok());

        // SRTCP: out of order within the window too.
        let rtcps: Vec<Vec<u8>> = (0..5).map(|i| protect_rtcp(&mut tx, &rtcp(5, i))).collect();
        for i in [4, 1, 3, 0, 2] {
            assert!(unprotect_rtcp(&mut rx, &rtcps[i]).is_ok());
        }
        assert_eq!(unprotect_rtcp(&mut rx, &rtcps[3]), Err(SrtpError::Replayed));
    }
}

#[test]
fn roc_follows_the_sequence_wrap_on_both_sides() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let wires: Vec<(u16, Vec<u8>)> = seqs
            .iter()
            .map(|&s| (s, protect_rtp(&mut tx, &rtp(s, 42, 0, false, 64))))
            .collect();
        // Deliver with one pre-wrap packet arriving after the wrap.
        let order = [0, 1, 2, 3, 5, 6, 7, 4, 8, 9, 10, 11];
        for &i in &order {
            let (seq, wire) = &wires[i];
            let plain = unprotect_rtp(&mut rx, wire).unwrap();
            assert_eq!(plain, rtp(*seq, 42, 0, false, 64), "{profile:?} seq {seq}");
        }
        // The sender used ROC 1 after the wrap: a fresh receiver (ROC 0) cannot
        // authenticate a post-wrap packet, while the tracking receiver did above.
        let (_, mut fresh) = pair(profile);
        assert_eq!(
            unprotect_rtp(&mut fresh, &wires[8].1),
            Err(SrtpError::AuthFailed)
        );
        // A late resend of a pre-wrap packet keeps ROC 0 on the sender too: identical bytes.
        assert_eq!(
            protect_rtp(&mut tx, &rtp(65534, 42, 0, false, 64)),
            wires[4].1
        );
        // Stream continues across a second wrap.
        for s in (6..=65535u16).step_by(1000).chain([65535, 0, 1]) {
            let wire = protect_rtp(&mut tx, &rtp(s, 42, 0, false, 8));
            assert_eq!(
                unprotect_rtp(&mut rx, &wire).unwrap(),
                rtp(s, 42, 0, false, 8)
            );
        }
    }
}

#[test]
fn ssrc_table_is_bounded() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        for ssrc in 0..MAX_SSRCS as u32 {
            let wire = protect_rtp(&mut tx, &rtp(1, ssrc, 0, false, 4));
            assert!(unprotect_rtp(&mut rx, &wire).is_ok());
        }
        let plain = rtp(1, 100_000, 0, false, 4);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        assert_eq!(
            tx.protect_rtp(&mut buf, plain.len()),
            Err(SrtpError::TooManySsrcs)
        );
        assert!(tx.remove_ssrc(0));
        let wire = protect_rtp(&mut tx, &plain);
        assert_eq!(unprotect_rtp(&mut rx, &wire), Err(SrtpError::TooManySsrcs));
        assert!(rx.remove_ssrc(3));
        assert!(unprotect_rtp(&mut rx, &wire).is_ok());
        assert_eq!(rx.ssrc_count(), MAX_SSRCS);
    }
}

#[test]
fn buffer_and_length_errors() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let plain = rtp(1, 1, 0, false, 20);
        let mut buf = plain.clone();
        buf.resize(plain.len() + profile.rtp_overhead() - 1, 0);
        assert_eq!(
            tx.protect_rtp(&mut buf, plain.len()),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(
            tx.protect_rtp(&mut buf, usize::MAX),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(
            tx.protect_rtcp(&mut buf, usize::MAX),
            Err(SrtpError::BufferTooSmall)
        );
        let mut roomy = [0x80u8; 40];
        assert_eq!(tx.protect_rtp(&mut roomy, 11), Err(SrtpError::TooShort));
        assert_eq!(tx.protect_rtcp(&mut roomy, 7), Err(SrtpError::TooShort));
        let mut short = [0x80u8; 8];
        assert_eq!(rx.unprotect_rtp(&mut short), Err(SrtpError::TooShort));
        assert_eq!(rx.unprotect_rtcp(&mut short), Err(SrtpError::TooShort));
        let mut v1 = rtp(1, 1, 0, false, 20);
        v1[0] = 0x40;
        let len = v1.len();
        v1.resize(len + 16, 0);
        assert_eq!(tx.protect_rtp(&mut v1, len), Err(SrtpError::Malformed));
        assert_eq!(rx.unprotect_rtp(&mut v1), Err(SrtpError::Malformed));
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Arbitrary bytes and mutated valid packets through every entry point: errors are fine,
/// panics are not. Bounded to a few thousand iterations (well under a second).
#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for i in 0..8u16 {
            seeds.push(protect_rtp(
                &mut tx,
                &rtp(i, 1, (i % 3) as u8, i % 2 == 0, 30),
            ));
            seeds.push(protect_rtcp(&mut tx, &rtcp(1, i as u8)));
        }
        let mut buf = vec![0u8; 1600];
        for round in 0..20_000 {
            let mut pkt: Vec<u8> = if round % 2 == 0 {
                let len = rng.below(120);
                let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len > 0 && rng.below(2) == 0 {
                    p[0] = 0x80 | (p[0] & 0x3f); // version 2, so parsing goes deeper
                }
                p
            } else {
                let mut p = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    match rng.below(3) {
                        0 if !p.is_empty() => {
                            let i = rng.below(p.len());
                            p[i] ^= 1 << rng.below(8);
                        }
                        1 => p.truncate(rng.below(p.len() + 1)),
                        _ => p.push(rng.next() as u8),
                    }
                }
                p
            };
            let _ = rx.unprotect_rtp(&mut pkt.clone());
            let _ = rx.unprotect_rtcp(&mut pkt);
            let len = pkt.len().min(buf.len());
            buf[..len].copy_from_slice(&pkt[..len]);
            let claimed = if rng.below(4) == 0 {
                rng.below(2000)
            } else {
                len
            };
            let _ = tx.protect_rtp(&mut buf, claimed);
            let _ = tx.protect_rtcp(&mut buf, claimed);
            let _ = tx.protect_rtp(&mut buf[..len], len);
        }
    }
}
