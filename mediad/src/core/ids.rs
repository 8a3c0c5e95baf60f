//! Typed handles for the worker's tables, and the arena that hands them
//! out. A transport, a track or a layer is never addressed by a bare
//! `usize`: the type says which table an index belongs to.

use std::fmt;
use std::marker::PhantomData;

/// An index into one [`Table`].
pub trait Id: Copy + Eq {
    /// The handle of slot `i`.
    fn from_index(i: usize) -> Self;
    /// The slot this handle names.
    fn index(self) -> usize;
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl Id for $name {
            fn from_index(i: usize) -> Self {
                Self(u32::try_from(i).unwrap_or(u32::MAX))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

typed_id!(
    /// One of the worker's transports (a browser's peer connection).
    TransportId,
    "t"
);
typed_id!(
    /// One incoming track (an m-line of a publish transport).
    TrackId,
    "tr"
);

impl TrackId {
    /// As the allocator's opaque candidate id.
    pub fn index_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// Back from the allocator's candidate id.
    pub fn from_u64(v: u64) -> Self {
        Self(u32::try_from(v).unwrap_or(u32::MAX))
    }
}

/// One encoding of a track, lowest quality first (0 without simulcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LayerIdx(u8);

impl LayerIdx {
    /// The only layer of a track without simulcast; the lowest otherwise.
    pub const BASE: Self = Self(0);

    /// Layer `i` (saturating at 255).
    pub fn new(i: usize) -> Self {
        Self(u8::try_from(i).unwrap_or(u8::MAX))
    }

    /// Its position in the track's layer list.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// As the allocator's spatial layer number.
    pub fn as_u8(self) -> u8 {
        self.0
    }
}

impl From<u8> for LayerIdx {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

/// Slots addressed by typed handles; freed slots are reused (last freed
/// first), so handles stay small and iteration order is deterministic.
#[derive(Debug)]
pub struct Table<K, V> {
    slots: Vec<Option<V>>,
    free: Vec<usize>,
    _key: PhantomData<fn(K) -> K>,
}

impl<K: Id, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            _key: PhantomData,
        }
    }
}

impl<K: Id, V> Table<K, V> {
    /// Store `v`, in a freed slot if there is one.
    pub fn insert(&mut self, v: V) -> K {
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(i)
        {
            *slot = Some(v);
            return K::from_index(i);
        }
        self.slots.push(Some(v));
        K::from_index(self.slots.len() - 1)
    }

    /// Take the value out; its slot is free for the next insert.
    pub fn remove(&mut self, k: K) -> Option<V> {
        let v = self.slots.get_mut(k.index())?.take()?;
        self.free.push(k.index());
        Some(v)
    }

    /// The value of `k`, if present.
    pub fn get(&self, k: K) -> Option<&V> {
        self.slots.get(k.index())?.as_ref()
    }

    /// The value of `k`, if present.
    pub fn get_mut(&mut self, k: K) -> Option<&mut V> {
        self.slots.get_mut(k.index())?.as_mut()
    }

    /// Every present value with its handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &V)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((K::from_index(i), v.as_ref()?)))
    }

    /// Every present value with its handle, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut V)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| Some((K::from_index(i), v.as_mut()?)))
    }

    /// Every present value, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }

    /// Every present value, in slot order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten()
    }

    /// Every handle that may be present, in slot order, without borrowing
    /// the table (for loops that mutate it; absent slots come back `None`
    /// from [`Table::get`]).
    pub fn handles(&self) -> impl Iterator<Item = K> + use<K, V> {
        (0..self.slots.len()).map(K::from_index)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_last_freed_first() {
        let mut t: Table<TrackId, &str> = Table::default();
        let a = t.insert("a");
        let b = t.insert("b");
        let c = t.insert("c");
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.remove(c), Some("c"));
        assert_eq!(t.remove(c), None, "removed once");
        assert_eq!(t.insert("d"), c);
        assert_eq!(t.insert("e"), a);
        assert_eq!(t.get(b), Some(&"b"));
        let all: Vec<_> = t.values().copied().collect();
        assert_eq!(all, ["e", "b", "d"]);
        assert_eq!(t.handles().count(), 3);
    }
}
