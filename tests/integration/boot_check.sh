#!/usr/bin/env bash
# boot_check.sh - the first-boot check and the screening checks end to end,
# through `espline run` (the station) against espline-sim, whose boot path
# reads what is in its flash (docs/boot-model.md):
#   - a good unit PASSes, and its boot log is stored with the step (hash
#     chain intact, shown by history, in the JSON export);
#   - each way a unit verifies by MD5 but does not boot FAILs with its own
#     reason, never PASS: a recipe that forgets the init data, a stale init
#     data sector, QIO on a DIO-only part, a corrupted segment behind a
#     matching sha256 pin, a 1 MB module given a 4 MB header (a genuine one
#     is refused before writing; a fake "4 MB" one by the capacity check),
#     boot faults (loop, exception, brown-out), no ROM banner (a fixture
#     whose run command does not restart the module), a reject pattern, an
#     expect pattern never seen;
#   - expect.crystal_mhz against the unit and against the init data;
#   - recipe errors: an invalid regex at its line:column, boot_check on a jig
#     with no way to restart the module, a step after boot_check.
# TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir boot_check
TAP_TAIL=20

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
R=$T/r
mkdir -p "$R/images"
cp recipes/images/nodemcu-demo.bin recipes/images/esp_init_data_demo.bin "$R/images/"

# A corrupted segment: one byte of the first segment's data flipped, the
# image's checksum byte left alone (the ROM will compute another).
cp "$R/images/nodemcu-demo.bin" "$R/images/corrupt.bin"
printf '\x5a' | dd of="$R/images/corrupt.bin" bs=1 seek=$((16 + 100)) conv=notrunc status=none
corrupt_sha=$(sha256sum "$R/images/corrupt.bin" | cut -c1-64)
# Stale init data: a sector whose version byte is not the 0x05 this SDK
# checks (rf_cal[0]); the rest as the demo's.
cp "$R/images/esp_init_data_demo.bin" "$R/images/init_stale.bin"
printf '\x04' | dd of="$R/images/init_stale.bin" bs=1 seek=0 conv=notrunc status=none

# recipe NAME CONNECT FLASH EXPECT STEPS...: write $R/NAME.yaml
recipe() {
	local name=$1 connect=$2 flash=$3 expect=$4; shift 4
	{
		echo "recipe: $name"
		echo "chip: esp8266"
		echo "connect: $connect"
		echo "flash: $flash"
		echo "expect: $expect"
		echo "steps:"
		printf '  %s\n' "$@"
	} >"$R/$name.yaml"
}
AUTO='{ reset: auto, baud: 115200, flash_baud: 460800 }'
DIO='{ size: detect, mode: dio, freq: 40m }'
IMG='- write: { file: images/nodemcu-demo.bin, address: 0x0 }'
INIT='- write_init_data: { file: images/esp_init_data_demo.bin }'
BOOT='- boot_check: { expect: ["NodeMCU [0-9.]+"], timeout: 3s }'
recipe good "$AUTO" "$DIO" '{ flash_capacity: verified, crystal_mhz: 26 }' '- erase: chip' "$IMG" "$INIT" '- verify: md5' "$BOOT"
recipe no-init "$AUTO" "$DIO" '{}' '- erase: chip' "$IMG" '- verify: md5' "$BOOT"
recipe stale-init "$AUTO" "$DIO" '{}' '- erase: chip' "$IMG" '- write_init_data: { file: images/init_stale.bin }' '- verify: md5' "$BOOT"
recipe qio "$AUTO" '{ size: detect, mode: qio, freq: 40m }' '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' "$BOOT"
recipe corrupt "$AUTO" "$DIO" '{}' '- erase: chip' "- write: { file: images/corrupt.bin, address: 0x0, sha256: $corrupt_sha }" "$INIT" '- verify: md5' "$BOOT"
recipe header-4mb "$AUTO" '{ size: 4MB, mode: dio, freq: 40m }' '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' "$BOOT"
recipe fake-4mb "$AUTO" "$DIO" '{ flash_capacity: verified }' '- erase: chip' "$IMG" "$INIT" '- verify: md5' "$BOOT"
recipe plain "$AUTO" "$DIO" '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' '- boot_check: { expect: ["NodeMCU [0-9.]+"], timeout: 3s, settle: 300ms }'
recipe reject "$AUTO" "$DIO" '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' '- boot_check: { expect: ["NodeMCU"], reject: ["espline-demo build 2026"], timeout: 3s }'
recipe expect-9 "$AUTO" "$DIO" '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' '- boot_check: { expect: ["NodeMCU 9\\.9"], timeout: 1s }'
recipe fixture '{ reset: { download: ["true"], run: ["true"] }, baud: 115200, flash_baud: 460800 }' "$DIO" '{}' '- erase: chip' "$IMG" "$INIT" '- verify: md5' '- boot_check: { expect: ["NodeMCU"], timeout: 1s }'
recipe xtal "$AUTO" "$DIO" '{ crystal_mhz: 26 }' '- erase: chip' "$IMG" "$INIT" '- verify: md5' "$BOOT"

