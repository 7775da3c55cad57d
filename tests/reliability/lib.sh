# lib.sh - shared helpers of the reliability drivers (sourced, not run).
#
# Needs tests/lib/env.sh (E, SIM, PIDS, the scratch folder T, the top of
# the tree as current directory); brings in tests/lib/sim.sh (simulators,
# expected flash contents), whose simulators here idle out after 120 s.

. tests/lib/sim.sh
SIM_IDLE=120

# rel_units DB: one line per unit, tab-separated:
#   port mac result error_kind error n_steps
# (error with tabs and newlines flattened to spaces).
rel_units() {
	sqlite3 -separator $'\t' "$1" "select u.port, coalesce(u.mac, ''), u.result,
		coalesce(u.error_kind, ''), replace(replace(replace(coalesce(u.error, ''), char(9), ' '), char(10), ' '), char(13), ' '),
		(select count(*) from steps s where s.unit_id = u.id)
		from units u order by u.id;"
}

# rel_specific_reason KIND MESSAGE: a FAIL names its phase or step and the
# kind of error, and says more than a word.  "unit: ...", "unknown error",
# "ok" or an empty or one-word message are generic.
rel_specific_reason() {
	case $1 in
	'' | unit:* | *'unknown error' | *': ok') return 1 ;;
	*': '*) ;;
	*) return 1 ;;
	esac
	[ "${#2}" -ge 20 ] && [ "$(printf '%s' "$2" | wc -w)" -ge 3 ]
}
