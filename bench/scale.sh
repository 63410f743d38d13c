#!/usr/bin/env bash
# Scaling benchmark: `echo_server --reactors N` (a ReactorPool: N reactors on
# N threads, one SO_REUSEPORT listener each) for each N given, driven by
# echo_load: echo throughput, the server's CPU time per echoed message, and
# how evenly the kernel spread the work over the reactors.
#
#   bench/scale.sh 1 2            # 2 cores: does a second reactor cost CPU per message?
#   bench/scale.sh 1 2 3 4        # 8+ cores: the scaling table
#   ROUNDS=5 SECS=10 LOADS="500:512 2000:64" bench/scale.sh 1 2 4
#
# Environment:
#   ROUNDS      rounds; each runs every reactor count once, in ascending order
#               in odd rounds and descending in even ones (5)
#   SECS        seconds of ping-pong per run (5)
#   LOADS       space-separated CONNS:SIZE pairs ("500:512"): many
#               connections, so the kernel's hash gives every reactor its
#               share (see "Spread" below)
#   ENGINE      how echo_load drives its connections: uring (the default;
#               falls back to reactor where io_uring cannot run) or reactor
#   LOAD_CPUS   cores reserved for the load when pinned (default: the largest
#               reactor count: one io_uring load core outpaces one reactor,
#               see bench/echo.sh)
#   LOAD_PROCS  echo_load processes per run (default LOAD_CPUS, one per core)
#   PIN         auto (the default): pin when the machine has the cores for
#               it, else run unpinned; 1: pin or fail; 0: never pin
#   SERVER_CPUS comma-separated CPUs for the server when pinned; N reactors
#               get the first N (default 0,1,...,max(N)-1)
#   LOAD_CPU_LIST  comma-separated CPUs for the load when pinned (default
#               the LOAD_CPUS CPUs after the server's)
#   START_DELAY seconds from launching the load to its timed window (0.5)
#   NO_BUILD    1 to skip `cargo build --release --workspace --examples`
#
# Layout. Pinned: the server with N reactors runs on the first N of
# SERVER_CPUS (taskset), the load on LOAD_CPU_LIST, the same for every row,
# so each row measures N cores of server against the same load. Pinning
# needs max(N) + LOAD_CPUS CPUs; with fewer (2 CPUs and `1 2`), everything
# runs unpinned and shares the cores: the rows then cannot show scaling (the
# load takes cores the reactors would use), only what each reactor count
# costs per message. Every row of one run has the same layout. Two server
# CPUs that are hyperthreads of one core share that core's execution units,
# so N reactors there cannot run N times as fast: the script warns, and
# SERVER_CPUS should then name one CPU per core (lscpu -e shows the cores).
#
# Figures per reactor count (medians over rounds):
#   msgs/s, p99     from echo_load (summed over its processes; p99 the max)
#   cpu             the server's CPU microseconds per echoed message, over
#                   the load's timed window only
#   busy            the server's CPU time over the window / (SECS x N): 100%
#                   means every reactor was busy all the time; well below,
#                   the load set the pace and msgs/s measure the load
#   spread          the least busy reactor thread's CPU time / the busiest's
#                   (1.00 = even; "-" for one reactor)
# and, against the 1-reactor row of the same round (when 1 is among the
# counts): speedup = msgs/s ratio, efficiency = speedup / N, and cpu ratio =
# cpu(N) / cpu(1), each with the median's sign-test interval.
#
# Bars: "scaling" (pinned layouts only): PASS when the median efficiency is
# at least 0.9 (the goal up to 4 cores), TIE when its interval reaches 0.9,
# FAIL below. "cpu": PASS when N reactors cost no more CPU per message than
# one (median cpu ratio <= 1), TIE when the interval reaches 1, FAIL above;
# n/a with fewer than 5 rounds.
#
# Spread: Linux picks the listener of each new connection by a hash of its
# addresses and ports, so reactors get equal shares of connections only on
# average; with CONNS connections over N reactors the counts vary by about
# sqrt(CONNS/N). A ping-pong load keeps a reactor busy as long as it has
# enough connections, so throughput adds up while every reactor has many;
# a reactor with more than its share gives each connection a slower turn,
# which shows in p99. With few connections, expect uneven rows.
#
# Every run is bounded in time, talks to 127.0.0.1 only, and every child is
# killed when the script exits. Progress goes to stderr, the summary to
# stdout. Helpers shared with bench/echo.sh are in bench/lib.sh.
set -euo pipefail

(($# > 0)) || {
    echo "usage: bench/scale.sh REACTORS... (e.g. bench/scale.sh 1 2)" >&2
    exit 1
}
COUNTS=("$@")
MAX_N=0
for n in "${COUNTS[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || {
        echo "scale.sh: reactor counts are positive integers, not '$n'" >&2
        exit 1
    }
    ((n > MAX_N)) && MAX_N=$n
