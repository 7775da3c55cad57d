#!/usr/bin/env bash
# run.sh - run the libFuzzer targets for a bounded time and print a table.
#
#   tests/fuzz/run.sh [-t SECONDS] [--merge] [--no-build] [target...]
#
# Builds first (tests/fuzz/build.sh) unless --no-build.  Each target runs
# for SECONDS (default $FUZZ_SECONDS or 10) with -max_total_time, one target
# at a time, on a scratch copy of tests/fuzz/corpus/<target>: new inputs go
# there, never into the tree.  --merge then merges what was found back into
# tests/fuzz/corpus/<target> (libFuzzer -merge=1 keeps only inputs that add
# coverage), for committing after a long campaign by hand.  A dictionary
# tests/fuzz/<target>.dict, when present, is passed with -dict.
#
# The table: target, executions, coverage (edges) before -> after, crashes,
# and the reproducer of the first crash.  A crash stops that target's run;
# replay it with build/fuzz/fuzz_<target> <file>, then copy it to
# tests/fuzz/regressions/<target>/ so tests/unit/test_fuzz_regressions.c
# keeps replaying it.  With FUZZ_SUMMARY=FILE the rows are also written as
# tab-separated lines (used by tests/integration/fuzz_smoke.sh).
# Exit status: 0 if no target crashed, 1 otherwise, 2 on a usage or build error.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${FUZZ_BUILD:-build/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-10}
MERGE=0 BUILD=1
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
	-t) SECONDS_EACH=$2; shift 2 ;;
	--merge) MERGE=1; shift ;;
	--no-build) BUILD=0; shift ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi
if [ "$BUILD" -eq 1 ]; then
	tests/fuzz/build.sh "${targets[@]}" >&2 || exit 2
fi

RUN_DIR="$OUT/runs/$(date -u +%Y%m%dT%H%M%S)-$$"
mkdir -p "$RUN_DIR"
[ -n "${FUZZ_SUMMARY:-}" ] && : >"$FUZZ_SUMMARY"

printf '%-9s %12s %10s %8s %8s  %s\n' target execs "exec/s" coverage crashes reproducer
any_crash=0
for t in "${targets[@]}"; do
	bin="$OUT/fuzz_$t"
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin not built" >&2
		exit 2
	fi
	work="$RUN_DIR/$t"
	mkdir -p "$work/corpus" "$work/artifacts"
	[ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$work/corpus/"
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		"${dict[@]}" -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
	cov0=$(sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' "$work/log" | head -1)
	cov1=$(grep -oE '(NEW|REDUCE|pulse|DONE|INITED) +cov: [0-9]+' "$work/log" | tail -1 | grep -oE '[0-9]+$')
	crashes=$(find "$work/artifacts" -type f | wc -l)
	first=$(find "$work/artifacts" -type f | head -1)
	if [ "$crashes" -eq 0 ] && [ "$rc" -ne 0 ]; then
		crashes=1 # died without an artifact (e.g. killed): still a failure
		first="$work/log"
	fi
	[ "$crashes" -gt 0 ] && any_crash=1
	printf '%-9s %12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov0:-?}->${cov1:-?}" "$crashes" "${first:--}"
	if [ "$crashes" -gt 0 ]; then
		grep -E '^(==[0-9]+==ERROR|SUMMARY:|.*fuzz property failed|.*runtime error)' "$work/log" \
			| head -5 | sed 's/^/    /'
	fi
	[ -n "${FUZZ_SUMMARY:-}" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-0}" \
		"${cov0:-0}" "${cov1:-0}" "$crashes" "${first:--}" >>"$FUZZ_SUMMARY"
	if [ "$MERGE" -eq 1 ] && [ "$crashes" -eq 0 ]; then
		mkdir -p "tests/fuzz/corpus/$t"
		"$bin" -merge=1 -timeout=10 "tests/fuzz/corpus/$t" "$work/corpus" >"$work/merge.log" 2>&1 ||
			echo "run.sh: merging $t failed, see $work/merge.log" >&2
	fi
done
echo "logs and inputs: $RUN_DIR"
exit "$any_crash"
