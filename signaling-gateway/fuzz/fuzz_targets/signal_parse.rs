//! Fuzz the signaling parser: arbitrary bytes must give a message or a
//! protocol error, never a panic. Then feed the same bytes to the hub as a
//! frame from a joined and an unjoined socket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salon_gateway::control::ParticipantId;
use salon_gateway::hub::Hub;
use salon_gateway::protocol::parse_client_bytes;

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let mut hub = Hub::new();
        hub.handle_open(ParticipantId(1));
        hub.handle_open(ParticipantId(2));
        hub.handle_frame(ParticipantId(2), r#"{"type":"join","room":"R","name":"A"}"#);
        hub.handle_frame(ParticipantId(1), text);
        hub.handle_frame(ParticipantId(2), text);
        while hub.poll_output().is_some() {}
    }
});