done
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
LOADS=${LOADS:-"500:512"}
ENGINE=${ENGINE:-uring}
LOAD_CPUS=${LOAD_CPUS:-$MAX_N}
LOAD_PROCS=${LOAD_PROCS:-$LOAD_CPUS}
PIN=${PIN:-auto}
NO_BUILD=${NO_BUILD:-0}
HOST=127.0.0.1
# The bars.
MIN_EFFICIENCY=0.9

BENCH=scale.sh
BIN=target/release/examples
LOAD_BIN=$BIN/echo_load
LOAD_COUNT=--conns
declare -A SERVER_BIN=([echo_server]=$BIN/echo_server)
case $ENGINE in
uring) LOAD_ARGS=(--io-uring) ;;
reactor) LOAD_ARGS=() ;;
*)
    echo "scale.sh: ENGINE must be uring or reactor" >&2
    exit 1
    ;;
esac
[[ $PIN == auto || $PIN == 0 || $PIN == 1 ]] || {
    echo "scale.sh: PIN must be auto, 0 or 1" >&2
    exit 1
}
[[ $LOAD_CPUS =~ ^[1-9][0-9]*$ ]] || {
    echo "scale.sh: LOAD_CPUS must be a positive integer" >&2
    exit 1
}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# bench_init pins by PIN=1/0 for two-process benchmarks; this script sets
# its own layout below.
USER_PIN=$PIN
PIN=0
bench_init
PIN=$USER_PIN
raise_nofile

# ---------------------------------------------------------------- layout
if [[ $PIN == auto ]]; then
    if ((CPUS >= MAX_N + LOAD_CPUS)) && command -v taskset >/dev/null; then PIN=1; else PIN=0; fi
fi
if [[ $PIN == 1 ]]; then
    ((CPUS >= MAX_N + LOAD_CPUS)) || die "PIN=1 needs $((MAX_N + LOAD_CPUS)) CPUs (max reactors $MAX_N + LOAD_CPUS $LOAD_CPUS); this machine has $CPUS"
    command -v taskset >/dev/null || die "PIN=1 needs taskset"
    SERVER_CPUS=${SERVER_CPUS:-$(seq -s, 0 $((MAX_N - 1)))}
    LOAD_CPU_LIST=${LOAD_CPU_LIST:-$(seq -s, "$MAX_N" $((MAX_N + LOAD_CPUS - 1)))}
    IFS=, read -ra SERVER_CPU_ARRAY <<<"$SERVER_CPUS"
    IFS=, read -ra LOAD_CPU_ARRAY <<<"$LOAD_CPU_LIST"
    ((${#SERVER_CPU_ARRAY[@]} >= MAX_N)) || die "SERVER_CPUS ($SERVER_CPUS) names fewer than $MAX_N CPUs"
    for cpu in "${SERVER_CPU_ARRAY[@]:0:MAX_N}"; do
        [[ ,$LOAD_CPU_LIST, != *,$cpu,* ]] || die "CPU $cpu is in both SERVER_CPUS and LOAD_CPU_LIST"
    done
    # Hyperthreads of one core among the server's CPUs: a warning, since
    # they cannot double a core's throughput.
    declare -A CORE_OF=()
    for cpu in "${SERVER_CPU_ARRAY[@]:0:MAX_N}"; do
        topo=/sys/devices/system/cpu/cpu$cpu/topology
        core="$(cat "$topo/physical_package_id" 2>/dev/null):$(cat "$topo/core_id" 2>/dev/null)"
        [[ -n ${CORE_OF[$core]:-} ]] &&
            log "warning: server CPUs ${CORE_OF[$core]} and $cpu are hyperthreads of one core; set SERVER_CPUS to one CPU per core"
        CORE_OF[$core]=$cpu
    done
    PIN_CLIENT=(taskset -c "$LOAD_CPU_LIST")
    LAYOUT="pinned: N reactors on the first N of CPUs $SERVER_CPUS, the load on CPUs $LOAD_CPU_LIST"
else
    PIN_CLIENT=()
    LAYOUT="unpinned: server and load share all $CPUS CPUs (pinning needs $((MAX_N + LOAD_CPUS)))"
fi
# pin_server N: the server's taskset prefix for N reactors.
pin_server() {
    local cpus
    if [[ $PIN == 1 ]]; then
        cpus="${SERVER_CPU_ARRAY[*]:0:$1}"
        PIN_SERVER=(taskset -c "${cpus// /,}")
    else
        PIN_SERVER=()
    fi
}

# The io_uring load needs a kernel and sandbox that allow io_uring: try it
# for a moment, and fall back to the reactor engine if it cannot run.
if [[ $ENGINE == uring ]]; then
    pin_server 1
    SERVER_ARGS=(--reactors 1)
    start_server echo_server
    probe_out=$TMP/probe.out
    if ! timeout -k 5 30 "$LOAD_BIN" --host "$HOST" --port "$SPORT" --conns 1 \
        --secs 0.2 --io-uring >"$probe_out" 2>"$probe_out.err" ||
        [[ $(field errors "$(head -n1 "$probe_out")") != 0 ]] ||
        [[ $(field msgs "$(head -n1 "$probe_out")") =~ ^0?$ ]]; then
        log "echo_load --io-uring cannot run here ($(head -n1 "$probe_out.err")$(head -n1 "$probe_out")); using ENGINE=reactor"
        ENGINE=reactor
        LOAD_ARGS=()
    fi
    stop_server
fi

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $CPUS CPUs, load average $LOADAVG_START; reactors ${COUNTS[*]}; rounds=$ROUNDS secs=$SECS engine=$ENGINE load_procs=$LOAD_PROCS"
log "layout: $LAYOUT"

# reactor_ticks PID: the CPU ticks of each thread named reactor-K, in K order.
reactor_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        [[ $(cat "$task/comm" 2>/dev/null) =~ ^reactor-([0-9]+)$ ]] || continue
        printf '%s %s\n' "${BASH_REMATCH[1]}" "$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$task/stat")"
    done | sort -n | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 }'
}

