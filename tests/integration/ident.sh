#!/usr/bin/env bash
# ident.sh - binding the physical unit (issue 16, part B), end to end
# against simulated modules, with stand-ins for the operator's devices: a
# fake scanner (tests/tools/fake_scanner.py, a pty that types codes) and a
# fake label printer (tests/tools/fake_printer.py, a TCP listener that keeps
# what it receives):
#   1. codes scanned as "slot label, then the unit" are bound to the right
#      slots; each PASS unit's label is byte for byte the template with its
#      fields (rendered here by sed); on_unit_done gets the record as JSON
#      and its exit status is recorded;
#   2. slot names (the same batch): a station file names each port (A1, A2);
#      the names are in every --json event of the port, in the unit records
#      (column, export, history), and the hash chain covers them;
#   3. map: next_waiting: each code goes to one waiting slot, none twice;
#   4. refusals: a code that fails expect.barcode and a route_check that
#      says no are FAILs with their own reasons, and no step runs;
#   5. the printer down, then up: each label's hand-off (queued, failed,
#      sent, and when) is in its unit's record, history and JSON export.
# In 1, the operator takes 1.5 s to scan: that wait is left out of the
# units' durations and recorded as their "scan" events.
# A printer that is off, and hooks that hang or fail: tests/integration/
# bad_input.sh (its label queue is printed first by the next run there).
# TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir ident
TAP_TAIL=20

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
sql() { sqlite3 "$1" "$2"; }

# station_file FILE DB [MORE YAML]: a station file for the simulator "sim"'s
# devices 0 and 1 as slots A1 and A2, running recipes/minimal.yaml.
station_file() {
	cat >"$1" <<EOF
station: ident-test
recipe: ${RECIPE:-$PWD/recipes/minimal.yaml}
ports:
  - { slot: A1, port: "$(sim_dev_port sim 0)" }
  - { slot: A2, port: "$(sim_dev_port sim 1)" }
database: $2
${3:-}
EOF
}

sim_launch sim --devices 2 --link rfc2217 --time-scale 0 || exit 1

