#!/usr/bin/env bash
# device.sh - how fast one module is programmed, on the simulator at real
# speed, as one Markdown table (stdout; progress on stderr).
#
# For each image size and flash baud rate (a row), one espline-sim with four
# identical 4 MB devices on pseudo-terminals (no reset lines: a jig holding
# GPIO0 low), used one after the other, never concurrently:
#   dev0  `espline write --verify` (connect, stub upload, baud switch, write
#         compressed at 0x0, MD5 on the chip), timed around the process
#   dev1  esptool-js, Espressif's client under Node (bench/device_bench.mjs:
#         main() + writeFlash + MD5 check), timed inside Node from opening the
#         port to "Hash of data verified" (Node's start-up not counted)
#   dev2  `espline run` with a generated recipe: write (skip_unchanged: false)
#         + verify: md5, timed around the process (database included)
#   dev3  the same recipe with skip_unchanged: true on a unit whose flash
#         already holds the image
#   dev4  the same as dev3 with connect.baud = the flash baud: the ROM syncs
#         there directly (it auto-bauds), so the stub goes up fast too; not
#         the sample recipes' default (some adapters cannot; see README)
# and afterwards every device's flash file must equal the image (cmp), and
# both `espline run` units must be PASS in their database: the script fails
# loudly otherwise.  The image is firmware-like (compresses to ~67 %, like a
# NodeMCU build; bench/device_bench.mjs `image`).
#
# Lower bound (as the issue defines it): compressed bytes x 10 bits / baud
# (wire) + the simulator's flash time (erase + page program, sim_flash.h).
# Floor: max(wire, flash) + the chip's MD5 time.  The simulated stub, like
# the real one, acknowledges a data block before programming it, so flash
# work overlaps the next block's transfer; the MD5 can only start after the
# last write.  No connect, stub upload or baud switch is counted, so no
# client can beat the floor; the wire + flash bound can be beaten by a
# client that keeps the pipe full.
# Targets (issue 9): espline <= 1.1 x bound and < esptool-js at every baud;
# skip_unchanged on an unchanged unit < 10 % of the full write.
#
#   bench/device.sh
# Environment: BUILD (default build), SIZES (default "1M 4M"), BAUDS (default
# "115200 460800 921600 2000000"), SLOW=1 to include 4 MB x 115200 (~4 min a run,
# ~13 min the row), QUICK=1 (SIZES=1M), TIME_SCALE (dry run only).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

[ "${QUICK:-0}" = 1 ] && SIZES=${SIZES:-1M}
SIZES=${SIZES:-1M 4M}
BAUDS=${BAUDS:-115200 460800 921600 2000000}
SLOW=${SLOW:-0}

bench_build
[ -d tests/interop/node_modules/esptool-js ] ||
	die "esptool-js is not installed (tests/interop/node_modules): run scripts/install-deps.sh"
command -v sqlite3 >/dev/null || die "sqlite3 (the command) is needed to read the run database"

WORK=$(mktemp -d /tmp/espline-bench-device.XXXXXX)
cleanup() { sim_stop; rm -rf "$WORK"; }
trap cleanup EXIT

bytes_of() {
	case $1 in
	*[Mm]) echo $((${1%[Mm]} * 1048576)) ;;
	*[Kk]) echo $((${1%[Kk]} * 1024)) ;;
	*) echo "$1" ;;
	esac
}

# recipe FILE IMAGE BAUD SKIP [ROM_BAUD]: a one-image recipe for a jig (no
# reset lines); without ROM_BAUD the ROM is synced at espline's default.
recipe() {
	cat >"$1" <<-YAML
		recipe: bench-$(basename "$2" .bin)-$3$([ "$4" = true ] && echo -skip)
		chip: esp8266
		connect: { reset: none, flash_baud: $3${5:+, baud: $5} }
		flash: { size: keep, mode: keep, freq: keep }
		steps:
		  - write: { file: $2, address: 0x0, skip_unchanged: $4 }
		    timeout: 600s
		  - verify: md5
		    timeout: 60s
		  - reset: stay
	YAML
}

