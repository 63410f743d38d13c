//! The endpoint mini-language's syntax, shared by servers and clients:
//! splitting a string into its type, positional and named parameters
//! (Twisted's `_tokenize` and `_parse`), checking them against what a type
//! takes, reading each value, and quoting values back for `Display`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::address::UnixAddress;

/// A string that is not a valid endpoint: which string, and what is wrong
/// with which part of it.
///
/// ```
/// use reactor::endpoint::ServerEndpoint;
///
/// let err = "tcp:8000:bakclog=5".parse::<ServerEndpoint>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"unknown parameter "bakclog" in "tcp:8000:bakclog=5" (tcp takes PORT:interface=ADDR:backlog=N)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    input: String,
    problem: Problem,
    /// The form the endpoint's type takes, shown after the problem.
    usage: Option<&'static str>,
}

/// What is wrong with an endpoint string, for a program that reacts to
/// the kind of mistake ([`EndpointError::problem`]).
///
/// ```
/// use reactor::endpoint::{Problem, ServerEndpoint};
///
/// let problem = |s: &str| s.parse::<ServerEndpoint>().unwrap_err().problem().clone();
/// assert_eq!(problem(""), Problem::Empty);
/// assert_eq!(problem("tpc:80"), Problem::UnknownType("tpc".into()));
/// assert_eq!(problem("tcp:80:backlog=5:backlog=6"), Problem::Repeated("backlog".into()));
/// assert_eq!(problem("tls:443:cert=c.pem"), Problem::Missing("key"));
/// assert_eq!(Problem::Missing("port").to_string(), r#"missing parameter "port""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The string is empty.
    Empty,
    /// A backslash ends the string: it escapes nothing.
    LoneBackslash,
    /// The type (the part before the first colon) is not one this side knows.
    UnknownType(String),
    /// A `name=value` parameter whose name the type does not take.
    UnknownParameter(String),
    /// A parameter given twice (by position and by name, or by name twice).
    Repeated(String),
    /// A positional parameter past those the type takes.
    Unexpected(String),
    /// `=value` with no name before it.
    Unnamed(String),
    /// A parameter the type requires is missing.
    Missing(&'static str),
    /// A parameter's value is not what it must be.
    BadValue {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
        /// What it must be, as "is not ..." ends: "a number from 0 to 65535".
        expected: &'static str,
    },
}

impl EndpointError {
    pub(crate) fn new(input: &str, problem: Problem) -> EndpointError {
        EndpointError {
            input: input.to_string(),
            problem,
            usage: None,
        }
    }

    /// The string that was parsed.
    ///
    /// ```
    /// let err = "tcp:http".parse::<reactor::endpoint::ServerEndpoint>().unwrap_err();
    /// assert_eq!(err.input(), "tcp:http");
    /// ```
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it, for a program that reacts to the kind of
    /// mistake rather than showing the message.
    ///
    /// ```
    /// use reactor::endpoint::{Problem, ServerEndpoint};
    ///
    /// let err = "tcp:8000:bakclog=5".parse::<ServerEndpoint>().unwrap_err();
    /// assert_eq!(err.problem(), &Problem::UnknownParameter("bakclog".into()));
    /// let err = "tcp:80x".parse::<ServerEndpoint>().unwrap_err();
    /// assert!(matches!(err.problem(), Problem::BadValue { name: "port", .. }));
    /// ```
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("empty endpoint"),
            Problem::LoneBackslash => f.write_str("a backslash at the end escapes nothing"),
            Problem::UnknownType(kind) => write!(f, "unknown endpoint type \"{kind}\""),
            Problem::UnknownParameter(name) => write!(f, "unknown parameter \"{name}\""),
            Problem::Repeated(name) => write!(f, "parameter \"{name}\" given twice"),
            Problem::Unexpected(value) => write!(f, "unexpected parameter \"{value}\""),
            Problem::Unnamed(value) => write!(f, "parameter \"{value}\" has no name before its ="),
            Problem::Missing(name) => write!(f, "missing parameter \"{name}\""),
            Problem::BadValue {
                name,
                value,
                expected,
            } => write!(f, "{name} \"{value}\" is not {expected}"),
        }
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problem == Problem::Empty {
            return f.write_str("empty endpoint: write TYPE:PARAMETERS, such as tcp:8000");
        }
        write!(f, "{} in \"{}\"", self.problem, self.input)?;
        if let Some(usage) = self.usage {
            write!(f, " ({usage})")?;
        }
        Ok(())
    }
}

impl std::error::Error for EndpointError {}

/// What one endpoint type takes: its name, its positional parameters' names
/// in order, every name it takes, and its form for error messages.
pub(crate) struct Grammar {
    pub(crate) kind: &'static str,
    pub(crate) positional: &'static [&'static str],
    pub(crate) names: &'static [&'static str],
    pub(crate) usage: &'static str,
}

