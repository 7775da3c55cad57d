#!/usr/bin/env bash
# device_cli.sh - the single-device commands (info, erase, write, verify,
# read) end to end against espline-sim: happy paths at several flash sizes and
# both crystals, header patching, and one injected fault per test, each of
# which must end in a specific, actionable error (never a hang, never a pass).
# The flash contents are checked through the simulator's --flash-dir files.
#
# Devices on pseudo-terminals cannot be reset by the host, so those tests use
# --reset none --after stay (the simulator boots them in download mode); the
# auto-reset circuit is exercised over RFC 2217.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir device-cli
TAP_SHOW=("$T/out")

# with VERBOSE set, every ok shows the end of espline's output too
ok() {
	tap_ok "$1"
	[ -n "${VERBOSE:-}" ] && [ -f "$T/out" ] && grep -v "KB/s" "$T/out" | sed 's/^/#   /' | tail -n 6
	return 0
}
# Run espline with a hard time limit; output in $T/out, exit code in $rc.
run() { tap_run 90 "$E" "$@"; }

all_ff() { [ "$(bytes "$1" "$2" "$3" | tr -d '\377' | wc -c)" -eq 0 ]; }

# Firmware-like data: base64 text of random bytes compresses to ~75 %.
head -c 300000 /dev/urandom | base64 -w 76 | head -c 400000 >"$T/fw.bin"
head -c 60000 /dev/urandom | base64 | head -c 65536 >"$T/other.bin"
head -c 4096 /dev/urandom >"$T/init.bin"
head -c 600000 /dev/urandom >"$T/big.bin"
printf 'just some notes, not an image\n' >"$T/notes.txt"
# A bootable v1 image: E9, 1 segment, mode qio, size 512KB/40m, entry,
# segment of 16 zero bytes at 0x40100000, padding, checksum 0xEF; then filler.
{
	printf '\xe9\x01\x00\x00\x04\x10\x10\x40'
	printf '\x00\x00\x10\x40\x10\x00\x00\x00'
	head -c 16 /dev/zero
	head -c 15 /dev/zero
	printf '\xef'
	head -c 20000 /dev/urandom
} >"$T/boot.bin"
FW_MD5=$(md5sum <"$T/fw.bin" | cut -c1-32)
OTHER_MD5=$(md5sum <"$T/other.bin" | cut -c1-32)
PTY=(--reset none --after stay --flash-baud 115200)

sim_start pty -v --time-scale 0 --devices 15 \
	--dev 1:flash=1MB,xtal=40 --dev 2:flash=512KB --dev 3:flash=16MB,xtal=40 \
	--dev 4:fault=silent --dev 5:fault=wrong-chip --dev 6:boot=app \
	--dev 7:fault=corrupt@rx:150000 --dev 8:fault=corrupt~rx:0.0005 \
	--dev 9:fault=unplug@rx:200000:60000 --dev 10:fault=reset@flash:0x30000 \
	--dev 11:fault=stuck@0x21000 --dev 12:flash=2MB --dev 13:flash=8MB || exit 1

# --- identify at several sizes and both crystals ---------------------------
for spec in "0 4MB 26 0x3FC000" "1 1MB 40 0x0FC000" "2 512KB 26 0x07C000" \
	"3 16MB 40 0xFFC000" "12 2MB 26 0x1FC000" "13 8MB 26 0x7FC000"; do
	read -r dev size xtal init <<<"$spec"
	run info "${PTY[@]}" "$(sim_port pty "$dev")"
	check "info dev$dev: $size flash, $xtal MHz crystal, init data at $init" \
		eval '[ $rc -eq 0 ] && has "flash size:  $size" && has "crystal:     $xtal MHz" && has "init data:   $init" && has "mac:         5c:cf:7f:a0:00:"'
done

# --- write / verify / read / erase -----------------------------------------
P0=$(sim_port pty 0)
run write "${PTY[@]}" --verify "$P0" 0x10000 "$T/fw.bin"
check "write --verify (compressed) succeeds and verifies" eval '[ $rc -eq 0 ] && has "verified" && has "$FW_MD5"'
check "flash holds the written bytes" cmp -s <(bytes 400000 0x10000 "$(sim_flash pty 0)") "$T/fw.bin"

