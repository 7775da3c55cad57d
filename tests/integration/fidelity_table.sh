#!/usr/bin/env bash
# fidelity_table.sh - docs/simulator-fidelity.md stays tied to its tests:
# every test it names exists in tests/unit/, and every test of
# tests/unit/test_sim_fidelity.c is named in it (so a new raw-frame test gets
# its row, and a removed one does not leave a row claiming it).  TAP output.
set -u
. "$(dirname "$0")/../lib/tap.sh"
DOC=docs/simulator-fidelity.md
UNIT=tests/unit/test_sim_fidelity.c

named=$(grep -oP 'test_[a-z0-9_]+(?![.a-z0-9_])' "$DOC" | grep -v '^test_sim_\(chip\|fidelity\)$' | sort -u)
defined=$(grep -ho 'cmocka_unit_test(test_[a-z0-9_]*' tests/unit/test_*.c | sed 's/.*(//' | sort -u)
fidelity=$(grep -o 'cmocka_unit_test(test_[a-z0-9_]*' "$UNIT" | sed 's/.*(//' | sort -u)

missing=$(comm -23 <(echo "$named") <(echo "$defined"))
check_eq "every test the table names exists" "$missing" ""
unnamed=$(comm -23 <(echo "$fidelity") <(echo "$named"))
check_eq "every raw-frame fidelity test has a row" "$unnamed" ""
[ "$(echo "$fidelity" | wc -l)" -ge 18 ] && ok "test_sim_fidelity.c has its tests ($(echo "$fidelity" | wc -l))" \
	|| not_ok "test_sim_fidelity.c has its tests"
tap_done
