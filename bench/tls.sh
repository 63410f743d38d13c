#!/usr/bin/env bash
# TLS echo benchmark: the reactor's `echo_server --tls-cert --tls-key`
# against a tokio current-thread + tokio-rustls echo server
# (tools/examples/tokio_tls_echo_server.rs), both driven by tools/examples/tls_load with
# the same certificate (made by examples/make_cert in a temporary
# directory) and the same rustls defaults.
#
#   bench/tls.sh                      # defaults: 5 rounds of 5 s per load
#   ROUNDS=3 SECS=5 bench/tls.sh
#
# Environment:
#   ROUNDS      rounds per measurement; servers alternate A B / B A between
#               rounds (5; fewer are too few for a verdict on a ratio)
#   SECS        seconds of ping-pong, or of handshakes, per run (5)
#   LOADS       space-separated CONNS:SIZE ping-pong loads ("1:64 50:512 500:512",
#               as bench/echo.sh)
#   HS_CLIENTS  clients making handshakes at once (32)
#   HS_SIZE     bytes of the one message each handshake's connection echoes (64)
#   IDLE_CONNS  idle TLS connections for the memory figure (5000)
#   ENGINE      how tls_load drives the ping-pong: uring (rustls over
#               io_uring, the default) or tokio (tokio-rustls); handshakes
#               and idle connections always use tokio-rustls
#   LOAD_PROCS  tls_load processes per run, running at once (1)
#   PIN         1 to pin the server to CPU 0 and the load to the others (1)
#   START_DELAY seconds from launching the load to its timed window (3: the
#               ping-pong's connections each make a handshake first)
#   REACTOR_SERVER  the example standing for the reactor's side (echo_server);
#               REACTOR_SERVER=tokio_tls_echo_server runs the baseline on
#               both sides, to check the script (ratios should be ~1)
#   NO_BUILD    1 to skip `cargo build --release --workspace --examples`
#
# Every run is bounded in time, talks to 127.0.0.1 only, and every child is
# killed when the script exits. Progress goes to stderr, the summary to
# stdout. Helpers shared with bench/echo.sh are in bench/lib.sh.
#
# What is measured, per server, each run a fresh server process:
#   * ping-pong msgs/s, p50/p99 and the server's CPU time per echoed
#     message, at each of LOADS. The CPU time is counted over the timed
#     window only (sampled at tls_load's --start-at and when the load
#     exits), so the handshakes that open the connections are not in it.
#   * full handshakes per second: HS_CLIENTS clients each connecting,
#     completing a full handshake (no resumption), echoing one HS_SIZE-byte
#     message and closing with close_notify, over and over for SECS; with
#     the server's CPU time per handshake and its busy share of one CPU over
#     the window. The client's handshake costs about what the server's does
#     (the key exchange dominates both), so on one core each the load may
#     set the pace: the CPU time per handshake is the server's own figure
#     whoever sets it, and busy% says how close the server came to saturation.
#   * memory: the server's VmRSS growth per idle connection with IDLE_CONNS
#     connections whose handshakes are complete, once the server's CPU time
#     has stopped moving.
# Each figure is the median over ROUNDS; "ratio" is reactor/tokio within
# each round (msgs/s and handshakes/s: higher is better for the reactor;
# cpu and bytes: lower is better), its median and its sign-test interval.
#
# Handshakes open many short connections: the client ends each (it sends
# the first FIN), so their TIME_WAIT entries are on the client side, and
# with net.ipv4.tcp_tw_reuse=2 (the default: loopback only) new
# connections reuse those ports; with 0, a long run can run out of ports.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
LOADS=${LOADS:-"1:64 50:512 500:512"}
HS_CLIENTS=${HS_CLIENTS:-32}
HS_SIZE=${HS_SIZE:-64}
IDLE_CONNS=${IDLE_CONNS:-5000}
ENGINE=${ENGINE:-uring}
LOAD_PROCS=${LOAD_PROCS:-1}
PIN=${PIN:-1}
START_DELAY=${START_DELAY:-3}
NO_BUILD=${NO_BUILD:-0}
REACTOR_SERVER=${REACTOR_SERVER:-echo_server}
HOST=127.0.0.1

