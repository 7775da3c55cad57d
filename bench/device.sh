#!/usr/bin/env bash
# device.sh - how fast one module is programmed: a 1 MB firmware-like image
# (compresses to ~67 %, like a NodeMCU build) written at 0x0 with MD5
# verification, on one simulated ESP8266 at real speed (--time-scale 1),
# flash baud 921600.  Compares, in the same run and on identical devices:
#   espline   `espline write --verify` (connect, stub, baud switch included)
#   esptool-js  Espressif's client under Node (main() + writeFlash + MD5)
#   lower bound  compressed bytes on the wire at that baud (10 bits a byte)
#                + the simulator's flash time (block erases + page programs)
# Targets (issue 4): espline <= 0.9 x esptool-js and <= 1.2 x lower bound.
#
#   bench/device.sh            (BAUD=921600 SIZE=1048576 BUILD=build/bench)
# Not part of `make test`: it takes about half a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/bench}
BAUD=${BAUD:-921600}
SIZE=${SIZE:-1048576}
make --no-print-directory -s BUILD="$BUILD" "$BUILD/espline" "$BUILD/espline-sim"
[ -d tests/interop/node_modules/esptool-js ] || scripts/install-deps.sh

T=$(mktemp -d /tmp/espline-bench.XXXXXX)
SIM_PID=
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

read -r bytes zbytes ratio < <(node bench/device_bench.mjs image "$T/fw.bin" "$SIZE" 1)
"$BUILD/espline-sim" --devices 2 --time-scale 1 --flash 4MB --ready-file "$T/ready" \
	--flash-dir "$T/flash" >"$T/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.05; done
port() { awk -v k="$1" '$1 == "device" && $2 == k { print $3 }' "$T/ready" | tail -n 1; }

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
t0=$(now)
"$BUILD/espline" write -q --reset none --after stay --flash-baud "$BAUD" --verify "$(port 0)" 0 "$T/fw.bin"
t_espline=$(calc "$(now) - $t0")
t_js=$(node bench/device_bench.mjs esptool-js "$(port 1)" "$BAUD" "$T/fw.bin" | awk '$1 == "esptool-js-seconds" { print $2 }')
[ -n "$t_js" ] || { echo "esptool-js did not finish" >&2; exit 1; }
cmp -s <(head -c "$bytes" "$T/flash/dev0.bin") "$T/fw.bin" || { echo "espline: flash differs from the image" >&2; exit 1; }

# Flash time as the simulator models it (tests/sim/sim_flash.h): the stub
# erases 64 KiB blocks where it can, 4 KiB sectors elsewhere, and programs
# 256-byte pages.
us() { awk -v n="$1" '$1 == "#define" && $2 == n { gsub(/u/, "", $3); print $3 }' tests/sim/sim_flash.h; }
page_us=$(us SIM_FLASH_PAGE_PROGRAM_US) block_us=$(us SIM_FLASH_BLOCK_ERASE_US) sector_us=$(us SIM_FLASH_SECTOR_ERASE_US)
blocks=$((bytes / 65536)) sectors=$(((bytes % 65536 + 4095) / 4096)) pages=$(((bytes + 255) / 256))
flash_s=$(calc "($blocks * $block_us + $sectors * $sector_us + $pages * $page_us) / 1000000")
wire_s=$(calc "$zbytes * 10 / $BAUD")
bound=$(calc "$wire_s + $flash_s")

printf 'image        %d bytes, %d compressed (%.1f %%), at 0x0, verify by MD5, %d baud\n' \
	"$bytes" "$zbytes" "$(calc "$ratio * 100")" "$BAUD"
printf 'espline      %6.2f s\n' "$t_espline"
printf 'esptool-js   %6.2f s\n' "$t_js"
printf 'lower bound  %6.2f s  (wire %.2f s + flash %.2f s)\n' "$bound" "$wire_s" "$flash_s"
printf 'espline / esptool-js  = %.2f  (target <= 0.9)\n' "$(calc "$t_espline / $t_js")"
printf 'espline / lower bound = %.2f  (target <= 1.2)\n' "$(calc "$t_espline / $bound")"
