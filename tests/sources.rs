//! `Reactor::add_source`: a UNIX stream pair on the loop delivers every
//! byte to its callback, removal stops the callbacks, and a panicking
//! callback costs only its own source.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use common::WAIT;
use mio::Interest;
use reactor::{Reactor, SourceEvent, SourceId};

/// Stops the reactor after [`WAIT`] if the test's own stop never comes, and
/// says so through the returned flag.
fn guard(reactor: &mut Reactor) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    reactor.call_later(WAIT, move |r| {
        flag.set(true);
        r.stop();
    });
    fired
}

/// A connected pair: our end for the reactor, theirs (blocking) for the test.
fn pair() -> (mio::net::UnixStream, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    (mio::net::UnixStream::from_std(ours), theirs)
}

/// Reads `stream` until `WouldBlock` into `into`; true at end-of-file.
fn read_all(stream: &mut mio::net::UnixStream, into: &mut Vec<u8>) -> bool {
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn bytes_written_to_the_other_end_reach_the_callback_exactly() {
    // Several times what the socket buffers hold, in uneven writes: many
    // edges, each to be read to WouldBlock.
    let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let half = sent.len() / 2;
    let (ours, mut theirs) = pair();
    let to_send = sent.clone();
    // The second half waits until the callback has read the first and
    // returned, so it needs a new edge: a source that is not re-armed
    // after its callback never sees it.
    let (first_half_read, read_ack) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        for chunk in to_send[..half].chunks(1000 + 37) {
            theirs.write_all(chunk).unwrap();
        }
        read_ack.recv_timeout(WAIT).unwrap();
        for chunk in to_send[half..].chunks(1000 + 37) {
            theirs.write_all(chunk).unwrap();
        }
        // Dropping it hangs up: end-of-file.
    });
    let mut reactor = Reactor::new().unwrap();
    let timed_out = guard(&mut reactor);
    let got = Rc::new(RefCell::new(Vec::new()));
    let into = got.clone();
    let acked = Cell::new(false);
    reactor
        .add_source(ours, Interest::READABLE, move |r, stream, event| {
            assert!(event.is_readable());
            let eof = read_all(stream, &mut into.borrow_mut());
            if into.borrow().len() == half && !acked.replace(true) {
                first_half_read.send(()).unwrap();
            }
            if eof {
                assert!(r.remove_source(event.id()));
                r.stop();
            }
        })
        .unwrap();
    reactor.run().unwrap();
    writer.join().unwrap();
    assert!(!timed_out.get(), "got {} bytes", got.borrow().len());
    assert!(*got.borrow() == sent, "the bytes differ");
}

#[test]
fn a_removed_source_is_not_called_again() {
    // `outside` is removed by a timer, `itself` by its own callback; `last`
    // hears the byte written after theirs, so by its call theirs would
    // have come.
    let (outside, outside_peer) = pair();
    let (itself, itself_peer) = pair();
    let (last, last_peer) = pair();
    let peers = Rc::new(RefCell::new((outside_peer, itself_peer, last_peer)));
    peers.borrow_mut().0.write_all(b"1").unwrap();
    peers.borrow_mut().1.write_all(b"1").unwrap();
    let mut reactor = Reactor::new().unwrap();
    let timed_out = guard(&mut reactor);
    let heard = Rc::new(RefCell::new(Vec::<(&str, Vec<u8>)>::new()));
    let recorder = |name: &'static str| {
        let heard = heard.clone();
        move |stream: &mut mio::net::UnixStream| {
            let mut got = Vec::new();
            read_all(stream, &mut got);
            heard.borrow_mut().push((name, got));
        }
    };
    let outside_id: Rc<Cell<Option<SourceId>>> = Rc::new(Cell::new(None));
    let (record, id, writers) = (recorder("outside"), outside_id.clone(), peers.clone());
    let first = Rc::new(Cell::new(true));
    outside_id.set(Some(
        reactor
            .add_source(outside, Interest::READABLE, move |r, stream, _| {
                record(stream);
                if first.replace(false) {
                    let (id, writers) = (id.clone(), writers.clone());
                    r.call_later(Duration::ZERO, move |r| {
                        assert!(r.remove_source(id.get().unwrap()));
                        let mut peers = writers.borrow_mut();
                        // Their ends are closed if removal worked.
                        let _ = peers.0.write_all(b"2");
                        let _ = peers.1.write_all(b"2");
                        peers.2.write_all(b"x").unwrap();
                    });
                }
            })
            .unwrap(),
    ));
    let record = recorder("itself");
    // What its two removals said (an assertion in a callback would only
    // be caught by the panic guard, which removes the source too).
    let removals = Rc::new(Cell::new(None));
    let said = removals.clone();
    reactor
        .add_source(itself, Interest::READABLE, move |r, stream, event| {
            record(stream);
            let first = r.remove_source(event.id());
            said.set(Some((first, r.remove_source(event.id()))));
        })
        .unwrap();
    let record = recorder("last");
    reactor
        .add_source(last, Interest::READABLE, move |r, stream, _| {
            record(stream);
            r.stop();
        })
        .unwrap();
    reactor.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(removals.get(), Some((true, false)));
    let mut heard = heard.borrow().clone();
    // The first two come in the kernel's order.
    heard[..2].sort();
    assert_eq!(
        heard,
        [
            ("itself", b"1".to_vec()),
            ("outside", b"1".to_vec()),
            ("last", b"x".to_vec())
        ]
    );
}

#[test]
fn a_panicking_callback_costs_only_its_own_source() {
    let (doomed, doomed_peer) = pair();
    let (other, other_peer) = pair();
    let peers = Rc::new(RefCell::new((doomed_peer, other_peer)));
    peers.borrow_mut().0.write_all(b"1").unwrap();
    let mut reactor = Reactor::new().unwrap();
    let timed_out = guard(&mut reactor);
    /// Notes that the callback holding it was dropped.
    struct Dropped(Rc<Cell<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let doomed_calls = Rc::new(Cell::new(0));
    let dropped_at_step = Rc::new(Cell::new(false));
    let (calls, note, writers, seen) = (
        doomed_calls.clone(),
        Dropped(dropped.clone()),
        peers.clone(),
        (dropped.clone(), dropped_at_step.clone()),
    );
    reactor
        .add_source(doomed, Interest::READABLE, move |r, _, _: SourceEvent| {
            let _keep = &note;
            calls.set(calls.get() + 1);
            // Runs after this turn's I/O, once the panic was dealt with.
            let (writers, seen) = (writers.clone(), seen.clone());
            r.call_later(Duration::ZERO, move |_| {
                seen.1.set(seen.0.get());
                let mut peers = writers.borrow_mut();
                // Its end is closed if it was removed.
                let _ = peers.0.write_all(b"2");
                peers.1.write_all(b"x").unwrap();
            });
            panic!("callback on fire");
        })
        .unwrap();
    let other_got = Rc::new(RefCell::new(Vec::new()));
    let into = other_got.clone();
    reactor
        .add_source(other, Interest::READABLE, move |r, stream, _| {
            read_all(stream, &mut into.borrow_mut());
            r.stop();
        })
        .unwrap();
    reactor.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        doomed_calls.get(),
        1,
        "the panicked source was called again"
    );
    assert!(dropped_at_step.get(), "the panicked source was not dropped");
    assert_eq!(*other_got.borrow(), b"x");
}
