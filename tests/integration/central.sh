#!/usr/bin/env bash
# central.sh - three stations replicate to one central PostgreSQL.
#
# Starts a private PostgreSQL (Debian's postgresql package: initdb + pg_ctl,
# as `nobody` when run as root) on a Unix socket in a temporary folder, with
# password authentication, and stops it at the end.  Three stations (three
# `espline run` processes, each with its own local database and its own
# espline-sim of 6 devices) write to it:
#   1. all up: every unit appears exactly once centrally;
#   2. the server is stopped in the middle of a batch: the stations finish
#      their batches and their outboxes grow;
#   3. the server comes back in the middle of the next batch: the running
#      senders reconnect and everything syncs, no loss, no duplicates;
#   4. a station killed with SIGKILL with unsent records resends them on its
#      next start; records whose acknowledgement was lost are resent and
#      not duplicated;
#   5. history, report, export and db verify with --central agree with the
#      stations' own databases; verify catches a unit changed and a unit
#      deleted centrally; the password appears in no output;
#   6. serial numbers leased from the server (issue 16): three more stations
#      share a counter for 300 units, at once, then with the server stopped
#      (each uses what it leased and stops with a clear message), then back:
#      no serial is given twice, every PASS unit has one, and a FAIL unit's
#      number is returned or voided as its recipe's policy says.
# TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir central
PGD=$(mktemp -d /tmp/espline-central-pg.XXXXXX)
PASSWORD="Zq7-central-$$-pw"
TAP_TAIL=20 # check shows the end of $LOG on a failure
# --- the private server -------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "# PostgreSQL is not installed; running scripts/install-deps.sh"
	scripts/install-deps.sh >&2 || true
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "not ok 1 - PostgreSQL (initdb, pg_ctl) is installed (scripts/install-deps.sh)"
	rm -rf "$T" "$PGD"
	exit 1
fi
AS=()
if [ "$(id -u)" -eq 0 ]; then
	AS=(runuser -u nobody --)
	chown nobody "$PGD"
fi
chmod 700 "$PGD"
pg_ctl() { "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" "$@"; }
pg_start() {
	pg_ctl -w -t 30 -l "$PGD/server.log" \
		-o "-k $PGD -c listen_addresses='' -c fsync=off -c full_page_writes=off" start >/dev/null
}
pg_stop() { pg_ctl -w -m immediate stop >/dev/null 2>&1; }

KILL_SIGNAL=KILL
at_exit pg_stop
at_exit 'rm -rf "$PGD"'
printf '%s\n' "$PASSWORD" >"$PGD/pw"
[ "$(id -u)" -eq 0 ] && chown nobody "$PGD/pw"
if ! "${AS[@]}" "$PGBIN/initdb" -D "$PGD/data" -U espline --pwfile="$PGD/pw" \
	--auth-local=scram-sha-256 --auth-host=scram-sha-256 --no-sync >"$T/initdb.log" 2>&1; then
	not_ok "initdb" "$T/initdb.log"; exit 1
fi
rm -f "$PGD/pw"
pg_start || { not_ok "the private PostgreSQL starts" "$PGD/server.log"; exit 1; }

BASE="postgresql:///postgres?host=$PGD&user=espline"
URI_PW="postgresql://espline:$PASSWORD@/postgres?host=$PGD"
printf '*:*:*:espline:%s\n' "$PASSWORD" >"$T/pgpass"
chmod 600 "$T/pgpass"
psql_q() { PGPASSWORD=$PASSWORD psql -X -q -At "$BASE" -c "$1" 2>>"$T/psql.err"; }
central_units() { psql_q "SELECT count(*) || ' ' || count(DISTINCT uuid) FROM units"; }

