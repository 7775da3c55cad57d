# tap.sh - the TAP side of the integration scripts (sourced, not run); it
# sources env.sh first (paths, scratch folder, exit trap: see there).
#
# Every check prints one line, "ok N - WHAT" or "not ok N - WHAT", counted in
# n and failed; tap_done prints the closing plan "1..N" and its status is the
# script's exit status (non-zero when a check failed).
#   ok WHAT / skip WHAT WHY   (ok calls tap_ok, so a script may redefine ok
#                        to show more)
#   not_ok WHAT [FILE]   also shows the last $TAP_TAIL (15) lines of FILE, or
#                        when no FILE is named, of each non-empty file in the
#                        array TAP_SHOW (empty unless the script fills it)
#   check WHAT CMD...    ok when CMD succeeds; a failure shows $LOG if set
#   check_eq WHAT GOT WANT   ok when the two strings are equal; a failure
#                        shows both
#   tap_note TEXT        TEXT as "#   " comment lines (nothing if empty)
#   tap_run SECS CMD...  CMD under timeout(1): output in $T/out, exit status
#                        in rc, seconds taken in took
#   has TEXT             $T/out holds TEXT (fixed string)

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

n=0 failed=0
TAP_SHOW=()
TAP_TAIL=15

tap_ok() { n=$((n + 1)); echo "ok $n - $1"; }
ok() { tap_ok "$1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
not_ok() {
	local f
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	if [ -n "${2:-}" ]; then
		[ -f "$2" ] && sed 's/^/#   /' "$2" | tail -n "$TAP_TAIL"
	else
		for f in "${TAP_SHOW[@]}"; do [ -s "$f" ] && sed 's/^/#   /' "$f" | tail -n "$TAP_TAIL"; done
	fi
	return 0
}
tap_note() { [ -n "$1" ] && sed 's/^/#   /' <<<"$1"; return 0; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d" "${LOG:-}"; fi; }
check_eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; tap_note "got:  $2"$'\n'"want: $3"; fi; }

tap_run() {
	local secs=$1 start=$SECONDS; shift
	timeout "$secs" "$@" >"$T/out" 2>&1
	rc=$?
	took=$((SECONDS - start))
}
has() { grep -qF -- "$1" "$T/out"; }

tap_done() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
