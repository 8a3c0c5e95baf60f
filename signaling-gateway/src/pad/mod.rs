//! The meeting's collaborative pad: one Yjs document per room, held in
//! memory only, synced with browsers over the Yjs sync protocol
//! (y-protocols: `SyncStep1`, `SyncStep2`, `Update`, one message per binary
//! WebSocket frame, as y-websocket frames them).
//!
//! Sans-IO: [`PadDoc::handle_frame`] takes one frame from one browser and
//! returns what to send back to it and what to relay to the room's other pad
//! sockets. It never panics on arbitrary bytes (`tests/fuzz_regressions.rs`,
//! `fuzz/fuzz_targets/pad_update.rs`). Content is never logged and never
//! written to disk: dropping the [`PadDoc`] frees it.

mod causal;
mod frame;

use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// Largest accepted pad frame (one y-protocols message), in bytes.
pub const MAX_PAD_FRAME_BYTES: usize = 256 * 1024;
/// Largest pad document (its encoded state), in bytes.
pub const MAX_PAD_DOC_BYTES: usize = 1024 * 1024;
/// Largest relayed awareness message (cursor, name, colour), in bytes: a
/// browser's is a few hundred.
pub const MAX_AWARENESS_BYTES: usize = 4 * 1024;

/// Why a pad frame was refused. The sender's pad socket is closed with
/// [`PadError::close_code`]; the document and the other sockets are untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PadError {
    /// Frame over [`MAX_PAD_FRAME_BYTES`] (or awareness over
    /// [`MAX_AWARENESS_BYTES`]).
    #[error("pad frame too large")]
    TooLarge,
    /// Not a y-protocols message, or an update that does not decode/apply.
    #[error("malformed pad frame")]
    Malformed,
    /// Applying the update would make the document larger than
    /// [`MAX_PAD_DOC_BYTES`].
    #[error("pad document full")]
    DocumentFull,
}

impl PadError {
    /// WebSocket close code for the sender's pad socket.
    pub fn close_code(self) -> u16 {
        match self {
            PadError::TooLarge | PadError::DocumentFull => 1009,
            PadError::Malformed => 1007,
        }
    }

    /// Close reason (stable, also shown by the client by code).
    pub fn as_str(self) -> &'static str {
        match self {
            PadError::TooLarge => "pad-too-large",
            PadError::Malformed => "pad-malformed",
            PadError::DocumentFull => "pad-full",
        }
    }
}

/// What to do after a frame was accepted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PadReply {
    /// Frame for the sender only (e.g. `SyncStep2` answering its `SyncStep1`).
    pub reply: Option<Vec<u8>>,
    /// Frame for every other pad socket of the room.
    pub relay: Option<Vec<u8>>,
}

/// One meeting's document.
#[derive(Debug)]
pub struct PadDoc {
    doc: Doc,
    /// Upper bound of the encoded document size: exact after each
    /// recomputation, plus the bytes of updates applied since.
    size_bound: usize,
    /// Times the document was found broken (a yrs panic reading it back)
    /// and started afresh.
    resets: u32,
}

impl Default for PadDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl PadDoc {
    /// An empty document.
    pub fn new() -> Self {
        Self {
            doc: Doc::new(),
            size_bound: 0,
            resets: 0,
        }
    }