# Three stations: their own database, simulator and credentials.  Station 1
# and 2 take the password from the URI, station 3 from PGPASSFILE.
export ESPLINE_CENTRAL_BACKOFF_MAX_MS=400
station_env() {
	case $1 in
		3) echo "ESPLINE_CENTRAL=$BASE PGPASSFILE=$T/pgpass" ;;
		*) echo "ESPLINE_CENTRAL=$URI_PW PGPASSFILE=/nonexistent" ;;
	esac
}
start_sim() {
	sim_launch "sim$1" --devices 6 --link rfc2217 --time-scale 0.1 \
		--mac "5c:cf:7f:0$1:00:00" --dev 2-3:flash=8MB --dev 4-5:flash=16MB
}
ports_of() { awk '$1 == "device" { printf " --port %s", $3 }' "$T/sim$1.devices"; }
# run_station K BATCH [MODE...]: in the background; pid in STATION_PID
run_station() {
	local k=$1 batch=$2; shift 2
	# shellcheck disable=SC2046
	env $(station_env "$k") "$E" run recipes/nodemcu-4mb.yaml --batch "$batch" "$@" --plain \
		--station-name "st$k" --db "$T/st$k.sqlite" $(ports_of "$k") >>"$T/st$k.out" 2>>"$T/st$k.err" &
	STATION_PID=$!
	PIDS+=($!)
}
local_count() { sqlite3 "$T/st$1.sqlite" "SELECT count(*) FROM units WHERE seq IS NOT NULL${2:+ AND batch_id IN (SELECT id FROM batches WHERE name = '$2')}"; }
outbox_units() { sqlite3 "$T/st$1.sqlite" "SELECT count(*) FROM outbox WHERE kind = 'unit'"; }
outbox_all() { sqlite3 "$T/st$1.sqlite" "SELECT count(*) FROM outbox"; }
total_local() { echo $(( $(local_count 1) + $(local_count 2) + $(local_count 3) )); }
# wait_until SECONDS COMMAND...: poll every 0.1 s
wait_until() {
	local deadline=$((SECONDS + $1)); shift
	until "$@"; do [ $SECONDS -ge "$deadline" ] && return 1; sleep 0.1; done
}
all_synced() { [ "$(central_units)" = "$(total_local) $(total_local)" ]; }
uuid_sets_equal() {
	for k in 1 2 3; do sqlite3 "$T/st$k.sqlite" "SELECT uuid FROM units WHERE seq IS NOT NULL"; done | sort >"$T/local.uuids"
	psql_q "SELECT uuid FROM units" | sort >"$T/central.uuids"
	cmp -s "$T/local.uuids" "$T/central.uuids"
}

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
for k in 1 2 3; do start_sim "$k" || exit 1; done

# --- 1. all up -------------------------------------------------------------------
t0=$SECONDS
pids=()
for k in 1 2 3; do run_station "$k" "st$k-a" --count 6; pids+=("$STATION_PID"); done
rcs=0
for p in "${pids[@]}"; do wait "$p" || rcs=$((rcs + 1)); done
LOG=$T/st1.err
check "three stations program 6 units each (exit 0)" [ "$rcs" -eq 0 -a "$(total_local)" -eq 18 ]
wait_until 10 all_synced
LOG=$T/psql.err
check "every unit appears exactly once centrally (18 of 18)" [ "$(central_units)" = "18 18" ]
check "the central unit ids are exactly the stations' ones" uuid_sets_equal
check "outboxes are empty (units and batches)" [ "$(( $(outbox_all 1) + $(outbox_all 2) + $(outbox_all 3) ))" -eq 0 ]
echo "# phase 1: $((SECONDS - t0)) s"

# --- 2. the server stops in the middle of a batch -----------------------------
t0=$SECONDS
pids=()
for k in 1 2 3; do run_station "$k" "st$k-b" --count 6; pids+=("$STATION_PID"); done
# Stop the server once the first unit of this batch has reached it from
# every station: the 16MB units are still being programmed then.
first_of_each() { [ "$(psql_q "SELECT count(DISTINCT b.name) FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name LIKE '%-b'")" = 3 ]; }
wait_until 20 first_of_each
pg_stop
rcs=0
for p in "${pids[@]}"; do wait "$p" || rcs=$((rcs + 1)); done
LOG=$T/st2.err
check "with the server down, the stations finish their batches (18 more units, exit 0)" \
	[ "$rcs" -eq 0 -a "$(total_local)" -eq 36 ]
