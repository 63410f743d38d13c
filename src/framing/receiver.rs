//! What the line and frame receivers share: carrying an incomplete message
//! between reads, raw mode, bytes a handler hands back, closing on bad input,
//! and the [`Protocol`] callbacks. What differs between them, where a message
//! ends in the bytes and which handler hears of it, is a [`Splitter`] and a
//! [`Handles`] implementation.

use std::ops::Range;
use std::time::Duration;

use log::warn;

use crate::protocol::{OnStop, Protocol, Timeout};
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::Transport;

/// Whether bytes are cut into messages or passed on as they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cut into lines or frames.
    Messages,
    /// Passed to the handler's `raw_data_received` as they come.
    Raw,
}

/// The receiver's state a handler may change during a callback.
pub(super) struct State {
    mode: Mode,
    max_length: usize,
    /// Bytes a raw-mode handler handed back, to be cut into messages before
    /// anything newer.
    replay: Vec<u8>,
    /// Why the receiver closed the connection itself, for `connection_lost`.
    bad_input: Option<String>,
}

/// What a handler's callback gets: the connection's transport, and the
/// receiver's mode and limit. [`Lines`](super::Lines) and
/// [`Frames`](super::Frames) add sending in their format; `F` is what that
/// takes (the delimiter, the header codec).
pub struct Context<'a, F: ?Sized> {
    pub(super) transport: &'a mut dyn Transport,
    state: &'a mut State,
    pub(super) format: &'a F,
}

impl<F: ?Sized> Context<'_, F> {
    /// The connection's transport, for raw writes, closing, timers and the
    /// reactor.
    pub fn transport(&mut self) -> &mut dyn Transport {
        self.transport
    }

    /// From the next byte on, deliver bytes to the handler's
    /// `raw_data_received` as they come (a file body after a header line or
    /// frame). Bytes already received after the current message go there
    /// too, in order.
    pub fn set_raw_mode(&mut self) {
        self.state.mode = Mode::Raw;
    }

    /// Back to messages, starting with `rest` (copied once) before anything
    /// received later.
    pub(super) fn set_message_mode_with(&mut self, rest: &[u8]) {
        self.state.mode = Mode::Messages;
        self.state.replay.extend_from_slice(rest);
    }

    /// The longest message accepted: a line without its delimiter, a frame's
    /// payload.
    pub fn max_length(&self) -> usize {
        self.state.max_length
    }

    /// Logs `why` as a warning with the peer's address and closes the
    /// connection after what is buffered is written; the handler's
    /// `connection_lost` then gets [`Reason::BadInput`] with `why`.
    pub fn close_because(&mut self, why: String) {
        warn!("{}: {why}; closing", self.transport.peer_addr());
        self.state.bad_input.get_or_insert(why);
        self.transport.lose_connection();
    }

    /// Schedules the handler's `timer_fired` with `tag`.
    pub fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.transport.call_later(delay, tag)
    }
}

/// What a [`Splitter`] finds at the start of the bytes it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A whole message, `body` of the bytes shown; it and its framing take
    /// the first `len` bytes.
    Message {
        /// Where the message's own bytes are.
        body: Range<usize>,
        /// Bytes used, delimiter or header and trailer included.
        len: usize,
    },
    /// The message is incomplete: keep the bytes and wait for more.
    Wait,
    /// The first `n` bytes (at least one) belong to a refused message and
    /// are dropped.
    Skip(usize),
    /// In raw mode, with nothing left to skip: the bytes go to the handler
    /// as they are.
    Raw,
    /// The message is over the limit (`declared` bytes, as far as known);
    /// the splitter skips it from now on.
    TooLong(u64),
    /// The bytes are not a message of this format; the splitter skips all
    /// that follows.
    Malformed(&'static str),
}

