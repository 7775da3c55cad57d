#!/usr/bin/env bash
# bad_input.sh - every kind of bad input to `espline run`, and the exact
# message the user sees (docs/bad-input.md is the table of these):
# malformed recipe, missing image, image too big for the flash (declared and
# detected), wrong chip, no device, busy port, permission denied on the
# port, unreadable database (damaged, no permission), missing stub file;
# per-unit data (templates, CSV files); a scanned code that fails
# expect.barcode, a label template with an unknown field, an unreachable
# label printer, a hook that hangs or fails; the device commands' layout
# errors (the recipe's rules, without a line and column).
# Devices are espline-sim pseudo-terminals booted in download mode (recipes
# use reset: none).  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir bad-input
R=$T/r
TAP_SHOW=("$T/out")
TAP_TAIL=12
# run AS ARGS...: espline run as AS (me, or nobody via setpriv); output in $T/out, status in rc
run() {
	local as=$1; shift
	if [ "$as" = nobody ]; then
		tap_run 60 setpriv --reuid=nobody --regid=nogroup --clear-groups "$E" run "$@" --plain
	else
		tap_run 60 "$E" run "$@" --plain
	fi
}
says_not() { ! grep -qE -- "$1" "$T/out"; }
# has TEXT, with the unit's time ("in 0.1 s") written "in N s": how long a
# unit took depends on the machine's load, not on the input
has_t() { sed -E 's/ in [0-9]+\.[0-9] s: / in N s: /' "$T/out" | grep -qF -- "$1"; }

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$R/images" "$T/db"
cp recipes/images/* "$R/images/"
head -c 700000 /dev/zero | tr '\0' '\125' >"$R/images/data.bin"
# everyone may read the recipes and write the database folder (for nobody)
chmod 755 "$T" "$R" "$R/images" && chmod 644 "$R"/images/* && chmod 777 "$T/db"

cat >"$R/good.yaml" <<'YAML'
recipe: bad-input
chip: esp8266
connect: { reset: none, flash_baud: 115200 }
flash: { size: detect, mode: dout, freq: 26m }
steps:
  - erase: chip
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - verify: md5
  - reset: stay
YAML
printf 'recipe: bad-input\nchip: esp8266\nsteps:\n  - write: { file: images/nodemcu-demo.bin, address: 0x0\n' >"$R/syntax.yaml"
sed 's|images/nodemcu-demo.bin|images/nope.bin|' "$R/good.yaml" >"$R/missing.yaml"
sed 's|- write: { file: images/nodemcu-demo.bin, address: 0x0 }|- write: { file: images/data.bin, address: 0x80000 }|' \
	"$R/good.yaml" >"$R/big-detect.yaml"
sed 's|size: detect|size: 1MB|' "$R/big-detect.yaml" >"$R/big-declared.yaml"
sed 's|flash_baud: 115200 }|flash_baud: 115200, stub: nostub.json }|' "$R/good.yaml" >"$R/stub.yaml"
chmod 644 "$R"/*.yaml

# device 0: good 4MB; 1: ESP32; 2: 1MB; 3: good (held busy); 4: good (no permission)
SIM_IDLE=120 sim_start sim --devices 5 --time-scale 0 --dev 1:fault=wrong-chip --dev 2:flash=1MB ||
	{ echo "not ok 1 - simulator did not start"; exit 1; }
port() { sim_dev_port sim "$1"; }
DB=$T/db/units.sqlite

# --- malformed recipe --------------------------------------------------------
run me "$R/syntax.yaml" --port "$(port 0)" --db "$DB"
check "malformed recipe (YAML syntax): exit 2" [ "$rc" -eq 2 ]
check "... says file:line:col and what the parser expected" \
	has "$R/syntax.yaml:5:1: error: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 4, column 12)"
printf 'recipe: bad-input\nchip: esp8266\nsteps:\n  - wirte: {}\n' >"$R/key.yaml"
run me "$R/key.yaml" --port "$(port 0)" --db "$DB"
check "malformed recipe (unknown key): exit 2, with a suggestion" eval \
	'[ "$rc" -eq 2 ] && has "$R/key.yaml:4:5: error: unknown key '"'wirte'"' in steps[1]; did you mean '"'write'"'?"'

# --- missing image -------------------------------------------------------------
run me "$R/missing.yaml" --port "$(port 0)" --db "$DB"
check "missing image: exit 2 before touching a port" [ "$rc" -eq 2 ]
check "... names the file as written and as resolved, and the OS reason" \
	has "$R/missing.yaml:7:20: error: write.file: cannot read 'images/nope.bin' (resolved to $R/images/nope.bin): No such file or directory"

# --- image too big for the flash ------------------------------------------------
run me "$R/big-declared.yaml" --port "$(port 2)" --db "$DB"
check "image too big for the declared flash size: exit 2" [ "$rc" -eq 2 ]
check "... says where the write ends and the size it is checked against" \
	has "$R/big-declared.yaml:7:46: error: write of data.bin ends at 0x12ae60, past the end of the smallest allowed flash (1MB, flash.size)"
check "... and only that error (no follow-on error for the verify step after it)" \
	says_not "error: verify: md5 has nothing to check"
run me "$R/big-detect.yaml" --port "$(port 2)" --db "$DB"
check "image too big for the detected flash (1MB unit): the unit FAILs (exit 1)" [ "$rc" -eq 1 ]
check "... with the size detected on this unit" \
	has_t "FAIL 5c:cf:7f:a0:00:02 in N s: layout: $R/big-detect.yaml:7:46: error: write of data.bin ends at 0x12ae60, past the end of the smallest allowed flash (1MB, the size detected on this unit)"
check "... before any step ran (recorded FAIL 'layout: ...' with no step rows)" \
	[ "$(sqlite3 "$DB" "select u.result || ' ' || u.error_kind || ' ' || (select count(*) from steps s where s.unit_id = u.id) from units u where u.port = '$(port 2)' order by u.id desc limit 1;")" = "FAIL layout: recipe error 0" ]

# --- wrong chip ----------------------------------------------------------------
run me "$R/good.yaml" --port "$(port 1)" --db "$DB"
check "wrong chip (an ESP32 in the jig): the run fails (exit $rc)" eval '[ "$rc" -eq 1 ] || [ "$rc" -eq 3 ]'
check "... names the chip found and the one expected" \
	has_t "FAIL (no MAC) in N s: connect: found ESP32 (magic 0x00F01D83), this recipe is for ESP8266: wrong module in the jig"
check "... recorded as FAIL 'connect: wrong chip'" \
	[ "$(sqlite3 "$DB" "select result || ' ' || error_kind from units where port = '$(port 1)';")" = "FAIL connect: wrong chip" ]

# --- no device -------------------------------------------------------------------
run me "$R/good.yaml" --port /dev/espline-no-such-port --db "$DB"
check "no device: exit 3" [ "$rc" -eq 3 ]
check "... says no adapter was found and how to list them" \
	has 'espline run: no adapter found for the given --port specs; check the cable (`espline ports` lists what is there)'

# --- busy port ---------------------------------------------------------------------
flock "$(port 3)" sleep 30 &
HOLD=$!
PIDS+=("$HOLD")
sleep 0.3
run me "$R/good.yaml" --port "$(port 3)" --db "$DB"
kill "$HOLD" 2>/dev/null
check "busy port (another program holds it): a station fault, exit 5" [ "$rc" -eq 5 ]
check "... says the port is busy and why" \
	has "station fault: connect: $(port 3) is busy: another program (or another espline worker) has it open (no unit recorded)"
check "... records no unit for that port (it is outside yield)" \
	[ "$(sqlite3 "$DB" "select count(*) from units where port = '$(port 3)'")" = 0 ]
check "... and logs it in the database's events" \
	[ "$(sqlite3 "$DB" "select count(*) from events where kind = 'station-fault' and message like '%$(port 3) is busy%'")" = 1 ]

# --- permission denied on the port ------------------------------------------------
# Root opens any device, so as root the check runs espline as nobody
# (setpriv); the pty belongs to root with mode 0600.  As another user, the
# pty is made unreadable with chmod 000.
perm_how=
if [ "$(id -u)" -eq 0 ]; then
	if command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
		chmod 600 "$(port 4)"; perm_how=nobody
	fi
else
	chmod 000 "$(port 4)" && perm_how=me
fi
if [ -n "$perm_how" ]; then
	run "$perm_how" "$R/good.yaml" --port "$(port 4)" --db "$T/db/perm.sqlite"
	check "permission denied on the port (as $( [ "$perm_how" = nobody ] && echo nobody || id -un)): a station fault, exit 5" \
		[ "$rc" -eq 5 ]
	check "... records no unit" [ "$(sqlite3 "$T/db/perm.sqlite" "select count(*) from units")" = 0 ]
	check "... says permission denied and how to get it" \
		has "connect: permission denied opening $(port 4): add the user to the dialout group (sudo usermod -aG dialout \$USER, then log in again)"
else
	skip "permission denied on the port" "running as root and setpriv cannot drop to nobody here"
	skip "... says permission denied and how to get it" "as above"
fi

# --- unreadable database ----------------------------------------------------------
printf 'this file is not an SQLite database, whatever its name says.%.0s' $(seq 20) >"$T/db/damaged.sqlite"
run me "$R/good.yaml" --port "$(port 0)" --db "$T/db/damaged.sqlite"
check "database that is not a database: exit 4" [ "$rc" -eq 4 ]
check "... says the file is damaged or not an espline database" \
	has "espline run: database $T/db/damaged.sqlite: cannot switch to WAL journal mode: file is not a database (the file is damaged or not an espline database)"
check "... and programs nothing" says_not 'connected, programming'
check "... and prints no empty batch summary" says_not '^Summary of batch *$'
cp "$DB" "$T/db/private.sqlite"
chmod 000 "$T/db/private.sqlite"
if [ "$(id -u)" -eq 0 ]; then db_as=nobody; else db_as=me; fi
if [ "$db_as" = nobody ] && [ "$perm_how" != nobody ]; then
	skip "database without read permission" "running as root and setpriv cannot drop to nobody here"
else
	run "$db_as" "$R/good.yaml" --port "$(port 0)" --db "$T/db/private.sqlite"
	check "database without read permission: exit 4" [ "$rc" -eq 4 ]
	check "... says it cannot open it and to check permissions" \
		has "espline run: database $T/db/private.sqlite: cannot open: unable to open database file (check the file's and its folder's permissions)"
fi

# --- missing stub file ---------------------------------------------------------------
run me "$R/stub.yaml" --port "$(port 0)" --db "$DB"
check "missing stub file (connect.stub): exit 2 before touching a port" [ "$rc" -eq 2 ]
check "... names the file as written and as resolved" \
	has "$R/stub.yaml:3:51: error: connect.stub: cannot read 'nostub.json' (resolved to $R/nostub.json): No such file or directory"

# --- per-unit data (issue 16): templates, sizes, overlaps, CSV files ---------------
printf 'serial={serial}\nx={nosuch}\n' >"$R/unknown.tmpl"
printf 'serial={serial}\n' >"$R/ok.tmpl"
printf 'cert={csv.cert}\n' >"$R/cert.tmpl"
printf 'k,v\na,1\nb,2\n' >"$R/ok.csv"
printf 'k,v,w\na,1,2\nb,2\n' >"$R/ragged.csv"
printf 'k,v\na,1\na,2\n' >"$R/dup.csv"
printf 'k,v\na,\xff\xfe\n' >"$R/latin1.csv"
unit_recipe() { # NAME ADDRESS SIZE TEMPLATE CSV
	sed -e "s|^steps:|serial: { counter: c, format: \"S-{seq:04}\" }\nsteps:|" \
	    -e "s|  - verify: md5|  - write_unit_data: { address: $2, size: $3, template: $4, from_csv: $5 }\n  - verify: md5|" \
	    "$R/good.yaml" >"$R/$1.yaml"
}
unit_recipe ud-field 0x3F8000 4KB unknown.tmpl ok.csv
unit_recipe ud-big 0x3F8000 8 ok.tmpl ok.csv
unit_recipe ud-overlap 0x1000 4KB ok.tmpl ok.csv
unit_recipe ud-column 0x3F8000 4KB cert.tmpl ok.csv
unit_recipe ud-ragged 0x3F8000 4KB ok.tmpl ragged.csv
unit_recipe ud-dup 0x3F8000 4KB ok.tmpl dup.csv
unit_recipe ud-latin1 0x3F8000 4KB ok.tmpl latin1.csv
layout_recipe() { # NAME FIELDS: a 16-byte binary layout (README, "Binary layouts")
	sed -e "s|^steps:|serial: { counter: c, format: \"S-{seq:04}\" }\nsteps:|" \
	    -e "s|  - verify: md5|  - write_unit_data:\n      address: 0x3F8000\n      size: 16\n      from_csv: ok.csv\n      layout:\n$2\n  - verify: md5|" \
	    "$R/good.yaml" >"$R/$1.yaml"
}
layout_recipe ld-overlap '        - { offset: 0, type: u32le, value: "{csv.v}" }\n        - { offset: 2, type: mac }'
layout_recipe ld-past '        - { offset: 12, type: str, size: 8, value: "{serial}" }'
layout_recipe ld-field '        - { offset: 0, type: u32le, value: "0x{chipid}" }'
layout_recipe ld-range '        - { offset: 0, type: u8, value: "{csv.v}99" }'
layout_recipe ld-crc '        - { offset: 0, type: mac }\n        - { offset: 12, type: crc32, over: [0, 16] }'
chmod 644 "$R"/*.yaml "$R"/*.tmpl "$R"/*.csv
ud_check() { # NAME WHAT MESSAGE
	ud_msg=$3
	run me "$R/$1.yaml" --port "$(port 0)" --db "$DB"
	check "$2: exit 2 before touching a port" eval '[ "$rc" -eq 2 ] && has "$ud_msg"'
}
ud_check ud-field "a template field that does not exist" \
	"$R/ud-field.yaml:9:64: error: write_unit_data.template: $R/unknown.tmpl line 2, column 3: unknown field {nosuch} in a unit-data template; known: serial, mac, mac_hex, chip_id, batch, date, year, month, day, week, csv.COLUMN"
ud_check ud-big "unit data rendered larger than its size" \
	"$R/ud-big.yaml:9:49: error: write_unit_data.size: with the row at $R/ok.csv:2, rendered unit data is 14 bytes, more than the 8 bytes it may take"
ud_check ud-overlap "unit data overlapping another write" \
	"error: write_unit_data (0x1000..0x1fff) overlaps step 2 (write, line 8) at 0x0..0x3ffff; writes are erased in 4 KiB sectors, so two writes must not share a sector"
ud_check ud-column "a template naming a column the CSV does not have" \
	"$R/cert.tmpl line 1, column 6: {csv.cert}: the CSV file has no column 'cert'"
ud_check ud-ragged "a CSV row with a missing column" \
	"$R/ud-ragged.yaml:9:83: error: write_unit_data.from_csv: $R/ragged.csv:3: this row has 2 fields, the header has 3 columns (a missing column or a stray comma?)"
ud_check ud-dup "a CSV with a duplicate key" \
	"$R/ud-dup.yaml:9:83: error: write_unit_data.from_csv: $R/dup.csv:3: duplicate key 'a' in column 'k' (first at line 2); every row needs its own key"
ud_check ud-latin1 "a CSV that is not UTF-8" \
	"$R/ud-latin1.yaml:9:83: error: write_unit_data.from_csv: $R/latin1.csv:2: byte 0xFF at offset 6 is not UTF-8 text; save the file as UTF-8"
ud_check ld-overlap "a binary layout whose fields overlap" \
	"$R/ld-overlap.yaml:15:11: error: write_unit_data.layout[2]: field at 0x2 (mac) overlaps the field at 0x0 (u32le) (line 14)"
ud_check ld-past "a binary layout field past the region" \
	"$R/ld-past.yaml:14:11: error: write_unit_data.layout[1]: field at 0xc (str[8]) ends at 0x14, past the region's size 0x10"
ud_check ld-field "a binary layout value naming a field that does not exist" \
	"$R/ld-field.yaml:14:44: error: write_unit_data.layout[1].value: line 1, column 3: unknown field {chipid} in a unit-data template; known: serial, mac, mac_hex, chip_id, batch, date, year, month, day, week, csv.COLUMN"
ud_check ld-range "a binary layout value too large for its type, for one CSV row" \
	"$R/ld-range.yaml:14:41: error: write_unit_data.layout[1].value: with the row at $R/ok.csv:3: field at 0x0 (u8): 299 does not fit (at most 255)"
ud_check ld-crc "a binary layout's crc32 over its own bytes" \
	"$R/ld-crc.yaml:15:11: error: write_unit_data.layout[2]: field at 0xc (crc32): its range [0x0, 0x10) covers the CRC itself, whose value depends on it"

# --- binding the physical unit (issue 16): scan, printer, hooks ------------------------
# station FILE [YAML]: a station file with device 0 as slot J1, its recipe $RECIPE
station() { printf 'recipe: %s\nports:\n  - { slot: J1, port: "%s" }\ndatabase: %s\n%b' "${RECIPE:-$R/good.yaml}" "$(port 0)" "$DB" "${2:-}" >"$1"; }
mkdir -p "$T/scan"
python3 tests/tools/fake_scanner.py "$T/scan" >"$T/scanner.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$T/scan/ready" ] && break; sleep 0.02; done
sed 's|^steps:|expect: { barcode: "^PCB-[0-9]{4}$" }\nsteps:|' "$R/good.yaml" >"$R/coded.yaml"
RECIPE=$R/coded.yaml station "$R/scan.yaml" "scan: { from: \"$(cat "$T/scan/ready")\", timeout: 20s }\n"
# Type only once the station waits for the code (up to 60 s: a loaded
# machine starts it slowly, and a code typed before it reads is lost).
{ for _ in $(seq 1200); do grep -q 'waits: scan' "$T/out" 2>/dev/null && break; sleep 0.05; done; printf 'J1\nBAD-01\n' >>"$T/scan/codes"; } &
typist=$!
run me --station-file "$R/scan.yaml" --batch SCAN1 --count 1
wait "$typist"
check "a scanned code that fails expect.barcode: the unit FAILs (exit 1), refused before anything is written" eval \
	'[ "$rc" -eq 1 ] && has_t "FAIL 5c:cf:7f:a0:00:00 in N s: barcode: scanned code '"'BAD-01'"' does not match expect.barcode \"^PCB-[0-9]{4}\$\" (line 5)" &&
	 [ "$(sqlite3 "$DB" "select u.error_kind || '"'/'"' || count(s.idx) from units u left join steps s on s.unit_id = u.id where u.barcode = '"'BAD-01'"'")" = "barcode: refused/0" ]'
RECIPE=$R/coded.yaml station "$R/tty.yaml" "scan: { from: terminal }\n"
tap_run 60 "$E" run --station-file "$R/tty.yaml" --batch TTY --count 1 --plain </dev/null
check "a terminal scanner with nothing behind it (stdin at its end): the unit FAILs at once (exit 1)" eval \
	'[ "$rc" -eq 1 ] && has "error: scanner: terminal: the scanner is gone; no more codes can be read" &&
	 has_t "FAIL 5c:cf:7f:a0:00:00 in N s: barcode: the scanner (terminal) is gone: no code can be scanned"'
printf '^XA^FD{mac} {mack}^FS^XZ\n' >"$R/typo.zpl"
station "$R/typo.yaml" "label: { on_pass: typo.zpl, printer: \"127.0.0.1:9\" }\n"
run me --station-file "$R/typo.yaml" --batch TYPO --count 1
check "a label template field that does not exist: exit 2, at its line and column" eval '[ "$rc" -eq 2 ] && has "$R/typo.yaml:5:19: error: label.on_pass: $R/typo.zpl: line 1, column 13: unknown field {mack} in a label template"'
printf '^XA^FD{mac} {slot}^FS^XZ\n' >"$R/ok.zpl"
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
station "$R/off.yaml" "label: { on_pass: ok.zpl, printer: \"127.0.0.1:$DEAD\", timeout: 500ms, retry: 200ms }\nhooks:\n  on_unit_done: { run: [sleep, \"5\"], timeout: 300ms }\n"
run me --station-file "$R/off.yaml" --batch OFF --count 1
check "an unreachable printer: the unit still PASSes (exit 0), its label waits in the queue" eval \
	'[ "$rc" -eq 0 ] && has "warn: label not printed: printer 127.0.0.1:$DEAD: Connection refused; 1 label queued in $DB.labels, tried again every 0.2 s" && [ "$(ls "$DB.labels" | wc -l)" -eq 1 ]'
check "a hook that hangs: killed at its timeout, said and recorded, the unit stays PASS" eval \
	'has "warn: hooks.on_unit_done (sleep) still running after 300 ms: killed" && [ "$(sqlite3 "$DB" "select count(*) from events where kind = '"'hook'"' and message like '"'%still running after 300 ms: killed'"'")" -eq 1 ]'
station "$R/fail.yaml" "label: { on_pass: ok.zpl, file: labels.txt }\nhooks:\n  on_unit_done: { run: [sh, -c, \"exit 4\"], timeout: 2s }\n"
run me --station-file "$R/fail.yaml" --batch FAIL4 --count 1
check "a hook that fails: exit status said and recorded, the unit stays PASS (exit 0)" eval \
	'[ "$rc" -eq 0 ] && has "warn: hooks.on_unit_done (sh) exited 4" && [ "$(sqlite3 "$DB" "select count(*) from events where message = '"'hooks.on_unit_done (sh) exited 4'"'")" -eq 1 ]'
check "... and its label went to the file, with the queued one first" eval \
	'[ "$(grep -c "^\^XA" "$R/labels.txt")" -eq 2 ] && [ "$(ls "$DB.labels" | wc -l)" -eq 0 ]'

# --- the device commands share the recipe's layout rules (one write path) -------------
# dev CMD ARGS...: espline CMD on device 0 (or 2) without a database; output in $T/out
DEV=(--reset none --after stay --flash-baud 115200 --no-record)
dev() { local cmd=$1 p=$2; shift 2; tap_run 60 "$E" "$cmd" "$(port "$p")" "${DEV[@]}" "$@"; }
dev write 0 0x20100 "$R/images/nodemcu-demo.bin" 0x60800 "$R/images/esp_init_data_demo.bin"
check "espline write: two files sharing a 4 KiB sector: exit 2 before connecting, the recipe's rule by file name" eval \
	'[ "$rc" -eq 2 ] && ! has "connecting" && has "espline write: error: write of esp_init_data_demo.bin (0x60800..0x6087f) overlaps write of nodemcu-demo.bin (0x20100..0x600ff); writes are erased in 4 KiB sectors, so two writes must not share a sector"'
dev verify 0 0x0 "$R/images/nodemcu-demo.bin" 0x3F000 "$R/images/esp_init_data_demo.bin"
check "espline verify: two files claiming the same bytes: exit 2 before connecting" eval \
	'[ "$rc" -eq 2 ] && ! has "connecting" && has "espline verify: error: $R/images/nodemcu-demo.bin (0x0..0x3FFFF) overlaps $R/images/esp_init_data_demo.bin at 0x3F000"'
dev erase 0 --region 0x1001 0x1000
check "espline erase: a region off the 4 KiB grid: exit 2 before connecting" eval \
	'[ "$rc" -eq 2 ] && ! has "connecting" && has "espline erase: error: region 0x1001+0x1000: address and length must be non-zero multiples of 4096 (0x1000)"'
dev write 2 0x80000 "$R/images/data.bin"
check "espline write: image too big for the detected flash (1MB unit): exit 1, as the recipe's unit FAILs" eval \
	'[ "$rc" -eq 1 ] && ! has "wrote" && has "espline write: error: layout: write of data.bin ends at 0x12ae60, past the end of the flash (1MB, the size detected on this unit)"'

# --- and a good unit still passes on the same station ---------------------------------
run me "$R/good.yaml" --port "$(port 0)" --db "$DB"
check "the good unit passes afterwards (exit 0)" [ "$rc" -eq 0 ]
check "the database is sound" eval '[ "$(sqlite3 "$DB" "PRAGMA integrity_check;")" = ok ] && "$E" db verify --db "$DB" >/dev/null'

tap_done
