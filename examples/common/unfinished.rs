//! Answering a line that never ends: the seeds' clients send `input()` text
//! with no line ending and wait for the answer, which a line server would
//! never give. [`AnswerUnfinished`] wraps a `\n`-delimited [`LineReceiver`]
//! and, once bytes after the last `\n` have waited `after` with nothing
//! more arriving, hands them to the handler as a line whose [`Ending`] is
//! [`Ending::Waited`]: the handler answers them as they stand, as the seed
//! servers answer whatever one `recv` returned.
//!
//! The rest of such a line, if it comes later, is a line of its own. The
//! line length limit and everything else stay the [`LineReceiver`]'s.

use std::time::Duration;

use reactor::framing::{LineHandler, LineReceiver};
use reactor::{OnStop, Protocol, Reason, Timeout, TimerId, Transport};

/// How the line being handed to [`LineHandler::line_received`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// At its `\n`, which the handler writes back.
    Newline,
    /// It had no line ending yet and waited long enough: answered as it
    /// stands, with no line ending added.
    Waited,
}

/// A line handler that answers differently when a line had no ending.
pub trait KnowsEnding: LineHandler {
    /// Called with [`Ending::Waited`] just before such a line is handed
    /// over, and with [`Ending::Newline`] right after.
    fn set_ending(&mut self, ending: Ending);
}

/// The timer tag of the wait; the handlers wrapped here schedule none.
const WAITED: u64 = u64::MAX;

/// Where the bytes after the last `\n` stand.
enum Unfinished {
    /// None: the stream so far ends with `\n` (or nothing came yet).
    None,
    /// Some, waiting for more or for the timer.
    Waiting(TimerId),
}

/// A `\n` [`LineReceiver`] that also answers a line left unfinished for
/// `after`; see the module documentation.
pub struct AnswerUnfinished<H: KnowsEnding> {
    inner: LineReceiver<H>,
    /// `None` never answers an unfinished line: a plain line server.
    after: Option<Duration>,
    unfinished: Unfinished,
}

impl<H: KnowsEnding> AnswerUnfinished<H> {
    /// Wraps `inner`, which must split lines at `\n`.
    pub fn new(inner: LineReceiver<H>, after: Option<Duration>) -> Self {
        AnswerUnfinished {
            inner,
            after,
            unfinished: Unfinished::None,
        }
    }

    fn cancel_wait(&mut self, transport: &mut dyn Transport) {
        if let Unfinished::Waiting(timer) =
            std::mem::replace(&mut self.unfinished, Unfinished::None)
        {
            transport.cancel_timer(timer);
        }
    }
}

impl<H: KnowsEnding> Protocol for AnswerUnfinished<H> {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
        // Every wait restarts with new bytes: only a pause answers.
        self.cancel_wait(transport);
        if let (Some(after), false, false) =
            (self.after, data.ends_with(b"\n"), transport.is_closing())
        {
            self.unfinished = Unfinished::Waiting(transport.call_later(after, WAITED));
        }
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        if tag != WAITED {
            return self.inner.timer_fired(transport, tag);
        }
        self.unfinished = Unfinished::None;
        if transport.is_closing() {
            return;
        }
        // The receiver holds the unfinished bytes: a `\n` completes them
        // into a line the handler knows not to end.
        self.inner.handler_mut().set_ending(Ending::Waited);
        self.inner.data_received(transport, b"\n");
        self.inner.handler_mut().set_ending(Ending::Newline);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.cancel_wait(transport);
        self.inner.connection_lost(transport, reason);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        self.inner.timeout_connection(transport, timeout);
    }

    fn allows_half_close(&self) -> bool {
        self.inner.allows_half_close()
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        self.inner.read_connection_lost(transport);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.pause_producing(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.resume_producing(transport);
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        self.inner.stopping(transport)
    }
}
