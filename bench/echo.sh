#!/usr/bin/env bash
# Echo benchmark: the reactor's echo_server against a tokio current-thread
# echo server (tools/examples/tokio_echo_server.rs), or with VERSUS=mio a
# hand-written mio loop (tools/examples/mio_echo_server.rs), driven by echo_load.
#
#   bench/echo.sh                     # defaults: 5 rounds of 5 s per load
#   ROUNDS=5 SECS=10 bench/echo.sh
#
# Environment:
#   ROUNDS      rounds per load; servers alternate A B / B A between rounds (5;
#               fewer rounds are too few for a verdict on the ratio)
#   SECS        seconds of ping-pong per run (5)
#   LOADS       space-separated CONNS:SIZE pairs ("1:64 50:512 500:512")
#   ENGINE      how echo_load drives its connections: uring (echo_load
#               --io-uring, the default) or reactor (the reactor itself)
#   LOAD_PROCS  echo_load processes per run, running at once
#               (1 with ENGINE=uring, 2 with ENGINE=reactor)
#   PIN         1 to pin the server to CPU 0 and the load to the others
#               (1 with ENGINE=uring, 0 with ENGINE=reactor)
#   START_DELAY seconds from launching them to their common start (0.5)
#   SYS_LOADS   CONNS:SIZE loads whose server syscalls are counted ("50:512 500:512")
#   IDLE_CONNS  idle connections for the memory figure (10000)
#   VERSUS      the server compared with the reactor's: tokio (the tokio
#               current-thread echo server, the default) or mio (the
#               hand-written mio loop, tools/examples/mio_echo_server.rs)
#   NO_BUILD    1 to skip `cargo build --release --workspace --examples`
#
# Every run is bounded in time, talks to 127.0.0.1 only, and every child is
# killed when the script exits. Progress goes to stderr, the summary to stdout.
# Helpers shared with bench/udp.sh are in bench/lib.sh.
#
# Why io_uring and pinning: the figures are about the server, so the load
# must be able to keep it busy. On 2 cores that means one core each, and a
# load that costs less CPU per message than the server. echo_load on the
# reactor costs about what the server does, so the two run in step: the
# server drains the few replies ready, polls again, and turns whatever CPU
# it saves into extra epoll_wait calls (the leaner the server, the more it
# makes: a bare mio loop shows the same). echo_load --io-uring keeps one recv
# queued per connection and submits a whole batch of sends and receives with
# one system call, so it outpaces the server, replies queue up at the
# server, and msgs/s and syscalls/msg then measure the server. If io_uring
# is unavailable (an old kernel, or a sandbox that forbids it) the script
# says so and falls back to ENGINE=reactor with 2 load processes sharing
# both cores, where the throughput ratio and syscall counts are ties set by
# the load (see design.md).
#
# Each run splits its C connections across min(LOAD_PROCS, C) processes
# (remainders go one each to the first ones). They connect, then all start
# ping-pong at the same moment (echo_load --start-at, set START_DELAY
# seconds after launch; one not connected by then starts late and warns), so
# they time the same SECS window. Their result lines are combined: msgs,
# msgs/s and errors are summed, and p50/p99 are the largest of the
# processes' p50s and p99s (the histograms are not merged; the max is a
# simple, honest upper bound on the pooled quantile).
#
# Reading the figures: "cpu" is the server's CPU time per echoed message, the
# server's efficiency whoever sets the pace. Syscalls per message are counted
# with `perf stat -e raw_syscalls:sys_enter -p PID` (or `strace -c -f -p PID`,
# which slows the server so much that any load saturates it) over a run of
# the same load and divided by its messages; the floor is one read and one
# write, and the rest is the server's share of epoll_wait: one per wake-up,
# so it falls as more messages are ready per wake-up.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
LOADS=${LOADS:-"1:64 50:512 500:512"}
SYS_LOADS=${SYS_LOADS:-"50:512 500:512"}
IDLE_CONNS=${IDLE_CONNS:-10000}
ENGINE=${ENGINE:-uring}
USER_LOAD_PROCS=${LOAD_PROCS:-}
USER_PIN=${PIN:-}
case $ENGINE in
uring) LOAD_ARGS=(--io-uring) ;;
reactor) LOAD_ARGS=() ;;
*)
    echo "echo.sh: ENGINE must be uring or reactor" >&2
    exit 1
    ;;
