#!/usr/bin/env bash
# device_cli_legacy_stub.sh - device_cli.sh again, with the legacy flasher stub
# (third_party/stub/esp8266-legacy.json, from esptool-js 0.4.7) instead of
# esp-flasher-stub: espline must work with both generations, and the
# simulator answers as the one that was uploaded (docs/simulator-fidelity.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
stub=$here/../../third_party/stub/esp8266-legacy.json
if [ ! -f "$stub" ]; then
	echo "not ok 1 - the legacy stub is installed ($stub; run scripts/install-deps.sh)"
	echo "1..1"
	exit 1
fi
ESPLINE_STUB=$(cd "$(dirname "$stub")" && pwd)/$(basename "$stub") exec bash "$here/device_cli.sh" "$@"
