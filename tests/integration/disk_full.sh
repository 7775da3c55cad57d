#!/usr/bin/env bash
# disk_full.sh - the disk that holds the database fills up in the middle of
# a batch (issue 19 item 1).  On a 3 MB tmpfs that is filled at 20 different
# moments of an 8-unit batch, every unit the station reported must end in
# the database exactly as reported (PASS stays PASS, FAIL stays FAIL; none
# turned INTERRUPTED, none left RUNNING, none twice) once space returns and
# the spool is replayed; the records that did not fit go to the fallback
# spool ($ESPLINE_SPOOL_DIR, another file system), whole.  Then the worst
# case: the fallback is full too, so records can be kept nowhere durable:
# the station starts no more units, prints every unsaved record whole, and
# those lines, appended to the spool by hand, replay to the same results.
# Needs root (mount); every check is skipped, saying so, where mount is
# impossible.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir disk-full
MNT=$T/mnt
FALLBACK=$T/fallback
MOMENTS=${DISK_FULL_MOMENTS:-20}
mkdir -p "$MNT" "$FALLBACK"
if ! mount -t tmpfs -o size=3m espline-disk-full "$MNT" 2>"$T/mount.err"; then
	skip "disk full at $MOMENTS moments of a batch" "cannot mount a tmpfs here ($(head -c 120 "$T/mount.err"))"
	skip "no spool anywhere: the station stops and prints the records whole" "as above"
	tap_done
	exit $?
fi
at_exit "umount '$MNT' 2>/dev/null"

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
# the station's recipe, for a jig: the simulated units sit in download mode
# (and without the first-boot check, which needs the reset lines)
sed "s/reset: auto.*/reset: none/; s/- reset: run/- reset: stay/; s|images/|$PWD/recipes/images/|" \
	recipes/nodemcu-4mb.yaml | awk '/^  - boot_check:/ { skip = 1; next } skip && /^    / { next } { skip = 0; print }' >"$T/r.yaml"
"$E" recipe check "$T/r.yaml" >"$T/check.out" 2>&1 || { echo "not ok 1 - the test recipe is valid"; sed 's/^/#   /' "$T/check.out"; exit 1; }
DB=$MNT/db/units.sqlite
TAP_SHOW=("$T/run.err")

# batch NAME DELAY_S: 8 fresh units, the tmpfs filled DELAY_S into the batch
batch() {
	local name=$1 delay=$2 k ports=()
	SIM_IDLE=60 sim_start "s$name" --devices 8 --time-scale 0.05 >/dev/null || return 1
	for k in 0 1 2 3 4 5 6 7; do ports+=(--port "$(sim_dev_port "s$name" "$k")"); done
	ESPLINE_SPOOL_DIR=$FALLBACK timeout 120 "$E" run "$T/r.yaml" --batch "$name" --count 8 "${ports[@]}" \
		--db "$DB" --json >"$T/run.json" 2>"$T/run.err" &
	local pid=$!
	sleep "$delay"
	dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
	wait "$pid"
	batch_rc=$?
	sim_stop "s$name"
}

# what the station reported: "uuid result" per unit_done event, sorted
reported() { jq -r 'select(.event == "unit_done") | "\(.unit) \(.result)"' "$T/run.json" | sort; }
# what the database holds for batch NAME, same form
stored() { sqlite3 "$DB" "select u.uuid || ' ' || u.result from units u join batches b on b.id = u.batch_id where b.name = '$1'" | sort; }

# free the space, then start a station (one more unit) to replay the spools
replay() {
	rm -f "$MNT/filler"
	SIM_IDLE=60 sim_start "r$1" --devices 1 --time-scale 0 >/dev/null || return 1
	ESPLINE_SPOOL_DIR=$FALLBACK timeout 60 "$E" run "$T/r.yaml" --batch "R$1" --count 1 \
		--port "$(sim_dev_port "r$1" 0)" --db "$DB" --plain >"$T/replay.out" 2>&1
	replay_rc=$?
	sim_stop "r$1"
}

