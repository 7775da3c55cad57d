#!/usr/bin/env bash
# recipe_cli.sh - `espline recipe check|show` on the sample recipes and on
# broken ones: exit codes, FILE:LINE:COL messages, and that `show` prints a
# recipe that parses back to the same thing.
set -u
cd "$(dirname "$0")/../.."
BUILD_DIR=${ESPLINE_BUILD:-$PWD/build}
ESPLINE=$BUILD_DIR/espline
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ -n "${2:-}" ] && sed 's/^/#   /' <<<"$2"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got:  $2"$'\n'"want: $3"; fi; }

BUILD=${BUILD_DIR#"$PWD"/} scripts/make-demo-images.sh >/dev/null 2>"$tmp/gen.err"
check "demo images generated" "$?:$(wc -c <recipes/images/nodemcu-demo.bin 2>/dev/null | tr -d ' ')" "0:262144"

for r in recipes/nodemcu-4mb.yaml recipes/jig.yaml recipes/minimal.yaml; do
	out=$("$ESPLINE" recipe check "$r" 2>&1)
	check "recipe check $r passes" "$?" "0"
	"$ESPLINE" recipe show "$r" >"$tmp/shown.yaml" 2>"$tmp/show.err"
	check "recipe show $r exits 0" "$?" "0"
	out=$("$ESPLINE" recipe check "$tmp/shown.yaml" 2>&1)
	check "the shown $r is itself a valid recipe" "$?" "0"
	"$ESPLINE" recipe show "$tmp/shown.yaml" >"$tmp/shown2.yaml" 2>&1
	# the two differ only in the header lines naming the file and its hash,
	# and in the "# default" marks (the shown recipe states every value)
	strip() { tail -n +3 "$1" | sed 's/  # .*$//'; }
	if diff <(strip "$tmp/shown.yaml") <(strip "$tmp/shown2.yaml") >"$tmp/diff"; then
		ok "show of the shown $r resolves to the same recipe"
	else
		not_ok "show of the shown $r resolves to the same recipe" "$(cat "$tmp/diff")"
	fi
done

grep -q '^  baud: 115200  # default$' <("$ESPLINE" recipe show recipes/minimal.yaml)
check "show marks defaults" "$?" "0"
grep -q '^    timeout: 120s  # default, per attempt$' <("$ESPLINE" recipe show recipes/nodemcu-4mb.yaml)
check "show prints the default chip-erase timeout" "$?" "0"

cat >"$tmp/bad.yaml" <<'YAML'
recipe: bad
chip: esp8266
steps:
  - write: { file: ../nowhere/app.bin, adress: 0x0 }
  - verify: md5
YAML
err=$("$ESPLINE" recipe check "$tmp/bad.yaml" 2>&1 >/dev/null)
check "invalid recipe exits 2" "$?" "2"
want="$tmp/bad.yaml:4:40: error: unknown key 'adress' in write; did you mean 'address'?
$tmp/bad.yaml:4:20: error: write.file: cannot read '../nowhere/app.bin' (resolved to $tmp/../nowhere/app.bin): No such file or directory
$tmp/bad.yaml:4:12: error: write: missing required key 'address' (for example address: 0x0)"
check "every error printed as FILE:LINE:COL: error: ..." "$err" "$want"

sed 's/^      sha256: bcd6/      sha256: 0cd6/' recipes/nodemcu-4mb.yaml >"$tmp/pin.yaml"
mkdir -p "$tmp/images" && cp recipes/images/* "$tmp/images/"
err=$("$ESPLINE" recipe check "$tmp/pin.yaml" 2>&1 >/dev/null)
rc=$?
check "sha256 pin mismatch exits 2" "$rc" "2"
case "$err" in
*"error: write.file: sha256 mismatch for $tmp/images/nodemcu-demo.bin: the file has bcd6d514"*", the recipe pins 0cd6d514"*) ok "pin mismatch names both hashes" ;;
*) not_ok "pin mismatch names both hashes" "$err" ;;
esac

"$ESPLINE" recipe check "$tmp/none.yaml" >/dev/null 2>&1
check "missing recipe file exits 2" "$?" "2"
"$ESPLINE" recipe frobnicate >/dev/null 2>&1
check "unknown subcommand exits 2" "$?" "2"

echo "1..$n"
[ "$failed" -eq 0 ]
