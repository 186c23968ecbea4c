#!/usr/bin/env bash
# Builds the WAL decoder fuzz target with clang + libFuzzer (ASan, UBSan) and
# runs it for a bounded time. Used by the CTest test fuzz_wal_record_bounded;
# also handy by hand:
#
#   tests/storage/run_fuzz_wal.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-20}"
out="${2:-$root/build-fuzz-wal}"
clang="${CLANG:-clang}"
mkdir -p "$out/corpus"
"$clang" -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -Werror -I"$root/include" -I"$root/src" \
    "$root/tests/fuzz/fuzz_wal_record.c" "$root"/src/storage/*.c "$root/src/raft/strings.c" \
    -lpthread -o "$out/fuzz_wal_record"
cd "$out"
# -seed fixed so a failure reproduces; crashes land in $out as crash-*.
exec ./fuzz_wal_record -seed=1 -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 corpus