# 0 good, 1 genuine 1 MB, 2 a 1 MB die claiming 4 MB, 3 DIO/DOUT only,
# 4..6 boot faults, 7 a jig holding GPIO0 low (boot=download), 8 40 MHz.
sim_launch boot --devices 9 --link rfc2217 --time-scale 0 \
	--dev 1:flash=1MB --dev 2:flash=1MB,claim=4MB --dev 3:modes=dio+dout \
	--dev 4:boot_fault=loop --dev 5:boot_fault=exception:20 --dev 6:boot_fault=brownout:200 \
	--dev 7:boot=download --dev 8:xtal=40 || exit 1
DB=$T/boot.sqlite

# run_unit NAME DEV: one unit of recipe NAME on device DEV (batch NAME-DEV);
# output in $T/out
run_unit() {
	tap_run 60 "$E" run "$R/$1.yaml" --plain --batch "$1-$2" --count 1 --db "$DB" --port "$(sim_dev_port boot "$2")"
	LOG=$T/out
}
# fails NAME DEV TEXT: the unit FAILs (exit 1, a FAIL line, no PASS) and
# its line carries TEXT (fixed string)
fails() {
	run_unit "$1" "$2"
	if [ "$rc" -eq 1 ] && grep -q " FAIL " "$T/out" && ! grep -q " PASS " "$T/out" && has "$3"; then
		ok "$1 on device $2: FAIL, \"$3\""
	else
		not_ok "$1 on device $2: FAIL with \"$3\" (exit $rc)" "$T/out"
	fi
}

# --- a good unit, and what is kept --------------------------------------
run_unit good 0
check "good unit: PASS through boot_check" eval '[ "$rc" -eq 0 ] && has " PASS "'
mac0=$(sim_dev_field boot 0 mac)
detail=$(sqlite3 "$DB" "select s.detail from steps s join units u on u.id = s.unit_id where u.mac = '$mac0' and s.kind = 'boot_check'")
LOG=
check "the boot log is stored with the step (ROM banner, csum, firmware banner)" \
	grep -q "ets Jan  8 2013,rst cause:2, boot mode:(3,6)" <<<"$detail"
check "  ... with the firmware's banner read at its own rate" grep -q "^NodeMCU 3.0.0-espline-demo" <<<"$detail"
screen=$(sqlite3 "$DB" "select s.detail from steps s join units u on u.id = s.unit_id where u.mac = '$mac0' and s.kind = 'verify'")
check "the screening findings are stored with the last verify" \
	grep -q "no alias, 4MB verified" <<<"$screen"
check "  ... and the crystal with the init data's byte 48" grep -q "26 MHz detected; init data byte 48 = 1" <<<"$screen"
"$E" history "$mac0" --db "$DB" >"$T/hist" 2>&1
LOG=$T/hist
check "history shows the boot log" grep -q "boot_check (step 5):" "$T/hist"
"$E" export --format json --db "$DB" --batch good-0 >"$T/export.json" 2>&1
LOG=$T/export.json
check "the JSON export carries the step's detail" grep -q '"kind":"boot_check".*"detail":".*NodeMCU 3.0.0' "$T/export.json"

# --- verifies by MD5, does not boot ---------------------------------------
fails no-init 0 'step 4 (boot_check, line 10): reject pattern "rf_cal" matched the line "rf_cal[0] !=0x05,is 0xFF": the SDK found no valid init data at (flash size - 16 KiB) of the size the image header declares (missing, stale or misplaced esp_init_data)'
fails stale-init 0 'rf_cal[0] !=0x05,is 0x04'
fails qio 3 'image rejected by the ROM: checksum error, and its segment headers read as zeros after the first ("load 0x00000000, len 0,"): the flash part cannot do the SPI mode in the image header (e.g. QIO on a DIO-only part); set flash.mode to dio or dout'
tap_run 60 "$E" run "$R/qio.yaml" --json --batch qio-json --count 1 --db "$DB" --port "$(sim_dev_port boot 3)"
LOG=$T/out
check "  ... --json: the step_done event names boot_check, FAIL and the reason" \
	grep -q '"event":"step_done".*"step":"boot_check".*"result":"FAIL".*"error":"image rejected by the ROM' "$T/out"
