#!/usr/bin/env bash
# matrix.sh - the fault matrix: `espline run` against espline-sim with every
# fault kind the simulator injects, at several positions each, one faulted
# unit per simulated device, 16 devices per round, and every unit checked
# against the simulator's ground truth (its flash file).
#
#   tests/reliability/matrix.sh [--ci | --full] [--jobs J] [--write FILE.md]
#                               [--summary FILE.json] [--seed N] [--keep]
#                               [--only REGEX] [--times N]
#
#   --ci        the bounded form run by tests/integration/reliability.sh
#               (about 350 faulted units in 22 rounds)
#   --full      more positions and more random-fault seeds (by hand, ~3x)
#   --jobs J    rounds run J at a time (default 2)
#   --write F   also write the matrix as Markdown to F (docs/reliability-matrix.md)
#   --summary F also write the totals and the violations counted by class as
#               JSON to F (what tests/integration/reliability.sh checks)
#   --seed N    seed of the probabilistic faults (default 1)
#   --only R    only the cases whose label matches the extended regex R
#               (e.g. --only 'drop rx ~' to measure one fault kind)
#   --times N   every case N times (the probabilistic ones with new seeds)
#
# Checked for every unit (each violation is printed and makes the exit 1):
#   - exactly one record for its port (ONCE mode: one unit per adapter);
#   - PASS: the device's flash equals the recipe's images byte for byte
#     (rebuilt here as station.sh does), all 5 steps recorded, its own MAC;
#   - FAIL: a specific reason ("PHASE: kind" plus a sentence), and when the
#     reason names a step, that step is the last one recorded and it failed;
#   - never RUNNING or INTERRUPTED;
#   - the faults that cannot end well (silent chip, wrong chip, 1MB/2MB/512KB
#     flash, a stuck sector where the images have 0 bits, a unit that
#     verifies but does not boot: loop, exception, brown-out, a flash mode
#     the part cannot do) FAIL with the phase that names them (0 PASS); a stuck sector that stays 0xFF, and short stalls, PASS.
# And over all units: single dropped or corrupted bytes are recovered by the
# retries in >= 95% of the units that carried one, and so are chip resets
# (reconnect, identify again, redo the step).
# Output: one "# ..." line per violation, the matrix, then "matrix: ok" or
# "matrix: FAILED (N violations)"; a TSV of every unit in $REL_OUT (if set).
set -u
. "$(dirname "$0")/../lib/env.sh"
MODE=ci JOBS=2 WRITE= SUMMARY= SEED=1 KEEP_T=0 ONLY= TIMES=1
while [ $# -gt 0 ]; do
	case $1 in
	--ci) MODE=ci ;;
	--full) MODE=full ;;
	--jobs) JOBS=$2; shift ;;
	--write) WRITE=$2; shift ;;
	--summary) SUMMARY=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--keep) KEEP_T=1 ;;
	--only) ONLY=$2; shift ;;
	--times) TIMES=$2; shift ;;
	*) echo "usage: $0 [--ci|--full] [--jobs J] [--write FILE.md] [--summary FILE.json] [--seed N] [--keep] [--only REGEX] [--times N]" >&2
	   exit 2 ;;
	esac
	shift
done
env_tempdir matrix
. tests/reliability/lib.sh
at_exit 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null'
DEVS=16
US=$'\x1f'   # field separator of the unit lists: errors may hold tabs and '|'

make_demo_images || { echo "matrix: cannot make the demo images"; exit 1; }
expected_flash 4MB "$T/expected-4MB.bin"

