/* fixture.c - a fixture's reset commands; see include/espline/fixture.h. */
#include "espline/fixture.h"
#include "util/spawn.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>

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

static int run_one(const char *cmd, unsigned timeout_ms, espl_error *err)
{
	char copy[1024], *argv[ESPL_FIXTURE_MAX_ARGS + 1], how[64];
	espl__spawn_result res;

	ESPL_TRY(split(cmd, copy, sizeof copy, argv, err));
	ESPL_TRY(espl__spawn_run(argv, NULL, 0, timeout_ms, &res, err));
	if (res.exited && res.status == 0)
		return ESPL_OK;
	return espl_fail(err, ESPL_ESYS, "%s", espl__spawn_outcome(&res, timeout_ms, how, sizeof how));
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
