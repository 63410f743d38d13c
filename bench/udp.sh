#!/usr/bin/env bash
# UDP echo benchmark: the reactor's udp_echo_server against a tokio
# current-thread UDP echo server (tools/examples/tokio_udp_echo_server.rs), both
# driven by udp_load (request/answer per client endpoint, lock-step or with a
# window of requests in flight).
#
#   bench/udp.sh                      # defaults: 3 rounds of 5 s per load
#   ROUNDS=5 SECS=10 bench/udp.sh
#
# Environment:
#   ROUNDS      rounds per load; servers alternate A B / B A between rounds (3)
#   SECS        seconds of request/answer per run (5)
#   LOADS       space-separated CLIENTS:SIZE[:WINDOW] loads, WINDOW the
#               requests each client keeps in flight (default 1, lock-step)
#               ("1:64 10:64 10:64:8")
#   LOAD_PROCS  udp_load processes per run, running at once (2)
#   START_DELAY seconds from launching them to their common start (0.5)
#   PIN         1 to pin the server to CPU 0 and the load to the others (0)
#   NO_BUILD    1 to skip `cargo build --release --workspace --examples`
#   REACTOR_BIN the server measured in the "reactor" columns
#               (target/release/examples/udp_echo_server)
#   BASELINE_BIN the server in the "tokio" columns
#               (target/release/examples/tokio_udp_echo_server). Either may
#               be target/release/examples/blocking_udp_echo_server, the
#               floor: one blocking recv_from and send_to per datagram, no
#               event loop (see design.md, "UDP request/answer, batched")
#
# Every run is bounded in time, talks to 127.0.0.1 only, and every child is
# killed when the script exits. Progress goes to stderr, the summary to stdout.
# Helpers shared with bench/echo.sh are in bench/lib.sh.
#
# As in bench/echo.sh, a run splits its N clients across min(LOAD_PROCS, N)
# udp_load processes (N=1 uses one), because one single-threaded load process
# on a 2-core machine, not the server, sets the pace; with two, the server
# competes for CPU and its cost per datagram shows in the throughput. The
# processes time the same window (udp_load --start-at); msgs/s, msgs, lost
# and errors are summed over them; p50/p99 are the largest of the processes'
# p50s and p99s (an upper bound on the pooled quantile). "cpu" is the server's CPU time per
# answered datagram. A request unanswered after udp_load's timeout (0.2 s)
# counts as lost, and that client sends a new one.
#
# Lock-step clients keep one datagram each at the server, so with 10 of them
# a server sees at most 10 per wake-up, mostly fewer: the wake-up cost
# dominates and batching has little to batch. 10:64:8 keeps 8 requests in
# flight per client (udp_load --window 8), the load of 80 lock-step clients
# from 10 sockets: what a server with many busy clients sees. A windowed
# load's clients are unconnected (udp_load --unconnected), so each sends the
# refills for a batch of answers in one call: the load then costs less per
# datagram than either server, and a server's own cost shows in the rate.
# Both servers get the same load.
#
# Ping-pong with one client measures wake-up latency more than the server:
# on some machines it flips between two modes (client and server sharing a
# CPU or not) from run to run; PIN=1 keeps them on different CPUs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
LOADS=${LOADS:-"1:64 10:64 10:64:8"}
LOAD_PROCS=${LOAD_PROCS:-2}
PIN=${PIN:-0}
NO_BUILD=${NO_BUILD:-0}
HOST=127.0.0.1

BENCH=udp.sh
BIN=target/release/examples
LOAD_BIN=$BIN/udp_load
LOAD_COUNT=--clients
LOAD_ARGS=()
REACTOR_BIN=${REACTOR_BIN:-$BIN/udp_echo_server}
BASELINE_BIN=${BASELINE_BIN:-$BIN/tokio_udp_echo_server}
declare -A SERVER_BIN=([reactor]=$REACTOR_BIN [tokio]=$BASELINE_BIN)
SERVERS=(reactor tokio)

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- setup
bench_init
raise_nofile
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $CPUS CPUs, load average $LOADAVG_START; rounds=$ROUNDS secs=$SECS load_procs=$LOAD_PROCS pin=$PIN"

