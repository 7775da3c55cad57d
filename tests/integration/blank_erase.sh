#!/usr/bin/env bash
# blank_erase.sh - `erase: chip` hashes each 64 KiB block on the chip and
# erases only those that are not blank (issue 17).  The guarantee must be
# the one of a real chip erase: two used modules with the same dirty sectors
# at random places, one programmed by the recipe alone, the other erased with
# `espline erase` (ERASE_FLASH) first, must end with byte-identical flash.
# Also: a blank module erases nothing, a mostly dirty one gets a chip erase,
# and the record's erase step says how much was erased.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir blank-erase
TAP_SHOW=("$T/out")
run() { tap_run 180 "$E" "$@" --db "$T/units.sqlite"; }
erased_bytes() { # the erase step's bytes of the last unit recorded
	sqlite3 "$T/units.sqlite" "select s.bytes from steps s join units u on u.id = s.unit_id
		where s.kind = 'erase' order by u.id desc limit 1"
}

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"
cat >"$T/r/unit.yaml" <<'YAML'
recipe: blank-erase
chip: esp8266
connect: { reset: none, flash_baud: 921600 }
flash: { size: detect, mode: dio, freq: 40m }
steps:
  - erase: chip
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - write_init_data: { file: images/esp_init_data_demo.bin }
  - verify: md5
  - reset: stay
YAML

# Random dirty sectors (seeded by $RANDOM, printed for a replay), plus the
# edges: the first and last sector, one just past the image, one in the
# system area.  Both devices get the same places (their bytes differ).
img=$(stat -c %s recipes/images/nodemcu-demo.bin)
size=$((2 << 20))
places="0x0+$(printf 0x%x $(((size - 4096))))+$(printf 0x%x $(((img + 4095) / 4096 * 4096)))+0x1FB000"
for _ in 1 2 3 4 5 6; do places+="+$(printf 0x%x $(((RANDOM * 32768 + RANDOM) % (size / 4096) * 4096)))"; done
tap_note "dirty sectors: $places"
sim_start used --time-scale 0 --flash 2MB --devices 2 --dirty "$places"
p0=$(sim_port used 0) p1=$(sim_port used 1)

run run "$T/r/unit.yaml" --port "$p0"
check "a used module passes with the blank-check erase" [ "$rc" -eq 0 ]
erased0=$(erased_bytes)
tap_run 120 "$E" erase "$p1" --reset none --after stay
check "espline erase (a real chip erase) on its twin passes" [ "$rc" -eq 0 ]
# the twin's stub is left running at the flash rate: power-cycle it (the
# flash files persist across a restart of the simulator)
sim_stop used
sim_start used --time-scale 0 --flash 2MB --devices 2
p1=$(sim_port used 1)
run run "$T/r/unit.yaml" --port "$p1"
check "the twin then passes the same recipe" [ "$rc" -eq 0 ]
erased1=$(erased_bytes)
sim_stop used
check "both flashes are byte-identical" cmp "$(sim_flash used 0)" "$(sim_flash used 1)"
expected_flash 2MB "$T/expected.bin"
check "and hold exactly the image, the init data and 0xFF" cmp "$(sim_flash used 0)" "$T/expected.bin"

# Blocks the image covers entirely are not hashed or erased; every other
# block with a dirty sector is erased once.
want=$(tr '+' '\n' <<<"$places" | while read -r a; do
	b=$((a / 65536)); [ $(((b + 1) * 65536)) -le "$img" ] || echo "$b"; done | sort -un | wc -l)
check_eq "the record: the erase step erased the dirty blocks only" "$erased0" $((want * 65536))
check_eq "the twin, erased before: nothing left to erase" "$erased1" 0

sim_start mostly --time-scale 0 --flash 2MB --dirty 70%
run run "$T/r/unit.yaml" --port "$(sim_port mostly)"
check "a mostly dirty module passes" [ "$rc" -eq 0 ]
sim_stop mostly
check_eq "it got a chip erase (the whole flash recorded as erased)" "$(erased_bytes)" "$size"
check "and holds exactly the image, the init data and 0xFF" cmp "$(sim_flash mostly 0)" "$T/expected.bin"

sim_start blank --time-scale 0 --flash 2MB
run run "$T/r/unit.yaml" --port "$(sim_port blank)"
check "a blank module passes" [ "$rc" -eq 0 ]
check_eq "and nothing was erased" "$(erased_bytes)" 0
sim_stop blank
tap_done
