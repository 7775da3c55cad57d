#!/usr/bin/env bash
# central.sh - benchmark replication to a central PostgreSQL.
#
#   bench/central.sh [UNITS_PER_STATION]      (default 20000)
#
# Starts a private PostgreSQL 15 (Debian package; as `nobody` when run as
# root) on a Unix socket with its default durability (fsync on,
# synchronous_commit on), then measures:
#   - throughput: UNITS_PER_STATION sealed units (5 steps each) waiting in a
#     station's outbox, pushed by `espline sync push` (one sender), then three
#     stations' outboxes pushed at once (three senders, one server);
#   - latency: units written one at a time through the database writer with
#     replication on; time from the local commit to the row being visible on
#     the server (bench/central_bench.c).
# Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/bench}
N=${1:-20000}
make --no-print-directory -s BUILD="$BUILD" "$BUILD/libespline.a" "$BUILD/espline"
PKGS="libserialport sqlite3 yaml-0.1 zlib libcrypto jansson libpq"
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude \
	$(pkg-config --cflags $PKGS) bench/central_bench.c "$BUILD/libespline.a" \
	$(pkg-config --libs $PKGS) -lutil -lpthread -lm -o "$BUILD/bench/central_bench"
B=$BUILD/bench/central_bench
E=$BUILD/espline

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
T=$(mktemp -d /tmp/espline-central-bench.XXXXXX)
PGD=$(mktemp -d /tmp/espline-central-bench-pg.XXXXXX)
AS=()
if [ "$(id -u)" -eq 0 ]; then AS=(runuser -u nobody --); chown nobody "$PGD"; fi
pg_ctl() { "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" "$@"; }
cleanup() { pg_ctl -w -m fast stop >/dev/null 2>&1 || true; rm -rf "$T" "$PGD"; }
trap cleanup EXIT
"${AS[@]}" "$PGBIN/initdb" -D "$PGD/data" -U espline -A trust >/dev/null
pg_ctl -w -l "$PGD/log" -o "-k $PGD -c listen_addresses=''" start >/dev/null
C="postgresql:///postgres?host=$PGD&user=espline"
psql_q() { psql -X -q -At "$C" -c "$1"; }
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync on; $(nproc) CPUs"

for k in 1 2 3 4; do "$B" fill "$T/st$k.sqlite" "$N"; done

start=$(date +%s.%N)
"$E" sync push --db "$T/st1.sqlite" --central "$C"
end=$(date +%s.%N)
echo "one sender: $N units in $(echo "$end - $start" | bc) s = $(echo "$N / ($end - $start)" | bc) units/s into the server"

start=$(date +%s.%N)
for k in 2 3 4; do "$E" sync push --db "$T/st$k.sqlite" --central "$C" >/dev/null & done
wait
end=$(date +%s.%N)
total=$((3 * N))
echo "three senders at once: $total units in $(echo "$end - $start" | bc) s = $(echo "$total / ($end - $start)" | bc) units/s into the server"
echo "central holds $(psql_q 'SELECT count(*) FROM units') units, $(psql_q 'SELECT count(*) FROM steps') steps"

"$B" latency "$T/lat.sqlite" "$C" 200
