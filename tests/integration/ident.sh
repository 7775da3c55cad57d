#!/usr/bin/env bash
# ident.sh - binding the physical unit (issue 16, part B), end to end
# against simulated modules:
#   1. slot names: a station file names each port (A1, A2); the names are in
#      every --json event of the port, in the unit records (column, export,
#      history) and the hash chain still verifies.
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
recipe: $PWD/recipes/minimal.yaml
ports:
  - { slot: A1, port: "$(sim_dev_port sim 0)" }
  - { slot: A2, port: "$(sim_dev_port sim 1)" }
database: $2
${3:-}
EOF
}

sim_launch sim --devices 2 --link rfc2217 --time-scale 0 || exit 1

# --- 1. slot names -------------------------------------------------------
DB=$T/slots.sqlite
station_file "$T/slots.yaml" "$DB"
tap_run 60 "$E" run --station-file "$T/slots.yaml" --batch SLOTS --count 2 --json
LOG=$T/out
check "a batch of 2 through the station file's slots: exit 0" [ "$rc" -eq 0 ]
for k in 0 1; do
	slot=A$((k + 1)) port=$(sim_dev_port sim "$k") mac=$(sim_dev_field sim "$k" mac)
	# every event of the port names its slot, and no other slot
	wrong=$(grep -F "\"port\":\"$port\"" "$T/out" | grep -vcF "\"slot\":\"$slot\"")
	seen=$(grep -F "\"port\":\"$port\"" "$T/out" | grep -cF '"event":"unit_done"')
	check_eq "slot $slot: every --json event of $port carries \"slot\":\"$slot\" ($seen unit_done)" "$wrong/$seen" "0/1"
	check_eq "slot $slot: the record of $mac has slot $slot" \
		"$(sql "$DB" "select slot || ' ' || port || ' ' || result from units where mac = '$mac'")" "$slot $port PASS"
	"$E" history "$mac" --db "$DB" >"$T/hist" 2>&1
	check "slot $slot: history $mac shows 'slot $slot'" grep -q "^    slot $slot " "$T/hist"
done
"$E" export --format csv --batch SLOTS --db "$DB" >"$T/export.csv"
check_eq "the CSV export's slot column (28) lists A1 and A2" \
	"$(python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(" ".join(sorted(x["slot"] for x in r)))' "$T/export.csv")" "A1 A2"
check "db verify: the chain covers the slot names and verifies" "$E" db verify --db "$DB"
sqlite3 "$DB" "update units set slot = 'B9' where slot = 'A2'"
"$E" db verify --db "$DB" >"$T/verify" 2>&1
check "db verify: a slot name edited afterwards breaks the chain (exit 1)" [ $? -eq 1 ]

tap_done