grown=0
for k in 1 2 3; do [ "$(outbox_units "$k")" -ge 1 ] && grown=$((grown + 1)); done
# What the server kept is asked once the stations have exited, with the
# server up for a moment and no station running, so nothing syncs meanwhile
# (a count taken before the stop raced with the last commits: "10 of 18" under
# TSan while more units went through before the server stopped).  Every unit
# of the batch must be on the server or in its station's outbox.
pg_start || not_ok "the server restarts to be asked" "$PGD/server.log"
psql_q "SELECT u.uuid FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name LIKE '%-b'" |
	sort -u >"$T/b.central"
pg_stop
for k in 1 2 3; do
	sqlite3 "$T/st$k.sqlite" "SELECT u.uuid FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name LIKE '%-b' AND u.seq IS NOT NULL"
done | sort -u >"$T/b.local"
for k in 1 2 3; do sqlite3 "$T/st$k.sqlite" "SELECT ref FROM outbox WHERE kind = 'unit'"; done | sort -u >"$T/b.outbox"
missed=$(sort -u "$T/b.central" "$T/b.outbox" | comm -23 "$T/b.local" - | wc -l)
check "every station's outbox holds the units the server missed ($(wc -l <"$T/b.central") of 18 got through)" \
	[ "$grown" -eq 3 -a "$(wc -l <"$T/b.local")" -eq 18 -a "$missed" -eq 0 ]
"$E" sync status --db "$T/st1.sqlite" >"$T/status1.out" 2>&1
LOG=$T/status1.out
check "sync status shows the waiting units, the oldest one's age and the last error" \
	grep -qE "^waiting +[0-9]+ records \($(outbox_units 1) units\)" "$T/status1.out"
check "... with the oldest age and a connection error" \
	bash -c "grep -qE '^oldest +[0-9.]+ s old' '$T/status1.out' && grep -qiE 'connect|server|socket' '$T/status1.out'"
echo "# phase 2: $((SECONDS - t0)) s"

# --- 3. the server comes back in the middle of the next batch ---------------
t0=$SECONDS
pids=()
for k in 1 2 3; do run_station "$k" "st$k-c" --count 6; pids+=("$STATION_PID"); done
sleep 1
pg_start || not_ok "the server restarts" "$PGD/server.log"
rcs=0
for p in "${pids[@]}"; do wait "$p" || rcs=$((rcs + 1)); done
check "the third batches complete (54 units in all)" [ "$rcs" -eq 0 -a "$(total_local)" -eq 54 ]
wait_until 15 all_synced
LOG=$T/psql.err
check "after the server came back everything synced: 54 units, no loss, no duplicates" \
	[ "$(central_units)" = "54 54" ]
check "the central unit ids are exactly the stations' ones" uuid_sets_equal
check "outboxes are empty again (units and batches)" [ "$(( $(outbox_all 1) + $(outbox_all 2) + $(outbox_all 3) ))" -eq 0 ]
echo "# phase 3: $((SECONDS - t0)) s"

# --- 4. SIGKILL, and lost acknowledgements -------------------------------------
t0=$SECONDS
pg_stop
run_station 1 st1-d --station
killed=$STATION_PID
wait_until 20 bash -c "[ \$(sqlite3 '$T/st1.sqlite' \"SELECT count(*) FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name = 'st1-d' AND u.seq IS NOT NULL\") -eq 6 ]"
kill -9 "$killed"; wait "$killed" 2>/dev/null
check "station 1 killed with SIGKILL holding 6 unsent units" [ "$(outbox_units 1)" -eq 6 ]
# Station 2 loses the acknowledgement of everything it sent: its outbox is
# put back as if it had crashed between the server's commit and its own.
sqlite3 "$T/st2.sqlite" "INSERT INTO outbox (kind, ref, queued_ms) SELECT 'unit', uuid, 0 FROM units WHERE seq IS NOT NULL ORDER BY seq"
pg_start || not_ok "the server restarts" "$PGD/server.log"
run_station 1 st1-e --count 6
restarted=$STATION_PID
env $(station_env 2) "$E" sync push --db "$T/st2.sqlite" >"$T/push2.out" 2>&1
LOG=$T/push2.out
check "station 2 resends the 18 units whose acknowledgement was lost" grep -q "^sent 18 records" "$T/push2.out"
wait "$restarted"
wait_until 15 all_synced
LOG=$T/psql.err
check "after the restart station 1 sent what was not acknowledged: 66 units exactly once" \
	[ "$(central_units)" = "66 66" ]