# timed OUT LIMIT CMD...: run CMD (stdout+stderr to OUT) under a time limit;
# prints its wall seconds; fails loudly when it fails.
timed() {
	local out=$1 limit=$2
	shift 2
	local t0 rc=0
	t0=$(now)
	timeout "$limit" "$@" >"$out" 2>&1 || rc=$?
	local dt
	dt=$(calc "$(now) - $t0")
	if [ "$rc" -ne 0 ]; then
		tail -n 20 "$out" >&2
		die "failed (exit $rc after ${dt} s): $*"
	fi
	echo "$dt"
}

row() {
	local size=$1 baud=$2
	local d=$WORK/$size-$baud img=$WORK/fw-$size.bin
	mkdir -p "$d/flash"
	read -r bytes zbytes ratio <"$WORK/fw-$size.info"
	cp "$img" "$d/flash/dev3.bin"  # the units that already hold the image
	cp "$img" "$d/flash/dev4.bin"
	recipe "$d/full.yaml" "$img" "$baud" false
	recipe "$d/skip.yaml" "$img" "$baud" true
	recipe "$d/skipfast.yaml" "$img" "$baud" true "$baud"

	local wire flash md5 bound floor limit
	wire=$(calc "$zbytes * 10 / $baud * $TIME_SCALE")
	flash=$(flash_seconds "$bytes")
	md5=$(md5_seconds "$bytes")
	bound=$(calc "$wire + $flash")
	floor=$(calc "($wire > $flash ? $wire : $flash) + $md5")
	limit=$(awk -v b="$bound" 'BEGIN { printf "%d", 120 + 5 * b }')

	sim_start "$d" --devices 5 --flash 4MB --flash-dir "$d/flash"
	local p0 p1 p2 p3 p4
	p0=$(sim_port "$d" 0) p1=$(sim_port "$d" 1) p2=$(sim_port "$d" 2) p3=$(sim_port "$d" 3) p4=$(sim_port "$d" 4)

	log "$size at $baud: espline write ..."
	local t_e t_js t_full t_skip t_fast
	t_e=$(timed "$d/espline.out" "$limit" "$E" write -q --reset none --after stay \
		--flash-baud "$baud" --verify "$p0" 0 "$img")
	log "$size at $baud: esptool-js ..."
	timed "$d/js.out" "$limit" node bench/device_bench.mjs esptool-js "$p1" "$baud" "$img" >/dev/null
	t_js=$(awk '$1 == "esptool-js-seconds" { print $2 }' "$d/js.out")
	[ -n "$t_js" ] || die "esptool-js printed no time ($d/js.out)"
	log "$size at $baud: espline run, full write ..."
	t_full=$(timed "$d/full.out" "$limit" "$E" run "$d/full.yaml" --port "$p2" --db "$d/units.sqlite" --plain)
	log "$size at $baud: espline run, skip_unchanged on an unchanged unit ..."
	t_skip=$(timed "$d/skip.out" "$limit" "$E" run "$d/skip.yaml" --port "$p3" --db "$d/units.sqlite" --plain)
	log "$size at $baud: espline run, skip_unchanged, ROM synced at $baud ..."
	t_fast=$(timed "$d/skipfast.out" "$limit" "$E" run "$d/skipfast.yaml" --port "$p4" --db "$d/units.sqlite" --plain)
	sim_stop

	local k
	for k in 0 1 2 3 4; do
		flash_equals "$d/flash/dev$k.bin" "$img" ||
			die "$size at $baud: device $k's flash differs from the image (0 espline write, 1 esptool-js, 2 run, 3 run skip, 4 run skip fast ROM)"
	done
	local passed skip_bytes full_bytes connect
	passed=$(sqlite3 "$d/units.sqlite" "select count(*) from units where result = 'PASS'")
	[ "$passed" = 3 ] || die "$size at $baud: $passed of 3 espline run units passed ($d/full.out, $d/skip.out, $d/skipfast.out)"
	full_bytes=$(sqlite3 "$d/units.sqlite" "select s.bytes from steps s join units u on u.id = s.unit_id
		where s.kind = 'write' order by u.id limit 1")
	# the most a skip run wrote (both should write nothing)
	skip_bytes=$(sqlite3 "$d/units.sqlite" "select max(s.bytes) from steps s join units u on u.id = s.unit_id
		where s.kind = 'write' and u.id > (select min(id) from units)")
	# The full run's connect + identify (+ stub upload, baud switch): its unit
	# time minus its steps.
	connect=$(sqlite3 "$d/units.sqlite" "select (u.duration_ms - (select sum(duration_ms) from steps
		where unit_id = u.id)) / 1000.0 from units u order by u.id limit 1")

	awk -v sz="$size" -v by="$bytes" -v r="$ratio" -v baud="$baud" -v e="$t_e" -v js="$t_js" \
		-v w="$wire" -v f="$flash" -v b="$bound" -v fl="$floor" -v full="$t_full" -v skip="$t_skip" -v fast="$t_fast" \
		-v fb="$full_bytes" -v sb="$skip_bytes" -v c="$connect" -v tf="$WORK/targets" 'BEGIN {
		miss = ""
		if (e > 1.1 * b) miss = miss " bound"
		if (e >= js) miss = miss " esptool-js"
		if (skip >= 0.1 * full) miss = miss " skip" (fast < 0.1 * full ? " (met with the ROM at the flash baud)" : "")
		printf "| %g MB (%.1f %%) | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f | %.2f | %.3f | %d / %d KiB | %s |\n",
			by / 1048576, 100 * r, baud, e, js, w, f, b, fl, e / js, e / b, e / fl, full, c, skip, skip / full,
			fast, fast / full, sb / 1024, fb / 1024, miss == "" ? "met" : "missed:" miss
		print (miss == "" ? "met" : "missed") >>tf
	}'
}

