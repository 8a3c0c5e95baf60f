//! Process-wide bounds on connections: how many WebSockets in all and per
//! client address, and which `Host` names the server answers to.

// Request input: never index or slice, never `expect` (CONTRIBUTING.md).
#![deny(clippy::indexing_slicing, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Why a WebSocket upgrade was refused before it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The server holds its most sockets (HTTP 503).
    Global,
    /// The client's address holds its most sockets (HTTP 429).
    PerIp,
}

/// Counts open WebSockets, in all and per client address (an IPv4
/// address, or an IPv6 /64: one subscriber's prefix). A lock per upgrade
/// and per close, never per frame.
#[derive(Debug)]
pub(super) struct ConnLimits {
    max: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnLimits {
    /// `0`: no limit.
    pub(super) fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_ip,
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a place for one socket from `peer`, held until the permit
    /// drops.
    pub(super) fn acquire(self: &Arc<Self>, peer: IpAddr) -> Result<ConnPermit, Refusal> {
        let key = ip_key(peer);
        let mut open = self.open.lock().map_err(|_| Refusal::Global)?;
        if self.max > 0 && open.total >= self.max {
            return Err(Refusal::Global);
        }
        let n = open.per_ip.entry(key).or_default();
        if self.max_per_ip > 0 && *n >= self.max_per_ip {
            if *n == 0 {
                open.per_ip.remove(&key);
            }
            return Err(Refusal::PerIp);
        }
        *n += 1;
        open.total += 1;
        Ok(ConnPermit {
            limits: self.clone(),
            key,
        })
    }

    fn release(&self, key: IpAddr) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&key);
            }
        }
    }
}

/// One socket's place in [`ConnLimits`]; given back on drop.
#[derive(Debug)]
pub(super) struct ConnPermit {
    limits: Arc<ConnLimits>,
    key: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

/// The address a per-IP limit counts under: IPv4 as it is (also when
/// mapped into IPv6), IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Which `Host` names the server answers to (DNS rebinding: a page of
/// `evil.example` whose name now resolves to 127.0.0.1 must not reach a
/// loopback instance).
#[derive(Debug, Clone)]
pub(super) enum AllowedHosts {
    /// Any host (a public listener without `--allowed-host`).
    Any,
    /// `localhost` and loopback literals (127.0.0.0/8, `[::1]`), any port:
    /// the default of a loopback listener.
    Loopback,
    /// These names (lowercase, without port), as the operator gave them.
    Names(Vec<String>),
}

impl AllowedHosts {
    /// The operator's list (`--allowed-host`), else the default for this
    /// listener: loopback names for a loopback listener, any host for
    /// another one (a public server's names are its operator's to list).
    pub(super) fn new(configured: &[String], listen: Option<SocketAddr>) -> Self {
        if !configured.is_empty() {
            let names = configured
                .iter()
                .map(|h| host_name(h).to_ascii_lowercase())
                .collect();
            return Self::Names(names);
        }
        match listen {
            Some(addr) if addr.ip().is_loopback() => Self::Loopback,
            _ => Self::Any,
        }
    }

    /// Whether a request for `host` (the `Host` header or the URI's
    /// authority, with or without port) is served.
    pub(super) fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        match self {
            Self::Any => true,
            Self::Loopback => is_loopback_name(name),
            Self::Names(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// `host[:port]` or `[v6][:port]` → the name or literal (brackets kept for
/// IPv6).
pub(super) fn host_name(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all() {
        let limits = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limits.acquire(a);
        let a2 = limits.acquire(a);
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(limits.acquire(a).err(), Some(Refusal::PerIp));
        let b1 = limits.acquire(b);
        assert!(b1.is_ok());
        assert_eq!(limits.acquire(b).err(), Some(Refusal::Global));
        drop(a1);
        assert!(limits.acquire(b).is_ok(), "a place came back");
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let limits = ConnLimits::new(0, 1);
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _x = limits.acquire(x);
        assert_eq!(limits.acquire(y).err(), Some(Refusal::PerIp));
        assert!(limits.acquire(z).is_ok());
    }

    #[test]
    fn hosts() {
        let lo = AllowedHosts::new(&[], "127.0.0.1:8080".parse().ok());
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "127.0.0.3:1",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(lo.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "128.0.0.1",
            "[::2]:80",
            "",
            "[::1",
        ] {
            assert!(!lo.allows(bad), "{bad}");
        }
        let public = AllowedHosts::new(&[], "0.0.0.0:8080".parse().ok());
        assert!(public.allows("anything.example"));
        let named = AllowedHosts::new(
            &["Salon.example".to_owned(), "[2001:db8::1]:443".to_owned()],
            "127.0.0.1:8080".parse().ok(),
        );
        assert!(named.allows("salon.example:443"));
        assert!(named.allows("[2001:db8::1]"));
        assert!(!named.allows("localhost"));
    }
}

/// The client's address: the TCP peer's, or — when the peer is a trusted
/// reverse proxy — the last address of `X-Forwarded-For` that is not a
/// trusted proxy itself (proxies append; only the part our proxies wrote
/// is believed, so a client cannot forge its way past the per-address
/// bounds by sending its own header). Unparseable entries end the walk at
/// the nearest trusted hop.
pub(super) fn client_addr(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for
        .iter()
        .rev()
        .flat_map(|h| h.rsplit(','))
        .map(str::trim)
    {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod client_addr_tests {
    use super::client_addr;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        // Not a trusted peer: its header is ignored.
        assert_eq!(
            client_addr(ip("192.0.2.9"), &["198.51.100.7"], &trusted),
            ip("192.0.2.9")
        );
        // The proxy appended the client.
        assert_eq!(
            client_addr(proxy, &["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // The client forged an entry before it: the proxy's own is taken.
        assert_eq!(
            client_addr(proxy, &["203.0.113.1, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // Two proxies in a row, header lines split.
        assert_eq!(
            client_addr(proxy, &["198.51.100.7", "10.0.0.2"], &trusted),
            ip("198.51.100.7")
        );
        // Garbage, or nothing: the nearest trusted hop.
        assert_eq!(client_addr(proxy, &["not-an-ip"], &trusted), proxy);
        assert_eq!(client_addr(proxy, &[], &trusted), proxy);
        assert_eq!(
            client_addr(proxy, &["2001:db8::5"], &trusted),
            ip("2001:db8::5")
        );
    }
}
