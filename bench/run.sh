#!/usr/bin/env bash
# run.sh - every benchmark, one after the other (`make bench`).  Each script
# prints its own table; bench/RESULTS.md keeps the latest ones.  Takes
# several minutes: the device benchmarks run the simulator at real speed and
# the database one builds a 1,000,000-unit database.
#
#   bench/run.sh [device] [gang] [db] [central]     (default: all four)
set -euo pipefail
cd "$(dirname "$0")"
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(device gang db central)
for b in "${benches[@]}"; do
	[ -x "./$b.sh" ] || { echo "bench: no such benchmark: $b (device, gang, db, central)" >&2; exit 2; }
	echo "== bench/$b.sh"
	"./$b.sh"
	echo
done