esac
engine_defaults() {
    if [[ $ENGINE == uring ]]; then
        LOAD_PROCS=${LOAD_PROCS:-1}
        PIN=${PIN:-1}
    else
        LOAD_PROCS=${LOAD_PROCS:-2}
        PIN=${PIN:-0}
    fi
}
engine_defaults
NO_BUILD=${NO_BUILD:-0}
HOST=127.0.0.1
# The bars from the issue.
MAX_SYSCALLS=2.05
MAX_IDLE_BYTES=1024

BENCH=echo.sh
BIN=target/release/examples
LOAD_BIN=$BIN/echo_load
LOAD_COUNT=--conns
declare -A SERVER_BIN=([reactor]=$BIN/echo_server [tokio]=$BIN/tokio_echo_server
    [mio]=$BIN/mio_echo_server)
VERSUS=${VERSUS:-tokio}
[[ $VERSUS == tokio || $VERSUS == mio ]] || {
    echo "echo.sh: VERSUS must be tokio or mio" >&2
    exit 1
}
SERVERS=(reactor "$VERSUS")
declare -A DESCRIBE=([tokio]="tokio current-thread echo server" [mio]="hand-written mio echo loop")

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

vmrss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- setup
[[ $IDLE_CONNS =~ ^[1-9][0-9]*$ ]] || die "IDLE_CONNS must be a positive integer"
bench_init
raise_nofile
if ((NOFILE < IDLE_CONNS + 64)); then
    log "ulimit -n is $NOFILE: idle test lowered to $((NOFILE - 64)) connections"
    IDLE_CONNS=$((NOFILE - 64))
fi

# The io_uring load needs a kernel and sandbox that allow io_uring: try it
# for a moment against the reactor's server, and fall back if it cannot run.
if [[ $ENGINE == uring ]]; then
    start_server reactor
    # It must also work: a sandbox may allow the ring but refuse its
    # operations, and then every connection is lost.
    probe_out=$TMP/probe.out
    if ! timeout -k 5 30 "$LOAD_BIN" --host "$HOST" --port "$SPORT" --conns 1 \
        --secs 0.2 --io-uring >"$probe_out" 2>"$probe_out.err" ||
        [[ $(field errors "$(head -n1 "$probe_out")") != 0 ]] ||
        [[ $(field msgs "$(head -n1 "$probe_out")") =~ ^0?$ ]]; then
        log "echo_load --io-uring cannot run here ($(head -n1 "$probe_out.err")$(head -n1 "$probe_out")); using ENGINE=reactor"
        ENGINE=reactor
        LOAD_ARGS=()
        # Only the defaults that came from the engine change.
        [[ ${USER_LOAD_PROCS:-} ]] || unset LOAD_PROCS
        [[ ${USER_PIN:-} ]] || unset PIN
        engine_defaults
        bench_pin
    fi
    stop_server
fi

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $CPUS CPUs, load average $LOADAVG_START, ulimit -n $NOFILE; rounds=$ROUNDS secs=$SECS engine=$ENGINE load_procs=$LOAD_PROCS pin=$PIN"

# ---------------------------------------------------------------- throughput
# Per load and server: space-separated per-run values of msgs/s, p50, p99 and
# the server's CPU microseconds per echoed message.
declare -A RUNS RATIOS
for load in $LOADS; do
    measure_throughput "$load"
done

