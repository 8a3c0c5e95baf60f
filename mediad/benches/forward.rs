//! The media path's cost: one SRTP packet in (decrypt once), rewritten and
//! re-encrypted for each of N receivers, queued for sending. The publisher's
//! encryption happens in the untimed setup.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward_video_1000B");
    for receivers in [1usize, 4, 16] {
        let mut net = common::Net::new(1);
        for _ in 0..=receivers {
            net.join("Bench");
        }
        net.settle(Duration::from_millis(500));
        for s in 1..=4 {
            net.send_media(s);
            net.settle(Duration::from_millis(20));
        }
        for b in &mut net.browsers {
            b.publish.outbox.clear();
        }
        let src = net.browsers[0].publish.addr;
        let ssrc = net.browsers[0].video_ssrc;
        let now = net.now;
        let payload = [0x10u8; 1000];
        let mut seq: u16 = 100;
        g.throughput(Throughput::Elements(receivers as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(receivers),
            &receivers,
            |bench, _| {
                bench.iter_batched_ref(
                    || {
                        seq = seq.wrapping_add(1);
                        let p = &mut net.browsers[0].publish;
                        p.send_rtp(96, seq, u32::from(seq) * 3000, ssrc, &[], &payload);
                        p.outbox.pop().unwrap()
                    },
                    |pkt| {
                        net.worker
                            .handle_datagram(src, black_box(pkt), now, &mut net.tx);
                        net.tx.drain(|t| {
                            black_box(t.len);
                        });
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = forward
}
criterion_main!(benches);
