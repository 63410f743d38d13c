//! Loopback sockets with a small, fixed receive buffer: the kernel then
//! holds little of what a server writes to a peer that reads slowly or not
//! at all, whatever the host's autotuning limits (`tcp_rmem` may allow tens
//! of MiB), so a test can count on the rest waiting in the server's buffer.
//!
//! Included with `#[path = "common/small_window.rs"] mod small_window;`
//! next to `mod common;`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Socket, Type};

use crate::common::{localhost, WAIT};

/// The receive buffer asked for; setting it also turns off the kernel's
/// autotuning of that buffer.
pub const RECV_BUFFER: usize = 64 * 1024;

/// A blocking client of `addr` with a small receive buffer and the usual
/// read and write timeouts.
pub fn client_with_small_window(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // Before connecting: the window scale is agreed in the handshake.
    socket.set_recv_buffer_size(RECV_BUFFER).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// A loopback listener whose accepted connections have a small receive
/// buffer.
pub fn listener_with_small_window() -> TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(RECV_BUFFER).unwrap();
    socket.bind(&localhost().into()).unwrap();
    socket.listen(128).unwrap();
    TcpListener::from(socket)
}