# ---- where is the ERASE_FLASH command in the byte stream? ----------------
# probe_unplug NAME FIRST STEP: 16 devices unplugged at FIRST, FIRST+STEP, ...
# (rx bytes); prints "POSITION ERROR_KIND" for each.
probe_unplug() {
	local name=$1 first=$2 step=$3 k devargs=()
	for k in $(seq 0 $((DEVS - 1))); do devargs+=(--dev "$k:fault=unplug@$((first + k * step)):300"); done
	sim_start "$name" --devices "$DEVS" --link rfc2217 --time-scale 0 "${devargs[@]}" >/dev/null || return 1
	local ports; mapfile -t ports < <(sim_ports_args "$name" "$DEVS")
	timeout -k 5 60 "$E" run recipes/nodemcu-4mb.yaml --json --db "$T/$name.sqlite" "${ports[@]}" >/dev/null 2>&1
	sim_stop "$name"
	for k in $(seq 0 $((DEVS - 1))); do
		echo "$((first + k * step)) $(sqlite3 "$T/$name.sqlite" "select error_kind from units where port = '$(sim_dev_port "$name" "$k")';")"
	done
}
# Positions of an unplug that lands in the erase step: a coarse pass finds
# the first unplug that fails in erase or write, a fine pass the bytes of
# the erase command before it.  The stream changes with the stub and the
# loader, so this is measured, not written down.
# The ERASE_FLASH frame is 10 bytes on the wire (two SLIP ends around an
# 8-byte header), so the two fine passes, 16 bytes apart each and offset by
# 8 from each other, probe every 8th byte of [first - 240, first + 8] and
# always hit it.  (They were offset by 2 before: a frame that fell in the
# 6-byte gap the two passes left was missed about one run in four.)
erase_positions() {
	local first
	first=$(probe_unplug probe1 11000 250 | awk '$2 ~ /^(erase|write):/ { print $1; exit }')
	[ -n "$first" ] || return 0
	probe_unplug probe2 $((first - 240)) 16 | awk '$2 == "erase:" { print $1 }'
	probe_unplug probe3 $((first - 240 + 8)) 16 | awk '$2 == "erase:" { print $1 }'
}
erase_positions | sort -n | head -n 4 >"$T/erase-positions"

