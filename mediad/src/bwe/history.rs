//! What was sent: a fixed ring indexed by transport-wide sequence number.

/// What the feedback said so far about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Unreported,
    Lost,
    Received,
}

/// One sent packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub seq: u64,
    pub size: u32,
    /// Send time in µs since the estimator's first packet.
    pub send_us: i64,
    pub probe: Option<u32>,
    pub fate: Fate,
}

/// Ring of the last `capacity` packets sent. Allocated once.
#[derive(Debug)]
pub(crate) struct SendHistory {
    slots: Box<[Option<Sent>]>,
}

impl SendHistory {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: vec![None; capacity.max(16)].into_boxed_slice(),
        }
    }

    fn slot(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    pub fn insert(&mut self, s: Sent) {
        let i = self.slot(s.seq);
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(s);
        }
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Sent> {
        let i = self.slot(seq);
        self.slots
            .get_mut(i)
            .and_then(|s| s.as_mut())
            .filter(|s| s.seq == seq)
    }
}
