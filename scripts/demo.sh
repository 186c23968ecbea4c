#!/usr/bin/env bash
# The main job: installs what is missing, builds into build/, and starts a
# local 3-node craftkv cluster on loopback (data under ./data), prints how to
# talk to it, and stops all three cleanly on Ctrl-C.
#
#   scripts/demo.sh                 3 nodes, data in ./data/node1..3
#   scripts/demo.sh --nodes 5       another size (1..9)
#   scripts/demo.sh --fresh         wipe ./data first
#   scripts/demo.sh --no-build      skip the dependency check and the build
#
# Node N listens for Redis clients on 7379+10*(N-1), HTTP on 7380+10*(N-1)
# and raft on 7381+10*(N-1).
set -euo pipefail

nodes=3
fresh=0
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$nodes" in [1-9]) ;; *) echo "demo: --nodes wants 1..9" >&2; exit 2 ;; esac

# shellcheck source=scripts/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
if [ "$build" = 1 ]; then
    craft_install_deps
    craft_build build -DCRAFT_SANITIZE=OFF
fi
craftkv="$craft_root/build/craftkv"
[ -x "$craftkv" ] || { echo "demo: $craftkv is not built" >&2; exit 1; }

data="$PWD/data"
[ "$fresh" = 1 ] && rm -rf "$data"
mkdir -p "$data"

peers=""
for i in $(seq 1 "$nodes"); do
    peers="${peers:+$peers,}$i=127.0.0.1:$((7381 + 10 * (i - 1)))"
done

pids=()
stop_all()
{
    trap - INT TERM EXIT
    echo
    echo "demo: stopping the cluster (SIGTERM, then waiting for each node)..."
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    echo "demo: stopped. Data is kept in $data (scripts/demo.sh --fresh starts over)."
    exit 0
}
trap stop_all INT TERM EXIT

for i in $(seq 1 "$nodes"); do
    "$craftkv" --id "$i" --data "$data/node$i" --peers "$peers" --quiet \
        >"$data/node$i.log" 2>&1 &
    pids+=($!)
done

# Wait (bounded) until a leader is known.
leader=""
for _ in $(seq 1 100); do
    for i in $(seq 1 "$nodes"); do
        if curl -s --max-time 1 "http://127.0.0.1:$((7380 + 10 * (i - 1)))/status" 2>/dev/null |
            grep -q '"role":"leader"'; then
            leader=$i
            break 2
        fi
    done
    sleep 0.1
done

cat <<EOF

craftkv: a $nodes-node cluster is running on loopback (data and logs in $data).
Leader: ${leader:-"not elected yet"}.

  node  redis (RESP)      http               raft
EOF
for i in $(seq 1 "$nodes"); do
    printf '  %-4s  127.0.0.1:%-7s  127.0.0.1:%-7s  127.0.0.1:%s\n' "$i" \
        $((7379 + 10 * (i - 1))) $((7380 + 10 * (i - 1))) $((7381 + 10 * (i - 1)))
done
cat <<EOF

Try (any node serves reads and writes; followers forward to the leader):
  redis-cli -p 7379 set greeting hello
  redis-cli -p 7389 get greeting
  curl -X PUT -d world http://127.0.0.1:7380/kv/hello
  curl http://127.0.0.1:7390/kv/hello
  curl http://127.0.0.1:7380/status
  build/craftctl status
  redis-benchmark -p 7379 -t set,get -c 64 -P 16 -n 100000 -q

Press Ctrl-C to stop all $nodes nodes.
EOF

# Wait for Ctrl-C, or for any node to exit by itself.
while :; do
    for pid in "${pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: node with pid $pid exited; see $data/node*.log" >&2
            exit 1
        fi
    done
    sleep 1
done
