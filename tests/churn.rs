//! 20,000 connections opened and closed: nothing the server keeps per
//! connection outlives it (descriptors, memory).

mod common;

use common::{client, localhost, reset, roundtrip, wait_until, Echo, ReactorThread};
use reactor::ListenOptions;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn resident_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn twenty_thousand_connect_close_cycles_leave_no_descriptor_or_memory_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = ReactorThread::start(move |r| {
        let listener = r.listen_tcp_with(localhost(), || Echo, ListenOptions::default())?;
        tx.send(listener).unwrap();
        Ok(listener.local_addr())
    });
    let listener = rx.recv().unwrap();
    let wait_until_idle = || {
        wait_until("the server has closed every connection", || {
            server
                .call(move |r| r.listener_stats(&listener))
                .unwrap()
                .open
                == 0
        });
    };
    // Warm up, so allocations that are made once are not counted as growth.
    for _ in 0..500 {
        let mut s = client(server.addr);
        assert_eq!(roundtrip(&mut s, b"warm"), b"warm");
    }
    wait_until_idle();
    let fds_before = open_descriptors();
    let rss_before = resident_kib();
    for i in 0..20_000u32 {
        let mut s = client(server.addr);
        assert_eq!(roundtrip(&mut s, &i.to_be_bytes()), i.to_be_bytes());
        // Half end with a FIN, half with a reset (which also spares the
        // ephemeral ports a TIME_WAIT each).
        if i % 2 == 0 {
            drop(s);
        } else {
            reset(s);
        }
    }
    wait_until_idle();
    let fds_after = open_descriptors();
    let rss_after = resident_kib();
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    assert!(
        rss_after < rss_before + 4096,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
