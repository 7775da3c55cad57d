#!/usr/bin/env bash
# audit_readonly.sh - read commands (db verify, db info, report, history,
# export, sync status) open the database read-only (issue 19 item 7): they
# work on a copy the user cannot write (a 444 file in a 555 folder, as
# nobody: no -shm file can be made for the WAL), and they never create,
# convert or migrate a database: an empty file stays empty, /dev/null is
# refused, an older schema is left as it is.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir audit-ro
TAP_SHOW=("$T/out")
DB=$T/db/u.sqlite

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
SIM_IDLE=60 sim_start sim --time-scale 0 || { echo "not ok 1 - simulator did not start"; exit 1; }
printf 'recipe: m\nchip: esp8266\nconnect: { reset: none }\nsteps:\n  - write: { file: %s, address: 0x0 }\n  - verify: md5\n' \
	"$PWD/recipes/images/nodemcu-demo.bin" >"$T/m.yaml"
tap_run 60 "$E" run "$T/m.yaml" --batch RO1 --count 1 --port "$(sim_port sim)" --db "$DB" --plain
check "a unit is recorded to audit" [ "$rc" -eq 0 ]
MAC=$(sqlite3 "$DB" 'select mac from units limit 1')

# an audit copy nobody may write: file 444, folder 555
mkdir "$T/ro" && cp "$DB" "$T/ro/u.sqlite" && chmod 444 "$T/ro/u.sqlite" && chmod 555 "$T/ro" && chmod 755 "$T"
before=$(sha256sum "$T/ro/u.sqlite")
as_nobody() { tap_run 30 setpriv --reuid=nobody --regid=nogroup --clear-groups "$E" "$@" --db "$T/ro/u.sqlite"; }
as_nobody db verify
check "db verify on a read-only copy: exit 0, chain OK" eval '[ "$rc" -eq 0 ] && has "OK: 1 sealed units"'
as_nobody db info
check "db info on a read-only copy: exit 0" eval '[ "$rc" -eq 0 ] && has "schema    version"'
as_nobody report --batch RO1
check "report on a read-only copy: exit 0, 1 unit" eval '[ "$rc" -eq 0 ] && grep -qE "^units +1 " "$T/out"'
as_nobody history "$MAC"
check "history on a read-only copy: exit 0, the PASS shown" eval '[ "$rc" -eq 0 ] && has "PASS        $MAC"'
as_nobody export --format json
check "export on a read-only copy: exit 0" eval '[ "$rc" -eq 0 ] && has "\"mac\""'
as_nobody sync status
check "sync status on a read-only copy: exit 0" [ "$rc" -eq 0 ]
check "the copy is byte for byte unchanged, with no -wal or -shm beside it" eval \
	'[ "$(sha256sum "$T/ro/u.sqlite")" = "$before" ] && [ "$(ls "$T/ro")" = u.sqlite ]'

# nothing is created, converted or migrated
: >"$T/empty.sqlite"
for cmd in "db verify" "db info" report export; do
	# shellcheck disable=SC2086
	tap_run 30 "$E" $cmd --db "$T/empty.sqlite"
	check "$cmd on an empty file: exit 4, says it is not an espline database, leaves it empty" eval \
		'[ "$rc" -eq 4 ] && has "$T/empty.sqlite is not an espline database" && [ ! -s "$T/empty.sqlite" ] && [ ! -e "$T/empty.sqlite-wal" ]'
done
tap_run 30 "$E" db verify --db /dev/null
check "db verify --db /dev/null: exit 4, no migration attempted" eval \
	'[ "$rc" -eq 4 ] && has "/dev/null is not an espline database" && ! has migrat'
tap_run 30 "$E" report --db "$T/none.sqlite"
check "report on a missing file: exit 4, creates nothing" eval '[ "$rc" -eq 4 ] && [ ! -e "$T/none.sqlite" ]'
cp "$DB" "$T/old.sqlite" && sqlite3 "$T/old.sqlite" 'PRAGMA user_version = 2'
tap_run 30 "$E" db verify --db "$T/old.sqlite"
check "an older schema: exit 4, says read commands never migrate" eval \
	'[ "$rc" -eq 4 ] && has "read commands never migrate a database"'
check "... and the schema version is left at 2" [ "$(sqlite3 "$T/old.sqlite" 'PRAGMA user_version')" = 2 ]

tap_done