run write "${PTY[@]}" --no-compress --verify "$P0" 0x3FC000 "$T/init.bin"
check "write --no-compress at the init-data sector" eval '[ $rc -eq 0 ] && has "verified"'
check "flash holds the uncompressed write" cmp -s <(bytes 4096 0x3FC000 "$(sim_flash pty 0)") "$T/init.bin"

run verify "${PTY[@]}" "$P0" 0x10000 "$T/fw.bin" 0x3FC000 "$T/init.bin"
check "verify of two regions passes, a progress line at the start and end of each (one MD5 command each)" \
	eval '[ $rc -eq 0 ] && has "verify 0x00010000: 0/400000 bytes (0%)" && has "verify 0x00010000: 400000/400000 bytes (100%)" &&
	      has "verify 0x003FC000: 4096/4096 bytes (100%)"'

run read "${PTY[@]}" "$P0" 0x10000 400000 "$T/back.bin"
check "read returns what was written" eval '[ $rc -eq 0 ] && cmp -s "$T/back.bin" "$T/fw.bin"'

run verify "${PTY[@]}" "$P0" 0x10000 "$T/other.bin"
check "verify mismatch exits 1 and shows both MD5s" \
	eval '[ $rc -eq 1 ] && has "expected MD5 $OTHER_MD5" && has "flash has" && ! has "blank"'

# The simulator saves its flash file on FLASH_END, not after an erase:
# read the flash back through espline instead.
run erase "${PTY[@]}" "$P0" --region 0x11000 0x1000
erase_rc=$rc
run read "${PTY[@]}" "$P0" 0x10000 0x3000 "$T/erased.bin"
check "erase --region clears just that sector" \
	eval '[ $erase_rc -eq 0 ] && [ $rc -eq 0 ] && all_ff 4096 0x1000 "$T/erased.bin" &&
	      cmp -s <(bytes 4096 0 "$T/erased.bin") <(bytes 4096 0 "$T/fw.bin") &&
	      cmp -s <(bytes 4096 0x2000 "$T/erased.bin") <(bytes 4096 0x2000 "$T/fw.bin")'

run verify "${PTY[@]}" "$P0" 0x11000 "$T/init.bin"
check "verify of an erased region says it is blank" eval '[ $rc -eq 1 ] && has "blank"'

P1=$(sim_port pty 1)
run write "${PTY[@]}" "$P1" 0x80000 "$T/other.bin"
run erase "${PTY[@]}" "$P1"
erase_rc=$rc
run read "${PTY[@]}" "$P1" 0 1MB "$T/erased.bin"
check "erase (chip) leaves the whole flash 0xFF" \
	eval '[ $erase_rc -eq 0 ] && [ $rc -eq 0 ] && all_ff 1048576 0 "$T/erased.bin"'

run write "${PTY[@]}" --verify --flash-mode dio --flash-size detect --flash-freq 80m "$P1" 0 "$T/boot.bin"
check "header patched at 0x0 for the detected 1MB flash (dio, 80m)" \
	eval '[ $rc -eq 0 ] && [ "$(bytes 2 2 "$(sim_flash pty 1)" | od -An -tx1 | tr -d " ")" = "022f" ] && has "0x022F"'
run verify "${PTY[@]}" --flash-mode dio --flash-size detect --flash-freq 80m "$P1" 0 "$T/boot.bin"
check "verify with the same flash options passes" eval '[ $rc -eq 0 ]'
run verify "${PTY[@]}" "$P1" 0 "$T/boot.bin"
check "verify without them fails (the patch changed the bytes)" eval '[ $rc -eq 1 ]'

run write "${PTY[@]}" --flash-mode dio "$P1" 0 "$T/notes.txt"
check "flash options for a non-image at 0x0 are refused before connecting" \
	eval '[ $rc -eq 2 ] && has "not a bootable image" && ! has "connecting"'

