//! What the kernel says about the listening sockets on a port
//! (/proc/net/tcp): how many there are, and how many connections wait in
//! each one's accept queue (handshake done, not yet accepted).
//!
//! Included with `#[path = "common/listeners.rs"] mod listeners;` next to
//! `mod common;`.
#![allow(dead_code)]

/// The accept queue length of every IPv4 listening socket bound to `port`
/// in this network namespace, one entry per socket (several with
/// SO_REUSEPORT). For a listener, the kernel's `rx_queue` column is its
/// accept queue's length.
pub fn accept_queues(port: u16) -> Vec<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            if *state != "0A" || local_port != port {
                return None;
            }
            usize::from_str_radix(queues.split(':').nth(1)?, 16).ok()
        })
        .collect()
}