BENCH=tls.sh
BIN=target/release/examples
LOAD_BIN=$BIN/tls_load
LOAD_COUNT=--conns
declare -A SERVER_BIN=([reactor]=$BIN/$REACTOR_SERVER [tokio]=$BIN/tokio_tls_echo_server)
SERVERS=(reactor tokio)

case $ENGINE in
uring | tokio) ;;
*)
    echo "tls.sh: ENGINE must be uring or tokio" >&2
    exit 1
    ;;
esac
for v in HS_CLIENTS HS_SIZE IDLE_CONNS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
        echo "tls.sh: $v must be a positive integer" >&2
        exit 1
    }
done

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# children_cpu VAR: sets VAR to the user + system CPU seconds of this
# shell's reaped children so far (`times` must run in this shell, not in a
# command substitution's subshell).
children_cpu() {
    times >"$TMP/times"
    printf -v "$1" '%s' "$(awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$TMP/times")"
}
# machine_ticks: "BUSY STEAL TOTAL" clock ticks of all CPUs since boot (/proc/stat).
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

vmrss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- setup
bench_init
raise_nofile
if ((NOFILE < IDLE_CONNS + 64)); then
    log "ulimit -n is $NOFILE: idle test lowered to $((NOFILE - 64)) connections"
    IDLE_CONNS=$((NOFILE - 64))
fi
[[ -x $BIN/make_cert ]] || die "$BIN/make_cert is missing; build with cargo build --release --workspace --examples"
CERT=$TMP/cert.pem
KEY=$TMP/key.pem
"$BIN/make_cert" --cert "$CERT" --key "$KEY" 2>"$TMP/make_cert.err" ||
    die "make_cert failed: $(cat "$TMP/make_cert.err")"
SERVER_ARGS=(--tls-cert "$CERT" --tls-key "$KEY")
TLS_ARGS=(--ca "$CERT" --server-name localhost)
TW_REUSE=$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo "?")
[[ $TW_REUSE == 0 ]] && log "net.ipv4.tcp_tw_reuse is 0: the handshake runs may run out of local ports"

# The io_uring load needs a kernel and sandbox that allow io_uring (and its
# operations): try it for a moment, and fall back to tokio-rustls if not.
if [[ $ENGINE == uring ]]; then
    start_server reactor
    probe_out=$TMP/probe.out
    if ! timeout -k 5 30 "$LOAD_BIN" --host "$HOST" --port "$SPORT" "${TLS_ARGS[@]}" \
        --conns 1 --secs 0.2 --io-uring >"$probe_out" 2>"$probe_out.err" ||
        [[ $(field errors "$(head -n1 "$probe_out")") != 0 ]] ||
        [[ $(field msgs "$(head -n1 "$probe_out")") =~ ^0?$ ]]; then
        log "tls_load --io-uring cannot run here ($(head -n1 "$probe_out.err")$(head -n1 "$probe_out")); using ENGINE=tokio"
        ENGINE=tokio
    fi
    stop_server
fi
PING_ARGS=("${TLS_ARGS[@]}")
[[ $ENGINE == uring ]] && PING_ARGS+=(--io-uring)

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -r MACHINE_BUSY0 STEAL0 TOTAL0 <<<"$(machine_ticks)"
log "machine: $CPUS CPUs, load average $LOADAVG_START, ulimit -n $NOFILE, tcp_tw_reuse $TW_REUSE;" \
    "rounds=$ROUNDS secs=$SECS engine=$ENGINE load_procs=$LOAD_PROCS pin=$PIN reactor side: $REACTOR_SERVER"

