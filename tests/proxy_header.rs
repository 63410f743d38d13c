//! The PROXY header parser, fed as a connection is: whatever has arrived
//! so far, after each piece. Every header is cut at every byte position,
//! and at every pair of positions, and must give the same answer as in one
//! piece: the same header and the same bytes left for the protocol, or the
//! same documented error. The same runs over real sockets in tests/proxy.rs.

use std::net::SocketAddr;

use reactor::proxy::{
    parse_header, ProxiedAddresses, ProxyHeader, ProxyHeaderError, MAX_V1_HEADER, MAX_V2_BODY,
};

/// What the client sends after its header, in the same write.
const TRAILING: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

/// Version 2's signature.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 2 header: `command` (0 LOCAL, 1 PROXY), the family and
/// protocol byte, and the bytes after the fixed 16.
fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    header.extend_from_slice(body);
    header
}

/// A version 2 `PROXY` header for a TCP connection from `source` to
/// `destination`, with `tlvs` after the addresses.
fn v2_tcp(source: &str, destination: &str, tlvs: &[u8]) -> Vec<u8> {
    let (source, destination): (SocketAddr, SocketAddr) =
        (source.parse().unwrap(), destination.parse().unwrap());
    let mut body = Vec::new();
    let family = match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("one family for both ends"),
    };
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    v2(1, family, &body)
}

