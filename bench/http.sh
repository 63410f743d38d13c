#!/usr/bin/env bash
# HTTP benchmark: the reactor's http_hello against hyper_hello (hyper 1's
# HTTP/1 server on tokio's current-thread runtime, same response bytes), both
# driven by wrk over keep-alive connections to GET /.
#
#   bench/http.sh                      # defaults: 3 rounds of 5 s per load
#   ROUNDS=5 SECS=10 CONNS="50" bench/http.sh
#
# Environment:
#   ROUNDS       rounds per load; servers alternate A B / B A between rounds (3)
#   SECS         seconds of load per run, whole seconds (5)
#   CONNS        space-separated connection counts, one load each ("1 50 500")
#   WRK_THREADS  wrk threads (-t), at most the connection count (1)
#   PIN          1 to pin the server to CPU 0 and wrk to the others (0)
#   NO_BUILD     1 to skip `cargo build --release --workspace --example http_hello --example hyper_hello`
#
# Needs wrk (Debian: apt-get install wrk); curl, if present, checks first
# that both servers give the same answer. Every run is bounded in time,
# talks to 127.0.0.1 only, and every child is killed when the script exits.
# Progress goes to stderr, the summary to stdout. Helpers (server start and
# stop, medians, CPU time) are bench/lib.sh's, shared with bench/echo.sh.
#
# Reading the figures: req/s is wrk's Requests/sec; p50/p99 are wrk's
# latency percentiles in microseconds; cpu is the server's CPU time (user +
# system, from /proc) per request over the run; ratio is reactor/hyper req/s
# within each round, and the summary gives its median. wrk (one thread by
# default) and the server share the machine, so on two cores req/s is partly
# wrk's speed; the server CPU per request is the sharper comparison.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-"1 50 500"}
WRK_THREADS=${WRK_THREADS:-1}
PIN=${PIN:-0}
NO_BUILD=${NO_BUILD:-0}
HOST=127.0.0.1
# bench_init checks this; wrk's threads are WRK_THREADS.
LOAD_PROCS=1

BENCH=http.sh
BIN=target/release/examples
LOAD_BIN=$(command -v wrk || echo /usr/bin/wrk)
declare -A SERVER_BIN=([reactor]=$BIN/http_hello [hyper]=$BIN/hyper_hello)
SERVERS=(reactor hyper)

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- setup
[[ -x $LOAD_BIN ]] || die "wrk is missing (Debian: apt-get install wrk)"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "SECS must be a whole number of seconds for wrk"
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"
for conns in $CONNS; do
    [[ $conns =~ ^[1-9][0-9]*$ ]] || die "CONNS must be positive integers"
done
if [[ $NO_BUILD != 1 ]]; then
    (
        cd "$(dirname "$0")/.."
        log "building (cargo build --release --workspace --example http_hello --example hyper_hello)..."
        cargo build --release --workspace --example http_hello --example hyper_hello >&2
    )
fi
# Built above (only these two: other examples need not build for this bench).
NO_BUILD=1 bench_init
raise_nofile

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $CPUS CPUs, load average $LOADAVG_START; rounds=$ROUNDS secs=$SECS conns=\"$CONNS\" wrk_threads=$WRK_THREADS pin=$PIN"

# ---------------------------------------------------------------- same answer
# The comparison is only fair if both servers send the same bytes.
if command -v curl >/dev/null; then
    declare -A ANSWER
    for name in "${SERVERS[@]}"; do
        start_server "$name"
        ANSWER[$name]=$(curl -sS -i --max-time 5 "http://$HOST:$SPORT/" | od -An -c)
        stop_server
    done
    [[ ${ANSWER[reactor]} == "${ANSWER[hyper]}" ]] ||
        die "the servers answer GET / differently:
reactor: ${ANSWER[reactor]}
hyper:   ${ANSWER[hyper]}"
    log "both servers answer GET / with the same bytes"
else
    log "curl not found: not checking that both servers answer alike"
fi

