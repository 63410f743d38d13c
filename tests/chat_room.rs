//! The chat server's room (`examples/chat_server/room.rs`) on a
//! `MemoryReactor`: broadcasts through `write_to`, joins and leaves, a
//! speaker's share of a turn, and the slow-member rule's timers, with exact
//! bytes and no socket or real time. (tests/chat_server.rs runs the
//! example itself over loopback.)

/// The examples' log lines, which the room writes (the rest of the file
/// is for other examples).
mod common {
    #[allow(dead_code)]
    #[path = "../../examples/common/logs.rs"]
    pub mod logs;
}
#[path = "../examples/chat_server/room.rs"]
mod room;

use std::net::SocketAddr;
use std::time::Duration;

use reactor::testing::MemoryReactor;
use reactor::{ConnectionId, ListenOptions, ListenerHandle, Reason};
use room::{ChatFactory, Limits, GOODBYE};

const SLOW: Duration = Duration::from_secs(5);

/// A room as `chat_server` serves it (default `--max-backlog`, a 5 s
/// `--slow-timeout`), listening in memory.
fn room() -> (MemoryReactor, ListenerHandle) {
    let mut memory = MemoryReactor::new().unwrap();
    let limits = Limits {
        max_backlog: 1 << 20,
        slow_timeout: SLOW,
    };
    let options = ListenOptions {
        write_buffer_limit: limits.max_backlog,
        ..ListenOptions::default()
    };
    let addr: SocketAddr = "127.0.0.1:8123".parse().unwrap();
    let listener = memory
        .listen_tcp_with(addr, ChatFactory::new(limits), options)
        .unwrap();
    assert_eq!(memory.listens()[0].addr, addr);
    (memory, listener)
}

