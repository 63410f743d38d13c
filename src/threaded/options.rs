//! Settings shared by every threaded server.

/// Thread and socket settings for the threaded servers
/// ([`ThreadedServer`](super::ThreadedServer), [`ThreadingTcpServer`](super::ThreadingTcpServer)
/// and the others).
#[derive(Debug, Clone)]
pub struct ThreadedOptions {
    /// Pending connections the kernel queues before `accept` (default 1024,
    /// as the reactor's).
    pub backlog: i32,
    /// Stack size of each worker thread (default [`DEFAULT_STACK_SIZE`]).
    pub stack_size: usize,
    /// Name of the worker threads, as `top -H` shows them (at most 15 bytes
    /// survive on Linux); the accept loop's thread of a
    /// [`ThreadedServer`](super::ThreadedServer) is `NAME-accept`.
    pub thread_name: String,
    /// Bytes each connection thread reads at once (default 64 KiB, the
    /// reactor's read size).
    pub read_buffer: usize,
}

/// Default worker stack: 256 KiB. Rust's default is 2 MiB; a protocol
/// callback needs a few KiB, and printing a panic's backtrace
/// (`RUST_BACKTRACE=full`, which symbolizes it on the panicking thread)
/// needs between 32 and 64 KiB in a debug build (it overflows 32 KiB), so
/// this leaves a wide margin. The stack is reserved address space: only the
/// pages a thread touches count in its memory, so this mostly bounds the
/// address space 10,000 threads take (2.5 GiB rather than 20 GiB).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

impl Default for ThreadedOptions {
    fn default() -> Self {
        ThreadedOptions {
            backlog: 1024,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "threaded".to_string(),
            read_buffer: 64 * 1024,
        }
    }
}
