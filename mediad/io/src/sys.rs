//! Small libc wrappers shared by both backends. Every `unsafe` block here
//! is one system call (or the zeroing of a plain C struct).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::IoError;

/// Room for a `sockaddr_in6` (the larger of the two families we use).
pub(crate) const SOCKADDR_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();

/// A socket address in its C layout, as bytes the kernel reads or writes
/// through `msg_name`. Aligned like `sockaddr_in6` so the kernel and
/// debuggers see a well-formed struct (the kernel itself copies bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(4))]
pub(crate) struct RawAddr(pub(crate) [u8; SOCKADDR_LEN]);

impl RawAddr {
    pub(crate) const ZERO: RawAddr = RawAddr([0; SOCKADDR_LEN]);

    /// Encode `addr` for a socket of family IPv6 (`v6`) or IPv4,
    /// returning the length to put in `msg_namelen`. On an IPv6 socket an
    /// IPv4 address is written v4-mapped (`::ffff:a.b.c.d`, a dual-stack
    /// socket's name for it).
    pub(crate) fn encode(&mut self, addr: &SocketAddr, v6: bool) -> libc::socklen_t {
        self.0 = [0; SOCKADDR_LEN];
        let mapped;
        let addr = match addr {
            SocketAddr::V4(a) if v6 => {
                mapped = SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0));
                &mapped
            }
            other => other,
        };
        let b = &mut self.0;
        match addr {
            SocketAddr::V4(a) => {
                b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                b[8..24].copy_from_slice(&a.ip().octets());
                b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
                SOCKADDR_LEN as libc::socklen_t
            }
        }
    }
}

/// Decode a socket address the kernel wrote (`name` is the written part).
/// A v4-mapped IPv6 address (an IPv4 peer of a dual-stack socket) comes
/// out as the plain IPv4 one, so the handler sees one name per peer.
/// `None` for an unknown family or a short name: never panics.
pub(crate) fn decode_addr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    if family == libc::AF_INET as u16 {
        let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if family == libc::AF_INET6 as u16 {
        let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
        if let Some(v4) = Ipv6Addr::from(ip).to_ipv4_mapped() {
            return Some(SocketAddr::V4(SocketAddrV4::new(v4, port)));
        }
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flow,
            scope,
        )))
    } else {
        None
    }
}

/// An all-zero `msghdr`.
pub(crate) fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct of integers and raw pointers, for
    // which all-zero bytes are a valid value (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// An all-zero `mmsghdr`.
pub(crate) fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: as for `zeroed_msghdr`: plain C integers and raw pointers.
    unsafe { std::mem::zeroed() }
}

pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A non-blocking, close-on-exec eventfd.
pub(crate) fn eventfd() -> Result<OwnedFd, IoError> {
    // SAFETY: plain system call with constant flags; no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(IoError::last_os("eventfd"));
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add 1 to an eventfd's counter (ignoring errors: EAGAIN means the
/// counter is already huge, i.e. the reader is already due to wake).
pub(crate) fn eventfd_write(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes read from a live local u64.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
}

/// Reset an eventfd's counter (non-blocking; nothing to read is fine).
pub(crate) fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live local u64.
    let _ = unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
}

fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live local c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Raise SO_RCVBUF / SO_SNDBUF to `bytes`: first the capped options, then
/// the `*FORCE` ones (allowed with CAP_NET_ADMIN). Failures are logged.
pub(crate) fn raise_buffers(socket: &UdpSocket, bytes: usize) {
    let fd = socket.as_raw_fd();
    let v = i32::try_from(bytes).unwrap_or(i32::MAX);
    for (name, force, what) in [
        (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, "SO_RCVBUF"),
        (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, "SO_SNDBUF"),
    ] {
        if let Err(e) = set_int_opt(fd, libc::SOL_SOCKET, name, v) {
            tracing::debug!(option = what, error = %e, "could not set socket buffer");
        }
        // The capped option is silently limited by net.core.*mem_max; the
        // FORCE variant ignores the limit where permitted.
        let _ = set_int_opt(fd, libc::SOL_SOCKET, force, v);
    }
}

/// Wait until `fd` is writable or `timeout_ms` passed.
pub(crate) fn wait_writable(fd: RawFd, timeout_ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one live pollfd, count 1.
    let _ = unsafe { libc::poll(&raw mut p, 1, timeout_ms) };
}

/// The addresses of the host's interfaces that are up (`getifaddrs`),
/// IPv4 and IPv6, each with its interface's flags. Empty if the call
/// fails.
pub(crate) fn interface_addrs() -> Vec<(IpAddr, u32)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: one system call writing a list head we own; freed below.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive
        // until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & (libc::IFF_UP as u32) == 0 {
            continue;
        }
        // SAFETY: a non-null ifa_addr points to a sockaddr whose family
        // says its size: sockaddr_in or sockaddr_in6 for the two read.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = if family == libc::AF_INET {
            // SAFETY: as above, AF_INET: a sockaddr_in.
            let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        } else if family == libc::AF_INET6 {
            // SAFETY: as above, AF_INET6: a sockaddr_in6.
            let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        } else {
            continue;
        };
        out.push((ip, ifa.ifa_flags));
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        let cases: [SocketAddr; 4] = [
            "127.0.0.1:5004".parse().unwrap(),
            "0.0.0.0:1".parse().unwrap(),
            "[::1]:65535".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                3478,
                0x12345,
                7,
            )),
        ];
        for a in cases {
            let mut raw = RawAddr::ZERO;
            let len = raw.encode(&a, a.is_ipv6()) as usize;
            assert_eq!(decode_addr(&raw.0[..len]), Some(a));
        }
    }

    #[test]
    fn ipv4_on_an_ipv6_socket_is_written_mapped_and_read_plain() {
        let a: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let mut raw = RawAddr::ZERO;
        let len = raw.encode(&a, true) as usize;
        assert_eq!(len, SOCKADDR_LEN, "a sockaddr_in6");
        assert_eq!(
            u16::from_ne_bytes([raw.0[0], raw.0[1]]),
            libc::AF_INET6 as u16
        );
        assert_eq!(
            &raw.0[8..24],
            &"::ffff:192.0.2.7".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            decode_addr(&raw.0[..len]),
            Some(a),
            "read back as plain IPv4"
        );
    }

    #[test]
    fn decode_never_panics() {
        // Seeded xorshift over random names of every length.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut b = [0u8; 40];
            for (i, v) in b.iter_mut().enumerate() {
                *v = (x >> ((i % 8) * 8)) as u8 ^ i as u8;
            }
            // Bias towards the two known families.
            match x % 3 {
                0 => b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes()),
                1 => b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes()),
                _ => {}
            }
            let _ = decode_addr(&b[..len]);
        }
    }
}
