#!/usr/bin/env bash
# install-deps.sh - install everything espline needs to build and test, by
# package name, on Debian 12.  Idempotent: quiet when all is present.
#
#   apt:  compilers, libraries (-dev), sqlite3, nodejs + npm, cppcheck (make lint), chromium (browser tests);
#         for the Debian package and its test (tests/integration/install.sh):
#         debhelper, lintian, fakeroot, systemd, udev, man-db, groff, zsh, strace;
#         for the RFC 2217 reset test: ser2net (a real serial server) and
#         python3-serial (pyserial's RFC 2217 client, as esptool uses it);
#         tools the tests and benchmarks call: jq, python3 (also the label
#         printer and barcode scanner stand-ins, tests/tools/fake_*.py), time
#   npm:  esptool-js at the exact versions pinned in tests/interop/package-lock.json
#         (0.7.0, and 0.4.7 under the alias esptool-js-legacy), puppeteer-core as
#         pinned in tests/browser/package-lock.json
#   stub: both generations of the ESP8266 flasher stub, copied out of those
#         packages (never committed; see README):
#           third_party/stub/esp8266.json         esp-flasher-stub (esptool-js 0.7.0)
#           third_party/stub/esp8266-legacy.json  legacy stub (esptool-js 0.4.7)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
	build-essential pkg-config clang libclang-rt-14-dev
	libserialport-dev libsqlite3-dev sqlite3 libyaml-dev zlib1g-dev
	libssl-dev libjansson-dev libcmocka-dev libpq-dev postgresql
	valgrind nodejs libmicrohttpd-dev chromium cppcheck
	debhelper lintian fakeroot systemd udev man-db groff-base zsh strace util-linux
	ser2net python3-serial
	jq python3 time
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# npm ships inside some nodejs builds; Debian's own nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node test tools, pinned by their lockfiles: esptool-js (interop tests) and
# puppeteer-core (browser tests, driving the Debian chromium above).
for dir in tests/interop tests/browser; do
	lock=$dir/package-lock.json
	stamp=$dir/node_modules/.installed-lock
	if [ -f "$lock" ] && ! cmp -s "$lock" "$stamp" 2>/dev/null; then
		echo "install-deps: npm ci in $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		cp "$lock" "$stamp"
	fi
done

# The flasher stubs espline uploads, taken from the esptool-js packages.
copy_stub() {
	local src=tests/interop/node_modules/$1 dst=third_party/stub/$2
	if [ -f "$src" ] && ! cmp -s "$src" "$dst" 2>/dev/null; then
		mkdir -p "$(dirname "$dst")"
		cp "$src" "$dst"
		echo "install-deps: flasher stub at $dst"
	fi
}
copy_stub esptool-js/lib/targets/stub_flasher/esp8266.json esp8266.json
copy_stub esptool-js-legacy/lib/targets/stub_flasher/stub_flasher_8266.json esp8266-legacy.json
exit 0
