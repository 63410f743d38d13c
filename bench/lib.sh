# Helpers shared by bench/echo.sh and bench/udp.sh. Sourced, not run.
#
# The sourcing script sets, before calling bench_init:
#   BENCH        its name, for error messages
#   HOST         the address servers listen on and loads connect to
#   SERVER_BIN   associative array: server name -> binary
#   LOAD_BIN     the load generator (echo_load or udp_load)
#   LOAD_COUNT   the load generator's option for how many connections or
#                clients (--conns, --clients); its result line starts with
#                that name, e.g. `conns=50 size=512 ...`
#   ROUNDS SECS LOAD_PROCS START_DELAY PIN NO_BUILD   as documented in the scripts
#   LOAD_ARGS    array: extra arguments for every load process (may be empty)
#   SERVER_ARGS  array (optional): extra arguments for every server, after
#                --host and --port (bench/tls.sh: the certificate and key)
#   LOAD_START_AT (optional) the UNIX time run_load's processes start their
#                timed window at, instead of START_DELAY seconds from the
#                call (bench/tls.sh sets it to sample the server's CPU then)
#
# Every child is started through start_server or run_load, recorded in
# CHILDREN, and killed when the script exits.

# Servers log each connection at info; a benchmark's thousands of them
# would cost the server time and fill its log, so only warnings by default.
export RUST_LOG=${RUST_LOG:-warn}

log() { printf '%s\n' "$*" >&2; }
die() {
    log "$BENCH: $*"
    exit 1
}

cleanup() {
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${CHILDREN[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}

# Drops a pid from CHILDREN once it has been reaped.
forget() {
    local pid=$1 i
    for i in "${!CHILDREN[@]}"; do
        [[ ${CHILDREN[$i]} == "$pid" ]] && unset 'CHILDREN[i]'
    done
    CHILDREN=("${CHILDREN[@]}")
}

# bench_init: checks the common settings, sets up the temporary directory,
# the traps and CPU pinning, and builds the examples.
bench_init() {
    [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
    [[ $LOAD_PROCS =~ ^[1-9][0-9]*$ ]] || die "LOAD_PROCS must be a positive integer"
    [[ $SECS =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SECS" 'BEGIN { exit !(s > 0) }' ||
        die "SECS must be a positive number"
    # Seconds from starting the load processes to their common start.
    START_DELAY=${START_DELAY:-0.5}
    [[ $START_DELAY =~ ^[0-9]*\.?[0-9]+$ ]] || die "START_DELAY must be a number of seconds"
    # Hard bound on one load run: its SECS, the start delay, connecting, and slack.
    LOAD_LIMIT=$(awk -v s="$SECS" -v d="$START_DELAY" 'BEGIN { print int(s + d) + 60 }')

    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH.XXXXXX")
    CHILDREN=()
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    CPUS=$(nproc)
    bench_pin

    if [[ $NO_BUILD != 1 ]]; then
        log "building (cargo build --release --workspace --examples)..."
        cargo build --release --workspace --examples >&2
    fi
    local bin
    for bin in "$LOAD_BIN" "${SERVER_BIN[@]}"; do
        [[ -x $bin ]] || die "$bin is missing; build with cargo build --release --workspace --examples"
    done
}

# bench_pin: command prefixes that pin the server to CPU 0 and the load
# processes to the others when PIN=1 (on 2 CPUs, every load process shares
# CPU 1). taskset execs the command, so $! is still the process's own pid.
bench_pin() {
    PIN_SERVER=()
    PIN_CLIENT=()
    if [[ $PIN == 1 ]] && command -v taskset >/dev/null && ((CPUS > 1)); then
        PIN_SERVER=(taskset -c 0)
        PIN_CLIENT=(taskset -c "1-$((CPUS - 1))")
    fi
}

# raise_nofile: lifts the soft descriptor limit as far as allowed; sets NOFILE.
raise_nofile() {
    local hard
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]]; then
        ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
    else
        ulimit -n "$hard" 2>/dev/null || true
    fi
    NOFILE=$(ulimit -n)
}

# median of the numbers given as arguments
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "nan"; exit }
              if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# med LIST: the median of a space-separated list
med() {
    # shellcheck disable=SC2086 # word splitting of the list is intended
    median $1
}

# ratio_interval LIST: "LOW HIGH COVERAGE" for the median of the
# space-separated ratios: the sign-test (order statistic) interval, the
# narrowest whose coverage is at least 95%, or [min, max] when even that
# covers less (fewer than 6 rounds; its coverage is printed).
ratio_interval() {
    # shellcheck disable=SC2086 # word splitting of the list is intended
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 }
        END {
            n = NR; if (n == 0) { print "nan nan 0"; exit }
            # cdf[j] = P(Binomial(n, 1/2) <= j)
            p = 1; for (i = 1; i <= n; i++) p /= 2
            c = p; cdf[0] = c
            for (j = 1; j <= n; j++) { p = p * (n - j + 1) / j; c += p; cdf[j] = c }
            k = 1
            for (j = 2; j <= n / 2; j++) if (2 * cdf[j - 1] <= 0.05) k = j
            printf "%s %s %.3f\n", v[k], v[n + 1 - k], 1 - 2 * cdf[k - 1] }'
}

# ratio_verdict MEDIAN HIGH COVERAGE: PASS when the median ratio is at
# least 1; TIE when it is below 1 but the interval reaches 1 (no measurable
# difference); FAIL when the whole interval is below 1; n/a when the
# interval covers less than 90% (too few rounds to say).
ratio_verdict() {
    awk -v m="$1" -v hi="$2" -v cov="$3" 'BEGIN {
        if (cov < 0.9) print "n/a"
        else print (m >= 1 ? "PASS" : (hi >= 1 ? "TIE" : "FAIL")) }'
}

