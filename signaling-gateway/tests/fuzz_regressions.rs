//! Replays every input kept in `fuzz/regressions/signal_parse/` through the
//! same code the `signal_parse` fuzz target runs.

use std::path::Path;

use salon_gateway::control::ParticipantId;
use salon_gateway::hub::{Hub, Now};
use salon_gateway::protocol::parse_client_bytes;

#[test]
fn signal_parse_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/signal_parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let _ = parse_client_bytes(&data);
        if let Ok(text) = std::str::from_utf8(&data) {
            let mut hub = Hub::with_seed(1);
            hub.handle_open(ParticipantId(1));
            hub.handle_open(ParticipantId(2));
            hub.handle_frame(
                ParticipantId(2),
                r#"{"type":"join","room":"R","name":"A"}"#,
                Now::system(),
            );
            hub.handle_frame(ParticipantId(1), text, Now::system());
            hub.handle_frame(ParticipantId(2), text, Now::system());
            while hub.poll_output().is_some() {}
        }
        n += 1;
    }
    assert!(n >= 5, "expected the seed regressions in {}", dir.display());
}

/// Replays `fuzz/regressions/pad_update/` through the `pad_update` target's
/// body, then a bounded, seeded mutation loop over valid frames (stable
/// `cargo test`, under 2 s).
#[test]
fn pad_update_regressions_and_seeded_mutations() {
    use yrs::updates::encoder::Encode as _;
    use yrs::{Doc, ReadTxn as _, Text as _, Transact as _};

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/pad_update");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            salon_gateway::pad::fuzz_one(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n >= 5, "expected the seed regressions in {}", dir.display());

    // Valid frames to mutate: an insert, a delete, a step 1, awareness.
    let doc = Doc::with_client_id(42);
    let text = doc.get_or_insert_text("pad");
    let sv0 = doc.transact().state_vector();
    text.insert(
        &mut doc.transact_mut(),
        0,
        "Relevé de décisions\n- un\n- deux",
    );
    let sv1 = doc.transact().state_vector();
    text.remove_range(&mut doc.transact_mut(), 3, 5);
    use yrs::sync::{Message, SyncMessage};
    let seeds: Vec<Vec<u8>> = vec![
        Message::Sync(SyncMessage::Update(
            doc.transact().encode_state_as_update_v1(&sv0),
        ))
        .encode_v1(),
        Message::Sync(SyncMessage::SyncStep2(
            doc.transact().encode_state_as_update_v1(&sv1),
        ))
        .encode_v1(),
        Message::Sync(SyncMessage::SyncStep1(sv1)).encode_v1(),
        vec![1, 10, 1, 42, 1, 6, b'{', b'"', b'a', b'"', b':', b'}'],
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = std::time::Instant::now();
    let mut runs = 0u32;
    while runs < 20_000 && start.elapsed() < std::time::Duration::from_millis(1500) {
        let mut buf = seeds[(next() % seeds.len() as u64) as usize].clone();
        for _ in 0..=(next() % 4) {
            if buf.is_empty() {
                buf.push(next() as u8);
                continue;
            }
            let i = (next() % buf.len() as u64) as usize;
            match next() % 4 {
                0 => buf[i] = next() as u8,
                1 => buf[i] ^= 1 << (next() % 8),
                2 => buf.truncate(i),
                _ => buf.insert(i, next() as u8),
            }
        }
        salon_gateway::pad::fuzz_one(&buf);
        runs += 1;
    }
    assert!(runs > 200, "only {runs} mutations ran");
}