# ---------------------------------------------------------------- timed runs
# run_measured NAME COUNT SIZE: a fresh NAME server and one load run against
# it (LOAD_ARGS), the server's CPU time counted over the load's timed
# window. Sets LINE (the load's result), TICKS (server CPU ticks in the
# window), BUSY (the server's busy share of one CPU then, in %) and
# LOAD_CPU (the load's CPU seconds, its connecting included).
run_measured() {
    local name=$1 count=$2 size=$3 file=$TMP/cpu.start cpu0 cpu1 load0 load1
    start_server "$name"
    children_cpu load0
    rm -f "$file"
    LOAD_START_AT=$(unix_time_in "$START_DELAY")
    sample_cpu_at "$LOAD_START_AT" "$SPID" "$file"
    run_load "$count" "$size"
    cpu1=$(cpu_ticks "$SPID")
    children_cpu load1
    LOAD_CPU=$(awk -v a="$load0" -v b="$load1" 'BEGIN { printf "%.2f", b - a }')
    wait "$SAMPLER" 2>/dev/null || true
    forget "$SAMPLER"
    unset LOAD_START_AT
    stop_server
    cpu0=$(cat "$file" 2>/dev/null || true)
    [[ $cpu0 =~ ^[0-9]+$ ]] || die "the $name server's CPU time was not sampled at the window's start"
    LINE=$LOAD_LINE
    TICKS=$((cpu1 - cpu0))
    BUSY=$(awk -v t="$TICKS" -v hz="$CLK_TCK" -v s="$SECS" 'BEGIN { printf "%.0f", 100 * t / hz / s }')
}

# measure KEY COUNT SIZE: ROUNDS runs of each server at COUNT x SIZE with
# LOAD_ARGS, alternating which goes first. Appends per-run figures to
# RUNS[KEY,SERVER,rate|p50|p99|cpu|busy], sums errors into
# RUNS[KEY,SERVER,errors], and sets RATIOS[KEY] and CPU_RATIOS[KEY] to the
# reactor/tokio msgs/s and CPU-per-message ratios of each round.
measure() {
    local key=$1 n=$2 size=$3 round name cpu errors order ratios=() cpu_ratios=()
    local -A rate per
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order=("${SERVERS[@]}"); else order=("${SERVERS[1]}" "${SERVERS[0]}"); fi
        for name in "${order[@]}"; do
            run_measured "$name" "$n" "$size"
            cpu=$(cpu_us_per_msg "$TICKS" "$(field msgs "$LINE")")
            log "  round $round $(printf '%-7s' "$name") $LINE server_cpu_us_per_msg=$cpu busy=$BUSY% load_cpu_s=$LOAD_CPU"
            rate[$name]=$(field msgs_per_s "$LINE")
            per[$name]=$cpu
            RUNS[$key,$name,rate]+=" ${rate[$name]}"
            RUNS[$key,$name,p50]+=" $(field p50_us "$LINE")"
            RUNS[$key,$name,p99]+=" $(field p99_us "$LINE")"
            RUNS[$key,$name,cpu]+=" $cpu"
            RUNS[$key,$name,busy]+=" $BUSY"
            errors=$(field errors "$LINE")
            RUNS[$key,$name,errors]=$((${RUNS[$key,$name,errors]:-0} + ${errors:-0}))
        done
        ratios+=("$(ratio "${rate[reactor]}" "${rate[tokio]}")")
        cpu_ratios+=("$(ratio "${per[reactor]}" "${per[tokio]}")")
    done
    RATIOS[$key]="${ratios[*]}"
    CPU_RATIOS[$key]="${cpu_ratios[*]}"
    log "$key: msgs/s reactor${RUNS[$key,reactor,rate]}, tokio${RUNS[$key,tokio,rate]}; ratio by round ${ratios[*]}; cpu ratio ${cpu_ratios[*]}"
}

declare -A RUNS RATIOS CPU_RATIOS
LOAD_ARGS=("${PING_ARGS[@]}")
for load in $LOADS; do
    log "ping-pong $load"
    measure "$load" "${load%%:*}" "${load##*:}"
done
LOAD_ARGS=("${TLS_ARGS[@]}" --handshakes)
log "handshakes: $HS_CLIENTS clients, $HS_SIZE-byte message each"
measure hs "$HS_CLIENTS" "$HS_SIZE"

# ---------------------------------------------------------------- idle memory
# settle PID: waits (at most 10 s) until PID's CPU time stops moving for 0.5 s.
settle() {
    local pid=$1 last now i
    last=$(cpu_ticks "$pid")
    for ((i = 0; i < 20; i++)); do
        sleep 0.5
        now=$(cpu_ticks "$pid")
        ((now == last)) && return
        last=$now
    done
}

