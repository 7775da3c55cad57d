#!/usr/bin/env bash
# stubs.sh - the two flasher stub generations side by side: `espline write
# --verify` of one firmware-like 1 MB image (the demo NodeMCU image four
# times) at 0x0 on a blank 4 MB module, simulator at real speed, pseudo-
# terminal, connect at 115200 and write at 460800, once with --stub legacy
# (esptool-js 0.4.7's stub) and once with --stub esp-flasher-stub (esptool-js
# 0.7.0's), alternating, REPS pairs (default 3); one Markdown table.
# The legacy stub is 9.3 KB (text + data), esp-flasher-stub 12.4 KB: the
# upload at the ROM's 115200 baud costs about 0.27 s more; esp-flasher-stub
# skips erasing sectors that read blank (docs/simulator-fidelity.md, 4o).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${REPS:-3}
bench_build
WORK=$(mktemp -d /tmp/espline-bench-stubs.XXXXXX)
cleanup() { sim_stop; rm -rf "$WORK"; }
trap cleanup EXIT
BUILD=$BUILD scripts/make-demo-images.sh "$WORK/images" >&2
for _ in 1 2 3 4; do cat "$WORK/images/nodemcu-demo.bin"; done >"$WORK/img.bin"
sim_start "$WORK" --devices $((2 * REPS)) --flash 4MB
declare -A times
k=0
for rep in $(seq "$REPS"); do
	for gen in legacy esp-flasher-stub; do
		t0=$(now)
		"$E" write "$(sim_port "$WORK" "$k")" --reset none --after stay --stub "$gen" --verify -q \
			0x0 "$WORK/img.bin" >&2 || die "espline write with the $gen stub failed"
		times[$gen]="${times[$gen]:-} $(calc "$(now) - $t0")"
		k=$((k + 1))
	done
done
sim_stop
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
dry_run_note
echo "| stub | runs (s) | median (s) |"
echo "|---|---|---:|"
for gen in legacy esp-flasher-stub; do
	printf '| %s | %s | %.2f |\n' "$gen" "$(for t in ${times[$gen]}; do printf '%.2f ' "$t"; done)" \
		"$(echo "${times[$gen]}" | median)"
done