# ---------------------------------------------------------------- load
# run_wrk CONNS: one bounded wrk run against SPORT; sets WRK_LINE to
# "requests=N req_per_s=R p50_us=P p99_us=Q errors=E".
run_wrk() {
    local conns=$1 out=$TMP/wrk.out threads pid status=0
    threads=$((WRK_THREADS < conns ? WRK_THREADS : conns))
    "${PIN_CLIENT[@]}" timeout -k 5 "$LOAD_LIMIT" "$LOAD_BIN" -t "$threads" -c "$conns" \
        -d "${SECS}s" --latency "http://$HOST:$SPORT/" >"$out" 2>&1 &
    pid=$!
    CHILDREN+=("$pid")
    wait "$pid" || status=$?
    forget "$pid"
    ((status == 0)) || die "wrk failed (conns=$conns, status $status): $(cat "$out")"
    WRK_LINE=$(awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /m$/) return v * 60e6
            if (v ~ /s$/) return v * 1e6
            return v + 0
        }
        / requests in / { requests = $1 }
        /^Requests\/sec:/ { rate = $2 }
        /^ +50% / { p50 = us($2) }
        /^ +99% / { p99 = us($2) }
        /^ +Socket errors:/ { errors += $4 + $6 + $8 + $10 }
        /^ +Non-2xx or 3xx responses:/ { errors += $NF }
        END {
            if (requests == "" || rate == "") exit 1
            printf "requests=%d req_per_s=%.0f p50_us=%.1f p99_us=%.1f errors=%d\n",
                requests, rate, p50, p99, errors
        }' "$out") || die "cannot read wrk's output: $(cat "$out")"
}

# Per load and server: space-separated per-run values.
declare -A RUNS RATIOS
for conns in $CONNS; do
    ratios=()
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order=(reactor hyper); else order=(hyper reactor); fi
        declare -A rate=()
        for name in "${order[@]}"; do
            start_server "$name"
            cpu0=$(cpu_ticks "$SPID")
            run_wrk "$conns"
            cpu1=$(cpu_ticks "$SPID")
            stop_server
            line=$WRK_LINE
            cpu=$(cpu_us_per_msg $((cpu1 - cpu0)) "$(field requests "$line")")
            log "  conns=$conns round $round $(printf '%-7s' "$name") $line server_cpu_us_per_req=$cpu"
            rate[$name]=$(field req_per_s "$line")
            RUNS[$conns,$name,rate]+=" ${rate[$name]}"
            RUNS[$conns,$name,p50]+=" $(field p50_us "$line")"
            RUNS[$conns,$name,p99]+=" $(field p99_us "$line")"
            RUNS[$conns,$name,cpu]+=" $cpu"
            RUNS[$conns,$name,errors]=$((${RUNS[$conns,$name,errors]:-0} + $(field errors "$line")))
        done
        ratios+=("$(ratio "${rate[reactor]}" "${rate[hyper]}")")
    done
    RATIOS[$conns]="${ratios[*]}"
    log "conns=$conns: req/s reactor${RUNS[$conns,reactor,rate]}, hyper${RUNS[$conns,hyper,rate]}; ratio by round ${ratios[*]}"
done

# ---------------------------------------------------------------- summary
echo
echo "== HTTP benchmark: reactor http_hello vs hyper_hello (hyper 1, tokio current-thread) =="
echo "machine: $CPUS CPUs, load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: $ROUNDS rounds x ${SECS}s per load, servers alternated per round, fresh process per run, pin=$PIN"
echo "load: wrk -t$WRK_THREADS -c CONNS -d${SECS}s GET / over keep-alive connections (threads capped at CONNS)"
echo
echo "medians over rounds; p50/p99 in us (wrk); cpu = server CPU us per request;"
echo "ratio = reactor/hyper req/s within each round."
printf '%-5s | %9s %8s %8s %5s | %9s %8s %8s %5s | %-20s %6s %6s\n' \
    conns reactor/s p50 p99 cpu hyper/s p50 p99 cpu "ratio by round" median errors
for conns in $CONNS; do
    printf '%-5s | %9.0f %8.1f %8.1f %5.2f | %9.0f %8.1f %8.1f %5.2f | %-20s %6.3f %6s\n' \
        "$conns" \
        "$(med "${RUNS[$conns,reactor,rate]}")" "$(med "${RUNS[$conns,reactor,p50]}")" \
        "$(med "${RUNS[$conns,reactor,p99]}")" "$(med "${RUNS[$conns,reactor,cpu]}")" \
        "$(med "${RUNS[$conns,hyper,rate]}")" "$(med "${RUNS[$conns,hyper,p50]}")" \
        "$(med "${RUNS[$conns,hyper,p99]}")" "$(med "${RUNS[$conns,hyper,cpu]}")" \
        "${RATIOS[$conns]// /,}" "$(med "${RATIOS[$conns]}")" \
        "$((RUNS[$conns,reactor,errors] + RUNS[$conns,hyper,errors]))"
done
