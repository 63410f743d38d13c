//! Parsing a PROXY protocol header, version 1 (text) or 2 (binary), from
//! the bytes a connection has received so far.
//!
//! [`parse_header`] is a pure function of those bytes: it never looks
//! past the header, never allocates, and cannot panic. It answers "a whole
//! header, this long", "not yet" or "malformed, this way", and the answer
//! for the whole input is the same however the bytes were split on the way
//! (a prefix of a valid header is always "not yet"): the reactor peeks at
//! the socket, parses what is there, and consumes exactly the header once
//! it is whole, leaving what follows for the protocol.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The most bytes a version 1 header may take, `PROXY` to CRLF included
/// (the specification's worst case, `PROXY UNKNOWN` with two full IPv6
/// addresses and ports). No CRLF by then is [`ProxyHeaderError::V1TooLong`].
///
/// ```
/// use reactor::proxy::{parse_header, ProxyHeaderError, MAX_V1_HEADER};
///
/// let max = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
/// let worst = format!("PROXY UNKNOWN {max} {max} 65535 65535\r\n");
/// assert_eq!(worst.len(), MAX_V1_HEADER);
/// assert_eq!(parse_header(worst.as_bytes()).unwrap().unwrap().len, MAX_V1_HEADER);
///
/// let mut endless = b"PROXY UNKNOWN ".to_vec();
/// endless.resize(MAX_V1_HEADER, b'x'); // and still no CRLF
/// assert_eq!(parse_header(&endless), Err(ProxyHeaderError::V1TooLong));
/// ```
pub const MAX_V1_HEADER: usize = 107;

/// The most bytes a version 2 header may announce after its 16 fixed bytes
/// (addresses and TLVs). The format allows 65,535; HAProxy's headers, with
/// every TLV it can send but a custom one, take a few hundred, and a UNIX
/// socket pair takes 216. More is [`ProxyHeaderError::V2TooLong`]: a peer
/// cannot make a connection hold more than this, unread, while it waits.
///
/// ```
/// use reactor::proxy::{parse_header, ProxyHeaderError, MAX_V2_BODY};
///
/// // Version 2's signature, version 2 `PROXY`, TCP over IPv4, then the length.
/// let header = |len: u16| {
///     [b"\r\n\r\n\0\r\nQUIT\n\x21\x11".as_slice(), &len.to_be_bytes()].concat()
/// };
/// let at_most = MAX_V2_BODY as u16;
/// assert_eq!(parse_header(&header(at_most)), Ok(None)); // the rest may come
/// assert_eq!(
///     parse_header(&header(at_most + 1)),
///     Err(ProxyHeaderError::V2TooLong { len: at_most + 1 })
/// );
/// ```
pub const MAX_V2_BODY: usize = 4096;

/// The most bytes any header may take, so the most a connection waiting
/// for one ever needs to look at.
///
/// ```
/// use reactor::proxy::{parse_header, MAX_HEADER, MAX_V1_HEADER, MAX_V2_BODY};
///
/// assert_eq!(MAX_HEADER, 16 + MAX_V2_BODY);
/// assert!(MAX_HEADER > MAX_V1_HEADER);
///
/// // The longest header there is: a version 2 `LOCAL` one with a full body.
/// let mut longest = b"\r\n\r\n\0\r\nQUIT\n\x20\x00".to_vec();
/// longest.extend_from_slice(&(MAX_V2_BODY as u16).to_be_bytes());
/// longest.resize(MAX_HEADER, 0);
/// assert_eq!(parse_header(&longest).unwrap().unwrap().len, MAX_HEADER);
/// ```
pub const MAX_HEADER: usize = V2_FIXED + MAX_V2_BODY;

/// Version 1's signature: `PROXY` and its one space.
const V1_SIGNATURE: &[u8] = b"PROXY ";

/// Version 2's signature, the first 12 of its 16 fixed bytes.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Version 2's fixed part: signature, version and command, family and
/// protocol, length.
const V2_FIXED: usize = 16;

/// A whole PROXY header, as [`parse_header`] found it.
///
/// ```
/// use reactor::proxy::{parse_header, ProxyHeader};
///
/// // A version 2 `LOCAL` header, the proxy's own health check: no addresses.
/// let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
/// let header = ProxyHeader { version: 2, len: 16, addresses: None };
/// assert_eq!(parse_header(local), Ok(Some(header)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// Bytes the header takes at the start of the stream: what follows is
    /// the client's first data.
    pub len: usize,
    /// The client's address and the address it connected to, as the proxy
    /// saw them; `None` where the connection's own addresses stand: a
    /// version 2 `LOCAL` header (the proxy's own health check), a version 1
    /// `UNKNOWN`, and version 2 families this server does not take over
    /// TCP (unspecified, UNIX sockets, UDP), which the specification says
    /// to treat as unspecified.
    pub addresses: Option<ProxiedAddresses>,
}