# field NAME LINE: the value of NAME=... in a result line
field() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# ratio A B: A/B to three decimals, 0 when B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

# start_server NAME: starts a fresh server on a free port; sets SPID and SPORT.
start_server() {
    local name=$1 out=$TMP/$1.$RANDOM.out i line
    "${PIN_SERVER[@]}" "${SERVER_BIN[$name]}" --host "$HOST" --port 0 \
        ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} >"$out" 2>"$out.err" &
    SPID=$!
    CHILDREN+=("$SPID")
    for ((i = 0; i < 100; i++)); do
        line=$(grep -m1 "^listening on " "$out" 2>/dev/null || true)
        [[ -n $line ]] && break
        kill -0 "$SPID" 2>/dev/null || die "$name server exited: $(cat "$out.err")"
        sleep 0.1
    done
    [[ -n $line ]] || die "$name server did not say where it listens"
    # Counting CPU time, syscalls and memory needs the server's own pid, not a wrapper's.
    [[ $(readlink "/proc/$SPID/exe") == */"${SERVER_BIN[$name]##*/}" ]] ||
        die "pid $SPID is not the $name server"
    SPORT=${line##*:}
}

stop_server() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    forget "$SPID"
}

# run_load COUNT SIZE: one bounded run against SPORT of min(LOAD_PROCS, COUNT)
# load processes at once, COUNT connections (or clients) split between them
# as evenly as possible, all timing the same window (--start-at). Sets LOAD_LINE to their combined result: the first
# line's fields, with COUNT, msgs, msgs_per_s, errors, lost and late summed,
# p50_us and p99_us the largest of the processes', and procs=P appended.
# (Not run in $(...): its children must be in this shell's CHILDREN.)
run_load() {
    local count=$1 size=$2 procs i n status=0 key=${LOAD_COUNT#--} pids=() outs=() out line start_at
    procs=$((LOAD_PROCS < count ? LOAD_PROCS : count))
    # Every process times the same window, from START_DELAY seconds from now
    # (connecting takes milliseconds); one that is not ready by then starts
    # late and says so on stderr.
    start_at=${LOAD_START_AT:-$(unix_time_in "$START_DELAY")}
    for ((i = 0; i < procs; i++)); do
        n=$((count / procs + (i < count % procs ? 1 : 0)))
        out=$TMP/load.$i
        "${PIN_CLIENT[@]}" timeout -k 5 "$LOAD_LIMIT" "$LOAD_BIN" --host "$HOST" \
            --port "$SPORT" "$LOAD_COUNT" "$n" --size "$size" --secs "$SECS" \
            --start-at "$start_at" "${LOAD_ARGS[@]}" >"$out.out" 2>"$out.err" &
        pids+=("$!")
        outs+=("$out")
        CHILDREN+=("$!")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || status=$?
        forget "${pids[$i]}"
    done
    for out in "${outs[@]}"; do
        # Warnings (a lost connection, ...) go on to our stderr.
        if [[ -s $out.err ]]; then
            sed "s/^/  [${out##*/}] /" "$out.err" >&2
        fi
        line=$(head -n1 "$out.out")
        if [[ $line != "$key"=* ]] && ((status == 0)); then
            status=1
        fi
    done
    ((status == 0)) || die "${LOAD_BIN##*/} failed ($key=$count size=$size, $procs processes, status $status)"
    LOAD_LINE=$(for out in "${outs[@]}"; do head -n1 "$out.out"; done | awk -v key="$key" -v procs="$procs" '
        {
            for (i = 1; i <= NF; i++) {
                eq = index($i, "=")
                k = substr($i, 1, eq - 1)
                x = substr($i, eq + 1)
                if (NR == 1) order[++nk] = k
                if (k == key || k ~ /^(msgs|msgs_per_s|errors|lost|late)$/) v[k] += x
                else if (k ~ /^p[0-9]+_us$/) { if (!(k in v) || x + 0 > v[k] + 0) v[k] = x }
                else if (NR == 1) v[k] = x
            }
        }
        END {
            for (i = 1; i <= nk; i++) printf "%s%s=%s", (i > 1 ? " " : ""), order[i], v[order[i]]
            printf " procs=%d\n", procs
        }')
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# unix_time_in SECS: the UNIX time SECS seconds from now, to the millisecond.
unix_time_in() { awk -v now="$(date +%s.%N)" -v d="$1" 'BEGIN { printf "%.3f", now + d }'; }

# sample_cpu_at AT PID FILE: in the background, writes cpu_ticks PID to FILE
# at UNIX time AT (at once if it has passed); sets SAMPLER to its pid, which
# is in CHILDREN (wait for it, then forget it). With LOAD_START_AT=AT it
# gives a server's CPU time from the start of a load's timed window, so the
# connections' setup (a TLS handshake each) is not counted.
sample_cpu_at() {
    local at=$1 pid=$2 file=$3
    (
        sleep "$(awk -v at="$at" -v now="$(date +%s.%N)" 'BEGIN { d = at - now; print (d > 0 ? d : 0) }')"
        cpu_ticks "$pid" >"$file"
    ) &
    SAMPLER=$!
    CHILDREN+=("$SAMPLER")
}
CLK_TCK=$(getconf CLK_TCK)

# cpu_us_per_msg TICKS MSGS: CPU microseconds per message
cpu_us_per_msg() {
    awk -v t="$1" -v hz="$CLK_TCK" -v m="$2" 'BEGIN { printf "%.2f", (m > 0 ? t * 1e6 / hz / m : 0) }'
}

# measure_throughput LOAD: ROUNDS runs of each server at LOAD ("N:SIZE"),
# alternating which goes first, each a fresh process. Appends per-run msgs/s,
# p50, p99 and server CPU us per message to RUNS[LOAD,SERVER,rate|p50|p99|cpu],
# sums errors and lost into RUNS[LOAD,SERVER,errors|lost], and sets
# RATIOS[LOAD] to the reactor/other msgs/s ratio of each round, where the
# other server is ${SERVERS[1]}.
measure_throughput() {
    local load=$1 n=${1%%:*} size=${1##*:} round name line cpu0 cpu1 cpu errors lost order ratios=()
    local -A rate
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then order=("${SERVERS[@]}"); else order=("${SERVERS[1]}" "${SERVERS[0]}"); fi
        rate=()
        for name in "${order[@]}"; do
            start_server "$name"
            cpu0=$(cpu_ticks "$SPID")
            run_load "$n" "$size"
            line=$LOAD_LINE
            cpu1=$(cpu_ticks "$SPID")
            stop_server
            cpu=$(cpu_us_per_msg $((cpu1 - cpu0)) "$(field msgs "$line")")
            log "  round $round $(printf '%-7s' "$name") $line server_cpu_us_per_msg=$cpu"
            rate[$name]=$(field msgs_per_s "$line")
            RUNS[$load,$name,rate]+=" ${rate[$name]}"
            RUNS[$load,$name,p50]+=" $(field p50_us "$line")"
            RUNS[$load,$name,p99]+=" $(field p99_us "$line")"
            RUNS[$load,$name,cpu]+=" $cpu"
            errors=$(field errors "$line")
            lost=$(field lost "$line") # only the UDP load reports it
            RUNS[$load,$name,errors]=$((${RUNS[$load,$name,errors]:-0} + ${errors:-0}))
            RUNS[$load,$name,lost]=$((${RUNS[$load,$name,lost]:-0} + ${lost:-0}))
        done
        ratios+=("$(ratio "${rate[reactor]}" "${rate[${SERVERS[1]}]}")")
    done
    RATIOS[$load]="${ratios[*]}"
    log "$n x $size: msgs/s reactor${RUNS[$load,reactor,rate]}, ${SERVERS[1]}${RUNS[$load,${SERVERS[1]},rate]}; ratio by round ${ratios[*]}"
}
