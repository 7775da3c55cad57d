/* fixture.c - a fixture's reset commands; see include/espline/fixture.h. */
#include "espline/fixture.h"
#include "util/clock.h"
#include "util/str.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* cmd split at blanks into argv (pointing into copy). */
static int split(const char *cmd, char *copy, size_t cap, char **argv, espl_error *err)
{
	int argc = 0;
	snprintf(copy, cap, "%s", cmd);
	for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (argc == ESPL_FIXTURE_MAX_ARGS)
			return espl_fail(err, ESPL_EARG, "more than %d words in one command", ESPL_FIXTURE_MAX_ARGS);
		argv[argc++] = t;
	}
	argv[argc] = NULL;
	return argc ? ESPL_OK : espl_fail(err, ESPL_EARG, "empty command");
}

static int wait_child(pid_t pid, unsigned timeout_ms, int *status)
{
	double deadline = espl__now_s() + timeout_ms / 1000.0;
	for (;;) {
		pid_t got = waitpid(pid, status, WNOHANG);
		if (got == pid)
			return ESPL_OK;
		if (got < 0 && errno != EINTR)
			return ESPL_ESYS;
		if (espl__now_s() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return ESPL_ETIMEOUT;
		}
		espl__sleep_ms(2);
	}
}

static int run_one(const char *cmd, unsigned timeout_ms, espl_error *err)
{
	char copy[1024], *argv[ESPL_FIXTURE_MAX_ARGS + 1];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0;

	ESPL_TRY(split(cmd, copy, sizeof copy, argv, err));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return espl_fail(err, rc == ENOENT ? ESPL_ENOTFOUND : ESPL_ESYS, "cannot start: %s", strerror(rc));
	rc = wait_child(pid, timeout_ms, &status);
	if (rc == ESPL_ETIMEOUT)
		return espl_fail(err, ESPL_ETIMEOUT, "still running after %u ms: killed", timeout_ms);
	if (rc < 0)
		return espl_fail(err, ESPL_ESYS, "waiting for it: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return ESPL_OK;
	if (WIFEXITED(status))
		return espl_fail(err, ESPL_ESYS, "exited %d", WEXITSTATUS(status));
	return espl_fail(err, ESPL_ESYS, "killed by signal %d", WTERMSIG(status));
}

int espl_fixture_run(char *const *cmds, size_t n, const char *what, unsigned timeout_ms, espl_error *err)
{
	for (size_t i = 0; i < n; i++) {
		int rc = run_one(cmds[i], timeout_ms, err);
		if (rc < 0) {
			char shown[200];
			espl_error_prefix(err, "fixture %s command %zu (\"%s\")", what, i + 1,
			                  espl__str_escape(cmds[i], shown, sizeof shown));
			return rc;
		}
	}
	return ESPL_OK;
}