check "the central unit ids are exactly the stations' ones" uuid_sets_equal
echo "# phase 4: $((SECONDS - t0)) s"

# --- 5. queries against the central database -------------------------------
export ESPLINE_CENTRAL=$URI_PW
for k in 1 2 3; do "$E" export --format csv --db "$T/st$k.sqlite" | tail -n +2; done | sort >"$T/local.csv"
"$E" export --format csv --central | tail -n +2 | sort >"$T/central.csv"
LOG=$T/central.csv
check "export --central equals the stations' exports, column for column (66 rows)" \
	bash -c "cmp -s '$T/local.csv' '$T/central.csv' && [ \$(wc -l <'$T/central.csv') -eq 66 ]"
"$E" export --format json --central -o "$T/central.json" 2>/dev/null
check "export --central --format json parses, with steps" \
	node -e 'const a = JSON.parse(require("fs").readFileSync(process.argv[1])); if (a.length !== 66 || !a.every((u) => u.steps.length >= 1)) process.exit(1)' "$T/central.json"
mac=5c:cf:7f:01:00:04
local_hist=$(for k in 1 2 3; do "$E" history "$mac" --db "$T/st$k.sqlite" 2>/dev/null; done | grep -c ' PASS \| FAIL ')
"$E" history --central "$mac" >"$T/hist.out" 2>&1
LOG=$T/hist.out
check "history --central lists the MAC's $local_hist programmings, newest first, with its station" \
	bash -c "[ \$(grep -c ' PASS \| FAIL ' '$T/hist.out') -eq $local_hist ] && grep -q 'station st1@' '$T/hist.out' && [ \"\$(grep -oE '^[0-9T:.-]+Z' '$T/hist.out')\" = \"\$(grep -oE '^[0-9T:.-]+Z' '$T/hist.out' | sort -r)\" ]"
"$E" report --central --batch st2-b --json >"$T/report.json" 2>&1
"$E" report --db "$T/st2.sqlite" --batch st2-b --json >"$T/report.local.json" 2>&1
LOG=$T/report.json
check "report --central --batch equals the station's own report" cmp -s "$T/report.json" "$T/report.local.json"
# The browser's history of every station (espline serve --central), read
# with node's fetch as the page reads it.
"$E" serve --central --http 127.0.0.1:0 >"$T/serve.out" 2>&1 &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
for _ in $(seq 100); do grep -q "web view at" "$T/serve.out" && break; sleep 0.1; done
url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/' "$T/serve.out" | head -n 1)
fetch_json() { node -e 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))' "$url$1"; }
fetch_json api/batches >"$T/web-batches.json"
fetch_json api/stations >"$T/web-stations.json"
fetch_json "api/history?mac=$mac" >"$T/web-history.json"
fetch_json api/export.csv | tail -n +2 | sort >"$T/web-export.csv"
LOG=$T/serve.out
check "serve --central lists every station's batches (the server's batch names)" \
	bash -c "[ \"\$(node -e 'console.log(JSON.parse(require(\"fs\").readFileSync(process.argv[1])).map((b) => b.name).sort().join(\" \"))' '$T/web-batches.json')\" = \"\$(PGPASSWORD=$PASSWORD psql -X -q -At '$BASE' -c 'SELECT name FROM batches ORDER BY name' | tr '\n' ' ' | sed 's/ \$//')\" ]"
