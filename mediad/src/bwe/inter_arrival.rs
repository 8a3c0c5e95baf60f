//! Packet groups and their inter-group deltas (libwebrtc
//! `InterArrivalDelta`): packets sent within 5 ms form a group; a packet
//! arriving less than 5 ms after the group's last one with a negative
//! propagation delta is part of the same burst.

const GROUP_US: i64 = 5_000;
const BURST_US: i64 = 5_000;
const MAX_BURST_US: i64 = 100_000;

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: i64,
    last_send: i64,
    first_arrival: i64,
    last_arrival: i64,
}

/// The deltas between two consecutive complete groups, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupDelta {
    pub send_delta_ms: f64,
    pub arrival_delta_ms: f64,
    /// Arrival time of the later group (receiver clock), in ms.
    pub arrival_ms: f64,
}

#[derive(Debug, Default)]
pub(crate) struct InterArrival {
    current: Option<Group>,
    previous: Option<Group>,
}

impl InterArrival {
    /// Add a received packet; returns the deltas when it closes a group.
    pub fn add(&mut self, send_us: i64, arrival_us: i64) -> Option<GroupDelta> {
        let Some(mut cur) = self.current else {
            self.current = Some(Group {
                first_send: send_us,
                last_send: send_us,
                first_arrival: arrival_us,
                last_arrival: arrival_us,
            });
            return None;
        };
        if send_us < cur.first_send {
            return None; // reordered across groups: ignore
        }
        let in_group = send_us - cur.first_send <= GROUP_US;
        let arrival_gap = arrival_us.saturating_sub(cur.last_arrival);
        let propagation = arrival_gap.saturating_sub(send_us - cur.last_send);
        let in_burst = (0..BURST_US).contains(&arrival_gap)
            && propagation < 0
            && arrival_us.saturating_sub(cur.first_arrival) < MAX_BURST_US;
        if in_group || in_burst {
            cur.last_send = cur.last_send.max(send_us);
            cur.last_arrival = cur.last_arrival.max(arrival_us);
            self.current = Some(cur);
            return None;
        }
        let out = self.previous.and_then(|prev| {
            let send_delta = cur.last_send - prev.last_send;
            let arrival_delta = cur.last_arrival.saturating_sub(prev.last_arrival);
            (arrival_delta >= 0).then(|| GroupDelta {
                send_delta_ms: send_delta as f64 / 1000.0,
                arrival_delta_ms: arrival_delta as f64 / 1000.0,
                arrival_ms: cur.last_arrival as f64 / 1000.0,
            })
        });
        self.previous = Some(cur);
        self.current = Some(Group {
            first_send: send_us,
            last_send: send_us,
            first_arrival: arrival_us,
            last_arrival: arrival_us,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_five_ms() {
        let mut ia = InterArrival::default();
        // Packets every 2 ms, each arriving 50 ms later, plus 1 ms of
        // queueing growth per 10 ms.
        let mut out = Vec::new();
        for i in 0..50i64 {
            let send = i * 2_000;
            let arrival = send + 50_000 + send / 10;
            out.extend(ia.add(send, arrival));
        }
        assert!(out.len() >= 7, "{}", out.len());
        for d in &out {
            assert!(
                (d.arrival_delta_ms - d.send_delta_ms * 1.1).abs() < 1e-6,
                "{d:?}"
            );
        }
    }
}
