//! A structural check of a Yjs update (lib0 v1 encoding) before yrs
//! integrates it: yrs trusts that an update comes from a real Yjs peer,
//! and a hostile one can make its integration loop forever (a fuzz
//! finding: `fuzz/regressions/pad_update/item-is-its-own-origin.bin`, an
//! item whose left and right origins are itself, repeated in a second
//! section of the same client; yrs 0.28.1 then walks a cyclic list in
//! `Item::resolve_conflict` and never returns).
//!
//! What a real peer sends always has a causal order, so this refuses, in
//! time linear in the update's size:
//! - a client that appears in two sections (its clocks would overlap);
//! - a block whose clock range overflows;
//! - content other than what a text pad produces (GC, skip, deleted,
//!   string, embed, format, binary, a nested type): JSON, `Any` and
//!   sub-documents are refused, so this decoder stays small and agrees
//!   with yrs's on every block boundary;
//! - a dependency cycle: each block depends on the block before it of its
//!   own client, and on the blocks (of this update) holding its left
//!   origin, right origin and parent. A real peer can only name what
//!   existed before, so the graph is acyclic; an item naming itself or a
//!   later item is not.
//!
//! References to items outside the update are left to yrs (integrated
//! from the document, or kept pending). The decoder mirrors
//! `yrs::Update::decode` (0.28) for the accepted subset; [`check`] returns
//! the per-client clock ends so the caller can compare them with what yrs
//! decoded, and refuse on any disagreement.

use std::collections::BTreeMap;

/// Why an update was refused by [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not decodable as the accepted subset of a v1 update.
    Malformed,
    /// A client appears in two sections.
    RepeatedClient,
    /// A content kind a text pad never produces.
    UnsupportedContent,
    /// A block names itself, or a block after it, as its origin or parent.
    Cycle,
}

/// One decoded block: its range and what it names.
#[derive(Debug, Clone, Copy)]
struct Block {
    client: u64,
    skip: bool,
    clock: u32,
    len: u32,
    refs: Refs,
}

/// Per-client end clock (the state vector) of a well-formed update.
pub type Ends = BTreeMap<u64, u32>;

/// Checks the update in `bytes` (a y-protocols `Update` or `SyncStep2`
/// payload, lib0 v1). `Ok` holds the update's state vector.
pub fn check(bytes: &[u8]) -> Result<Ends, Refusal> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let (blocks, sections) = decode_blocks(&mut r)?;
    acyclic(&blocks, &sections)?;
    // As `yrs::Update::state_vector` computes it: a client's blocks count
    // from clock 0 up to the first skip.
    let mut ends = Ends::new();
    for &(client, start, end) in &sections {
        let section = &blocks[start..end];
        if section.first().is_some_and(|b| b.clock == 0) {
            let last = section
                .iter()
                .take_while(|b| !b.skip)
                .last()
                .map_or(0, |b| b.clock + b.len);
            if last != 0 {
                ends.insert(client, last);
            }
        }
    }
    Ok(ends)
}

/// Sections as (client, first block index, end index).
type Sections = Vec<(u64, usize, usize)>;

fn decode_blocks(r: &mut Reader<'_>) -> Result<(Vec<Block>, Sections), Refusal> {
    let clients = r.var_u32()?;
    let mut blocks: Vec<Block> = Vec::new();
    let mut sections: Sections = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..clients {
        let count = r.var_u32()?;
        // yrs keeps the low 53 bits of a client id (`ClientID::new`): two
        // ids that differ above them are the same client.
        let client = r.var_u64()? & CLIENT_MASK;
        let mut clock = r.var_u32()?;
        if !seen.insert(client) {
            return Err(Refusal::RepeatedClient);
        }
        let start = blocks.len();
        for _ in 0..count {
            // Every block costs at least one byte of input: the count
            // cannot make this loop outlast the buffer.
            if r.remaining() == 0 {
                return Err(Refusal::Malformed);
            }
            let Some((len, refs, skip)) = decode_block(r)? else {
                continue;
            };
            blocks.push(Block {
                client,
                skip,
                clock,
                len,
                refs,
            });
            clock = clock.checked_add(len).ok_or(Refusal::Malformed)?;
        }
        sections.push((client, start, blocks.len()));
    }
    Ok((blocks, sections))
}

/// The bits of a client id that yrs keeps.
const CLIENT_MASK: u64 = (1 << 53) - 1;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// The ids a block names: left origin, right origin, parent.
type Refs = [Option<(u64, u32)>; 3];

