//! A set of participants in order of arrival: rosters and lobbies list
//! people in the order they came, whatever their (random) ids.

use crate::control::ParticipantId;

/// Participants, each once, in the order they were inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArrivalSet(Vec<ParticipantId>);

impl ArrivalSet {
    /// Add `id` at the end (no change if present). True if it was added.
    pub fn insert(&mut self, id: ParticipantId) -> bool {
        if self.0.contains(&id) {
            return false;
        }
        self.0.push(id);
        true
    }

    /// Remove `id`. True if it was there.
    pub fn remove(&mut self, id: &ParticipantId) -> bool {
        let before = self.0.len();
        self.0.retain(|x| x != id);
        self.0.len() != before
    }

    /// Whether `id` is in.
    pub fn contains(&self, id: &ParticipantId) -> bool {
        self.0.contains(id)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In order of arrival.
    pub fn iter(&self) -> std::slice::Iter<'_, ParticipantId> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ArrivalSet {
    type Item = &'a ParticipantId;
    type IntoIter = std::slice::Iter<'a, ParticipantId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ArrivalSet {
    type Item = ParticipantId;
    type IntoIter = std::vec::IntoIter<ParticipantId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_of_arrival_not_of_ids() {
        let mut s = ArrivalSet::default();
        for id in [900, 5, 77] {
            assert!(s.insert(ParticipantId(id)));
        }
        assert!(!s.insert(ParticipantId(5)));
        assert!(s.remove(&ParticipantId(5)));
        assert!(!s.remove(&ParticipantId(5)));
        assert!(s.insert(ParticipantId(5)));
        let order: Vec<u64> = s.iter().map(|p| p.0).collect();
        assert_eq!(order, [900, 77, 5]);
    }
}