# ---- the cases: "LABEL<TAB>--dev SETTINGS" ---------------------------------
# Byte positions (rx: host -> chip, about 131 KB per unit; tx: chip -> host,
# about 1.2 KB, the boot log included) were chosen from a probe of one
# session with recipes/nodemcu-4mb.yaml: rx 0-12900 is sync and the stub
# upload, then identification, the ERASE_FLASH command (its position is
# probed above), then the compressed image; tx 0-250 is the boot log.
cases() {
	# d: the step between positions (the full run takes about 3 times more)
	local d=1 n p s
	[ "$MODE" = full ] && d=3
	for p in $(seq 60 $((2600 / d)) 131000); do printf 'drop rx (1 byte)\tfault=drop@%s\n' "$p"; done
	for p in $(seq 1700 $((2600 / d)) 131000); do printf 'corrupt rx (1 byte)\tfault=corrupt@%s\n' "$p"; done
	for p in $(seq 20 $((38 / d)) 1180); do printf 'drop tx (1 byte)\tfault=drop@tx:%s\n' "$p"; done
	for p in $(seq 43 $((38 / d)) 1180); do printf 'corrupt tx (1 byte)\tfault=corrupt@tx:%s\n' "$p"; done
	# identification (chip magic, efuse MAC, flash id) is short: look closer
	for p in $(seq 12908 $((25 / d)) 13283); do printf 'corrupt rx, identify (1 byte)\tfault=corrupt@%s\n' "$p"; done
	for p in $(seq 403 $((15 / d)) 703); do printf 'corrupt tx, identify (1 byte)\tfault=corrupt@tx:%s\n' "$p"; done
	for s in $(seq $((12 * d))); do
		printf 'drop rx ~2e-5/byte\tfault=drop~0.00002\n'
		printf 'corrupt rx ~2e-5/byte\tfault=corrupt~0.00002\n'
		printf 'drop tx ~1e-3/byte\tfault=drop~tx:0.001\n'
		printf 'corrupt tx ~1e-3/byte\tfault=corrupt~tx:0.001\n'
	done
	for p in $(seq 200 $((16000 / d)) 131000); do printf 'stall rx 1.5 s\tfault=stall@%s:1500\n' "$p"; done
	for p in $(seq 100 $((250 / d)) 1100); do printf 'stall tx 1.5 s\tfault=stall@tx:%s:1500\n' "$p"; done
	for p in 13280 40000 70000 100000; do printf 'stall rx 5 s\tfault=stall@%s:5000\n' "$p"; done
	for p in $(seq 300 $((2600 / d)) 13100); do printf 'unplug (connect, identify)\tfault=unplug@%s:300\n' "$p"; done
	for p in $(cat "$T/erase-positions"); do printf 'unplug mid-erase\tfault=unplug@%s:300\n' "$p"; done
	for p in $(seq 16000 $((14000 / d)) 130000); do printf 'unplug mid-write (byte)\tfault=unplug@%s:300\n' "$p"; done
	for p in $(seq 0 $((0x8000 / d)) $((0x3ffff))) $((0x3fc000)) $((0x3fc07f)); do
		printf 'unplug mid-write (flash)\tfault=unplug@flash:0x%x:300\n' "$p"; done
	for p in $(seq 100 $((26000 / d)) 131000); do printf 'reset rx byte\tfault=reset@%s\n' "$p"; done
	for p in 300 900; do printf 'reset tx byte\tfault=reset@tx:%s\n' "$p"; done
	for p in $(seq 0 $((0x10000 / d)) $((0x3ffff))) $((0x3fc000)); do
		printf 'reset mid-write (flash)\tfault=reset@flash:0x%x\n' "$p"; done
	# A sector stuck at 1 bits matters only where the images hold a 0 bit.
	for p in $(seq 0 $((0x4000 / d)) $((0x3ffff))) $((0x3fc000)) $((0x3fd000)) $((0x40000)) $((0x100000)) $((0x3fe000)); do
		if [ "$(tail -c +$((p / 4096 * 4096 + 1)) "$T/expected-4MB.bin" | head -c 4096 | tr -d '\377' | wc -c)" -gt 0 ]; then
			printf 'stuck sector (image has 0 bits)\tfault=stuck@0x%x\n' "$p"
		else
			printf 'stuck sector (all 0xFF there)\tfault=stuck@0x%x\n' "$p"
		fi
	done
	for s in $(seq $((4 * d))); do printf 'silent chip\tfault=silent\n'; done
	for s in $(seq $((4 * d))); do printf 'wrong chip (ESP32)\tfault=wrong-chip\n'; done
	for s in 512KB 1MB 2MB 1MB 2MB 512KB 1MB 2MB 1MB 2MB 1MB 2MB 1MB 2MB 1MB; do printf 'small flash (%s)\tflash=%s\n' "$s" "$s"; done
	# Units that verify by MD5 but do not boot (docs/boot-model.md): the
	# recipe's boot_check must fail every one of them.
	for s in $(seq $((2 * d))); do
		printf 'boot: loop (watchdog)\tboot_fault=loop\n'
		printf 'boot: exception after the banner\tboot_fault=exception:20\n'
		printf 'boot: brown-out resets\tboot_fault=brownout:200\n'
		printf 'boot: flash mode the part cannot do (DOUT only)\tmodes=dout\n'
	done
	return 0
}
# Slow cases (timeouts, stalls, unplug pauses) share rounds so that the
# fast rounds stay fast: sort by a slowness rank, keep the given order within.
rank() {
	case $1 in
	'silent chip'*) echo 5 ;;
	reset*) echo 4 ;;
	stall*) echo 3 ;;
	unplug*) echo 2 ;;
	*) echo 1 ;;
	esac
}
selected_cases() {
	local k
	for k in $(seq "$TIMES"); do cases; done | { [ -n "$ONLY" ] && grep -E -- "^($ONLY)" || cat; }
}
selected_cases | while IFS=$'\t' read -r label spec; do printf '%s\t%05d\t%s\t%s\n' "$(rank "$label")" "$((i = ${i:-0} + 1))" "$label" "$spec"; done |
	sort -t$'\t' -k1,1n -k2,2n | cut -f3- >"$T/cases"
total=$(wc -l <"$T/cases")
rounds=$(((total + DEVS - 1) / DEVS))

