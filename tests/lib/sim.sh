# sim.sh - espline-sim processes for the test scripts (sourced, not run;
# needs env.sh's SIM, PIDS and a scratch folder T).
#
#   sim_start NAME ARGS...  one simulator, flash files in $T/NAME.flash, log in
#                     $T/NAME.log, pid in SIMPID_NAME and PIDS; idles out
#                     after $SIM_IDLE seconds (300 unless set).  Waits until
#                     every device listens and keeps a copy of the device
#                     lines in $T/NAME.devices (the simulator rewrites its
#                     ready file on a re-plug and removes it when it exits).
#                     Status 1, with the log as "#" lines, if it did not start.
#                     Started again under the same NAME, it finds the flash
#                     as the last one left it.
#   sim_launch NAME ARGS... the same without flash files (flash in memory)
#   sim_spawn NAME ARGS...  sim_launch without the wait (start several at
#                     once), then sim_wait NAME for each
#   sim_stop NAME     stop it and wait for it
#   sim_port NAME [K] the port of device K (0) as the ready file says now
#   sim_dev_port NAME K / sim_dev_field NAME K FIELD (mac, flash, ...):
#                     from the copy taken at start
#   sim_ports_args NAME N   "--port P" for devices 0..N-1, one word a line
#                     (for mapfile)
#   sim_flash NAME K  the file holding device K's flash
#   bytes LEN OFFSET FILE   LEN bytes of FILE from OFFSET
#   expected_flash SIZE OUT what recipes/nodemcu-4mb.yaml leaves on a chip of
#                     SIZE (512KB, 1MB ... 16MB), rebuilt independently of
#                     espline; size_bytes SIZE, size_code SIZE help it

sim_start() {
	local name=$1; shift
	mkdir -p "$T/$name.flash"
	sim_launch "$name" --flash-dir "$T/$name.flash" "$@"
}
sim_launch() { sim_spawn "$@" && sim_wait "$1"; }
sim_spawn() {
	local name=$1; shift
	rm -f "$T/$name.ready" "$T/$name.devices"
	"$SIM" --exit-after-idle "${SIM_IDLE:-300}" --ready-file "$T/$name.ready" "$@" >"$T/$name.log" 2>&1 &
	PIDS+=("$!")
	printf -v "SIMPID_$name" %s "$!"
}
sim_wait() {
	local name=$1 v="SIMPID_$1" pid
	pid=${!v}
	for _ in $(seq 500); do
		if [ -s "$T/$name.ready" ]; then cp "$T/$name.ready" "$T/$name.devices"; return 0; fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	echo "# simulator $name did not start:"; sed 's/^/#   /' "$T/$name.log"
	return 1
}
sim_stop() {
	local v="SIMPID_$1"
	kill "${!v}" 2>/dev/null
	wait "${!v}" 2>/dev/null
	return 0
}
sim_port() { awk -v k="${2:-0}" '$1 == "device" && $2 == k { print $3 }' "$T/$1.ready" | tail -n 1; }
sim_dev_port() { awk -v k="$2" '$1 == "device" && $2 == k { p = $3 } END { print p }' "$T/$1.devices"; }
sim_dev_field() {
	awk -v k="$2" -v f="$3" '$1 == "device" && $2 == k { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) v = kv[2] } } END { print v }' "$T/$1.devices"
}
sim_ports_args() {
	local k
	for k in $(seq 0 $(($2 - 1))); do printf -- '--port\n%s\n' "$(sim_dev_port "$1" "$k")"; done
}
sim_flash() { echo "$T/$1.flash/dev$2.bin"; }

bytes() { tail -c +"$(($2 + 1))" "$3" | head -c "$1"; }

size_bytes() { case $1 in 512KB) echo $((512 << 10)) ;; *MB) echo $((${1%MB} << 20)) ;; esac; }
# The image-header size nibble for a flash size (ESP8266 image format).
size_code() { case $1 in 512KB) echo 0 ;; 1MB) echo 2 ;; 2MB) echo 3 ;; 4MB) echo 4 ;; 8MB) echo 8 ;; 16MB) echo 9 ;; esac; }
# Erased chip, the image at 0 with header byte 2 = dio (2) and byte 3 =
# size code << 4 | 40m (0), the init data at size - 0x4000, all else 0xFF.
expected_flash() {
	local bytes; bytes=$(size_bytes "$1")
	head -c "$bytes" /dev/zero | tr '\0' '\377' >"$2"
	dd if=recipes/images/nodemcu-demo.bin of="$2" conv=notrunc status=none
	printf "\\x02\\x$(size_code "$1")0" | dd of="$2" bs=1 seek=2 conv=notrunc status=none
	dd if=recipes/images/esp_init_data_demo.bin of="$2" bs=1 seek=$((bytes - 0x4000)) conv=notrunc status=none
}
