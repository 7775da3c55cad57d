#!/usr/bin/env bash
# web.sh - what the web view costs the line: the gang benchmark (gang.sh's
# 1 MB recipe on 16 simulated modules at real speed) with and without
# `--http` and 20 Server-Sent Events clients, one of them hung (a 4 KB
# receive buffer, never read: its events must be dropped, not queued, and
# never slow a worker).  Then how fast the pages paint (web_paint.mjs).
#
# Paired runs, alternating which goes first, so that drift on a shared
# machine falls on both sides; the result is the median of the per-pair
# ratios (web / plain wall time).  Target (issue 18): at most 1.02.
# Every unit must pass and every module's flash must equal the image.
#
#   bench/web.sh            (env: BUILD, PAIRS=5, DEVICES=16, CLIENTS=20, TIME_SCALE)
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
PAIRS=${PAIRS:-5}
DEVICES=${DEVICES:-16}
CLIENTS=${CLIENTS:-20}
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (Debian package: time)"
command -v python3 >/dev/null || die "python3 is needed for the SSE clients"
bench_build

WORK=$(mktemp -d /tmp/espline-bench-web.XXXXXX)
CLIENTS_PID=
cleanup() {
	[ -z "$CLIENTS_PID" ] || kill "$CLIENTS_PID" 2>/dev/null || true
	sim_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
gang_recipe "$WORK/r"
img=$WORK/r/images/bench-1mb.bin

# run_gang MODE (plain|web): one batch on fresh modules; prints wall seconds.
run_gang() {
	local mode=$1 rc=0 ports=() http=()
	rm -rf "$WORK/flash" "$WORK/units.sqlite"* "$WORK/clients.out"
	mkdir -p "$WORK/flash"
	sim_start "$WORK" --devices "$DEVICES" --link rfc2217 --flash-dir "$WORK/flash"
	while read -r _ _ port _; do ports+=(--port "$port"); done <"$WORK/ready"
	[ "$mode" = plain ] || http=(--http 127.0.0.1:0)
	/usr/bin/time -f "%e %U %S %M" -o "$WORK/time" \
		"$E" run "$WORK/r/bench.yaml" --batch "web-$mode" --count "$DEVICES" --plain \
		--db "$WORK/units.sqlite" "${http[@]}" "${ports[@]}" >"$WORK/run.out" 2>"$WORK/run.err" &
	local pid=$!
	if [ "$mode" = web ]; then
		local url="" _
		for _ in $(seq 200); do
			url=$(grep -o 'http://[^ ]*' "$WORK/run.err" || true)
			[ -n "$url" ] && break
			sleep 0.01
		done
		[ -n "$url" ] || die "web: espline printed no address: $(cat "$WORK/run.err")"
		python3 bench/sse_clients.py "$url" "$CLIENTS" 1 >"$WORK/clients.out" &
		CLIENTS_PID=$!
	fi
	wait "$pid" || rc=$?
	if [ -n "$CLIENTS_PID" ]; then
		kill "$CLIENTS_PID" 2>/dev/null || true
		wait "$CLIENTS_PID" 2>/dev/null || true
		CLIENTS_PID=
	fi
	sim_stop
	local passed
	passed=$(grep -c ': PASS ' "$WORK/run.out" || true)
	if [ "$rc" -ne 0 ] || [ "$passed" -ne "$DEVICES" ]; then
		tail -n 20 "$WORK/run.out" "$WORK/run.err" >&2
		die "web ($mode): $passed of $DEVICES units passed (espline run exit $rc)"
	fi
	for ((k = 0; k < DEVICES; k++)); do
		flash_equals "$WORK/flash/dev$k.bin" "$img" || die "web ($mode): device $k: flash differs from the image"
	done
	[ "$mode" = plain ] || log "web: clients: $(cat "$WORK/clients.out"); $(grep -o "web view: [0-9].*" "$WORK/run.err" || true)"
	read -r wall user sys rss <"$WORK/time"
	echo "$wall $user $sys $rss"
}

echo "| pair | first | plain wall s | web wall s | web / plain | plain CPU s | web CPU s | web peak RSS MB |"
echo "|--:|:--|--:|--:|--:|--:|--:|--:|"
ratios=()
for ((i = 1; i <= PAIRS; i++)); do
	if ((i % 2)); then order=(plain web); else order=(web plain); fi
	declare -A res=()
	for mode in "${order[@]}"; do
		log "web: pair $i, $mode..."
		res[$mode]=$(run_gang "$mode")
	done
	read -r pw pu ps _ <<<"${res[plain]}"
	read -r ww wu ws wr <<<"${res[web]}"
	ratio=$(calc "$ww / $pw")
	ratios+=("$ratio")
	awk -v i="$i" -v f="${order[0]}" -v pw="$pw" -v ww="$ww" -v r="$ratio" -v pc="$(calc "$pu + $ps")" \
		-v wc="$(calc "$wu + $ws")" -v rss="$wr" 'BEGIN {
		printf "| %d | %s | %.2f | %.2f | %.4f | %.2f | %.2f | %.1f |\n", i, f, pw, ww, r, pc, wc, rss / 1024 }'
	unset res
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo
echo "Median web / plain over $PAIRS pairs: $median ($DEVICES modules, $CLIENTS SSE clients, 1 of them hung; target <= 1.02)."
echo
echo "First paint on loopback (bench/web_paint.mjs, headless Chromium; target under 200 ms):"
echo
log "web: first paint..."
ESPLINE_BUILD=$(cd "$(dirname "$E")" && pwd) node bench/web_paint.mjs
dry_run_note
