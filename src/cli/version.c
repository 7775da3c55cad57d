/* version.c - what `espline --version` says: the release (VERSION) and the
 * git revision the binary was built from, both given by the Makefile to
 * this one file (so a new commit recompiles only it). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef ESPLINE_VERSION
#define ESPLINE_VERSION "unknown"
#endif
#ifndef ESPLINE_GIT_REV
#define ESPLINE_GIT_REV "unknown"
#endif

const char *espl_cli_version(void)
{
	return ESPLINE_VERSION;
}

const char *espl_cli_revision(void)
{
	return ESPLINE_GIT_REV;
}

static int version_main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		puts("usage: espline version   (or espline --version, espline -V)\n"
		     "Print the version and the git revision espline was built from.");
		return ESPL_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "espline version: takes no arguments (espline version --help)\n");
		return ESPL_EXIT_USAGE;
	}
	printf("espline %s (git %s)\n", espl_cli_version(), espl_cli_revision());
	return ESPL_EXIT_OK;
}

const espl_cli_command espl_cmd_version = {
	"version", "print the version and the git revision it was built from", version_main,
};
