#!/usr/bin/env bash
# hostile_input.sh - inputs meant to hang, exhaust or fool espline (issue
# 19): files that are not bounded regular files (a FIFO, /dev/zero, a sparse
# 20 GB file, a directory, an oversized recipe) and names that carry control
# characters or would be cut.  Each must be refused at once, with a message
# that names the file or option and the limit, and the right exit code;
# text shown back to the user must never carry a raw control character.
# docs/bad-input.md lists every row.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir hostile
TAP_SHOW=("$T/out")
DB=$T/db.sqlite
run() { tap_run 30 "$E" "$@"; }
no_raw_controls() { ! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$T/out"; }

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"
mkfifo "$T/fifo"
truncate -s 20G "$T/sparse.bin"
NOPORT=rfc2217://127.0.0.1:9   # never reached: the files are refused first

# --- images ------------------------------------------------------------------
run write "$NOPORT" 0x0 /dev/zero
check "write of /dev/zero: exit 2 at once" eval '[ "$rc" -eq 2 ] && [ "$took" -le 5 ]'
check "... says it is a character device" has "image /dev/zero is a character device; espline reads only regular files"
run write "$NOPORT" 0x0 "$T/fifo"
check "write of a FIFO with no writer: exit 2, no hang" eval '[ "$rc" -eq 2 ] && [ "$took" -le 5 ]'
check "... says it is a FIFO" has "image $T/fifo is a FIFO (named pipe); espline reads only regular files"
run write "$NOPORT" 0x0 "$T/sparse.bin"
check "write of a sparse 20 GB file: exit 2, refused from its size" eval '[ "$rc" -eq 2 ] && [ "$took" -le 5 ]'
check "... names the size and the 16 MB limit" has "image $T/sparse.bin is 21474836480 bytes, over the 16 MB limit for image files"
run verify "$NOPORT" 0x0 "$T"
check "verify against a directory: exit 2" [ "$rc" -eq 2 ]
check "... says it is a directory" has "image $T is a directory; espline reads only regular files"

# --- recipes -----------------------------------------------------------------
run recipe check /dev/zero
check "recipe check /dev/zero: exit 2 with a message (it printed nothing before)" eval \
	'[ "$rc" -eq 2 ] && has "recipe /dev/zero is a character device; espline reads only regular files"'
{ printf 'recipe: big\nchip: esp8266\n'; head -c 1100000 /dev/zero | tr '\0' '#'; } >"$T/r/big.yaml"
run run "$T/r/big.yaml" --port "$NOPORT" --db "$DB"
check "a 1.1 MB recipe: exit 2 with a message naming the limit" eval \
	'[ "$rc" -eq 2 ] && has "recipe $T/r/big.yaml is 1100026 bytes, over the 1 MB limit for recipe files"'
printf 'recipe: f\nchip: esp8266\nsteps:\n  - write: { file: ../fifo, address: 0x0 }\n  - verify: md5\n' >"$T/r/fifo.yaml"
run recipe check "$T/r/fifo.yaml"
check "a recipe whose image is a FIFO: exit 2, no hang" eval '[ "$rc" -eq 2 ] && [ "$took" -le 5 ]'
check "... at the file: key" has "$T/r/fifo.yaml:4:20: error: write.file: '../fifo' (resolved to $T/r/../fifo) is not a regular file"

# --- the flasher stub ------------------------------------------------------------
printf 'recipe: m\nchip: esp8266\nsteps:\n  - write: { file: images/nodemcu-demo.bin, address: 0x0 }\n  - verify: md5\n' >"$T/r/m.yaml"
run run "$T/r/m.yaml" --stub /dev/zero --port "$NOPORT" --db "$DB"
check "--stub /dev/zero: exit 2" eval '[ "$rc" -eq 2 ] && has "stub /dev/zero is a character device; espline reads only regular files"'
run run "$T/r/m.yaml" --stub "$T/fifo" --port "$NOPORT" --db "$DB"
check "--stub FIFO: exit 2, no hang" eval '[ "$rc" -eq 2 ] && [ "$took" -le 5 ] && has "stub $T/fifo is a FIFO"'

# --- names -------------------------------------------------------------------
run run "$T/r/m.yaml" --batch $'LOT\e[2J\nfake' --count 1 --port "$NOPORT" --db "$DB"
check "a --batch name with an escape sequence and a newline: exit 2" [ "$rc" -eq 2 ]
check "... says so, showing the name escaped" has '--batch: the name holds a control character at offset 3: LOT\x1B[2J\nfake'
check "... and echoes no raw control character" no_raw_controls
check "... and records nothing (no database created)" [ ! -e "$DB" ]
run run "$T/r/m.yaml" --batch "$(head -c 100000 /dev/zero | tr '\0' L)" --count 1 --port "$NOPORT" --db "$DB"
check "a 100,000-character --batch: exit 2, not cut to fit" eval \
	'[ "$rc" -eq 2 ] && has "--batch: the name is 100000 bytes long, over the limit of 64"'
run run "$T/r/m.yaml" --operator $'ana\x9b' --batch L --count 1 --port "$NOPORT" --db "$DB"
check "an --operator that is not UTF-8: exit 2" eval \
	'[ "$rc" -eq 2 ] && has "--operator: the name is not valid UTF-8 (byte 0x9B at offset 3): ana\x9B"'
run run "$T/r/m.yaml" --station-name $'st\x07' --port "$NOPORT" --db "$DB"
check "a --station-name with a bell: exit 2" eval '[ "$rc" -eq 2 ] && has "--station-name: the name holds a control character"'

# --- what is stored is printed escaped ------------------------------------------
# A name that reached a database some other way (an older espline, a hand
# edit) is shown escaped by history and report.
SIM_IDLE=60 sim_start sim --devices 4 --time-scale 0 || { echo "not ok - simulator did not start"; exit 1; }
sed 's|^steps:|connect: { reset: none }\nsteps:|' "$T/r/m.yaml" >"$T/r/jig.yaml"
run run "$T/r/jig.yaml" --batch OK1 --count 1 --port "$(sim_dev_port sim 0)" --db "$DB"
check "a unit passes for the escaping checks" [ "$rc" -eq 0 ]
sqlite3 "$DB" "UPDATE batches SET name = 'B' || char(27) || '[31m' || char(10) || 'x';
               UPDATE units SET error = 'E' || char(27) || ']0;title' || char(7), error_kind = 'k' || char(13)"
run history "$(sqlite3 "$DB" 'select mac from units limit 1')" --db "$DB"
check "history shows a stored control character escaped" eval 'has "batch B\\x1B[31m\\nx" && no_raw_controls'
check "... in the error text too" has 'error (k\r): E\x1B]0;title\x07'
run report --db "$DB"
check "report prints no raw control character" eval '[ "$rc" -eq 0 ] && no_raw_controls'

# --- the operator is part of the record (item 4) ----------------------------------
ODB=$T/operator.sqlite   # untouched by the hand edits above
run run "$T/r/jig.yaml" --batch OP1 --count 1 --operator ana --json --port "$(sim_dev_port sim 1)" --db "$ODB"
check "a unit passes with --operator ana (JSON events)" [ "$rc" -eq 0 ]
check "... the started event carries the operator" grep -qE '"event":"started".*"operator":"ana"' "$T/out"
check "... and so does the unit's unit_done event" grep -qE '"event":"unit_done".*"operator":"ana"' "$T/out"
MAC1=$(sqlite3 "$ODB" "select u.mac from units u join batches b on b.id = u.batch_id where b.name = 'OP1'")
run history "$MAC1" --db "$ODB"
check "history shows the operator" has "batch OP1  operator ana  station"
run export --format csv --batch OP1 --db "$ODB"
check "the CSV export has an operator column with ana" eval \
	'[ "$(python3 -c "import csv,sys; print(next(csv.DictReader(open(sys.argv[1])))[\"operator\"])" "$T/out")" = ana ]'
run export --format json --batch OP1 --db "$ODB"
check "the JSON export has \"operator\": \"ana\"" grep -q '"operator": *"ana"' "$T/out"
run report --batch OP1 --db "$ODB"
check "the report groups by operator" grep -qE '^ana +1 ' "$T/out"
ESPLINE_REQUIRE_OPERATOR=1 run run "$T/r/jig.yaml" --batch OP2 --count 1 --port "$(sim_dev_port sim 2)" --db "$ODB"
check "a station that requires an operator refuses a run without one: exit 2" eval \
	'[ "$rc" -eq 2 ] && has "this station requires an operator: give --operator NAME"'
run run "$T/r/jig.yaml" --batch OP3 --count 1 --port "$(sim_dev_port sim 2)" --db "$ODB"
check "without --operator the login name is recorded" eval \
	'[ "$rc" -eq 0 ] && [ "$(sqlite3 "$ODB" "select operator from batches where name = '"'OP3'"'")" = "$(id -un)" ]'
sqlite3 "$ODB" "UPDATE batches SET operator = 'eve' WHERE name = 'OP1'"
run db verify --db "$ODB"
check "the operator is chained: changing it is TAMPERED" eval '[ "$rc" -eq 1 ] && has "changed: batch '"'OP1'"'"'
sqlite3 "$ODB" "UPDATE batches SET operator = 'ana' WHERE name = 'OP1'"

# --- batch identity (item 5) --------------------------------------------------------
run run "$T/r/jig.yaml" --batch OP1 --count 1 --port "$(sim_dev_port sim 3)" --db "$ODB"
check "a batch name already recorded is refused without --resume: exit 2" eval \
	'[ "$rc" -eq 2 ] && has "batch OP1 already exists in $ODB" && has "give --resume to add units to it"'
check "... and nothing is recorded" [ "$(sqlite3 "$ODB" "select count(*) from batches where name = 'OP1'")" = 1 ]
run run "$T/r/jig.yaml" --batch NEW1 --resume --count 1 --port "$(sim_dev_port sim 3)" --db "$ODB"
check "--resume of a batch that does not exist: exit 2" eval '[ "$rc" -eq 2 ] && has "there is no batch NEW1"'
sed 's/recipe: m/recipe: m2/' "$T/r/jig.yaml" >"$T/r/jig2.yaml"
run run "$T/r/jig2.yaml" --batch OP1 --resume --count 1 --port "$(sim_dev_port sim 3)" --db "$ODB"
check "--resume with another recipe: exit 2" eval '[ "$rc" -eq 2 ] && has "was made with another recipe"'
run run "$T/r/jig.yaml" --batch OP1 --resume --count 1 --port "$(sim_dev_port sim 3)" --db "$ODB" --plain
check "--resume adds the unit to the same batch (one batch row, 2 units, the operator kept)" eval \
	'[ "$rc" -eq 0 ] && [ "$(sqlite3 "$ODB" "select count(*) || \" \" || min(operator) from batches where name = '"'OP1'"'")" = "1 ana" ] && [ "$(sqlite3 "$ODB" "select count(*) from units u join batches b on b.id = u.batch_id where b.name = '"'OP1'"'")" = 2 ]'
run db verify --db "$ODB"
check "... and the chain is intact" [ "$rc" -eq 0 ]
run report --batch OP11 --db "$ODB"
check "report --batch with an unknown name: exit 1, says so (it printed an empty report)" eval \
	'[ "$rc" -eq 1 ] && has "no batch named OP11 in $ODB"'
run export --format csv --batch OP11 --db "$ODB"
check "export --batch with an unknown name: exit 1" [ "$rc" -eq 1 ]
# the MAC of device 1 passed in OP1; re-flashed in another batch it is a repeat
SIM_IDLE=60 sim_start sim2 --devices 2 --time-scale 0 || { echo "not ok - simulator 2 did not start"; exit 1; }
run run "$T/r/jig.yaml" --batch OP4 --count 1 --json --port "$(sim_dev_port sim2 1)" --db "$ODB"
check "a MAC that passed in an earlier batch is flagged as a repeat in a new one" eval \
	'[ "$rc" -eq 0 ] && grep -qE "\"event\":\"unit_recorded\".*\"repeat_of\":\"[0-9a-f-]{36}\"" "$T/out"'

# --- the central password (item 9) -------------------------------------------------
printf 'postgresql://u:s3cretpw@[::1/db\n' >"$T/central"
chmod 644 "$T/central"
run report --central-file "$T/central"
check "--central-file readable by others: exit 2, says how to fix it" eval \
	'[ "$rc" -eq 2 ] && has "can be read by other users (mode 0644)" && has "chmod 600 $T/central" && ! has s3cretpw'
chmod 600 "$T/central"
run report --central-file "$T/central"
check "--central-file with a malformed URL: libpq's message, password masked" eval \
	'[ "$rc" -eq 4 ] && has "u:***@" && ! has s3cretpw'
run report --central 'host=x password=s3cretpw sslmode=bogus'
check "... also in keyword form" eval '! has s3cretpw && has "password=***"'
run report --central 'postgresql://u:p%40ssw0rdx@[::1/db'
check "... also percent-encoded (libpq quotes the raw text)" eval '! has "p%40ssw0rdx"'

# --- smaller things (item 11) -------------------------------------------------------
printf 'recipe: x\nchip: esp8266\nsteps:\n  - write: { file: caf\xe9.bin, address: 0x0 }\n' >"$T/r/utf8.yaml"
run recipe check "$T/r/utf8.yaml"
check "a non-UTF-8 byte in a recipe is reported where it is, not at 1:1" eval \
	'[ "$rc" -eq 2 ] && has "$T/r/utf8.yaml:4:24: error: invalid YAML: invalid trailing UTF-8 octet"'
printf 'recipe: x\nchip: esp8266\nsteps:\n  - write: { file: images/nodemcu-demo.bin, address: 0x100000000 }\n  - verify: md5\n' >"$T/r/range.yaml"
run recipe check "$T/r/range.yaml"
check "an out-of-range address says so (not 'expected a number')" eval \
	'[ "$rc" -eq 2 ] && has "write.address: '"'0x100000000'"' is out of range" && ! has "expected a number"'
{ printf '\xe9\x03\x02\x20\x00\x00\x00\x00\x00\x00\x10\x40\xff\xff\x00\x00'; head -c 100 /dev/zero; } >"$T/r/images/short.bin"
printf 'recipe: x\nchip: esp8266\nsteps:\n  - write: { file: images/short.bin, address: 0x0 }\n  - verify: md5\n' >"$T/r/short.yaml"
run recipe check "$T/r/short.yaml"
check "recipe check refuses a file at 0x0 that is not bootable (flash.size detect), as run does" eval \
	'[ "$rc" -eq 2 ] && has "$T/r/short.yaml:4:20: error: short.bin:" && has "runs past the end of the file"'
ESPLINE_STUB=/dev/zero run recipe check "$T/r/m.yaml"
check "recipe check fails without a usable stub (it said ok): exit 5" eval \
	'[ "$rc" -eq 5 ] && has "stub /dev/zero is a character device" && ! has ": ok:"'
run ports "$(sim_dev_port sim 0)"
check "espline ports prints a column header" eval '[ "$rc" -eq 0 ] && head -1 "$T/out" | grep -qE "^PORT +VID:PID +SERIAL +DESCRIPTION"'
run db info --db "$ODB"
check "db info does not count records as waiting for a central database never configured" eval \
	'[ "$rc" -eq 0 ] && has "central   none configured" && ! has "waiting for the central"'
run export --format json --batch OP1 --db "$ODB"
check "the JSON export writes sizes and seq as numbers, ids as hex text" eval \
	'jq -e ".[0] | (.flash_size|type) == \"number\" and (.seq|type) == \"number\" and (.chip_id|test(\"^0x[0-9a-f]{8}$\"))" "$T/out" >/dev/null'
run export --format csv --db "$ODB"
check "the CSV export is in seq order" eval \
	'[ "$(tr -d "\r" <"$T/out" | awk -F, "NR > 1 && \$25 != \"\" { print \$25 }")" = "$(tr -d "\r" <"$T/out" | awk -F, "NR > 1 && \$25 != \"\" { print \$25 }" | sort -n)" ]'

# --- device commands are recorded (item 10) ---------------------------------------
DDB=$T/device.sqlite
DEV=(--reset none --after stay --flash-baud 115200 -q --db "$DDB")
run write "$(sim_dev_port sim2 0)" "${DEV[@]}" --verify 0x0 recipes/images/nodemcu-demo.bin
run erase "$(sim_dev_port sim2 0)" "${DEV[@]}" --region 0x3FC000 0x4000
run verify "$(sim_dev_port sim2 0)" "${DEV[@]}" 0x3FC000 recipes/images/esp_init_data_demo.bin
check "a verify of an erased region fails (exit 1)" [ "$rc" -eq 1 ]
run erase "$(sim_dev_port sim2 0)" "${DEV[@]}" --no-record --region 0x3FC000 0x4000
check "erase, write and verify on a unit are recorded by default, --no-record is not" \
	[ "$(sqlite3 "$DDB" "select group_concat(kind, ' ') from (select kind from events where kind like 'device-%' order by id)")" = "device-write device-erase device-verify" ]
check "... each with the MAC, the regions and the result" eval \
	'[ "$(sqlite3 "$DDB" "select count(*) from events where message like '"'mac=5c:cf:7f:a0:00:00 write 0x0 %nodemcu-demo.bin 262144 bytes md5 % PASS'"'")" = 1 ] && [ "$(sqlite3 "$DDB" "select level from events where kind = '"'device-verify'"'")" = error ]'
run history 5c:cf:7f:a0:00:00 --db "$DDB"
check "history shows the rework by hand, newest first" eval \
	'[ "$rc" -eq 0 ] && [ "$(grep -c " by hand: " "$T/out")" = 3 ] && head -1 "$T/out" | grep -q "device-verify by hand: .*: FAIL: verify failed"'
mkdir -p "$T/nodb" && chmod 555 "$T/nodb"
run erase "$(sim_dev_port sim2 0)" --reset none --after stay --flash-baud 115200 -q --db /proc/nodb/x.sqlite --region 0x3FC000 0x4000
check "a device command whose record cannot be written says so: exit 4" eval \
	'[ "$rc" -eq 4 ] && has "was NOT recorded in /proc/nodb/x.sqlite"'

# --- station and setup faults have their own exit codes (item 8) -----------------
ESPLINE_STUB=/dev/zero run run "$T/r/jig.yaml" --port "$(sim_dev_port sim 3)" --db "$DB"
check "no usable flasher stub (\$ESPLINE_STUB=/dev/zero): exit 5 (a setup fault), not 3 (no device)" eval \
	'[ "$rc" -eq 5 ] && has "stub /dev/zero is a character device"'
flock "$DB.lock" sleep 20 &
HOLD=$!
PIDS+=("$HOLD")
sleep 0.3
run run "$T/r/jig.yaml" --port "$(sim_dev_port sim 3)" --db "$DB" --plain
kill "$HOLD" 2>/dev/null
check "another station holds the database's writer lock: exit 4 (database unusable), not 3" [ "$rc" -eq 4 ]
check "... in one line, with no stray newline after the pid" \
	grep -qE "another espline station \(pid [0-9?]*\) is writing to $DB: give each station its own database with --db" "$T/out"

# --- the printf audit: every message that shows what a user typed escapes it --
# (issue 19 item 3: the names were checked; these are the other places
# found printing user text raw: an unknown command, a bad date, a bad
# number, a port spec, file names in write's messages, paths in db info
# and export.)
ESC=$'\e[2J'
shown() { no_raw_controls && has '\x1B[2J'; }
run "bogus$ESC"
check "an unknown command is shown escaped" eval '[ "$rc" -eq 2 ] && shown'
run report --db "$DB" --since "2026$ESC"
check "report --since with a control sequence: shown escaped" eval '[ "$rc" -eq 2 ] && shown'
run report --db "$DB" "extra$ESC"
check "report with an unexpected argument: shown escaped" eval '[ "$rc" -eq 2 ] && shown'
run read "$NOPORT" "0x$ESC" 16 "$T/x.bin"
check "read with a bad address: shown escaped" eval '[ "$rc" -eq 2 ] && shown'
run erase "/dev/none$ESC"
check "erase on a port that does not exist: the port shown escaped" eval '[ "$rc" -ne 0 ] && shown'
cp "$DB" "$T/db$ESC.sqlite"
run db info --db "$T/db$ESC.sqlite"
check "db info: the database path shown escaped" eval '[ "$rc" -eq 0 ] && shown'
run export --format csv --db "$DB" --output "$T/out$ESC.csv"
check "export --output: the file name shown escaped" eval '[ "$rc" -eq 0 ] && shown'
cp recipes/images/nodemcu-demo.bin "$T/app$ESC.bin"
cp recipes/images/nodemcu-demo.bin "$T/two$ESC.bin"
sim_start esc --time-scale 0 || { echo "not ok - simulator 3 did not start"; exit 1; }
run write "$(sim_port esc)" 0x0 "$T/app$ESC.bin" --verify --reset none --flash-baud 115200 --no-record
check "write --verify of a file whose name holds a control sequence: 'verified' shows it escaped" \
	eval '[ "$rc" -eq 0 ] && has "verified " && shown'
run write "$(sim_port esc)" 0x0 "$T/app$ESC.bin" 0x1000 "$T/two$ESC.bin" --reset none --flash-baud 115200 --no-record
check "overlapping files: both names shown escaped" eval '[ "$rc" -eq 2 ] && has "overlaps" && shown'
sim_stop esc

tap_done
