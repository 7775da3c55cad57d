# env.sh - where the test scripts of tests/integration and tests/reliability
# find things, and how they clean up after themselves (sourced, not run).
#
# Sourcing it moves to the top of the tree and sets
#   BUILD_DIR  the build folder: $ESPLINE_BUILD, else ./build
#   E, SIM     espline and espline-sim in it
#   PIDS=()    background processes the exit trap stops: append every one
# and provides
#   env_tempdir NAME  a scratch folder T=/tmp/espline-NAME.XXXXXX and the EXIT
#                     trap that stops PIDS (with $KILL_SIGNAL, TERM unless
#                     set), waits for them, runs the at_exit commands and
#                     removes T (keeps it, saying "# kept T", when KEEP_T=1);
#                     exports ESPLINE_DB=$T/default.sqlite, so that nothing
#                     run without --db records in the checkout's db/
#   at_exit CMD       one more shell command for the exit trap
#   make_demo_images  scripts/make-demo-images.sh for this build (stdout
#                     dropped; the caller decides what a failure means)
#   wait_exit PID SECONDS  wait for a background process; SIGKILL it if it
#                     outlives SECONDS (status 124 then, like timeout(1))
# It prints nothing itself.  tap.sh (TAP lines) and sim.sh (simulators)
# build on it.

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
BUILD_DIR=${ESPLINE_BUILD:-$PWD/build}
export ESPLINE_BUILD=$BUILD_DIR   # the scripts it runs use the same build
E=$BUILD_DIR/espline
SIM=$BUILD_DIR/espline-sim
PIDS=()
ENV_AT_EXIT=()

env_tempdir() {
	T=$(mktemp -d "/tmp/espline-$1.XXXXXX")
	trap env_cleanup EXIT
	# A command run without --db records in the scratch folder, never in
	# the checkout's db/ (the demo's database) or a database of the caller's.
	export ESPLINE_DB=$T/default.sqlite
}

at_exit() { ENV_AT_EXIT+=("$1"); }

env_cleanup() {
	local p c
	for p in "${PIDS[@]}"; do kill -"${KILL_SIGNAL:-TERM}" "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for c in "${ENV_AT_EXIT[@]}"; do eval "$c"; done
	if [ "${KEEP_T:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
}

make_demo_images() { BUILD=${BUILD_DIR#"$PWD"/} scripts/make-demo-images.sh >/dev/null; }

wait_exit() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		if [ $SECONDS -ge "$deadline" ]; then
			kill -KILL "$1" 2>/dev/null
			wait "$1" 2>/dev/null
			return 124
		fi
		sleep 0.02
	done
	wait "$1"
}
