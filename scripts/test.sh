#!/usr/bin/env bash
# The one test command: installs what is missing, builds, runs every test.
#
#   scripts/test.sh           build/ (-O2 -g), build-asan/ (ASan+UBSan), build-tsan/ (TSan), build-fuzz/
#                             (clang, libFuzzer targets run for a bounded time), ctest in each
#   scripts/test.sh --quick   build/ only
#
# Prints "N passed, N failed" (summed over the ctest runs) as its last line and
# exits non-zero if anything failed. A configure or build failure counts as one
# failed test. CRAFT_SIM_SEEDS / CRAFT_SIM_SEEDS_ASAN override the seed counts.
set -uo pipefail

# shellcheck source=scripts/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

quick=0
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
        sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: scripts/test.sh [--quick]" >&2
        exit 2
        ;;
    esac
done

total_passed=0
total_failed=0

# run_suite DIR CMAKE_ARGS...: build DIR and run its tests, adding to the totals.
run_suite()
{
    local dir="$1"
    shift
    local log="$craft_root/$dir/ctest.log"
    local rc line failed total

    echo "==> $dir: configure and build"
    if ! craft_build "$dir" "$@"; then
        echo "==> $dir: BUILD FAILED"
        total_failed=$((total_failed + 1))
        return 1
    fi

    echo "==> $dir: ctest"
    (cd "$craft_root/$dir" && ctest --output-on-failure -j2) 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}

    # ctest's summary: "100% tests passed, 0 tests failed out of 12".
    line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
    if [ -n "$line" ]; then
        failed="$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
        total="$(sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")"
        total_passed=$((total_passed + total - failed))
        total_failed=$((total_failed + failed))
    elif grep -q 'No tests were found' "$log"; then
        echo "==> $dir: no tests registered yet"
    elif [ "$rc" -ne 0 ]; then
        total_failed=$((total_failed + 1))
    fi
    [ "$rc" -eq 0 ]
}

status=0
if ! craft_install_deps; then
    echo "0 passed, 1 failed"
    exit 1
fi

run_suite build -DCRAFT_SANITIZE=OFF -DCRAFT_SIM_SEEDS="${CRAFT_SIM_SEEDS:-2000}" || status=1

if [ "$quick" -eq 0 ]; then
    run_suite build-asan -DCRAFT_SANITIZE=ON \
        -DCRAFT_SIM_SEEDS="${CRAFT_SIM_SEEDS_ASAN:-500}" || status=1
fi

# ThreadSanitizer over everything (the WAL's batching writer is threaded).
if [ "$quick" -eq 0 ]; then
    run_suite build-tsan -DCRAFT_TSAN=ON -DCRAFT_SANITIZE=OFF \
        -DCRAFT_SIM_SEEDS="${CRAFT_SIM_SEEDS_TSAN:-200}" || status=1
fi

# Fuzz targets (libFuzzer, clang): every decoder and the core's step function,
# each run for a bounded time (CRAFT_FUZZ_SECONDS, default 20) from a fixed seed.
if [ "$quick" -eq 0 ]; then
    run_suite build-fuzz -DCMAKE_C_COMPILER=clang -DCRAFT_FUZZ=ON -DCRAFT_SANITIZE=OFF \
        -DCRAFT_FUZZ_SECONDS="${CRAFT_FUZZ_SECONDS:-20}" \
        -DCRAFT_SIM_SEEDS="${CRAFT_SIM_SEEDS_FUZZ:-200}" || status=1
fi

if [ "$total_failed" -ne 0 ]; then
    status=1
fi
echo "$total_passed passed, $total_failed failed"
exit "$status"
