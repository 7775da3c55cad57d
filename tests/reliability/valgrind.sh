#!/usr/bin/env bash
# valgrind.sh - a small batch under valgrind: `espline run` programs 4
# simulated devices (RFC 2217, time scale 0; one device has a stuck flash
# sector, so the FAIL path runs too), then `espline db verify` and
# `espline export` read the database back, each under
#   valgrind --leak-check=full --error-exitcode=1
# Exit 0 when valgrind reports no error and no definite, indirect or possible
# leak; the valgrind logs of a failure are printed.
#   tests/reliability/valgrind.sh   (env: ESPLINE_BUILD, default build/)
set -u
. "$(dirname "$0")/../lib/env.sh"
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 2; }
env_tempdir valgrind
. tests/reliability/lib.sh
make_demo_images || exit 1
sim_start vg --devices 4 --link rfc2217 --time-scale 0 --dev 3:fault=stuck@0x21000 || exit 1
mapfile -t ports < <(sim_ports_args vg 4)
VG=(valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
	--error-exitcode=1 --track-fds=no --num-callers=30)
bad=0
vg() {
	local name=$1; shift
	timeout -k 5 300 "${VG[@]}" --log-file="$T/$name.vg" "$@" >"$T/$name.out" 2>&1
	local rc=$?
	local summary; summary=$(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' "$T/$name.vg" | sed 's/^==[0-9]*== *//' | tr '\n' ';')
	if grep -q 'ERROR SUMMARY: 0 errors' "$T/$name.vg"; then
		echo "valgrind: $name: clean (exit $rc): $summary"
	else
		bad=$((bad + 1))
		echo "valgrind: $name: ERRORS (exit $rc): $summary"
		sed -n '/HEAP SUMMARY/,$p;/Invalid\|uninitialised\|Mismatched/,+12p' "$T/$name.vg" | head -n 120 | sed 's/^/#   /'
	fi
}
vg run "$E" run recipes/nodemcu-4mb.yaml --batch vg --count 4 --json --db "$T/vg.sqlite" "${ports[@]}"
n=$(sqlite3 "$T/vg.sqlite" "select count(*) || ' units, ' || sum(result = 'PASS') || ' PASS' from units;")
echo "valgrind: the batch recorded $n (expected 4 units, 3 PASS)"
[ "$n" = "4 units, 3 PASS" ] || bad=$((bad + 1))
vg verify "$E" db verify --db "$T/vg.sqlite"
vg export "$E" export --format json --batch vg --db "$T/vg.sqlite"
vg report "$E" report --batch vg --db "$T/vg.sqlite"
if [ "$bad" -eq 0 ]; then echo "valgrind: ok"; else echo "valgrind: FAILED ($bad)"; exit 1; fi
