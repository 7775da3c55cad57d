#!/usr/bin/env bash
# baud_ladder.sh - connect.flash_baud as a ladder (issue 17).  The simulated
# adapter runs at most 2 Mbaud (above it every byte is noise) and 2 Mbaud
# itself is marginal (one byte in 5000 has a bit flipped, seeded).  With the
# ladder [3000000, 2000000, 1500000, 921600]:
#   - the first unit's switch to 3 Mbaud fails: the chip is reset and the
#     stub climbs to 2 Mbaud instead; the write's blocks then arrive
#     corrupted, so the write steps down to 1.5 Mbaud and goes on with the
#     same block (no new reset, no second attempt of the step); the unit
#     passes and the flash holds the image;
#   - the database remembers 1.5 Mbaud for the adapter, and the second unit
#     on it starts there: no 3 or 2 Mbaud, no reset beyond its own, no
#     step-down.
# TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir baud-ladder
TAP_SHOW=("$T/out")

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"
cat >"$T/r/unit.yaml" <<'YAML'
recipe: baud-ladder
chip: esp8266
connect: { reset: auto, flash_baud: [3000000, 2000000, 1500000, 921600] }
flash: { size: keep }
steps:
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - verify: md5
  - reset: stay
YAML

"$E" recipe show "$T/r/unit.yaml" >"$T/out" 2>&1
check "recipe show prints the ladder" has "flash_baud: [3000000, 2000000, 1500000, 921600]"
check "and the ROM rate it implies (the ladder's last)" has "baud: 921600"

sim_start ladder -v --link rfc2217 --time-scale 0 --adapter-max-baud 2000000 --marginal 1500000:2e-4
port=$(sim_port ladder)
run() { tap_run 60 "$E" run "$T/r/unit.yaml" --port "$port" --db "$T/units.sqlite" --json; }
# the simulator's log lines since the last mark
mark() { mark_at=$(wc -l <"$T/ladder.log"); }
since_mark() { tail -n +"$((mark_at + 1))" "$T/ladder.log"; }

mark
run
check "the first unit passes" [ "$rc" -eq 0 ]
check "its stub tried 3 Mbaud (above the adapter's maximum)" grep -q 'chip baud .* -> 3000000' <(since_mark)
check "stepped down to 1.5 Mbaud during the write" has "stepping down to 1500000 baud"
check "and went on: the step was not attempted again" bash -c "! grep -q 'attempt 1 failed' '$T/out'"
check_eq "two resets: the connect, and the one after 3 Mbaud failed" \
	"$(since_mark | grep -c 'boot (download mode)')" 2
check_eq "the database remembers 1.5 Mbaud for the adapter" \
	"$(sqlite3 "$T/units.sqlite" "select adapter, baud from adapter_rates")" "$port|1500000"

mark
run
check "the second unit passes" [ "$rc" -eq 0 ]
check "its stub went straight to 1.5 Mbaud" grep -q 'chip baud 921600 -> 1500000' <(since_mark)
check "and never tried 3 or 2 Mbaud" bash -c "! grep -qE 'chip baud .* -> (3000000|2000000)' <(tail -n +$((mark_at + 1)) '$T/ladder.log')"
check_eq "one reset only" "$(since_mark | grep -c 'boot (download mode)')" 1
check "no step-down" bash -c "! grep -q 'stepping down' '$T/out'"
sim_stop ladder
img=$T/r/images/nodemcu-demo.bin
check "the flash holds the image" cmp <(bytes "$(stat -c %s "$img")" 0 "$(sim_flash ladder 0)") "$img"
tap_done
