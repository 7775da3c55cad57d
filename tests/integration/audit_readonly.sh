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
SIM_IDLE=60 sim_start sim --devices 2 --time-scale 0 || { echo "not ok 1 - simulator did not start"; exit 1; }
printf 'recipe: m\nchip: esp8266\nconnect: { reset: none }\nsteps:\n  - write: { file: %s, address: 0x0 }\n  - verify: md5\n' \
	"$PWD/recipes/images/nodemcu-demo.bin" >"$T/m.yaml"
tap_run 60 "$E" run "$T/m.yaml" --batch RO1 --count 1 --port "$(sim_dev_port sim 0)" --db "$DB" --plain
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

# --- tamper evidence: anchors and the recipe text (item 6) -----------------------
tap_run 60 "$E" run "$T/m.yaml" --batch RO2 --count 1 --port "$(sim_dev_port sim 1)" --db "$DB" --plain
tap_run 30 "$E" db anchor --db "$DB"
check "db anchor prints the head as one line" \
	grep -qE '^espline-anchor 1 origin=[0-9a-f-]{36} seq=2 hash=[0-9a-f]{64} time=[0-9T:-]+Z$' "$T/out"
tap_run 30 "$E" db anchor --db "$DB" --output "$T/anchor.txt"
check "db anchor --output FILE writes it" eval '[ "$rc" -eq 0 ] && grep -q "seq=2 " "$T/anchor.txt"'
tap_run 30 "$E" db anchor --db "$DB" --output "$T/anchor.txt"
check "... and never overwrites an earlier anchor" eval '[ "$rc" -ne 0 ] && has "cannot write $T/anchor.txt"'
tap_run 30 "$E" db verify --db "$DB" --anchor "$T/anchor.txt"
check "db verify --anchor on the intact database: exit 0, says the anchor holds" eval \
	'[ "$rc" -eq 0 ] && has "anchor: the chain still holds seq 2"'
{ echo "-----BEGIN PGP SIGNED MESSAGE-----"; echo; cat "$T/anchor.txt"; echo "-----BEGIN PGP SIGNATURE-----"; } >"$T/signed.txt"
tap_run 30 "$E" db verify --db "$DB" --anchor "$T/signed.txt"
check "... also inside a signature envelope" [ "$rc" -eq 0 ]
echo "nonsense" >"$T/bad-anchor.txt"
tap_run 30 "$E" db verify --db "$DB" --anchor "$T/bad-anchor.txt"
check "an anchor file that is not one: exit 2, says what is expected" eval \
	'[ "$rc" -eq 2 ] && has "$T/bad-anchor.txt: not an espline anchor"'
tap_run 30 "$E" db verify --db "$DB" --anchor /dev/zero
check "an anchor that is not a regular file: exit 2" eval '[ "$rc" -eq 2 ] && has "anchor /dev/zero is a character device"'
# rewind: the last unit removed and the head moved back, consistently
cp "$DB" "$T/rewound.sqlite"
sqlite3 "$T/rewound.sqlite" "DELETE FROM steps WHERE unit_id = (SELECT id FROM units WHERE seq = 2);
	DELETE FROM units WHERE seq = 2;
	UPDATE chain SET seq = 1, hash = (SELECT hash FROM units WHERE seq = 1)"
tap_run 30 "$E" db verify --db "$T/rewound.sqlite"
check "a consistent rewind passes a plain verify (why anchors are needed)" [ "$rc" -eq 0 ]
tap_run 30 "$E" db verify --db "$T/rewound.sqlite" --anchor "$T/anchor.txt"
check "... but not verify --anchor: exit 1, TAMPERED, rewound past the anchor" eval \
	'[ "$rc" -eq 1 ] && has "TAMPERED: rewound: the chain ends at seq 1 but the anchor was taken at seq 2"'
cp "$DB" "$T/recipe-edit.sqlite"
sqlite3 "$T/recipe-edit.sqlite" "UPDATE recipes SET yaml = replace(yaml, 'verify: md5', 'verify: { regions: [] }')"
tap_run 30 "$E" db verify --db "$T/recipe-edit.sqlite"
check "an edited recipe text: exit 1, TAMPERED, names the recipe" eval \
	'[ "$rc" -eq 1 ] && has "TAMPERED: changed: recipe '"'m'"'" && has "its stored text no longer has that SHA-256"'

tap_done
