#!/usr/bin/env bash
# sim_cli.sh - espline-sim's command line from the outside: --help, option
# errors, device lines / ready file / symlinks, SYNC over a pty and over
# RFC 2217, flash persistence, fault logging, unplug and re-plug, idle exit,
# signals, and random input that must not kill it.  Needs only bash and
# coreutils (stty, timeout, od).  TAP output.
set -u
trap '' PIPE # a write to a closed pty/socket must fail, not kill the script
. "$(dirname "$0")/../lib/tap.sh"
env_tempdir sim-cli
SIM_PID=
at_exit '[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null'
TAP_SHOW=("$T/err" "$T/out")
TAP_TAIL=8
# start_sim ARGS...: run the simulator in the background, wait for its ready file.
start_sim() {
	rm -f "$T/ready"
	"$SIM" --ready-file "$T/ready" "$@" >"$T/out" 2>"$T/err" &
	SIM_PID=$!
	for _ in $(seq 200); do
		[ -s "$T/ready" ] && return 0
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}
stop_sim() { # [signal] -> exit status in $sim_rc
	kill -"${1:-TERM}" "$SIM_PID" 2>/dev/null
	wait "$SIM_PID"; sim_rc=$?
	SIM_PID=
}
port_of() { awk -v k="$1" '$1 == "device" && $2 == k { print $3 }' "$T/ready" | tail -n 1; }

sync_frame() {
	printf '\xc0\x00\x08\x24\x00\x00\x00\x00\x00\x07\x07\x12\x20'
	printf '\x55%.0s' $(seq 32)
	printf '\xc0'
}
count_sync_replies() { od -An -tx1 -v "$1" | tr -s ' \n' ' ' | grep -o 'c0 01 08 02 00' | wc -l; }

# sync_pty PATH: drain, send one SYNC, print how many replies came back.
sync_pty() {
	exec 3<>"$1" || { echo 0; return; }
	timeout 0.3 cat <&3 >/dev/null
	sync_frame >&3 2>/dev/null
	timeout 0.5 cat <&3 >"$T/replies"
	exec 3>&-
	count_sync_replies "$T/replies"
}

# ---- help and option errors ------------------------------------------------
"$SIM" --help >"$T/out" 2>"$T/err"; rc=$?
check "--help exits 0 and documents --dev and the fault grammar" \
	test "$rc" -eq 0 -a -n "$(grep -e '--dev K:SETTINGS' "$T/out")" -a -n "$(grep 'unplug@flash:OFF' "$T/out")"

bad_ok=1
for args in "--devices 0" "--flash 3MB" "--xtal 24" "--dev 7:flash=1MB" "--dev 0:frob=1" \
	"--fault drop@" "--time-scale -1" "--bogus" "--mac 1:2:3" "--link serial"; do
	# shellcheck disable=SC2086
	"$SIM" $args >"$T/out" 2>"$T/err"; rc=$?
	if [ "$rc" -ne 2 ] || ! grep -q '^espline-sim: ' "$T/err"; then
		echo "# '$args' gave exit $rc: $(cat "$T/err")"; bad_ok=0
	fi
done
check "bad options exit 2 with a message" test "$bad_ok" -eq 1

# ---- three ptys: lines, ready file, links, SYNC ----------------------------
if start_sim --devices 3 --time-scale 0 --link-dir "$T/links" --flash-dir "$T/flash" \
	--dev 2:flash=1MB,xtal=40,mac=18:fe:34:00:00:01; then
	ok "three pty devices become ready"
else
	not_ok "three pty devices become ready"
fi
check "stdout lines equal the ready file" cmp -s "$T/out" "$T/ready"
check "device 2 line: 1MB, Winbond id, 40 MHz, MAC" \
	grep -q '^device 2 /dev/pts/[0-9]* mac=18:fe:34:00:00:01 chip_id=0x000001 flash=1MB jedec=0x1440ef xtal=40 boot=download link=' "$T/ready"
check "sequential default MACs" grep -q '^device 1 .* mac=5c:cf:7f:a0:00:01 ' "$T/ready"
check "DIR/devK symlinks point at the ptys" \
	test "$(readlink "$T/links/dev1")" = "$(port_of 1)" -a -c "$T/links/dev1"
replies=$(sync_pty "$T/links/dev1")
check "SYNC through the symlink gets 8 replies ($replies)" test "$replies" -eq 8
stop_sim INT
check "SIGINT: exit 0, ready file removed, fault summary logged" \
	test "$sim_rc" -eq 0 -a ! -e "$T/ready" -a -n "$(grep 'dev 1: faults: none' "$T/err")"
