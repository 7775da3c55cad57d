#!/usr/bin/env bash
# readme.sh - every command that README.md shows in a ```sh block works as
# written.  TAP output, one line per command.
#
# The commands run in order, in one bash shell (so `cmd &` and `kill %1`
# mean what they mean at a prompt), in a scratch copy of the tree: recipes/
# (with the demo images), tests/tools/fake_printer.py, an empty db/, and
# ./espline and ./espline-sim
# linked to the build under test ($ESPLINE_BUILD).  A command passes when it
# exits 0, or N when its comment says "exits N".  An HTML comment on the
# line before a block changes how the block runs:
#   <!-- readme-test: skip REASON -->          "ok N - CMD # SKIP REASON"
#   <!-- readme-test: wait for "TEXT" -->      the command ends in & (it runs
#                                              in the background); wait until
#                                              its output holds TEXT
#   <!-- readme-test: interrupt after Ns -->   SIGINT after N seconds, like
#                                              Ctrl-C (expected exit: 130
#                                              unless the comment says exits N)
#   <!-- readme-test: in the source tree -->  run in the repository itself
#                                              (for `make demo`), with
#                                              ESPLINE_DB in the scratch
#                                              folder so the user's
#                                              db/espline.sqlite is left alone
# Background commands still running at the end are stopped.  The README's
# simulator listens on fixed ports, so two runs of this test take turns (a
# lock file in /tmp).
#
#   README=path/to/other.md tests/integration/readme.sh   (to test a variant)
set -u
. "$(dirname "$0")/../lib/tap.sh"
README=${README:-$PWD/README.md}
case "$README" in /*) ;; *) README=$PWD/$README ;; esac
env_tempdir readme
# The tour runs as a user would: no ESPLINE_DB (env_tempdir's default), so
# its commands share the scratch copy's db/espline.sqlite as the README says.
unset ESPLINE_DB
S=$T/tree
mkdir -p "$T/cmd" "$T/log" "$S/db"
: >"$T/results"
: >"$T/bgpids"
# background commands the README starts and does not stop
at_exit 'while read -r p; do kill "$p" 2>/dev/null; done <"$T/bgpids"'

make_demo_images || { not_ok "demo images (scripts/make-demo-images.sh)"; tap_done; exit 1; }
cp -r recipes "$S/"
mkdir -p "$S/tests/tools" && cp tests/tools/fake_printer.py "$S/tests/tools/"  # the tour's label printer
ln -s "$E" "$S/espline"
ln -s "$SIM" "$S/espline-sim"

# --- README.md -> one file per command, and a plan ------------------------
# plan lines, fields separated by \037 (never in a command; a tab is
# whitespace to read and would merge empty fields): ID, kind (run, skip,
# wait, interrupt), argument, expected exit, the command's first line
awk -v dir="$T/cmd" '
function flush_cmd(   kind, arg, want, m, first) {
	if (cmd == "") return
	id = sprintf("%03d", ++ncmd)
	kind = "run"; arg = ""
	if (marker ~ /^skip/) { kind = "skip"; arg = marker; sub(/^skip[ \t]*/, "", arg) }
	else if (match(marker, /^wait for "[^"]*"/)) { kind = "wait"; arg = substr(marker, 11, RLENGTH - 11) }
	else if (match(marker, /^interrupt after [0-9.]+s/)) { kind = "interrupt"; arg = substr(marker, 17, RLENGTH - 17) }
	else if (marker == "in the source tree") { kind = "source" }
	else if (marker != "") { kind = "bad"; arg = marker }
	want = (kind == "interrupt") ? 130 : 0
	if (match(last, /#.*exits [0-9]+/)) { m = substr(last, RSTART, RLENGTH); sub(/.*exits /, "", m); want = m + 0 }
	first = cmd; sub(/\n.*/, "", first)
	printf "%s", cmd > (dir "/" id); close(dir "/" id)
	printf "%s\037%s\037%s\037%s\037%s\n", id, kind, arg, want, first
	cmd = ""
}
/^<!-- readme-test: .* -->[ \t]*$/ && !inblock {
	pending = $0; sub(/^<!-- readme-test: /, "", pending); sub(/ -->[ \t]*$/, "", pending); next
}
/^```sh[ \t]*$/ && !inblock { inblock = 1; marker = pending; pending = ""; cmd = ""; cont = 0; next }
/^```/ && inblock { flush_cmd(); inblock = 0; marker = ""; next }
inblock {
	if (!cont && ($0 ~ /^[ \t]*$/ || $0 ~ /^[ \t]*#/)) next
	cmd = cmd $0 "\n"; last = $0
	if ($0 ~ /\\$/) { cont = 1; next }
	cont = 0; flush_cmd(); next
}
/[^ \t]/ { pending = "" }
' "$README" >"$T/plan"

check "README.md shows commands in sh blocks" [ -s "$T/plan" ]

# --- the plan -> one bash script, run in the scratch tree -----------------
{
	echo 'cd "$1" || exit 1'
	while IFS=$'\037' read -r id kind arg want first; do
		case $kind in
		run)
			printf '{ . "%s/cmd/%s"\n} >"%s/log/%s" 2>&1\necho "%s $?" >>"%s/results"\n' \
				"$T" "$id" "$T" "$id" "$id" "$T" ;;
		wait)
			# the command backgrounds itself; $! is what it started
			printf '{ . "%s/cmd/%s"\n} >"%s/log/%s" 2>&1\nrc=$?\n' "$T" "$id" "$T" "$id"
			printf '[ -n "${!:-}" ] && echo "$!" >>"%s/bgpids"\n' "$T"
			printf 'for _ in $(seq 300); do grep -qF -- %q "%s/log/%s" && break; sleep 0.05; done\n' \
				"$arg" "$T" "$id"
			printf 'grep -qF -- %q "%s/log/%s" || rc=124\necho "%s $rc" >>"%s/results"\n' \
				"$arg" "$T" "$id" "$id" "$T" ;;
		source)
			printf '( cd %q && export ESPLINE_DB=%q && . "%s/cmd/%s"\n) >"%s/log/%s" 2>&1\necho "%s $?" >>"%s/results"\n' \
				"$PWD" "$T/source.sqlite" "$T" "$id" "$T" "$id" "$id" "$T" ;;
		interrupt)
			printf 'timeout -k 20 --preserve-status -s INT %ss bash "%s/cmd/%s" >"%s/log/%s" 2>&1\n' \
				"$arg" "$T" "$id" "$T" "$id"
			printf 'echo "%s $?" >>"%s/results"\n' "$id" "$T" ;;
		esac
	done <"$T/plan"
} >"$T/tour.sh"