    /// Runs `f` on the document; if yrs panics inside (a document that an
    /// accepted update left unreadable: a fuzz finding), the document
    /// starts afresh — the browsers still hold their copies and push them
    /// back at their next sync — and `None` is returned. Never a hub task
    /// down.
    fn guarded<T>(&mut self, f: impl FnOnce(&Doc) -> T) -> Option<T> {
        let doc = &self.doc;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(doc))) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!("pad document unreadable: started afresh");
                self.doc = Doc::new();
                self.size_bound = 0;
                self.resets = self.resets.saturating_add(1);
                None
            }
        }
    }

    /// Times the document was found unreadable and started afresh.
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// The first frame for a newly opened pad socket: our `SyncStep1`, so
    /// the browser sends what we miss.
    pub fn greeting(&mut self) -> Vec<u8> {
        let sv = self
            .guarded(|doc| doc.transact().state_vector())
            .unwrap_or_default();
        Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()
    }

    /// Size of the encoded document, in bytes (exact; O(document)).
    pub fn encoded_len(&mut self) -> usize {
        self.guarded(|doc| {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
                .len()
        })
        .unwrap_or(0)
    }

    /// The text of the root `Y.Text` named `name` (tests, export checks).
    pub fn text(&self, name: &str) -> String {
        use yrs::GetString as _;
        let text = self.doc.get_or_insert_text(name);
        text.get_string(&self.doc.transact())
    }

    /// Handles one frame from one browser.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<PadReply, PadError> {
        if frame.len() > MAX_PAD_FRAME_BYTES {
            return Err(PadError::TooLarge);
        }
        // yrs's decoders reserve memory for the counts a frame declares,
        // and panic on some hostile input where built with debug
        // assertions (fuzz findings, `fuzz/regressions/pad_update/`): the
        // frame is read and its counts checked first (`frame.rs`), and yrs
        // decodes under `catch_unwind` — a refused frame, never a hub task
        // down or stalled.
        match frame::parse(frame).map_err(|_| PadError::Malformed)? {
            frame::Frame::Step1(sv) => {
                let sv = no_panic(|| StateVector::decode_v1(sv).ok())?;
                let diff = self
                    .guarded(|doc| doc.transact().encode_state_as_update_v1(&sv))
                    .ok_or(PadError::Malformed)?;
                Ok(PadReply {
                    reply: Some(Message::Sync(SyncMessage::SyncStep2(diff)).encode_v1()),
                    relay: None,
                })
            }
            frame::Frame::Step2(update) | frame::Frame::Update(update) => {
                self.apply(update)?;
                // Relayed as an Update whatever the step (y-websocket does the same).
                Ok(PadReply {
                    reply: None,
                    relay: Some(Message::Sync(SyncMessage::Update(update.to_vec())).encode_v1()),
                })
            }
            frame::Frame::Awareness => {
                if frame.len() > MAX_AWARENESS_BYTES {
                    return Err(PadError::TooLarge);
                }
                // Relayed as received; never stored.
                Ok(PadReply {
                    reply: None,
                    relay: Some(frame.to_vec()),
                })
            }
            // Nothing to answer: we keep no awareness state to send.
            frame::Frame::AwarenessQuery => Ok(PadReply::default()),
        }
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<(), PadError> {
        if self.size_bound.saturating_add(bytes.len()) > MAX_PAD_DOC_BYTES {
            self.size_bound = self.encoded_len();
            if self.size_bound.saturating_add(bytes.len()) > MAX_PAD_DOC_BYTES {
                return Err(PadError::DocumentFull);
            }
        }
        // yrs trusts an update's causal structure, and one without it can
        // make yrs loop forever (a fuzz finding): checked first, in time
        // linear in its size, by a decoder that must agree with yrs's.
        let ends = causal::check(bytes).map_err(|_| PadError::Malformed)?;
        let decoded = no_panic(|| Update::decode_v1(bytes).ok())?;
        if !causal::same_ends(&ends, &decoded.state_vector()) {
            return Err(PadError::Malformed);
        }
        drop(decoded);
        // An update that leaves a document yrs cannot read back (a fuzz
        // finding) is refused before it reaches the meeting's document:
        // tried alone on a scratch document first, which costs the
        // update's size, not the document's.
        let scratch = Doc::new();
        let tried = apply_without_unwinding(&scratch, bytes);
        if tried == Applied::Broken {
            // Its state is unknown: never dropped (a few bytes leaked per
            // such frame, whose sender's pad socket is then closed).
            std::mem::forget(scratch);
            return Err(PadError::Malformed);
        }
        let readable = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let txn = scratch.transact();
            let _ = txn.encode_state_as_update_v1(&StateVector::default());
            let _ = txn.state_vector();
        }));
        if readable.is_err() {
            std::mem::forget(scratch);
            return Err(PadError::Malformed);
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(scratch))).is_err()
            || tried == Applied::Refused
        {
            return Err(PadError::Malformed);
        }
        match apply_without_unwinding(&self.doc, bytes) {
            Applied::Yes => {
                self.size_bound = self.size_bound.saturating_add(bytes.len());
                Ok(())
            }
            Applied::Refused => Err(PadError::Malformed),
            Applied::Broken => {
                // The meeting's document is in an unknown state: it starts
                // afresh (the browsers push their copies back) and the old
                // one is never dropped.
                let old = std::mem::replace(&mut self.doc, Doc::new());
                std::mem::forget(old);
                self.size_bound = 0;
                self.resets = self.resets.saturating_add(1);
                tracing::warn!("pad update broke the document: started afresh");
                Err(PadError::Malformed)
            }
        }
    }
}

/// What [`apply_without_unwinding`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Applied and committed.
    Yes,
    /// Not decoded, or refused by yrs with an error: the document is as
    /// it was.
    Refused,
    /// yrs panicked: the document's state is unknown; its transaction was
    /// forgotten (never dropped), so the document must be too.
    Broken,
}

/// Applies the update in `bytes` to `doc`. A yrs panic must not unwind
/// through its transaction: the transaction commits in its destructor,
/// which can panic again on the same broken state — and a panic during
/// unwinding aborts the process (a fuzz finding). So the transaction lives
/// outside the unwinding closure, and after a panic it is forgotten.
fn apply_without_unwinding(doc: &Doc, bytes: &[u8]) -> Applied {
    let Ok(update) = no_panic(|| Update::decode_v1(bytes).ok()) else {
        return Applied::Refused;
    };
    let Ok(mut txn) = doc.try_transact_mut() else {
        return Applied::Refused;
    };
    let applied =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| txn.apply_update(update)));
    let outcome = match applied {
        Ok(Ok(())) => Applied::Yes,
        Ok(Err(_)) => Applied::Refused,
        Err(_) => {
            std::mem::forget(txn);
            return Applied::Broken;
        }
    };
    // The commit runs in the destructor: a panic there is a single panic,
    // caught — but the document is then in an unknown state.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(txn))) {
        Ok(()) => outcome,
        Err(_) => Applied::Broken,
    }
}

/// `decode`, with a panic inside it (or nothing decoded) as a malformed
/// frame.
fn no_panic<T>(decode: impl FnOnce() -> Option<T>) -> Result<T, PadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .ok()
        .flatten()
        .ok_or(PadError::Malformed)
}

#[doc(hidden)]
/// The body of the `pad_update` fuzz target, shared with
/// `tests/fuzz_regressions.rs`: a document holding known text gets `data`
/// as a frame; whether accepted or refused, it must not panic, a refusal
/// must leave the text as it was, and the document must still sync.
pub fn fuzz_one(data: &[u8]) {
    use yrs::Text as _;
    let mut pad = PadDoc::new();
    {
        let text = pad.doc.get_or_insert_text("pad");
        let mut txn = pad.doc.transact_mut();
        text.insert(&mut txn, 0, "ordre du jour");
    }
    let before = pad.text("pad");
    let accepted = pad.handle_frame(data).is_ok();
    if !accepted {
        assert_eq!(pad.text("pad"), before, "a refused frame changed the text");
    }
    // The document still answers a fresh peer.
    let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
    assert!(pad.handle_frame(&step1).is_ok_and(|r| r.reply.is_some()));
}
