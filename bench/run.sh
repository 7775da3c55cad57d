#!/usr/bin/env bash
# run.sh - every benchmark, one after the other (`make bench`), printed as
# one Markdown document (bench/RESULTS.md is this output) on stdout;
# progress on stderr.
#
#   bench/run.sh [--write FILE] [device] [gang] [units] [db] [central] [web]
#
# Default: all six, about 20 minutes on 2 cores (device ~10 min, gang ~1.5,
# units ~0.5, db ~4, central ~1, web ~3).  Run it on a quiet machine: the simulator
# and the clients share the cores, so other load shows up in the numbers.
# --write FILE also writes the document to FILE, replacing it only when every
# benchmark succeeded.
# Sections not run print the numbers kept from the previous results (the
# --write FILE, else bench/RESULTS.md), saying which run they come from.
#
#   device   bench/device.sh  one module: espline vs esptool-js vs lower bound,
#                             per image size and baud, + skip_unchanged
#   gang     bench/gang.sh    1, 4, 8, 16 modules at once
#   units    bench/units.sh   units per hour of a 16-port station
#   db       bench/db.sh      the traceability database at 1,000,000 units
#   central  bench/central.sh replication to PostgreSQL
#   boot     bench/boot.sh    what boot_check costs beyond the firmware's boot
#   unitdata bench/unitdata.sh what a serial, a CSV row and write_unit_data cost per unit
#   web      bench/web.sh     the gang with --http and 20 SSE clients vs without
#   stubs    bench/stubs.sh   the legacy stub vs esp-flasher-stub on one module
#
# Environment: BUILD (default build), TIME_SCALE (default 1; anything else is
# a dry run of the scripts, every table says so), NO_BUILD=1 (use the binaries
# in BUILD as they are), device: SIZES ("1M 4M"),
# BAUDS ("115200 460800 921600 2000000"), QUICK=1 (1 MB only), SLOW=1 (adds
# 4 MB x 115200, ~13 min more); units: UNITS_DEVICES (16); db: DB_UNITS
# (1000000, at least 100000); central: CENTRAL_UNITS (20000 per station);
# web: PAIRS (5).
set -euo pipefail
cd "$(dirname "$0")"
out=
benches=()
while [ $# -gt 0 ]; do
	case $1 in
	--write) [ $# -ge 2 ] || { echo "bench: --write needs a file" >&2; exit 2; }; out=$2; shift 2 ;;
	device | gang | units | db | central | web | stubs | boot | unitdata) benches+=("$1"); shift ;;
	*) echo "bench: unknown benchmark or option: $1 (device, gang, units, db, central, web, stubs, boot, unitdata, --write FILE)" >&2; exit 2 ;;
	esac
