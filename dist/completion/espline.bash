# bash completion for espline and espline-sim.
#
# The words offered come from the program's own --help, so completion never
# disagrees with the version installed: `espline --help` lists the commands,
# `espline CMD --help` their options and sub-commands (`espline db verify`).

_espline_commands()
{
	"$1" --help 2>/dev/null | awk '/^commands:/ { c = 1; next } c && /^  [a-z]/ { print $1 }'
}

# Sub-commands shown in CMD's usage lines: "espline db verify ..." -> verify.
_espline_subcommands()
{
	"$1" "$2" --help 2>/dev/null | grep -oE "espline $2 [a-z][a-z-]*" | awk '{ print $3 }' | sort -u
}

_espline_options()
{
	"$@" --help 2>/dev/null | grep -oE -- '(^|[ [])--[a-z][a-z0-9-]*' | tr -d ' [' | sort -u
}

_espline_ports()
{
	compgen -G '/dev/ttyUSB*'; compgen -G '/dev/ttyACM*'; compgen -G '/dev/espline/by-path/*'
	compgen -W 'usb:10c4:ea60 usb:1a86:7523 usb:1a86:55d4 usb:0403:6001 rfc2217:// socket://' -- "$1"
}

_espline()
{
	local prog=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=""
	local cmd=${COMP_WORDS[1]:-}
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_espline_commands "$prog") --help --version" -- "$cur")
		return
	fi
	case $prev in
	--port|-p) mapfile -t COMPREPLY < <(_espline_ports "$cur" | grep -F -- "$cur"); return ;;
	--format) mapfile -t COMPREPLY < <(compgen -W 'csv json' -- "$cur"); return ;;
	--reset) mapfile -t COMPREPLY < <(compgen -W 'auto none' -- "$cur"); return ;;
	--after) mapfile -t COMPREPLY < <(compgen -W 'run stay' -- "$cur"); return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_espline_options "$prog" "$cmd")" -- "$cur")
		return
	fi
	if [ "$COMP_CWORD" -eq 2 ]; then
		local subs
		subs=$(_espline_subcommands "$prog" "$cmd")
		if [ -n "$subs" ]; then
			mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
			return
		fi
	fi
	mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	compopt -o filenames 2>/dev/null
}

_espline_sim()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	COMPREPLY=()
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_espline_options "${COMP_WORDS[0]}")" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null
	fi
}

complete -F _espline espline
complete -F _espline_sim espline-sim
