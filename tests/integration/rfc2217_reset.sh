#!/usr/bin/env bash
# rfc2217_reset.sh - the auto-reset over a serial server on a slow network,
# and a write through a real RFC 2217 server (Debian's ser2net).
#
# Through a serial server each DTR/RTS change reaches the pins when the
# server gets it.  pyserial's RFC 2217 client (esptool's) waits at least
# 50 ms for the acknowledgement of each change, so the two changes of one
# reset step reach a NodeMCU board 50 ms apart: the board passes through "EN
# released, GPIO0 high" and boots from flash before GPIO0 goes low.  espline
# sends both changes of a step in one TCP write without waiting, so the
# server sets them back to back.  The simulator's --line-latency delays each
# change (acknowledgement included) as a slow network would; its EN
# capacitor is 10 ms (--en-delay).  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir rfc2217-reset
TAP_SHOW=("$T/out")
PY=/usr/bin/python3   # Debian's, with python3-serial (pyserial)

# esptool's classic reset, one line change at a time, through pyserial's
# RFC 2217 client; prints how long each change took to be acknowledged.
cat >"$T/classic.py" <<'EOF'
import sys, time, serial
port = serial.serial_for_url(sys.argv[1], baudrate=115200, timeout=0.5)
def change(what, value):
    t0 = time.monotonic()
    setattr(port, what, value)
    print("%s=%d acknowledged in %.0f ms" % (what, value, (time.monotonic() - t0) * 1000))
change("dtr", False); change("rts", True)     # EN low, GPIO0 high
time.sleep(0.1)
change("dtr", True); change("rts", False)     # GPIO0 low, EN released
time.sleep(0.05)
change("dtr", False)                          # GPIO0 released
port.close()
EOF

boots() { grep -c "dev $2: boot ($3" "$T/$1.log"; }

# --- a serial server 50 ms away, with up to 20 ms of jitter -------------------
if sim_start slow -v --time-scale 0 --devices 2 --link rfc2217 --line-latency 50:20 --seed 7; then
	for i in 1 2 3; do
		tap_run 60 "$E" info "$(sim_port slow 0)"
		check "latency 50 ms: espline's auto-reset enters download mode (try $i)" \
			eval '[ $rc -eq 0 ] && has "flash size:  4MB" && [ "$(boots slow 0 "download mode")" -eq '"$i"' ]'
	done
	if "$PY" -c 'import serial' 2>/dev/null; then
		"$PY" "$T/classic.py" "$(sim_port slow 1)" >"$T/out" 2>&1
		sleep 0.3
		check "pyserial: each line change is acknowledged only after the 50 ms latency" \
			eval '[ "$(grep -c "acknowledged in" "$T/out")" -eq 5 ] &&
			      ! awk "/acknowledged in/ && \$(NF-1) < 50 { bad = 1 } END { exit !bad }" "$T/out"'
		check "pyserial's one-change-at-a-time reset boots from flash there (the real-world failure)" \
			eval '[ "$(boots slow 1 "from flash), rst cause 2")" -ge 1 ] && [ "$(boots slow 1 "download mode")" -eq 0 ]'
	else
		not_ok "python3-serial is installed (scripts/install-deps.sh)"
	fi
	sim_stop slow
else
	not_ok "rfc2217 simulator with --line-latency starts"
fi

# --- ser2net bridging a simulated UART, write at 921600 -----------------------
# A pty has no modem lines, so the device boots in download mode (a jig) and
# espline does not reset it; baud changes travel through ser2net to the
# pty's termios, where the simulator reads the rate.
if ! command -v ser2net >/dev/null && [ -x /usr/sbin/ser2net ]; then PATH=$PATH:/usr/sbin; fi
if ! command -v ser2net >/dev/null; then
	not_ok "ser2net is installed (scripts/install-deps.sh)"
elif sim_start uart -v --time-scale 0 --devices 1 --boot download; then
	tcp=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >"$T/ser2net.yaml" <<EOF
%YAML 1.1
---
connection: &dev0
  accepter: telnet(rfc2217),tcp,127.0.0.1,$tcp
  connector: serialdev,$(sim_port uart 0),115200n81,local
EOF
	ser2net -n -c "$T/ser2net.yaml" -P "$T/ser2net.pid" >"$T/ser2net.log" 2>&1 &
	S2N=$!
	PIDS+=("$S2N")
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$tcp") 2>/dev/null && break; sleep 0.1; done
	head -c 300000 /dev/urandom >"$T/fw.bin"
	tap_run 90 "$E" write --db "$T/records.sqlite" --reset none --after stay --flash-baud 921600 --verify \
		"rfc2217://127.0.0.1:$tcp" 0x10000 "$T/fw.bin"
	sleep 0.3
	check "ser2net: write --verify at 921600 through a real RFC 2217 server" \
		eval '[ $rc -eq 0 ] && has "verified" && cmp -s <(bytes 300000 0x10000 "$(sim_flash uart 0)") "$T/fw.bin"'
	check "ser2net: the rate reached the UART (the simulator saw the host switch to 921600)" \
		grep -q "dev 0: host baud 115200 -> 921600" "$T/uart.log"
	kill "$S2N" 2>/dev/null
	wait "$S2N" 2>/dev/null
	sim_stop uart
else
	not_ok "pty simulator starts"
fi

tap_done
