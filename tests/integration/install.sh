#!/usr/bin/env bash
# install.sh - espline installed like a Debian service, checked from the .deb.
#
#   1. make deb builds the package with dpkg-buildpackage and lintian passes;
#      its Depends are the Debian library packages (from ${shlibs:Depends});
#      it holds no flasher stub and no path of the source tree.
#   2. The package is unpacked into a scratch root (dpkg -x: `dpkg --root`
#      would run the maintainer scripts chrooted there, which needs a whole
#      Debian system inside).  From there: --version, the systemd unit
#      (systemd-analyze verify, its hardening, its exposure score), the
#      sysusers.d user (systemd-sysusers into a scratch root), the udev rules
#      (udevadm verify, or udevadm test reading them, where udev is
#      installed), the man pages (man --warnings), bash and zsh completion,
#      espline setup, and every kind of station-file error at file:line:col.
#   3. With the source tree hidden (an empty tmpfs mounted over it in a
#      private mount namespace) and every file access traced (strace), the
#      installed espline runs the demo batch from an edited copy of the
#      installed station file against the installed simulator, and then a
#      station as the service runs it, stopped by SIGTERM as `systemctl stop`
#      does: the units in progress finish and are recorded.
# About 20 s with a package already built, 45 s from scratch.
set -u
. "$(dirname "$0")/../lib/tap.sh"
env_tempdir install
SRC=$PWD
R=$T/root
VERSION=$(cat VERSION)

# --- 1. the package ----------------------------------------------------------
tap_run 600 scripts/build-deb.sh
deb=$(tail -n 1 "$T/out")
LOG=$T/out
check "make deb: dpkg-buildpackage builds the .deb, lintian is clean (${took} s)" \
	[ "$rc" -eq 0 -a -f "$deb" ]
if [ "$rc" -ne 0 ] || [ ! -f "$deb" ]; then tap_done; exit 1; fi
LOG=

check_eq "the package's version is VERSION's (debian/changelog agrees)" \
	"$(dpkg-deb -f "$deb" Version) $(dpkg-parsechangelog -S Version)" "$VERSION $VERSION"

depends=$(dpkg-deb -f "$deb" Depends)
deps_ok() {
	local p
	for p in libc6 libserialport0 libsqlite3-0 libyaml-0-2 libjansson4 libssl3 libpq5 zlib1g libmicrohttpd12; do
		grep -qE "(^|, )$p( |,|$)" <<<"$depends" || return 1
	done
}
check "Depends are the Debian library packages, from \${shlibs:Depends}" deps_ok
tap_note "Depends: $depends"
dpkg-deb -c "$deb" >"$T/contents"
check "the package holds no flasher stub" bash -c "! grep -qiE 'stub|esp8266\.json' '$T/contents'"
dpkg -x "$deb" "$R"
check "the package installs espline, espline-sim, 4 man pages, completion, recipes, the unit, udev rules, sysusers" \
	test -x "$R/usr/bin/espline" -a -x "$R/usr/bin/espline-sim" \
	-a -f "$R/usr/share/man/man1/espline.1.gz" -a -f "$R/usr/share/man/man1/espline-sim.1.gz" \
	-a -f "$R/usr/share/man/man5/espline-recipe.5.gz" -a -f "$R/usr/share/man/man5/espline-station.5.gz" \
	-a -f "$R/usr/share/bash-completion/completions/espline" -a -f "$R/usr/share/zsh/vendor-completions/_espline" \
	-a -f "$R/usr/share/espline/recipes/nodemcu-4mb.yaml" -a -f "$R/usr/share/espline/recipes/images/nodemcu-demo.bin" \
	-a -f "$R/etc/espline/station.yaml" -a -f "$R/lib/systemd/system/espline.service" \
	-a -f "$R/lib/udev/rules.d/70-espline.rules" -a -f "$R/usr/lib/sysusers.d/espline.conf"