/// One block: `None` for an item yrs drops (zero length), else its length,
/// the ids it names and whether it is a skip.
fn decode_block(r: &mut Reader<'_>) -> Result<Option<(u32, Refs, bool)>, Refusal> {
    let info = r.u8()?;
    match info {
        // GC and skip: a length, nothing named.
        0 | 10 => {
            let len = r.var_u32()?;
            if len == 0 {
                return Err(Refusal::Malformed);
            }
            return Ok(Some((len, [None; 3], info == 10)));
        }
        _ => {}
    }
    let mut refs = [None; 3];
    if info & HAS_ORIGIN != 0 {
        refs[0] = Some(r.id()?);
    }
    if info & HAS_RIGHT_ORIGIN != 0 {
        refs[1] = Some(r.id()?);
    }
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        if r.var_u32()? == 1 {
            r.string()?;
        } else {
            refs[2] = Some(r.id()?);
        }
        if info & HAS_PARENT_SUB != 0 {
            r.string()?;
        }
    }
    let len = match info & 0b1111 {
        // deleted
        1 => r.var_u32()?,
        // binary: one buffer
        3 => {
            r.bytes()?;
            1
        }
        // string: its length in UTF-16 code units
        4 => {
            let s = r.string()?;
            u32::try_from(s.encode_utf16().count()).map_err(|_| Refusal::Malformed)?
        }
        // embed: a JSON string
        5 => {
            r.string()?;
            1
        }
        // format: key and JSON value
        6 => {
            r.string()?;
            r.string()?;
            1
        }
        // a nested type: its type ref, with a name for an XML element
        7 => {
            let type_ref = r.u8()?;
            match type_ref {
                // XmlElement
                3 => {
                    r.string()?;
                }
                // array, map, text, fragment, hook, xml text, sub-doc, undefined
                0 | 1 | 2 | 4 | 5 | 6 | 9 | 15 => {}
                _ => return Err(Refusal::Malformed),
            }
            1
        }
        // JSON, Any, sub-document: never produced by a text pad.
        2 | 8 | 9 => return Err(Refusal::UnsupportedContent),
        _ => return Err(Refusal::Malformed),
    };
    Ok((len > 0).then_some((len, refs, false)))
}

/// Whether `ends` is the state vector yrs decoded from the same bytes.
pub fn same_ends(ends: &Ends, decoded: &yrs::StateVector) -> bool {
    decoded.len() == ends.len()
        && decoded
            .iter()
            .all(|(client, clock)| ends.get(&client.get()) == Some(clock))
}