/// An endpoint string split up and checked against its type's [`Grammar`]:
/// each parameter's value by name, whether given by position or by name.
pub(crate) struct Parameters<'a> {
    input: &'a str,
    grammar: &'static Grammar,
    values: Vec<(&'static str, String)>,
}

/// One `:`-separated part of an endpoint string, unescaped: `name=value`
/// or a bare value.
struct Part {
    name: Option<String>,
    value: String,
}

/// Splits `input` at unescaped colons; in each part, the first unescaped
/// `=` separates a name from its value (later ones belong to the value). A
/// backslash makes the character after it plain, whatever it is.
fn split(input: &str) -> Result<Vec<Part>, Problem> {
    let mut parts = Vec::new();
    let mut name = None;
    let mut current = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next().ok_or(Problem::LoneBackslash)?),
            ':' => parts.push(Part {
                name: name.take(),
                value: std::mem::take(&mut current),
            }),
            '=' if name.is_none() => name = Some(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(Part {
        name,
        value: current,
    });
    Ok(parts)
}

/// The type of `input` (its first part, in lower case) and the parts after it.
fn type_and_rest(input: &str) -> Result<(String, Vec<Part>), EndpointError> {
    if input.is_empty() {
        return Err(EndpointError::new(input, Problem::Empty));
    }
    let mut parts = split(input).map_err(|p| EndpointError::new(input, p))?;
    let first = parts.remove(0);
    match first.name {
        Some(name) => Err(EndpointError::new(input, Problem::UnknownType(name))),
        None => Ok((first.value.to_ascii_lowercase(), parts)),
    }
}

impl<'a> Parameters<'a> {
    /// Parses `input` with the grammar of its type, one of `grammars`; an
    /// unknown type's error lists them as `side` ("servers", "clients").
    pub(crate) fn parse(
        input: &'a str,
        grammars: &'static [Grammar],
        known: &'static str,
    ) -> Result<Parameters<'a>, EndpointError> {
        let (kind, parts) = type_and_rest(input)?;
        let Some(grammar) = grammars.iter().find(|g| g.kind == kind) else {
            let mut err = EndpointError::new(input, Problem::UnknownType(kind.clone()));
            err.usage = Some(known);
            return Err(err);
        };
        let mut params = Parameters {
            input,
            grammar,
            values: Vec::new(),
        };
        let mut positions = grammar.positional.iter();
        for part in parts {
            let name = match part.name {
                Some(name) if name.is_empty() => {
                    return Err(params.error(Problem::Unnamed(part.value)))
                }
                Some(name) => match grammar.names.iter().find(|n| **n == name) {
                    Some(known) => *known,
                    None => return Err(params.error(Problem::UnknownParameter(name))),
                },
                None => match positions.next() {
                    Some(name) => *name,
                    None => return Err(params.error(Problem::Unexpected(part.value))),
                },
            };
            if params.values.iter().any(|(n, _)| *n == name) {
                return Err(params.error(Problem::Repeated(name.to_string())));
            }
            params.values.push((name, part.value));
        }
        Ok(params)
    }

    /// The endpoint's type.
    pub(crate) fn kind(&self) -> &'static str {
        self.grammar.kind
    }

    /// An error about this string, with its type's form.
    pub(crate) fn error(&self, problem: Problem) -> EndpointError {
        let mut err = EndpointError::new(self.input, problem);
        err.usage = Some(if has_bare_double_colon(self.input) {
            r"escape each colon of an IPv6 address: \:\:1"
        } else {
            self.grammar.usage
        });
        err
    }

    fn raw(&self, name: &'static str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name`'s value read by `read`, if given; `expected` says what it must be.
    fn optional<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, EndpointError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        match read(value) {
            Some(v) => Ok(Some(v)),
            None => Err(self.error(Problem::BadValue {
                name,
                value: value.to_string(),
                expected,
            })),
        }
    }

    /// `name`'s value read by `read`; missing is an error.
    fn required<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, EndpointError> {
        self.optional(name, expected, read)?
            .ok_or_else(|| self.error(Problem::Missing(name)))
    }

    /// A port to listen on: 0 (any free port) to 65535.
    pub(crate) fn listen_port(&self) -> Result<u16, EndpointError> {
        self.required("port", "a number from 0 to 65535", |v| v.parse().ok())
    }

    /// A port to connect to: 1 to 65535.
    pub(crate) fn connect_port(&self) -> Result<u16, EndpointError> {
        self.required("port", "a number from 1 to 65535", |v| {
            v.parse().ok().filter(|p| *p != 0)
        })
    }

    /// The address to bind, if given: an IPv4 or IPv6 address (in brackets
    /// or not).
    pub(crate) fn interface(&self) -> Result<Option<IpAddr>, EndpointError> {
        self.optional("interface", "an IP address", |v| {
            let bare = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v);
            bare.parse().ok()
        })
    }

    /// The listen queue's length, if given.
    pub(crate) fn backlog(&self) -> Result<Option<i32>, EndpointError> {
        self.optional("backlog", "a number from 0 to 2147483647", |v| {
            v.parse().ok().filter(|b: &i32| *b >= 0)
        })
    }

    /// A UNIX socket's permission bits, if given, in octal (`660`, `0660`).
    pub(crate) fn mode(&self) -> Result<Option<u32>, EndpointError> {
        self.optional("mode", "an octal mode from 0 to 7777", |v| {
            u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o7777)
        })
    }

    /// An index into a list (systemd's sockets).
    pub(crate) fn index(&self) -> Result<usize, EndpointError> {
        self.required("index", "a number from 0 up", |v| v.parse().ok())
    }

    /// A host name or IP address to connect to.
    pub(crate) fn host(&self) -> Result<String, EndpointError> {
        self.required("host", "a host name or IP address", |v| {
            (!v.is_empty()).then(|| v.to_string())
        })
    }

    /// A file's path, required.
    pub(crate) fn file(&self, name: &'static str) -> Result<PathBuf, EndpointError> {
        self.optional_file(name)?
            .ok_or_else(|| self.error(Problem::Missing(name)))
    }

    /// A file's path, if given.
    pub(crate) fn optional_file(
        &self,
        name: &'static str,
    ) -> Result<Option<PathBuf>, EndpointError> {
        self.optional(name, "a file's path", |v| {
            (!v.is_empty()).then(|| PathBuf::from(v))
        })
    }

    /// A UNIX socket's name: a path, or `@name` for a Linux abstract name.
    pub(crate) fn unix_path(&self) -> Result<UnixAddress, EndpointError> {
        self.required("path", "a path or @abstract-name", |v| match v {
            "" | "@" => None,
            v => Some(UnixAddress::new(v)),
        })
    }
}