check "serve --central: the three stations, with their latest batch and 66 units between them" \
	node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1]));
		const names = s.map((x) => x.station).sort().join(" ");
		const last = Object.fromEntries(s.map((x) => [x.station, x.batch]));
		if (names !== "st1 st2 st3" || last.st1 !== "st1-e" || !s.every((x) => typeof x.live === "boolean")) process.exit(1);' \
	"$T/web-stations.json"
check "serve --central: the search by MAC finds its $local_hist programmings" \
	node -e 'if (JSON.parse(require("fs").readFileSync(process.argv[1])).length !== Number(process.argv[2])) process.exit(1)' \
	"$T/web-history.json" "$local_hist"
diff "$T/web-export.csv" "$T/central.csv" | head -c 600 >"$T/web-export.diff"
LOG=$T/web-export.diff
check "serve --central: the CSV export equals export --central" cmp -s "$T/web-export.csv" "$T/central.csv"
kill "$SERVE_PID" 2>/dev/null
wait "$SERVE_PID" 2>/dev/null

"$E" db verify --central >"$T/verify.out" 2>&1
rc=$?
LOG=$T/verify.out
check "db verify --central: three station chains intact" \
	bash -c "[ $rc -eq 0 ] && [ \$(grep -c '^OK: station' '$T/verify.out') -eq 3 ] && grep -q '^OK: 3 station chains, 66 units' '$T/verify.out'"
victim=$(psql_q "SELECT u.uuid FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name = 'st3-c' ORDER BY u.seq LIMIT 1 OFFSET 2")
psql_q "UPDATE units SET mac = '5c:cf:7f:ff:ff:ff' WHERE uuid = '$victim'" >/dev/null
"$E" db verify --central >"$T/verify.out" 2>&1
rc=$?
check "verify --central names a unit changed centrally (exit 1)" \
	bash -c "[ $rc -eq 1 ] && grep -q \"TAMPERED: station st3@.*changed: .*$victim\" '$T/verify.out' && [ \$(grep -c '^OK: station' '$T/verify.out') -eq 2 ]"
gone=$(psql_q "SELECT u.uuid FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name = 'st1-b' ORDER BY u.seq LIMIT 1 OFFSET 1")
psql_q "DELETE FROM steps WHERE unit_id = (SELECT id FROM units WHERE uuid = '$gone'); DELETE FROM units WHERE uuid = '$gone'" >/dev/null
"$E" db verify --central >"$T/verify.out" 2>&1
check "verify --central names a unit deleted centrally" grep -q "TAMPERED: station st1@.*deleted: " "$T/verify.out"

# --- 6. serial numbers leased from the central database (issue 16) -------------
# 300 units between three more stations that share counter "leased" (ranges
# of 25), on a 4 KiB image (the simulator with no wire time: the numbers are
# what is tested, not the flashing).  Each simulator has two modules whose
# sector at 0x10000 is stuck at 1s: those units FAIL at verify.  Stations
# 1 and 2 return a failed unit's number (commit_on_pass), station 3 voids
# it (void_on_fail).  A: all up, 60 units each at once (every station leases
# three times).  B: the server is stopped; each station programs what it
# has leased and stops with a clear message.  C: the server is back; each
# station leases again and programs the rest of its 100.
mkdir -p "$T/lr/images" && head -c 4096 /dev/urandom >"$T/lr/images/tiny.bin"
for policy in commit_on_pass void_on_fail; do
	cat >"$T/lr/$policy.yaml" <<YAML
recipe: leased
chip: esp8266
serial: { counter: leased, format: "L-{seq:05}", lease: 25, policy: $policy }
steps:
  - write: { file: images/tiny.bin, address: 0x10000 }
  - verify: md5
  - reset: run
