//! One allocation round for one receiver: 50 senders (a screen share, the
//! dominant speaker, 4 recent speakers, the rest in 180 px tiles), 40 in
//! last-N, three spatial × three temporal layers each, a budget that moves
//! between rounds.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use salon_mediad::alloc::{
    AllocInput, AllocatorConfig, AllocatorState, Content, Layer, Priority, VideoCandidate, VideoId,
};

fn camera() -> Vec<Layer> {
    let mut v = Vec::new();
    for (s, (h, top)) in [(180u16, 150_000u64), (360, 500_000), (720, 1_500_000)]
        .into_iter()
        .enumerate()
    {
        for t in 0..3u8 {
            v.push(Layer {
                spatial: s as u8,
                temporal: t,
                bitrate_bps: top * (u64::from(t) + 2) / 4,
                height: h,
                active: true,
            });
        }
    }
    v
}

fn alloc(c: &mut Criterion) {
    let layers: Vec<Vec<Layer>> = (0..50).map(|_| camera()).collect();
    let vids: Vec<VideoCandidate<'_>> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| VideoCandidate {
            id: i as VideoId,
            priority: match i {
                0 => Priority::ScreenShare,
                1 => Priority::DominantSpeaker,
                2..=5 => Priority::RecentSpeaker(i as u8 - 2),
                _ => Priority::Other,
            },
            layers: l,
            max_height: if i > 5 { Some(180) } else { None },
            in_last_n: i < 40,
            content: if i == 0 {
                Content::Screen
            } else {
                Content::Camera
            },
        })
        .collect();
    let t0 = Instant::now();
    let mut a = AllocatorState::new(AllocatorConfig::default());
    let mut round = 0u64;
    c.bench_function("allocation_round_50_senders", |b| {
        b.iter(|| {
            round += 1;
            let input = AllocInput {
                available_bps: 4_000_000 + (round % 7) * 300_000,
                cap_bps: None,
                audio_only: false,
                probe_proven: false,
                videos: &vids,
            };
            let d = a.allocate(&input, t0 + Duration::from_millis(100 * round));
            black_box(d.len());
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = alloc
}
criterion_main!(benches);
