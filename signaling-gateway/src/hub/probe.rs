//! Connectivity probes for the `/test` page: before any join, a socket may
//! offer one short-lived publish transport to mediad, so the page can check
//! UDP, ICE-TCP and TURN to the media plane without joining a meeting.
//!
//! A probe is a hidden participant with its own random id, alone in its own
//! mediad room (`~probe-<id>`: a name no `join` can ask for, so it never
//! meets anyone and no hub room or policy call exists for it). The hub
//! answers with mediad's SDP answer and TURN servers minted for the probe
//! id. Bounds: one probe per socket at a time (a new `probe` replaces the
//! old one), a token bucket per socket and one per network address
//! ([`HubLimits`](super::HubLimits)`::probe_*`), and a lifetime
//! (`probe_lifetime`, 20 s by default) after which mediad forgets it; a
//! closed socket takes its probe along.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng as _;
use rand::rngs::StdRng;

use super::bans::PeerKey;
use super::limits::RateBucket;
use super::timers::Timer;
use super::{Hub, Now, Output, ms};
use crate::control::{Command, Event, ParticipantId, RoomId};
use crate::protocol::{ErrorCode, IceServer, ProtocolError, ServerMessage};

/// How long a probe's TURN credentials outlive the probe: room for the
/// clocks of Salon and coturn to differ a little.
const PROBE_TURN_MARGIN: Duration = Duration::from_secs(60);

/// Address buckets kept before full ones are forgotten.
const ADDRESS_BUCKETS_KEPT: usize = 1024;

/// Probes started, refused and ended (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeCounts {
    /// Probe transports asked of mediad.
    pub started: u64,
    /// `probe` messages refused by a rate limit or a wrong state.
    pub refused: u64,
    /// Probes ended by their lifetime (the others end with their socket or
    /// the next probe).
    pub expired: u64,
}

/// One socket's live probe.
#[derive(Debug)]
struct Probe {
    /// The hidden participant id in mediad.
    pid: ParticipantId,
    /// When mediad is told to forget it.
    until: Instant,
    /// TURN servers minted for it, sent with the answer.
    ice_servers: Vec<IceServer>,
}

/// Every live probe, by socket and by hidden id, and their rate buckets.
#[derive(Debug)]
pub(super) struct Probes {
    by_socket: BTreeMap<ParticipantId, Probe>,
    /// Hidden id → socket.
    by_pid: BTreeMap<ParticipantId, ParticipantId>,
    socket_buckets: BTreeMap<ParticipantId, RateBucket>,
    address_buckets: BTreeMap<PeerKey, RateBucket>,
    counts: ProbeCounts,
    rng: StdRng,
}

impl Probes {
    pub(super) fn new(rng: StdRng) -> Self {
        Self {
            by_socket: BTreeMap::new(),
            by_pid: BTreeMap::new(),
            socket_buckets: BTreeMap::new(),
            address_buckets: BTreeMap::new(),
            counts: ProbeCounts::default(),
            rng,
        }
    }

    /// Whether `id` is a live probe's hidden id.
    pub(super) fn is_probe(&self, id: ParticipantId) -> bool {
        self.by_pid.contains_key(&id)
    }
}

impl Hub {
    /// Probes started, refused, expired.
    pub fn probe_counts(&self) -> ProbeCounts {
        self.probes.counts
    }

    /// Live probe transports.
    pub fn probe_count(&self) -> usize {
        self.probes.by_socket.len()
    }

    /// `probe {sdp}` from idle socket `socket`: within the rate limits, the
    /// socket's previous probe ends and a new hidden participant offers
    /// `sdp` to mediad.
    pub(super) fn probe(&mut self, socket: ParticipantId, sdp: String, now: Now) {
        if let Err(wait) = self.probe_allowed(socket, now) {
            self.probes.counts.refused += 1;
            let left = ms(wait);
            tracing::info!(participant = %socket, "probe rate limit");
            self.refuse_with(
                socket,
                ErrorCode::RateLimited,
                format!(
                    "too many connection probes; try again in {left} ms (retry_after_ms={left})"
                ),
            );
            return;
        }
        self.end_probe(socket);
        let pid = self.fresh_probe_id();
        // Credentials that die with the probe (a minute more for the clocks
        // of Salon and coturn), not a whole TTL later: the socket was never
        // admitted anywhere.
        let ice_servers = match &self.turn {
            Some(turn) => turn.ice_servers_for(
                pid,
                now.unix_ms / 1000,
                self.limits.probe_lifetime + PROBE_TURN_MARGIN,
            ),
            None => Vec::new(),
        };
        let until = now.mono + self.limits.probe_lifetime;
        self.probes.by_socket.insert(
            socket,
            Probe {
                pid,
                until,
                ice_servers,
            },
        );
        self.probes.by_pid.insert(pid, socket);
        self.probes.counts.started += 1;
        self.timers.set(until, Timer::ProbeEnd(socket));
        tracing::debug!(participant = %socket, probe = %pid, "connectivity probe");
        let request = self.next_request();
        self.media(Command::Join {
            room: RoomId(format!("~probe-{}", pid.0)),
            participant: pid,
        });
        self.media(Command::PublishOffer {
            participant: pid,
            request,
            sdp,
        });
    }