done
[ ${#benches[@]} -gt 0 ] || benches=(device gang units db central web stubs boot unitdata)
[ -z "$out" ] || case $out in /*) ;; *) out=$OLDPWD/$out ;; esac  # relative to the caller's folder
export BUILD=${BUILD:-build} TIME_SCALE=${TIME_SCALE:-1}

wants() { local b; for b in "${benches[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

device_section() {
	echo "Simulated ESP8266 at real speed (\`espline-sim --time-scale 1\`, 4 MB flash, pseudo-terminal,"
	echo "no reset lines), a firmware-like image (compresses to ~67 % like a NodeMCU build) written at"
	echo "0x0, compressed, verified by MD5 on the chip; connect, stub upload and baud switch included."
	echo "For each row the four clients run one after the other on identical simulated devices."
	echo "esptool-js is timed inside Node (start-up excluded); espline around its process."
	echo
	./device.sh
}
gang_section() {
	echo "RFC 2217 links, one \`espline run\` batch per row writing the same 1 MB incompressible image"
	echo "at ${GANG_BAUD:-2000000} baud to every device, verified by MD5, then reset.  Wall, CPU (user + system) and"
	echo "peak RSS of the espline process from \`/usr/bin/time\`; the simulator runs on the same cores."
	echo "Targets (issue 6): 16 devices <= 1.15 x one device; CPU <= 5 % of a core per device;"
	echo "peak RSS <= 64 MB at 16 devices."
	echo
	./gang.sh
}
units_section() {
	echo "A 16-port station running the sample recipe \`recipes/nodemcu-4mb.yaml\` unchanged (erase chip,"
	echo "write the demo NodeMCU image and the SDK init data, verify by MD5, reset) on 16 simulated 4 MB"
	echo "modules over RFC 2217 with the NodeMCU auto-reset circuit, one batch of 16 units;"
	echo "units / hour = 16 / the batch's wall time.  Four batches: blank modules (as from the factory)"
	echo "and used ones (half of the 4 KiB sectors dirty), each with the recipe's flash_baud (460800) and"
	echo "with \`--flash-baud 2000000\`."
	echo
	./units.sh
	echo
	UNITS_DIRTY=50% ./units.sh
	echo
	UNITS_FLASH_BAUD=2000000 ./units.sh
	echo
	UNITS_DIRTY=50% UNITS_FLASH_BAUD=2000000 ./units.sh
}
db_section() {
	echo '```text'
	./db.sh ${DB_UNITS:+"$DB_UNITS"}
	echo '```'
}
web_section() {
	echo "The gang benchmark's batch (16 simulated modules, 1 MB at 921600 baud, verified, reset; real"
	echo "speed) without a web server, and with \`--http 127.0.0.1:0\` and 20 Server-Sent Events clients"
	echo "(\`bench/sse_clients.py\`: 19 read everything, one has a 4 KB receive buffer and never reads)."
	echo "Paired runs, alternating which goes first; wall time of the espline process."
	echo "Target (issue 18): the median web / plain ratio at most 1.02."
	echo
	./web.sh
}
stubs_section() {
	echo "Both flasher stub generations on the same simulated module at real speed: \`espline write"
	echo "--verify\` of a 1 MB firmware-like image on a blank 4 MB module, pseudo-terminal, ROM at"
	echo "115200, stub at 460800, wall time of the espline process, the two alternating."
	echo
	./stubs.sh
}
boot_section() {
	echo "The \`boot_check\` step's cost beyond the firmware's own boot (issue 15: at most the firmware's"
	echo "boot time + 100 ms).  One simulated 4 MB ESP8266 at real speed (26 MHz crystal: ROM log at"
	echo "74880 baud, NodeMCU's banner at 115200 about 250 ms after loading) over RFC 2217, holding the"
	echo "demo image and its init data.  Each round: *bare boot* = the least a host can do, a DTR/RTS"
	echo "reset (100 ms EN pulse), reading the ROM log at 74880 up to its csum line, then at once at 115200"
	echo "until the banner line ends; *boot_check* = \`espl_boot_check\` (reset, ROM log at 74880, rate switch after 60 ms"
	echo "of quiet, banner at 115200, judgement, 50 ms settle).  Overhead = boot_check - bare boot."
	echo
	./boot.sh 20
}
unitdata_section() {
	echo "What per-unit data costs (issue 16: at most 0.2 s per unit at 921600): the same recipe with and"
	echo "without a serial from the database's counter, a CSV row (a PEM-sized secret cell) and a 4 KiB"
	echo "write_unit_data region, MD5-verified; 4 simulated modules at real speed over RFC 2217, 3 batches"
	echo "each way, alternating."
	echo
	./unitdata.sh
}
central_section() {
	echo '```text'
	./central.sh ${CENTRAL_UNITS:+"$CENTRAL_UNITS"}
	echo '```'
}

# kept TITLE: the section "## TITLE" of the previous results ($out, else
# RESULTS.md here), for a benchmark this run does not repeat, saying which
# run its numbers come from.
kept() {
	local prev=${out:-RESULTS.md} body when
	[ -f "$prev" ] || { echo "Not run by this run, and no previous results to keep."; return; }
	body=$(awk -v title="## $1" '
		$0 == title { on = 1; next }
		on && (/^## / || /^Took [0-9]+ min/) { exit }
		on { print }
	' "$prev" | sed '1{/^$/d}')
	when=$(sed -n 's/^Generated by .* on \(.*\)\.$/\1/p' "$prev" | head -n 1)
	case $body in
	"Not re-run by this run"*) ;; # already kept once: it names its own run
	*) echo "Not re-run by this run: the numbers of the run of ${when:-an unknown date}, kept from $(basename "$prev")."; echo ;;
	esac
	printf '%s\n' "${body:-(the previous results have no such section)}"
}

# section NAME TITLE FUNCTION: run the benchmark, or keep its last numbers.
section() {
	echo
	echo "## $2"
	echo
	if wants "$1"; then "$3"; else kept "$2"; fi
}

document() {
	local started
	started=$(date +%s)
	local cpu mem js
	cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
	js=$(awk -F'"' '$2 == "version" { print $4; exit }' ../tests/interop/node_modules/esptool-js/package.json 2>/dev/null || true)
	echo "# Benchmark results"
	echo
	echo "Generated by \`bench/run.sh ${benches[*]}\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo "Machine: $(nproc) CPUs ($cpu), $mem RAM, $(uname -sr); load average at start $(load)."
	echo "espline built in \`$BUILD\`; Node $(node --version 2>/dev/null || echo '?'), esptool-js ${js:-?}."
	if [ "$TIME_SCALE" != 1 ]; then
		echo
		echo "**DRY RUN: the simulator ran at --time-scale $TIME_SCALE. The device, gang and units numbers below are NOT results.**"
	fi

	section device "One module (bench/device.sh)" device_section
	section gang "Gang scaling (bench/gang.sh)" gang_section
	section units "Units per hour (bench/units.sh)" units_section
	section db "Traceability database (bench/db.sh)" db_section
	section central "Central PostgreSQL (bench/central.sh)" central_section
	section web "The web view under load (bench/web.sh)" web_section
	section stubs "Legacy stub and esp-flasher-stub (bench/stubs.sh)" stubs_section
	section boot "First-boot check (bench/boot.sh)" boot_section
	section unitdata "Per-unit data (bench/unitdata.sh)" unitdata_section
	echo
	echo "Took $(( ($(date +%s) - started + 30) / 60 )) min; load average at the end $(load)."
}

if [ -n "$out" ]; then
	trap 'rm -f "$out.tmp"' EXIT
	document | tee "$out.tmp"
	mv "$out.tmp" "$out"
	echo "bench: wrote $out" >&2
else
	document
fi
