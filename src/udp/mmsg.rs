//! Linux's batched datagram calls: `recvmmsg`, and `sendmmsg` with UDP GSO
//! (a `UDP_SEGMENT` control message), with the arrays they read and fill,
//! kept from one call to the next so the hot path allocates nothing. The
//! UDP module's `unsafe` is here and only here: zeroing these C structures
//! once, and the three system calls.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use log::warn;
use socket2::SockAddr;

use super::batch::{Message, Received, BATCH};

/// `UDP_SEGMENT` from `linux/udp.h` (Linux 4.18): as a socket option, the
/// probe for GSO; as a control message, the size of the segments one send
/// is cut into. The `libc` crate defines it for Android only.
const UDP_SEGMENT: libc::c_int = 103;

/// Set once the kernel refused a batched call itself (ENOSYS: a kernel
/// without it, or a seccomp filter that forbids it): from then on every
/// endpoint of the process moves one datagram per call.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether the batched calls may be used.
pub(super) fn available() -> bool {
    !REFUSED.load(Ordering::Relaxed)
}

/// Turns the batched calls off for the whole process, saying so once.
pub(super) fn refuse(why: &io::Error) {
    if !REFUSED.swap(true, Ordering::Relaxed) {
        warn!(
            "recvmmsg/sendmmsg refused ({why}): UDP moves one datagram per system call from now on"
        );
    }
}

/// Whether `e`, from `recvmmsg`, says the call itself is refused: not
/// there (ENOSYS), or forbidden by a seccomp filter (which answers EPERM
/// or whatever errno its author chose; EINVAL and EOPNOTSUPP, which no
/// receive on a UDP socket otherwise returns, are taken as that too).
pub(super) fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::EOPNOTSUPP)
    )
}

/// Whether `e`, from `sendmmsg`, may be the call itself refused rather than
/// its first datagram: EPERM, EINVAL and EOPNOTSUPP can be either (a
/// firewall rule, a bad destination), so the sender tries that datagram
/// alone to tell. (ENOSYS is always the call: [`is_unsupported`].)
pub(super) fn may_be_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EINVAL | libc::EOPNOTSUPP)
    )
}

