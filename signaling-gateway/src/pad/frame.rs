//! The y-protocols frame around a pad message, read before yrs decodes
//! anything: yrs's decoders reserve memory for the counts a frame declares
//! (a fuzz finding: a 94-byte awareness frame declaring ~16 million
//! entries made yrs 0.28.1 reserve and clear a ~500 MB hash table, 1.5 s
//! on the hub task, `fuzz/regressions/pad_update/awareness-count-reserves-500-mb.bin`;
//! a state vector's count does the same). Here every count is checked
//! against the bytes that follow before yrs sees them.
//!
//! A frame is `varuint type`, then for sync (0) `varuint step` and a
//! length-prefixed payload (a state vector for step 1, an update for steps
//! 2 and update), for awareness (1) a length-prefixed awareness update, for
//! an awareness query (3) nothing. Auth (2) and other types are refused.

use super::causal::{Reader, Refusal};

/// One pad message, its payload borrowed from the frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame<'a> {
    /// A state vector (checked).
    Step1(&'a [u8]),
    /// An update answering our step 1.
    Step2(&'a [u8]),
    /// An update.
    Update(&'a [u8]),
    /// An awareness update (checked: entries, JSON states).
    Awareness,
    /// A request for awareness states.
    AwarenessQuery,
}

/// Reads `frame`. Bytes after the message are ignored, as y-protocols
/// does.
pub(super) fn parse(frame: &[u8]) -> Result<Frame<'_>, Refusal> {
    let mut r = Reader::new(frame);
    match r.var_u32()? {
        0 => {
            let step = r.var_u32()?;
            let payload = r.bytes()?;
            match step {
                0 => {
                    state_vector(payload)?;
                    Ok(Frame::Step1(payload))
                }
                1 => Ok(Frame::Step2(payload)),
                2 => Ok(Frame::Update(payload)),
                _ => Err(Refusal::Malformed),
            }
        }
        1 => {
            awareness(r.bytes()?)?;
            Ok(Frame::Awareness)
        }
        3 => Ok(Frame::AwarenessQuery),
        _ => Err(Refusal::Malformed),
    }
}

/// Largest JavaScript-safe integer: Yjs client ids are JS numbers.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A state vector: a count, then (client, clock) pairs — at least two
/// bytes each, so the count cannot exceed what follows.
fn state_vector(bytes: &[u8]) -> Result<(), Refusal> {
    let mut r = Reader::new(bytes);
    let count = r.var_u32()?;
    if usize::try_from(count).map_or(true, |c| c > r.remaining() / 2) {
        return Err(Refusal::Malformed);
    }
    for _ in 0..count {
        if r.var_u64()? > MAX_SAFE_INTEGER {
            return Err(Refusal::Malformed);
        }
        r.var_u32()?;
    }
    Ok(())
}

/// An awareness update as y-protocols' `applyAwarenessUpdate` reads it: a
/// count, then (client id, clock, JSON state) — at least three bytes each.
/// The states must be JSON (the browsers `JSON.parse` them).
fn awareness(bytes: &[u8]) -> Result<(), Refusal> {
    let mut r = Reader::new(bytes);
    let count = r.var_u32()?;
    if usize::try_from(count).map_or(true, |c| c > r.remaining() / 3) {
        return Err(Refusal::Malformed);
    }
    for _ in 0..count {
        if r.var_u64()? > MAX_SAFE_INTEGER {
            return Err(Refusal::Malformed);
        }
        r.var_u32()?;
        let state = r.string()?;
        serde_json::from_str::<serde::de::IgnoredAny>(state).map_err(|_| Refusal::Malformed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::sync::{Awareness, Message, SyncMessage};
    use yrs::updates::encoder::Encode;
    use yrs::{Doc, StateVector};

    #[test]
    fn what_a_peer_sends_is_read() {
        let doc = Doc::with_client_id(42);
        let mut awareness = Awareness::new(doc);
        awareness
            .set_local_state(r##"{"user":{"name":"Aline","color":"#1e6091"}}"##)
            .unwrap();
        let update = awareness.update().unwrap();
        let frame = Message::Awareness(update).encode_v1();
        assert_eq!(parse(&frame), Ok(Frame::Awareness));
        let mut sv = StateVector::default();
        sv.set_max(yrs::block::ClientID::new(42), 7);
        sv.set_max(yrs::block::ClientID::new(1 << 40), 3);
        let frame = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
        assert!(matches!(parse(&frame), Ok(Frame::Step1(_))));
        assert_eq!(parse(&[3]), Ok(Frame::AwarenessQuery));
        assert_eq!(parse(&[0, 2, 2, 0, 0]), Ok(Frame::Update(&[0, 0])));
    }

    #[test]
    fn counts_beyond_the_bytes_are_refused_before_yrs_reserves_for_them() {
        let frame =
            include_bytes!("../../fuzz/regressions/pad_update/awareness-count-reserves-500-mb.bin");
        assert_eq!(parse(frame), Err(Refusal::Malformed));
        // A state vector declaring 2^32 - 1 entries in five bytes.
        assert_eq!(
            parse(&[0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(Refusal::Malformed)
        );
        // An awareness state that is not JSON.
        assert_eq!(parse(&[1, 5, 1, 1, 0, 1, b'{']), Err(Refusal::Malformed));
        // Auth and unknown types.
        assert_eq!(parse(&[2, 0]), Err(Refusal::Malformed));
        assert_eq!(parse(&[9, 0]), Err(Refusal::Malformed));
    }
}
