#!/usr/bin/env bash
# build-deb.sh - build the Debian package from this tree, with Debian's own
# tools (dpkg-buildpackage, debhelper), then check it with lintian.
#
# The tree's files (tracked, and new ones not ignored: what a commit would
# hold) are copied to build/deb/src/espline-VERSION/, keeping their times,
# and dpkg-buildpackage -b runs there without cleaning, so the tree stays
# clean and the next build recompiles only what changed; when nothing in
# the tree (nor the revision) changed since the last build that passed
# lintian, that package is kept as it is.  The .deb ends up in build/deb/;
# its path is the last line printed.
#
#   scripts/build-deb.sh      (env: ESPLINE_GIT_REV, the revision to record;
#                              NO_LINTIAN=1 to skip lintian)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cat VERSION)
out=$PWD/build/deb
src=$out/src/espline-$version
mkdir -p "$src"
export ESPLINE_GIT_REV=${ESPLINE_GIT_REV:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}

# --- the tree, copied ------------------------------------------------------
list=$out/files.list
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -co --exclude-standard | while IFS= read -r f; do
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
	done | sort >"$list"
else
	find . \( -path ./build -o -path ./.git -o -name node_modules -o -path ./third_party \) -prune \
		-o \( -type f -o -type l \) -print | sed 's|^\./||' | sort >"$list"
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$out/espline_${version}_$arch.deb
key=$( (echo "$ESPLINE_GIT_REV ${NO_LINTIAN:-0}"; tar --sort=name --mtime=@0 --owner=0 --group=0 -cf - -T "$list") |
	sha256sum | cut -c1-64)
if [ -f "$deb" ] && [ "$(cat "$out/built.key" 2>/dev/null)" = "$key" ]; then
	echo "build-deb: the tree has not changed since $deb was built and checked"
	echo "$deb"
	exit 0
fi
rm -f "$out/built.key"
tar -cf - -T "$list" | tar -C "$src" -xf -
# Files removed from the tree leave the copy too (a stale source would be
# compiled); the package build's own products stay.
(cd "$src" && find . \( -path ./build -o -path ./debian/espline -o -path ./debian/.debhelper \) -prune \
	-o \( -type f -o -type l \) -print | sed 's|^\./||' | sort) | comm -23 - "$list" |
	while IFS= read -r f; do rm -f "$src/$f"; done
# dh skips a build it has a stamp for: make decides what is out of date.
rm -rf "$src/debian/debhelper-build-stamp" "$src/debian/.debhelper" "$src/debian/files" \
	"$src"/debian/*.substvars "$src"/debian/*.debhelper.log

# --- the package -------------------------------------------------------------
# Built as Debian builds it, not with what a calling make chose: make tsan's
# CC=clang (and SAN, OPT, BUILD) reach here through the environment and
# MAKEFLAGS, and dh_dwz cannot read clang's DWARF 5 (.debug_addr).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES CC SAN OPT BUILD
(cd "$src" && dpkg-buildpackage -b -us -uc -nc -Jauto >"$out/build.log" 2>&1) || {
	tail -n 40 "$out/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
	exit 1
}
mv -f "$out/src/espline_${version}_$arch.deb" "$deb"
mv -f "$out/src/espline_${version}_$arch.changes" "$out/src/espline_${version}_$arch.buildinfo" "$out/" 2>/dev/null || true
rm -f "$out"/src/espline-dbgsym_*.deb

if [ "${NO_LINTIAN:-0}" != 1 ]; then
	# Clean down to the pedantic tags; each tag that remains is explained
	# in debian/espline.lintian-overrides.
	lintian --info --pedantic --fail-on error,warning,info,pedantic "$deb" >"$out/lintian.log" 2>&1 ||
		lint_failed=1
	grep -v 'running with root privileges is not recommended' "$out/lintian.log" >&2 || true
	if [ "${lint_failed:-0}" = 1 ]; then
		echo "build-deb: lintian found problems in $deb" >&2
		exit 1
	fi
fi
echo "$key" >"$out/built.key"
echo "$deb"