YAML
done
# serial_sim K ROUND COUNT: the simulator of station ssK for a round, COUNT
# modules (new MACs: 5c:cf:7f:7K:0ROUND:00 + i; modules 7 and 33 stuck, of
# those there are; 512 KB of flash each, quick to set up), started without
# waiting (sim_wait)
serial_sim() {
	local i stuck=()
	for i in 7 33; do [ "$i" -lt "$3" ] && stuck+=(--dev "$i:fault=stuck@0x10000"); done
	sim_spawn "ss$1$2" --devices "$3" --flash 512KB --link rfc2217 --time-scale 0 --mac "5c:cf:7f:7$1:0$2:00" "${stuck[@]}"
}
# serial_station K ROUND COUNT: station ssK on its simulator of the round
serial_station() {
	local recipe=commit_on_pass
	[ "$1" = 3 ] && recipe=void_on_fail
	# shellcheck disable=SC2046
	env $(station_env "$1") "$E" run "$T/lr/$recipe.yaml" --batch "ss$1-$2" --count "$3" --plain \
		--station-name "ss$1" --db "$T/ss$1.sqlite" \
		$(awk '$1 == "device" { printf " --port %s", $3 }' "$T/ss$1$2.devices") >"$T/ss$1-$2.out" 2>&1 &
	STATION_PID=$!
	PIDS+=($!)
}
ssq() { sqlite3 "$T/ss$1.sqlite" "$2"; }
programmed() { ssq "$1" "SELECT count(*) FROM units WHERE result IN ('PASS', 'FAIL')"; }
all_programmed() { echo $(( $(programmed 1) + $(programmed 2) + $(programmed 3) )); }
serials_of() { for k in 1 2 3; do ssq "$k" "SELECT serial FROM units WHERE result = 'PASS'"; done; }
# count_of RESULT: the units with that result over the three stations
count_of() { local k n=0; for k in 1 2 3; do n=$((n + $(ssq "$k" "SELECT count(*) FROM units WHERE result = '$1'"))); done; echo "$n"; }
# run_round ROUND COUNT1 COUNT2 COUNT3: the three at once; rcs = how many failed
run_round() {
	local round=$1 k pids=(); shift
	for k in 1 2 3; do serial_sim "$k" "$round" "${!k}"; done
	for k in 1 2 3; do sim_wait "ss$k$round" || return 1; done
	for k in 1 2 3; do serial_station "$k" "$round" "${!k}"; pids+=("$STATION_PID"); done
	rcs=0
	for p in "${pids[@]}"; do wait "$p" || rcs=$((rcs + 1)); done
}
t0=$SECONDS
run_round 1 60 60 60
echo "# phase 6, A: $((SECONDS - t0)) s"
LOG=$T/ss1-1.out
check_eq "A, all up: three stations at once program 60 units each (2 FAIL each)" \
	"$(all_programmed) $(count_of FAIL)" "180 6"
check_eq "... 174 PASS units with 174 different serials" "$(serials_of | grep -c .) $(serials_of | sort -u | grep -c .)" "174 174"
pg_stop
run_round 2 40 40 40
echo "# phase 6, B: $((SECONDS - t0)) s"
LOG=$T/ss2-2.out
in_b=$(for k in 1 2 3; do ssq "$k" "SELECT count(*) FROM units u JOIN batches b ON b.id = u.batch_id WHERE b.name = 'ss$k-2' AND u.result IN ('PASS', 'FAIL')"; done | paste -sd' ')
check "B, server down: each station programs what it leased ($in_b units), not a whole batch of 40" \
	bash -c "for n in $in_b; do [ \$n -ge 1 ] && [ \$n -lt 40 ] || exit 1; done"
check "... and each stops with a clear message" \
	grep -q 'this station has used every serial number leased to it, and the central database cannot lease more' \
	"$T/ss1-2.out" "$T/ss2-2.out" "$T/ss3-2.out"
check_eq "... still no serial twice" "$(serials_of | sort | uniq -d)" ""
pg_start
run_round 3 $((100 - $(programmed 1))) $((100 - $(programmed 2))) $((100 - $(programmed 3)))
echo "# phase 6, C: $((SECONDS - t0)) s"
LOG=$T/ss1-3.out
check_eq "C, server back: each station leases again and programs the rest" \
	"$(grep -l 'leased serial numbers [0-9]* to [0-9]* of counter leased' "$T/ss1-3.out" "$T/ss2-3.out" "$T/ss3-3.out" | wc -l)" 3