# spread TICKS...: the least busy reactor's ticks / the busiest's.
spread() {
    awk -v list="$*" 'BEGIN {
        n = split(list, t, " "); if (n < 2) { print "-"; exit }
        lo = hi = t[1]; for (i = 2; i <= n; i++) { if (t[i] < lo) lo = t[i]; if (t[i] > hi) hi = t[i] }
        printf "%.2f", (hi > 0 ? lo / hi : 0) }'
}

# run_one N CONNS SIZE: a fresh server with N reactors and one load run
# against it, the server's CPU time counted over the load's timed window.
# Sets LINE, CPU (us per message), BUSY (%), SPREAD.
run_one() {
    local n=$1 conns=$2 size=$3 file=$TMP/cpu.start cpu0 cpu1 ticks threads
    pin_server "$n"
    SERVER_ARGS=(--reactors "$n")
    start_server echo_server
    rm -f "$file"
    LOAD_START_AT=$(unix_time_in "$START_DELAY")
    sample_cpu_at "$LOAD_START_AT" "$SPID" "$file"
    run_load "$conns" "$size"
    cpu1=$(cpu_ticks "$SPID")
    threads=$(reactor_ticks "$SPID")
    wait "$SAMPLER" 2>/dev/null || true
    forget "$SAMPLER"
    unset LOAD_START_AT
    stop_server
    cpu0=$(cat "$file" 2>/dev/null || true)
    [[ $cpu0 =~ ^[0-9]+$ ]] || die "the server's CPU time was not sampled at the window's start"
    LINE=$LOAD_LINE
    ticks=$((cpu1 - cpu0))
    CPU=$(cpu_us_per_msg "$ticks" "$(field msgs "$LINE")")
    BUSY=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v s="$SECS" -v n="$n" 'BEGIN { printf "%.0f", 100 * t / hz / s / n }')
    # shellcheck disable=SC2086 # one argument per thread
    SPREAD=$(spread $threads)
}