/// A member who connected from port `port` and chose `name`; what the room
/// said to it so far is taken.
fn join(
    memory: &mut MemoryReactor,
    listener: &ListenerHandle,
    port: u16,
    name: &str,
) -> ConnectionId {
    let peer = SocketAddr::from(([127, 0, 0, 1], port));
    let id = memory.accept(listener, peer).unwrap();
    assert_eq!(memory.take_written(id), b"What's your name?\n");
    memory.receive(id, format!("{name}\n").as_bytes());
    assert_eq!(
        memory.take_written(id),
        format!("Welcome, {name}!\n").as_bytes()
    );
    id
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_line_reaches_every_other_member_exactly_and_joins_and_leaves_are_announced() {
    let (mut memory, listener) = room();
    let alice = join(&mut memory, &listener, 40001, "alice");
    let bob = join(&mut memory, &listener, 40002, "bob");
    assert_eq!(text(memory.take_written(alice)), "* bob joined\n");
    let carol = join(&mut memory, &listener, 40003, "carol");
    assert_eq!(text(memory.take_written(alice)), "* carol joined\n");
    assert_eq!(text(memory.take_written(bob)), "* carol joined\n");

    // Two lines in one read, the second cut in two reads, `\r\n` endings.
    memory.receive(alice, b"hello\r\nhow are");
    memory.receive(alice, b" you?\n");
    let heard = "alice: hello\nalice: how are you?\n";
    assert_eq!(text(memory.take_written(bob)), heard);
    assert_eq!(text(memory.take_written(carol)), heard);
    assert_eq!(text(memory.take_written(alice)), "", "not to the speaker");

    // A taken name is refused and the connection closed, nobody told.
    let impostor = memory
        .accept(&listener, "127.0.0.1:40004".parse().unwrap())
        .unwrap();
    memory.receive(impostor, b"bob\n");
    assert_eq!(
        text(memory.take_written(impostor)),
        "What's your name?\nThe name bob is taken. Bye.\n"
    );
    assert_eq!(memory.close_reason(impostor), Some(&Reason::LocalClosed));

    // Carol's client closes: the others are told.
    memory.close(carol);
    assert_eq!(memory.close_reason(carol), Some(&Reason::PeerClosed));
    assert_eq!(text(memory.take_written(alice)), "* carol left\n");
    assert_eq!(text(memory.take_written(bob)), "* carol left\n");
    memory.receive(bob, b"bye\n");
    assert_eq!(text(memory.take_written(alice)), "bob: bye\n");
    assert_eq!(text(memory.take_written(carol)), "", "gone");
    assert_eq!(memory.listener_stats(&listener).unwrap().open, 2);
}

#[test]
fn a_speaker_hands_out_one_share_of_lines_per_turn_and_the_rest_from_a_timer() {
    let (mut memory, listener) = room();
    let alice = join(&mut memory, &listener, 40001, "alice");
    let bob = join(&mut memory, &listener, 40002, "bob");
    let carol = join(&mut memory, &listener, 40003, "carol");
    memory.take_written(alice);
    memory.take_written(bob);
    // 3,000 lines in one read, two listeners each: a turn's share is 4,096
    // writes, so 2,048 lines now and the rest at the next turn's timers.
    let lines: Vec<String> = (0..3000).map(|i| format!("{i}\n")).collect();
    memory.receive(bob, lines.concat().as_bytes());
    let relayed = |range: std::ops::Range<usize>| -> String {
        lines[range].iter().map(|l| format!("bob: {l}")).collect()
    };
    assert_eq!(text(memory.take_written(alice)), relayed(0..2048));
    assert_eq!(text(memory.take_written(carol)), relayed(0..2048));
    memory.advance(Duration::ZERO);
    assert_eq!(text(memory.take_written(alice)), relayed(2048..3000));
    assert_eq!(text(memory.take_written(carol)), relayed(2048..3000));
    // Bob reads again: his next line goes out at once.
    memory.receive(bob, b"done\n");
    assert_eq!(text(memory.take_written(alice)), "bob: done\n");
}

/// Alice, Bob and Carol; Carol's client stops reading and Bob's two long
/// lines put her backlog over its high watermark (64 KiB). Returns their
/// ids.
fn carol_falls_behind(memory: &mut MemoryReactor, listener: &ListenerHandle) -> [ConnectionId; 3] {
    let alice = join(memory, listener, 40001, "alice");
    let bob = join(memory, listener, 40002, "bob");
    let carol = join(memory, listener, 40003, "carol");
    memory.take_written(alice);
    memory.take_written(bob);
    memory.set_peer_reading(carol, false);
    let long = [b'x'; 40_000];
    for _ in 0..2 {
        memory.receive(bob, &[&long[..], b"\n"].concat());
    }
    assert_eq!(memory.buffered(carol), 2 * 40_006);
    assert!(memory.is_write_buffer_full(carol));
    assert_eq!(memory.take_written(alice).len(), 2 * 40_006);
    [alice, bob, carol]
}

#[test]
fn a_member_that_reads_nothing_for_the_slow_timeout_is_disconnected_and_the_others_told() {
    let (mut memory, listener) = room();
    let [alice, bob, carol] = carol_falls_behind(&mut memory, &listener);
    // Any progress within the timeout keeps her: one byte read.
    memory.advance(SLOW - Duration::from_millis(1));
    assert_eq!(memory.peer_reads(carol, 1), 1);
    memory.advance(Duration::from_millis(1));
    assert!(memory.is_connected(carol));
    assert_eq!(text(memory.take_written(alice)), "");
    // A whole timeout without a byte read: disconnected.
    memory.advance(SLOW - Duration::from_millis(1));
    assert!(memory.is_connected(carol));
    memory.advance(Duration::from_millis(1));
    assert!(!memory.is_connected(carol), "closing");
    assert_eq!(text(memory.take_written(alice)), "* carol left\n");
    assert_eq!(text(memory.take_written(bob)), "* carol left\n");
    memory.receive(bob, b"still here\n");
    assert_eq!(text(memory.take_written(alice)), "bob: still here\n");
    // Her client reads within the grace: the backlog, then the goodbye.
    memory.set_peer_reading(carol, true);
    let line = [&[b'x'; 40_000][..], b"\n"].concat();
    let expected = [&b"bob: "[..], &line, b"bob: ", &line, GOODBYE].concat();
    assert_eq!(memory.written(carol), expected);
    assert_eq!(memory.close_reason(carol), Some(&Reason::LocalClosed));
}

#[test]
fn a_disconnected_member_that_still_does_not_read_is_reset_after_the_grace() {
    let (mut memory, listener) = room();
    let [alice, _bob, carol] = carol_falls_behind(&mut memory, &listener);
    memory.advance(SLOW);
    assert_eq!(text(memory.take_written(alice)), "* carol left\n");
    assert_eq!(memory.buffered(carol), 2 * 40_006 + GOODBYE.len());
    memory.advance(SLOW - Duration::from_millis(1));
    assert_eq!(memory.close_reason(carol), None);
    memory.advance(Duration::from_millis(1));
    assert_eq!(memory.close_reason(carol), Some(&Reason::Aborted));
    assert_eq!(memory.written(carol), b"", "she never read a byte");
    assert_eq!(memory.listener_stats(&listener).unwrap().open, 2);
}