/// Where messages end in a byte stream: lines at a delimiter, frames where
/// their header says.
pub trait Splitter: 'static {
    /// What a handler's [`Context`] holds for sending in this format.
    type Format: ?Sized;

    /// The format, for the handler's context.
    fn format(&self) -> &Self::Format;

    /// How many bytes at the start of `data` the incomplete message
    /// `carried` still needs before it can be delivered or refused (at least
    /// one, or as many as `data` holds if it cannot tell). Only those are
    /// appended to it; whatever follows is read where it lies.
    fn wants(&self, carried: &[u8], data: &[u8], max_length: usize) -> usize;

    /// What starts `input`. The first `seen` bytes were shown before, as an
    /// incomplete message, and need not be searched again. `TooLong` and
    /// `Malformed` must leave the splitter skipping, so that every call
    /// after them makes progress.
    fn next(&mut self, input: &[u8], seen: usize, max_length: usize, mode: Mode) -> Next;

    /// Of the carried bytes at the end, those that are an unfinished message
    /// (not the tail of one being skipped), for `connection_lost`.
    fn unfinished<'c>(&self, carried: &'c [u8]) -> &'c [u8] {
        carried
    }
}

/// What happened, for a handler.
#[derive(Debug)]
pub enum Event<'a> {
    /// The connection is made.
    Made,
    /// One whole message.
    Message(&'a [u8]),
    /// Bytes received in raw mode.
    Raw(&'a [u8]),
    /// A message over the limit, of this many bytes as far as known.
    TooLong(u64),
    /// Bytes that are not a message of the format, and why.
    Malformed(&'a str),
    /// The connection is gone, with the bytes of an unfinished message.
    Lost {
        /// Why; [`Reason::BadInput`] if the receiver closed it.
        reason: &'a Reason,
        /// The unfinished message (empty if none).
        unfinished: &'a [u8],
    },
    /// See [`Protocol::pause_producing`].
    PauseProducing,
    /// See [`Protocol::resume_producing`].
    ResumeProducing,
    /// See [`Protocol::timeout_connection`].
    Timeout(Timeout),
    /// See [`Protocol::read_connection_lost`].
    ReadConnectionLost,
    /// A timer scheduled with [`Context::call_later`] fired.
    TimerFired(u64),
}

/// A handler that hears of a receiver's events: every
/// [`LineHandler`](super::LineHandler) for lines, every
/// [`FrameHandler`](super::FrameHandler) for frames.
pub trait Handles<F: ?Sized>: 'static {
    /// Calls the handler's method for `event`.
    fn handle(&mut self, context: &mut Context<'_, F>, event: Event<'_>);

    /// See [`Protocol::allows_half_close`].
    fn allows_half_close(&self) -> bool;

    /// See [`Protocol::stopping`].
    fn stopping(&mut self, context: &mut Context<'_, F>) -> OnStop;
}

/// A [`Protocol`] that cuts the stream into messages for a handler:
/// [`LineReceiver`](super::LineReceiver) and
/// [`FrameReceiver`](super::FrameReceiver) are this with their splitter.
///
/// A message is copied at most once: messages wholly inside one read are
/// passed straight from the read buffer; only an incomplete one is carried,
/// and only the bytes that complete it are appended to it. The carry grows
/// with the bytes that arrive, never ahead of them (to the length a header
/// declares, say): a peer that sends a header alone costs what it sent.
/// Messages stop being delivered once the transport is closing.
pub struct Receiver<S, H> {
    handler: H,
    pub(super) splitter: S,
    state: State,
    /// An incomplete message carried over between reads.
    pub(super) carry: Vec<u8>,
}

impl<S, H> Receiver<S, H> {
    pub(super) fn with_splitter(splitter: S, handler: H, max_length: usize) -> Self {
        Receiver {
            handler,
            splitter,
            state: State {
                mode: Mode::Messages,
                max_length,
                replay: Vec::new(),
                bad_input: None,
            },
            carry: Vec::new(),
        }
    }

    /// Accepts messages of at most `max` bytes: lines without their
    /// delimiter, frame payloads.
    pub fn with_max_length(mut self, max: usize) -> Self {
        self.state.max_length = max;
        self
    }

    /// The wrapped handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The wrapped handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }
}

impl<S: Splitter, H: Handles<S::Format>> Receiver<S, H> {
    fn tell(&mut self, transport: &mut dyn Transport, event: Event<'_>) {
        let mut context = Context {
            transport,
            state: &mut self.state,
            format: self.splitter.format(),
        };
        self.handler.handle(&mut context, event);
    }

    /// Tells the handler of `event`, then delivers what it handed back at
    /// once rather than behind the next read.
    fn tell_and_replay(&mut self, transport: &mut dyn Transport, event: Event<'_>) {
        self.tell(transport, event);
        self.replay(transport);
    }

    /// Message-mode bytes a raw handler handed back, delivered before
    /// anything newer.
    fn replay(&mut self, transport: &mut dyn Transport) {
        while !self.state.replay.is_empty() {
            let replay = std::mem::take(&mut self.state.replay);
            self.feed(transport, &replay);
        }
    }

    /// Delivers what `input` holds, in whatever mode the handler sets, and
    /// returns how many bytes it used; the rest is an incomplete message the
    /// caller keeps. The first `seen` bytes were searched before.
    fn deliver(&mut self, transport: &mut dyn Transport, input: &[u8], seen: usize) -> usize {
        let mut at = 0;
        while at < input.len() {
            if transport.is_closing() {
                return input.len();
            }
            let rest = &input[at..];
            let max_length = self.state.max_length;
            let next =
                self.splitter
                    .next(rest, seen.saturating_sub(at), max_length, self.state.mode);
            let event = match next {
                Next::Wait => return at,
                Next::Skip(n) => {
                    at += n;
                    continue;
                }
                Next::Raw => {
                    self.tell(transport, Event::Raw(rest));
                    return input.len();
                }
                Next::Message { body, len } => {
                    at += len;
                    Event::Message(&rest[body])
                }
                Next::TooLong(declared) => Event::TooLong(declared),
                Next::Malformed(what) => Event::Malformed(what),
            };
            self.tell(transport, event);
        }
        at
    }

    fn feed(&mut self, transport: &mut dyn Transport, mut data: &[u8]) {
        while !self.carry.is_empty() {
            let max_length = self.state.max_length;
            let take = (self.splitter.wants(&self.carry, data, max_length)).min(data.len());
            let seen = self.carry.len();
            // Grows by what arrived (doubling), never to a declared length.
            self.carry.extend_from_slice(&data[..take]);
            let mut carry = std::mem::take(&mut self.carry);
            let used = self.deliver(transport, &carry, seen);
            let unused = carry.len() - used;
            if used == 0 {
                // Still incomplete: a header just became readable (go on
                // appending the body), or the data ran out.
                debug_assert!(take > 0 || data.is_empty(), "a splitter wanted nothing");
                self.carry = carry;
                data = &data[take..];
                if data.is_empty() {
                    return;
                }
            } else if unused <= take {
                // The appended bytes that were not used are read again from
                // `data`, so they are not copied twice.
                data = &data[take - unused..];
                carry.clear();
                self.carry = carry;
            } else {
                // Part of what was carried before is kept (the tail of a
                // skipped line that may start a delimiter).
                carry.drain(..used);
                self.carry = carry;
                data = &data[take..];
            }
        }
        if !self.state.replay.is_empty() {
            // A raw handler handed bytes back while the carried message was
            // finished: those come before the rest of `data`.
            self.state.replay.extend_from_slice(data);
            return;
        }
        let used = self.deliver(transport, data, 0);
        self.carry.extend_from_slice(&data[used..]);
    }
}

impl<S: Splitter, H: Handles<S::Format>> Protocol for Receiver<S, H> {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.tell_and_replay(transport, Event::Made);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        // Bytes handed back outside a read (from a timer, say) came first.
        self.replay(transport);
        self.feed(transport, data);
        self.replay(transport);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        let carry = std::mem::take(&mut self.carry);
        let unfinished = self.splitter.unfinished(&carry);
        let bad_input = self.state.bad_input.take().map(Reason::BadInput);
        let reason = bad_input.as_ref().unwrap_or(reason);
        self.tell(transport, Event::Lost { reason, unfinished });
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        self.tell_and_replay(transport, Event::Timeout(timeout));
    }

    fn allows_half_close(&self) -> bool {
        self.handler.allows_half_close()
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        let mut context = Context {
            transport,
            state: &mut self.state,
            format: self.splitter.format(),
        };
        let action = self.handler.stopping(&mut context);
        self.replay(transport);
        action
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        self.tell_and_replay(transport, Event::ReadConnectionLost);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.tell_and_replay(transport, Event::PauseProducing);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.tell_and_replay(transport, Event::ResumeProducing);
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        self.tell_and_replay(transport, Event::TimerFired(tag));
    }
}