/// Whether `input` has `::` unescaped: an IPv6 address written as is,
/// the likeliest cause of whatever error it has.
fn has_bare_double_colon(input: &str) -> bool {
    let mut escaped = false;
    let mut previous_colon = false;
    for c in input.chars() {
        if escaped {
            escaped = false;
            previous_colon = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ':' if previous_colon => return true,
            _ => {}
        }
        previous_colon = c == ':';
    }
    false
}

/// `value` quoted to stand as one parameter: backslashes and colons
/// escaped (Twisted's `quoteStringArgument`), and `=` too when `positional`
/// (where it would start a name).
pub(crate) fn quote(value: &str, positional: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c == ':' || (positional && c == '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A UNIX socket name as the `path` parameter writes it (unquoted).
pub(crate) fn unix_path_text(path: &UnixAddress) -> String {
    match path {
        UnixAddress::Path(path) => path.to_string_lossy().into_owned(),
        UnixAddress::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
        UnixAddress::Unnamed => String::new(),
    }
}

/// An IP address as the `interface` parameter writes it (unquoted).
pub(crate) fn ip_text(ip: &IpAddr) -> String {
    ip.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(input: &str) -> Vec<(Option<String>, String)> {
        split(input)
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()
    }

    fn named(name: &str, value: &str) -> (Option<String>, String) {
        (Some(name.to_string()), value.to_string())
    }

    fn bare(value: &str) -> (Option<String>, String) {
        (None, value.to_string())
    }

    #[test]
    fn colons_split_and_the_first_equals_names() {
        assert_eq!(
            parts("tcp:80:interface=::1"),
            [
                bare("tcp"),
                bare("80"),
                named("interface", ""),
                bare(""),
                bare("1")
            ]
        );
        assert_eq!(
            parts("a:k=v=w:b"),
            [bare("a"), named("k", "v=w"), bare("b")]
        );
        assert_eq!(parts("tcp:"), [bare("tcp"), bare("")]);
    }

    #[test]
    fn a_backslash_makes_the_next_character_plain() {
        assert_eq!(
            parts(r"unix:C\:\\x\=y:mode=6\:6"),
            [bare("unix"), bare(r"C:\x=y"), named("mode", "6:6")]
        );
        assert_eq!(parts(r"x:\=v"), [bare("x"), bare("=v")]);
        assert_eq!(parts(r"x:a\b"), [bare("x"), bare("ab")]);
        assert_eq!(split(r"tcp:80\").err(), Some(Problem::LoneBackslash));
    }

    #[test]
    fn quoting_is_undone_by_splitting() {
        for value in ["plain", "a:b", r"back\slash", "x=y", r"\:=", ""] {
            for positional in [true, false] {
                let input = if positional {
                    format!("t:{}", quote(value, true))
                } else {
                    format!("t:k={}", quote(value, false))
                };
                let got = parts(&input);
                let want = if positional {
                    bare(value)
                } else {
                    named("k", value)
                };
                assert_eq!(got, [bare("t"), want], "{input}");
            }
        }
    }
}
