#!/usr/bin/env bash
# stub_choice.sh - a recipe's connect.stub and --stub choose the flasher stub
# generation: "legacy" uploads the legacy stub and "esp-flasher-stub" the new
# one (espline-sim recognises each by its hash and logs which it plays), and
# a unit passes with either.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir stub-choice
TAP_SHOW=("$T/out")
run() { tap_run 120 "$E" "$@" --db "$T/units.sqlite"; }

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"
for gen in legacy esp-flasher-stub; do
	cat >"$T/r/$gen.yaml" <<YAML
recipe: stub-$gen
chip: esp8266
connect: { reset: none, flash_baud: 115200, stub: $gen }
steps:
  - erase: chip
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - verify: md5
  - reset: stay
YAML
done

sim_start a --time-scale 0 --devices 3
run run "$T/r/legacy.yaml" --port "$(sim_dev_port a 0)"
check "connect: { stub: legacy }: the unit passes (exit 0)" [ "$rc" -eq 0 ]
run run "$T/r/esp-flasher-stub.yaml" --port "$(sim_dev_port a 1)"
check "connect: { stub: esp-flasher-stub }: the unit passes (exit 0)" [ "$rc" -eq 0 ]
run run "$T/r/esp-flasher-stub.yaml" --port "$(sim_dev_port a 2)" --stub legacy
check "--stub legacy overrides the recipe (exit 0)" [ "$rc" -eq 0 ]
sim_stop a
check "device 0 ran the legacy stub" grep -q "dev 0: stub: legacy stub of esptool v4.5" "$T/a.log"
check "device 1 ran esp-flasher-stub" grep -q "dev 1: stub: esp-flasher-stub" "$T/a.log"
check "device 2 ran the legacy stub" grep -q "dev 2: stub: legacy stub of esptool v4.5" "$T/a.log"

out=$("$E" recipe show "$T/r/legacy.yaml" 2>&1)
check "recipe show prints stub: legacy" grep -q "^  stub: legacy$" <<<"$out"
tap_done
