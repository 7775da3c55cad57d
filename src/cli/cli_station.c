/* cli_station.c - `espline station check|show [FILE]`: validate or print a
 * station file (espline-station(5)) and its recipe without touching a
 * device.  Also the loader `espline run --station-file` uses. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "espline/station_file.h"

static void station_usage(FILE *out)
{
	fputs("usage: espline station check [FILE]   validate a station file and its recipe\n"
	      "       espline station show [FILE]    print it with paths resolved and defaults\n"
	      "FILE defaults to " ESPL_CLI_STATION_FILE ".  No device is touched.  Messages\n"
	      "go to stderr as FILE:LINE:COLUMN: error: ... (exit 0 ok, 2 invalid).\n"
	      "The keys are described in espline-station(5).\n",
	      out);
}

espl_station_file *espl_cli_station_load(const char *path)
{
	espl_station_file *sf = NULL;
	espl_error err = { 0, "" };
	int rc = espl_station_file_load(path, espl_cli_print_diag, NULL, &sf, &err);
	if (rc == ESPL_OK)
		return sf;
	if (rc != ESPL_ERECIPE) /* the file itself could not be read */
		fprintf(stderr, "espline: %s\n", espl_cli_shown(err.msg));
	return NULL;
}

static int cmd_check(const char *path)
{
	espl_station_file *sf = espl_cli_station_load(path);
	if (!sf)
		return ESPL_EXIT_USAGE;
	espl_recipe *r = espl_cli_recipe_load(sf->recipe);
	if (r)
		printf("%s: ok: recipe \"%s\", %zu port%s%s\n", espl_cli_shown(path), espl_cli_shown(r->name), sf->n_slots,
		       sf->n_slots == 1 ? "" : "s", sf->n_slots ? "" : " (every supported adapter)");
	espl_recipe_free(r);
	espl_station_file_free(sf);
	return r ? ESPL_EXIT_OK : ESPL_EXIT_USAGE;
}

static void show_value(const char *key, const char *v, const char *dflt)
{
	printf("%s: ", key);
	if (v) {
		espl_cli_put_quoted(v);
		putchar('\n');
	} else {
		printf("~   # default: %s\n", dflt);
	}
}

static int cmd_show(const char *path)
{
	espl_station_file *sf = espl_cli_station_load(path);
	if (!sf)
		return ESPL_EXIT_USAGE;
	printf("# ");
	espl_cli_put_quoted(sf->path);
	putchar('\n');
	show_value("station", sf->name, "the host name");
	show_value("recipe", sf->recipe, "");
	if (sf->n_slots == 0)
		printf("ports: ~   # default: every supported adapter (espline run --help)\n");
	else
		printf("ports:\n");
	for (size_t i = 0; i < sf->n_slots; i++) {
		printf("  - { slot: ");
		espl_cli_put_quoted(sf->slots[i].slot);
		const espl_station_slot *s = &sf->slots[i];
		printf(", %s: ", s->port ? "port" : s->usb_serial ? "usb_serial" : "usb_path");
		espl_cli_put_quoted(s->port ? s->port : s->usb_serial ? s->usb_serial : s->usb_path);
		printf(" }\n");
	}
	printf("operator_required: %s\n", sf->operator_required ? "true" : "false");
	show_value("database", sf->database, "$ESPLINE_DB, else db/espline.sqlite");
	show_value("central_url_file", sf->central_url_file, "$ESPLINE_CENTRAL, else no replication");
	printf("web:\n");
	show_value("  bind", sf->web_bind, "none (no web view)");
	show_value("  token_file", sf->web_token_file, "none");
	espl_station_file_free(sf);
	return ESPL_EXIT_OK;
}

static int run_station(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		station_usage(stdout);
		return ESPL_EXIT_OK;
	}
	if ((argc == 2 || argc == 3) && strcmp(argv[1], "check") == 0)
		return cmd_check(argc == 3 ? argv[2] : ESPL_CLI_STATION_FILE);
	if ((argc == 2 || argc == 3) && strcmp(argv[1], "show") == 0)
		return cmd_show(argc == 3 ? argv[2] : ESPL_CLI_STATION_FILE);
	station_usage(stderr);
	return ESPL_EXIT_USAGE;
}

const espl_cli_command espl_cmd_station = {
	"station", "check or show a station file (espline-station(5)) without touching a device",
	run_station,
};
