#!/usr/bin/env bash
# reliability.sh - the bounded CI form of tests/reliability (TAP):
#   1. the fault matrix (tests/reliability/matrix.sh --ci): ~350 faulted units,
#      16 simulated devices per run, every record checked against the
#      simulator's flash; single-byte faults and chip resets recovered in
#      >= 95% of units;
#   2. crash safety (tests/reliability/crash.sh): 50 batches SIGKILLed at
#      random moments of a 16-device batch, the database checked after each;
#   3. batch mode: a failed unit that stays in its jig is recorded once;
#   4. memory (tests/reliability/valgrind.sh): a 4-unit batch and the
#      database commands under valgrind, no error and no leak (skipped in
#      the sanitizer builds, which valgrind cannot run).
# Each driver prints its own "# VIOLATION: ..." lines; here every kind of
# check becomes one TAP line, so a failure names what broke.
set -u
. "$(dirname "$0")/../lib/tap.sh"
env_tempdir reliability
# check DESCRIPTION LOG PATTERN: ok when no line of LOG matches PATTERN (ERE)
check_none() {
	if grep -qE -- "$3" "$2"; then
		not_ok "$1"
		grep -E -- "$3" "$2" | head -n 15 | sed 's/^/#   /'
	else
		ok "$1"
	fi
}

timeout -k 10 240 tests/reliability/matrix.sh --ci --jobs "${RELIABILITY_JOBS:-2}" --summary "$T/matrix.json" \
	>"$T/matrix.out" 2>&1
rc=$?
sed 's/^/# /' "$T/matrix.out" | grep -v '^# # VIOLATION'
M=$T/matrix.out
# The checks read the matrix's JSON summary (violations counted by class);
# the "# VIOLATION" lines of its output only show which units broke a rule.
S=$T/matrix.json
jq -e . "$S" >/dev/null 2>&1 || echo '{}' >"$S"
# none CLASS DESCRIPTION PATTERN: ok when the summary counts no violation of
# CLASS (PATTERN picks the matching "# VIOLATION" lines to show)
none() {
	local n
	n=$(jq -r --arg c "$1" '.violations[$c] // 0' "$S")
	if [ "$n" = 0 ] && jq -e 'has("violations")' "$S" >/dev/null; then
		ok "$2"
	else
		not_ok "$2 ($n violations)"
		grep -E -- "$3" "$M" | head -n 15 | sed 's/^/#   /'
	fi
}
units=$(jq -r '.units // 0' "$S")
if [ "$units" -ge 300 ]; then ok "fault matrix ran over $units faulted units (>= 300)"; else not_ok "fault matrix ran over $units faulted units (>= 300)"; fi
none run_ended "every round ended by itself (no hang, no crash)" 'VIOLATION: round [0-9]+: espline run ended'
none sanitizer "no sanitizer report" 'VIOLATION: round [0-9]+: sanitizer'
none missing "no unit is missing" 'VIOLATION: .*no record at all'
none duplicate "no unit is recorded twice" 'VIOLATION: .*more than one record'
none pass_flash_differs "every PASS leaves exactly the recipe's images in flash" 'VIOLATION: .*PASS but the flash differs'
check "... and the summary's own count of such PASS units is 0" [ "$(jq -r '.pass_flash_differs // -1' "$S")" = 0 ]
none pass_steps "every PASS has its 5 steps" 'VIOLATION: .*PASS with'
none pass_mac "every PASS has its own MAC" 'VIOLATION: .*PASS recorded MAC'
none fail_reason "every FAIL has a specific reason" 'VIOLATION: .*FAIL without a specific reason'
none fail_step "every FAIL's steps end with the step it names" 'VIOLATION: .*FAIL in (step|.*before any step)'
none fail_mac "a FAIL's MAC, when recorded, is the device's" 'VIOLATION: .*FAIL recorded MAC'
none left_unfinished "nothing is left RUNNING or INTERRUPTED" 'VIOLATION: .*recorded as '
none expected_outcome "certain faults get the certain outcome (silent, wrong chip, small flash, stuck bits, short stalls)" 'VIOLATION: .*expected '
none erase_probe "an unplug landed in the erase step" 'VIOLATION: no unplug landed'
none single_byte_recovery "single dropped/corrupted bytes are recovered in >= 95% of units ($(jq -r '"\(.single_byte.passed) of \(.single_byte.units)"' "$S"))" 'VIOLATION: single-byte faults'
none reset_recovery "a chip that resets mid-session is reconnected and finished in >= 95% of units ($(jq -r '"\(.chip_resets.passed) of \(.chip_resets.units)"' "$S"))" 'VIOLATION: chip resets'
if [ "$rc" -eq 0 ] && [ "$(jq -r '.violation_total // -1' "$S")" = 0 ]; then ok "fault matrix: no violation"; else not_ok "fault matrix: exit $rc, $(tail -n 1 "$M")"; fi

