//! Replays every input kept in `fuzz/regressions/signal_parse/` through the
//! same code the `signal_parse` fuzz target runs.

use std::path::Path;

use salon_gateway::control::ParticipantId;
use salon_gateway::hub::Hub;
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
            let mut hub = Hub::new();
            hub.handle_open(ParticipantId(1));
            hub.handle_open(ParticipantId(2));
            hub.handle_frame(ParticipantId(2), r#"{"type":"join","room":"R","name":"A"}"#);
            hub.handle_frame(ParticipantId(1), text);
            hub.handle_frame(ParticipantId(2), text);
            while hub.poll_output().is_some() {}
        }
        n += 1;
    }
    assert!(n >= 5, "expected the seed regressions in {}", dir.display());
}