# --- 1. scanner and printer stand-ins --------------------------------------
# start_helper NAME SCRIPT DIR: a fake scanner or printer, ready when DIR/ready is
start_helper() {
	mkdir -p "$3"
	python3 "tests/tools/$2" "$3" ${4:-} >"$T/$1.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$3/ready" ] && return 0; sleep 0.02; done
	echo "# $1 did not start:"; sed 's/^/#   /' "$T/$1.log"; return 1
}
# wait_for FILE PATTERN [SECONDS]: until a line of FILE matches PATTERN (ERE)
wait_for() {
	local deadline=$((SECONDS + ${3:-20}))
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		[ $SECONDS -ge "$deadline" ] && return 1
		sleep 0.05
	done
}
count_of() { grep -cE -- "$2" "$1" 2>/dev/null; }
# the label a unit should get: the template with its fields, rendered here
# by sed, independently of espline
expected_label() { # MAC SLOT CODE BATCH
	sed -e "s/{mac}/$1/g" -e "s/{slot}/$2/g" -e "s/{barcode}/$3/g" -e "s/{batch}/$4/g" -e "s/{id}/$1/g" "$T/unit.zpl"
}
start_helper scanner fake_scanner.py "$T/scan" || exit 1
start_helper printer fake_printer.py "$T/printer" || exit 1
SCANNER=$(cat "$T/scan/ready") PRINTER_PORT=$(cat "$T/printer/ready")
cat >"$T/unit.zpl" <<'EOF'
^XA
^FO40,30^A0N,30,30^FDMAC {mac}^FS
^FO40,70^A0N,24,24^FDslot {slot} code {barcode} lot {batch}^FS
^FO40,110^BQN,2,4^FDQA,{id}^FS
^XZ
EOF
cat >"$T/done.sh" <<'EOF'
#!/bin/sh
# on_unit_done: keep the unit record it is given, one file per unit
cat >"$(dirname "$0")/done.$$.json"
EOF
chmod +x "$T/done.sh"
DB=$T/scan.sqlite
station_file "$T/scan.yaml" "$DB" "scan: { from: \"$SCANNER\", map: slot_label, timeout: 30s }
label: { on_pass: unit.zpl, printer: \"127.0.0.1:$PRINTER_PORT\", timeout: 2s, retry: 200ms }
hooks:
  on_unit_done: { run: [./done.sh], timeout: 5s }"
timeout 60 "$E" run --station-file "$T/scan.yaml" --batch LOT7 --count 2 --json >"$T/scan.jsonl" 2>"$T/scan.err" &
RUN=$!
LOG=$T/scan.jsonl
check "both slots wait for their code (scan_wait events)" eval \
	'wait_for "$T/scan.jsonl" "\"event\":\"scan_wait\".*\"slot\":\"A1\"" && wait_for "$T/scan.jsonl" "\"event\":\"scan_wait\".*\"slot\":\"A2\""'
# the operator takes 1.5 s, then scans A2's label, A2's unit, then A1's
# label and unit
sleep 1.5
printf 'A2\nPCB-0002\nA1\nPCB-0001\n' >>"$T/scan/codes"
wait_exit "$RUN" 60
check "a batch of 2 with scanned codes and labels: exit 0" [ $? -eq 0 ]
for k in 0 1; do
	slot=A$((k + 1)) mac=$(sim_dev_field sim "$k" mac) code=PCB-000$((k + 1))
	check_eq "slot $slot: the unit $mac is bound to the code scanned for $slot" \
		"$(sql "$DB" "select slot || ' ' || barcode || ' ' || result from units where mac = '$mac'")" "$slot $code PASS"
	"$E" history "$code" --db "$DB" >"$T/hist" 2>&1
	check "history $code finds $mac" grep -q "PASS  *$mac" "$T/hist"
	expected_label "$mac" "$slot" "$code" LOT7 >"$T/want.zpl"
	got=$(grep -lF "MAC $mac" "$T"/printer/label-*.zpl 2>/dev/null | head -n 1)
	check "slot $slot: the printer got exactly the templated label for $mac" cmp -s "${got:-/dev/null}" "$T/want.zpl"
	check_eq "slot $slot: the label recorded with the unit is the one printed" \
		"$(sql "$DB" "select label from units where mac = '$mac'")" "$(cat "$T/want.zpl")"
done
check_eq "the printer got 2 labels, one per PASS unit" "$(ls "$T"/printer/label-*.zpl 2>/dev/null | wc -l)" 2
check_eq "on_unit_done got each unit's record as JSON (slot, barcode, result)" \
	"$(cat "$T"/done.*.json 2>/dev/null | python3 -c 'import json,sys
d=[json.loads(l) for l in sys.stdin.read().split("\n") if l.strip()]
print(" ".join(sorted(x["slot"]+"="+x["barcode"]+"="+x["result"] for x in d)))')" "A1=PCB-0001=PASS A2=PCB-0002=PASS"
check_eq "its exit status is recorded with each unit (events)" \
	"$(sql "$DB" "select count(*) from events where kind = 'hook' and message = 'hooks.on_unit_done exited 0' and unit_uuid in (select uuid from units)")" 2
check "db verify: the chain covers slot, code and label" "$E" db verify --db "$DB"
# The wait for the operator is not the unit's duration (units/hour and the
# per-unit tables count the line): from the event stream, each unit ran at
# least from its scan_wait to its unit_done, >= 1.5 s; its recorded
# duration is at least 1 s less than that (the wait, less the connect
# before it: up to 0.2 s under TSan), its ended - started is not; and its
# "scan" event says how long it waited.
spans=$(python3 -c 'import json,sys
from datetime import datetime
t = lambda e: datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
wait = {e["port"]: t(e) for e in ev if e["event"] == "scan_wait"}
for e in ev:
    if e["event"] == "unit_done":
        print(e["unit"], int((t(e) - wait[e["port"]]) * 1000))' "$T/scan.jsonl")
short=0
while read -r unit span; do
	got=$(sql "$DB" "select duration_ms || ' ' || (ended_ms - started_ms) from units where uuid = '$unit'")
	read -r dur whole <<<"$got"
	tap_note "unit $unit: scan_wait to unit_done $span ms, duration $dur ms, ended - started $whole ms"
	[ "$span" -ge 1500 ] && [ $((dur + 1000)) -le "$span" ] && [ "$whole" -ge $((span - 100)) ] && short=$((short + 1))
done <<<"$spans"
check_eq "each unit's duration leaves out its >= 1.5 s wait for the scan (its span does not)" "$short" 2
waits=$(sql "$DB" "select message from events where kind = 'scan' order by id" | sed -nE "s/^scanned '(PCB-000[12])' after ([0-9.]+) s waiting for the operator.*/\1 \2/p")
check "... and its scan event records the wait ($(echo $waits))" \
	awk '{ n++; if ($2 < 1.4) bad++ } END { exit !(n == 2 && !bad) }' <<<"$waits"
"$E" history PCB-0001 --db "$DB" >"$T/hist" 2>&1
check "history shows the unit's scan, its label queued and sent to the printer" \
	bash -c "grep -qE '^      [0-9TZ:.-]+  scan  scanned .PCB-0001. after [0-9.]+ s' '$T/hist' &&
		grep -qE '^      [0-9TZ:.-]+  label-queued  queued for the printer 127.0.0.1:$PRINTER_PORT' '$T/hist' &&
		grep -qE '^      [0-9TZ:.-]+  label-sent  sent to the printer 127.0.0.1:$PRINTER_PORT \([0-9]+ bytes\)$' '$T/hist'"
# --- 2. slot names (in the batch above) ------------------------------------
LOG=$T/scan.jsonl
for k in 0 1; do
	slot=A$((k + 1)) port=$(sim_dev_port sim "$k") mac=$(sim_dev_field sim "$k" mac)
	# every event of the port names its slot, and no other slot
	wrong=$(grep -F "\"port\":\"$port\"" "$T/scan.jsonl" | grep -vcF "\"slot\":\"$slot\"")
	seen=$(grep -F "\"port\":\"$port\"" "$T/scan.jsonl" | grep -cF '"event":"unit_done"')
	check_eq "slot $slot: every --json event of $port carries \"slot\":\"$slot\" ($seen unit_done)" "$wrong/$seen" "0/1"
	check_eq "slot $slot: the record of $mac has slot $slot" \
		"$(sql "$DB" "select slot || ' ' || port || ' ' || result from units where mac = '$mac'")" "$slot $port PASS"
	"$E" history "$mac" --db "$DB" >"$T/hist" 2>&1
	check "slot $slot: history $mac shows 'slot $slot'" grep -q "^    slot $slot " "$T/hist"
done
"$E" export --format csv --batch LOT7 --db "$DB" >"$T/export.csv"
check_eq "the CSV export's slot column (28) lists A1 and A2" \
	"$(python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(" ".join(sorted(x["slot"] for x in r)))' "$T/export.csv")" "A1 A2"
sqlite3 "$DB" "update units set slot = 'B9' where slot = 'A2'"
"$E" db verify --db "$DB" >"$T/verify" 2>&1
check "db verify: a slot name edited afterwards breaks the chain (exit 1)" [ $? -eq 1 ]


# --- 3. map: next_waiting -----------------------------------------------------
DB=$T/next.sqlite
station_file "$T/next.yaml" "$DB" "scan: { from: \"$SCANNER\", map: next_waiting, timeout: 30s }"
timeout 60 "$E" run --station-file "$T/next.yaml" --batch NEXT --count 2 --json >"$T/next.jsonl" 2>"$T/next.err" &
RUN=$!
LOG=$T/next.jsonl
wait_for "$T/next.jsonl" '"event":"scan_wait".*"slot":"A1"' && wait_for "$T/next.jsonl" '"event":"scan_wait".*"slot":"A2"'
echo NX-1 >>"$T/scan/codes"
wait_for "$T/next.jsonl" '"event":"scanned"'
echo NX-2 >>"$T/scan/codes"
wait_exit "$RUN" 60
check "next_waiting: a batch of 2, one code typed at a time: exit 0" [ $? -eq 0 ]
check_eq "each code went to one waiting slot, none twice" \
	"$(sql "$DB" "select group_concat(barcode, ' ') from (select barcode from units order by barcode)")" "NX-1 NX-2"
for slot in A1 A2; do
	said=$(grep '"event":"scanned"' "$T/next.jsonl" | grep "\"slot\":\"$slot\"" | sed -E 's/.*"code":"([^"]*)".*/\1/')
	check_eq "slot $slot: the scanned event and the record agree" "$(sql "$DB" "select barcode from units where slot = '$slot'")" "$said"
done

# --- 4. refusals before programming ------------------------------------------
sed -e 's|^steps:|expect: { barcode: "^PCB-[0-9]{4}$" }\nsteps:|' -e "s|images/nodemcu-demo.bin|$PWD/recipes/images/nodemcu-demo.bin|" \
	recipes/minimal.yaml >"$T/coded.yaml"
printf '%s\n' '#!/bin/sh' '# route_check: the MES refuses every code that ends in 9' \
	'if grep -q "\"barcode\":\"PCB-[0-9]*9\""; then echo "MES: not routed to this line"; exit 3; fi' >"$T/route.sh"
chmod +x "$T/route.sh"
DB=$T/refuse.sqlite
RECIPE=$T/coded.yaml station_file "$T/refuse.yaml" "$DB" "scan: { from: \"$SCANNER\", timeout: 30s }
label: { on_pass: unit.zpl, printer: \"127.0.0.1:$PRINTER_PORT\", timeout: 2s }
hooks:
  route_check: { run: [./route.sh], timeout: 5s }"
timeout 60 "$E" run --station-file "$T/refuse.yaml" --batch REF --count 2 --plain >"$T/refuse.out" 2>&1 &
RUN=$!
LOG=$T/refuse.out
wait_for "$T/refuse.out" 'A1 .*waits: scan' && wait_for "$T/refuse.out" 'A2 .*waits: scan'
printf 'A1\nBAD-01\nA2\nPCB-0009\n' >>"$T/scan/codes"
wait_exit "$RUN" 60
check "refused units: exit 1" [ $? -eq 1 ]
check_eq "a code that fails expect.barcode: FAIL 'barcode: refused', with the code and the pattern" \
	"$(sql "$DB" "select result || ' | ' || error_kind || ' | ' || error from units where slot = 'A1'")" \
	"FAIL | barcode: refused | barcode: scanned code 'BAD-01' does not match expect.barcode \"^PCB-[0-9]{4}\$\" (line 7)"
check_eq "route_check saying no: FAIL 'route_check: refused', with what it printed" \
	"$(sql "$DB" "select result || ' | ' || error_kind || ' | ' || error from units where slot = 'A2'")" \
	"FAIL | route_check: refused | route_check: hooks.route_check ($T/route.sh) exited 3: MES: not routed to this line"
check_eq "nothing was written to either unit (no step ran)" "$(sql "$DB" "select count(*) from steps")" 0
check_eq "no label for a refused unit" "$(ls "$T"/printer/label-*.zpl | wc -l)" 2

# --- 5. the printer down, then up: each label's hand-off in its unit's record --
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DB=$T/down.sqlite
station_file "$T/down.yaml" "$DB" "scan: { from: \"$SCANNER\", map: next_waiting, timeout: 30s }
label: { on_pass: unit.zpl, printer: \"127.0.0.1:$DEAD\", timeout: 500ms, retry: 200ms }"
timeout 60 "$E" run --station-file "$T/down.yaml" --batch DOWN --count 2 --json >"$T/down.jsonl" 2>"$T/down.err" &
RUN=$!
LOG=$T/down.jsonl
wait_for "$T/down.jsonl" '"event":"scan_wait".*"slot":"A1"' && wait_for "$T/down.jsonl" '"event":"scan_wait".*"slot":"A2"'
echo DN-1 >>"$T/scan/codes"
wait_for "$T/down.jsonl" 'label not printed: printer 127.0.0.1:'"$DEAD"
start_helper printer2 fake_printer.py "$T/printer2" "$DEAD"
wait_for "$T/printer2/label-1.zpl" '\^XZ' 20
echo DN-2 >>"$T/scan/codes"
wait_exit "$RUN" 60
check "printer down, then up: a batch of 2 passes (exit 0), 2 labels printed" \
	bash -c "[ $? -eq 0 ] && [ \$(ls '$T'/printer2/label-*.zpl | wc -l) -eq 2 ]"
label_events() { sql "$DB" "select group_concat(kind, ' ') from (select e.kind from events e join units u on u.uuid = e.unit_uuid where u.barcode = '$1' and e.kind like 'label-%' order by e.id)"; }
check_eq "DN-1's record: its label queued, failed (printer down), then sent (printer up)" \
	"$(label_events DN-1)" "label-queued label-failed label-sent"
check_eq "DN-2's record: queued, then sent" "$(label_events DN-2)" "label-queued label-sent"
"$E" history DN-1 --db "$DB" >"$T/hist" 2>&1
LOG=$T/hist
check "history DN-1 says why and when: refused, kept and retried, then sent after the failed tries" \
	bash -c "grep -qE '^      [0-9TZ:.-]+  label-failed  not printed: printer 127.0.0.1:$DEAD: Connection refused; kept in the queue, tried again every 0.2 s' '$T/hist' &&
		grep -qE '^      [0-9TZ:.-]+  label-sent  sent to the printer 127.0.0.1:$DEAD \([0-9]+ bytes\) after [0-9]+ failed tr(y|ies) over [0-9.]+ s' '$T/hist'"
"$E" export --format json --batch DOWN --db "$DB" >"$T/down.json"
LOG=$T/down.json
check "the JSON export carries each unit's label hand-off in its events" \
	python3 -c 'import json,sys
units = json.load(open(sys.argv[1]))
kinds = {u["barcode"]: [e.split("  ")[1] for e in u.get("events", []) if e.split("  ")[1].startswith("label-")] for u in units}
sys.exit(kinds != {"DN-1": ["label-queued", "label-failed", "label-sent"], "DN-2": ["label-queued", "label-sent"]})' "$T/down.json"

tap_done