# idle_memory NAME: the server's VmRSS before and after IDLE_CONNS idle TLS
# connections; appends "BEFORE_KB:AFTER_KB:CONNECTED" to MEM[NAME].
idle_memory() {
    local name=$1 before after cpid base connected="" i hold fifo=$TMP/idle.in out=$TMP/idle.$1.out
    start_server "$name"
    settle "$SPID"
    base=$(fd_count "$SPID")
    before=$(vmrss_kb "$SPID")
    rm -f "$fifo"
    mkfifo "$fifo"
    # Made before the client starts, so the first look below cannot race
    # the client's redirection (a failed sed would end the script: set -e).
    : >"$out"
    "${PIN_CLIENT[@]}" timeout -k 5 240 "$LOAD_BIN" --host "$HOST" --port "$SPORT" \
        "${TLS_ARGS[@]}" --idle "$IDLE_CONNS" --hold-secs 200 <"$fifo" >"$out" 2>"$out.err" &
    cpid=$!
    CHILDREN+=("$cpid")
    exec {hold}>"$fifo" # the client's stdin stays open until this closes
    for ((i = 0; i < 1800; i++)); do
        connected=$(sed -n 's/^connected \([0-9]*\)$/\1/p' "$out")
        [[ -n $connected ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $connected ]]; then
        exec {hold}>&-
        stop_server
        log "idle client for $name failed: $(cat "$out.err")"
        MEM[$name]+=" nan:nan:0"
        return
    fi
    # The client is done once it has sent its Finished; wait until the
    # server holds every connection and has stopped working on them.
    for ((i = 0; i < 100; i++)); do
        (($(fd_count "$SPID") >= base + connected)) && break
        sleep 0.1
    done
    settle "$SPID"
    after=$(vmrss_kb "$SPID")
    exec {hold}>&- # end-of-file: the client exits
    wait "$cpid" 2>/dev/null || true
    forget "$cpid"
    stop_server
    [[ -s $out.err ]] && sed "s/^/  [idle] /" "$out.err" >&2
    log "  idle     $(printf '%-7s' "$name") connected $connected, VmRSS ${before} kB -> ${after} kB"
    MEM[$name]+=" $before:$after:$connected"
}

# bytes_per_conn "BEFORE:AFTER:CONNECTED": VmRSS growth per connection, bytes.
bytes_per_conn() {
    awk -F: '{ if ($3 > 0) printf "%.0f", ($2 - $1) * 1024 / $3; else print "nan" }' <<<"$1"
}

declare -A MEM
MEM_RATIOS=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=("${SERVERS[@]}"); else order=("${SERVERS[1]}" "${SERVERS[0]}"); fi
    for name in "${order[@]}"; do
        idle_memory "$name"
    done
    MEM_RATIOS+=("$(ratio "$(bytes_per_conn "${MEM[reactor]##* }")" "$(bytes_per_conn "${MEM[tokio]##* }")")")
done

# ---------------------------------------------------------------- summary
# per_conn_list NAME: the bytes per connection of each of NAME's rounds.
per_conn_list() {
    local m out=()
    for m in ${MEM[$1]}; do out+=("$(bytes_per_conn "$m")"); done
    echo "${out[*]}"
}
# interval LIST: "MEDIAN LOW-HIGH (COVERAGE)" of a list of ratios.
interval() {
    local lo hi coverage
    read -r lo hi coverage <<<"$(ratio_interval "$1")"
    printf '%.3f %s-%s (%s)' "$(med "$1")" "$lo" "$hi" "$coverage"
}

read -r MACHINE_BUSY1 STEAL1 TOTAL1 <<<"$(machine_ticks)"
echo
echo "== TLS echo benchmark: reactor $REACTOR_SERVER --tls-cert vs tokio current-thread + tokio-rustls echo server =="
echo "machine: $CPUS CPUs, load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg);" \
    "$(awk -v b=$((MACHINE_BUSY1 - MACHINE_BUSY0)) -v s=$((STEAL1 - STEAL0)) -v t=$((TOTAL1 - TOTAL0)) \
        'BEGIN { printf "all CPUs busy %.1f%%, stolen %.1f%% over the benchmark", 100 * b / t, 100 * s / t }')"
