#!/usr/bin/env bash
# The main job: installs what is missing, builds into build/, and runs the
# simulator's demo (a simulated cluster's life, printed step by step). Until
# the simulator exists it falls back to the core benchmark. Extra arguments
# are passed to the program.
set -euo pipefail

# shellcheck source=scripts/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

craft_install_deps
craft_build build -DCRAFT_SANITIZE=OFF

if [ -x "$craft_root/build/craft-sim" ]; then
    exec "$craft_root/build/craft-sim" --demo "$@"
elif [ -x "$craft_root/build/craft-bench" ]; then
    exec "$craft_root/build/craft-bench" core "$@"
else
    echo "demo: neither build/craft-sim (tests/sim/) nor build/craft-bench (tools/bench/) is built yet" >&2
    exit 1
fi
