//! No heap allocation per forwarded packet: a counting global allocator
//! watches the worker while it decrypts, rewrites, re-encrypts and queues
//! thousands of packets for several receivers.

#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::Net;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn forwarding_allocates_nothing_per_packet() {
    let mut net = Net::new(3);
    for i in 0..4u16 {
        if i % 2 == 0 {
            net.join("Salon-Alloc");
        } else {
            // Over ICE-TCP: the same path under stream addresses.
            net.join_with("Salon-Alloc", |b| {
                b.publish.addr = salon_io::stream_addr(2 * i, 1, b.publish.addr);
                b.subscribe.addr = salon_io::stream_addr(2 * i + 1, 1, b.subscribe.addr);
            });
        }
    }
    net.settle(Duration::from_millis(500));
    // Warm up: every stream seen once, every leg live.
    for s in 1..=10 {
        net.send_media(s);
        net.settle(Duration::from_millis(20));
    }
    // Encrypt the packets to forward beforehand (the browsers' work).
    for s in 11..=1260 {
        net.send_media(s);
    }
    let mut inbound: Vec<(std::net::SocketAddr, Vec<u8>)> = Vec::new();
    for b in &mut net.browsers {
        for d in b.publish.outbox.drain(..) {
            inbound.push((b.publish.addr, d));
        }
    }
    let packets = inbound.len();
    assert!(packets >= 10_000, "{packets} packets");
    let now = net.now + Duration::from_millis(1);
    let sent_before = net.metrics().tx_rtp.get();
    ALLOCS.store(0, Ordering::SeqCst);
    for (src, d) in inbound.iter_mut() {
        COUNTING.store(true, Ordering::SeqCst);
        net.worker.handle_datagram(*src, d, now, &mut net.tx);
        if net.tx.len() > 512 {
            net.tx.drain(|_| {});
        }
        COUNTING.store(false, Ordering::SeqCst);
    }
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let forwarded = net.metrics().tx_rtp.get() - sent_before;
    assert_eq!(
        forwarded,
        packets as u64 * 3,
        "each packet went to the three others"
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while forwarding {forwarded} packets"
    );
}
