//! Protect and unprotect of a 1200-byte RTP packet (12-byte header + 1188 payload) for all
//! three profiles. Unprotect needs a fresh (non-replayed) packet per iteration: it is produced in
//! the untimed setup of `iter_batched_ref`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use salon_srtp::{SrtpContext, SrtpProfile, contexts_from_keying_material};
use std::hint::black_box;

const LEN: usize = 1200;
const BUF: usize = 1280;

fn write_rtp(buf: &mut [u8; BUF], seq: u16) {
    buf[..12].copy_from_slice(&[0x80, 96, 0, 0, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe]);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[12..LEN].fill(0x42);
}

fn contexts(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let km: Vec<u8> = (0..profile.keying_material_len() as u8).collect();
    let (_, tx) = contexts_from_keying_material(profile, &km, true).expect("keys");
    let (rx, _) = contexts_from_keying_material(profile, &km, false).expect("keys");
    (tx, rx)
}

fn bench(c: &mut Criterion) {
    for (name, profile) in [
        ("aead_aes_256_gcm", SrtpProfile::AeadAes256Gcm),
        ("aead_aes_128_gcm", SrtpProfile::AeadAes128Gcm),
        ("aes_cm_128_hmac_sha1_80", SrtpProfile::Aes128CmHmacSha1_80),
    ] {
        let mut group = c.benchmark_group(format!("srtp/{name}"));
        group.throughput(criterion::Throughput::Bytes(LEN as u64));

        let (mut tx, _) = contexts(profile);
        let mut buf = [0u8; BUF];
        write_rtp(&mut buf, 0);
        let mut seq = 0u16;
        group.bench_function("protect_rtp_1200", |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                // Only the header is rewritten: re-encrypting the previous ciphertext costs the same.
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                black_box(tx.protect_rtp(black_box(&mut buf), LEN).expect("protect"))
            })
        });

        let (mut tx, mut rx) = contexts(profile);
        let mut seq = 0u16;
        group.bench_function("unprotect_rtp_1200", |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let mut p = [0u8; BUF];
                    write_rtp(&mut p, seq);
                    let n = tx.protect_rtp(&mut p, LEN).expect("protect");
                    (p, n)
                },
                |(p, n)| black_box(rx.unprotect_rtp(&mut p[..*n]).expect("unprotect")),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
