//! Reading a request head: the request line, its target's path, header lines
//! and `Content-Length`, into the [`Request`] its answer depends on or the
//! [`Refusal`] it gets.

/// The methods the answer tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Other,
}

/// The HTTP versions served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

/// What the current request said that matters to the answer.
#[derive(Default)]
pub struct Request {
    pub method: Method,
    /// The request line's method and target as sent, for the access log
    /// (empty until a request line is parsed).
    pub line: String,
    /// The path is `/` (query ignored).
    pub root: bool,
    pub version: Version,
    /// `Connection: close` / `Connection: keep-alive` seen.
    pub close: bool,
    pub keep_alive: bool,
    pub content_length: Option<usize>,
    pub transfer_encoding: bool,
    pub hosts: u32,
    pub expect_continue: bool,
}

impl Request {
    /// Whether the connection stays open after the answer.
    pub fn persistent(&self) -> bool {
        match self.version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        }
    }

    /// Takes one header line (its line ending stripped) into the request.
    pub fn header(&mut self, line: &[u8]) -> Result<(), Refusal> {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Refusal::BadRequest("a header line without a colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // Also refuses obsolete line folding (a line starting with a space)
        // and whitespace before the colon, as RFC 9112 asks.
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Refusal::BadRequest("a malformed header name"));
        }
        let value = value.trim_ascii();
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Refusal::BadRequest("a control character in a header value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(value).ok_or(Refusal::BadRequest("a malformed Content-Length"))?;
            if self.content_length.is_some_and(|m| m != n) {
                return Err(Refusal::BadRequest("conflicting Content-Length headers"));
            }
            self.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // Other expectations are ignored, as RFC 9110 allows.
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }
}

/// Why a request is refused; each is answered and the connection closed.
#[derive(Clone, Copy)]
pub enum Refusal {
    BadRequest(&'static str),
    TooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Refusal {
    /// What was wrong, for the log.
    pub fn why(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) => why,
            Refusal::TooLarge => "a body over 64 KiB",
            Refusal::NotImplemented => "Transfer-Encoding",
            Refusal::VersionNotSupported => "an HTTP version other than 1.0 and 1.1",
        }
    }
}

/// RFC 9110's `tchar`: what a method or a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `METHOD SP request-target SP HTTP-version`, single spaces.
pub fn parse_request_line(line: &[u8]) -> Result<Request, Refusal> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest("a malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Refusal::BadRequest("a malformed method"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Refusal::VersionNotSupported)
        }
        _ => return Err(Refusal::BadRequest("a malformed HTTP version")),
    };
    let path = path_of(target).ok_or(Refusal::BadRequest("a malformed request target"))?;
    Ok(Request {
        method: match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            _ => Method::Other,
        },
        root: path == b"/",
        line: format!(
            "{} {}",
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(target)
        ),
        version,
        ..Request::default()
    })
}

/// The path of an origin-form (`/a?b`) or absolute-form (`http://h/a?b`)
/// target, without its query; `None` for anything else (`*`, `h:80`) or a
/// target with spaces, controls or non-ASCII bytes.
fn path_of(target: &[u8]) -> Option<&[u8]> {
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let path = if target.starts_with(b"/") {
        target
    } else {
        let scheme_len = [&b"http://"[..], b"https://"]
            .iter()
            .find(|s| target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s))?
            .len();
        let rest = &target[scheme_len..];
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => &rest[i..],
            // `http://host` and `http://host?q` name the root.
            _ => b"/",
        }
    };
    Some(match path.iter().position(|&b| b == b'?') {
        Some(i) => &path[..i],
        None => path,
    })
}

/// A `Content-Length` value: digits only; too large a number saturates (and
/// is refused as too large).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}
