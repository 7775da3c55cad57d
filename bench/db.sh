#!/usr/bin/env bash
# db.sh - benchmark the traceability database at 1,000,000 units.
#
#   bench/db.sh [UNITS] [STEPS_PER_UNIT]       (defaults: 1000000 5)
#
# Builds the library (make BUILD=$BUILD, default build/bench), compiles
# bench/db_bench.c with the same flags, fills a fresh database in
# $BENCH_DIR (default /tmp; about 1.5 GB at 1M units) and prints insert
# throughput, history-MAC latency, report, export and verify times.
# Not part of `make test`: it takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/bench}
BENCH_DIR=${BENCH_DIR:-/tmp}
make --no-print-directory -s BUILD="$BUILD" "$BUILD/libespline.a"
PKGS="libserialport sqlite3 yaml-0.1 zlib libcrypto jansson libpq"
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude \
	$(pkg-config --cflags $PKGS) bench/db_bench.c "$BUILD/libespline.a" \
	$(pkg-config --libs $PKGS) -lutil -lpthread -lm -o "$BUILD/bench/db_bench"
db="$BENCH_DIR/espline-bench.sqlite"
"$BUILD/bench/db_bench" "$db" "${1:-1000000}" "${2:-5}"
echo "database left at $db (remove it with: rm -f $db*)"
