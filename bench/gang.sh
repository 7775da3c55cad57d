#!/usr/bin/env bash
# gang.sh - gang-programming scaling on the simulator at real speed.
#
# For N = 1, 4, 8, 16 simulated ESP8266 modules (espline-sim, RFC 2217,
# --time-scale 1: wire time at the current baud rate, flash erase/program
# times of a real part), one `espline run` batch writes the same 1 MB image
# at GANG_BAUD (default 2000000) to every module, verifies it by MD5 and resets it.  For each
# N it reports espline's wall time, its CPU time (user + system, from
# /usr/bin/time) as a share of one core per device, and its peak RSS.  Every
# module's flash must equal the image afterwards and every unit must pass:
# the script fails loudly otherwise.
#
# Targets (issue 6): wall(16) <= 1.15 x wall(1); CPU <= 5 % of one core per
# device; peak RSS <= 64 MB at 16 devices.
#
#   bench/gang.sh [N ...]        (env: BUILD=build, GANG_BAUD=2000000,
#                                 TIME_SCALE for a dry run)
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 4 8 16)
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (Debian package: time)"
bench_build

WORK=$(mktemp -d /tmp/espline-bench-gang.XXXXXX)
cleanup() { sim_stop; rm -rf "$WORK"; }
trap cleanup EXIT

gang_recipe "$WORK/r" "${GANG_BAUD:-2000000}"
img=$WORK/r/images/bench-1mb.bin

echo "| devices | wall s | x one device | espline CPU s | CPU % of a core per device | peak RSS MB | passed |"
echo "|--:|--:|--:|--:|--:|--:|--:|"
base=
for n in "${COUNTS[@]}"; do
	rm -rf "$WORK/flash" "$WORK/units.sqlite"*
	mkdir -p "$WORK/flash"
	sim_start "$WORK" --devices "$n" --link rfc2217 --flash-dir "$WORK/flash"
	ports=()
	while read -r _ _ port _; do ports+=(--port "$port"); done <"$WORK/ready"
	log "gang: $n device(s)..."
	rc=0
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time" \
		"$E" run "$WORK/r/bench.yaml" --batch "gang-$n" --count "$n" --plain --db "$WORK/units.sqlite" \
		"${ports[@]}" >"$WORK/run.out" 2>&1 || rc=$?
	sim_stop
	passed=$(grep -c ': PASS ' "$WORK/run.out" || true)
	if [ "$rc" -ne 0 ] || [ "$passed" -ne "$n" ]; then
		tail -n 30 "$WORK/run.out" >&2
		die "gang: $passed of $n units passed (espline run exit $rc)"
	fi
	for ((k = 0; k < n; k++)); do
		flash_equals "$WORK/flash/dev$k.bin" "$img" || die "gang: device $k of $n: flash differs from the image"
	done
	read -r wall user sys rss_kb <"$WORK/time"
	[ -n "$base" ] || base=$wall
	awk -v n="$n" -v w="$wall" -v b="$base" -v u="$user" -v s="$sys" -v r="$rss_kb" -v p="$passed" 'BEGIN {
		cpu = u + s
		printf "| %d | %.1f | %.3f | %.2f | %.2f %% | %.1f | %d/%d |\n", n, w, w / b, cpu, 100 * cpu / w / n, r / 1024, p, n
	}'
done
dry_run_note
