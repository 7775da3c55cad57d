# shellcheck shell=bash
# lib.sh - helpers shared by the simulator benchmarks (device.sh, gang.sh,
# units.sh); sourced, never run.  It builds espline and the simulator, starts
# and stops espline-sim, reads the ports it announces, and models the time
# the simulated flash takes (from tests/sim/sim_flash.h, so the model follows
# the simulator if its timings change).
#
# Environment every bench script honours:
#   BUILD        build directory (default build, as `make bench` builds it)
#   TIME_SCALE   the simulator's --time-scale (default 1 = real speed).  Any
#                other value is a dry run of the script logic: the tables say
#                so, and their numbers are not results.
#   NO_BUILD=1   use the binaries in BUILD as they are (no make)
# The caller sets `set -euo pipefail`, `cd` to the top of the tree, and
# defines WORK (a scratch folder it removes).

BUILD=${BUILD:-build}
TIME_SCALE=${TIME_SCALE:-1}
E=$BUILD/espline
SIM=$BUILD/espline-sim
SIM_PID=

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# is_real: 0 when the simulator runs at real speed (the numbers are results).
is_real() { awk -v s="$TIME_SCALE" 'BEGIN { exit !(s == 1) }'; }

bench_build() {
	if [ "${NO_BUILD:-0}" = 1 ]; then
		[ -x "$E" ] && [ -x "$SIM" ] || die "NO_BUILD=1 but $E or $SIM is missing"
		return 0
	fi
	make --no-print-directory -s BUILD="$BUILD" "$E" "$SIM" >&2 ||
		die "cannot build $E and $SIM (BUILD=$BUILD)"
}

# sim_start DIR ARGS...: start espline-sim with ARGS, its ready file in DIR;
# returns once every device listens (fails loudly otherwise).
sim_start() {
	local dir=$1
	shift
	rm -f "$dir/ready"
	"$SIM" --time-scale "$TIME_SCALE" --exit-after-idle 600 --ready-file "$dir/ready" "$@" \
		>"$dir/sim.out" 2>"$dir/sim.err" &
	SIM_PID=$!
	local _
	for _ in $(seq 200); do
		[ -s "$dir/ready" ] && return 0
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$dir/sim.err" >&2
	die "espline-sim did not start ($*)"
}

# sim_stop: SIGTERM; the simulator saves every flash file before it exits.
sim_stop() {
	[ -n "$SIM_PID" ] || return 0
	kill "$SIM_PID" 2>/dev/null || true
	wait "$SIM_PID" 2>/dev/null || true
	SIM_PID=
}

# sim_port DIR K: the port device K announced.
sim_port() { awk -v k="$2" '$1 == "device" && $2 == k { print $3 }' "$1/ready" | tail -n 1; }

# flash_equals FLASHFILE IMAGE [OFFSET [SKIP]]: the flash holds IMAGE at byte
# OFFSET (default 0), ignoring IMAGE's first SKIP bytes (a patched header).
flash_equals() {
	local flash=$1 img=$2 off=${3:-0} skip=${4:-0}
	local n
	n=$(stat -c %s "$img")
	[ -f "$flash" ] || return 1
	cmp -s <(tail -c +$((off + skip + 1)) "$flash" | head -c $((n - skip))) <(tail -c +$((skip + 1)) "$img")
}

# The simulated part's typical timings, in microseconds.
sim_flash_us() {
	awk -v n="$1" '$1 == "#define" && $2 == n { gsub(/u/, "", $3); print $3 }' tests/sim/sim_flash.h
}

# flash_seconds BYTES: erase + program time of BYTES written at 0x0 as the
# simulated stub does it (64 KiB block erases where it can, 4 KiB sector
# erases for the tail, 256-byte pages), at TIME_SCALE.
flash_seconds() {
	local bytes=$1 page block sector
	page=$(sim_flash_us SIM_FLASH_PAGE_PROGRAM_US)
	block=$(sim_flash_us SIM_FLASH_BLOCK_ERASE_US)
	sector=$(sim_flash_us SIM_FLASH_SECTOR_ERASE_US)
	[ -n "$page" ] && [ -n "$block" ] && [ -n "$sector" ] || die "cannot read the flash timings in tests/sim/sim_flash.h"
	calc "($((bytes / 65536)) * $block + $(((bytes % 65536 + 4095) / 4096)) * $sector + $(((bytes + 255) / 256)) * $page) / 1000000 * $TIME_SCALE"
}

# md5_seconds BYTES: the simulated stub's SPI_FLASH_MD5 time (1 us per 4
# bytes, tests/sim/sim_stub.c), at TIME_SCALE.
md5_seconds() {
	local per4
	per4=$(awk '$1 == "#define" && $2 == "MD5_US_PER_4_BYTES" { gsub(/u/, "", $3); print $3 }' tests/sim/sim_stub.c)
	[ -n "$per4" ] || die "cannot read MD5_US_PER_4_BYTES in tests/sim/sim_stub.c"
	calc "$1 / 4 * $per4 / 1000000 * $TIME_SCALE"
}

# dry_run_note: a loud line under a table measured at another time scale.
dry_run_note() {
	is_real || printf '\n**DRY RUN: simulator at --time-scale %s; these numbers are NOT results.**\n' "$TIME_SCALE"
}

# gang_recipe DIR [BAUD]: DIR/bench.yaml writes DIR/images/bench-1mb.bin (1 MB
# of incompressible bytes, deterministic, so deflate cannot shorten the wire
# time: the worst case for a gang) at BAUD (default 921600), verifies it by
# MD5 and resets the module (gang.sh, web.sh).
gang_recipe() {
	local dir=$1 baud=${2:-921600}
	mkdir -p "$dir/images"
	openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0 -nosalt \
		-in <(head -c 1048576 /dev/zero) -out "$dir/images/bench-1mb.bin" 2>/dev/null
	cat >"$dir/bench.yaml" <<YAML
recipe: bench-1mb
chip: esp8266
connect: { reset: auto, flash_baud: $baud }
flash: { size: keep, mode: keep, freq: keep }
steps:
  - write: { file: images/bench-1mb.bin, address: 0x0 }
  - verify: md5
  - reset: run
YAML
}
