//! ICE-lite: mediad answers the browser's connectivity checks and latches
//! the address an authenticated check came from; it never sends checks of
//! its own. A check is accepted only with our ufrag, a valid
//! MESSAGE-INTEGRITY under our password and a valid FINGERPRINT, and (once
//! the browser's SDP is known) the browser's ufrag. The first accepted
//! check latches; a later one with USE-CANDIDATE moves the latch.
//! Consent freshness (RFC 7675): every accepted check renews the peer's
//! consent; a transport without one for
//! [`super::transport::CONSENT_TIMEOUT`] stops sending (the worker checks
//! it in its timers and tells the gateway), until a check comes again.
//!
//! ICE-TCP (RFC 6544, passive): the driver hands each RFC 4571 frame of a
//! TCP connection in as a datagram from the connection's *stream address*
//! (`salon_io::tcp`), so the rules are the same: the first authenticated
//! check on a connection latches it, USE-CANDIDATE moves the latch. A
//! transport removed or out of consent has its connection closed. One
//! exception: USE-CANDIDATE does not move a transport from a UDP address
//! that is alive (an authenticated check within [`UDP_PATH_ALIVE`]) to a
//! TCP connection. Firefox nominates aggressively (USE-CANDIDATE on every
//! check of every pair) and then uses the pair of highest priority, UDP:
//! following its last TCP check would strand its DTLS on UDP. A browser
//! whose UDP has really gone stops checking it, and its TCP nomination
//! moves the latch once the UDP address has been silent that long.
//!
//! Relayed transports (TURN): mediad cannot tell a relayed check from a
//! direct one by its content; it knows the addresses its TURN servers
//! relay from (the worker's `relay_ips`: the `--turn-url` hosts and
//! `--turn-relay-ip`), and a check latched from one of them counts as
//! relayed (`ice_succeeded_relayed`, and the `relayed_transports` gauge
//! while it stays latched).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use salon_io::TxQueue;
use salon_proto::stun;

use super::ids::{Table, TransportId};
use super::transport::Transport;
use crate::metrics::Metrics;

/// A UDP address that had an authenticated check this recently is alive:
/// a TCP nomination does not take its transport away (browsers check the
/// selected pair every 2.5 to 6 s).
pub const UDP_PATH_ALIVE: Duration = Duration::from_secs(8);

/// A latched address: its transport, and its last authenticated check.
#[derive(Debug, Clone, Copy)]
struct Latched {
    id: TransportId,
    last_check: Instant,
}

/// The worker's ICE-lite agent: which transport a ufrag and a latched
/// address belong to.
#[derive(Debug, Default)]
pub struct IceLite {
    by_ufrag: HashMap<String, TransportId>,
    by_addr: HashMap<SocketAddr, Latched>,
    /// The addresses TURN servers relay from (a handful: a linear scan).
    relays: Vec<IpAddr>,
}

impl IceLite {
    /// An agent that counts checks from `relays` as relayed.
    pub fn new(relays: Vec<IpAddr>) -> Self {
        Self {
            relays,
            ..Self::default()
        }
    }

    /// Whether `addr` is a TURN relay's (TURN relays to us over UDP only).
    fn is_relayed(&self, addr: &SocketAddr) -> bool {
        !salon_io::is_stream(addr) && self.relays.contains(&addr.ip().to_canonical())
    }

    /// `addr` latched to `l`.
    fn insert(&mut self, addr: SocketAddr, l: Latched, metrics: &Metrics) {
        if self.by_addr.insert(addr, l).is_none() && self.is_relayed(&addr) {
            metrics.relayed_transports.add(1);
        }
    }

    /// `addr` no longer latched.
    fn remove(&mut self, addr: &SocketAddr, metrics: &Metrics) {
        if self.by_addr.remove(addr).is_some() && self.is_relayed(addr) {
            metrics.relayed_transports.sub(1);
        }
    }

