#!/usr/bin/env bash
# run_cli.sh - `espline run RECIPE --port PORT` against espline-sim: one unit
# programmed from a recipe and checked in the simulator's flash file, a unit
# refused by `expect`, a bad recipe and a missing port, each with its exit
# code.  The devices sit on pseudo-terminals (booted in download mode), so the
# recipes use reset: none.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir run-cli
TAP_SHOW=("$T/out")
# every run records into a database of its own, never the tree's db/
run() { tap_run 120 "$E" "$@" --db "$T/units.sqlite"; }

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
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

sim_start a --time-scale 0 --flash 2MB
run run "$T/r/unit.yaml" --port "$(sim_port a)"
check "a good unit passes (exit 0)" [ "$rc" -eq 0 ]
check "it prints PASS with the MAC" has "PASS 5c:cf:7f:a0:00:00"
check "it prints every step" grep -qE "step 5/5 reset.* passed" "$T/out"
sim_stop a
f=$T/a.flash/dev0.bin
check "the header at 0x0 says dout, 2MB, 26m" [ "$(bytes 4 0 "$f" | od -An -tx1 | tr -d ' ')" = "e9030331" ]
check "the image follows the header unchanged" cmp -s <(bytes 262140 4 "$f") <(bytes 262140 4 recipes/images/nodemcu-demo.bin)
check "init data sits at 2MB - 0x4000" cmp -s <(bytes 128 $((0x1FC000)) "$f") recipes/images/esp_init_data_demo.bin

sim_start b --time-scale 0 --flash 1MB
run run "$T/r/unit.yaml" --port "$(sim_port b)"
check "a 1MB unit fails expect (exit 1)" [ "$rc" -eq 1 ]
check "the reason names the rule and both sizes" has "expect: expect.flash_size_min (line 5): the unit has 1MB of flash, the recipe needs at least 2MB"

run run "$T/r/unit.yaml" --port /dev/does-not-exist
check "a missing port exits 3" [ "$rc" -eq 3 ]

printf 'recipe: x\nchip: esp8266\nsteps:\n  - wirte: {}\n' >"$T/r/bad.yaml"
run run "$T/r/bad.yaml" --port /dev/does-not-exist
check "a bad recipe exits 2 before touching a port" [ "$rc" -eq 2 ]
check "with file:line:col" has "$T/r/bad.yaml:4:5: error: unknown key 'wirte' in steps[1]; did you mean 'write'?"

# --stub FILE overrides the recipe's stub search; a wrong path is named.
sim_start s --time-scale 0 --flash 2MB
run run "$T/r/unit.yaml" --port "$(sim_port s)" --stub "$T/no-such-stub.json"
check "run --stub with a missing file fails before writing (exit 2)" [ "$rc" -eq 2 ]
check "and names the file" has "$T/no-such-stub.json"
cp third_party/stub/esp8266.json "$T/my-stub.json"
ESPLINE_STUB=$T/no-such-stub.json run run "$T/r/unit.yaml" --port "$(sim_port s)" --stub "$T/my-stub.json"
check "run --stub FILE is used instead of \$ESPLINE_STUB (exit 0)" [ "$rc" -eq 0 ]
sim_stop s

run run "$T/r/unit.yaml" --port /dev/does-not-exist --frobnicate
check "an unknown option is a usage error (exit 2)" [ "$rc" -eq 2 ]

# A ROM rate above 115200 (connect.baud): the ROM auto-bauds on SYNC, so the
# stub uploads 8x faster; a chip or adapter that cannot sync there
# (rom_max_baud) costs two rounds, then the loader falls back to 115200.
cat >"$T/r/fast.yaml" <<'YAML'
recipe: run-cli-fast
chip: esp8266
connect: { reset: none, baud: 921600, flash_baud: 921600 }
flash: { size: keep, mode: keep, freq: keep }
steps:
  - write: { file: images/nodemcu-demo.bin, address: 0x0, skip_unchanged: true }
  - verify: md5
  - reset: stay
YAML
img=recipes/images/nodemcu-demo.bin
last_bytes() { sqlite3 "$T/units.sqlite" "SELECT bytes || ' ' || result FROM steps WHERE idx = 0 ORDER BY unit_id DESC LIMIT 1"; }
write_fast() { timeout 60 "$E" write --reset none --after stay --baud 921600 --flash-baud 921600 --verify "$(sim_port "$1")" 0 "$img" >"$T/out" 2>&1; rc=$?; }

sim_start c --time-scale 0 --flash 4MB
run run "$T/r/fast.yaml" --port "$(sim_port c)"
check "connect.baud 921600: the unit passes" [ "$rc" -eq 0 ]
sim_stop c
check "and its flash holds the image" cmp -s <(bytes 262144 0 "$T/c.flash/dev0.bin") "$img"

sim_start c --time-scale 0 --flash 4MB
run run "$T/r/fast.yaml" --port "$(sim_port c)"
check "skip_unchanged on a unit that holds the image passes" [ "$rc" -eq 0 ]
check "and writes nothing (0 bytes, SKIPPED)" [ "$(last_bytes)" = "0 SKIPPED" ]
sim_stop c
# one sector of the unit differs: only the 16 KiB chunk holding it is written
printf '\x00%.0s' $(seq 4096) | dd of="$T/c.flash/dev0.bin" bs=4096 seek=$((0x21000 / 4096)) conv=notrunc status=none
sim_start c --time-scale 0 --flash 4MB
run run "$T/r/fast.yaml" --port "$(sim_port c)"
check "one sector differs: the unit passes" [ "$rc" -eq 0 ]
check "and only its 16 KiB chunk is written" [ "$(last_bytes)" = "16384 PASS" ]
sim_stop c
check "and the flash ends equal to the image" cmp -s <(bytes 262144 0 "$T/c.flash/dev0.bin") "$img"

sim_start f --time-scale 0 --flash 4MB --dev 0:rom_max_baud=115200
run run "$T/r/fast.yaml" --port "$(sim_port f)"
check "a ROM that will not sync at 921600 still passes (fallback)" [ "$rc" -eq 0 ]
check "and the station says the port's next units connect at 115200" has "did not answer at 921600 baud on this port; its next units connect at 115200"
sim_stop f
check "and its flash holds the image" cmp -s <(bytes 262144 0 "$T/f.flash/dev0.bin") "$img"
sim_start g --time-scale 0 --flash 4MB --dev 0:rom_max_baud=115200
write_fast g
check "espline write --baud 921600 falls back and says so" has "no answer from the ROM at 921600 baud within 250 ms; falling back to 115200 baud"
check "and then runs the stub at 921600 (exit 0)" grep -q "stub at 921600 baud" "$T/out"
sim_start h --time-scale 0 --flash 4MB
write_fast h
check "without rom_max_baud it syncs at 921600 (no fallback)" sh -c "[ $rc -eq 0 ] && ! grep -q 'falling back' '$T/out'"

tap_done
