//! What the hub's rooms hold, for the operator's metrics: conferences by
//! size (as jicofo's `conference_sizes`) and participants by role.

use salon_plugins::Role;

use super::Hub;

/// Upper bounds of the conference size buckets (the last one is open).
pub const SIZE_BUCKETS: [(usize, &str); 7] = [
    (1, "1"),
    (2, "2"),
    (5, "3-5"),
    (10, "6-10"),
    (20, "11-20"),
    (50, "21-50"),
    (usize::MAX, "51+"),
];

/// A count of the hub's rooms and members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Rooms per [`SIZE_BUCKETS`] bucket (members, lobby excluded).
    pub by_size: [u64; SIZE_BUCKETS.len()],
    /// Members by role: moderators, participants, guests.
    pub by_role: [u64; 3],
}

impl Hub {
    /// Counts the rooms by size and their members by role (O(members)).
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for room in self.rooms.values() {
            let size = room.members.len();
            if size == 0 {
                continue;
            }
            if let Some(i) = SIZE_BUCKETS.iter().position(|(max, _)| size <= *max) {
                c.by_size[i] += 1;
            }
            for id in room.members.iter() {
                let i = match self.member(*id).map(|m| m.role) {
                    Some(Role::Moderator) => 0,
                    Some(Role::Participant) => 1,
                    Some(Role::Guest) => 2,
                    None => continue,
                };
                c.by_role[i] += 1;
            }
        }
        c
    }
}