check "flash files saved on exit" test -s "$T/flash/dev0.bin" -a "$(stat -c %s "$T/flash/dev2.bin")" -eq 1048576

# ---- persistence: a file loaded at start is what is saved at exit ------------
head -c 1048576 /dev/urandom >"$T/flash/dev2.bin"
cp "$T/flash/dev2.bin" "$T/dev2.orig"
start_sim --devices 3 --time-scale 0 --flash-dir "$T/flash" --dev 2:flash=1MB
stop_sim TERM
check "DIR/devK.bin is loaded at start and saved back unchanged" cmp -s "$T/flash/dev2.bin" "$T/dev2.orig"

# ---- faults are logged and counted -----------------------------------------
start_sim --time-scale 0 --fault drop@3 --fault corrupt@tx:500
replies=$(sync_pty "$(port_of 0)")
stop_sim TERM
check "rx drop@3 breaks that SYNC ($replies replies)" test "$replies" -lt 8
check "fired fault logged on stderr" grep -q 'dev 0: fault rx drop@3 fired' "$T/err"
check "summary counts it (rx.drop=1, no tx fault yet)" grep -q 'dev 0: faults: rx.drop=1;' "$T/err"

# ---- unplug: the pty goes, a new one comes, the line is printed again ---------
start_sim --time-scale 0 --link-dir "$T/links" --fault unplug@3:300
sync_pty "$(port_of 0)" >/dev/null 2>&1
for _ in $(seq 60); do [ "$(grep -c '^device 0 ' "$T/out")" -ge 2 ] && break; sleep 0.05; done
second=$(port_of 0)
# (the new pty may get the old number back, as ttyUSB0 does on re-enumeration)
check "after unplug the device line is printed again and the ready file rewritten" \
	test "$(grep -c '^device 0 ' "$T/out")" -eq 2 -a "$(tail -n 1 "$T/out")" = "$(cat "$T/ready")"
check "unplug logged" grep -q 'dev 0: unplugged for 300 ms' "$T/err"
check "symlink follows the new pty" test "$(readlink "$T/links/dev0")" = "$second"
replies=$(sync_pty "$T/links/dev0")
check "the re-plugged device answers SYNC ($replies)" test "$replies" -eq 8
stop_sim TERM

# ---- RFC 2217: port base, raw TCP bytes, garbage ------------------------------
base=$((20000 + RANDOM % 30000))
if start_sim --devices 2 --link rfc2217 --port-base "$base" --time-scale 0 --dev 1:boot=download; then
	check "rfc2217 devices listen on port base + K" \
		test "$(port_of 1)" = "rfc2217://127.0.0.1:$((base + 1))"
	exec 4<>"/dev/tcp/127.0.0.1/$((base + 1))"
	timeout 0.3 cat <&4 >/dev/null
	sync_frame >&4
	timeout 0.5 cat <&4 >"$T/replies"
	check "SYNC over TCP to a boot=download device: 8 replies" test "$(count_sync_replies "$T/replies")" -eq 8
	head -c 200000 /dev/urandom >&4
	exec 4>&-
	exec 4<>"/dev/tcp/127.0.0.1/$((base + 1))"
	head -c 100000 /dev/urandom >&4
	sleep 0.3
	exec 4>&-
	check "random bytes and telnet junk over TCP: still running" kill -0 "$SIM_PID"
	exec 4<>"/dev/tcp/127.0.0.1/$((base + 1))"
	timeout 0.3 cat <&4 >/dev/null
	sync_frame >&4
	timeout 0.5 cat <&4 >"$T/replies"
	exec 4>&-
	check "and it answers SYNC again" test "$(count_sync_replies "$T/replies")" -eq 8
	stop_sim TERM
else
	not_ok "rfc2217 devices start on port base $base"
fi

# ---- garbage into a pty, then idle exit ------------------------------------
start_sim --time-scale 0 --exit-after-idle 1
p=$(port_of 0)
exec 3<>"$p"
head -c 300000 /dev/urandom >&3
exec 3>&-
replies=$(sync_pty "$p")
check "300 KB of random bytes into a pty: still answers SYNC ($replies)" test "$replies" -eq 8
for _ in $(seq 60); do kill -0 "$SIM_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$SIM_PID" 2>/dev/null; then
	not_ok "--exit-after-idle 1 exits on its own"
	stop_sim KILL
else
	wait "$SIM_PID"; rc=$?; SIM_PID=
	check "--exit-after-idle 1 exits on its own with status 0" test "$rc" -eq 0
fi

tap_done