# ---------------------------------------------------------------- runs
# RUNS[LOAD,N,rate|p99|cpu|busy|spread]: space-separated per-round values;
# RUNS[LOAD,N,errors]: summed. SPEEDUP/CPU_RATIO[LOAD,N]: per-round ratios
# against the same round's 1-reactor run.
declare -A RUNS SPEEDUP CPU_RATIO
HAVE_ONE=0
for n in "${COUNTS[@]}"; do ((n == 1)) && HAVE_ONE=1; done
for load in $LOADS; do
    conns=${load%%:*} size=${load##*:}
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            mapfile -t order < <(printf '%s\n' "${COUNTS[@]}" | sort -n)
        else
            mapfile -t order < <(printf '%s\n' "${COUNTS[@]}" | sort -rn)
        fi
        declare -A rate=() cpu=()
        for n in "${order[@]}"; do
            run_one "$n" "$conns" "$size"
            log "  $load round $round reactors=$n $LINE server_cpu_us_per_msg=$CPU busy=$BUSY% spread=$SPREAD"
            rate[$n]=$(field msgs_per_s "$LINE")
            cpu[$n]=$CPU
            RUNS[$load,$n,rate]+=" ${rate[$n]}"
            RUNS[$load,$n,p99]+=" $(field p99_us "$LINE")"
            RUNS[$load,$n,cpu]+=" $CPU"
            RUNS[$load,$n,busy]+=" $BUSY"
            [[ $SPREAD == - ]] || RUNS[$load,$n,spread]+=" $SPREAD"
            RUNS[$load,$n,errors]=$((${RUNS[$load,$n,errors]:-0} + $(field errors "$LINE")))
        done
        if ((HAVE_ONE)); then
            for n in "${COUNTS[@]}"; do
                SPEEDUP[$load,$n]+=" $(ratio "${rate[$n]}" "${rate[1]}")"
                # 1-reactor CPU over N-reactor CPU: at least 1 when N cost no more.
                CPU_RATIO[$load,$n]+=" $(ratio "${cpu[1]}" "${cpu[$n]}")"
            done
        fi
        unset rate cpu
    done
done

# ---------------------------------------------------------------- summary
# verdict_at_least MEDIAN HIGH COVERAGE BAR: PASS at or above BAR, TIE when
# only the interval reaches it, FAIL below, n/a on too few rounds.
verdict_at_least() {
    awk -v m="$1" -v hi="$2" -v cov="$3" -v bar="$4" 'BEGIN {
        if (cov < 0.9) print "n/a"
        else print (m >= bar ? "PASS" : (hi >= bar ? "TIE" : "FAIL")) }'
}

echo
echo "== scaling: echo_server --reactors N, echo_load (engine $ENGINE, $LOAD_PROCS processes) =="
echo "machine: $CPUS CPUs, load average at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "layout: $LAYOUT"
echo "runs: $ROUNDS rounds x ${SECS}s per load and reactor count, fresh server per run, order alternated per round"
echo
echo "medians over rounds; p99 in us; cpu = server CPU us per echoed message; busy = server CPU / (secs x N);"
echo "spread = least / most busy reactor thread. Against 1 reactor in the same round: speedup = msgs/s"
echo "ratio, eff = speedup / N, cpu_1/cpu_N >= 1 when N reactors cost no more per message (intervals:"
echo "sign-test interval of the median, coverage in brackets). Bars: scaling (pinned only) eff >= $MIN_EFFICIENCY;"
echo "cpu: cpu_1/cpu_N >= 1."
printf '%-9s %-8s | %9s %8s %5s %5s %6s | %7s %5s %-11s %-11s | %7s %-19s %-4s | %s\n' \
    load reactors msgs/s p99 cpu busy spread speedup eff interval scaling cpu1/N interval cpu errors
for load in $LOADS; do
    for n in "${COUNTS[@]}"; do
        sp=- eff=- sint=- sbar=- cr=- cint=- cbar=-
        if ((HAVE_ONE)) && ((n != 1)); then
            sp=$(med "${SPEEDUP[$load,$n]}")
            read -r lo hi cov <<<"$(ratio_interval "${SPEEDUP[$load,$n]}")"
            eff=$(awk -v s="$sp" -v n="$n" 'BEGIN { printf "%.3f", s / n }')
            sint=$(awk -v lo="$lo" -v hi="$hi" -v n="$n" 'BEGIN { printf "%.2f-%.2f", lo / n, hi / n }')
            if [[ $PIN == 1 ]]; then
                sbar=$(verdict_at_least "$eff" "$(awk -v hi="$hi" -v n="$n" 'BEGIN { print hi / n }')" "$cov" "$MIN_EFFICIENCY")
            else
                sbar="n/a(shared)"
            fi
            cr=$(med "${CPU_RATIO[$load,$n]}")
            read -r lo hi cov <<<"$(ratio_interval "${CPU_RATIO[$load,$n]}")"
            cint="$lo-$hi ($cov)"
            cbar=$(verdict_at_least "$cr" "$hi" "$cov" 1)
        fi
        spread_med=-
        [[ -n ${RUNS[$load,$n,spread]:-} ]] && spread_med=$(med "${RUNS[$load,$n,spread]}")
        printf '%-9s %-8s | %9.0f %8.1f %5.2f %4.0f%% %6s | %7s %5s %-11s %-11s | %7s %-19s %-4s | %s\n' \
            "$load" "$n" "$(med "${RUNS[$load,$n,rate]}")" "$(med "${RUNS[$load,$n,p99]}")" \
            "$(med "${RUNS[$load,$n,cpu]}")" "$(med "${RUNS[$load,$n,busy]}")" "$spread_med" \
            "$sp" "$eff" "$sint" "$sbar" "$cr" "$cint" "$cbar" "${RUNS[$load,$n,errors]}"
    done
done
