#!/usr/bin/env bash
# gen-man.sh - write a man page whose reference part is the program's own
# --help text, so the man page and --help come from one source and cannot
# disagree.  The hand-written parts (NAME, DESCRIPTION, FILES, ...) are roff
# files in docs/man/; @VERSION@ and @DATE@ in them are filled in.
#
#   scripts/gen-man.sh espline PROG HEAD TAIL VERSION > espline.1
#       HEAD, a COMMANDS section with `PROG CMD --help` for every command
#       that `PROG --help` lists, then TAIL
#   scripts/gen-man.sh plain PROG HEAD TAIL VERSION > espline-sim.1
#       HEAD, an OPTIONS section with `PROG --help`, then TAIL
#   scripts/gen-man.sh page PAGE VERSION > page.5
#       a hand-written page with @VERSION@ and @DATE@ filled in
# The date is $SOURCE_DATE_EPOCH's (reproducible builds), else the last
# commit's, else today's.
set -euo pipefail

man_date() {
	if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
		date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d
	elif d=$(git log -1 --format=%cs 2>/dev/null) && [ -n "$d" ]; then
		echo "$d"
	else
		date -u +%Y-%m-%d
	fi
}

fill() { sed -e "s|@VERSION@|$2|g" -e "s|@DATE@|$(man_date)|g" "$1"; }

# Help text as literal roff: no filling, backslashes and hyphens kept,
# a leading dot or quote not taken for a request.
literal() {
	printf '.nf\n'
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
	printf '.fi\n'
}

case ${1:-} in
espline)
	prog=$2 head=$3 tail=$4 version=$5
	fill "$head" "$version"
	printf '.SH COMMANDS\n'
	"$prog" --help | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }' | while read -r cmd; do
		summary=$("$prog" --help | awk -v c="$cmd" '$1 == c { sub(/^  [a-z]+ +/, ""); print; exit }')
		printf '.SS "espline %s"\n' "$cmd"
		printf '%s\n' "$summary" | sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
		printf '.PP\n'
		"$prog" "$cmd" --help | literal
	done
	fill "$tail" "$version"
	;;
plain)
	prog=$2 head=$3 tail=$4 version=$5
	fill "$head" "$version"
	printf '.SH OPTIONS\n'
	"$prog" --help | literal
	fill "$tail" "$version"
	;;
page)
	fill "$2" "$3"
	;;
*)
	echo "usage: gen-man.sh espline|plain PROG HEAD TAIL VERSION, or page PAGE VERSION" >&2
	exit 2
	;;
esac
