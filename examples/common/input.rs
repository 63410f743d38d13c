//! What the clients that read standard input on the reactor share
//! (`timestamp_client`, `chat_client`): its lines, and the `--reconnect`
//! flags.

use std::time::Duration;

use reactor::reconnect::Backoff;

/// The longest line taken from standard input, without its ending: a
/// longer one ends the input with an error rather than growing without
/// bound.
pub const MAX_INPUT_LINE: usize = 1 << 20;

/// Standard input cut into lines, from the chunks the standard I/O
/// connection delivers: a line ends at `\n` (a `\r` before it dropped), and
/// what is left at the end of input is a last line.
#[derive(Default)]
pub struct InputLines {
    partial: Vec<u8>,
}

impl InputLines {
    /// The lines `data` completes, without their endings.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut lines = Vec::new();
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&data[..end]);
            data = &data[end + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            lines.push(line);
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > MAX_INPUT_LINE {
            return Err(format!(
                "a line of standard input is longer than {MAX_INPUT_LINE} bytes"
            ));
        }
        Ok(lines)
    }

    /// The end of input: the last line, if it had no ending.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let line = std::mem::take(&mut self.partial);
        (!line.is_empty()).then_some(line)
    }
}

/// `--reconnect` and its delay.
#[derive(clap::Args, Debug)]
pub struct ReconnectArgs {
    /// Connect again whenever the connection fails or is lost, waiting
    /// longer each time (Twisted's ReconnectingClientFactory), instead of
    /// exiting.
    #[arg(long)]
    pub reconnect: bool,
    /// With --reconnect: the initial delay; the n-th retry in a row waits
    /// about this times e^n seconds (with jitter), at most an hour.
    /// Fractions allowed.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "1",
        value_parser = super::parse_duration,
        requires = "reconnect"
    )]
    pub reconnect_delay: Duration,
}

impl ReconnectArgs {
    /// Twisted's schedule, from `--reconnect-delay`.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial_delay: self.reconnect_delay,
            ..Backoff::default()
        }
    }
}
