//! How much input waits in a UNIX socket's receive queue (FIONREAD).

use std::os::fd::{AsFd, AsRawFd};

/// Bytes queued on `socket` that nobody has read, counted without reading
/// them (0 if the kernel would not say). A UNIX socket closed with input
/// still queued makes its peer's next read fail with ECONNRESET, once the
/// peer has read what was sent to it: the nearest a UNIX socket comes to a
/// TCP reset. Reading the input to count it would empty the queue and turn
/// that error into a clean end-of-file.
pub(crate) fn queued_input(socket: &impl AsFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: `socket` is borrowed for the call; FIONREAD writes one `int`
    // to the pointer, which points at `queued`.
    let rc = unsafe {
        libc::ioctl(
            socket.as_fd().as_raw_fd(),
            libc::FIONREAD,
            &mut queued as *mut libc::c_int,
        )
    };
    if rc != 0 {
        return 0;
    }
    usize::try_from(queued).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn counts_what_waits_without_taking_it() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(super::queued_input(&b), 0);
        a.write_all(b"hello").unwrap();
        assert_eq!(super::queued_input(&b), 5);
        let mut buf = [0; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }
}