# The images, once per size (seeded: identical every run).
for s in $SIZES; do
	n=$(bytes_of "$s")
	[ "$n" -gt 0 ] && [ "$n" -le 4194304 ] || die "SIZES: $s is not 1 byte .. 4M"
	node bench/device_bench.mjs image "$WORK/fw-$s.bin" "$n" 1 >"$WORK/fw-$s.info"
done

omitted=()
echo "| image (compressed) | baud | espline s | esptool-js s | wire s | flash s | bound s | floor s | espline / esptool-js | espline / bound | espline / floor | run full s | run connect s | run skip s | skip / full | run skip, fast ROM s | fast skip / full | skip wrote / full wrote | targets |"
echo "|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|"
for s in $SIZES; do
	for b in $BAUDS; do
		if [ "$SLOW" != 1 ] && [ "$(bytes_of "$s")" -gt 1048576 ] && [ "$b" -le 115200 ]; then
			omitted+=("$s x $b")
			continue
		fi
		row "$s" "$b"
	done
done
echo
echo "espline = \`espline write --verify\`; run full / run skip = \`espline run\` with write (skip_unchanged false / true) + verify: md5;"
echo "run skip, fast ROM = the same with connect.baud = the flash baud (the ROM auto-bauds on SYNC; the station falls back to 115200 if it does not answer);"
echo "run connect = the full run's unit time minus its steps (sync, identify, stub upload, baud switch; from its database);"
echo "bound = wire + flash; floor = max(wire, flash) + MD5 on the chip (no connect costs); targets: espline <= 1.1 x bound,"
echo "espline < esptool-js, run skip < 10 % of run full.  Every device's flash was compared with the image byte for byte."
echo "Targets met in $(grep -c '^met$' "$WORK/targets" || true) of $(wc -l <"$WORK/targets") rows."
[ ${#omitted[@]} -eq 0 ] || echo "Not run (SLOW=1 runs them, ~4 min per client): ${omitted[*]}."
dry_run_note
