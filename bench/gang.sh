#!/usr/bin/env bash
# gang.sh - gang-programming scaling on the simulator at real speed.
#
# For N = 1, 4, 8, 16 simulated ESP8266 modules (espline-sim, RFC 2217,
# --time-scale 1: wire time at the current baud rate, flash erase/program
# times of a real part), one `espline run` batch writes the same 1 MB image
# at 921600 baud to every module, verifies it by MD5 and resets it.  For each
# N it reports espline's wall time, its CPU time (user + system, from
# /usr/bin/time) as a share of one core per device, and its peak RSS.
#
# Targets (issue 6): wall(16) <= 1.15 x wall(1); CPU <= 5 % of one core per
# device; peak RSS <= 64 MB at 16 devices.
#
#   bench/gang.sh [N ...]        (env: BUILD=build)
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
E=$BUILD/espline
SIM=$BUILD/espline-sim
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 4 8 16)

work=$(mktemp -d /tmp/espline-gang.XXXXXX)
sim_pid=
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# 1 MB of incompressible bytes (deterministic), so deflate cannot shorten
# the wire time: the worst case for a gang.
mkdir -p "$work/r/images"
openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0 -nosalt \
	-in <(head -c 1048576 /dev/zero) -out "$work/r/images/bench-1mb.bin" 2>/dev/null
cat >"$work/r/bench.yaml" <<'YAML'
recipe: bench-1mb
chip: esp8266
connect: { reset: auto, baud: 115200, flash_baud: 921600 }
flash: { size: keep, mode: keep, freq: keep }
steps:
  - write: { file: images/bench-1mb.bin, address: 0x0 }
  - verify: md5
  - reset: run
YAML

echo "| devices | wall s | x one device | espline CPU s | CPU % of a core per device | peak RSS MB | passed |"
echo "|--:|--:|--:|--:|--:|--:|--:|"
base=
for n in "${COUNTS[@]}"; do
	rm -f "$work/ready" "$work/units.sqlite"*
	"$SIM" --devices "$n" --link rfc2217 --time-scale 1 --exit-after-idle 300 \
		--ready-file "$work/ready" >"$work/sim.out" 2>"$work/sim.err" &
	sim_pid=$!
	for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
	ports=()
	while read -r _ _ port _; do ports+=(--port "$port"); done <"$work/ready"
	echo "gang.sh: $n device(s)..." >&2
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" \
		"$E" run "$work/r/bench.yaml" --batch "gang-$n" --count "$n" --plain --db "$work/units.sqlite" \
		"${ports[@]}" >"$work/run.out" 2>&1 || true
	kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true
	sim_pid=
	read -r wall user sys rss_kb <"$work/time"
	passed=$(grep -c ': PASS ' "$work/run.out" || true)
	[ -n "$base" ] || base=$wall
	awk -v n="$n" -v w="$wall" -v b="$base" -v u="$user" -v s="$sys" -v r="$rss_kb" -v p="$passed" 'BEGIN {
		cpu = u + s
		printf "| %d | %.1f | %.3f | %.2f | %.2f %% | %.1f | %d/%d |\n", n, w, w / b, cpu, 100 * cpu / w / n, r / 1024, p, n
	}'
done