/// The two ends of the connection a proxy relays.
///
/// ```
/// use reactor::proxy::{parse_header, ProxiedAddresses};
///
/// // Version 2, `PROXY`, TCP over IPv4, 12 bytes: the two addresses, then
/// // the two ports.
/// let mut input = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
/// input.extend_from_slice(&[192, 0, 2, 7, 192, 0, 2, 1]);
/// input.extend_from_slice(&[0xdc, 0x04, 0x01, 0xbb]); // 56324, 443
/// let header = parse_header(&input).unwrap().unwrap();
/// let expected = ProxiedAddresses {
///     source: "192.0.2.7:56324".parse().unwrap(),
///     destination: "192.0.2.1:443".parse().unwrap(),
/// };
/// assert_eq!(header.addresses, Some(expected));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxiedAddresses {
    /// The client: the connection's real peer.
    pub source: SocketAddr,
    /// Where the client connected to: the proxy's own listening address.
    pub destination: SocketAddr,
}

/// What was wrong with a connection's PROXY header: the reason a listener
/// that expects one closed it ([`Reason::ProxyHeader`](crate::Reason::ProxyHeader)).
///
/// ```
/// use reactor::proxy::{parse_header, ProxyHeaderError};
///
/// let bad_port = parse_header(b"PROXY TCP4 192.0.2.7 192.0.2.1 99999 443\r\n").unwrap_err();
/// assert_eq!(bad_port, ProxyHeaderError::V1Malformed("source port"));
/// assert_eq!(bad_port.to_string(), "PROXY v1 header with a bad source port");
///
/// // Version 2's signature with version 1 in the 13th byte.
/// let input = b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c";
/// assert_eq!(parse_header(input), Err(ProxyHeaderError::V2Version(1)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The first bytes are neither `PROXY ` (version 1) nor version 2's
    /// 12-byte signature: the peer does not speak the PROXY protocol (a
    /// client that reached the port directly, or a proxy that was not told
    /// to send it).
    NotProxyProtocol,
    /// Version 1: no CRLF within the first [`MAX_V1_HEADER`] bytes.
    V1TooLong,
    /// Version 1: the line is not what the specification says; the text
    /// names the part that is wrong (`protocol`, `source address`,
    /// `destination address`, `source port`, `destination port`, `fields`
    /// for a wrong count or spacing, `line ending` for a CR or LF alone).
    V1Malformed(&'static str),
    /// Version 2: the version in the 13th byte's high bits is not 2.
    V2Version(u8),
    /// Version 2: the command in the 13th byte's low bits is neither
    /// `LOCAL` (0) nor `PROXY` (1).
    V2Command(u8),
    /// Version 2: the 14th byte is not one of the families and protocols the
    /// specification defines.
    V2Family(u8),
    /// Version 2: the length is too short for the addresses its family has.
    V2Length {
        /// The length the header announced.
        len: u16,
        /// What its family's addresses take.
        needed: u16,
    },
    /// Version 2: the length is over [`MAX_V2_BODY`].
    V2TooLong {
        /// The length the header announced.
        len: u16,
    },
    /// The peer closed the connection before its header was whole.
    Truncated {
        /// Bytes of it that had arrived.
        received: usize,
    },
    /// The header was not whole within the listener's
    /// [`proxy_header_timeout`](crate::ListenOptions::proxy_header_timeout).
    TimedOut {
        /// The timeout that passed.
        after: Duration,
        /// Bytes of it that had arrived.
        received: usize,
    },
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderError::NotProxyProtocol => {
                f.write_str("no PROXY header: the first bytes are not a PROXY protocol signature")
            }
            ProxyHeaderError::V1TooLong => {
                write!(
                    f,
                    "PROXY v1 header without CRLF in its first {MAX_V1_HEADER} bytes"
                )
            }
            ProxyHeaderError::V1Malformed(what) => write!(f, "PROXY v1 header with a bad {what}"),
            ProxyHeaderError::V2Version(v) => {
                write!(f, "PROXY v2 signature with version {v}, not 2")
            }
            ProxyHeaderError::V2Command(c) => {
                write!(
                    f,
                    "PROXY v2 header with command {c}, neither LOCAL nor PROXY"
                )
            }
            ProxyHeaderError::V2Family(b) => {
                write!(
                    f,
                    "PROXY v2 header with unknown family and protocol {b:#04x}"
                )
            }
            ProxyHeaderError::V2Length { len, needed } => write!(
                f,
                "PROXY v2 header of length {len}, short of the {needed} its addresses take"
            ),
            ProxyHeaderError::V2TooLong { len } => write!(
                f,
                "PROXY v2 header of length {len}, over the limit of {MAX_V2_BODY}"
            ),
            ProxyHeaderError::Truncated { received } => write!(
                f,
                "the peer closed after {received} bytes, before its PROXY header was whole"
            ),
            ProxyHeaderError::TimedOut { after, received } => write!(
                f,
                "no whole PROXY header within {after:?} ({received} bytes came)"
            ),
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

/// Parses the PROXY header at the start of `input`, the bytes a connection
/// has received so far: `Ok(Some(header))` once it is whole (what follows
/// `header.len` is the client's data), `Ok(None)` while `input` is a prefix
/// of one (read more), or what is wrong with it. Both versions are taken;
/// the first bytes say which.
///
/// ```
/// use reactor::proxy::{parse_header, ProxyHeaderError};
///
/// let input = b"PROXY TCP4 192.0.2.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n";
/// let header = parse_header(input).unwrap().unwrap();
/// let client = header.addresses.unwrap().source;
/// assert_eq!(client, "192.0.2.7:56324".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(&input[header.len..], b"GET / HTTP/1.1\r\n");
///
/// assert_eq!(parse_header(b"PROXY TCP4 192.0"), Ok(None)); // not yet
/// assert_eq!(parse_header(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::NotProxyProtocol));
/// ```
pub fn parse_header(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    if starts_with_prefix_of(input, V2_SIGNATURE) {
        return if input.len() < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(input)
        };
    }
    if starts_with_prefix_of(input, V1_SIGNATURE) {
        return if input.len() < V1_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v1(input)
        };
    }
    Err(ProxyHeaderError::NotProxyProtocol)
}

