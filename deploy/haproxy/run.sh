#!/usr/bin/env bash
# Two http_hello backends that take the PROXY protocol, behind HAProxy in
# TCP mode (deploy/haproxy/haproxy.cfg), all on 127.0.0.1, in the
# foreground: Ctrl-C (or SIGTERM) stops all three.
#
#   deploy/haproxy/run.sh                 # clients connect to 127.0.0.1:8000
#   PORT=9000 deploy/haproxy/run.sh
#   curl http://127.0.0.1:8000/           # "hello world"; a backend logs
#                                         # "...connected from: 127.0.0.1:<curl's port>"
#
# Settings (environment): PORT (frontend, 8000), PORT_A and PORT_B (the
# backends, 8001 and 8002), HTTP_HELLO (the binary; by default built with
# `cargo build --release --example http_hello`), ADMIN_SOCKET (HAProxy's
# runtime API, /tmp/reactor-haproxy-$PORT.sock).
#
# Restarting a backend without losing a request, through the runtime API
# (socat: Debian's `socat` package):
#   echo "set server hello/a state drain" | socat stdio UNIX:$ADMIN_SOCKET
#   # wait until `show stat` shows scur 0 for hello/a, then stop it,
#   # start it again on the same port, and:
#   echo "set server hello/a state ready" | socat stdio UNIX:$ADMIN_SOCKET
# A backend that stops without the drain loses only the requests it had
# accepted; HAProxy retries refused connects on the other backend
# (`retries`, `option redispatch`) until its health checks mark it DOWN.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

PORT="${PORT:-8000}"
PORT_A="${PORT_A:-8001}"
PORT_B="${PORT_B:-8002}"
ADMIN_SOCKET="${ADMIN_SOCKET:-/tmp/reactor-haproxy-$PORT.sock}"

haproxy="$(command -v haproxy || true)"
[ -n "$haproxy" ] || haproxy=/usr/sbin/haproxy
if [ ! -x "$haproxy" ]; then
    echo "run.sh: haproxy is not installed (apt-get install haproxy)" >&2
    exit 1
fi
if [ -z "${HTTP_HELLO:-}" ]; then
    (cd "$root" && cargo build --release --example http_hello)
    HTTP_HELLO="$root/target/release/examples/http_hello"
fi

pids=()
stop_all() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait
}
trap stop_all EXIT INT TERM

# Backends log to stderr (`...connected from: CLIENT` with the client's
# real address); their `listening on` lines go to this script's stdout.
"$HTTP_HELLO" --host 127.0.0.1 --port "$PORT_A" --proxy-protocol &
pids+=($!)
"$HTTP_HELLO" --host 127.0.0.1 --port "$PORT_B" --proxy-protocol &
pids+=($!)

FRONTEND="127.0.0.1:$PORT" BACKEND_A="127.0.0.1:$PORT_A" BACKEND_B="127.0.0.1:$PORT_B" \
    ADMIN_SOCKET="$ADMIN_SOCKET" "$haproxy" -db -f "$here/haproxy.cfg" &
pids+=($!)
echo "HAProxy on 127.0.0.1:$PORT in front of 127.0.0.1:$PORT_A and 127.0.0.1:$PORT_B; admin socket $ADMIN_SOCKET" >&2
# Until any of the three exits, or a signal.
wait -n
