//! The packet path allocates nothing once an SSRC is known.
//!
//! A counting `#[global_allocator]` (this test binary only) counts allocations made on the
//! current thread while counting is switched on; 10,000 RTP and 10,000 RTCP packets of
//! each profile (all three) are protected and unprotected in between.

#![allow(clippy::unwrap_used)] // tests may unwrap (house rule)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use salon_srtp::{SrtpContext, SrtpProfile, contexts_from_keying_material};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: never touch a thread-local that is being torn down.
    let on = COUNTING.try_with(Cell::get).unwrap_or(false);
    if on {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: defers every operation to `System`; the bookkeeping uses const-initialised
// thread-locals of `Cell`s, which neither allocate nor reenter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PACKETS: u16 = 10_000;
const SSRC: u32 = 0x0102_0304;

fn write_rtp(buf: &mut [u8], ssrc: u32, seq: u16, payload_len: usize) -> usize {
    buf[..12].copy_from_slice(&[0x80, 111, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    buf[12..12 + payload_len].fill(seq as u8);
    12 + payload_len
}

fn write_rtcp(buf: &mut [u8]) -> usize {
    buf[..8].copy_from_slice(&[0x81, 201, 0, 7, 0, 0, 0, 0]);
    buf[4..8].copy_from_slice(&SSRC.to_be_bytes());
    buf[8..32].fill(0x77);
    32
}

/// Protect + unprotect `PACKETS` RTP and RTCP packets; returns allocations counted.
fn run(profile: SrtpProfile, tx: &mut SrtpContext, rx: &mut SrtpContext) -> u64 {
    let mut buf = vec![0u8; 1500];
    // Make the SSRC known in both contexts before counting.
    let len = write_rtp(&mut buf, SSRC, 65_000, 100);
    let n = tx.protect_rtp(&mut buf, len).unwrap();
    rx.unprotect_rtp(&mut buf[..n]).unwrap();
    let len = write_rtcp(&mut buf);
    let n = tx.protect_rtcp(&mut buf, len).unwrap();
    rx.unprotect_rtcp(&mut buf[..n]).unwrap();

    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let mut ok = 0u32;
    // Starts near the wrap so the ROC changes during the run.
    for i in 1..=PACKETS {
        let seq = 65_000u16.wrapping_add(i);
        let len = write_rtp(&mut buf, SSRC, seq, 1200);
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        ok += u32::from(rx.unprotect_rtp(&mut buf[..n]).unwrap() == len);
        let len = write_rtcp(&mut buf);
        let n = tx.protect_rtcp(&mut buf, len).unwrap();
        ok += u32::from(rx.unprotect_rtcp(&mut buf[..n]).unwrap() == len);
        // Errors are allocation-free too.
        buf[20] ^= 1;
        assert!(rx.unprotect_rtcp(&mut buf[..n]).is_err());
    }
    // A new SSRC takes a slot reserved at creation: no allocation either.
    let len = write_rtp(&mut buf, SSRC + 1, 7, 1200);
    let n = tx.protect_rtp(&mut buf, len).unwrap();
    ok += u32::from(rx.unprotect_rtp(&mut buf[..n]).unwrap() == len);
    COUNTING.with(|c| c.set(false));
    assert_eq!(ok, 2 * u32::from(PACKETS) + 1, "{profile:?}");
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn packet_path_does_not_allocate() {
    for profile in [
        SrtpProfile::AeadAes256Gcm,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::Aes128CmHmacSha1_80,
    ] {
        let km: Vec<u8> = (0..profile.keying_material_len() as u8).collect();
        let (mut rx, _) = contexts_from_keying_material(profile, &km, false).unwrap();
        let (_, mut tx) = contexts_from_keying_material(profile, &km, true).unwrap();
        let allocations = run(profile, &mut tx, &mut rx);
        assert_eq!(
            allocations, 0,
            "{profile:?}: allocations on the packet path"
        );
    }
}

/// The counter works: a deliberate allocation while counting is seen.
#[test]
fn counter_sees_allocations() {
    COUNTING.with(|c| c.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert!(ALLOCATIONS.with(Cell::get) >= 1);
}
