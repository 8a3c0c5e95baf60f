//! The meeting pad: documents sync between the room's pad sockets, bad
//! tokens and frames close only their sender, and the document is capped.

use yrs::updates::encoder::Encode as _;
use yrs::{Doc, GetString as _, ReadTxn as _, Text as _, Transact as _};

use super::support::*;

#[test]
fn pad_syncs_between_participants_and_dies_with_the_meeting() {
    let mut hub = Hub::with_seed(3);
    let o1 = join(&mut hub, 1, "R", "Ana");
    let o2 = join(&mut hub, 2, "R", "Bob");
    let o3 = join(&mut hub, 3, "X", "Cy");
    assert_eq!(hub.pads_live(), 0, "pads are created on first use");
    let c1 = open_pad(&mut hub, &o1, 1, 11);
    let c2 = open_pad(&mut hub, &o2, 2, 12);
    let c3 = open_pad(&mut hub, &o3, 3, 13);
    let out = drain(&mut hub);
    assert_eq!(hub.pads_live(), 2);
    // Each gets the server's SyncStep1.
    for c in [c1, c2, c3] {
        assert_eq!(pad_frames(&out, c).len(), 1);
    }
    let (d1, d2, d3) = (Doc::with_client_id(1), Doc::with_client_id(2), Doc::new());
    hub.handle_pad_frame(c1, &edit(&d1, 0, "Ordre du jour"), t0());
    let out = drain(&mut hub);
    apply_frames(&d2, &pad_frames(&out, c2));
    assert!(pad_frames(&out, c1).is_empty(), "no echo");
    assert!(pad_frames(&out, c3).is_empty(), "other room");
    hub.handle_pad_frame(c2, &edit(&d2, 0, "# "), t0());
    let out = drain(&mut hub);
    apply_frames(&d1, &pad_frames(&out, c1));
    let text = |d: &Doc| d.get_or_insert_text("pad").get_string(&d.transact());
    assert_eq!(text(&d1), "# Ordre du jour");
    assert_eq!(text(&d2), text(&d1));
    assert_eq!(hub.pad_text("R", "pad").unwrap(), "# Ordre du jour");
    // A late joiner catches up with SyncStep1 → SyncStep2.
    let o4 = join(&mut hub, 4, "R", "Dan");
    let c4 = open_pad(&mut hub, &o4, 4, 14);
    drain(&mut hub);
    let d4 = Doc::new();
    let step1 = yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep1(
        d4.transact().state_vector(),
    ))
    .encode_v1();
    hub.handle_pad_frame(c4, &step1, t0());
    apply_frames(&d4, &pad_frames(&drain(&mut hub), c4));
    assert_eq!(text(&d4), "# Ordre du jour");
    assert_eq!(text(&d3), "");
    // Everyone leaves: the pad sockets are closed and the pad is gone.
    for id in [1, 2, 4] {
        hub.handle_close(p(id), t0());
    }
    let out = drain(&mut hub);
    for c in [c1, c2, c4] {
        assert_eq!(pad_close(&out, c), Some("left"));
    }
    assert_eq!(hub.pads_live(), 1, "room X's pad is still live");
    assert_eq!(hub.pad_text("R", "pad"), None);
    assert_eq!(hub.room_count(), 1);
    hub.handle_close(p(3), t0());
    drain(&mut hub);
    assert_eq!(hub.pads_live(), 0);
    assert_eq!(hub.room_count(), 0);
    assert_eq!(hub.pad_connections(), 0);
    // A new meeting with the same name starts with an empty pad.
    let o5 = join(&mut hub, 5, "R", "Eve");
    let c5 = open_pad(&mut hub, &o5, 5, 15);
    drain(&mut hub);
    assert_eq!(hub.pad_text("R", "pad").unwrap(), "");
    // Old tokens no longer open anything.
    hub.handle_pad_open(PadConnId(16), &token_of(&o1, p(1)));
    assert_eq!(
        pad_close(&drain(&mut hub), PadConnId(16)),
        Some("pad-denied")
    );
    let _ = c5;
}

