//! Small ready-made protocols, as in Twisted's `twisted.protocols.wire`.

use crate::protocol::Protocol;
use crate::transport::Transport;

/// Sends every byte it receives straight back (RFC 862).
///
/// Zero-sized: a reactor serving ten thousand idle echo connections holds no
/// protocol memory for them at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        transport.write(data);
    }
}

/// Reads and throws away everything it receives (RFC 863).
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _transport: &mut dyn Transport, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::StringTransport;

    #[test]
    fn echo_writes_back_each_chunk_in_order() {
        let mut t = StringTransport::new();
        let mut p = Echo;
        p.connection_made(&mut t);
        assert_eq!(t.value(), b"");
        p.data_received(&mut t, b"hello ");
        p.data_received(&mut t, b"world");
        assert_eq!(t.value(), b"hello world");
        assert!(!t.is_disconnecting());
    }

    #[test]
    fn discard_writes_nothing() {
        let mut t = StringTransport::new();
        Discard.data_received(&mut t, b"into the void");
        assert!(t.value().is_empty());
    }
}