/// Whether `input` and `signature` agree on the bytes both have: `input`
/// starts with `signature`, or is a prefix of it.
fn starts_with_prefix_of(input: &[u8], signature: &[u8]) -> bool {
    let n = input.len().min(signature.len());
    input[..n] == signature[..n]
}

/// A version 1 header: one line, decoded once its CRLF is there (the
/// specification asks to wait for it).
fn parse_v1(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    let window = &input[..input.len().min(MAX_V1_HEADER)];
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if input.len() >= MAX_V1_HEADER {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    if window[end] == b'\n' {
        return Err(ProxyHeaderError::V1Malformed("line ending"));
    }
    // The LF must fit in the limit too.
    if end + 2 > MAX_V1_HEADER {
        return Err(ProxyHeaderError::V1TooLong);
    }
    match input.get(end + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyHeaderError::V1Malformed("line ending")),
    }
    let addresses = parse_v1_line(&input[..end])?;
    Ok(Some(ProxyHeader {
        version: 1,
        len: end + 2,
        addresses,
    }))
}

/// The fields of a version 1 line, CRLF excluded: `PROXY`, the protocol,
/// then for TCP two addresses and two ports, each after exactly one space.
fn parse_v1_line(line: &[u8]) -> Result<Option<ProxiedAddresses>, ProxyHeaderError> {
    let malformed = ProxyHeaderError::V1Malformed;
    let mut fields = line.split(|&b| b == b' ');
    // The signature, checked by the caller.
    fields.next();
    let family = match fields.next() {
        // Whatever follows UNKNOWN is ignored, as the specification says.
        Some(b"UNKNOWN") => return Ok(None),
        Some(b"TCP4") => Family::V4,
        Some(b"TCP6") => Family::V6,
        _ => return Err(malformed("protocol")),
    };
    let (Some(source), Some(destination), Some(source_port), Some(destination_port), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed("fields"));
    };
    let source = family.address(source).ok_or(malformed("source address"))?;
    let destination = family
        .address(destination)
        .ok_or(malformed("destination address"))?;
    let source_port = v1_port(source_port).ok_or(malformed("source port"))?;
    let destination_port = v1_port(destination_port).ok_or(malformed("destination port"))?;
    Ok(Some(ProxiedAddresses {
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
    }))
}

