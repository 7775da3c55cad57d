#!/usr/bin/env bash
# station.sh - `espline run` as a station against many simulated devices:
#   1. a batch over 16 devices on RFC 2217: every passing unit's flash equals
#      the recipe's images (rebuilt here byte by byte), every result is
#      attributed to the right port and MAC, a device unplugged mid-write
#      fails alone while the others pass, the JSON event stream parses;
#   2. hotplug (pseudo-terminals behind a glob and a plain path): an adapter
#      that vanishes ends its worker, one that appears gets a worker and is
#      programmed, the other ports are not disturbed;
#   3. SIGINT in the middle of a batch: units in progress finish; a second
#      SIGINT aborts at once and records them INTERRUPTED; either way the
#      database passes PRAGMA integrity_check and `espline db verify`.
# TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir station
TAP_TAIL=20 # check shows the end of $LOG on a failure

# export_rows DB BATCH: "port mac result error_kind" per unit (CSV columns
# port=15, mac=9, result=21, error_kind=22 come before any quoted field).
export_rows() { "$E" export --format csv --batch "$2" --db "$1" | tail -n +2 | awk -F, '{ print $15, $9, $21, $22 }'; }
sql() { sqlite3 "$1" "$2"; }
db_sound() { [ "$(sql "$1" 'PRAGMA integrity_check;')" = ok ] && "$E" db verify --db "$1" >"$T/verify.out" 2>&1; }

