#!/usr/bin/env bash
# units.sh - units per hour of a 16-port station with the sample recipe
# recipes/nodemcu-4mb.yaml (erase chip, write the NodeMCU demo image, write
# the SDK init data at the end of the detected flash, verify by MD5, reset),
# on 16 simulated 4 MB modules (espline-sim, RFC 2217 with the NodeMCU
# auto-reset circuit, --time-scale 1), one `espline run` batch of 16 units.
#
# units/hour = units / wall time of the batch.  Operator handling time
# (taking programmed modules out, putting new ones in) is NOT included: on a
# real line add it per batch of 16.  The per-unit split comes from the
# database the batch wrote (steps.duration_ms per kind; "connect + identify
# + checks" is the unit's duration minus its steps).  Every unit must pass
# and every module's flash must hold the image (after its patched 4-byte
# header) and the init data at 4 MB - 0x4000: the script fails loudly
# otherwise.
#
#   bench/units.sh             (env: BUILD=build, UNITS_DEVICES=16, TIME_SCALE,
#                               UNITS_DIRTY=50% for used modules: espline-sim
#                               --dirty, each 4 KiB sector dirty with that chance,
#                               UNITS_FLASH_BAUD=N: the recipe at --flash-baud N)
# Prints Markdown on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${UNITS_DEVICES:-16}
bench_build
command -v sqlite3 >/dev/null || die "sqlite3 (the command) is needed to read the run database"

WORK=$(mktemp -d /tmp/espline-bench-units.XXXXXX)
cleanup() { sim_stop; rm -rf "$WORK"; }
trap cleanup EXIT

# The sample recipe, unchanged, next to freshly generated demo images (its
# sha256 pins check they are the ones it names).
mkdir -p "$WORK/r" "$WORK/flash"
cp recipes/nodemcu-4mb.yaml "$WORK/r/"
BUILD=$BUILD scripts/make-demo-images.sh "$WORK/r/images" >&2
img=$WORK/r/images/nodemcu-demo.bin
init=$WORK/r/images/esp_init_data_demo.bin

sim_start "$WORK" --devices "$N" --link rfc2217 --flash 4MB --flash-dir "$WORK/flash" \
	${UNITS_DIRTY:+--dirty "$UNITS_DIRTY"}
ports=()
while read -r _ _ port _; do ports+=(--port "$port"); done <"$WORK/ready"
log "units: $N modules, recipes/nodemcu-4mb.yaml ..."
t0=$(now)
rc=0
"$E" run "$WORK/r/nodemcu-4mb.yaml" --batch "units-$N" --count "$N" --plain --db "$WORK/units.sqlite" \
	${UNITS_FLASH_BAUD:+--flash-baud "$UNITS_FLASH_BAUD"} "${ports[@]}" >"$WORK/run.out" 2>&1 || rc=$?
wall=$(calc "$(now) - $t0")
sim_stop

q() { sqlite3 -separator ' ' "$WORK/units.sqlite" "$1"; }
passed=$(q "select count(*) from units where result = 'PASS'")
if [ "$rc" -ne 0 ] || [ "$passed" -ne "$N" ]; then
	tail -n 30 "$WORK/run.out" >&2
	die "units: $passed of $N units passed (espline run exit $rc)"
fi
for ((k = 0; k < N; k++)); do
	flash_equals "$WORK/flash/dev$k.bin" "$img" 0 4 || die "units: device $k: the image is not in flash"
	flash_equals "$WORK/flash/dev$k.bin" "$init" $((4194304 - 0x4000)) ||
		die "units: device $k: the init data is not at 0x3FC000"
done

echo "| station | units | wall s | units / hour | mean s / unit | worst s / unit |"
echo "|--|--:|--:|--:|--:|--:|"
kind=blank; [ -z "${UNITS_DIRTY:-}" ] || kind="used ($UNITS_DIRTY of the sectors dirty)"
[ -z "${UNITS_FLASH_BAUD:-}" ] || kind="$kind, --flash-baud $UNITS_FLASH_BAUD"
q "select avg(duration_ms) / 1000.0, max(duration_ms) / 1000.0 from units" | awk -v n="$N" -v w="$wall" -v k="$kind" '{
	printf "| %d ports, recipes/nodemcu-4mb.yaml, 4 MB %s modules | %d | %.1f | %.0f | %.1f | %.1f |\n", n, k, n, w, n / w * 3600, $1, $2
}'
echo
echo "Operator handling time (swapping the modules) is not included."
echo
echo "Time per unit by step (mean over the $N units, from the database):"
echo
echo "| step | mean s | share of the unit |"
echo "|--|--:|--:|"
unit_ms=$(q "select avg(duration_ms) from units")
q "select kind, sum(duration_ms) * 1.0 / (select count(*) from units) from steps group by kind order by min(idx)" |
	awk -v u="$unit_ms" '{ s += $2; printf "| %s | %.2f | %.1f %% |\n", $1, $2 / 1000, 100 * $2 / u }
	END { printf "| connect + identify + checks (unit minus its steps) | %.2f | %.1f %% |\n| whole unit | %.2f | 100 %% |\n", (u - s) / 1000, 100 * (u - s) / u, u / 1000 }'
dry_run_note