#[test]
fn pad_refuses_bad_tokens_and_bad_frames_for_their_sender_only() {
    let mut hub = Hub::with_seed(4);
    let o1 = join(&mut hub, 1, "R", "Ana");
    let o2 = join(&mut hub, 2, "R", "Bob");
    hub.handle_pad_open(PadConnId(9), "not-a-token");
    assert_eq!(
        pad_close(&drain(&mut hub), PadConnId(9)),
        Some("pad-denied")
    );
    assert_eq!(hub.pads_live(), 0);
    let c1 = open_pad(&mut hub, &o1, 1, 1);
    let c2 = open_pad(&mut hub, &o2, 2, 2);
    drain(&mut hub);
    let d1 = Doc::with_client_id(1);
    hub.handle_pad_frame(c1, &edit(&d1, 0, "bonjour"), t0());
    drain(&mut hub);
    // Malformed: garbage, a sync update whose payload is not an update,
    // an unknown sync step.
    for bad in [
        &[0xffu8, 0xff, 0xff][..],
        &[0, 2, 3, 0xff, 0xff, 0xff][..],
        &[0, 9, 0][..],
        &[2, 0][..],
    ] {
        let o = join(&mut hub, 3, "R", "Mallory");
        let c3 = open_pad(&mut hub, &o, 3, 3);
        drain(&mut hub);
        hub.handle_pad_frame(c3, bad, t0());
        let out = drain(&mut hub);
        assert_eq!(pad_close(&out, c3), Some("pad-malformed"), "{bad:?}");
        assert!(pad_frames(&out, c1).is_empty() && pad_frames(&out, c2).is_empty());
        // Later frames from the closed socket are ignored.
        hub.handle_pad_frame(c3, &edit(&Doc::new(), 0, "x"), t0());
        assert!(drain(&mut hub).is_empty());
        hub.handle_close(p(3), t0());
        drain(&mut hub);
    }
    // Oversized update: refused.
    let big = Doc::with_client_id(7);
    let frame = edit(&big, 0, &"a".repeat(crate::pad::MAX_PAD_FRAME_BYTES));
    hub.handle_pad_frame(c2, &frame, t0());
    assert_eq!(pad_close(&drain(&mut hub), c2), Some("pad-too-large"));
    // Ana is unaffected and the document intact.
    hub.handle_pad_frame(c1, &edit(&d1, 7, " !"), t0());
    assert!(pad_close(&drain(&mut hub), c1).is_none());
    assert_eq!(hub.pad_text("R", "pad").unwrap(), "bonjour !");
    // Bob reconnects with the same session token.
    let c2b = open_pad(&mut hub, &o2, 2, 22);
    assert_eq!(pad_frames(&drain(&mut hub), c2b).len(), 1);
    assert_eq!(hub.pad_connections(), 2);
}

#[test]
fn pad_document_size_is_capped() {
    let mut hub = Hub::with_seed(5);
    let o1 = join(&mut hub, 1, "R", "Ana");
    let c1 = open_pad(&mut hub, &o1, 1, 1);
    drain(&mut hub);
    let d = Doc::with_client_id(1);
    let chunk = "z".repeat(200 * 1024);
    let mut accepted = 0;
    let mut full = false;
    for _ in 0..8 {
        let len = d.get_or_insert_text("pad").len(&d.transact());
        hub.handle_pad_frame(c1, &edit(&d, len, &chunk), t0());
        match pad_close(&drain(&mut hub), c1) {
            None => accepted += 1,
            Some(reason) => {
                assert_eq!(reason, "pad-full");
                full = true;
                break;
            }
        }
    }
    assert!(full && accepted == 5, "accepted {accepted}");
    let len = hub.pad_text("R", "pad").unwrap().len();
    assert!(len <= crate::pad::MAX_PAD_DOC_BYTES, "{len}");
}
