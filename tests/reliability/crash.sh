#!/usr/bin/env bash
# crash.sh - crash safety: SIGKILL `espline run` at random moments of a
# 16-device batch, over and over, on one database.
#
#   tests/reliability/crash.sh [--cycles N] [--seed N] [--max-delay MS] [--time-scale X] [--keep]
#
# --cycles N: cycles go on until espline was killed N times (a batch that
# finished before its kill does not count; at most 2N cycles).
# Each cycle starts a batch of 16 on the same 16 simulated devices (RFC 2217,
# time scale 0.05: a batch takes about a second), kills espline with SIGKILL
# after a random delay (0..MS ms, default 1600), then checks, before any
# restart:
#   - `PRAGMA integrity_check` says ok;
#   - `espline db verify` passes (the hash chain of sealed units);
#   - no unit row is half-written: a sealed PASS has all 5 steps, a sealed
#     FAIL ends with its failing step (or has none when it failed before the
#     first step), no RUNNING row has a seal, and every unit's step rows
#     are contiguous (steps are recorded as they finish, so a unit cut short
#     shows how far it got, with no gap).
# After the NEXT start (the next cycle's "started" event: the writer has
# sealed what the killed run left RUNNING) every unit the killed run had
# started programming (a step_start event on its JSON stream) is in the
# database as PASS, FAIL or INTERRUPTED.  A last, uninterrupted batch seals
# the final cycle's units and the whole database is checked once more.
# Prints "# ..." for each violation, a summary, then "crash: ok" or
# "crash: FAILED (N violations)".
set -u
. "$(dirname "$0")/../lib/env.sh"
CYCLES=50 SEED=1 MAX_DELAY=1600 SCALE=0.05 KEEP_T=0
while [ $# -gt 0 ]; do
	case $1 in
	--cycles) CYCLES=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--max-delay) MAX_DELAY=$2; shift ;;
	--time-scale) SCALE=$2; shift ;;
	--keep) KEEP_T=1 ;;
	*) echo "usage: $0 [--cycles N] [--seed N] [--max-delay MS] [--keep]" >&2; exit 2 ;;
	esac
	shift
done
env_tempdir crash
. tests/reliability/lib.sh
RUN_PID=
at_exit '[ -n "$RUN_PID" ] && kill -KILL "$RUN_PID" 2>/dev/null; wait 2>/dev/null'
RANDOM=$SEED
DB=$T/crash.sqlite
violations=0
violation() { violations=$((violations + 1)); echo "# VIOLATION: $*"; }
sql() { sqlite3 -cmd '.timeout 10000' "$DB" "$1"; }

make_demo_images || { echo "crash: cannot make the demo images"; exit 1; }
sim_start crash --devices 16 --link rfc2217 --time-scale "$SCALE" --exit-after-idle 600 || exit 1
mapfile -t ports < <(sim_ports_args crash 16)

# db_checks WHEN: the checks that hold at any moment no writer is running.
db_checks() {
	local ic
	ic=$(sql 'PRAGMA integrity_check;' 2>&1)
	[ "$ic" = ok ] || violation "$1: integrity_check: $ic"
	"$E" db verify --db "$DB" >"$T/verify.out" 2>&1 ||
		violation "$1: espline db verify failed: $(head -n 3 "$T/verify.out" | tr '\n' ' ')"
	local bad
	bad=$(sql "select u.uuid || ' ' || u.result || ' ' || coalesce(u.error_kind, '') || ' steps=' || count(s.idx)
		|| ' last=' || coalesce((select kind || ' ' || result from steps where unit_id = u.id order by idx desc limit 1), '-')
		from units u left join steps s on s.unit_id = u.id group by u.id having
		(u.result = 'PASS' and (count(s.idx) <> 5 or sum(s.result <> 'PASS') > 0)) or
		(u.result = 'FAIL' and count(s.idx) = 0 and u.error_kind not like 'connect:%'
			and u.error_kind not like 'identify:%' and u.error_kind not like 'expect:%') or
		(u.result = 'FAIL' and count(s.idx) > 0 and (select result from steps where unit_id = u.id order by idx desc limit 1) <> 'FAIL') or
		(u.result = 'RUNNING' and u.seq is not null) or
		(count(s.idx) > 0 and count(s.idx) <> max(s.idx) - min(s.idx) + 1) or
		(u.result <> 'RUNNING' and (u.seq is null or u.hash is null));")
	[ -z "$bad" ] || violation "$1: half-written unit rows: $(echo "$bad" | head -n 5 | tr '\n' ';')"
}
# started_units FILE: uuids of units that began programming (a step started).
started_units() { grep -h '"event":"step_start"' "$@" 2>/dev/null | grep -oE '"unit":"[0-9a-f-]{36}"' | cut -d'"' -f4 | sort -u; }
# check_recorded FILE WHEN: every unit started in FILE is PASS, FAIL or INTERRUPTED.
check_recorded() {
	local u res missing=0 running=0
	for u in $(started_units "$1"); do
		res=$(sql "select result from units where uuid = '$u';")
		case $res in
		PASS | FAIL | INTERRUPTED) ;;
		'') missing=$((missing + 1)); violation "$2: unit $u started programming but is not in the database" ;;
		*) running=$((running + 1)); violation "$2: unit $u is still $res" ;;
		esac
	done
}

