//! Who a ban, a kick or a deny cooldown applies to, and the room's bans.
//!
//! An authenticated user is known by its token's identity (issuer, `sub`
//! and user — `context.user.id`, else its e-mail — never the bare `sub`,
//! which names a whole tenant in Jitsi deployments). For bans and kicks an
//! anonymous guest has no identity: it is known by its network address
//! (IPv4, or the /64 of an IPv6 address, which one subscriber usually holds
//! whole) and by its participant id, so a new socket does not reset a ban.
//! The cost: anonymous guests behind the same NAT share the fate of the one
//! who was banned, for the lifetime of the room (a moderator's deliberate
//! act against a person in the meeting).
//!
//! A deny cooldown is lighter and more frequent (a moderator refusing a
//! stranger at the door), so it follows the knocker, never the address
//! alone: the token holder's identity, else the participant id and the
//! lobby token the page got with its first `lobby` ([`knocker_keys`]).
//! Colleagues behind the same NAT are still shown to the moderator; the
//! address only counts in the lobby's own per-address bounds
//! (`super::lobby`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use salon_plugins::Identity;

use crate::control::ParticipantId;

/// A network address as bans and per-address limits see it: an IPv4
/// address, or the /64 prefix of an IPv6 one (IPv4-mapped addresses are
/// IPv4). Never logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(IpAddr);

impl PeerKey {
    /// The key of a peer address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = v6.to_bits() & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(std::net::Ipv6Addr::from_bits(prefix)))
                }
            },
        }
    }
}

/// One key of a ban, a kick or a deny cooldown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Who {
    /// A token's user: its issuer, `sub`, and `context.user.id` (else its
    /// e-mail).
    User {
        issuer: String,
        sub: Option<String>,
        user: Option<String>,
    },
    /// An anonymous guest's network address.
    Address(PeerKey),
    /// A participant id (the socket it joined on).
    Participant(ParticipantId),
    /// A lobby token (deny cooldowns only): the page sends it back when
    /// it joins again.
    Knocker(String),
}

/// The keys a join, a knock or a lobby entry is checked against: the
/// identity for a token holder; the address (if known) and the participant
/// id for an anonymous guest.
pub(super) fn check_keys(
    id: ParticipantId,
    identity: Option<&Identity>,
    peer: Option<PeerKey>,
) -> Vec<Who> {
    match identity {
        Some(i) => vec![user_key(i)],
        None => {
            let mut keys = vec![Who::Participant(id)];
            keys.extend(peer.map(Who::Address));
            keys
        }
    }
}

/// The keys a ban, a kick or a deny records: the identity (token holders),
/// the participant id, and the address (so the same person does not come
/// back as an anonymous guest from the same network).
pub(super) fn record_keys(
    id: ParticipantId,
    identity: Option<&Identity>,
    peer: Option<PeerKey>,
) -> Vec<Who> {
    let mut keys = vec![Who::Participant(id)];
    keys.extend(identity.map(user_key));
    keys.extend(peer.map(Who::Address));
    keys
}

/// The keys a deny cooldown records and checks: the identity for a token
/// holder; the participant id and the lobby token for an anonymous guest —
/// never the network address (colleagues behind one NAT are not the
/// guest who was refused).
pub(super) fn knocker_keys(
    id: ParticipantId,
    identity: Option<&Identity>,
    token: &str,
) -> Vec<Who> {
    match identity {
        Some(i) => vec![user_key(i), Who::Knocker(token.to_owned())],
        None => vec![Who::Participant(id), Who::Knocker(token.to_owned())],
    }
}

fn user_key(i: &Identity) -> Who {
    Who::User {
        issuer: i.issuer.clone(),
        sub: i.sub.clone(),
        user: i.user_id.clone().or_else(|| i.email.clone()),
    }
}

/// How long a ban holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// Until the room ends (`kick` with `ban`).
    RoomEnd,
    /// Until then (a kick).
    Time(Instant),
}

/// A room's bans (dropped with the room).
#[derive(Debug, Default)]
pub(super) struct Bans(BTreeMap<Who, Until>);

impl Bans {
    /// Bans `keys` until `until` (a longer ban already there stays).
    pub(super) fn ban(&mut self, keys: Vec<Who>, until: Until, now: Instant) {
        self.0
            .retain(|_, u| !matches!(u, Until::Time(t) if *t <= now));
        for key in keys {
            let longer = match (self.0.get(&key), until) {
                (Some(Until::RoomEnd), _) => Until::RoomEnd,
                (Some(Until::Time(a)), Until::Time(b)) => Until::Time((*a).max(b)),
                (Some(Until::Time(_)) | None, u) => u,
            };
            self.0.insert(key, longer);
        }
    }

    /// The longest ban on any of `keys` still running at `now`.
    pub(super) fn check(&self, keys: &[Who], now: Instant) -> Option<Until> {
        keys.iter()
            .filter_map(|k| self.0.get(k).copied())
            .filter(|u| !matches!(u, Until::Time(t) if *t <= now))
            .max_by_key(|u| match u {
                Until::RoomEnd => (1, None),
                Until::Time(t) => (0, Some(*t)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ipv6_peers_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(PeerKey::of(a), PeerKey::of(b));
        assert_ne!(PeerKey::of(a), PeerKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            PeerKey::of(mapped),
            PeerKey::of(IpAddr::from([192, 0, 2, 7]))
        );
    }

    #[test]
    fn the_longest_ban_wins_and_timed_ones_expire() {
        let t = Instant::now();
        let key = Who::Participant(ParticipantId(1));
        let mut bans = Bans::default();
        bans.ban(
            vec![key.clone()],
            Until::Time(t + Duration::from_secs(60)),
            t,
        );
        assert_eq!(
            bans.check(std::slice::from_ref(&key), t),
            Some(Until::Time(t + Duration::from_secs(60)))
        );
        assert_eq!(
            bans.check(std::slice::from_ref(&key), t + Duration::from_secs(60)),
            None
        );
        bans.ban(vec![key.clone()], Until::RoomEnd, t);
        bans.ban(
            vec![key.clone()],
            Until::Time(t + Duration::from_secs(1)),
            t,
        );
        assert_eq!(
            bans.check(&[key], t + Duration::from_secs(3600)),
            Some(Until::RoomEnd)
        );
    }
}