# ---------------------------------------------------------------- syscalls
# count_syscalls NAME CONNS SIZE: one run with the server's syscalls counted;
# sets SYS[CONNS:SIZE,NAME] to "TOTAL READS WRITES WAITS MSGS TOOL".
count_syscalls() {
    local name=$1 conns=$2 size=$3 out=$TMP/sys.$1.$2 tool tpid line msgs
    start_server "$name"
    if command -v perf >/dev/null &&
        perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
        tool=perf
        perf stat -x, -o "$out" -p "$SPID" -e raw_syscalls:sys_enter \
            -e syscalls:sys_enter_recvfrom -e syscalls:sys_enter_read \
            -e syscalls:sys_enter_sendto -e syscalls:sys_enter_write \
            -e syscalls:sys_enter_epoll_wait 2>/dev/null &
    elif command -v strace >/dev/null; then
        tool=strace
        strace -c -f -q -p "$SPID" -o "$out" 2>/dev/null &
    else
        stop_server
        SYS[$conns:$size,$name]="nan nan nan nan 0 none"
        return
    fi
    tpid=$!
    CHILDREN+=("$tpid")
    sleep 0.5 # let the counter attach
    run_load "$conns" "$size"
    line=$LOAD_LINE
    log "  syscalls $(printf '%-7s' "$name") $line"
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    forget "$tpid"
    stop_server
    msgs=$(field msgs "$line")
    if [[ $tool == perf ]]; then
        SYS[$conns:$size,$name]=$(awk -F, -v msgs="$msgs" '
            $3 == "raw_syscalls:sys_enter" { total = $1 }
            $3 ~ /sys_enter_(recvfrom|read)$/ { reads += $1 }
            $3 ~ /sys_enter_(sendto|write)$/ { writes += $1 }
            $3 ~ /sys_enter_epoll_wait$/ { waits += $1 }
            END { print total + 0, reads + 0, writes + 0, waits + 0, msgs, "perf" }' "$out")
    else
        SYS[$conns:$size,$name]=$(awk -v msgs="$msgs" '
            $NF == "total" { total = $4 }
            $NF ~ /^(recvfrom|read|recvmsg)$/ { reads += $4 }
            $NF ~ /^(sendto|write|sendmsg|writev)$/ { writes += $4 }
            $NF ~ /^epoll_(p?wait2?)$/ { waits += $4 }
            END { print total + 0, reads + 0, writes + 0, waits + 0, msgs, "strace" }' "$out")
    fi
}

declare -A SYS
for load in $SYS_LOADS; do
    for name in "${SERVERS[@]}"; do
        count_syscalls "$name" "${load%%:*}" "${load##*:}"
    done
done

# ---------------------------------------------------------------- idle memory
# idle_memory NAME: the server's VmRSS before and after IDLE_CONNS idle
# connections; sets MEM[NAME] to "BEFORE_KB AFTER_KB CONNECTED".
idle_memory() {
    local name=$1 before after cpid base connected="" i hold fifo=$TMP/idle.in out=$TMP/idle.$1.out
    start_server "$name"
    sleep 0.3
    base=$(fd_count "$SPID")
    before=$(vmrss_kb "$SPID")
    rm -f "$fifo"
    mkfifo "$fifo"
    timeout -k 5 120 "$LOAD_BIN" --host "$HOST" --port "$SPORT" --idle \
        --conns "$IDLE_CONNS" --hold-secs 90 <"$fifo" >"$out" 2>"$out.err" &
    cpid=$!
    CHILDREN+=("$cpid")
    exec {hold}>"$fifo" # the client's stdin stays open until this closes
    for ((i = 0; i < 600; i++)); do
        connected=$(sed -n 's/^connected \([0-9]*\)$/\1/p' "$out")
        [[ -n $connected ]] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $connected ]]; then
        exec {hold}>&-
        stop_server
        log "idle client for $name failed: $(cat "$out.err")"
        MEM[$name]="nan nan 0"
        return
    fi
    # The client sees a connection once the kernel completes it; wait until
    # the server has accepted them all too, then let it settle.
    for ((i = 0; i < 100; i++)); do
        (($(fd_count "$SPID") >= base + connected)) && break
        sleep 0.1
    done
    sleep 0.5
    after=$(vmrss_kb "$SPID")
    exec {hold}>&- # end-of-file: the client exits
    wait "$cpid" 2>/dev/null || true
    forget "$cpid"
    stop_server
    log "  idle     $(printf '%-7s' "$name") connected $connected, VmRSS ${before} kB -> ${after} kB"
    MEM[$name]="$before $after $connected"
}

declare -A MEM
for name in "${SERVERS[@]}"; do
    idle_memory "$name"
done