killed=0 finished=0 started_total=0 identified_only=0 running_at_kill=0 sealed_total=0
total_ms=0
prev=
t_start=$SECONDS
i=0
while [ "$killed" -lt "$CYCLES" ] && [ "$i" -lt $((2 * CYCLES)) ]; do
	i=$((i + 1))
	out=$T/c$i.jsonl
	c0=$(date +%s%N)
	"$E" run recipes/nodemcu-4mb.yaml --batch "crash-$i" --count 16 --json --db "$DB" "${ports[@]}" \
		>"$out" 2>"$T/c$i.err" &
	RUN_PID=$!
	delay=$((RANDOM % MAX_DELAY))
	# the previous cycle's units, once this start has sealed them
	if [ -n "$prev" ]; then
		for _ in $(seq 200); do grep -q '"event":"started"' "$out" && break; kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.005; done
		if grep -q '"event":"started"' "$out"; then
			check_recorded "$prev" "cycle $((i - 1)), after the next start"
		else
			violation "cycle $i: espline did not start: $(tail -n 2 "$T/c$i.err" | tr '\n' ' ')"
		fi
	fi
	while [ $((($(date +%s%N) - c0) / 1000000)) -lt "$delay" ]; do sleep 0.01; done
	if kill -KILL "$RUN_PID" 2>/dev/null; then killed=$((killed + 1)); else finished=$((finished + 1)); fi
	wait "$RUN_PID" 2>/dev/null
	RUN_PID=
	n_started=$(started_units "$out" | wc -l)
	n_ident=$(grep -c '"event":"identified"' "$out")
	started_total=$((started_total + n_started))
	identified_only=$((identified_only + n_ident - n_started))
	running_at_kill=$((running_at_kill + $(sql "select count(*) from units where result = 'RUNNING';")))
	db_checks "cycle $i (killed after ${delay} ms)"
	total_ms=$((total_ms + ($(date +%s%N) - c0) / 1000000))
	prev=$out
done

# a last batch that is not killed: seals the last cycle's units, and shows
# the station still programs after all this
out=$T/final.jsonl
timeout -k 5 120 "$E" run recipes/nodemcu-4mb.yaml --batch crash-final --count 16 --json --db "$DB" "${ports[@]}" \
	>"$out" 2>"$T/final.err"
rc=$?
[ "$rc" -eq 0 ] || violation "the final, uninterrupted batch ended with exit $rc: $(tail -n 3 "$T/final.err" | tr '\n' ' ')"
[ -n "$prev" ] && check_recorded "$prev" "cycle $i, after the final start"
db_checks "after the final batch"
left=$(sql "select count(*) from units where result = 'RUNNING';")
[ "$left" = 0 ] || violation "$left units still RUNNING after the final batch"
final_pass=$(sql "select count(*) from units u join batches b on b.id = u.batch_id where b.name = 'crash-final' and u.result = 'PASS';")
[ "$final_pass" = 16 ] || violation "the final batch passed $final_pass of 16 units"
interrupted=$(sql "select count(*) from units where result = 'INTERRUPTED';")
# units cut short after some step finished keep those steps' rows
with_progress=$(sql "select count(distinct u.id) from units u join steps s on s.unit_id = u.id where u.result = 'INTERRUPTED';")
if [ "$killed" -ge 10 ] && [ "$with_progress" -eq 0 ]; then
	violation "no INTERRUPTED unit kept the rows of the steps it had finished"
fi
totals=$(sql "select count(*) || ' units: ' || sum(result = 'PASS') || ' PASS, ' || sum(result = 'FAIL') || ' FAIL, ' || sum(result = 'INTERRUPTED') || ' INTERRUPTED' from units;")
grep -l Sanitizer "$T"/*.err >/dev/null 2>&1 && violation "sanitizer reports on espline's stderr: $(grep -l Sanitizer "$T"/*.err | tr '\n' ' ')"

echo "crash: $i cycles (seed $SEED, kill after 0..${MAX_DELAY} ms): $killed killed by SIGKILL, $finished had already finished"
echo "crash: $started_total units started programming before their kill; $running_at_kill left RUNNING, sealed INTERRUPTED at the next start"
echo "crash: $with_progress of $interrupted INTERRUPTED units show the steps they had finished"
echo "crash: $identified_only units identified but no step started (killed or failed before writing: nothing on the chip changed)"
echo "crash: database now holds $totals; mean cycle $((total_ms / i)) ms, total $((SECONDS - t_start)) s"
if [ "$violations" -eq 0 ]; then echo "crash: ok"; else echo "crash: FAILED ($violations violations)"; exit 1; fi