/// TLVs as HAProxy sends them: the authority (SNI), a unique id, an SSL
/// block with a version sub-TLV, and a NOOP.
fn tlvs() -> Vec<u8> {
    let mut out = Vec::new();
    let mut tlv = |kind: u8, value: &[u8]| {
        out.push(kind);
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
    };
    tlv(0x02, b"example.com");
    tlv(0x05, b"\x01\x02\x03\x04");
    tlv(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x07TLSv1.3");
    tlv(0x04, b"");
    out
}

fn addresses(source: &str, destination: &str) -> Option<ProxiedAddresses> {
    Some(ProxiedAddresses {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    })
}

/// Feeds `input` as a connection receives it, in pieces ending at `cuts`
/// (then the rest): after each piece, what has arrived so far is parsed,
/// and the first answer other than "not yet" is final. Returns it, and,
/// for a header, the bytes the protocol is handed after it.
fn feed(input: &[u8], cuts: &[usize]) -> (Result<Option<ProxyHeader>, ProxyHeaderError>, Vec<u8>) {
    for end in cuts.iter().copied().chain([input.len()]) {
        match parse_header(&input[..end]) {
            Ok(None) => continue,
            Ok(Some(header)) => return (Ok(Some(header)), input[header.len..].to_vec()),
            Err(why) => return (Err(why), Vec::new()),
        }
    }
    (Ok(None), Vec::new())
}

/// Every way to cut `input` once or twice (cut points strictly inside it).
fn every_cut(input: &[u8]) -> Vec<Vec<usize>> {
    let n = input.len();
    let mut cuts = vec![vec![]];
    for i in 1..n {
        cuts.push(vec![i]);
        for j in i + 1..n {
            cuts.push(vec![i, j]);
        }
    }
    cuts
}

/// The valid headers of every kind, with what each must parse to.
fn valid_headers() -> Vec<(&'static str, Vec<u8>, ProxyHeader)> {
    let tcp4 = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n".to_vec();
    let tcp6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 8443\r\n".to_vec();
    let unknown = b"PROXY UNKNOWN\r\n".to_vec();
    let unknown_long = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec();
    let v2_ipv4 = v2_tcp("192.0.2.7:56324", "198.51.100.1:443", &[]);
    let v2_ipv6 = v2_tcp("[2001:db8::7]:56324", "[2001:db8::1]:443", &[]);
    let v2_tlvs = v2_tcp("192.0.2.7:56324", "198.51.100.1:443", &tlvs());
    let v2_local = v2(0, 0x00, &[]);
    // LOCAL ignores its family and skips whatever length it announces.
    let v2_local_tlvs = v2(0, 0x11, &tlvs());
    let v2_udp = v2(1, 0x12, &[192, 0, 2, 7, 198, 51, 100, 1, 0, 53, 0, 53]);
    let v2_unix = v2(1, 0x31, &[b'/'; 216]);
    let header = |version, len: &Vec<u8>, addresses| ProxyHeader {
        version,
        len: len.len(),
        addresses,
    };
    vec![
        (
            "v1 TCP4",
            tcp4.clone(),
            header(1, &tcp4, addresses("192.0.2.7:56324", "198.51.100.1:443")),
        ),
        (
            "v1 TCP6",
            tcp6.clone(),
            header(
                1,
                &tcp6,
                addresses("[2001:db8::7]:65535", "[2001:db8::1]:8443"),
            ),
        ),
        ("v1 UNKNOWN", unknown.clone(), header(1, &unknown, None)),
        (
            "v1 UNKNOWN with addresses",
            unknown_long.clone(),
            header(1, &unknown_long, None),
        ),
        (
            "v2 IPv4",
            v2_ipv4.clone(),
            header(
                2,
                &v2_ipv4,
                addresses("192.0.2.7:56324", "198.51.100.1:443"),
            ),
        ),
        (
            "v2 IPv6",
            v2_ipv6.clone(),
            header(
                2,
                &v2_ipv6,
                addresses("[2001:db8::7]:56324", "[2001:db8::1]:443"),
            ),
        ),
        (
            "v2 IPv4 with TLVs",
            v2_tlvs.clone(),
            header(
                2,
                &v2_tlvs,
                addresses("192.0.2.7:56324", "198.51.100.1:443"),
            ),
        ),
        ("v2 LOCAL", v2_local.clone(), header(2, &v2_local, None)),
        (
            "v2 LOCAL with TLVs",
            v2_local_tlvs.clone(),
            header(2, &v2_local_tlvs, None),
        ),
        ("v2 UDP", v2_udp.clone(), header(2, &v2_udp, None)),
        ("v2 UNIX", v2_unix.clone(), header(2, &v2_unix, None)),
    ]
}

#[test]
fn every_header_parses_the_same_however_it_is_cut() {
    for (name, header, expected) in valid_headers() {
        for trailing in [&b""[..], TRAILING] {
            let input = [&header[..], trailing].concat();
            // The UNIX header's 232 bytes would make 27,000 cuts: once is
            // enough for the one-piece answer; the cuts run on the others.
            let cuts = if header.len() > 200 {
                vec![vec![], vec![1], vec![header.len() - 1]]
            } else {
                every_cut(&input)
            };
            for cut in cuts {
                let (got, rest) = feed(&input, &cut);
                assert_eq!(got, Ok(Some(expected)), "{name} cut at {cut:?}");
                assert_eq!(rest, trailing, "{name} cut at {cut:?}: the bytes after it");
            }
        }
    }
}

#[test]
fn a_prefix_of_a_header_is_never_an_answer() {
    for (name, header, _) in valid_headers() {
        for end in 0..header.len() {
            assert_eq!(
                parse_header(&header[..end]),
                Ok(None),
                "{name}, {end} bytes"
            );
        }
    }
}

/// Malformed headers, each with the error it must give.
fn malformed_headers() -> Vec<(&'static str, Vec<u8>, ProxyHeaderError)> {
    use ProxyHeaderError::*;
    let v1 = |line: &str| line.as_bytes().to_vec();
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(MAX_V1_HEADER + 20, b'x');
    too_long.extend_from_slice(b"\r\n");
    let mut bad_signature = v2_tcp("192.0.2.7:1", "198.51.100.1:2", &[]);
    bad_signature[4] = 1;
    let mut version_1 = v2_tcp("192.0.2.7:1", "198.51.100.1:2", &[]);
    version_1[12] = 0x11;
    let mut command_2 = v2_tcp("192.0.2.7:1", "198.51.100.1:2", &[]);
    command_2[12] = 0x22;
    let mut over = v2(1, 0x11, &[0; 12]);
    over[14..16].copy_from_slice(&u16::try_from(MAX_V2_BODY + 1).unwrap().to_be_bytes());
    vec![
        ("HTTP", v1("GET / HTTP/1.1\r\n\r\n"), NotProxyProtocol),
        ("TLS", vec![0x16, 0x03, 0x01, 0x02, 0x00], NotProxyProtocol),
        (
            "PROXY without its space",
            v1("PROXYTCP4 1.2.3.4\r\n"),
            NotProxyProtocol,
        ),
        ("v2 bad signature", bad_signature, NotProxyProtocol),
        (
            "v1 junk protocol",
            v1("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
            V1Malformed("protocol"),
        ),
        ("v1 junk", v1("PROXY hello\r\n"), V1Malformed("protocol")),
        (
            "v1 junk, no CRLF",
            v1("PROXY hello there\n"),
            V1Malformed("line ending"),
        ),
        (
            "v1 too few fields",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
            V1Malformed("fields"),
        ),
        (
            "v1 two spaces",
            v1("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
            V1Malformed("fields"),
        ),
        (
            "v1 a field too many",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
            V1Malformed("fields"),
        ),
        (
            "v1 bad source",
            v1("PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n"),
            V1Malformed("source address"),
        ),
        (
            "v1 octal-looking source",
            v1("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
            V1Malformed("source address"),
        ),
        (
            "v1 family mismatch",
            v1("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"),
            V1Malformed("destination address"),
        ),
        (
            "v1 IPv4 in TCP6",
            v1("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"),
            V1Malformed("source address"),
        ),
        (
            "v1 leading zero port",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
            V1Malformed("source port"),
        ),
        (
            "v1 signed port",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
            V1Malformed("source port"),
        ),
        (
            "v1 port out of range",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"),
            V1Malformed("destination port"),
        ),
        (
            "v1 LF alone",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            V1Malformed("line ending"),
        ),
        (
            "v1 CR alone",
            v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"),
            V1Malformed("line ending"),
        ),
        ("v1 oversize", too_long, V1TooLong),
        ("v2 version 1", version_1, V2Version(1)),
        ("v2 command 2", command_2, V2Command(2)),
        ("v2 unknown family", v2(1, 0x13, &[0; 12]), V2Family(0x13)),
        (
            "v2 length short of IPv4",
            v2(1, 0x11, &[0; 8]),
            V2Length { len: 8, needed: 12 },
        ),
        (
            "v2 length short of IPv6",
            v2(1, 0x21, &[0; 12]),
            V2Length {
                len: 12,
                needed: 36,
            },
        ),
        (
            "v2 oversize",
            over,
            V2TooLong {
                len: u16::try_from(MAX_V2_BODY + 1).unwrap(),
            },
        ),
    ]
}

#[test]
fn every_malformed_header_gives_its_reason_however_it_is_cut() {
    for (name, input, expected) in malformed_headers() {
        let cuts = if input.len() > 100 {
            (1..input.len()).map(|i| vec![i]).collect()
        } else {
            every_cut(&input)
        };
        for cut in cuts {
            let (got, _) = feed(&input, &cut);
            assert_eq!(got, Err(expected.clone()), "{name} cut at {cut:?}");
        }
    }
}

#[test]
fn errors_say_what_was_wrong() {
    let said = |e: ProxyHeaderError| e.to_string();
    assert_eq!(
        said(ProxyHeaderError::V1Malformed("source port")),
        "PROXY v1 header with a bad source port"
    );
    assert_eq!(
        said(ProxyHeaderError::V2Length { len: 8, needed: 12 }),
        "PROXY v2 header of length 8, short of the 12 its addresses take"
    );
    assert!(said(ProxyHeaderError::NotProxyProtocol).contains("not a PROXY protocol signature"));
    assert!(said(ProxyHeaderError::V1TooLong).contains("107"));
}
