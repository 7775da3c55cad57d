#!/usr/bin/env bash
# fuzz_smoke.sh - a short, bounded fuzzing campaign on every target in
# tests/fuzz (TAP).  Builds them with clang (tests/fuzz/build.sh), then runs
# each for $FUZZ_SMOKE_SECONDS (default 7) seconds from its committed seed
# corpus, one after the other, so the whole test stays under ~90 s on two
# cores.  One "ok" per target that ran without a crash; a crash is "not ok"
# with the reproducer path and the sanitizer's summary.  Before its campaign,
# each target replays its stored crash inputs (tests/fuzz/regressions/<target>/):
# one that still crashes makes that target "not ok" until the bug is fixed.
# The longer campaigns are run by hand: tests/fuzz/run.sh -t 180.
# Skipped (no failure) when clang or its libFuzzer runtime is missing.  It
# runs in `make asan` only (the targets carry ASan and UBSan themselves, so
# that is where it belongs), and is skipped in the plain `make test` and in
# `make tsan`: one campaign per CI run, and `make test` stays under 10 min.
set -u
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SMOKE_SECONDS:-7}
# Build under the test run's own build folder, so two test runs in different
# build folders never race on the same objects.
if [ -n "${ESPLINE_BUILD:-}" ] && [ -z "${FUZZ_BUILD:-}" ]; then
	export FUZZ_BUILD="$ESPLINE_BUILD/fuzz"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "${ESPLINE_BUILD:-}" in
*/asan) ;;
*)
	echo "1..0 # SKIP the fuzz campaign runs in make asan (its targets are built with ASan+UBSan)"
	exit 0 ;;
esac
if ! command -v clang >/dev/null ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; (void)n; return 0; }' |
	clang -x c -fsanitize=fuzzer - -o "$tmp/probe" 2>/dev/null; then
	echo "1..0 # SKIP clang with libFuzzer is not installed (apt-get install clang libclang-rt-14-dev)"
	exit 0
fi

targets=()
for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
echo "1..$(( ${#targets[@]} + 1 ))"
n=1
if tests/fuzz/build.sh >"$tmp/build.log" 2>&1; then
	echo "ok $n - fuzz targets build"
else
	echo "not ok $n - fuzz targets build"
	tail -n 20 "$tmp/build.log" | sed 's/^/#   /'
	for t in "${targets[@]}"; do n=$((n + 1)); echo "not ok $n - fuzz_$t (not built)"; done
	exit 1
fi

failed=0
for t in "${targets[@]}"; do
	n=$((n + 1))
	# Inputs that once crashed (tests/fuzz/regressions/<target>/) must not
	# crash the sanitized binary any more; the campaign would only stop on
	# them at its first step.
	regs=()
	for f in tests/fuzz/regressions/"$t"/*; do [ -f "$f" ] && regs+=("$f"); done
	if [ ${#regs[@]} -gt 0 ] && ! "${FUZZ_BUILD:-build/fuzz}"/fuzz_"$t" "${regs[@]}" >"$tmp/regress.log" 2>&1; then
		failed=1
		bad=$(sed -n 's/^Running: //p' "$tmp/regress.log" | tail -1)
		echo "not ok $n - fuzz_$t crashes on a stored regression input: ${bad:-see log}"
		grep -E 'runtime error|ERROR: AddressSanitizer|SUMMARY|fuzz property failed' "$tmp/regress.log" |
			head -n 4 | sed 's/^/#   /'
		continue
	fi
	FUZZ_SUMMARY="$tmp/summary" tests/fuzz/run.sh --no-build -t "$SECS" "$t" >"$tmp/run.log" 2>&1
	rc=$?
	IFS=$'\t' read -r name execs cov0 cov1 crashes repro <"$tmp/summary" || crashes=?
	if [ "$rc" -eq 0 ] && [ "$crashes" = 0 ]; then
		echo "ok $n - fuzz_$t: $execs runs in ${SECS}s, coverage $cov0 -> $cov1 edges, no crash"
	else
		failed=1
		echo "not ok $n - fuzz_$t crashed; reproducer: $repro"
		sed 's/^/#   /' "$tmp/run.log" | tail -n 12
	fi
done
exit "$failed"
