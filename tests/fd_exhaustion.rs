//! `accept` failing with EMFILE: logged, no busy loop, and the listener
//! serves again once descriptors free up. A test binary of its own because
//! it exhausts the whole process's descriptors.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use common::*;

/// User plus system CPU time of this process, in clock ticks. Reads through
/// a file opened beforehand: there are no descriptors left to open it with.
fn cpu_ticks(stat_file: &mut File) -> u64 {
    let mut stat = String::new();
    stat_file.seek(SeekFrom::Start(0)).unwrap();
    stat_file.read_to_string(&mut stat).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state field (3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    let server = listening(|| Echo);
    let mut first = client(server.addr);
    assert_eq!(roundtrip(&mut first, b"one"), b"one");

    let mut stat_file = File::open("/proc/self/stat").unwrap();
    let mut hogs = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hogs.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE, got {e}");
                break;
            }
        }
    }
    // One descriptor for our client socket; the server has none left to accept it.
    hogs.pop();
    let mut waiting = std::net::TcpStream::connect(server.addr).unwrap();
    waiting.write_all(b"two").unwrap();

    let before = cpu_ticks(&mut stat_file);
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0; 3];
    let err = waiting
        .read(&mut buf)
        .expect_err("no descriptor to accept with: no echo yet");
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    let spent = cpu_ticks(&mut stat_file) - before;
    // A listener spinning on EMFILE would burn the whole half second (~50 ticks).
    assert!(
        spent < 15,
        "{spent} ticks of CPU in 0.5 s while out of descriptors"
    );

    drop(hogs);
    waiting.set_read_timeout(Some(WAIT)).unwrap();
    waiting.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two", "served once descriptors were free again");
    assert_eq!(roundtrip(&mut first, b"three"), b"three");
}