# ---- one round: 16 devices, one faulted unit each --------------------------
# run_round R: writes $T/rR.units (label spec port mac result kind error
# steps last_step_kind last_step_result flash) and $T/rR.time.
run_round() {
	local r=$1 name="r$1" k=0 devargs=() label spec
	sed -n "$((r * DEVS + 1)),$(((r + 1) * DEVS))p" "$T/cases" >"$T/$name.cases"
	local n; n=$(wc -l <"$T/$name.cases")
	while IFS=$'\t' read -r label spec; do devargs+=(--dev "$k:$spec"); k=$((k + 1)); done <"$T/$name.cases"
	local t0=$SECONDS
	sim_start "$name" --devices "$n" --link rfc2217 --time-scale 0 --seed $((SEED * 1000 + r * DEVS)) \
		"${devargs[@]}" || { echo "sim-failed" >"$T/$name.status"; return; }
	local ports; mapfile -t ports < <(sim_ports_args "$name" "$n")
	timeout -k 5 150 "$E" run recipes/nodemcu-4mb.yaml --json --db "$T/$name.sqlite" --station-name "matrix-$r" \
		"${ports[@]}" >"$T/$name.jsonl" 2>"$T/$name.err"
	echo "$?" >"$T/$name.status"
	sim_stop "$name"
	echo $((SECONDS - t0)) >"$T/$name.time"
	sqlite3 -separator "$US" "$T/$name.sqlite" "select u.port, coalesce(u.mac, ''), u.result,
		coalesce(u.error_kind, ''), replace(replace(coalesce(u.error, ''), char(9), ' '), char(10), ' '),
		(select count(*) from steps s where s.unit_id = u.id),
		coalesce((select s.kind || ' ' || s.result from steps s where s.unit_id = u.id order by s.idx desc limit 1), '-')
		from units u order by u.id;" >"$T/$name.rows" 2>>"$T/$name.err"
	k=0
	while IFS=$'\t' read -r label spec; do
		local port mac rows flash="-"
		port=$(sim_dev_port "$name" "$k") mac=$(sim_dev_field "$name" "$k" mac)
		rows=$(awk -F"$US" -v p="$port" '$1 == p' "$T/$name.rows")
		if [ -f "$T/$name.flash/dev$k.bin" ] && cmp -s "$T/expected-4MB.bin" "$T/$name.flash/dev$k.bin"; then
			flash=same
		else
			flash=differs
		fi
		if [ -z "$rows" ]; then
			printf "%s$US%s$US%s$US%s${US}MISSING$US$US${US}0$US-$US%s\n" "$label" "$spec" "$port" "$mac" "$flash"
		else
			printf '%s\n' "$rows" | while IFS=$US read -r _ rmac result kind error steps last; do
				printf "%s$US%s$US%s$US%s$US%s$US%s$US%s$US%s$US%s$US%s$US%s\n" "$label" "$spec" "$port" "$mac" \
					"$result" "$kind" "$error" "$steps" "$last" "$flash" "$rmac"
			done
		fi
		k=$((k + 1))
	done <"$T/$name.cases" >"$T/$name.units"
}

start=$SECONDS
running=0
for r in $(seq 0 $((rounds - 1))); do
	run_round "$r" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
elapsed=$((SECONDS - start))
cat "$T"/r*.units >"$T/all.units" 2>/dev/null
[ -n "${REL_OUT:-}" ] && cp "$T/all.units" "$REL_OUT"

# ---- judge every unit ----------------------------------------------------
violations=0
# violation CLASS TEXT: CLASS names the rule broken (the summary counts
# them); TEXT says which unit and how.
violation() {
	violations=$((violations + 1))
	echo "$1" >>"$T/violation-classes"
	echo "# VIOLATION: $2" | tee -a "$T/violations"
}
: >"$T/violation-classes"
for r in $(seq 0 $((rounds - 1))); do
	st=$(cat "$T/r$r.status" 2>/dev/null)
	case $st in
	0 | 1 | 3) ;;
	*) violation run_ended "round $r: espline run ended with status ${st:-?} (124/137: hung, killed): $(tail -n 3 "$T/r$r.err" | tr '\n' ' ')" ;;
	esac
	if grep -q Sanitizer "$T/r$r.err" 2>/dev/null; then violation sanitizer "round $r: sanitizer report on stderr"; fi
done
for r in $(seq 0 $((rounds - 1))); do
	dup=$(cut -d"$US" -f3 "$T/r$r.units" 2>/dev/null | sort | uniq -d | tr '\n' ' ')
	[ -n "$dup" ] && violation duplicate "round $r: ports with more than one record: $dup"
