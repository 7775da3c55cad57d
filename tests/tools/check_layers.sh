#!/usr/bin/env bash
# check_layers.sh - no module includes a module of a higher layer (TAP).
#
#   tests/tools/check_layers.sh        (run by tests/run.sh and make check)
#
# The layer table below is the one in docs/ARCHITECTURE.md, lowest first.
# A file in src/<layer>/ may include headers of its own layer and of layers
# with a lower rank.  job and record share a rank on purpose: the runner and
# the records are a fork, neither may include the other; the station joins
# them.  Public headers (include/espline/*.h) belong to the layer whose
# folder holds their module, and obey the same rule among themselves.
# Private headers ("layer/name.h") belong to their folder.  A header this
# table does not know is an error, so a new module has to be placed.
#
# Also checked: every src/*.c is in a layer folder, no two library sources
# share a file name (ar keeps one member per name), and no file in src/ is
# over 700 lines (split it along its sections instead), only src/cli
# calls getenv, and only src/device calls espl_loader_options_init.
set -u
cd "$(dirname "$0")/../.."

declare -A RANK=(
	[util]=0 [port]=1 [link]=2 [device]=3 [recipe]=4
	[job]=5 [record]=5 [central]=6 [station]=7 [cli]=8
)
declare -A PUBLIC=(
	[error.h]=util
	[port.h]=port [rfc2217.h]=port
	[slip.h]=link [reset.h]=link [fixture.h]=link
	[loader.h]=device [stub.h]=device [esp8266.h]=device [flash.h]=device [boot.h]=device
	[flash_vendor.h]=device [flashmap.h]=device [image.h]=device
	[recipe.h]=recipe [csvtable.h]=recipe [unitdata.h]=recipe [layout.h]=recipe
	[runner.h]=job
	[db.h]=record [dbwriter.h]=record [serials.h]=record [report.h]=record
	[central.h]=central [central_query.h]=central [serial_lease.h]=central
	[supervisor.h]=station [ui.h]=station [record.h]=station [web.h]=station [station_file.h]=station
)

n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n - $1"; }

# layer_of_header NAME: sets HL to its layer, or "" when unknown
layer_of_header() {
	HL=
	case "$1" in
	espline/*) HL=${PUBLIC[${1#espline/}]:-} ;;
	*/*) [ -n "${RANK[${1%%/*}]:-}" ] && HL=${1%%/*} ;;
	esac
}

# check FILE LAYER: every quoted include of FILE against LAYER
check() {
	local file=$1 layer=$2 problems=0 inc
	while IFS= read -r inc; do
		case "$inc" in ../*|*.c) continue ;; esac
		layer_of_header "$inc"
		local hl=$HL
		if [ -z "$hl" ]; then
			echo "# $file includes \"$inc\": not in the layer table (tests/tools/check_layers.sh)"
			problems=$((problems + 1))
		elif [ "$hl" != "$layer" ] && [ "${RANK[$hl]}" -ge "${RANK[$layer]}" ]; then
			echo "# $file ($layer) includes \"$inc\" ($hl): a layer may include only lower layers"
			problems=$((problems + 1))
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
	return "$problems"
}

fails=0
for f in src/*/*.c src/*/*.h; do
	layer=${f#src/}
	layer=${layer%%/*}
	if [ -z "${RANK[$layer]:-}" ]; then
		echo "# $f: folder $layer is not a layer"
		fails=$((fails + 1))
		continue
	fi
	check "$f" "$layer" || fails=$((fails + 1))
done
[ "$fails" -eq 0 ] && ok "src/: no file includes a higher layer" ||
	notok "src/: $fails files include a higher layer or an unknown header"

fails=0
for f in include/espline/*.h; do
	layer_of_header "espline/$(basename "$f")"
	layer=$HL
	if [ -z "$layer" ]; then
		echo "# $f: public header not in the layer table"
		fails=$((fails + 1))
		continue
	fi
	check "$f" "$layer" || fails=$((fails + 1))
done
[ "$fails" -eq 0 ] && ok "include/espline/: no public header includes a higher layer" ||
	notok "include/espline/: $fails headers include a higher layer or an unknown header"

stray=$(ls src/*.c src/*.h 2>/dev/null)
[ -z "$stray" ] && ok "every source is in a layer folder" ||
	notok "sources outside a layer folder: $stray"

dups=$(ls src/*/*.c | grep -v '^src/cli/' | xargs -n1 basename | sort | uniq -d)
[ -z "$dups" ] && ok "library sources have distinct file names" ||
	notok "library sources share a file name: $dups"

# The library reads no environment variable: the program (src/cli) reads
# them and passes the values in through options structs.
env=$(grep -nE '\b(secure_)?getenv[[:space:]]*\(' src/*/*.c src/*/*.h include/espline/*.h | grep -v '^src/cli/')
[ -z "$env" ] && ok "getenv only in src/cli" ||
	notok "the library reads the environment (move it to src/cli, pass it in): $env"

# Only the device layer builds loader options: the runner and the
# station's presence probe state what they want (espl_connect_settings,
# espl_loader_probe) and the device layer fills the options, so their
# defaults and ladder rules live in one place.
lo=$(grep -nE '\bespl_loader_options_init[[:space:]]*\(' src/*/*.c src/*/*.h | grep -v '^src/device/')
[ -z "$lo" ] && ok "loader options are built only in src/device" ||
	notok "loader options built outside the device layer (use espl_loader_options_for): $lo"

long=$(wc -l src/*/*.c src/*/*.h | awk '$2 != "total" && $1 > 700 { printf "%s (%d) ", $2, $1 }')
[ -z "$long" ] && ok "no file in src/ is over 700 lines" ||
	notok "files in src/ over 700 lines: $long"

echo "1..$n"
[ "$bad" -eq 0 ]