/// An address family of a version 1 line.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The address `text` in this family's canonical form (the standard
    /// library refuses IPv4 octets with leading zeroes, as the
    /// specification asks).
    fn address(self, text: &[u8]) -> Option<IpAddr> {
        let text = std::str::from_utf8(text).ok()?;
        match self {
            Family::V4 => Ipv4Addr::from_str(text).ok().map(IpAddr::V4),
            Family::V6 => Ipv6Addr::from_str(text).ok().map(IpAddr::V6),
        }
    }
}

/// A version 1 port: decimal digits only (no sign), no leading zero, at
/// most 65535.
fn v1_port(text: &[u8]) -> Option<u16> {
    let digits_only = !text.is_empty() && text.iter().all(u8::is_ascii_digit);
    let leading_zero = text.len() > 1 && text[0] == b'0';
    if !digits_only || leading_zero || text.len() > 5 {
        return None;
    }
    text.iter()
        .try_fold(0u32, |n, &d| Some(n * 10 + u32::from(d - b'0')))
        .and_then(|n| u16::try_from(n).ok())
}

/// A version 2 header: 16 fixed bytes, then as many more as they announce.
/// Everything past the addresses (the TLVs) is skipped unread.
fn parse_v2(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    if input.len() < V2_FIXED {
        return Ok(None);
    }
    let version = input[12] >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::V2Version(version));
    }
    let local = match input[12] & 0x0f {
        0 => true,
        1 => false,
        command => return Err(ProxyHeaderError::V2Command(command)),
    };
    let family = input[13];
    // Address bytes each family and protocol takes; any other byte is refused.
    let needed: u16 = match family {
        0x00 => 0,
        0x11 | 0x12 => 12,
        0x21 | 0x22 => 36,
        0x31 | 0x32 => 216,
        _ => return Err(ProxyHeaderError::V2Family(family)),
    };
    let len = u16::from_be_bytes([input[14], input[15]]);
    if usize::from(len) > MAX_V2_BODY {
        return Err(ProxyHeaderError::V2TooLong { len });
    }
    // LOCAL ignores the family, and so its length: the receiver "must not
    // assume zero is presented for LOCAL connections", only skip it.
    if !local && len < needed {
        return Err(ProxyHeaderError::V2Length { len, needed });
    }
    let total = V2_FIXED + usize::from(len);
    let Some(body) = input.get(V2_FIXED..total) else {
        return Ok(None);
    };
    let addresses = if local {
        None
    } else {
        v2_addresses(family, body)
    };
    Ok(Some(ProxyHeader {
        version: 2,
        len: total,
        addresses,
    }))
}

/// The TCP addresses of a version 2 `PROXY` header whose length was
/// checked against its family; `None` for the families whose addresses
/// this server does not use (the connection's own stand).
fn v2_addresses(family: u8, body: &[u8]) -> Option<ProxiedAddresses> {
    let port = |at: usize| Some(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    match family {
        0x11 => {
            let ip = |at: usize| -> Option<IpAddr> {
                let octets: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::from(octets))
            };
            Some(ProxiedAddresses {
                source: SocketAddr::new(ip(0)?, port(8)?),
                destination: SocketAddr::new(ip(4)?, port(10)?),
            })
        }
        0x21 => {
            let ip = |at: usize| -> Option<IpAddr> {
                let octets: [u8; 16] = body.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::from(octets))
            };
            Some(ProxiedAddresses {
                source: SocketAddr::new(ip(0)?, port(32)?),
                destination: SocketAddr::new(ip(16)?, port(34)?),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_plain_decimal() {
        assert_eq!(v1_port(b"0"), Some(0));
        assert_eq!(v1_port(b"65535"), Some(65535));
        assert_eq!(v1_port(b"65536"), None);
        assert_eq!(v1_port(b"080"), None);
        assert_eq!(v1_port(b"+80"), None);
        assert_eq!(v1_port(b""), None);
        assert_eq!(v1_port(b"999999"), None);
    }

    #[test]
    fn a_cr_at_the_last_allowed_byte_leaves_no_room_for_the_lf() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(MAX_V1_HEADER - 1, b'x');
        line.push(b'\r');
        assert_eq!(parse_header(&line), Err(ProxyHeaderError::V1TooLong));
        line.truncate(MAX_V1_HEADER - 2);
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse_header(&line).unwrap().unwrap().len, MAX_V1_HEADER);
    }
}
