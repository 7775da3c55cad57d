#!/usr/bin/env bash
# unitdata.sh - what per-unit data costs (issue 16): the same recipe with
# and without a write_unit_data step (a serial from the database's counter,
# one row of a CSV file with a PEM-sized cell, a 4 KiB region rendered from
# recipes/unit-data.tmpl, written and MD5-verified), on simulated modules
# at real speed (--time-scale 1, RFC 2217, flash_baud 921600).  ROUNDS
# batches of DEVICES units each way, alternating, each batch on new MACs.
#
# Per unit: the mean unit time of each recipe, their difference (the whole
# overhead: the reservation through the database writer, rendering, the
# 4 KiB write and its MD5), and the write_unit_data step alone.
#
#   bench/unitdata.sh   (env: BUILD=build, DEVICES=4, ROUNDS=3, TIME_SCALE=1)
# Prints Markdown on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${DEVICES:-4}
ROUNDS=${ROUNDS:-3}
bench_build
WORK=$(mktemp -d /tmp/espline-bench-unitdata.XXXXXX)
cleanup() { sim_stop; rm -rf "$WORK"; }
trap cleanup EXIT
BUILD=$BUILD scripts/make-demo-images.sh "$WORK/r/images" >/dev/null
cp recipes/unit-data.tmpl "$WORK/r/"
{
	echo "device_id,wifi_psk,cert"
	for i in $(seq 1 $((N * ROUNDS + N))); do
		printf 'dev-%04d,psk-%s,"-----BEGIN FAKE-----\n%s\n-----END FAKE-----"\n' "$i" "$(openssl rand -hex 8)" \
			"$(openssl rand -base64 900 | tr -d '\n' | fold -w 64)"
	done
} >"$WORK/r/rows.csv"
base='recipe: bench
chip: esp8266
connect: { flash_baud: 921600 }
steps:
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }'
printf '%s\n  - verify: md5\n  - reset: run\n' "$base" >"$WORK/r/plain.yaml"
printf '%s\n  - write_unit_data: { address: 0x3F8000, size: 4KB, template: unit-data.tmpl, from_csv: rows.csv, secret_columns: [wifi_psk, cert] }\n  - verify: md5\n  - reset: run\n' \
	"$base" | sed 's/^steps:/serial: { counter: bench, format: "B-{seq:06}" }\nsteps:/' >"$WORK/r/data.yaml"
DB=$WORK/units.sqlite
batch() { # RECIPE ROUND
	sim_start "$WORK" --devices "$N" --link rfc2217 --mac "5c:cf:7f:$(printf %02x $((0x40 + $2))):$([ "$1" = data ] && echo 11 || echo 22):00"
	local ports=() k
	for k in $(seq 0 $((N - 1))); do ports+=(--port "$(sim_port "$WORK" "$k")"); done
	"$E" run "$WORK/r/$1.yaml" --batch "$1-$2" --count "$N" --plain --db "$DB" "${ports[@]}" >"$WORK/run.log" 2>&1 ||
		{ cat "$WORK/run.log" >&2; die "batch $1-$2 failed"; }
	sim_stop
}
for r in $(seq 1 "$ROUNDS"); do
	log "round $r/$ROUNDS"
	batch plain "$r"
	batch data "$r"
done
mean() { sqlite3 "$DB" "select printf('%.3f', avg(u.duration_ms) / 1000.0) from units u join batches b on b.id = u.batch_id where b.name like '$1-%' and u.result = 'PASS'"; }
n_pass=$(sqlite3 "$DB" "select count(*) from units where result = 'PASS'")
[ "$n_pass" -eq $((2 * N * ROUNDS)) ] || die "only $n_pass of $((2 * N * ROUNDS)) units passed"
plain=$(mean plain) data=$(mean data)
step=$(sqlite3 "$DB" "select printf('%.3f', avg(duration_ms) / 1000.0) from steps where kind = 'write_unit_data'")
echo "| recipe | units | mean unit time |"
echo "|---|---|---|"
echo "| write + verify + reset | $((N * ROUNDS)) | $plain s |"
echo "| the same + serial + CSV row + write_unit_data (4 KiB) | $((N * ROUNDS)) | $data s |"
echo
echo "Overhead per unit: $(awk -v a="$data" -v b="$plain" 'BEGIN { printf "%.3f", a - b }') s (difference of the means); the write_unit_data step alone: $step s."
