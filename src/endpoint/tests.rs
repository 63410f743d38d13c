//! The endpoint strings: every documented form, escapes, every error, and
//! round trips through `Display`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::*;
use crate::address::UnixAddress;

fn server(s: &str) -> ServerEndpoint {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn client(s: &str) -> ClientEndpoint {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn server_error(s: &str) -> String {
    match s.parse::<ServerEndpoint>() {
        Ok(e) => panic!("{s:?} should not parse, but gave {e:?}"),
        Err(e) => {
            assert_eq!(e.input(), s);
            e.to_string()
        }
    }
}

fn client_error(s: &str) -> String {
    match s.parse::<ClientEndpoint>() {
        Ok(e) => panic!("{s:?} should not parse, but gave {e:?}"),
        Err(e) => e.to_string(),
    }
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[test]
fn tcp_servers() {
    assert_eq!(
        server("tcp:8000"),
        ServerEndpoint::Tcp {
            port: 8000,
            interface: None,
            backlog: None
        }
    );
    let full = ServerEndpoint::Tcp {
        port: 0,
        interface: Some(LOCAL),
        backlog: Some(5),
    };
    assert_eq!(server("tcp:0:interface=127.0.0.1:backlog=5"), full);
    // Named parameters in any order; the port named too; the type in any case.
    assert_eq!(server("tcp:backlog=5:interface=127.0.0.1:0"), full);
    assert_eq!(server("TCP:port=0:backlog=5:interface=127.0.0.1"), full);
    // IPv6: the colons escaped, or the address in brackets (still escaped).
    let v6 = ServerEndpoint::Tcp {
        port: 80,
        interface: Some(Ipv6Addr::LOCALHOST.into()),
        backlog: None,
    };
    assert_eq!(server(r"tcp:80:interface=\:\:1"), v6);
    assert_eq!(server(r"tcp:80:interface=[\:\:1]"), v6);
}

#[test]
fn unix_servers() {
    assert_eq!(
        server("unix:/run/app.sock:mode=0660"),
        ServerEndpoint::Unix {
            path: UnixAddress::Path("/run/app.sock".into()),
            mode: Some(0o660),
            backlog: None
        }
    );
    assert_eq!(
        server("unix:path=rel.sock:mode=600:backlog=7"),
        ServerEndpoint::Unix {
            path: UnixAddress::Path("rel.sock".into()),
            mode: Some(0o600),
            backlog: Some(7)
        }
    );
    assert_eq!(
        server("unix:@app"),
        ServerEndpoint::Unix {
            path: UnixAddress::Abstract(b"app".to_vec()),
            mode: None,
            backlog: None
        }
    );
    // A path with a colon, an equals sign and a backslash, escaped.
    assert_eq!(
        server(r"unix:/tmp/a\:b\=c\\d"),
        ServerEndpoint::Unix {
            path: UnixAddress::Path(r"/tmp/a:b=c\d".into()),
            mode: None,
            backlog: None
        }
    );
}

#[test]
fn systemd_servers() {
    assert_eq!(server("systemd:0"), ServerEndpoint::Systemd { index: 0 });
    assert_eq!(
        server("systemd:index=2"),
        ServerEndpoint::Systemd { index: 2 }
    );
}

#[test]
fn tls_servers() {
    assert_eq!(
        server("tls:443:cert=c.pem:key=k.pem"),
        ServerEndpoint::Tls {
            port: 443,
            interface: None,
            backlog: None,
            cert: "c.pem".into(),
            key: "k.pem".into()
        }
    );
    assert_eq!(
        server(r"tls:key=C\:\\k.pem:interface=127.0.0.1:cert=/c.pem:port=0:backlog=1"),
        ServerEndpoint::Tls {
            port: 0,
            interface: Some(LOCAL),
            backlog: Some(1),
            cert: "/c.pem".into(),
            key: PathBuf::from(r"C:\k.pem")
        }
    );
}

#[test]
fn clients() {
    let tcp = ClientEndpoint::Tcp {
        host: "example.com".into(),
        port: 80,
    };
    assert_eq!(client("tcp:host=example.com:port=80"), tcp);
    assert_eq!(client("tcp:port=80:host=example.com"), tcp);
    assert_eq!(client("tcp:example.com:80"), tcp);
    assert_eq!(
        client(r"tcp:host=\:\:1:port=7"),
        ClientEndpoint::Tcp {
            host: "::1".into(),
            port: 7
        }
    );
    assert_eq!(
        client("unix:path=/run/app.sock"),
        ClientEndpoint::Unix {
            path: UnixAddress::Path("/run/app.sock".into())
        }
    );
    assert_eq!(
        client("unix:@app"),
        ClientEndpoint::Unix {
            path: UnixAddress::Abstract(b"app".to_vec())
        }
    );
    assert_eq!(
        client("tls:host=localhost:port=8443"),
        ClientEndpoint::Tls {
            host: "localhost".into(),
            port: 8443,
            ca: None
        }
    );
    assert_eq!(
        client("tls:localhost:8443:ca=ca.pem"),
        ClientEndpoint::Tls {
            host: "localhost".into(),
            port: 8443,
            ca: Some("ca.pem".into())
        }
    );
}

#[test]
fn every_form_round_trips_through_display() {
    let servers = [
        ("tcp:8000", "tcp:8000"),
        (
            "tcp:backlog=5:0:interface=127.0.0.1",
            "tcp:0:interface=127.0.0.1:backlog=5",
        ),
        (r"tcp:80:interface=[\:\:1]", r"tcp:80:interface=\:\:1"),
        ("unix:/run/a.sock:mode=660", "unix:/run/a.sock:mode=0660"),
        (
            r"unix:/tmp/a\:b\=c\\d:backlog=3",
            r"unix:/tmp/a\:b\=c\\d:backlog=3",
        ),
        ("unix:@app", "unix:@app"),
        ("systemd:index=1", "systemd:1"),
        (
            r"tls:443:key=k\:.pem:cert=c.pem:interface=127.0.0.1",
            r"tls:443:cert=c.pem:key=k\:.pem:interface=127.0.0.1",
        ),
    ];
    for (input, shown) in servers {
        let endpoint = server(input);
        assert_eq!(endpoint.to_string(), shown, "{input}");
        assert_eq!(server(shown), endpoint, "{shown} parses back");
    }
    let clients = [
        ("tcp:example.com:80", "tcp:host=example.com:port=80"),
        (r"tcp:host=\:\:1:port=7", r"tcp:host=\:\:1:port=7"),
        ("unix:/run/a.sock", "unix:path=/run/a.sock"),
        (r"unix:path=a\=b", "unix:path=a=b"),
        ("tls:h:1:ca=c\\:a.pem", r"tls:host=h:port=1:ca=c\:a.pem"),
    ];
    for (input, shown) in clients {
        let endpoint = client(input);
        assert_eq!(endpoint.to_string(), shown, "{input}");
        assert_eq!(client(shown), endpoint, "{shown} parses back");
    }
}

#[test]
fn errors_name_the_bad_part() {
    let cases = [
        (
            "tcp:8000:bakclog=5",
            r#"unknown parameter "bakclog" in "tcp:8000:bakclog=5" (tcp takes PORT:interface=ADDR:backlog=N)"#,
        ),
        (
            "tcp:80x",
            r#"port "80x" is not a number from 0 to 65535 in "tcp:80x" (tcp takes PORT:interface=ADDR:backlog=N)"#,
        ),
        (
            "tpc:80",
            r#"unknown endpoint type "tpc" in "tpc:80" (servers are tcp:, unix:, systemd: and tls:)"#,
        ),
        ("8000", r#"unknown endpoint type "8000" in "8000""#),
        ("tcp", r#"missing parameter "port" in "tcp""#),
        (
            "tcp:",
            r#"port "" is not a number from 0 to 65535 in "tcp:""#,
        ),
        (
            "tcp:65536",
            r#"port "65536" is not a number from 0 to 65535"#,
        ),
        ("tcp:80:90", r#"unexpected parameter "90" in "tcp:80:90""#),
        (
            "tcp:80:port=81",
            r#"parameter "port" given twice in "tcp:80:port=81""#,
        ),
        (
            "tcp:80:=5",
            r#"parameter "5" has no name before its = in "tcp:80:=5""#,
        ),
        (
            "tcp:80:interface=localhost",
            r#"interface "localhost" is not an IP address in"#,
        ),
        // An IPv6 address with its colons not escaped: the rest is cut off.
        (
            "tcp:80:interface=::1",
            r#"unexpected parameter "" in "tcp:80:interface=::1" (escape each colon of an IPv6 address: \:\:1)"#,
        ),
        (
            "tcp:80:backlog=-1",
            r#"backlog "-1" is not a number from 0 to 2147483647"#,
        ),
        (
            r"tcp:80\",
            r#"a backslash at the end escapes nothing in "tcp:80\""#,
        ),
        (
            "unix:",
            r#"path "" is not a path or @abstract-name in "unix:""#,
        ),
        ("unix:@", r#"path "@" is not a path or @abstract-name"#),
        (
            "unix:/a:mode=0999",
            r#"mode "0999" is not an octal mode from 0 to 7777"#,
        ),
        ("unix:/a:mode=17777", r#"mode "17777" is not an octal mode"#),
        ("systemd", r#"missing parameter "index" in "systemd""#),
        ("systemd:-1", r#"index "-1" is not a number from 0 up"#),
        ("systemd:0:domain=INET", r#"unknown parameter "domain""#),
        (
            "tls:443:cert=c.pem",
            r#"missing parameter "key" in "tls:443:cert=c.pem" (tls takes PORT:cert=PEM:key=PEM:interface=ADDR:backlog=N)"#,
        ),
        ("tls:443:key=k.pem", r#"missing parameter "cert""#),
        ("tls:443:cert=:key=k", r#"cert "" is not a file's path"#),
        (
            "",
            "empty endpoint: write TYPE:PARAMETERS, such as tcp:8000",
        ),
        ("type=tcp:80", r#"unknown endpoint type "type""#),
    ];
    for (input, message) in cases {
        let got = server_error(input);
        assert!(
            got.starts_with(message),
            "{input:?} gave {got:?}, expected {message:?}"
        );
    }
    let cases = [
        (
            "tcp:host=h",
            r#"missing parameter "port" in "tcp:host=h" (tcp takes host=HOST:port=PORT)"#,
        ),
        ("tcp:port=80", r#"missing parameter "host""#),
        (
            "tcp:host=h:port=0",
            r#"port "0" is not a number from 1 to 65535"#,
        ),
        (
            "tcp:host=h:port=http",
            r#"port "http" is not a number from 1 to 65535"#,
        ),
        (
            "tcp:host=:port=80",
            r#"host "" is not a host name or IP address"#,
        ),
        ("tcp:h:80:x", r#"unexpected parameter "x""#),
        (
            "tcp:host=h:port=1:timeout=3",
            r#"unknown parameter "timeout""#,
        ),
        ("unix:path=/a:mode=0600", r#"unknown parameter "mode""#),
        ("unix", r#"missing parameter "path""#),
        ("tls:host=h:port=1:ca=", r#"ca "" is not a file's path"#),
        ("tls:host=h:port=1:cert=c", r#"unknown parameter "cert""#),
        (
            "systemd:0",
            r#"unknown endpoint type "systemd" in "systemd:0" (clients are tcp:, unix: and tls:)"#,
        ),
    ];
    for (input, message) in cases {
        let got = client_error(input);
        assert!(
            got.starts_with(message),
            "{input:?} gave {got:?}, expected {message:?}"
        );
    }
}

#[test]
fn problems_can_be_matched() {
    let err = "tcp:8000:bakclog=5".parse::<ServerEndpoint>().unwrap_err();
    assert_eq!(err.problem(), &Problem::UnknownParameter("bakclog".into()));
    let err = "tcp:80x".parse::<ServerEndpoint>().unwrap_err();
    assert!(matches!(
        err.problem(),
        Problem::BadValue { name: "port", value, .. } if value == "80x"
    ));
}

fn datagram_server(s: &str) -> DatagramServerEndpoint {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn datagram_client(s: &str) -> DatagramClientEndpoint {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

#[test]
fn udp_servers() {
    assert_eq!(
        datagram_server("udp:7000"),
        DatagramServerEndpoint::Udp {
            port: 7000,
            interface: None
        }
    );
    let local = DatagramServerEndpoint::Udp {
        port: 0,
        interface: Some(LOCAL),
    };
    assert_eq!(datagram_server("udp:0:interface=127.0.0.1"), local);
    assert_eq!(datagram_server("UDP:interface=127.0.0.1:port=0"), local);
    let v6 = DatagramServerEndpoint::Udp {
        port: 53,
        interface: Some(Ipv6Addr::LOCALHOST.into()),
    };
    assert_eq!(datagram_server(r"udp:53:interface=\:\:1"), v6);
    assert_eq!(datagram_server(r"udp:53:interface=[\:\:1]"), v6);
    // The default interface is tcp:'s, every IPv4 interface.
    assert_eq!(
        datagram_server("udp:7000").bind_addr(),
        SocketAddr::from(([0, 0, 0, 0], 7000))
    );
    assert_eq!(
        v6.bind_addr(),
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 53)
    );
}

#[test]
fn udp_clients() {
    let udp = DatagramClientEndpoint::Udp {
        host: "example.com".into(),
        port: 21567,
    };
    assert_eq!(datagram_client("udp:host=example.com:port=21567"), udp);
    assert_eq!(datagram_client("udp:port=21567:host=example.com"), udp);
    assert_eq!(datagram_client("udp:example.com:21567"), udp);
    assert_eq!((udp.host(), udp.port()), ("example.com", 21567));
    assert_eq!(
        datagram_client(r"udp:host=\:\:1:port=7"),
        DatagramClientEndpoint::Udp {
            host: "::1".into(),
            port: 7
        }
    );
}

#[test]
fn udp_forms_round_trip_through_display() {
    let servers = [
        ("udp:7000", "udp:7000"),
        (
            "udp:interface=127.0.0.1:port=0",
            "udp:0:interface=127.0.0.1",
        ),
        (r"udp:53:interface=[\:\:1]", r"udp:53:interface=\:\:1"),
    ];
    for (input, shown) in servers {
        let endpoint = datagram_server(input);
        assert_eq!(endpoint.to_string(), shown, "{input}");
        assert_eq!(datagram_server(shown), endpoint, "{shown} parses back");
    }
    let clients = [
        ("udp:example.com:53", "udp:host=example.com:port=53"),
        (r"udp:\:\:1:7", r"udp:host=\:\:1:port=7"),
        (r"udp:host=a\=b:port=1", "udp:host=a=b:port=1"),
    ];
    for (input, shown) in clients {
        let endpoint = datagram_client(input);
        assert_eq!(endpoint.to_string(), shown, "{input}");
        assert_eq!(datagram_client(shown), endpoint, "{shown} parses back");
    }
}

#[test]
fn udp_errors_name_the_bad_part() {
    let error = |s: &str| match s.parse::<DatagramServerEndpoint>() {
        Ok(e) => panic!("{s:?} should not parse, but gave {e:?}"),
        Err(e) => {
            assert_eq!(e.input(), s);
            e.to_string()
        }
    };
    let cases = [
        (
            "udp:7000:backlog=5",
            r#"unknown parameter "backlog" in "udp:7000:backlog=5" (udp takes PORT:interface=ADDR)"#,
        ),
        (
            "udp:70x",
            r#"port "70x" is not a number from 0 to 65535 in "udp:70x" (udp takes PORT:interface=ADDR)"#,
        ),
        ("udp", r#"missing parameter "port" in "udp""#),
        (
            "udp:65536",
            r#"port "65536" is not a number from 0 to 65535"#,
        ),
        ("udp:1:2", r#"unexpected parameter "2" in "udp:1:2""#),
        ("udp:1:port=2", r#"parameter "port" given twice"#),
        (
            "udp:1:interface=localhost",
            r#"interface "localhost" is not an IP address"#,
        ),
        (
            "udp:1:interface=::1",
            r#"unexpected parameter "" in "udp:1:interface=::1" (escape each colon of an IPv6 address: \:\:1)"#,
        ),
        (
            "tcp:7000",
            r#"unknown endpoint type "tcp" in "tcp:7000" (datagram servers are udp:)"#,
        ),
        (
            "unix:/a.sock",
            r#"unknown endpoint type "unix" in "unix:/a.sock" (datagram servers are udp:)"#,
        ),
        (
            "",
            "empty endpoint: write TYPE:PARAMETERS, such as tcp:8000",
        ),
    ];
    for (input, message) in cases {
        let got = error(input);
        assert!(
            got.starts_with(message),
            "{input:?} gave {got:?}, expected {message:?}"
        );
    }
    let error = |s: &str| match s.parse::<DatagramClientEndpoint>() {
        Ok(e) => panic!("{s:?} should not parse, but gave {e:?}"),
        Err(e) => e.to_string(),
    };
    let cases = [
        (
            "udp:host=h",
            r#"missing parameter "port" in "udp:host=h" (udp takes host=HOST:port=PORT)"#,
        ),
        ("udp:port=53", r#"missing parameter "host""#),
        ("udp:h:0", r#"port "0" is not a number from 1 to 65535"#),
        (
            "udp:host=:port=53",
            r#"host "" is not a host name or IP address"#,
        ),
        ("udp:h:53:x", r#"unexpected parameter "x""#),
        (
            "udp:h:53:interface=127.0.0.1",
            r#"unknown parameter "interface""#,
        ),
        (
            "tcp:host=h:port=53",
            r#"unknown endpoint type "tcp" in "tcp:host=h:port=53" (datagram clients are udp:)"#,
        ),
    ];
    for (input, message) in cases {
        let got = error(input);
        assert!(
            got.starts_with(message),
            "{input:?} gave {got:?}, expected {message:?}"
        );
    }
    // And the stream endpoints refuse udp:, naming their own kinds.
    assert!(server_error("udp:7000")
        .starts_with(r#"unknown endpoint type "udp" in "udp:7000" (servers are tcp:"#));
    assert!(client_error("udp:h:53")
        .starts_with(r#"unknown endpoint type "udp" in "udp:h:53" (clients are tcp:"#));
}