fails corrupt 0 'image rejected by the ROM: checksum error ("csum err" after 3 segments): the bytes at 0x0 are not the image that was verified, or the image itself is corrupt'
check "  ... although its write and verify passed (the pin matched)" grep -q "step 4/5 verify passed" "$T/out"
fails header-4mb 1 "layout:"
fails fake-4mb 2 "step 4 (verify, line 10): expect.flash_capacity (line 5): fake flash capacity: the JEDEC id claims 4MB but the image at 0x0 reads back again at 0x100000: the part wraps there; real size 1MB"
check "  ... real size 1MB" has "real size 1MB"
fails good 4 "boot loop: the ROM banner came 2 times (reset causes 2 (external reset), 4 (watchdog))"
fails plain 5 'reject pattern "Fatal exception" matched'
fails good 6 "boot loop: the ROM banner came 2 times (reset causes 2 (external reset), 1 (power-on))"
fails fixture 7 'no ROM banner ("ets Jan  8 2013,rst cause:...") came: a dead crystal, no power, or the module was not reset'
fails reject 0 'reject pattern "espline-demo build 2026" matched the line "NodeMCU 3.0.0'
fails expect-9 0 '(expect[1]) not seen; seen instead:'
check "  ... it names the pattern and what came instead" eval 'has "expected \"NodeMCU 9" && has "| NodeMCU 3.0.0-espline-demo"'
fails xtal 8 "expect: expect.crystal_mhz (line 5): the unit has a 40 MHz crystal; the recipe's init data is for 26 MHz (byte 48 of esp_init_data: 0 = 40 MHz, 1 = 26 MHz)"

# none of the units that did not boot is PASS, and each says why
LOG=
passes=$(sqlite3 "$DB" "select count(*) from units where result = 'PASS'")
check_eq "exactly one PASS in the database (the good unit)" "$passes" 1
kinds=$(sqlite3 "$DB" "select count(*) from units where error_kind = 'boot_check: did not boot'")
check_eq "11 units failed in boot_check" "$kinds" 11
empty=$(sqlite3 "$DB" "select count(*) from steps where kind = 'boot_check' and (detail is null or detail = '') and result = 'FAIL' and error not like '%no ROM banner%'")
check_eq "every failed boot_check kept what the module printed" "$empty" 0
"$E" db verify --db "$DB" >"$T/verify" 2>&1
LOG=$T/verify
check "db verify: the chain covers the stored boot logs" grep -q "^OK:" "$T/verify"
sim_stop boot

# --- recipe errors ---------------------------------------------------------
recipe badre "$AUTO" "$DIO" '{}' "$IMG" '- verify: md5' '- boot_check: { expect: ["ok", "NodeMCU [0-9"] }'
tap_run 10 "$E" recipe check "$R/badre.yaml"
LOG=$T/out
check "an invalid regex: exit 2, reported at its line:column" \
	eval '[ "$rc" -eq 2 ] && has "badre.yaml:9:34: error: boot_check.expect[2]: not a valid regular expression (POSIX extended): Unmatched [, [^, [:, [., or [="'
recipe jig '{ reset: none }' "$DIO" '{}' "$IMG" '- verify: md5' "$BOOT"
tap_run 10 "$E" recipe check "$R/jig.yaml"
check "boot_check on a jig with no fixture: exit 2, says how to restart the module" \
	eval '[ "$rc" -eq 2 ] && has "jig.yaml:9:5: error: boot_check needs a way to restart the module into its firmware, and connect.reset is none: use reset: auto (DTR/RTS), or a fixture'"'"'s commands, connect: { reset: { run: [\"CMD ...\"] } }"'
recipe after "$AUTO" "$DIO" '{}' "$IMG" '- verify: md5' "$BOOT" '- reset: run'
tap_run 10 "$E" recipe check "$R/after.yaml"
check "a step after boot_check: exit 2" eval '[ "$rc" -eq 2 ] && has "after.yaml:10:5: error: reset comes after boot_check (line 9); boot_check must be the last step: it starts the firmware itself, in place of '"'"'reset: run'"'"'"'
sed 's/crystal_mhz: 26/crystal_mhz: 40/' "$R/good.yaml" >"$R/x40.yaml"
tap_run 10 "$E" recipe check "$R/x40.yaml"
check "init data for 26 MHz with expect.crystal_mhz 40: exit 2" \
	eval '[ "$rc" -eq 2 ] && has "x40.yaml:9:30: error: write_init_data.file: $R/images/esp_init_data_demo.bin is init data for a 26 MHz crystal (byte 48 = 1), but expect.crystal_mhz (line 5) is 40: the RF would run off frequency"'

tap_done
