//! The hints at the end of the examples' address errors: what a user who
//! typed the command line can do about a port in use, a privileged port or a
//! host that only looks like an IP address.
//!
//! Std only, so tests/example_conventions.rs includes this file as is and
//! checks the hints without starting a program.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// The message for a listener that could not bind `addr`: the error, then
/// a hint when one helps.
pub fn cannot_listen(addr: SocketAddr, e: &io::Error) -> String {
    match bind_hint(addr, e) {
        Some(hint) => format!("cannot listen on {addr}: {e}; {hint}"),
        None => format!("cannot listen on {addr}: {e}"),
    }
}

/// What to try after binding `addr` failed with `e`, if anything.
pub fn bind_hint(addr: SocketAddr, e: &io::Error) -> Option<&'static str> {
    match e.kind() {
        io::ErrorKind::AddrInUse => Some("another program holds that port: try --port 0"),
        io::ErrorKind::PermissionDenied if (1..1024).contains(&addr.port()) => {
            Some("ports below 1024 need root or CAP_NET_BIND_SERVICE; try a port above 1023")
        }
        io::ErrorKind::AddrNotAvailable => {
            Some("that address is not one of this machine's: try --host 127.0.0.1")
        }
        _ => None,
    }
}

/// `Some(why)` when `host` looks like an IP address (only digits and dots,
/// or a colon as IPv6 has) but is not one, so the user reads that instead
/// of a resolver's "name not known".
pub fn not_an_ip(host: &str) -> Option<String> {
    let v4_like = host.contains('.') && host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let v6_like = host.contains(':');
    if !(v4_like || v6_like) || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let why = if v6_like {
        "it has a colon, but is not an IPv6 address".to_string()
    } else {
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() != 4 {
            format!("an IPv4 address has 4 numbers, this has {}", parts.len())
        } else if let Some(big) = parts.iter().find(|p| p.parse::<u8>().is_err()) {
            format!("each number is 0 to 255, and {big:?} is not")
        } else {
            "not a valid IPv4 address".to_string()
        }
    };
    Some(format!(
        "{host} looks like an IP address but is not one: {why}"
    ))
}