# ---------------------------------------------------------------- throughput
# Per load and server: space-separated per-run values of msgs/s, p50, p99 and
# the server's CPU microseconds per answered datagram; lost and errors summed.
# measure_throughput keys its results by CLIENTS:SIZE; they are moved under
# CLIENTS:SIZE:WINDOW at once, so loads that differ only in window stay apart.
declare -A RUNS RATIOS
MEASURED=()
for load in $LOADS; do
    [[ $load =~ ^[1-9][0-9]*:[1-9][0-9]*(:[1-9][0-9]*)?$ ]] || die "bad load '$load': want CLIENTS:SIZE[:WINDOW]"
    base=$(cut -d: -f1-2 <<<"$load")
    window=$(cut -s -d: -f3 <<<"$load")
    load=$base:${window:-1}
    MEASURED+=("$load")
    LOAD_ARGS=(--window "${window:-1}")
    if [[ -n $window ]]; then
        LOAD_ARGS+=(--unconnected)
    fi
    measure_throughput "$base"
    moved=()
    for key in "${!RUNS[@]}"; do
        [[ $key == "$base",* ]] && moved+=("$key")
    done
    for key in "${moved[@]}"; do
        value=${RUNS[$key]}
        unset 'RUNS[$key]'
        RUNS[$load,${key#"$base",}]=$value
    done
    value=${RATIOS[$base]}
    unset 'RATIOS[$base]'
    RATIOS[$load]=$value
done

# ---------------------------------------------------------------- summary
echo
echo "== UDP echo benchmark: reactor udp_echo_server vs tokio current-thread UDP echo server =="
echo "machine: $CPUS CPUs, load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "servers: reactor columns $REACTOR_BIN, tokio columns $BASELINE_BIN"
echo "runs: $ROUNDS rounds x ${SECS}s per load, servers alternated per round, fresh process per run, pin=$PIN"
echo "load: min(clients, $LOAD_PROCS) udp_load processes at once per run; msgs/s summed, p50/p99 the max of theirs"
echo
echo "request/answer rate: medians over rounds; p50/p99 in us; cpu = server CPU us per answered datagram;"
echo "lost/err = unanswered requests / bad answers and refusals, summed over rounds;"
echo "ratio = reactor/tokio msgs/s within each round; cpu r/t = reactor/tokio median cpu per datagram."
echo "goal (issue 16): ratio >= 1.2 and cpu r/t <= 0.8 at 10 clients."
printf '%-7s %-5s %-6s | %9s %7s %7s %5s %7s | %9s %7s %7s %5s %7s | %-20s %6s %7s\n' \
    clients size window reactor/s p50 p99 cpu lost/err tokio/s p50 p99 cpu lost/err "ratio by round" median "cpu r/t"
for load in "${MEASURED[@]}"; do
    IFS=: read -r clients size window <<<"$load"
    printf '%-7s %-5s %-6s | %9.0f %7.1f %7.1f %5.2f %7s | %9.0f %7.1f %7.1f %5.2f %7s | %-20s %6.3f %7s\n' \
        "$clients" "$size" "$window" \
        "$(med "${RUNS[$load,reactor,rate]}")" "$(med "${RUNS[$load,reactor,p50]}")" \
        "$(med "${RUNS[$load,reactor,p99]}")" "$(med "${RUNS[$load,reactor,cpu]}")" \
        "${RUNS[$load,reactor,lost]}/${RUNS[$load,reactor,errors]}" \
        "$(med "${RUNS[$load,tokio,rate]}")" "$(med "${RUNS[$load,tokio,p50]}")" \
        "$(med "${RUNS[$load,tokio,p99]}")" "$(med "${RUNS[$load,tokio,cpu]}")" \
        "${RUNS[$load,tokio,lost]}/${RUNS[$load,tokio,errors]}" \
        "${RATIOS[$load]// /,}" "$(med "${RATIOS[$load]}")" \
        "$(ratio "$(med "${RUNS[$load,reactor,cpu]}")" "$(med "${RUNS[$load,tokio,cpu]}")")"
done