# ---------------------------------------------------------------- summary
echo
echo "== echo benchmark: reactor echo_server vs ${DESCRIBE[$VERSUS]} =="
echo "machine: $CPUS CPUs, load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: $ROUNDS rounds x ${SECS}s per load, servers alternated per round, fresh process per run, pin=$PIN"
echo "load: min(conns, $LOAD_PROCS) echo_load processes (engine $ENGINE) at once per run; msgs/s summed, p50/p99 the max of theirs"
echo
echo "throughput: medians over rounds; p50/p99 in us; cpu = server CPU us per echoed message;"
echo "ratio = reactor/$VERSUS msgs/s within each round; interval = sign-test interval of the median ratio"
echo "(coverage in brackets). Bar: PASS when the median ratio >= 1; TIE when it is below 1 but the"
echo "interval reaches 1 (no measurable difference); FAIL when the whole interval is below 1;"
echo "n/a when the rounds are too few for an interval of 90% coverage (fewer than 5)."
printf '%-5s %-4s | %9s %7s %7s %5s | %9s %7s %7s %5s | %-20s %6s %-19s %6s %s\n' \
    conns size reactor/s p50 p99 cpu "$VERSUS/s" p50 p99 cpu "ratio by round" median interval errors bar
for load in $LOADS; do
    ratio_median=$(med "${RATIOS[$load]}")
    read -r lo hi coverage <<<"$(ratio_interval "${RATIOS[$load]}")"
    printf '%-5s %-4s | %9.0f %7.1f %7.1f %5.2f | %9.0f %7.1f %7.1f %5.2f | %-20s %6.3f %-19s %6s %s\n' \
        "${load%%:*}" "${load##*:}" \
        "$(med "${RUNS[$load,reactor,rate]}")" "$(med "${RUNS[$load,reactor,p50]}")" \
        "$(med "${RUNS[$load,reactor,p99]}")" "$(med "${RUNS[$load,reactor,cpu]}")" \
        "$(med "${RUNS[$load,$VERSUS,rate]}")" "$(med "${RUNS[$load,$VERSUS,p50]}")" \
        "$(med "${RUNS[$load,$VERSUS,p99]}")" "$(med "${RUNS[$load,$VERSUS,cpu]}")" \
        "${RATIOS[$load]// /,}" "$ratio_median" "$lo-$hi ($coverage)" \
        "$((RUNS[$load,reactor,errors] + RUNS[$load,$VERSUS,errors]))" \
        "$(ratio_verdict "$ratio_median" "$hi" "$coverage")"
done
echo
echo "server syscalls per echoed message (reads + writes + epoll_waits + other; floor is 2)"
echo "Bar: reactor <= $MAX_SYSCALLS at every load counted, when the load keeps the server busy:"
echo "judged only with ENGINE=uring and perf (with the reactor engine the figure measures the"
echo "load, and strace slows the server until any load saturates it; see the header)."
printf '%-5s %-4s %-8s %9s %9s %8s %8s %8s %9s %s\n' \
    conns size server msgs syscalls per_msg reads writes waits bar
for load in $SYS_LOADS; do
    for name in "${SERVERS[@]}"; do
        read -r total reads writes waits msgs tool <<<"${SYS[$load,$name]}"
        awk -v c="${load%%:*}" -v s="${load##*:}" -v n="$name" -v t="$total" -v r="$reads" \
            -v w="$writes" -v e="$waits" -v m="$msgs" -v max="$MAX_SYSCALLS" -v tool="$tool" \
            -v engine="$ENGINE" 'BEGIN {
            if (m <= 0) { printf "%-5s %-4s %-8s (no data, %s)\n", c, s, n, tool; exit }
            bar = "-"
            if (n == "reactor" && engine == "uring" && tool == "perf") bar = (t / m <= max) ? "PASS" : "FAIL"
            printf "%-5s %-4s %-8s %9d %9d %8.3f %8.3f %8.3f %9.4f %s (%s)\n",
                c, s, n, m, t, t / m, r / m, w / m, e / m, bar, tool }'
    done
done
echo
echo "idle connections: server VmRSS growth per connection. Bar: reactor < $MAX_IDLE_BYTES bytes."
printf '%-8s %7s %11s %11s %14s %s\n' server conns rss_before rss_after bytes_per_conn bar
for name in "${SERVERS[@]}"; do
    read -r before after connected <<<"${MEM[$name]}"
    awk -v n="$name" -v b="$before" -v a="$after" -v c="$connected" -v max="$MAX_IDLE_BYTES" 'BEGIN {
        if (c <= 0) { printf "%-8s %7s (no data)\n", n, c; exit }
        per = (a - b) * 1024 / c
        bar = (n == "reactor") ? ((per < max) ? "PASS" : "FAIL") : "-"
        printf "%-8s %7d %8d kB %8d kB %14.0f %s\n", n, c, b, a, per, bar }'
done