/// Refuses a dependency cycle (see the module's documentation).
fn acyclic(blocks: &[Block], sections: &Sections) -> Result<(), Refusal> {
    let by_client: BTreeMap<u64, (usize, usize)> = sections
        .iter()
        .map(|&(client, start, end)| (client, (start, end)))
        .collect();
    // The block of this update holding `id`, if any.
    let holder = |(client, clock): (u64, u32)| -> Option<usize> {
        let &(start, end) = by_client.get(&client)?;
        let section = &blocks[start..end];
        let i = section.partition_point(|b| b.clock.saturating_add(b.len) <= clock);
        (i < section.len() && section[i].clock <= clock).then_some(start + i)
    };
    // Each block's dependencies; iterative depth-first search with three
    // colours (0 unseen, 1 on the stack, 2 done).
    let deps = |i: usize| -> [Option<usize>; 4] {
        let b = blocks[i];
        let previous = by_client
            .get(&b.client)
            .and_then(|&(start, _)| (i > start).then(|| i - 1));
        [
            previous,
            b.refs[0].and_then(holder),
            b.refs[1].and_then(holder),
            b.refs[2].and_then(holder),
        ]
    };
    let mut colour = vec![0u8; blocks.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..blocks.len() {
        if colour[root] != 0 {
            continue;
        }
        colour[root] = 1;
        stack.push((root, 0));
        while let Some((node, next)) = stack.pop() {
            let ds = deps(node);
            if next < ds.len() {
                stack.push((node, next + 1));
                if let Some(d) = ds[next] {
                    match colour[d] {
                        0 => {
                            colour[d] = 1;
                            stack.push((d, 0));
                        }
                        1 => return Err(Refusal::Cycle),
                        _ => {}
                    }
                }
            } else {
                colour[node] = 2;
            }
        }
    }
    Ok(())
}

/// lib0 v1 primitives over a byte slice; every read is bounds-checked.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn u8(&mut self) -> Result<u8, Refusal> {
        let b = *self.buf.get(self.pos).ok_or(Refusal::Malformed)?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn var_u64(&mut self) -> Result<u64, Refusal> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f)
                .checked_shl(shift)
                .ok_or(Refusal::Malformed)?;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refusal::Malformed)
    }

    pub(super) fn var_u32(&mut self) -> Result<u32, Refusal> {
        u32::try_from(self.var_u64()?).map_err(|_| Refusal::Malformed)
    }

    pub(super) fn id(&mut self) -> Result<(u64, u32), Refusal> {
        Ok((self.var_u64()? & CLIENT_MASK, self.var_u32()?))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], Refusal> {
        let len = usize::try_from(self.var_u32()?).map_err(|_| Refusal::Malformed)?;
        let end = self.pos.checked_add(len).ok_or(Refusal::Malformed)?;
        let out = self.buf.get(self.pos..end).ok_or(Refusal::Malformed)?;
        self.pos = end;
        Ok(out)
    }

    pub(super) fn string(&mut self) -> Result<&'a str, Refusal> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Refusal::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

    fn edits() -> Vec<Vec<u8>> {
        let a = Doc::with_client_id(1);
        let b = Doc::with_client_id(2);
        let ta = a.get_or_insert_text("pad");
        let tb = b.get_or_insert_text("pad");
        let mut out = Vec::new();
        {
            let mut txn = a.transact_mut();
            ta.insert(&mut txn, 0, "ordre du jour — réunion 🎉");
        }
        let first = a
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        out.push(first.clone());
        b.transact_mut()
            .apply_update(Update::decode_v1(&first).unwrap())
            .unwrap();
        {
            let mut txn = b.transact_mut();
            tb.insert(&mut txn, 6, "ÉTÉ ");
            tb.remove_range(&mut txn, 0, 3);
        }
        {
            let mut txn = a.transact_mut();
            ta.insert(&mut txn, 0, "x");
            ta.remove_range(&mut txn, 4, 2);
        }
        let sv = a.transact().state_vector();
        out.push(b.transact().encode_state_as_update_v1(&sv));
        out.push(
            b.transact()
                .encode_state_as_update_v1(&StateVector::default()),
        );
        out.push(
            a.transact()
                .encode_state_as_update_v1(&StateVector::default()),
        );
        assert!(!ta.get_string(&a.transact()).is_empty());
        out
    }

    #[test]
    fn real_edits_pass_and_agree_with_yrs_on_the_state_vector() {
        for update in edits() {
            let ends = check(&update).expect("a real peer's update");
            let decoded = Update::decode_v1(&update).unwrap().state_vector();
            assert!(same_ends(&ends, &decoded));
        }
    }

    #[test]
    fn the_fuzz_finding_is_refused() {
        let frame = include_bytes!("../../fuzz/regressions/pad_update/item-is-its-own-origin.bin");
        // y-protocols framing: message type 0 (sync), 2 (update), then the
        // update as a length-prefixed buffer.
        let mut r = Reader {
            buf: &frame[2..],
            pos: 0,
        };
        let update = r.bytes().unwrap();
        assert!(check(update).is_err());
    }

    #[test]
    fn an_item_naming_itself_is_a_cycle() {
        // One client (7), one string item at clock 0 whose origin is 7:0.
        let update = [1, 1, 7, 0, HAS_ORIGIN | 4, 7, 0, 1, b'a', 0];
        assert_eq!(check(&update), Err(Refusal::Cycle));
        // Origin at a later clock of its own client: also a cycle.
        let update = [
            1,
            2,
            7,
            0,
            HAS_ORIGIN | 4,
            7,
            1,
            1,
            b'a',
            4 | HAS_ORIGIN,
            7,
            0,
            1,
            b'b',
            0,
        ];
        assert_eq!(check(&update), Err(Refusal::Cycle));
    }

    #[test]
    fn a_client_in_two_sections_is_refused() {
        let update = [2, 1, 7, 0, 0, 1, 1, 7, 0, 0, 1, 0];
        assert_eq!(check(&update), Err(Refusal::RepeatedClient));
    }

    #[test]
    fn truncated_or_huge_counts_are_malformed_quickly() {
        assert_eq!(check(&[]), Err(Refusal::Malformed));
        assert_eq!(
            check(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f, 7, 0]),
            Err(Refusal::Malformed)
        );
    }
}