check "no path of the source tree is compiled into the installed programs" \
	bash -c "! grep -qF '$SRC' '$R/usr/bin/espline' '$R/usr/bin/espline-sim'"

IE=$R/usr/bin/espline
want_rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
version_re="^espline $VERSION \\(git $want_rev(-dirty)?\\)\$"
for v in --version -V version; do
	got=$("$IE" $v 2>&1)
	check "espline $v prints the version and the git revision ($got)" grep -qE "$version_re" <<<"$got"
done

# make install, for a system without Debian's tools: PREFIX and DESTDIR.
build_rel=$(realpath --relative-to="$SRC" "$BUILD_DIR")
tap_run 300 make -s install BUILD="$build_rel" DESTDIR="$T/di" PREFIX=/opt/espline
LOG=$T/out
D=$T/di/opt/espline
check "make install DESTDIR=... PREFIX=/opt/espline: programs, man pages, completion, recipes, unit, rules" \
	test "$rc" -eq 0 -a -x "$D/bin/espline" -a -x "$D/bin/espline-sim" -a -f "$D/share/man/man1/espline.1" \
	-a -f "$D/share/man/man5/espline-station.5" -a -f "$D/share/bash-completion/completions/espline" \
	-a -f "$D/share/zsh/vendor-completions/_espline" -a -f "$D/share/espline/recipes/images/nodemcu-demo.bin" \
	-a -f "$D/lib/udev/rules.d/70-espline.rules" -a -f "$T/di/etc/espline/station.yaml"
check "... the unit and the sample station file name the PREFIX's paths" \
	eval 'grep -qx "ExecStart=/opt/espline/bin/espline run --station --plain --station-file /etc/espline/station.yaml" \
		"$D/lib/systemd/system/espline.service" &&
	      grep -qx "recipe: /opt/espline/share/espline/recipes/nodemcu-4mb.yaml" "$T/di/etc/espline/station.yaml"'
LOG=

# --- 2. installed pieces ------------------------------------------------------
# systemd: the unit as installed, its programs and paths pointed into $R.
sed -e "s|/usr/bin/|$R/usr/bin/|g" -e "s|/etc/espline|$R/etc/espline|g" \
	"$R/lib/systemd/system/espline.service" >"$T/espline.service"
