/* main.c - espline's entry point: dispatch argv[1] to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "util/file.h"
#include "util/str.h"
#include "espline/error.h"
#include "espline/recipe.h"

/* Each subcommand lives in its own cli_*.c file; add it here. */
static const espl_cli_command *const commands[] = {
	&espl_cmd_recipe, &espl_cmd_station, &espl_cmd_run,
	&espl_cmd_history, &espl_cmd_report, &espl_cmd_export, &espl_cmd_db,
	&espl_cmd_sync, &espl_cmd_serve,
	&espl_cmd_ports, &espl_cmd_info, &espl_cmd_erase, &espl_cmd_write, &espl_cmd_verify, &espl_cmd_read,
	&espl_cmd_setup, &espl_cmd_version,
	NULL,
};

const char *espl_cli_shown(const char *s)
{
	static char ring[12][512];
	static unsigned next;
	return espl__str_escape(s ? s : "", ring[next++ % 12], sizeof ring[0]);
}

void espl_cli_print_diag(void *ctx, const espl_recipe_diag *d)
{
	(void)ctx;
	fprintf(stderr, "%s:%u:%u: %s: %s\n", espl_cli_shown(d->file), d->pos.line, d->pos.column,
	        d->warning ? "warning" : "error", espl_cli_shown(d->message));
}

const char *espl_cli_spool_dir(void)
{
	const char *dir = getenv("ESPLINE_SPOOL_DIR");
	return dir && *dir ? dir : "/var/tmp/espline-spool";
}

const char *espl__cli_or_env(const char *given, const char *env)
{
	if (given && *given)
		return given;
	const char *v = getenv(env);
	return v && *v ? v : NULL;
}

int espl_cli_central_file(const char *cmd, const char *path, const char **conninfo)
{
	static char value[4096];
	struct stat st;
	espl_error err;
	char *text;
	size_t len;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
		fprintf(stderr, "espline %s: --central-file %s can be read by other users (mode %04o); it holds a "
		        "password: chmod 600 %s\n", cmd, espl_cli_shown(path), (unsigned)(st.st_mode & 07777),
		        espl_cli_shown(path));
		return ESPL_EXIT_USAGE;
	}
	if (espl__file_read(path, sizeof value - 1, "central-file", &text, &len, &err) < 0) {
		fprintf(stderr, "espline %s: %s\n", cmd, espl_cli_shown(err.msg));
		return ESPL_EXIT_USAGE;
	}
	/* the first line, without surrounding blanks */
	char *start = text + strspn(text, " \t\r\n");
	size_t n = strcspn(start, "\r\n");
	while (n && (start[n - 1] == ' ' || start[n - 1] == '\t'))
		n--;
	memcpy(value, start, n);
	value[n] = '\0';
	free(text);
	if (!n) {
		fprintf(stderr, "espline %s: --central-file %s is empty; it should hold one line, "
		        "postgresql://USER:PASSWORD@HOST/DB\n", cmd, espl_cli_shown(path));
		return ESPL_EXIT_USAGE;
	}
	*conninfo = value;
	return ESPL_EXIT_OK;
}

int espl_cli_exit_for(int code)
{
	switch (code) {
	case ESPL_OK: return ESPL_EXIT_OK;
	case ESPL_EARG: case ESPL_ERECIPE: return ESPL_EXIT_USAGE;
	case ESPL_EDB: return ESPL_EXIT_DB;
	case ESPL_EINTERRUPTED: return ESPL_EXIT_INTERRUPTED;
	case ESPL_EMISMATCH: case ESPL_ECHIP: case ESPL_EPART: case ESPL_EBOOT:
	case ESPL_EREFUSED: return ESPL_EXIT_FAIL;
	case ESPL_EBUSY: case ESPL_EPERM: case ESPL_ENOMEM: case ESPL_ESYS: return ESPL_EXIT_STATION;
	default: return ESPL_EXIT_DEVICE;
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: espline COMMAND [ARGS...]   (espline COMMAND --help for details)\n"
	        "       espline --version | -V\n\ncommands:\n");
	for (size_t i = 0; commands[i]; i++)
		fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return ESPL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return espl_cmd_version.run(1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return ESPL_EXIT_OK;
	}
	for (size_t i = 0; commands[i]; i++)
		if (strcmp(argv[1], commands[i]->name) == 0)
			return commands[i]->run(argc - 1, argv + 1);
	fprintf(stderr, "espline: unknown command '%s'\n", espl_cli_shown(argv[1]));
	usage(stderr);
	return ESPL_EXIT_USAGE;
}
