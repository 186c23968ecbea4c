#!/usr/bin/env bash
# Benchmarks craftkv with redis-benchmark (issue 5): SET and GET, 256-byte
# values, 1, 64 and 256 clients, without and with pipelining (-P 16), against
# a 3-node craftkv cluster on loopback and, for reference, against one
# redis-server with `appendfsync always` and one with persistence off.
# Prints a markdown table (requests per second and p50 latency in ms).
#
#   scripts/bench_kv.sh [--requests N] [--no-redis] [--no-build]
#
# Uses ports 17379..17401 (craftkv) and 17500/17501 (redis-server); data in
# a temporary directory removed at the end. Installs redis-server from Debian
# if it is missing (reference runs only).
set -euo pipefail

requests=100000
with_redis=1
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --no-redis) with_redis=0; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_kv: unknown argument $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
if [ "$build" = 1 ]; then
    craft_install_deps
    craft_build build -DCRAFT_SANITIZE=OFF >/dev/null
fi
craftkv="$craft_root/build/craftkv"

tmp="$(mktemp -d /tmp/craft-bench-kv.XXXXXX)"
pids=()
cleanup()
{
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_port()
{
    for _ in $(seq 1 100); do
        redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench_kv: nothing answers on port $1" >&2
    return 1
}

# One redis-benchmark run: prints "rps p50".
run()
{
    local port="$1" test="$2" clients="$3" pipeline="$4" n="$requests" out
    # A single client without pipelining is slow on a durable store: fewer requests.
    if [ "$clients" = 1 ] && [ "$pipeline" = 1 ]; then n=$((requests / 20)); fi
    out="$(redis-benchmark -p "$port" -t "$test" -d 256 -c "$clients" -P "$pipeline" -n "$n" \
        -r 100000 -q 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -n 1)"
    awk '{for (i = 1; i <= NF; i++) { if ($i == "requests") rps = $(i - 1); if ($i ~ /^p50=/) { sub("p50=", "", $i); p50 = $i } } } END { printf "%s %s", rps, p50 }' <<<"$out"
}

table_rows()
{
    local name="$1" port="$2"
    for test in set get; do
        for clients in 1 64 256; do
            for pipeline in 1 16; do
                read -r rps p50 <<<"$(run "$port" "$test" "$clients" "$pipeline")"
                printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "${test^^}" "$clients" \
                    "$pipeline" "$rps" "$p50"
            done
        done
    done
}

peers="1=127.0.0.1:17381,2=127.0.0.1:17391,3=127.0.0.1:17401"
for i in 1 2 3; do
    base=$((17379 + 10 * (i - 1)))
    "$craftkv" --id "$i" --data "$tmp/node$i" --peers "$peers" --quiet \
        --resp "127.0.0.1:$base" --http "127.0.0.1:$((base + 1))" \
        --raft "127.0.0.1:$((base + 2))" >"$tmp/node$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2 3; do wait_port $((17379 + 10 * (i - 1))); done
# Benchmark against the leader (followers forward, which adds a hop).
leader_port=17379
for _ in $(seq 1 100); do
    for i in 1 2 3; do
        if curl -s "http://127.0.0.1:$((17380 + 10 * (i - 1)))/status" | grep -q '"role":"leader"'; then
            leader_port=$((17379 + 10 * (i - 1)))
            break 2
        fi
    done
    sleep 0.1
done

echo "## redis-benchmark, 256-byte values, $requests requests ($((requests / 20)) for 1 client unpipelined)"
echo
echo "| server | test | clients | pipeline | requests/s | p50 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
table_rows "craftkv, 3 nodes" "$leader_port"

if [ "$with_redis" = 1 ]; then
    if ! command -v redis-server >/dev/null 2>&1; then
        CRAFT_DEBIAN_PACKAGES="redis-server" craft_install_deps >/dev/null 2>&1 || true
    fi
    if command -v redis-server >/dev/null 2>&1; then
        mkdir -p "$tmp/redis-always" "$tmp/redis-none"
        redis-server --port 17500 --dir "$tmp/redis-always" --appendonly yes \
            --appendfsync always --save '' --daemonize no >"$tmp/redis-always.log" 2>&1 &
        pids+=($!)
        redis-server --port 17501 --dir "$tmp/redis-none" --appendonly no --save '' \
            --daemonize no >"$tmp/redis-none.log" 2>&1 &
        pids+=($!)
        wait_port 17500
        wait_port 17501
        table_rows "redis, appendfsync always" 17500
        table_rows "redis, no persistence" 17501
    else
        echo "(redis-server could not be installed: reference rows skipped)"
    fi
fi
