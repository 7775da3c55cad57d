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

run_one() {
	local name=$1; shift
	local log="$log_dir/$(basename "$name").log"
	local start=$SECONDS
	timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1
	local rc=$?
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

for t in "$BUILD"/tests/test_*; do
	kind unit && [ -x "$t" ] || continue
	case "$t" in *"$FILTER"*) run_one "unit/$(basename "$t")" "$t" ;; esac
done
for t in tests/integration/*.sh; do
	kind integration && [ -f "$t" ] || continue
	case "$t" in *"$FILTER"*) run_one "integration/$(basename "$t" .sh)" bash "$t" ;; esac
done
for t in tests/tools/check_*.sh; do
	kind tools && [ -f "$t" ] || continue
	case "$t" in *"$FILTER"*) run_one "tools/$(basename "$t" .sh)" bash "$t" ;; esac
done
for t in tests/interop/*.test.mjs; do
	kind interop && [ -f "$t" ] || continue
	case "$t" in *"$FILTER"*) run_one "interop/$(basename "$t" .test.mjs)" node "$t" ;; esac
done
for t in tests/browser/*.test.mjs; do
	kind browser && [ -f "$t" ] || continue
	case "$t" in *"$FILTER"*) run_one "browser/$(basename "$t" .test.mjs)" node "$t" ;; esac
done

echo
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