check_eq "300 units programmed between the three stations, 100 each" \
	"$(programmed 1) $(programmed 2) $(programmed 3)" "100 100 100"
pass=$(count_of PASS)
check_eq "every PASS unit has a serial, and no serial is given twice ($pass PASS units)" \
	"$(serials_of | grep -c '^L-[0-9]\{5\}$') $(serials_of | sort -u | grep -c .)" "$pass $pass"
check_eq "no committed serial belongs to a failed unit" \
	"$(for k in 1 2 3; do ssq "$k" "SELECT count(*) FROM serials s JOIN units u ON u.uuid = s.unit_uuid WHERE s.state = 'committed' AND u.result IS NOT 'PASS'"; done | paste -sd' ')" "0 0 0"
# A FAIL unit's reservation ends returned (stations 1 and 2) or voided
# (station 3), each with its event (a returned number goes to a later unit).
# fails_events K KIND: "FAIL units, KIND events about serials, voided serials"
fails_events() {
	echo "$(ssq "$1" "SELECT count(*) FROM units WHERE result = 'FAIL'")" \
		"$(ssq "$1" "SELECT count(*) FROM events WHERE kind = '$2' AND message LIKE 'serial%'")" \
		"$(ssq "$1" "SELECT count(*) FROM serials WHERE state = 'voided'")"
}
f1=$(ssq 1 "SELECT count(*) FROM units WHERE result = 'FAIL'")
f2=$(ssq 2 "SELECT count(*) FROM units WHERE result = 'FAIL'")
f3=$(ssq 3 "SELECT count(*) FROM units WHERE result = 'FAIL'")
check_eq "FAIL units follow the policy: station 1 returns each number ($f1 FAILs, returned events, voided)" \
	"$(fails_events 1 identity-returned)" "$f1 $f1 0"
check_eq "... station 2 too ($f2 FAILs)" "$(fails_events 2 identity-returned)" "$f2 $f2 0"
check_eq "... station 3 voids each one ($f3 FAILs, voided events, voided)" "$(fails_events 3 identity-voided)" "$f3 $f3 $f3"
overlaps=$(psql_q "SELECT count(*) FROM serial_leases a JOIN serial_leases b ON a.id < b.id AND a.counter = b.counter AND a.first <= b.last AND b.first <= a.last WHERE a.counter = 'leased'")
check_eq "the central ranges never overlap ($(psql_q "SELECT count(*) FROM serial_leases WHERE counter = 'leased'") leases)" "$overlaps" 0
outside=0
for k in 1 2 3; do
	psql_q "SELECT first || ' ' || last FROM serial_leases WHERE counter = 'leased' AND station LIKE 'ss$k@%'" >"$T/leases$k"
	outside=$((outside + $(ssq "$k" "SELECT seq FROM serials" | awk 'NR == FNR { lo[n] = $1; hi[n++] = $2; next }
		{ f = 0; for (i = 0; i < n; i++) if (lo[i] <= $1 && $1 <= hi[i]) f = 1; c += !f } END { print c + 0 }' "$T/leases$k" -)))
done
check_eq "every number a station used lies in a range leased to that station" "$outside" 0
echo "# phase 6: $((SECONDS - t0)) s"

for k in 1 2 3; do "$E" sync status --db "$T/st$k.sqlite"; done >"$T/status.out" 2>&1
LOG=$T/status.out
leaks=$(grep -l -F -- "$PASSWORD" "$T"/*.out "$T"/*.err "$T"/*.json "$T"/*.csv 2>/dev/null | wc -l)
check "the password appears in no output, log or status (and status shows it redacted)" \
	bash -c "[ $leaks -eq 0 ] && grep -qF 'espline:***@' '$T/status.out'"

tap_done