echo "runs: $ROUNDS rounds x ${SECS}s per measurement, servers alternated per round, fresh process per run, pin=$PIN"
echo "load: tls_load (ping-pong engine $ENGINE, $LOAD_PROCS process(es)); certificate from make_cert, server name localhost"
echo
echo "ping-pong: medians over rounds; p50/p99 in us; cpu = server CPU us per echoed message over the"
echo "timed window; ratio = reactor/tokio within each round, its median and sign-test interval (coverage)."
printf '%-5s %-4s | %9s %7s %7s %5s | %9s %7s %7s %5s | %-20s %-26s %-20s %6s %s\n' \
    conns size reactor/s p50 p99 cpu tokio/s p50 p99 cpu "msgs/s ratio by round" "median interval" "cpu ratio by round" median errors
for load in $LOADS; do
    printf '%-5s %-4s | %9.0f %7.1f %7.1f %5.2f | %9.0f %7.1f %7.1f %5.2f | %-20s %-26s %-20s %6.3f %s\n' \
        "${load%%:*}" "${load##*:}" \
        "$(med "${RUNS[$load,reactor,rate]}")" "$(med "${RUNS[$load,reactor,p50]}")" \
        "$(med "${RUNS[$load,reactor,p99]}")" "$(med "${RUNS[$load,reactor,cpu]}")" \
        "$(med "${RUNS[$load,tokio,rate]}")" "$(med "${RUNS[$load,tokio,p50]}")" \
        "$(med "${RUNS[$load,tokio,p99]}")" "$(med "${RUNS[$load,tokio,cpu]}")" \
        "${RATIOS[$load]// /,}" "$(interval "${RATIOS[$load]}")" "${CPU_RATIOS[$load]// /,}" \
        "$(med "${CPU_RATIOS[$load]}")" \
        "$((RUNS[$load,reactor,errors] + RUNS[$load,tokio,errors]))"
done
echo
echo "full handshakes: $HS_CLIENTS clients, each connection one $HS_SIZE-byte echo then close_notify;"
echo "cpu = server CPU us per handshake; busy = server CPU share over the window (near 100: the server sets the pace)."
printf '%-8s | %9s %8s %8s %7s %5s | %9s %8s %8s %7s %5s | %-20s %-26s %6s %s\n' \
    clients reactor/s p50 p99 cpu busy tokio/s p50 p99 cpu busy "hs/s ratio by round" "median interval" cpu_r errors
printf '%-8s | %9.0f %8.1f %8.1f %7.1f %4.0f%% | %9.0f %8.1f %8.1f %7.1f %4.0f%% | %-20s %-26s %6.3f %s\n' \
    "$HS_CLIENTS" \
    "$(med "${RUNS[hs,reactor,rate]}")" "$(med "${RUNS[hs,reactor,p50]}")" \
    "$(med "${RUNS[hs,reactor,p99]}")" "$(med "${RUNS[hs,reactor,cpu]}")" "$(med "${RUNS[hs,reactor,busy]}")" \
    "$(med "${RUNS[hs,tokio,rate]}")" "$(med "${RUNS[hs,tokio,p50]}")" \
    "$(med "${RUNS[hs,tokio,p99]}")" "$(med "${RUNS[hs,tokio,cpu]}")" "$(med "${RUNS[hs,tokio,busy]}")" \
    "${RATIOS[hs]// /,}" "$(interval "${RATIOS[hs]}")" "$(med "${CPU_RATIOS[hs]}")" \
    "$((RUNS[hs,reactor,errors] + RUNS[hs,tokio,errors]))"
echo
echo "idle TLS connections: server VmRSS growth per connection (median over rounds)."
printf '%-8s %7s %12s %14s %s\n' server conns bytes_per_conn "by round" ""
for name in "${SERVERS[@]}"; do
    list=$(per_conn_list "$name")
    last=${MEM[$name]##* }
    printf '%-8s %7s %12.0f %14s\n' "$name" "${last##*:}" "$(med "$list")" "${list// /,}"
done
echo "ratio reactor/tokio by round: $(IFS=,; echo "${MEM_RATIOS[*]}"); median $(med "${MEM_RATIOS[*]}")"
