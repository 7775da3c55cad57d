#!/usr/bin/env bash
# build.sh - build every libFuzzer target in tests/fuzz with clang.
#
#   tests/fuzz/build.sh [target...]      (default: every tests/fuzz/fuzz_*.c)
#
# The library (src/*/*.c minus src/cli/) and the simulator
# (tests/sim/*.c minus main.c) are compiled here, straight from source, with
# coverage instrumentation, ASan and UBSan, into $FUZZ_BUILD/obj (default
# build/fuzz), then archived; each target links against that archive.  UBSan
# is made fatal so undefined behaviour counts as a crash.  Nothing depends on
# the Makefile's build directories.  Binaries: $FUZZ_BUILD/fuzz_<name>.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${FUZZ_BUILD:-build/fuzz}
CC=${FUZZ_CC:-clang}
JOBS=${FUZZ_JOBS:-2}
# The same pkg-config packages as the Makefile, so a new dependency there
# does not break the fuzz build.
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile)
PKGS=${PKGS:-libserialport sqlite3 yaml-0.1 zlib libcrypto jansson}

command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install clang)" >&2; exit 1; }
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS=(-g -O1 $SAN -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Itests/sim -Itests/fuzz
	"-DESPLINE_SOURCE_DIR=\"$ROOT\"" $PKG_CFLAGS)

mkdir -p "$OUT/obj"
lib_src=()
for f in src/*/*.c tests/sim/*.c; do
	case "$f" in src/cli/*|tests/sim/main.c) continue ;; esac
	lib_src+=("$f")
done

# Compile what changed (or whose headers changed: a cheap whole-tree check).
newest_header=$(find include src tests/sim -name '*.h' -newer "$OUT/lib.a" 2>/dev/null | head -1 || true)
to_build=()
for f in "${lib_src[@]}"; do
	o="$OUT/obj/$(echo "$f" | tr / _).o"
	if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ -n "$newest_header" ]; then
		to_build+=("$f")
	fi
done
if [ ${#to_build[@]} -gt 0 ]; then
	echo "compiling ${#to_build[@]} library/simulator sources"
	failed=0
	for f in "${to_build[@]}"; do
		o="$OUT/obj/$(echo "$f" | tr / _).o"
		rm -f "$o"
		while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.1; done
		"$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link -c "$f" -o "$o" &
	done
	wait
	for f in "${to_build[@]}"; do
		[ -f "$OUT/obj/$(echo "$f" | tr / _).o" ] || failed=1
	done
	[ "$failed" -eq 0 ] || { echo "build.sh: compiling the library failed" >&2; exit 1; }
fi
rm -f "$OUT/lib.a"
objs=()
for f in "${lib_src[@]}"; do objs+=("$OUT/obj/$(echo "$f" | tr / _).o"); done
ar rcs "$OUT/lib.a" "${objs[@]}"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi
for t in "${targets[@]}"; do
	echo "linking fuzz_$t"
	"$CC" "${CFLAGS[@]}" -Wall -Wextra -Werror -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "$OUT/lib.a" \
		$PKG_LIBS -lutil -lpthread -lm -o "$OUT/fuzz_$t"
done
echo "built ${#targets[@]} target(s) in $OUT"