timeout -k 10 180 tests/reliability/crash.sh --cycles "${RELIABILITY_KILLS:-50}" >"$T/crash.out" 2>&1
rc=$?
C=$T/crash.out
sed 's/^/# /' "$C" | grep -v '^# # VIOLATION'
killed=$(sed -nE 's/^crash: [0-9]+ cycles .*: ([0-9]+) killed by SIGKILL.*/\1/p' "$C")
if [ "${killed:-0}" -ge 50 ]; then ok "espline was killed mid-batch ${killed} times (>= 50)"; else not_ok "espline was killed mid-batch ${killed:-0} times (want >= 50)"; fi
check_none "after every kill: PRAGMA integrity_check is ok" "$C" 'VIOLATION: .*integrity_check'
check_none "after every kill: espline db verify passes" "$C" 'VIOLATION: .*db verify'
check_none "after every kill: no half-written unit row" "$C" 'VIOLATION: .*half-written'
check_none "every started unit is PASS, FAIL or INTERRUPTED after the next start" "$C" 'VIOLATION: .*(not in the database|is still|still RUNNING)'
check_none "the station starts again after every kill and programs a full batch at the end" "$C" 'VIOLATION: .*(did not start|final|sanitizer)'
if [ "$rc" -eq 0 ] && grep -q '^crash: ok' "$C"; then ok "crash safety: no violation"; else not_ok "crash safety: exit $rc, $(tail -n 1 "$C")"; fi

# 3. batch mode: a unit that failed and stays in its jig is the same unit.
# Two adapters, --count 3: device 0 is good, device 1 an ESP32 that nobody
# removes.  The batch must not fill its count by recording the same ESP32
# again and again: after 6 s it is stopped (SIGINT) with one record per
# adapter.
(
	. tests/reliability/lib.sh
	sim_start jig --devices 2 --link rfc2217 --time-scale 0 --dev 1:fault=wrong-chip || exit 1
	mapfile -t ports < <(sim_ports_args jig 2)
	"$E" run recipes/nodemcu-4mb.yaml --batch jig --count 3 --json --db "$T/jig.sqlite" "${ports[@]}" \
		>"$T/jig.jsonl" 2>"$T/jig.err" &
	pid=$!
	sleep 6
	kill -INT "$pid" 2>/dev/null
	wait_exit "$pid" 30
	sim_stop jig
	echo "$(sqlite3 "$T/jig.sqlite" "select count(*) from units where port = '$(sim_dev_port jig 1)';")" >"$T/jig.count"
)
c=$(cat "$T/jig.count" 2>/dev/null)
if [ "$c" = 1 ]; then
	ok "batch: a wrong chip left in its jig is recorded once, not once per presence check"
else
	not_ok "batch: a wrong chip left in its jig is recorded once, not once per presence check (recorded ${c:-?} times)"
	grep -E '"event":"(unit_done|unit_removed|remove_wait)"' "$T/jig.jsonl" | cut -c1-160 | head -n 8 | sed 's/^/#   /'
fi

# 4. valgrind: ASan/TSan binaries cannot run under it; `make asan` covers them.
case "$BUILD_DIR" in
*/asan | */tsan) skip "valgrind: a batch, db verify, export and report" "valgrind cannot run sanitizer builds" ;;
*)
	timeout -k 10 300 tests/reliability/valgrind.sh >"$T/vg.out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "valgrind: a batch, db verify, export and report: no error, no leak"
	else
		not_ok "valgrind: a batch, db verify, export and report: exit $rc"
		tail -n 20 "$T/vg.out" | sed 's/^/#   /'
	fi ;;
esac

tap_done