/// Whether `e`, from a send whose first message is a GSO run, is the
/// kernel or the device refusing segmentation: EIO (no checksum offload on
/// the route's device, or an IPsec route), EMSGSIZE or EINVAL (a segment
/// longer than the route's MTU, which kernels have answered either way;
/// too many segments), ENOPROTOOPT or EOPNOTSUPP (a kernel that does not
/// take `UDP_SEGMENT` as a control message). (A run is never longer than
/// one datagram may be, so EMSGSIZE is not about its size.)
pub(super) fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EMSGSIZE | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Whether the kernel knows UDP GSO (Linux 4.18 and later): it answers a
/// query for the `UDP_SEGMENT` option of socket `fd`. A kernel that does
/// not would ignore the control message and send a whole run as one
/// datagram, so GSO is never tried without this answer.
pub(super) fn gso_supported(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes `len` says;
    // the kernel writes at most `len` bytes into `value` and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            UDP_SEGMENT,
            ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Room for any socket address the kernel writes, as bytes (so reading it
/// back needs no `unsafe`), aligned as `sockaddr_storage`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct NameBytes([u8; mem::size_of::<libc::sockaddr_storage>()]);

/// The arrays of one `recvmmsg`: a header, an iovec and a name per slot.
pub(super) struct RecvArrays {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    names: Box<[NameBytes]>,
}

impl RecvArrays {
    pub(super) fn new() -> RecvArrays {
        RecvArrays {
            headers: (0..BATCH).map(|_| zeroed_header()).collect(),
            iovecs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            names: vec![NameBytes([0; mem::size_of::<libc::sockaddr_storage>()]); BATCH]
                .into_boxed_slice(),
        }
    }

    /// One `recvmmsg` on `fd` into the first `max` slots of `slot` bytes of
    /// `buffers`; describes each datagram received in `got`. Returns how
    /// many arrived: fewer than `max` only when the socket's queue ran out
    /// (or an error stopped the batch, which the kernel keeps for the next
    /// call).
    pub(super) fn recv(
        &mut self,
        fd: RawFd,
        buffers: &mut [u8],
        slot: usize,
        max: usize,
        got: &mut [Received; BATCH],
    ) -> io::Result<usize> {
        let n = max.min(BATCH).min(buffers.len() / slot);
        let slots = buffers.chunks_exact_mut(slot);
        for (i, buffer) in slots.take(n).enumerate() {
            self.iovecs[i] = libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: slot,
            };
            let h = &mut self.headers[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = ptr::addr_of_mut!(self.names[i]).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<NameBytes>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: the first `n` headers point at their own iovec and name
        // (boxed, so they stay put) and each iovec at its own `slot` bytes
        // of `buffers`, all valid for writes and borrowed mutably for the
        // whole call; the kernel writes at most `msg_namelen` bytes of a
        // name and `iov_len` bytes of a slot, and keeps no pointer after
        // returning. No timeout is passed.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                n as libc::c_uint,
                0,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = r as usize;
        for (i, got) in got.iter_mut().enumerate().take(r) {
            let h = &self.headers[i].msg_hdr;
            *got = Received {
                len: (self.headers[i].msg_len as usize).min(slot),
                from: socket_addr(&self.names[i], h.msg_namelen),
                truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            };
        }
        Ok(r)
    }
}

/// A `UDP_SEGMENT` control message, laid out as `CMSG_SPACE(2)` bytes: the
/// header, then the segment size where `CMSG_DATA` points.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GsoControl {
    header: libc::cmsghdr,
    segment: u16,
}

// SAFETY (both): CMSG_SPACE and CMSG_LEN are arithmetic on their argument.
const _: () = assert!(mem::size_of::<GsoControl>() == unsafe { libc::CMSG_SPACE(2) } as usize);
const _: () =
    assert!(mem::offset_of!(GsoControl, segment) == unsafe { libc::CMSG_LEN(0) } as usize);

/// The arrays of one `sendmmsg`: a header, an iovec, a destination and a
/// GSO control message per message.
pub(super) struct SendArrays {
    headers: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    names: Box<[SockAddr]>,
    controls: Box<[GsoControl]>,
}

impl SendArrays {
    pub(super) fn new() -> SendArrays {
        let mut control = GsoControl {
            header: zeroed_cmsghdr(),
            segment: 0,
        };
        // SAFETY: arithmetic on its argument.
        control.header.cmsg_len = unsafe { libc::CMSG_LEN(2) } as _;
        control.header.cmsg_level = libc::SOL_UDP;
        control.header.cmsg_type = UDP_SEGMENT;
        let unspecified = SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        SendArrays {
            headers: (0..BATCH).map(|_| zeroed_header()).collect(),
            iovecs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            names: vec![unspecified; BATCH].into_boxed_slice(),
            controls: vec![control; BATCH].into_boxed_slice(),
        }
    }

    /// One `sendmmsg` on `fd` of the first `BATCH` of `messages`. Returns
    /// how many the kernel took, or, when it took none, the first one's
    /// error. (An error after the first message is not reported: the
    /// kernel stops there and the caller sends from there again.)
    pub(super) fn send(&mut self, fd: RawFd, messages: &[Message<'_>]) -> io::Result<usize> {
        let n = messages.len().min(BATCH);
        for (i, m) in messages.iter().take(n).enumerate() {
            self.iovecs[i] = libc::iovec {
                iov_base: m.data.as_ptr().cast_mut().cast(),
                iov_len: m.data.len(),
            };
            let h = &mut self.headers[i];
            h.msg_len = 0;
            match m.to {
                Some(to) => {
                    self.names[i] = SockAddr::from(to);
                    h.msg_hdr.msg_name = self.names[i].as_ptr().cast_mut().cast();
                    h.msg_hdr.msg_namelen = self.names[i].len();
                }
                None => {
                    h.msg_hdr.msg_name = ptr::null_mut();
                    h.msg_hdr.msg_namelen = 0;
                }
            }
            h.msg_hdr.msg_iov = &mut self.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            match m.segment {
                Some(segment) => {
                    self.controls[i].segment = segment;
                    h.msg_hdr.msg_control = ptr::addr_of_mut!(self.controls[i]).cast();
                    h.msg_hdr.msg_controllen = mem::size_of::<GsoControl>() as _;
                }
                None => {
                    h.msg_hdr.msg_control = ptr::null_mut();
                    h.msg_hdr.msg_controllen = 0;
                }
            }
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: the first `n` headers point at their own iovec, and, when
        // set, their own destination and control message (boxed, so they
        // stay put); each iovec at the bytes of one message, borrowed for
        // the whole call. The kernel only reads through these pointers
        // (`sendmmsg` writes `msg_len` into the headers themselves) and
        // keeps none after returning.
        let r = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }
}

fn zeroed_header() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is a C structure of integers and raw pointers, for
    // which all zeros (null pointers, zero lengths) is a valid value.
    unsafe { mem::zeroed() }
}

fn zeroed_cmsghdr() -> libc::cmsghdr {
    // SAFETY: `cmsghdr` is a C structure of integers (and, on some libcs,
    // private padding), for which all zeros is a valid value.
    unsafe { mem::zeroed() }
}

/// The address the kernel wrote into `name` (`len` bytes of it): IPv4 or
/// IPv6, read as `sockaddr_in`/`sockaddr_in6` lay them out (family in host
/// order, port in network order; flow info and scope as std reads them).
fn socket_addr(name: &NameBytes, len: libc::socklen_t) -> Option<SocketAddr> {
    let b = &name.0;
    let len = len as usize;
    let family = libc::c_int::from(u16::from_ne_bytes([b[0], b[1]]));
    let port = u16::from_be_bytes([b[2], b[3]]);
    let word = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    match family {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => Some(SocketAddr::V4(
            SocketAddrV4::new(Ipv4Addr::new(b[4], b[5], b[6], b[7]), port),
        )),
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            let mut ip = [0; 16];
            ip.copy_from_slice(&b[8..24]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip.into(),
                port,
                word(4),
                word(24),
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_too_short_for_its_family_is_no_address() {
        let mut name = NameBytes([0; mem::size_of::<libc::sockaddr_storage>()]);
        name.0[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        name.0[2..4].copy_from_slice(&9u16.to_be_bytes());
        name.0[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(socket_addr(&name, 4), None);
        let full = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            socket_addr(&name, full),
            Some("127.0.0.1:9".parse().unwrap())
        );
        name.0[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(socket_addr(&name, full), None, "not an IP family");
    }
}