    /// A `probe` from a socket that is in a room or a lobby, or left.
    pub(super) fn refuse_probe(&mut self, id: ParticipantId, code: ErrorCode) {
        self.probes.counts.refused += 1;
        self.refuse(id, code);
    }

    /// Takes a token from the socket's bucket and its address's.
    fn probe_allowed(&mut self, socket: ParticipantId, now: Now) -> Result<(), Duration> {
        let l = &self.limits;
        let (burst, per_min) = (l.probe_burst, l.probes_per_min);
        let (a_burst, a_per_min) = (l.probes_per_address_burst, l.probes_per_address_per_min);
        let bucket = self
            .probes
            .socket_buckets
            .entry(socket)
            .or_insert_with(|| RateBucket::new(burst, now.mono));
        bucket.take(now.mono, burst, per_min)?;
        let Some(peer) = self.peers.get(&socket).copied().filter(|_| a_per_min > 0) else {
            return Ok(());
        };
        let buckets = &mut self.probes.address_buckets;
        if buckets.len() >= ADDRESS_BUCKETS_KEPT {
            buckets.retain(|_, b| !b.is_full(now.mono, a_burst, a_per_min));
        }
        buckets
            .entry(peer)
            .or_insert_with(|| RateBucket::new(a_burst, now.mono))
            .take(now.mono, a_burst, a_per_min)
    }

    /// A random hidden id that names no socket, participant or probe.
    fn fresh_probe_id(&mut self) -> ParticipantId {
        loop {
            let v = self.probes.rng.random::<u64>() & (ParticipantId::LIMIT - 1);
            let id = ParticipantId(v);
            if v != 0 && !self.id_in_use(id) {
                return id;
            }
        }
    }

    /// Ends socket `socket`'s probe, if any: mediad forgets it.
    pub(super) fn end_probe(&mut self, socket: ParticipantId) -> bool {
        let Some(probe) = self.probes.by_socket.remove(&socket) else {
            return false;
        };
        self.probes.by_pid.remove(&probe.pid);
        self.media(Command::Leave {
            participant: probe.pid,
        });
        true
    }

    /// A socket closed: its probe ends, its bucket is forgotten.
    pub(super) fn probe_socket_closed(&mut self, socket: ParticipantId) {
        self.end_probe(socket);
        self.probes.socket_buckets.remove(&socket);
    }

    /// Socket `socket`'s probe lifetime may be over.
    pub(super) fn probe_due(&mut self, socket: ParticipantId, now: Now) {
        if self
            .probes
            .by_socket
            .get(&socket)
            .is_some_and(|p| p.until <= now.mono)
            && self.end_probe(socket)
        {
            self.probes.counts.expired += 1;
            tracing::debug!(participant = %socket, "connectivity probe expired");
        }
    }

    /// A media event for a probe's hidden id: the answer or the error goes
    /// to its socket, anything else is dropped. `false`: not a probe's.
    pub(super) fn probe_event(&mut self, event: &Event) -> bool {
        let pid = match event {
            Event::PublishAnswer { participant, .. }
            | Event::SubscribeOffer { participant, .. }
            | Event::Connected { participant, .. }
            | Event::Error { participant, .. }
            | Event::TrackPublished { participant, .. }
            | Event::TransportLost { participant, .. }
            | Event::LayersWanted { participant, .. }
            | Event::DominantSpeaker { participant, .. } => *participant,
            #[allow(unreachable_patterns)]
            _ => return false,
        };
        let Some(&socket) = self.probes.by_pid.get(&pid) else {
            return false;
        };
        match event {
            Event::PublishAnswer { sdp, .. } => {
                let (ice_servers, ttl_ms) = self
                    .probes
                    .by_socket
                    .get(&socket)
                    .map(|p| (p.ice_servers.clone(), ms(self.limits.probe_lifetime)))
                    .unwrap_or_default();
                self.outputs.push_back(Output::Send {
                    to: socket,
                    msg: ServerMessage::ProbeAnswer {
                        sdp: sdp.clone(),
                        ice_servers,
                        ttl_ms,
                    },
                });
            }
            Event::Error { error, .. } => {
                tracing::info!(participant = %socket, %error, "media plane refused a probe");
                self.send_error(
                    socket,
                    &ProtocolError::new(ErrorCode::Media, error.to_string()),
                );
            }
            _ => {}
        }
        true
    }
}
