#!/usr/bin/env bash
# table_width.sh - the live table fits the terminal: `espline run` on a
# pseudo-terminal of 60, 80 and 120 columns (and with $COLUMNS) draws no
# line wider than the terminal, so nothing wraps and no log line is cut by
# a wrapped row.  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
. tests/lib/sim.sh
env_tempdir table-width

make_demo_images || { echo "not ok 1 - demo images"; exit 1; }
mkdir -p "$T/r/images" && cp recipes/images/* "$T/r/images/"
cat >"$T/r/unit.yaml" <<'YAML'
recipe: table-width
chip: esp8266
connect: { reset: none, flash_baud: 115200 }
flash: { size: keep, mode: keep, freq: keep }
steps:
  - write: { file: images/nodemcu-demo.bin, address: 0x0 }
  - verify: md5
  - reset: stay
YAML

# on_pty COLS OUT ARGS...: run ARGS on a pty of COLS columns, output to OUT
on_pty() {
	local cols=$1 out=$2
	shift 2
	timeout 60 python3 - "$cols" "$out" "$@" <<'PY'
import fcntl, os, pty, struct, sys, termios
cols, out, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
data = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
open(out, "wb").write(data)
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

# widest FILE: the widest line of the table's frames, in columns (escape
# sequences dropped; a line is what lies between line ends or cursor
# moves).  The summary after the last frame (the cursor shown again) is
# printed once, as plain lines, and may wrap.
widest() {
	sed -n '/\x1b\[?25h/q;p' "$1" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]/\n/g' -e 's/\r/\n/g' |
		awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }'
}

sim_start a --time-scale 0 --flash 4MB
for cols in 60 80 120; do
	# the pty's size reaches the program before it draws: wait for it
	on_pty "$cols" "$T/out$cols" sh -c 'sleep 0.2; exec "$@"' sh "$E" run "$T/r/unit.yaml" \
		--port "$(sim_port a)" --db "$T/units.sqlite"
	rc=$?
	w=$(widest "$T/out$cols")
	check "a pty of $cols columns: the unit passes and the table drew (exit $rc)" \
		eval '[ $rc -eq 0 ] && grep -q "RESULT" "$T/out$cols"'
	check "a pty of $cols columns: no line is wider than $((cols - 1)) (widest: $w)" [ "$w" -le $((cols - 1)) ]
done
COLUMNS=70 on_pty 200 "$T/outenv" sh -c 'sleep 0.2; exec "$@"' sh "$E" run "$T/r/unit.yaml" \
	--port "$(sim_port a)" --db "$T/units.sqlite"
w=$(widest "$T/outenv")
check "\$COLUMNS=70 on a wider pty: no line wider than 69 (widest: $w)" [ "$w" -le 69 ]
sim_stop a
tap_done