# wait_for FILE PATTERN [SECONDS]: until a line of FILE matches PATTERN (ERE).
wait_for() {
	local deadline=$((SECONDS + ${3:-30}))
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		[ $SECONDS -ge "$deadline" ] && return 1
		sleep 0.1
	done
}
# finish PID [SECONDS]: wait for a background espline; kill it if it hangs
# (exit status 124 then, like timeout(1)).
finish() {
	wait_exit "$1" "${2:-90}"
	local rc=$?
	[ "$rc" -eq 124 ] && echo "# espline (pid $1) hung: killed"
	return "$rc"
}
count() { cat "$1" 2>/dev/null | grep -cE -- "$2"; }
# wait_count FILE PATTERN N [SECONDS]: until N lines of FILE match.
wait_count() {
	local deadline=$((SECONDS + ${4:-30}))
	until [ "$(count "$1" "$2")" -ge "$3" ]; do
		[ $SECONDS -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }

# --- 1. a batch over 16 devices ------------------------------------------
DB=$T/gang.sqlite
sim_start gang --devices 16 --link rfc2217 --time-scale 0 \
	--dev 3:flash=16MB --dev 7:flash=8MB --dev 11:flash=16MB --dev 14:flash=8MB \
	--dev 5:fault=unplug@flash:0x20000:1500 || exit 1
ports=()
for k in $(seq 0 15); do ports+=(--port "$(sim_dev_port gang "$k")"); done
LOG=$T/gang.err
timeout 120 "$E" run recipes/nodemcu-4mb.yaml --batch gang16 --count 16 --json --db "$DB" "${ports[@]}" \
	>"$T/gang.jsonl" 2>"$T/gang.err"
rc=$?
sim_stop gang
LOG=$T/gang.jsonl
check "batch of 16 ends with exit 1 (one unit failed)" [ "$rc" -eq 1 ]
export_rows "$DB" gang16 >"$T/gang.rows"
LOG=$T/gang.rows
check "16 units recorded in batch gang16" [ "$(wc -l <"$T/gang.rows")" -eq 16 ]
check "15 PASS and 1 FAIL" [ "$(grep -c ' PASS ' "$T/gang.rows")" -eq 15 -a "$(grep -c ' FAIL ' "$T/gang.rows")" -eq 1 ]
attributed=0 flashed=0
for k in $(seq 0 15); do
	port=$(sim_dev_port gang "$k") mac=$(sim_dev_field gang "$k" mac) size=$(sim_dev_field gang "$k" flash)
	want=PASS; [ "$k" -eq 5 ] && want=FAIL
	if [ "$(grep -c "^$port " "$T/gang.rows")" -eq 1 ] && grep -q "^$port $mac $want" "$T/gang.rows"; then
		attributed=$((attributed + 1))
	else
		echo "# device $k: port $port mac $mac: expected one $want row"
	fi
	[ "$k" -eq 5 ] && continue
	expected_flash "$size" "$T/expected.bin"
	if cmp -s "$T/expected.bin" "$T/gang.flash/dev$k.bin"; then
		flashed=$((flashed + 1))
	else
		echo "# device $k ($size): flash differs from the recipe's images: $(cmp "$T/expected.bin" "$T/gang.flash/dev$k.bin" 2>&1 | head -n 1)"
	fi
done
check "every unit attributed to its own port and MAC (16 of 16)" [ "$attributed" -eq 16 ]
check "every passing unit's flash equals the recipe's images (15 of 15, sizes 4/8/16MB)" [ "$flashed" -eq 15 ]
check "the unplugged device failed in its write step" grep -qE "^$(sim_dev_port gang 5) [^ ]+ FAIL write: " "$T/gang.rows"
LOG=$T/gang.jsonl
check "the JSON event stream is one valid JSON object per line" \
	node -e 'require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").forEach((l) => JSON.parse(l))' "$T/gang.jsonl"
check "the stream has 16 unit_done events and a summary" \
	[ "$(count "$T/gang.jsonl" '"event":"unit_done"')" -eq 16 -a "$(count "$T/gang.jsonl" '"event":"summary"')" -eq 1 ]
check "the summary counts 15 passed, 1 failed" grep -qE '"event":"summary".*"passed":15,"failed":1' "$T/gang.jsonl"
check "the database is sound (integrity_check, db verify)" db_sound "$DB"

# --- 2. hotplug --------------------------------------------------------------
# Devices 0-2 sit behind the glob links/dev[0-2]; device 2 is unplugged for
# 3 s in the middle of its first write (its link disappears, then comes
# back on a new pty).  Device 3 is plugged in later as $T/extra.
DB=$T/hotplug.sqlite
sim_start hp --devices 4 --time-scale 0 --link-dir "$T/links" --dev 2:fault=unplug@flash:0x10000:3000 || exit 1
HP=$T/hp.jsonl
"$E" run recipes/jig.yaml --station --json --flash-baud 115200 --db "$DB" \
	--port "$T/links/dev[0-2]" --port "$T/extra" >"$HP" 2>"$T/hp.err" &
RUN_PID=$!
PIDS+=($RUN_PID)
LOG=$HP
L=$T/links
check "three workers start for the glob" wait_for "$HP" "port_added.*links/dev2" 10
check "the plain path that does not exist yet gets no worker" [ "$(count "$HP" 'port_added.*extra')" -eq 0 ]
check "dev0 and dev1 pass" wait_for "$HP" "unit_done\",[^}]*\"port\":\"$L/dev1\".*\"result\":\"PASS\"" 20
wait_for "$HP" "unit_done\",[^}]*\"port\":\"$L/dev0\".*\"result\":\"PASS\"" 5
check "dev2 fails when it is unplugged mid-write" wait_for "$HP" "unit_done\",[^}]*\"port\":\"$L/dev2\".*\"result\":\"FAIL\"" 20
check "its worker ends when the adapter disappears" wait_for "$HP" "port_removed\",[^}]*\"port\":\"$L/dev2\"" 10
check "a new worker starts when it comes back" wait_count "$HP" "port_added\",[^}]*\"port\":\"$L/dev2\"" 2 10
check "... and programs the unit it finds (PASS)" wait_for "$HP" "unit_done\",[^}]*\"port\":\"$L/dev2\".*\"result\":\"PASS\"" 20
ln -s "$(readlink "$L/dev3")" "$T/extra"
check "an adapter plugged in later gets a worker" wait_for "$HP" "port_added\",[^}]*\"port\":\"$T/extra\"" 10
check "... which programs its unit with the right MAC" \
	wait_for "$HP" "unit_done\",[^}]*\"port\":\"$T/extra\",[^}]*\"mac\":\"$(sim_dev_field hp 3 mac)\".*\"result\":\"PASS\"" 20
rm -f "$T/extra"
check "unplugging it ends its worker" wait_for "$HP" "port_removed\",[^}]*\"port\":\"$T/extra\"" 10
check "dev0 and dev1 were not disturbed: one worker, one unit each" \
	[ "$(count "$HP" "port_(added|removed)\",[^}]*\"port\":\"$L/dev[01]\"")" -eq 2 -a \
	  "$(count "$HP" "unit_done\",[^}]*\"port\":\"$L/dev[01]\"")" -eq 2 ]
kill -INT "$RUN_PID"
finish "$RUN_PID" 30
rc=$?
check "SIGINT ends the idle station with exit 130" [ "$rc" -eq 130 ]
sim_stop hp
hotplug_db() {
	db_sound "$DB" && [ "$(sql "$DB" "select count(*) from units where result = 'PASS';")" = 4 ] &&
		[ "$(sql "$DB" "select count(*) from units where result = 'FAIL';")" = 1 ]
}
check "hotplug database is sound and holds 5 units (4 PASS, 1 FAIL)" hotplug_db

# --- 3. SIGINT in the middle of a batch ------------------------------------
# time-scale 0.15: a unit takes about 2 s, long enough to be caught mid-way.
for how in graceful abort; do
	DB=$T/sig-$how.sqlite
	sim_start "sig$how" --devices 4 --link rfc2217 --time-scale 0.15 || exit 1
	ports=()
	for k in 0 1 2 3; do ports+=(--port "$(sim_dev_port "sig$how" "$k")"); done
	OUT=$T/sig-$how.jsonl
	LOG=$OUT
	"$E" run recipes/nodemcu-4mb.yaml --batch "sig-$how" --count 8 --json --db "$DB" "${ports[@]}" \
		>"$OUT" 2>"$T/sig-$how.err" &
	RUN_PID=$!
	PIDS+=($RUN_PID)
	wait_count "$OUT" '"event":"identified"' 4 20
	sleep 0.3
	kill -INT "$RUN_PID"
	if [ "$how" = abort ]; then sleep 0.2; kill -INT "$RUN_PID"; fi
	t0=$(date +%s%N)
	finish "$RUN_PID" 60
	rc=$?
	took_ms=$((($(date +%s%N) - t0) / 1000000))
	sim_stop "sig$how"
	check "$how: exit 130" [ "$rc" -eq 130 ]
	check "$how: the database is sound (integrity_check, db verify)" db_sound "$DB"
	export_rows "$DB" "sig-$how" >"$T/sig.rows"
	LOG=$T/sig.rows
	check "$how: all 4 started units recorded, each PASS, FAIL or INTERRUPTED" eval \
		'[ "$(wc -l <"$T/sig.rows")" -eq 4 ] && ! grep -vqE " (PASS|FAIL|INTERRUPTED) " "$T/sig.rows"'
	check "$how: nothing left RUNNING" [ "$(sql "$DB" "select count(*) from units where result = 'RUNNING';")" = 0 ]
	if [ "$how" = graceful ]; then
		check "graceful: the units in progress finished (4 PASS)" [ "$(grep -c ' PASS ' "$T/sig.rows")" -eq 4 ]
		check "graceful: no new unit was started" [ "$(count "$OUT" '"event":"identified"')" -eq 4 ]
	else
		check "abort: the units in progress were recorded INTERRUPTED" [ "$(grep -c ' INTERRUPTED ' "$T/sig.rows")" -ge 1 ]
		check "abort: it stopped at once (${took_ms} ms after the second signal, < 1500 ms)" [ "$took_ms" -lt 1500 ]
	fi
done

# --- 4. the database cannot be written ------------------------------------
# Another program holds the write lock past the busy timeout (5 s): the
# writer spools, the station stops starting units, says why and exits 4;
# the next start replays the spool, so no started unit is lost.
# Every device holds its line for 2 s before the first byte, so that the
# lock (taken right after the batch is recorded) is in place before any unit
# answers.
DB=$T/locked.sqlite
sim_start lock --devices 4 --link rfc2217 --time-scale 0.3 --fault stall@rx:0:2000 || exit 1
ports=()
for k in 0 1 2 3; do ports+=(--port "$(sim_dev_port lock "$k")"); done
OUT=$T/lock.jsonl
LOG=$OUT
"$E" run recipes/nodemcu-4mb.yaml --station --json --db "$DB" "${ports[@]}" >"$OUT" 2>"$T/lock.err" &
RUN_PID=$!
PIDS+=($RUN_PID)
wait_for "$OUT" '"event":"started"' 10
# The sqlite3 shell gives up at once on a busy database unless told to wait,
# and goes on without the lock unless told to bail: espline's writer may be
# committing the batch row at this very moment.
# The lock is held until the station has exited (at most 90 s), not for a
# fixed time: on a loaded machine the first unit can answer more than 5 s
# after the lock was taken, and a writer that starts waiting then would see
# a fixed-time lock released inside its busy timeout and never spool.
hold_lock_until_station_exits() {
	printf '.bail on\n.timeout 10000\nBEGIN IMMEDIATE;\nSELECT %s;\n' "'lock held'"
	local waited=0
	while kill -0 "$RUN_PID" 2>/dev/null && [ "$waited" -lt 900 ]; do sleep 0.1; waited=$((waited + 1)); done
	echo "COMMIT;"
}
hold_lock_until_station_exits |
	sqlite3 "$DB" >"$T/lock.holder" 2>&1 &
LOCK_PID=$!
PIDS+=($LOCK_PID)
LOG=$T/lock.holder # on a failure, show what the lock holder said
check "another program holds the database's write lock before any unit answers" \
	wait_for "$T/lock.holder" '^lock held$' 2
LOG=$OUT
finish "$RUN_PID" 90
rc=$?
check "locked database: the station stops with exit 4" [ "$rc" -eq 4 ]
check "... and says why" grep -qE '"event":"stopping".*database cannot be written.*locked' "$OUT"
no_step_after_db_failed() {
	grep -q '"event":"db_state"' "$OUT" &&
		awk '/"event":"db_state"/ { bad = 1 } bad && /"event":"step_start"/ { exit 1 }' "$OUT"
}
check "... no unit was programmed after the database failed" no_step_after_db_failed
# A worker whose first connect outlasts the device's stall (a slow, loaded
# machine) retries after the presence period; if the writer has given up on
# the database by then, that worker rightly never starts a unit.  So the
# promise checked is about the units that were started (identified), not
# about all 4 ports: each of them went to the spool, none was lost.
started=$(count "$OUT" '"event":"identified"')
tap_note "units started before the station stopped: $started of 4"
spooled_all() {
	[ "$started" -ge 1 ] && [ -s "$DB.spool" ] &&
		grep -qE "\"event\":\"summary\".*\"spooled\":$started,\"unsaved\":0" "$OUT"
}
check "... every started unit's record went to the spool" spooled_all
wait "$LOCK_PID"
tap_note "lock holder: $(tr '\n' ' ' <"$T/lock.holder")"
timeout 60 "$E" run recipes/nodemcu-4mb.yaml --db "$DB" --plain --port "$(sim_dev_port lock 0)" >"$T/replay.out" 2>&1
sim_stop lock
LOG=$T/replay.out
check "the next start replays the spool (and removes it)" [ ! -e "$DB.spool" ]
replayed() {
	db_sound "$DB" && [ "$(sql "$DB" "select count(*) from units;")" = $((started + 1)) ] &&
		[ "$(sql "$DB" "select count(*) from units where result = 'RUNNING';")" = 0 ]
}
check "after the replay: sound database, every started unit and the new one recorded, none RUNNING" replayed

# --- 5. repeat detection -----------------------------------------------------
# Two devices with the same MAC in one batch: the second PASS is flagged.
DB=$T/repeat.sqlite
sim_start rep --devices 2 --link rfc2217 --time-scale 0 --dev 1:mac=5c:cf:7f:a0:00:00 || exit 1
OUT=$T/rep.jsonl
LOG=$OUT
timeout 60 "$E" run recipes/nodemcu-4mb.yaml --batch rep --count 2 --json --db "$DB" \
	--port "$(sim_dev_port rep 0)" --port "$(sim_dev_port rep 1)" >"$OUT" 2>"$T/rep.err"
sim_stop rep
check "a MAC that already passed in the batch is flagged as a repeat" \
	[ "$(count "$OUT" '"event":"unit_recorded".*"repeat_of":"[0-9a-f-]{36}"')" -eq 1 -a \
	  "$(count "$OUT" '"event":"summary".*"repeats":1')" -eq 1 ]

# Under `make tsan` the sanitizer writes its reports to espline's stderr.
LOG=
check "no sanitizer reports from espline" eval '! grep -l "Sanitizer" "$T"/*.err'

tap_done