    /// Whether a local ufrag is taken.
    pub fn has_ufrag(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    /// Checks with `ufrag` are for transport `id`.
    pub fn register(&mut self, ufrag: String, id: TransportId) {
        self.by_ufrag.insert(ufrag, id);
    }

    /// Transport `id` (being removed) no longer answers checks nor owns
    /// its latched address.
    pub fn forget(&mut self, id: TransportId, t: &Transport, metrics: &Metrics) {
        self.by_ufrag.remove(t.local_ufrag());
        if let Some(a) = t.addr()
            && self.owner(a) == Some(id)
        {
            self.remove(&a, metrics);
        }
    }

    /// Transport `id` restarts ICE: checks with `old` are no longer its;
    /// checks with `new` are.
    pub fn rekey(&mut self, id: TransportId, old: &str, new: String) {
        if self.by_ufrag.get(old) == Some(&id) {
            self.by_ufrag.remove(old);
        }
        self.by_ufrag.insert(new, id);
    }

    /// The transport latched to `src`.
    #[inline]
    pub fn latched(&self, src: SocketAddr) -> Option<TransportId> {
        self.owner(src)
    }

    #[inline]
    fn owner(&self, addr: SocketAddr) -> Option<TransportId> {
        self.by_addr.get(&addr).map(|l| l.id)
    }

    /// Whether a nominated check from `to` may take the latch from `from`:
    /// not from a live UDP address to a TCP connection (see the module
    /// documentation).
    fn may_move(&self, from: SocketAddr, to: SocketAddr, now: Instant) -> bool {
        if salon_io::is_stream(&from) || !salon_io::is_stream(&to) {
            return true;
        }
        self.by_addr
            .get(&from)
            .is_none_or(|l| now >= l.last_check + UDP_PATH_ALIVE)
    }

    /// One STUN datagram from `src`: answer an authenticated binding
    /// request and latch its address.
    pub fn handle_stun(
        &mut self,
        transports: &mut Table<TransportId, Transport>,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        tx: &mut TxQueue,
        metrics: &Metrics,
    ) {
        metrics.rx_stun.inc();
        let msg = match stun::StunMessage::parse(data) {
            Ok(m) => m,
            Err(_) => {
                metrics.drop_stun_malformed.inc();
                return;
            }
        };
        if !msg.is_binding_request() {
            metrics.drop_stun_malformed.inc();
            return;
        }
        let Some((local, remote)) = msg.username().and_then(stun::split_ice_username) else {
            metrics.drop_stun_auth.inc();
            return;
        };
        let Some(&idx) = std::str::from_utf8(local)
            .ok()
            .and_then(|u| self.by_ufrag.get(u))
        else {
            metrics.drop_stun_auth.inc();
            return;
        };
        let Some(t) = transports.get_mut(idx) else {
            return;
        };
        if !msg.verify_fingerprint() || !msg.verify_integrity(t.local_pwd().as_bytes()) {
            metrics.drop_stun_auth.inc();
            return;
        }
        if let Some(expected) = t.remote_ufrag()
            && expected.as_bytes() != remote
        {
            metrics.drop_stun_auth.inc();
            return;
        }
        // An address latched by another transport is never taken over: a
        // client that can spoof source addresses must not point someone
        // else's media elsewhere.
        if self.owner(src).is_some_and(|owner| owner != idx) {
            metrics.drop_addr_taken.inc();
            return;
        }
        let Some(buf) = tx.buffer() else {
            metrics.drop_tx_full.inc();
            return;
        };
        // Over TCP, the peer's address as the connection shows it (a
        // stream address is the driver's name for the connection).
        let mapped = salon_io::stream_peer(src).unwrap_or(src);
        match stun::write_binding_success(
            &mut buf[..],
            msg.transaction_id(),
            mapped,
            t.local_pwd().as_bytes(),
        ) {
            Ok(n) => tx.commit(src, n),
            Err(_) => return,
        }
        if t.addr() == Some(src)
            && let Some(l) = self.by_addr.get_mut(&src)
        {
            l.last_check = now;
        }
        let moves = match t.addr() {
            None => true,
            Some(old) => old != src && msg.use_candidate() && self.may_move(old, src, now),
        };
        if moves {
            if let Some(old) = t.addr()
                && self.owner(old) == Some(idx)
            {
                self.remove(&old, metrics);
            }
            t.latch(src, now);
            self.insert(
                src,
                Latched {
                    id: idx,
                    last_check: now,
                },
                metrics,
            );
            if salon_io::is_stream(&src) {
                metrics.ice_succeeded_tcp.inc();
            } else {
                metrics.ice_succeeded_udp.inc();
                if self.is_relayed(&src) {
                    metrics.ice_succeeded_relayed.inc();
                }
            }
        } else if t.on_consent(now) {
            metrics.consent_regained.inc();
            tracing::info!(participant = %t.participant(), transport = ?t.kind(), "consent regained");
        }
    }
}