run write "${PTY[@]}" --verify "$P0" 0x90000 "$T/init.bin" 0x80000 "$T/other.bin"
check "two files in one write, given out of order, both verify" \
	eval '[ $rc -eq 0 ] && [ $(grep -c "^verified" "$T/out") -eq 2 ] &&
	      cmp -s <(bytes 65536 0x80000 "$(sim_flash pty 0)") "$T/other.bin" &&
	      cmp -s <(bytes 4096 0x90000 "$(sim_flash pty 0)") "$T/init.bin"'
P14=$(sim_port pty 14)  # fresh: nothing has started the stub on it yet
run write "${PTY[@]}" --no-stub "$P14" 0x101000 "$T/other.bin"
check "ROM loader only (--no-stub): uncompressed 1 KiB blocks, no stub" \
	eval '[ $rc -eq 0 ] && has "ROM at 115200" && has "wrote 65536 bytes"'
run verify "${PTY[@]}" --no-stub "$P14" 0x101000 "$T/other.bin"
check "verify needs the stub: a clear refusal with --no-stub" eval '[ $rc -eq 3 ] && has "needs the flasher stub"'
run verify "${PTY[@]}" "$P14" 0x101000 "$T/other.bin"
check "... and passes with it: the ROM wrote the right bytes" eval '[ $rc -eq 0 ] && has "verified"'
run read "${PTY[@]}" "$P14" 0x100000 0x12000 "$T/rom.bin"
check "read back after the ROM write: the data, and erased flash before it" \
	eval '[ $rc -eq 0 ] && cmp -s <(bytes 65536 0x1000 "$T/rom.bin") "$T/other.bin" && all_ff 4096 0 "$T/rom.bin"'

run write "${PTY[@]}" "$P0" 0x20000 "$T/init.bin" 0x20800 "$T/init.bin"
check "overlapping files are refused before anything is written" eval '[ $rc -eq 2 ] && has "overlaps" && ! has "wrote"'
run write "${PTY[@]}" "$P0" 0x20100 "$T/other.bin" 0x30800 "$T/init.bin"
check "files sharing a 4 KiB sector are refused (the erase would clobber), as in a recipe" \
	eval '[ $rc -eq 2 ] && has "must not share a sector" && ! has "wrote" && ! has "connecting"'

# --- faults ------------------------------------------------------------------
run write "${PTY[@]}" "$(sim_port pty 2)" 0 "$T/big.bin"
check "image larger than the flash: exit 1, the runner's layout check names the end and the size" \
	eval '[ $rc -eq 1 ] && has "write of big.bin ends at 0x927c0, past the end of the flash (512KB, the size detected on this unit)" && ! has "wrote"'
run write "${PTY[@]}" --flash-size 1MB "$(sim_port pty 2)" 0 "$T/boot.bin"
check "--flash-size larger than the unit's flash: exit 1, the error names the option" \
	eval '[ $rc -eq 1 ] && has "espline write: error: layout: the chip has 512KB of flash but --flash-size says 1MB" && ! has "wrote"'

run info "${PTY[@]}" "$(sim_port pty 4)"
check "silent chip: sync timeout, exit 3, bounded time" \
	eval '[ $rc -eq 3 ] && has "timed out syncing" && [ $took -lt 30 ]'

run info "${PTY[@]}" "$(sim_port pty 5)"
check "wrong chip: 'found ESP32, this recipe is for ESP8266', exit 1" \
	eval '[ $rc -eq 1 ] && has "found ESP32" && has "this recipe is for ESP8266"'

run info "${PTY[@]}" "$(sim_port pty 6)"
check "chip running its firmware: not in download mode, exit 3" \
	eval '[ $rc -eq 3 ] && [ $took -lt 30 ] && { has "not in download mode" || has "no reply at all"; }'

run write "${PTY[@]}" --verify "$(sim_port pty 7)" 0x10000 "$T/fw.bin"
check "one corrupted byte: the block is retried and the write verifies" \
	eval '[ $rc -eq 0 ] && has "retrying" && has "verified"'
check "... and the flash holds the right bytes" cmp -s <(bytes 400000 0x10000 "$(sim_flash pty 7)") "$T/fw.bin"

