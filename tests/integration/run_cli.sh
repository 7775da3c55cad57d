#!/usr/bin/env bash
# run_cli.sh - `espline run RECIPE --port PORT` against espline-sim: one unit
# programmed from a recipe and checked in the simulator's flash file, a unit
# refused by `expect`, a bad recipe and a missing port, each with its exit
# code.  The devices sit on pseudo-terminals (booted in download mode), so the
# recipes use reset: none.  TAP output.
set -u
cd "$(dirname "$0")/../.."
BUILD_DIR=${ESPLINE_BUILD:-$PWD/build}
E=$BUILD_DIR/espline
SIM=$BUILD_DIR/espline-sim
T=$(mktemp -d /tmp/espline-run-cli.XXXXXX)
SIM_PIDS=()
n=0 failed=0

cleanup() {
	for p in "${SIM_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${SIM_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -f "$T/out" ] && sed 's/^/#   /' "$T/out" | tail -n 15
}
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# every run records into a database of its own, never the tree's db/
run() { timeout 120 "$E" "$@" --db "$T/units.sqlite" >"$T/out" 2>&1; rc=$?; }
has() { grep -qF -- "$1" "$T/out"; }

# start_sim NAME ARGS...: one simulator, waits until it listens.
start_sim() {
	local name=$1; shift
	mkdir -p "$T/$name.flash"
	"$SIM" --time-scale 0 --exit-after-idle 300 --ready-file "$T/$name.ready" \
		--flash-dir "$T/$name.flash" "$@" >"$T/$name.log" 2>&1 &
	SIM_PIDS+=($!)
	eval "PID_$name=$!"
	for _ in $(seq 100); do [ -s "$T/$name.ready" ] && return 0; sleep 0.05; done
	echo "# simulator $name did not start:"; sed 's/^/#   /' "$T/$name.log"
	return 1
}
stop_sim() { local v="PID_$1"; kill "${!v}" 2>/dev/null; wait "${!v}" 2>/dev/null; }
port_of() { awk '$1 == "device" && $2 == 0 { print $3 }' "$T/$1.ready" | tail -n 1; }
bytes() { tail -c +"$(($2 + 1))" "$3" | head -c "$1"; }

BUILD=${BUILD_DIR#"$PWD"/} scripts/make-demo-images.sh >/dev/null || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"

cat >"$T/r/unit.yaml" <<'YAML'
recipe: run-cli
chip: esp8266
connect: { reset: none, flash_baud: 115200 }
flash: { size: detect, mode: dout, freq: 26m }
expect: { flash_size_min: 2MB, flash_manufacturer: [Winbond] }
steps:
  - erase: chip
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - write_init_data: { file: images/esp_init_data_demo.bin }
  - verify: md5
  - reset: stay
YAML

start_sim a --flash 2MB
run run "$T/r/unit.yaml" --port "$(port_of a)"
check "a good unit passes (exit 0)" [ "$rc" -eq 0 ]
check "it prints PASS with the MAC" has "PASS 5c:cf:7f:a0:00:00"
check "it prints every step" grep -qE "step 5/5 reset.* passed" "$T/out"
stop_sim a
f=$T/a.flash/dev0.bin
check "the header at 0x0 says dout, 2MB, 26m" [ "$(bytes 4 0 "$f" | od -An -tx1 | tr -d ' ')" = "e9030331" ]
check "the image follows the header unchanged" cmp -s <(bytes 262140 4 "$f") <(bytes 262140 4 recipes/images/nodemcu-demo.bin)
check "init data sits at 2MB - 0x4000" cmp -s <(bytes 128 $((0x1FC000)) "$f") recipes/images/esp_init_data_demo.bin

start_sim b --flash 1MB
run run "$T/r/unit.yaml" --port "$(port_of b)"
check "a 1MB unit fails expect (exit 1)" [ "$rc" -eq 1 ]
check "the reason names the rule and both sizes" has "expect: expect.flash_size_min (line 5): the unit has 1MB of flash, the recipe needs at least 2MB"

run run "$T/r/unit.yaml" --port /dev/does-not-exist
check "a missing port exits 3" [ "$rc" -eq 3 ]

printf 'recipe: x\nchip: esp8266\nsteps:\n  - wirte: {}\n' >"$T/r/bad.yaml"
run run "$T/r/bad.yaml" --port /dev/does-not-exist
check "a bad recipe exits 2 before touching a port" [ "$rc" -eq 2 ]
check "with file:line:col" has "$T/r/bad.yaml:4:5: error: unknown key 'wirte' in steps[1]; did you mean 'write'?"

run run "$T/r/unit.yaml" --port /dev/does-not-exist --frobnicate
check "an unknown option is a usage error (exit 2)" [ "$rc" -eq 2 ]

echo "1..$n"
[ "$failed" -eq 0 ]
