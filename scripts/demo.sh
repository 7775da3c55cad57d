#!/usr/bin/env bash
# demo.sh - the main job on simulated devices: `make demo` runs this after
# installing the dependencies and building.
#
# Starts espline-sim with 8 simulated ESP8266 modules behind RFC 2217 ports
# (4, 8 and 16 MB parts, one 1 MB part the recipe refuses, one whose flash
# has a sector stuck at 1 bits: the write goes through and the MD5 verify
# fails, one whose flash part cannot do the recipe's DIO mode, so it
# verifies but does not boot), programs them all as one batch
# with recipes/nodemcu-4mb.yaml, records every unit in db/espline.sqlite,
# stops the simulator and shows how to ask the database about it.
#
#   scripts/demo.sh            (env: BUILD=build, TIME_SCALE=0.3, ESPLINE_DB)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
E=$BUILD/espline
SIM=$BUILD/espline-sim
DB=${ESPLINE_DB:-db/espline.sqlite}
# 0.3: a 4 MB unit takes about 4 s, the 16 MB one about 11 s (real: 14 s / 40 s)
TIME_SCALE=${TIME_SCALE:-0.3}
BATCH=demo-$(date -u +%Y%m%d-%H%M%S)

for f in "$E" "$SIM"; do
	[ -x "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }
done
BUILD=$BUILD scripts/make-demo-images.sh >/dev/null

work=$(mktemp -d /tmp/espline-demo.XXXXXX)
sim_pid=
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "demo: starting 8 simulated ESP8266 modules (espline-sim, RFC 2217, time scale $TIME_SCALE)"
"$SIM" --devices 8 --link rfc2217 --time-scale "$TIME_SCALE" --exit-after-idle 120 \
	--dev 2:flash=16MB --dev 6:flash=8MB \
	--dev 5:flash=1MB \
	--dev 4:fault=stuck@0x21000 \
	--dev 7:modes=dout \
	--ready-file "$work/ready" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] && cp "$work/ready" "$work/devices" || { echo "demo: the simulator did not start:" >&2; cat "$work/sim.err" >&2; exit 1; }
sed 's/^/  /' "$work/devices"
echo "  (device 5 has 1 MB of flash: the recipe needs 4 MB and refuses it;"
echo "   device 4 has a flash sector stuck at 1 bits: its verify fails;"
echo "   device 7's flash part can only do DOUT: it verifies by MD5, but does not boot)"
echo

ports=()
while read -r _ _ port _; do ports+=(--port "$port"); done <"$work/devices"

set +e
"$E" run recipes/nodemcu-4mb.yaml --batch "$BATCH" --count 8 --operator demo --db "$DB" "${ports[@]}"
rc=$?
set -e
kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
sim_pid=

# 1 = some unit failed, which this demo arranges on purpose
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
	echo "demo: espline run ended with exit code $rc" >&2
	exit "$rc"
fi
mac=$(awk 'NR == 1 { for (i = 4; i <= NF; i++) if ($i ~ /^mac=/) print substr($i, 5) }' "$work/devices")
mac7=$(awk '$2 == 7 { for (i = 4; i <= NF; i++) if ($i ~ /^mac=/) print substr($i, 5) }' "$work/devices")
cat <<EOF

demo: done.  Every unit is recorded in $DB.  Ask it:

  $E report --batch $BATCH --db $DB       # yield, failures by reason, per-port yield
  $E history $mac --db $DB       # every time this MAC was programmed
  $E history $mac7 --db $DB       # the unit that verified but did not boot, with its boot log
  $E export --format csv --batch $BATCH --db $DB > units.csv
  $E db verify --db $DB                   # walk the tamper-evident hash chain
  sqlite3 $DB "select mac, port, result, error_kind from units order by id desc limit 8"
EOF