run write "${PTY[@]}" --verify "$(sim_port pty 8)" 0x10000 "$T/fw.bin"
check "a line that corrupts often: checksum error naming the cure, exit 3" \
	eval '[ $rc -eq 3 ] && has "checksum" && [ $took -lt 60 ]'

run write "${PTY[@]}" --verify "$(sim_port pty 9)" 0x10000 "$T/fw.bin"
check "unplugged mid-write: lost the connection, exit 3" eval '[ $rc -eq 3 ] && has "lost the connection"'
check "... the error says what was being written where, and names no recipe step" \
	eval 'has "espline write: error: writing fw.bin at 0x10000: " && ! has "step 1"'

# The write goes through the runner: its retry connects again, finds the
# same MAC, resumes (what the failed attempt wrote right stays) and verifies.
run write "${PTY[@]}" --verify "$(sim_port pty 10)" 0x10000 "$T/fw.bin"
check "chip reset mid-write: the retry connects again and the write verifies" \
	eval '[ $rc -eq 0 ] && has "the chip had reset" && has "attempt 1 failed: " && ! has "step 1 (write)" && has "retrying" && has "verified fw.bin"'
check "... and the flash holds the right bytes" cmp -s <(bytes 400000 0x10000 "$(sim_flash pty 10)") "$T/fw.bin"

run write "${PTY[@]}" --verify "$(sim_port pty 11)" 0x20000 "$T/fw.bin"
check "flash that silently does not take writes: MD5 verify fails, says to reject the module" \
	eval '[ $rc -ne 0 ] && has "espline write: error: verify failed for fw.bin at 0x20000" && has "expected MD5" && has "reject the module" && ! has "verified"'

# --- usage -------------------------------------------------------------------
run write "$P0" 0x0
check "write with an ADDR but no FILE: usage error, exit 2" eval '[ $rc -eq 2 ]'
run write --flash-mode fast "$P0" 0 "$T/boot.bin"
check "unknown --flash-mode: exit 2 naming the choices" eval '[ $rc -eq 2 ] && has "dout"'
run erase "$P0" --region 0x1001 0x1000
check "unaligned erase region: exit 2" eval '[ $rc -eq 2 ] && has "4096"'
run read --help
check "read --help: exit 0 with usage" eval '[ $rc -eq 0 ] && has "usage: espline read PORT"'
run info /dev/nonexistent-espline-port
check "missing port: exit 3 naming it" eval '[ $rc -eq 3 ] && has "/dev/nonexistent-espline-port"'

# --- the stub's baud switch on a pty ----------------------------------------
run write --reset none --after stay --flash-baud 460800 --verify "$(sim_port pty 12)" 0x10000 "$T/fw.bin"
check "write at --flash-baud 460800 on a pty" eval '[ $rc -eq 0 ] && has "at 460800 baud" && has "verified"'

# --- RFC 2217: the auto-reset circuit, baud changes in-band ------------------
if sim_start net -v --time-scale 0 --devices 2 --link rfc2217 --dev 1:flash=1MB,xtal=40; then
	R0=$(sim_port net 0)
	run info "$R0"
	check "rfc2217: auto-reset into download mode, identify" \
		eval '[ $rc -eq 0 ] && has "flash size:  4MB" && has "stub at 460800 baud"'
	run write --flash-baud 921600 --verify "$R0" 0x10000 "$T/fw.bin"
	check "rfc2217: write --verify at 921600 after auto-reset" \
		eval '[ $rc -eq 0 ] && has "verified" && cmp -s <(bytes 400000 0x10000 "$(sim_flash net 0)") "$T/fw.bin"'
	check "rfc2217: hard reset afterwards boots the firmware" grep -q "boot (from flash), rst cause 2" "$T/net.log"
	run info "$(sim_port net 1)"
	check "rfc2217: 1MB / 40 MHz device" eval '[ $rc -eq 0 ] && has "flash size:  1MB" && has "crystal:     40 MHz"'
else
	not_ok "rfc2217 simulator starts"
fi

tap_done
