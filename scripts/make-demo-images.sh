#!/usr/bin/env bash
# make-demo-images.sh - build tests/tools/mkdemo_images.c and write the demo
# images the sample recipes use (recipes/images/ by default).  Needs only a C
# compiler; safe to run again (rebuilds the tool only when its source changed,
# the output is byte-for-byte deterministic).
#
#   scripts/make-demo-images.sh [OUTDIR]     (env: CC, BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-recipes/images}
tool=${BUILD:-build}/tools/mkdemo_images
src=tests/tools/mkdemo_images.c
mkdir -p "$(dirname "$tool")" "$out"
if [ ! -x "$tool" ] || [ "$src" -nt "$tool" ]; then
	${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror "$src" -o "$tool"
fi
"$tool" "$out"
