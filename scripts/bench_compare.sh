#!/usr/bin/env bash
# Durable puts on a 3-node craftkv cluster and a 3-member etcd cluster
# (Debian's etcd-server 3.4), both on loopback, driven by the same HTTP
# client (tools/bench/http_put_bench.py: one keep-alive connection per client,
# unique keys, 256-byte values). Prints a markdown table.
#
#   scripts/bench_compare.sh [--seconds N] [--clients 1,16,64,256] [--no-build]
#
# Ports: craftkv 18379..18401, etcd 12379..12382 / 12480..12482. Data in a
# temporary directory removed at the end. Installs etcd-server if missing.
set -euo pipefail

seconds=5
clients="1,16,64,256"
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_compare: unknown argument $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
if [ "$build" = 1 ]; then
    craft_install_deps
    craft_build build -DCRAFT_SANITIZE=OFF >/dev/null
fi
if ! command -v etcd >/dev/null 2>&1; then
    CRAFT_DEBIAN_PACKAGES="etcd-server" craft_install_deps >/dev/null 2>&1 || true
fi
craftkv="$craft_root/build/craftkv"
bench="$craft_root/tools/bench/http_put_bench.py"

tmp="$(mktemp -d /tmp/craft-bench-compare.XXXXXX)"
pids=()
stop_all()
{
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT INT TERM

wait_http()
{
    for _ in $(seq 1 200); do
        curl -s --max-time 1 "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench_compare: nothing answers at $1" >&2
    return 1
}

echo "| server | clients | puts/s | p50 ms | p99 ms | errors |"
echo "| --- | --- | --- | --- | --- | --- |"

# craftkv: 3 nodes; the client talks to the leader's HTTP port.
peers="1=127.0.0.1:18381,2=127.0.0.1:18391,3=127.0.0.1:18401"
for i in 1 2 3; do
    base=$((18379 + 10 * (i - 1)))
    "$craftkv" --id "$i" --data "$tmp/craftkv$i" --peers "$peers" --quiet \
        --resp "127.0.0.1:$base" --http "127.0.0.1:$((base + 1))" \
        --raft "127.0.0.1:$((base + 2))" >"$tmp/craftkv$i.log" 2>&1 &
    pids+=($!)
done
leader=""
for _ in $(seq 1 200); do
    for i in 1 2 3; do
        if curl -s --max-time 1 "http://127.0.0.1:$((18380 + 10 * (i - 1)))/status" |
            grep -q '"role":"leader"'; then
            leader=$((18380 + 10 * (i - 1)))
            break 2
        fi
    done
    sleep 0.1
done
[ -n "$leader" ] || { echo "bench_compare: craftkv elected no leader" >&2; exit 1; }
python3 "$bench" --kind craftkv --endpoint "127.0.0.1:$leader" --clients "$clients" \
    --seconds "$seconds"
stop_all

# etcd: 3 members.
if command -v etcd >/dev/null 2>&1; then
    cluster="e1=http://127.0.0.1:12480,e2=http://127.0.0.1:12481,e3=http://127.0.0.1:12482"
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$tmp/etcd$i" \
            --listen-client-urls "http://127.0.0.1:$((12378 + i))" \
            --advertise-client-urls "http://127.0.0.1:$((12378 + i))" \
            --listen-peer-urls "http://127.0.0.1:$((12479 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((12479 + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --log-level error >"$tmp/etcd$i.log" 2>&1 &
        pids+=($!)
    done
    for i in 1 2 3; do wait_http "http://127.0.0.1:$((12378 + i))/health"; done
    sleep 1
    # The leader's client port (etcd forwards from followers, which adds a hop).
    leader=12379
    for i in 1 2 3; do
        if curl -s -X POST -d '{}' "http://127.0.0.1:$((12378 + i))/v3/maintenance/status" |
            python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("leader")==d.get("header",{}).get("member_id") else 1)'; then
            leader=$((12378 + i))
        fi
    done
    python3 "$bench" --kind etcd --endpoint "127.0.0.1:$leader" --clients "$clients" \
        --seconds "$seconds"
    stop_all
else
    echo "| etcd | (etcd-server could not be installed) | | | | |"
fi
