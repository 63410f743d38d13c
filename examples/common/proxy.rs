//! The PROXY protocol flag the servers behind a load balancer share:
//! `--proxy-protocol` (or `--proxy-protocol=required`) makes every
//! connection start with HAProxy's PROXY header, v1 or v2, and the server
//! logs and limits the client it names; `--proxy-protocol=optional` also
//! serves clients that connect directly without one. Off by default.

use reactor::{ListenOptions, ProxyProtocol};

/// `--proxy-protocol[=MODE]`, flattened into a server's own flags
/// (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Expect a PROXY protocol header (v1 or v2, HAProxy's `send-proxy` or
    /// `send-proxy-v2`) on every connection, and log the client it names:
    /// `required` (the default when the flag is given without a value)
    /// closes a connection without one; `optional` serves it as a direct
    /// client. Only where nothing but trusted proxies can reach the port:
    /// anyone who can connect can claim any address in a header.
    #[arg(
        long,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "required",
        value_parser = ["required", "optional"]
    )]
    pub proxy_protocol: Option<String>,
}

impl ProxyArgs {
    /// The mode the flag asks for, if any.
    pub fn mode(&self) -> Option<ProxyProtocol> {
        self.proxy_protocol.as_deref().and_then(|m| m.parse().ok())
    }

    /// Listener options with the flag applied.
    pub fn apply(&self, options: ListenOptions) -> ListenOptions {
        ListenOptions {
            proxy_protocol: self.mode(),
            ..options
        }
    }
}
