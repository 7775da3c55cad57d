#!/usr/bin/env bash
# count_passed.sh - what a lot's count means (README, "A batch"):
# `--count N` ends the batch after N units, PASS or FAIL; `--count-passed N`
# ends it after N units PASSED, a failed unit's place going to the next.
# Simulated adapters on RFC 2217: device 0 holds an ESP32 (it fails at
# once, and stays in its jig), the others good modules.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir count-passed
TAP_SHOW=("$T/out")

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
units() { sqlite3 "$T/$1.sqlite" "select count(*) from units where result = '$2';"; }
# lot NAME DEVICES ARGS...: a batch on DEVICES simulated adapters
lot() {
	local name=$1 devices=$2
	shift 2
	sim_start "$name" --devices "$devices" --link rfc2217 --time-scale 0 --dev 0:fault=wrong-chip || exit 1
	mapfile -t ports < <(sim_ports_args "$name" "$devices")
	tap_run 30 "$E" run recipes/nodemcu-4mb.yaml --batch "lot-$name" "$@" --json --db "$T/$name.sqlite" "${ports[@]}"
	sim_stop "$name"
	cp "$T/out" "$T/$name.jsonl"
}

lot count 3 --count 2
check "--count 2: the batch ends after 2 units, PASS or FAIL (exit $rc)" \
	[ $(( $(units count PASS) + $(units count FAIL) )) -eq 2 ]
check "... and its started event says the count is of units" \
	grep -q '"event":"started".*"count":2,"count_passed":false' "$T/count.jsonl"

lot passed 3 --count-passed 2
check "--count-passed 2: the batch ends on its own with 2 PASS units ($(units passed FAIL) FAIL)" \
	eval '[ "$(units passed PASS)" -eq 2 ] && [ "$(units passed FAIL)" -le 1 ]'
check "... and its started event says the count is of passed units" \
	grep -q '"event":"started".*"count":2,"count_passed":true' "$T/passed.jsonl"

# Two adapters, both units programmed at once: the ESP32's FAIL leaves the
# lot one short, so the batch waits for another unit until it is stopped.
sim_start short --devices 2 --link rfc2217 --time-scale 0 --dev 0:fault=wrong-chip || exit 1
mapfile -t ports < <(sim_ports_args short 2)
"$E" run recipes/nodemcu-4mb.yaml --batch lot-short --count-passed 2 --json --db "$T/short.sqlite" \
	"${ports[@]}" >"$T/short.jsonl" 2>&1 &
pid=$!
for _ in $(seq 200); do
	[ "$(grep -c '"event":"unit_done"' "$T/short.jsonl")" -ge 2 ] && break
	sleep 0.1
done
sleep 1
kill -0 "$pid" 2>/dev/null
alive=$?
kill -INT "$pid" 2>/dev/null
wait "$pid"
sim_stop short
LOG=$T/short.jsonl
check "--count-passed 2 with 1 PASS and 1 FAIL: the batch is still open, waiting for a unit" [ "$alive" -eq 0 ]
check "... and after the stop: 1 PASS, the ESP32 recorded once" \
	eval '[ "$(units short PASS)" -eq 1 ] && [ "$(units short FAIL)" -eq 1 ]'

tap_run 10 "$E" run recipes/nodemcu-4mb.yaml --batch x --count 2 --count-passed 2 --port /dev/null
check "--count and --count-passed exclude each other (exit 2)" eval '[ $rc -eq 2 ] && has "one of --count"'
tap_done