good=0 bad=0 units=0 spooled_any=0 fallback_any=0 notes=""
for i in $(seq 1 "$MOMENTS"); do
	delay=$(awk -v i="$i" -v n="$MOMENTS" 'BEGIN { printf "%.2f", 0.15 * i * 20 / n }')
	batch "F$i" "$delay"
	want=$(reported)
	n_rep=$(grep -c . <<<"$want")
	grep -q '"spooled":true' "$T/run.json" && spooled_any=$((spooled_any + 1))
	ls "$FALLBACK"/*.spool >/dev/null 2>&1 && fallback_any=$((fallback_any + 1))
	replay "$i"
	got=$(stored "F$i")
	running=$(sqlite3 "$DB" "select count(*) from units where result = 'RUNNING'")
	left=$(ls "$FALLBACK" "$MNT/db" | grep -c '\.spool$')
	if [ "$want" = "$got" ] && [ "$running" -le 1 ] && [ "$replay_rc" -eq 0 ] && [ "$left" -eq 0 ] &&
		[ "$batch_rc" -ne 2 ]; then
		good=$((good + 1))
	else
		bad=$((bad + 1))
		notes+="moment $i (${delay}s, batch exit $batch_rc, replay exit $replay_rc, $running running, $left spools left):"$'\n'
		notes+="  reported: $(tr '\n' ' ' <<<"$want")"$'\n'"  stored:   $(tr '\n' ' ' <<<"$got")"$'\n'
		notes+="  $(tail -n 3 "$T/replay.out" | tr '\n' ' ')"$'\n'
	fi
	units=$((units + n_rep))
done
check_eq "disk full at $MOMENTS moments: every reported unit stored with its result ($units units)" \
	"$good of $MOMENTS" "$MOMENTS of $MOMENTS"
tap_note "$notes"
tap_note "moments where unit records were spooled: $spooled_any; where the fallback spool took records: $fallback_any"
check "... and the batches did program units ($units reported, at least $((4 * MOMENTS)) expected)" \
	[ "$units" -ge $((4 * MOMENTS)) ]
check "... some moments did spool (the test filled the disk mid-batch, not only before or after)" \
	[ "$spooled_any" -ge 3 ]
check "... and the fallback spool on another file system was used" [ "$fallback_any" -ge 1 ]
tap_run 30 "$E" db verify --db "$DB"
check "the chain is intact after all the replays" eval '[ "$rc" -eq 0 ] && has "OK: "'
check "no unit is left RUNNING in any filled batch" \
	[ "$(sqlite3 "$DB" "select count(*) from units u join batches b on b.id = u.batch_id where b.name like 'F%' and u.result = 'RUNNING'")" = 0 ]
tap_note "INTERRUPTED units (the station reported them so): $(sqlite3 "$DB" "select count(*) || ' ' || group_concat(distinct error) from units u join batches b on b.id = u.batch_id where b.name like 'F%' and u.result = 'INTERRUPTED'")"
check "no unit is stored twice (replayed exactly once)" \
	[ "$(sqlite3 "$DB" "select count(*) - count(distinct uuid) from units")" = 0 ]

# --- nothing durable: the fallback spool is on the full disk too ----------------
rm -f "$MNT/filler"
FALLBACK=$MNT/fallback
batch N1 1.2
want=$(reported)
check "no spool anywhere: the run exits 4 (database unusable)" [ "$batch_rc" -eq 4 ]
started=$(jq -r 'select(.event == "identified") | .unit' "$T/run.json" | sort -u | grep -c .)
done_n=$(grep -c . <<<"$want")
check "... every unit that was started ended and was reported ($started started, $done_n reported)" \
	[ "$started" -eq "$done_n" ]
# the log events of the JSON stream carry them
unsaved() { jq -r 'select(.message != null) | .message' "$T/run.json" | sed -n 's/^UNSAVED RECORD (append this line to [^)]*): //p'; }
check "... the records that could not be kept are printed whole, as JSON lines ($(unsaved | grep -c .))" \
	eval '[ "$(unsaved | grep -c .)" -ge 1 ] && unsaved | jq -e .type >/dev/null'
check "... among them the end record of every unit not saved" eval \
	'[ "$(unsaved | jq -r "select(.type == \"unit_end\") | .unit.uuid" | sort | grep -c .)" -eq "$(jq -r "select(.event == \"unit_recorded\" and .saved == false) | .unit" "$T/run.json" | grep -c .)" ]'
# the operator frees space and appends the printed lines to the spool
rm -f "$MNT/filler"
unsaved >>"$DB.spool"
replay N1
got=$(stored N1)
check_eq "... appended to the spool by hand, they replay to the results reported" "$got" "$want"
check "... and no unit of that batch is left RUNNING (INTERRUPTED only where the station said so)" \
	[ "$(sqlite3 "$DB" "select count(*) from units u join batches b on b.id = u.batch_id where b.name = 'N1' and u.result = 'RUNNING'")" = 0 ]

tap_done