done
while IFS=$US read -r label spec port mac result kind error steps last flash rmac; do
	what="$label [$spec] on $port"
	case $result in
	PASS)
		[ "$flash" = same ] || violation pass_flash_differs "$what: PASS but the flash differs from the recipe's images"
		[ "$steps" = 5 ] || violation pass_steps "$what: PASS with $steps of 5 steps recorded"
		[ "$rmac" = "$mac" ] || violation pass_mac "$what: PASS recorded MAC '$rmac', the device has $mac"
		;;
	FAIL)
		rel_specific_reason "$kind" "$error" || violation fail_reason "$what: FAIL without a specific reason: kind '$kind', error '$error'"
		phase=${kind%%:*}
		case $phase in
		erase | write | write_init_data | verify | reset | boot_check)
			[ "$last" = "$phase FAIL" ] || violation fail_step "$what: FAIL in step '$phase' but the last recorded step is '$last' ($steps steps)" ;;
		connect | identify | expect)
			[ "$steps" = 0 ] || violation fail_step "$what: FAIL in '$phase' (before any step) with $steps steps recorded" ;;
		esac
		[ -z "$rmac" ] || [ "$rmac" = "$mac" ] || violation fail_mac "$what: FAIL recorded MAC '$rmac', the device has $mac"
		;;
	MISSING) violation missing "$what: no record at all" ;;
	*) violation left_unfinished "$what: recorded as $result ($kind: $error)" ;;
	esac
	# faults whose outcome is not in doubt
	must=
	case $label in
	'silent chip') must='connect: timeout' ;;
	'wrong chip'*) must='connect: wrong chip' ;;
	'small flash'*) must='expect: ' ;;
	'boot: '*) must='boot_check: did not boot' ;;
	'stuck sector (image has 0 bits)') must='FAIL' ;;
	'stuck sector (all 0xFF there)' | 'stall rx 1.5 s' | 'stall tx 1.5 s') must=PASS ;;
	esac
	case $must in
	'') ;;
	PASS | FAIL) [ "$result" = "$must" ] || violation expected_outcome "$what: expected $must, got $result ($kind)" ;;
	*) [ "$result" = FAIL ] && [ "${kind#"$must"}" != "$kind" ] || violation expected_outcome "$what: expected FAIL '$must...', got $result ($kind)" ;;
	esac
done <"$T/all.units"

n_erase=$(awk -F"$US" '$1 == "unplug mid-erase" && $6 ~ /^erase: /' "$T/all.units" | wc -l)
[ "$n_erase" -ge 1 ] || [ -n "$ONLY" ] || violation erase_probe "no unplug landed in the erase step (probed positions: $(tr '\n' ' ' <"$T/erase-positions"))"
# recovered FAULT_REGEX WHAT CLASS: how many of the units whose fault label
# matches passed (rec_n, rec_p, rec_rate); a violation below 95%.
recovered() {
	local class=$3
	read -r rec_n rec_p < <(awk -F"$US" -v re="$1" '$1 ~ re { n++; if ($5 == "PASS") p++ } END { print n + 0, p + 0 }' "$T/all.units")
	rec_rate=$(awk -v n="$rec_n" -v p="$rec_p" 'BEGIN { printf "%.1f", n ? 100 * p / n : 0 }')
	if { [ "$rec_n" -eq 0 ] && [ -z "$ONLY" ]; } || [ $((rec_p * 100)) -lt $((rec_n * 95)) ]; then
		violation "$class" "$2 recovered in $rec_p of $rec_n units ($rec_rate%), below 95%"
	fi
}
# transient faults: one dropped or corrupted byte
recovered '\\(1 byte\\)$' "single-byte faults" single_byte_recovery
t_units=$rec_n t_pass=$rec_p t_rate=$rec_rate
# a chip that resets mid-session (brown-out): reconnected, identified
# again, and the step done again
recovered '^reset ' "chip resets" reset_recovery
r_units=$rec_n r_pass=$rec_p r_rate=$rec_rate
faulted=$(wc -l <"$T/all.units")
n_pass=$(awk -F"$US" '$5 == "PASS"' "$T/all.units" | wc -l)
n_fail=$(awk -F"$US" '$5 == "FAIL"' "$T/all.units" | wc -l)
n_bad_pass=$(awk -F"$US" '$5 == "PASS" && $10 != "same"' "$T/all.units" | wc -l)

