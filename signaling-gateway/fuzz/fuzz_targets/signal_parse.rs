//! Fuzz the signaling parser: arbitrary bytes must give a message or a
//! protocol error, never a panic. Then feed the same bytes to the hub as a
//! frame from a joined and an unjoined socket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salon_gateway::control::ParticipantId;
use salon_gateway::hub::{Hub, Now};
use salon_gateway::protocol::parse_client_bytes;

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let mut hub = Hub::with_seed(1);
        hub.handle_open(ParticipantId(1));
        hub.handle_open(ParticipantId(2));
        hub.handle_frame(ParticipantId(2), r#"{"type":"join","room":"R","name":"A"}"#, Now::system());
        hub.handle_frame(ParticipantId(1), text, Now::system());
        hub.handle_frame(ParticipantId(2), text, Now::system());
        while hub.poll_output().is_some() {}
    }
});
