"""Python's ssl module against the reactor's TLS, for tests/tls_interop.rs.

    tls_interop.py client PORT CA
        Connects to 127.0.0.1:PORT, verifying the server's certificate for
        "localhost" against CA; sends what it reads from stdin, reads as many
        bytes back, writes them to stdout, then closes with close_notify
        (unwrap) and waits for the server's.
    tls_interop.py server CERT KEY LENGTH
        Listens on 127.0.0.1, prints "port N" once bound; accepts one
        connection, sends LENGTH bytes of pattern(), reads until the
        client's close_notify, answers with its own (unwrap), then prints
        "received HEX" and "clean".

Errors go to stderr with a non-zero exit status.
"""

import socket
import ssl
import sys

TIMEOUT = 10


def pattern(length):
    """The bytes the server sends; tls_interop.rs computes the same."""
    return bytes((i * 7 + 3) % 256 for i in range(length))


def client(port, ca):
    payload = sys.stdin.buffer.read()
    context = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    # A peer that ends without close_notify must be an error, not an EOF.
    conn = context.wrap_socket(
        raw, server_hostname="localhost", suppress_ragged_eofs=False
    )
    conn.sendall(payload)
    back = bytearray()
    while len(back) < len(payload):
        chunk = conn.recv(65536)
        if not chunk:
            sys.exit(f"the server closed after {len(back)} bytes")
        back += chunk
    conn.unwrap()
    sys.stdout.buffer.write(back)
    sys.stdout.flush()


def server(cert, key, length):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    print(f"port {listener.getsockname()[1]}", flush=True)
    raw, _ = listener.accept()
    raw.settimeout(TIMEOUT)
    conn = context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
    conn.sendall(pattern(length))
    received = bytearray()
    while True:
        # b"" only on close_notify; a bare FIN raises SSLEOFError.
        chunk = conn.recv(65536)
        if not chunk:
            break
        received += chunk
    print(f"received {received.hex()}", flush=True)
    conn.unwrap()
    print("clean", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "client":
        client(int(sys.argv[2]), sys.argv[3])
    elif mode == "server":
        server(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")
