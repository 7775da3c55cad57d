#!/usr/bin/env bash
# recipe_cli.sh - `espline recipe check|show` on the sample recipes and on
# broken ones: exit codes, FILE:LINE:COL messages, and that `show` prints a
# recipe that parses back to the same thing.
set -u
. "$(dirname "$0")/../lib/tap.sh"
env_tempdir recipe-cli
make_demo_images 2>"$T/gen.err"
check_eq "demo images generated" "$?:$(wc -c <recipes/images/nodemcu-demo.bin 2>/dev/null | tr -d ' ')" "0:262144"

for r in recipes/nodemcu-4mb.yaml recipes/jig.yaml recipes/minimal.yaml; do
	out=$("$E" recipe check "$r" 2>&1)
	check_eq "recipe check $r passes" "$?" "0"
	"$E" recipe show "$r" >"$T/shown.yaml" 2>"$T/show.err"
	check_eq "recipe show $r exits 0" "$?" "0"
	out=$("$E" recipe check "$T/shown.yaml" 2>&1)
	check_eq "the shown $r is itself a valid recipe" "$?" "0"
	"$E" recipe show "$T/shown.yaml" >"$T/shown2.yaml" 2>&1
	# the two differ only in the header lines naming the file and its hash,
	# and in the "# default" marks (the shown recipe states every value)
	strip() { tail -n +3 "$1" | sed 's/  # .*$//'; }
	if diff <(strip "$T/shown.yaml") <(strip "$T/shown2.yaml") >"$T/diff"; then
		ok "show of the shown $r resolves to the same recipe"
	else
		not_ok "show of the shown $r resolves to the same recipe"; tap_note "$(cat "$T/diff")"
	fi
done

grep -q '^  baud: 460800  # default: the flash_baud (115200 if the ROM is deaf there)$' <("$E" recipe show recipes/minimal.yaml)
check_eq "show marks defaults" "$?" "0"
grep -q '^    timeout: 120s  # default, per attempt$' <("$E" recipe show recipes/nodemcu-4mb.yaml)
check_eq "show prints the default chip-erase timeout" "$?" "0"

cat >"$T/bad.yaml" <<'YAML'
recipe: bad
chip: esp8266
steps:
  - write: { file: ../nowhere/app.bin, adress: 0x0 }
  - verify: md5
YAML
err=$("$E" recipe check "$T/bad.yaml" 2>&1 >/dev/null)
check_eq "invalid recipe exits 2" "$?" "2"
want="$T/bad.yaml:4:40: error: unknown key 'adress' in write; did you mean 'address'?
$T/bad.yaml:4:20: error: write.file: cannot read '../nowhere/app.bin' (resolved to $T/../nowhere/app.bin): No such file or directory
$T/bad.yaml:4:12: error: write: missing required key 'address' (for example address: 0x0)"
check_eq "every error printed as FILE:LINE:COL: error: ..." "$err" "$want"

sed 's/^      sha256: a6cd/      sha256: 06cd/' recipes/nodemcu-4mb.yaml >"$T/pin.yaml"
mkdir -p "$T/images" && cp recipes/images/* "$T/images/"
err=$("$E" recipe check "$T/pin.yaml" 2>&1 >/dev/null)
rc=$?
check_eq "sha256 pin mismatch exits 2" "$rc" "2"
case "$err" in
*"error: write.file: sha256 mismatch for $T/images/nodemcu-demo.bin: the file has a6cd50eb"*", the recipe pins 06cd50eb"*) ok "pin mismatch names both hashes" ;;
*) not_ok "pin mismatch names both hashes"; tap_note "$err" ;;
esac

"$E" recipe check "$T/none.yaml" >/dev/null 2>&1
check_eq "missing recipe file exits 2" "$?" "2"
"$E" recipe frobnicate >/dev/null 2>&1
check_eq "unknown subcommand exits 2" "$?" "2"

tap_done
