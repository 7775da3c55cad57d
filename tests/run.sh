#!/usr/bin/env bash
# run.sh - run every test program and print one closing summary.
#
# Each test program speaks TAP ("ok N - what", "not ok N - what") on stdout
# and exits non-zero when something failed.  Kinds, in order:
#   $BUILD/tests/test_*        unit tests (cmocka, TAP output)
#   tests/integration/*.sh     end-to-end against espline-sim
#   tests/interop/*.test.mjs   Espressif's esptool-js against espline-sim
#   tests/tools/check_*.sh     checks of the source tree (layering)
#   tests/browser/*.test.mjs   the web view in headless Chromium (puppeteer-core)
# A program that exits non-zero without a "not ok" line (a crash, a hang cut
# by the timeout) counts as one failure of its own.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export ESPLINE_BUILD="$PWD/$BUILD"
export CMOCKA_MESSAGE_OUTPUT=TAP
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
# Which kinds run (make check: "unit tools"); the filter then picks by path.
TEST_KINDS=${TEST_KINDS:-unit integration tools interop browser}
FILTER=${1:-}
kind() { case " $TEST_KINDS " in *" $1 "*) return 0 ;; esac; return 1; }

passed=0 failed=0
failures=()
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# A test cut by the timeout can leave processes behind: timeout kills its
# own process group, and an inner `timeout` (reliability.sh runs its drivers
# under one) makes a group of its own.  Those leftovers then load the tests
# after it.  Every process of a test inherits ESPLINE_TEST_TAG; kill those
# still alive after a timeout.
kill_leftovers() {
	local p
	for p in /proc/[0-9]*; do
		if grep -qsxzF "ESPLINE_TEST_TAG=$1" "$p/environ"; then kill -KILL "${p#/proc/}" 2>/dev/null; fi
	done
}

run_one() {
	local name=$1; shift
	local log="$log_dir/$(basename "$name").log"
	local start=$SECONDS tag="$$.$BASHPID.$(basename "$name")"
	ESPLINE_TEST_TAG=$tag timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1
	local rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then kill_leftovers "$tag"; fi
	local ok notok
	ok=$(grep -cE '^ok [0-9]+' "$log")
	notok=$(grep -cE '^not ok [0-9]+' "$log")
	if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then notok=1; fi
	passed=$((passed + ok)); failed=$((failed + notok))
	printf '%-40s %3d ok %3d failed  %3ds%s\n' "$name" "$ok" "$notok" $((SECONDS - start)) \
		"$([ "$rc" -eq 124 ] && echo '  (timed out)')"
	if [ "$notok" -gt 0 ]; then
		failures+=("$name")
		sed 's/^/    | /' "$log" | grep -vE '^    \| ok [0-9]+' | tail -n 60
	fi
}

# Every test program as "name|runner|path", in the order of the kinds above.
entries=()
add() { case "$3" in *"$FILTER"*) entries+=("$1|$2|$3") ;; esac; }
for t in "$BUILD"/tests/test_*; do
	kind unit && [ -x "$t" ] && add "unit/$(basename "$t")" exec "$t"
done
for t in tests/integration/*.sh; do
	kind integration && [ -f "$t" ] && add "integration/$(basename "$t" .sh)" bash "$t"
done
for t in tests/tools/check_*.sh; do
	kind tools && [ -f "$t" ] && add "tools/$(basename "$t" .sh)" bash "$t"
done
for t in tests/interop/*.test.mjs; do
	kind interop && [ -f "$t" ] && add "interop/$(basename "$t" .test.mjs)" node "$t"
done
for t in tests/browser/*.test.mjs; do
	kind browser && [ -f "$t" ] && add "browser/$(basename "$t" .test.mjs)" node "$t"
done

run_entry() {
	local name runner path
	IFS='|' read -r name runner path <<<"$1"
	case $runner in
	exec) run_one "$name" "$path" ;;
	*) run_one "$name" "$runner" "$path" ;;
	esac
}
# is NAME one of the prefixes that follow?
listed() { local n=$1 p; shift; for p in "$@"; do case "$n" in "$p"*) return 0 ;; esac; done; return 1; }

# Three lanes, to keep the whole run short on two cores without disturbing
# the tests that measure time:
#  - SIDE: long tests that measure no time (most of their wall time is
#    waiting: a package build, a README tour, a disk filled at 20 moments,
#    a station killed at 20 moments)
#    run in the background, beside
#  - MAIN: every other test that does not depend on timing, one at a time;
#  - TIMED: the tests that do depend on timing (tests/README.md) run last,
#    alone, once the side lane is done.
# SERIAL=1 runs everything one after the other, in this order.
read -ra SIDE <<<"${SIDE_TESTS:-integration/install integration/readme integration/disk_full integration/serial_csv}"
read -ra TIMED <<<"${TIMED_TESTS:-unit/test_central unit/test_port unit/test_sim_server integration/station integration/central integration/reliability integration/rfc2217_reset interop/esptool_js_faults browser/}"
side=() main=() timed=()
for e in "${entries[@]}"; do
	name=${e%%|*}
	if listed "$name" "${SIDE[@]}"; then side+=("$e")
	elif listed "$name" "${TIMED[@]}"; then timed+=("$e")
	else main+=("$e"); fi
done
side_pid=
if [ ${#side[@]} -gt 0 ] && [ ${#main[@]} -gt 0 ] && [ -z "${SERIAL:-}" ]; then
	(
		for e in "${side[@]}"; do run_entry "$e"; done
		echo "$passed $failed ${failures[*]}" >"$log_dir/side.state"
	) >"$log_dir/side.out" 2>&1 &
	side_pid=$!
else
	main=("${side[@]}" "${main[@]}")
fi
for e in "${main[@]}"; do run_entry "$e"; done
if [ -n "$side_pid" ]; then
	wait "$side_pid"
	cat "$log_dir/side.out"
	read -r side_passed side_failed side_failures <"$log_dir/side.state" || side_failed=1
	passed=$((passed + ${side_passed:-0})); failed=$((failed + ${side_failed:-1}))
	# shellcheck disable=SC2206
	[ -z "${side_failures:-}" ] || failures+=($side_failures)
fi
for e in "${timed[@]}"; do run_entry "$e"; done

echo
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