# ---- the matrix -----------------------------------------------------------
matrix() {
	echo "| fault | units | PASS | FAIL | FAIL reasons (error_kind × count) |"
	echo "|---|---:|---:|---:|---|"
	awk -F"$US" '
		!($1 in seen) { seen[$1] = 1; order[++n] = $1 }
		{ units[$1]++; if ($5 == "PASS") pass[$1]++; else if ($5 == "FAIL") { fail[$1]++; why[$1 SUBSEP $6]++ } else other[$1]++ }
		END {
			for (i = 1; i <= n; i++) {
				l = order[i]; reasons = ""
				for (k in why) { split(k, kk, SUBSEP); if (kk[1] == l) reasons = reasons (reasons ? ", " : "") kk[2] " × " why[k] }
				if (other[l]) reasons = reasons (reasons ? ", " : "") "MISSING/other × " other[l]
				printf "| %s | %d | %d | %d | %s |\n", l, units[l], pass[l] + 0, fail[l] + 0, reasons
			}
		}' "$T/all.units"
}
rev=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
git diff --quiet HEAD -- src include tests/sim 2>/dev/null || rev="$rev + uncommitted changes"
{
	echo "Fault matrix ($MODE): $faulted faulted units in $rounds rounds of up to $DEVS devices, seed $SEED, ${elapsed}s"
	echo
	matrix
	echo
	echo "- PASS $n_pass, FAIL $n_fail; PASS whose flash differs from the images: $n_bad_pass"
	echo "- single dropped/corrupted byte (rx or tx) recovered by retries: $t_pass of $t_units ($t_rate%)"
	echo "- chip reset mid-session (rx/tx byte, mid-write) recovered by reconnecting: $r_pass of $r_units ($r_rate%)"
	echo "- ground-truth violations: $violations"
} >"$T/summary.txt"
cat "$T/summary.txt"
if [ -n "$SUMMARY" ]; then
	sort "$T/violation-classes" | uniq -c | awk '{ print $2 "\t" $1 }' |
		jq -R -s --arg mode "$MODE" --argjson seed "$SEED" --argjson units "$faulted" --argjson rounds "$rounds" \
			--argjson pass "$n_pass" --argjson fail "$n_fail" --argjson bad "$n_bad_pass" \
			--argjson tu "$t_units" --argjson tp "$t_pass" --argjson ru "$r_units" --argjson rp "$r_pass" \
			--argjson total "$violations" '{
			mode: $mode, seed: $seed, units: $units, rounds: $rounds, pass: $pass, fail: $fail,
			pass_flash_differs: $bad,
			single_byte: { units: $tu, passed: $tp }, chip_resets: { units: $ru, passed: $rp },
			violations: (split("\n") | map(select(length > 0) | split("\t") | { key: .[0], value: (.[1] | tonumber) })
				| from_entries),
			violation_total: $total }' >"$SUMMARY"
fi
if [ -n "$WRITE" ]; then
	{
		echo "# Reliability: the fault matrix"
		echo
		echo "Written by \`tests/reliability/matrix.sh --$MODE --write $WRITE\` (espline $rev, $(date -u +%Y-%m-%d))."
		echo "Every unit is one simulated ESP8266 (\`espline-sim\`, RFC 2217, time scale 0) carrying one"
		echo "fault, programmed by \`espline run recipes/nodemcu-4mb.yaml\` (one unit per adapter, 16"
		echo "adapters per run). Each record is checked against the simulator's flash file: a PASS"
		echo "must leave exactly the recipe's images (rebuilt independently by the script), a FAIL must"
		echo "name its phase and cause, and no unit may be missing. The CI form runs in"
		echo "\`tests/integration/reliability.sh\`; \`--full\` adds positions and seeds."
		echo
		echo "Fault specs are the simulator's (\`espline-sim --help\`); positions are byte offsets"
		echo "of the host->chip (rx) or chip->host (tx) stream, or flash offsets for \`@flash\`."
		echo
		cat "$T/summary.txt"
		if [ -s "$T/violations" ]; then
			echo
			echo "## Violations (each makes the CI check fail until it is fixed)"
			echo
			sed 's/^# VIOLATION: /- /' "$T/violations"
		fi
		echo
		echo "## Every case"
		echo
		echo "| fault | spec | result | error_kind |"
		echo "|---|---|---|---|"
		awk -F"$US" '{ printf "| %s | `%s` | %s | %s |\n", $1, $2, $5, $6 }' "$T/all.units"
	} >"$WRITE"
fi
if [ "$violations" -eq 0 ]; then echo "matrix: ok"; else echo "matrix: FAILED ($violations violations)"; exit 1; fi
