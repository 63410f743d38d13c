//! Streaming a large body without buffering it: Twisted's `FileSender`.

use std::io::{self, Read};

use crate::transport::Transport;

/// Bytes read and written per step by default.
pub const DEFAULT_CHUNK: usize = 64 * 1024;

/// Where a [`StreamSender`] stands after [`produce`](StreamSender::produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The write buffer reached its high watermark: call `produce` again
    /// from the protocol's `resume_producing`.
    Paused,
    /// Everything was handed to the transport.
    Done,
}

/// Copies a reader (a file, a generated stream) to a transport in chunks,
/// only while the transport's write buffer is below its high watermark, so
/// memory stays at one chunk plus the watermark however large the body.
///
/// A protocol calls [`produce`](StreamSender::produce) once to start and
/// again from [`Protocol::resume_producing`](crate::Protocol::resume_producing)
/// until it says [`Progress::Done`]. The default `pause_producing` pauses
/// reading the connection; a protocol that keeps it resumes reading once
/// the stream is done.
///
/// ```
/// use reactor::producer::{Progress, StreamSender};
/// use reactor::testing::StringTransport;
///
/// let mut transport = StringTransport::new();
/// let mut sender = StreamSender::with_length(&b"hello world"[..], 11).with_chunk_size(4);
/// assert_eq!(sender.produce(&mut transport).unwrap(), Progress::Done);
/// assert_eq!(transport.value(), b"hello world");
/// ```
pub struct StreamSender<R> {
    reader: R,
    chunk: Box<[u8]>,
    /// Bytes still owed, when the length was promised up front.
    remaining: Option<u64>,
    sent: u64,
}

impl<R: Read> StreamSender<R> {
    /// Sends everything `reader` yields, up to its end.
    pub fn new(reader: R) -> Self {
        StreamSender {
            reader,
            chunk: vec![0; DEFAULT_CHUNK].into_boxed_slice(),
            remaining: None,
            sent: 0,
        }
    }

    /// Sends exactly `len` bytes of `reader` (a length already announced to
    /// the peer): an earlier end is an `UnexpectedEof` error, since a short
    /// body must not pass for a complete one.
    pub fn with_length(reader: R, len: u64) -> Self {
        StreamSender {
            remaining: Some(len),
            ..StreamSender::new(reader)
        }
    }

    /// Reads and writes `size` bytes per step (at least one).
    pub fn with_chunk_size(mut self, size: usize) -> Self {
        self.chunk = vec![0; size.max(1)].into_boxed_slice();
        self
    }

    /// Bytes handed to the transport so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Writes chunks while the transport's buffer is below its high
    /// watermark. Errors: the reader's, `UnexpectedEof` for a body shorter
    /// than its promised length, `NotConnected` once the connection closes.
    pub fn produce(&mut self, transport: &mut dyn Transport) -> io::Result<Progress> {
        loop {
            if self.remaining == Some(0) {
                return Ok(Progress::Done);
            }
            if transport.is_closing() {
                return Err(io::ErrorKind::NotConnected.into());
            }
            if transport.is_write_buffer_full() {
                return Ok(Progress::Paused);
            }
            let want = match self.remaining {
                Some(left) => left.min(self.chunk.len() as u64) as usize,
                None => self.chunk.len(),
            };
            let n = match self.reader.read(&mut self.chunk[..want]) {
                Ok(0) if self.remaining.is_none() => return Ok(Progress::Done),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            transport.write(&self.chunk[..n]);
            self.sent += n as u64;
            if let Some(left) = &mut self.remaining {
                *left -= n as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StringTransport;

    #[test]
    fn pauses_while_the_buffer_is_full_and_resumes_where_it_stopped() {
        let body: Vec<u8> = (0..=255).collect();
        let mut sender = StreamSender::new(&body[..]).with_chunk_size(100);
        let mut t = StringTransport::new();
        t.set_write_buffer_full(true);
        assert_eq!(sender.produce(&mut t).unwrap(), Progress::Paused);
        assert!(t.value().is_empty());
        t.set_write_buffer_full(false);
        assert_eq!(sender.produce(&mut t).unwrap(), Progress::Done);
        assert_eq!(t.value(), &body[..]);
        assert_eq!(sender.sent(), 256);
    }

    #[test]
    fn a_body_shorter_than_promised_is_an_error() {
        let mut sender = StreamSender::with_length(&b"short"[..], 10);
        let mut t = StringTransport::new();
        let err = sender.produce(&mut t).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(t.value(), b"short");
    }

    #[test]
    fn a_promised_length_stops_before_the_readers_end() {
        let mut sender = StreamSender::with_length(&b"0123456789"[..], 4);
        let mut t = StringTransport::new();
        assert_eq!(sender.produce(&mut t).unwrap(), Progress::Done);
        assert_eq!(t.value(), b"0123");
    }
}