# The README's simulator uses fixed TCP ports: one run of this test at a time.
exec 9>/tmp/espline-readme-test.lock
flock -w 300 9 || echo "# could not take /tmp/espline-readme-test.lock in 300 s; running anyway"
start=$SECONDS
timeout -k 5 180 bash "$T/tour.sh" "$S" </dev/null >"$T/tour.out" 2>&1
tour_rc=$?
took=$((SECONDS - start))

# --- one TAP line per command -----------------------------------------------
while IFS=$'\037' read -r id kind arg want first; do
	desc=$(printf '%s' "$first" | sed 's/[[:space:]]*\\$//; s/[[:space:]]\{2,\}#.*$//')
	case $kind in
	skip) skip "$desc" "$arg"; continue ;;
	bad) not_ok "$desc: unknown readme-test marker '$arg'"; continue ;;
	esac
	got=$(awk -v id="$id" '$1 == id { print $2 }' "$T/results")
	how=
	[ "$kind" = interrupt ] && how=" (SIGINT after ${arg}s)"
	if [ -z "$got" ]; then
		not_ok "$desc$how: did not run (the tour stopped: exit $tour_rc after ${took}s)" "$T/tour.out"
	elif [ "$got" = "$want" ]; then
		ok "$desc$how: exit $got"
	elif [ "$kind" = wait ] && [ "$got" = 124 ]; then
		not_ok "$desc: did not print \"$arg\" within 15 s" "$T/log/$id"
	else
		not_ok "$desc$how: exit $got, want $want" "$T/log/$id"
	fi
done <"$T/plan"
# make demo (run in the source tree) programs 8 modules, three of which
# fail on purpose (one of them verifies by MD5 but does not boot): its
# database must say so
if grep -q $'\037source\037' "$T/plan"; then
	check_eq "make demo recorded its batch: 8 units, 5 PASS, 3 FAIL (1 in boot_check), chain intact" \
		"$(sqlite3 "$T/source.sqlite" "select count(*) || ' ' || sum(result = 'PASS') || ' ' || sum(result = 'FAIL') || ' ' || sum(error_kind = 'boot_check: did not boot') from units" 2>&1) $("$E" db verify --db "$T/source.sqlite" >/dev/null 2>&1; echo $?)" \
		"8 5 3 1 0"
fi
echo "# the README's commands took ${took}s"
tap_done
