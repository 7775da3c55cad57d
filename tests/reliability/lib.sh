# lib.sh - shared helpers of the reliability drivers (sourced, not run).
#
# Needs: E (espline), SIM (espline-sim), T (a scratch directory), and the
# current directory at the top of the tree.  Every simulator started here is
# remembered in SIM_PIDS so the caller's cleanup can stop it.

SIM_PIDS=()

# rel_start_sim NAME ARGS...: one simulator with its flash in $T/NAME.flash;
# waits until every device listens, then keeps the device lines in
# $T/NAME.devices (the simulator removes its ready file when it exits).
rel_start_sim() {
	local name=$1; shift
	rm -rf "$T/$name.flash" "$T/$name.ready" "$T/$name.devices"
	mkdir -p "$T/$name.flash"
	"$SIM" --exit-after-idle 120 --ready-file "$T/$name.ready" --flash-dir "$T/$name.flash" "$@" \
		>"$T/$name.log" 2>&1 &
	local pid=$!
	SIM_PIDS+=("$pid")
	eval "REL_SIMPID_$name=$pid"
	for _ in $(seq 300); do
		if [ -s "$T/$name.ready" ]; then cp "$T/$name.ready" "$T/$name.devices"; return 0; fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	echo "# simulator $name did not start:"; sed 's/^/#   /' "$T/$name.log"
	return 1
}
rel_stop_sim() {
	local v="REL_SIMPID_$1"
	kill "${!v}" 2>/dev/null
	wait "${!v}" 2>/dev/null
	return 0
}
# rel_dev_port NAME K / rel_dev_field NAME K FIELD (mac, flash, ...): from the
# first line the simulator printed for device K.
rel_dev_port() { awk -v k="$2" '$1 == "device" && $2 == k { print $3; exit }' "$T/$1.devices"; }
rel_dev_field() {
	awk -v k="$2" -v f="$3" '$1 == "device" && $2 == k { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) { print kv[2]; exit } } }' "$T/$1.devices"
}
rel_ports_args() {
	local k
	for k in $(seq 0 $(($2 - 1))); do printf -- '--port\n%s\n' "$(rel_dev_port "$1" "$k")"; done
}

rel_size_bytes() { case $1 in 512KB) echo $((512 << 10)) ;; *MB) echo $((${1%MB} << 20)) ;; esac; }
# The image-header size nibble for a flash size (ESP8266 image format).
rel_size_code() { case $1 in 512KB) echo 0 ;; 1MB) echo 2 ;; 2MB) echo 3 ;; 4MB) echo 4 ;; 8MB) echo 8 ;; 16MB) echo 9 ;; esac; }

# rel_expected_flash SIZE OUT: what recipes/nodemcu-4mb.yaml leaves on a chip
# of SIZE, rebuilt here independently of espline (as station.sh does): erased
# chip, the image at 0 with header byte 2 = dio (2) and byte 3 = size code << 4
# | 40m (0), the init data at size - 0x4000, everything else 0xFF.
rel_expected_flash() {
	local bytes; bytes=$(rel_size_bytes "$1")
	head -c "$bytes" /dev/zero | tr '\0' '\377' >"$2"
	dd if=recipes/images/nodemcu-demo.bin of="$2" conv=notrunc status=none
	printf "\\x02\\x$(rel_size_code "$1")0" | dd of="$2" bs=1 seek=2 conv=notrunc status=none
	dd if=recipes/images/esp_init_data_demo.bin of="$2" bs=1 seek=$((bytes - 0x4000)) conv=notrunc status=none
}

# rel_units DB: one line per unit, tab-separated:
#   port mac result error_kind error n_steps
# (error with tabs and newlines flattened to spaces).
rel_units() {
	sqlite3 -separator $'\t' "$1" "select u.port, coalesce(u.mac, ''), u.result,
		coalesce(u.error_kind, ''), replace(replace(replace(coalesce(u.error, ''), char(9), ' '), char(10), ' '), char(13), ' '),
		(select count(*) from steps s where s.unit_id = u.id)
		from units u order by u.id;"
}

# rel_specific_reason KIND MESSAGE: a FAIL names its phase or step and the
# kind of error, and says more than a word.  "unit: ...", "unknown error",
# "ok" or an empty or one-word message are generic.
rel_specific_reason() {
	case $1 in
	'' | unit:* | *'unknown error' | *': ok') return 1 ;;
	*': '*) ;;
	*) return 1 ;;
	esac
	[ "${#2}" -ge 20 ] && [ "$(printf '%s' "$2" | wc -w)" -ge 3 ]
}

# rel_wait_exit PID SECONDS: wait for a background process; SIGKILL it if it
# outlives SECONDS (status 124 then, like timeout(1)).
rel_wait_exit() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		if [ $SECONDS -ge "$deadline" ]; then
			kill -KILL "$1" 2>/dev/null
			wait "$1" 2>/dev/null
			return 124
		fi
		sleep 0.02
	done
	wait "$1"
}