if command -v systemd-analyze >/dev/null; then
	MANPATH=$R/usr/share/man systemd-analyze verify "$T/espline.service" >"$T/verify.out" 2>&1
	rc=$?
	LOG=$T/verify.out
	check "systemd-analyze verify: no error, no warning (programs and man pages found)" \
		[ "$rc" -eq 0 -a ! -s "$T/verify.out" ]
	exposure=$(systemd-analyze security --offline=yes "$T/espline.service" 2>/dev/null |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	check "systemd-analyze security: exposure ${exposure:-?} (at most 2.0 of 10)" \
		awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'
	LOG=
else
	skip "systemd-analyze verify" "systemd is not installed"
	skip "systemd-analyze security" "systemd is not installed"
fi
hardened() {
	local d
	for d in User=espline SupplementaryGroups=dialout StateDirectory=espline NoNewPrivileges=yes \
		ProtectSystem=strict ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet= DevicePolicy=closed \
		SuccessExitStatus=130; do
		grep -qx "$d" "$R/lib/systemd/system/espline.service" || { echo "# missing: $d"; return 1; }
	done
}
check "the unit runs as its own user in dialout, with its state directory and the hardening options" hardened
if command -v systemd-sysusers >/dev/null; then
	mkdir -p "$T/sysroot/etc"
	systemd-sysusers --root="$T/sysroot" "$R/usr/lib/sysusers.d/espline.conf" >"$T/sysusers.out" 2>&1
	LOG=$T/sysusers.out
	check "sysusers.d makes the system user espline: no home, no login shell, member of dialout" \
		eval 'grep -qE "^espline:x:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$" "$T/sysroot/etc/passwd" &&
		      grep -qE "^dialout:x:[0-9]+:(.*,)?espline(,.*)?$" "$T/sysroot/etc/group" &&
		      [ "$(awk -F: "\$1 == \"espline\" { print \$3 }" "$T/sysroot/etc/passwd")" -lt 1000 ]'
	LOG=
else
	skip "sysusers.d user" "systemd-sysusers is not installed"
fi

# udev: the rules parse, and they name exactly the adapters espline uses.
rules=$R/lib/udev/rules.d/70-espline.rules
if udevadm verify --help >/dev/null 2>&1; then
	udevadm verify "$rules" >"$T/udev.out" 2>&1
	rc=$?
	LOG=$T/udev.out
	check "udevadm verify: the rules parse" [ "$rc" -eq 0 ]
elif command -v udevadm >/dev/null && command -v unshare >/dev/null; then
	# This udevadm has no verify (systemd < 253): udevadm test reads every
	# rules file and names each line it cannot parse.  Ours alone is put in
	# /etc/udev/rules.d, in a private mount namespace.
	mkdir -p "$T/rules.d"
	cp "$rules" "$T/rules.d/"
	dev=$(ls -d /sys/class/tty/* 2>/dev/null | head -n 1)
	unshare --mount --propagation private sh -c \
		"mount --bind '$T/rules.d' /etc/udev/rules.d && udevadm test --action=add '$dev'" >"$T/udev.out" 2>&1
	LOG=$T/udev.out
	check "udevadm test reads the rules with no error (this udevadm has no verify)" \
		eval 'grep -q "Reading rules file: /etc/udev/rules.d/70-espline.rules" "$T/udev.out" &&
		      ! grep -q "^/etc/udev/rules.d/70-espline.rules:" "$T/udev.out"'
else
	skip "udev rules parse" "udevadm or unshare is not installed"
fi
LOG=
rule_ids=$(sed -n 's/.*ENV{ID_VENDOR_ID}=="\([0-9a-f]*\)", ENV{ID_MODEL_ID}=="\([0-9a-f]*\)".*/usb:\1:\2/p' "$rules" | sort | tr '\n' ' ')
help_ids=$("$IE" run --help | grep -oE 'usb:[0-9a-f]{4}:[0-9a-f]{4}' | sort | tr '\n' ' ')
check_eq "the udev rules cover exactly the adapters espline run uses by default" "$rule_ids" "$help_ids"
check "the rules link each adapter by its USB path under /dev/espline/by-path/" \
	grep -q 'SYMLINK+="espline/by-path/$env{ID_PATH}"' "$rules"

# man pages: they render without a warning, and espline(1) has every command.
for page in man1/espline.1 man1/espline-sim.1 man5/espline-recipe.5 man5/espline-station.5; do
	MANWIDTH=80 man --warnings -l "$R/usr/share/man/$page.gz" >"$T/man.out" 2>"$T/man.err"
	LOG=$T/man.err
	check "man --warnings renders $(basename "$page") with no warning" \
		[ ! -s "$T/man.err" -a "$(wc -l <"$T/man.out")" -gt 20 ]
done
LOG=
commands=$("$IE" --help | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }')
MANWIDTH=200 man -l "$R/usr/share/man/man1/espline.1.gz" 2>/dev/null >"$T/espline.1.txt"
man_has_all() {
	local c
	for c in $commands; do
		grep -qE "^ +espline $c\$" "$T/espline.1.txt" || { echo "# espline(1) lacks espline $c"; return 1; }
		"$IE" "$c" --help | head -n 1 | grep -qF -f - "$T/espline.1.txt" ||
			{ echo "# espline(1) does not show espline $c --help"; return 1; }
	done
}
check "espline(1) has a section with the --help of each of the $(wc -w <<<"$commands") commands" man_has_all
check "man finds the pages by name (MANPATH)" \
	eval 'MANPATH=$R/usr/share/man man -w espline-station | grep -q man5/espline-station.5'

# completion: the words offered are the commands espline --help lists.
expected=$(printf '%s\n' $commands --help --version | sort | tr '\n' ' ')
got=$(PATH=$R/usr/bin:$PATH bash -c '
	. "$1"
	COMP_WORDS=(espline ""); COMP_CWORD=1; _espline; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ \
	"$R/usr/share/bash-completion/completions/espline")
check_eq "bash completion offers every command" "$got" "$expected"
got=$(PATH=$R/usr/bin:$PATH bash -c '
	. "$1"
	COMP_WORDS=(espline station ""); COMP_CWORD=2; _espline; echo "${COMPREPLY[*]}"
	COMP_WORDS=(espline run --sta); COMP_CWORD=2; _espline; echo "${COMPREPLY[*]}"' _ \
	"$R/usr/share/bash-completion/completions/espline" | tr '\n' '|')
check_eq "bash completion offers sub-commands and options" "$got" "check show|--station --station-file --station-name|"
if command -v zsh >/dev/null; then
	# zsh's own _describe and compadd are stood in for by functions that print
	# what they are given: this checks what _espline offers, not zsh's menu.
	got=$(PATH=$R/usr/bin:$PATH zsh -f -c '
		fpath=("$1" $fpath); autoload -U _espline
		_describe() { print -rl -- "${(@P)4}" }
		compadd() { if [[ $1 == -a ]]; then print -rl -- "${(@P)2}"; else print -rl -- "$@"; fi }
		_files() { print FILES }
		service=espline; words=(espline ""); CURRENT=2; _espline' _ "$R/usr/share/zsh/vendor-completions" |
		cut -d: -f1 | sort | tr '\n' ' ')
	check_eq "zsh completion offers every command" "$got" "$expected"
else
	skip "zsh completion offers every command" "zsh is not installed"
fi

# espline setup: a checked copy of a stub; how to get one when there is none.
stub_home=$T/home/.local/share/espline/stub/esp8266.json
tap_run 10 "$IE" setup --from "$SRC/third_party/stub/esp8266.json" --to "$stub_home"
LOG=$T/out
check "espline setup --from copies a stub and checks it (exit 0)" [ "$rc" -eq 0 -a -s "$stub_home" ]
printf '{"text_start": 1}\n' >"$T/notastub.json"
tap_run 10 "$IE" setup --from "$T/notastub.json" --to "$T/x/stub.json"
check "espline setup refuses a file that is not a stub (exit 1)" [ "$rc" -eq 1 -a ! -e "$T/x/stub.json" ]
mkdir -p "$T/empty"
tap_run 10 env HOME="$T/empty" XDG_DATA_HOME= "$IE" setup --to "$T/y/stub.json"
if [ "$rc" -eq 1 ]; then
	check "with no esptool-js or esptool installed, setup says how to get one (exit 1)" \
		has "sudo npm install -g esptool-js"
else
	skip "setup says how to get a stub" "an esptool-js or esptool is installed on this machine"
fi
LOG=

# --- station file errors: each kind at FILE:LINE:COL -------------------------
S=$T/st
mkdir -p "$S"
RECIPE=$R/usr/share/espline/recipes/nodemcu-4mb.yaml
printf 'postgresql://espline@db.example/line\n' >"$S/central.url"; chmod 0600 "$S/central.url"
printf 'postgresql://espline@db.example/line\n' >"$S/open.url"; chmod 0644 "$S/open.url"
printf 'mysql://x\n' >"$S/mysql.url"; chmod 0600 "$S/mysql.url"
printf 'install-test-token-0123456789\n' >"$S/token"; chmod 0600 "$S/token"
printf 'install-test-token-0123456789\n' >"$S/open-token"; chmod 0644 "$S/open-token"
printf 'recipe: x\nchip: esp8266\nsteps:\n  - wirte: {}\n' >"$S/bad-recipe.yaml"
# name | file text | the whole message, after "S/NAME.yaml:" (docs/bad-input.md)
station_case() {
	local want="$S/$1.yaml:$3"
	printf '%b' "$2" >"$S/$1.yaml"
	tap_run 10 "$IE" station check "$S/$1.yaml"
	LOG=$T/out
	check "station file, $1: exit 2, $1.yaml:${3%% error: *} error: ..." eval '[ "$rc" -eq 2 ] && grep -qxF -- "$want" "$T/out"'
	LOG=
}
station_case syntax "recipe: $RECIPE\nports: [ { slot: A1 }\n" \
	"3:1: error: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 8)"
station_case unknown-key "recipe: $RECIPE\ndatabse: /tmp/x.sqlite\n" \
	"2:1: error: unknown key 'databse' at the top level; did you mean 'database'?"
station_case duplicate-key "recipe: $RECIPE\nrecipe: $RECIPE\n" \
	"2:1: error: duplicate key 'recipe' at the top level (first given at line 1)"
station_case no-recipe "database: /tmp/x.sqlite\n" \
	"1:1: error: station file: missing required key 'recipe' (for example recipe: /usr/share/espline/recipes/nodemcu-4mb.yaml)"
station_case missing-recipe "recipe: nope.yaml\n" \
	"1:9: error: recipe: cannot read 'nope.yaml' (resolved to $S/nope.yaml): No such file or directory"
station_case wrong-type "recipe: $RECIPE\noperator_required: yes\n" \
	"2:20: error: operator_required: expected true or false, got 'yes'"
station_case ports-not-list "recipe: $RECIPE\nports: /dev/ttyUSB0\n" \
	"2:8: error: ports: expected a list such as [ { slot: A1, port: /dev/ttyUSB0 } ], got '/dev/ttyUSB0'"
station_case duplicate-slot "recipe: $RECIPE\nports:\n  - { slot: A1, port: /dev/ttyUSB0 }\n  - { slot: A1, port: /dev/ttyUSB1 }\n" \
	"4:13: error: slot: 'A1' is given twice (first at line 3)"
station_case bad-slot "recipe: $RECIPE\nports:\n  - { slot: \"A 1\", port: /dev/ttyUSB0 }\n" \
	"3:13: error: slot: 'A 1' is not a slot name: use up to 32 letters, digits, '_', '.' or '-', such as A1"
station_case bad-port "recipe: $RECIPE\nports:\n  - { slot: A1, port: \"tcp://10.0.0.1:4000\" }\n" \
	"3:23: error: port: bad port 'tcp://10.0.0.1:4000': unknown scheme (expected a device path, rfc2217://HOST:PORT or socket://HOST:PORT)"
station_case missing-port "recipe: $RECIPE\nports:\n  - { slot: A1 }\n" \
	"3:5: error: ports[]: missing required key 'port' (for example port: /dev/espline/by-path/...)"
station_case bad-bind "recipe: $RECIPE\nweb: { bind: \"localhost:http\" }\n" \
	"2:14: error: web.bind: --http localhost:http: expected HOST:PORT with a port 0-65535"
station_case open-bind "recipe: $RECIPE\nweb: { bind: \"0.0.0.0:8080\" }\n" \
	"2:1: error: web: binding to 0.0.0.0:8080 (not loopback) needs token_file: a file holding the access token"
station_case token-readable "recipe: $RECIPE\nweb: { bind: \"0.0.0.0:8080\", token_file: open-token }\n" \
	"2:42: error: web.token_file: token file $S/open-token: readable by others (chmod 600 it)"
station_case central-not-url "recipe: $RECIPE\ncentral_url_file: mysql.url\n" \
	"2:19: error: central_url_file: $S/mysql.url does not start with a postgresql:// URL on its first line"
printf 'recipe: bad-recipe.yaml\n' >"$S/names-bad-recipe.yaml"
tap_run 10 "$IE" station check "$S/names-bad-recipe.yaml"
LOG=$T/out
check "station file naming a bad recipe: exit 2, the recipe's error at the recipe's FILE:LINE:COL" \
	eval '[ "$rc" -eq 2 ] && has "$S/bad-recipe.yaml:4:5: error: unknown key '"'wirte'"' in steps[1]; did you mean '"'write'"'?"'
LOG=
printf 'recipe: %s\noperator_required: true\nweb: { bind: "0.0.0.0:8080", token_file: token }\ncentral_url_file: central.url\n' \
	"$RECIPE" >"$S/good.yaml"
tap_run 10 "$IE" station check "$S/good.yaml"
LOG=$T/out
check "a good station file: espline station check exits 0, no warning" eval '[ "$rc" -eq 0 ] && ! has warning'
printf 'recipe: %s\ncentral_url_file: open.url\n' "$RECIPE" >"$S/open-url.yaml"
tap_run 10 "$IE" station check "$S/open-url.yaml"
check "a central URL file others may read: an error at its FILE:LINE:COL, exit 2" eval '[ "$rc" -eq 2 ] &&
	grep -qxF "$S/open-url.yaml:2:19: error: central_url_file: $S/open.url can be read by other users (mode 0644); it holds a password: chmod 600 $S/open.url" "$T/out"'
tap_run 10 "$IE" run --station-file "$S/duplicate-slot.yaml" --batch x --count 1
check "espline run --station-file with a bad file: exit 2, the same FILE:LINE:COL message" \
	eval '[ "$rc" -eq 2 ] && has "$S/duplicate-slot.yaml:4:13: error: slot: '"'A1'"' is given twice"'
tap_run 10 env -u ESPLINE_OPERATOR "$IE" run --station-file "$S/good.yaml" --batch x --count 1 --db "$T/never.sqlite"
check "operator_required: run refuses to start without --operator (exit 2), nothing recorded" \
	eval '[ "$rc" -eq 2 ] && [ ! -e "$T/never.sqlite" ] &&
	      grep -qxF "espline run: this station requires an operator: give --operator NAME (or set \$ESPLINE_OPERATOR); the station file says operator_required: true (espline run --help)" "$T/out"'
LOG=

# --- 3. the installed station, with the source tree out of reach -----------
# "Edit the station file" as the README says: the installed sample, with the
# recipe, the database and eight slots changed by sed.
P2=$T/p2
mkdir -p "$P2" "$T/var"
cat >"$P2/run.sh" <<EOF
#!/bin/bash
# Runs with the source tree hidden; writes what it saw into $P2.
cd "$T" || exit 1
export HOME="$T/home" PATH="$R/usr/bin:/usr/bin:/bin"
unset ESPLINE_STUB ESPLINE_DB ESPLINE_CENTRAL XDG_DATA_HOME
espline-sim --devices 8 --link rfc2217 --time-scale 0.05 --exit-after-idle 60 \\
	--dev 5:flash=1MB --dev 4:fault=stuck@0x21000 --ready-file "$P2/ready" >"$P2/sim.out" 2>&1 &
sim=\$!
for _ in \$(seq 200); do [ -s "$P2/ready" ] && break; sleep 0.05; done
sed -e "s|^recipe: .*|recipe: $R/usr/share/espline/recipes/nodemcu-4mb.yaml|" \\
	-e "s|^database: .*|database: $T/var/espline.sqlite|" "$R/etc/espline/station.yaml" >"$P2/station.yaml"
echo "ports:" >>"$P2/station.yaml"
awk '{ printf "  - { slot: A%d, port: \"%s\" }\\n", \$2 + 1, \$3 }' "$P2/ready" >>"$P2/station.yaml"
espline station check "$P2/station.yaml" >"$P2/check.out" 2>&1; echo \$? >"$P2/check.rc"
espline run --station-file "$P2/station.yaml" --batch demo --count 8 --operator ci --plain \\
	>"$P2/demo.out" 2>&1; echo \$? >"$P2/demo.rc"
espline history 5c:cf:7f:a0:00:00 --db "$T/var/espline.sqlite" >"$P2/history.out" 2>&1; echo \$? >"$P2/history.rc"
espline db verify --db "$T/var/espline.sqlite" >"$P2/verify.out" 2>&1; echo \$? >"$P2/verify.rc"
kill \$sim; wait \$sim

# As the service runs it; SIGTERM once both units are being programmed.
espline-sim --devices 2 --link rfc2217 --time-scale 0.15 --exit-after-idle 60 \\
	--ready-file "$P2/ready2" >"$P2/sim2.out" 2>&1 &
sim=\$!
for _ in \$(seq 200); do [ -s "$P2/ready2" ] && break; sleep 0.05; done
{ grep -v '^ports:' "$P2/station.yaml" | grep -v '^  - { slot' | sed "s|$T/var/espline.sqlite|$T/var/service.sqlite|"
  echo "ports:"
  awk '{ printf "  - { slot: B%d, port: \"%s\" }\\n", \$2 + 1, \$3 }' "$P2/ready2"
  echo 'web: { bind: "127.0.0.1:0" }'; } >"$P2/service.yaml"
espline run --station --plain --station-file "$P2/service.yaml" >"$P2/service.out" 2>&1 &
run=\$!
for _ in \$(seq 300); do
	[ "\$(grep -c 'connected, programming' "$P2/service.out")" -ge 2 ] && break
	sleep 0.05
done
sleep 0.3
kill -TERM \$run
wait \$run; echo \$? >"$P2/service.rc"
kill \$sim; wait \$sim
exit 0
EOF
if [ ! -s "$SRC/third_party/stub/esp8266.json" ]; then
	not_ok "the flasher stub is missing: run scripts/install-deps.sh"
	tap_done; exit 1
fi
hide_tree=0
if [ "$(id -u)" -eq 0 ] && unshare --mount --propagation private true 2>/dev/null; then hide_tree=1; fi
# bash stats $OLDPWD at start: that is the shell, not espline.
runner=(env -u OLDPWD PWD=/ bash "$P2/run.sh")
if command -v strace >/dev/null; then
	runner=(strace -f -qq --seccomp-bpf -e trace=%file,execve -o "$T/trace" "${runner[@]}")
fi
cd / || exit 1   # a cwd inside the tree would reach under the mount
if [ "$hide_tree" = 1 ]; then
	timeout 120 unshare --mount --propagation private bash -c \
		'mount -t tmpfs -o size=1m,mode=0755 espline-hidden "$1" && ls -A "$1" >"$2" && shift 2 && exec "$@"' \
		_ "$SRC" "$P2/src.ls" "${runner[@]}"
else
	timeout 120 "${runner[@]}"
fi
cd "$SRC" || exit 1
if [ "$hide_tree" = 1 ]; then
	check "the source tree was hidden while the installed espline ran (an empty tmpfs over it)" \
		[ -f "$P2/src.ls" -a ! -s "$P2/src.ls" ]
else
	skip "the source tree was hidden" "needs root and unshare"
fi
if [ -f "$T/trace" ]; then
	grep -F "$SRC" "$T/trace" | head -n 5 >"$T/trace.src"
	LOG=$T/trace.src
	check "strace: no file of the source tree was opened, looked at or run ($(wc -l <"$T/trace") file calls traced)" \
		[ ! -s "$T/trace.src" ]
	check "strace: the installed espline found its stub in the user's data folder" \
		grep -qF "$stub_home" "$T/trace"
	LOG=
else
	skip "strace: no file of the source tree was opened" "strace is not installed"
fi
LOG=$P2/check.out
check "espline station check accepts the edited installed station file" [ "$(cat "$P2/check.rc")" = 0 ]
LOG=$P2/demo.out
check "the installed espline runs the demo batch: exit 1 (2 units fail on purpose)" [ "$(cat "$P2/demo.rc")" = 1 ]
DB=$T/var/espline.sqlite
check "... 8 units recorded: 6 PASS, 2 FAIL" \
	[ "$(sqlite3 "$DB" "select count(*) from units where result = 'PASS';")" = 6 -a \
	  "$(sqlite3 "$DB" "select count(*) from units where result = 'FAIL';")" = 2 ]
check "... with the station file's name, recipe and operator" \
	[ "$(sqlite3 "$DB" "select s.name || ' ' || r.name || ' ' || b.operator from batches b join stations s on s.id = b.station_id join recipes r on r.id = b.recipe_id;")" = "line1-station1 nodemcu-4mb ci" ]
check "... the slot names are listed at the start" grep -q 'slots A1=rfc2217://.*A8=rfc2217://' "$P2/demo.out"
LOG=$P2/history.out
check "espline history shows the unit (PASS)" eval '[ "$(cat "$P2/history.rc")" = 0 ] && grep -q PASS "$P2/history.out"'
LOG=$P2/verify.out
check "espline db verify: the hash chain is intact" [ "$(cat "$P2/verify.rc")" = 0 ]
LOG=$P2/service.out
check "the station file's web.bind starts the web view" grep -q 'web view at http://127.0.0.1:[1-9]' "$P2/service.out"
check "SIGTERM (systemctl stop) ends the service station with exit 130" [ "$(cat "$P2/service.rc")" = 130 ]
check "... the two units in progress finished and were recorded PASS, none left RUNNING" \
	[ "$(sqlite3 "$T/var/service.sqlite" "select group_concat(result) from units;")" = "PASS,PASS" ]
LOG=

# --- the unit's system call filter lets a station work ----------------------
# Every system call one unit needs (strace -c) must be allowed by the unit's
# SystemCallFilter=@system-service ~@privileged @resources, or systemd would
# kill the service on a real station.  It runs as an unprivileged user, as
# the service does (SQLite, for one, calls fchown only as root).
expand_set() {   # the system calls of a systemd group, nested groups expanded
	systemd-analyze syscall-filter "$1" 2>/dev/null | tail -n +2 | sed 's/^ *//' | grep -v '^#' |
		while read -r w; do
			case $w in @*) expand_set "$w" ;; ?*) echo "$w" ;; esac
		done
}
if command -v strace >/dev/null && command -v systemd-analyze >/dev/null; then
	"$R/usr/bin/espline-sim" --devices 1 --link rfc2217 --time-scale 0 --exit-after-idle 60 \
		--ready-file "$T/ready3" >"$T/sim3.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 200); do [ -s "$T/ready3" ] && break; sleep 0.05; done
	as_user=()
	if [ "$(id -u)" -eq 0 ]; then
		as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
		chmod 755 "$T" && chmod 777 "$T/var" && chmod -R a+rX "$T/home"
	fi
	HOME=$T/home "${as_user[@]}" strace -f -qq -c -o "$T/var/syscalls" "$IE" run "$RECIPE" \
		--port "$(awk '{ print $3; exit }' "$T/ready3")" --db "$T/var/sc.sqlite" --plain >"$T/sc.out" 2>&1
	awk 'NR > 2 && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" { print $NF }' "$T/var/syscalls" | sort -u >"$T/used"
	{ expand_set @privileged; expand_set @resources; } | sort -u >"$T/denied"
	expand_set @system-service | sort -u | comm -23 - "$T/denied" >"$T/allowed"
	comm -23 "$T/used" "$T/allowed" >"$T/outside"
	LOG=$T/outside
	check "the $(wc -l <"$T/used") system calls of a unit are all allowed by the unit's SystemCallFilter" \
		[ -s "$T/used" -a ! -s "$T/outside" -a "$(sqlite3 "$T/var/sc.sqlite" "select result from units;")" = PASS ]
	LOG=
else
	skip "the unit's system call filter" "strace or systemd-analyze is not installed"
fi
tap_done
