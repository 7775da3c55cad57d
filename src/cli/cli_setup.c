/* cli_setup.c - `espline setup`: put a flasher stub where espline finds it.
 *
 * espline does not ship Espressif's stub (see the README).  setup copies the
 * one of an installed esptool-js or esptool, checked, to the place the
 * service reads (root) or to the user's data folder, or says exactly how to
 * get one.  The Debian package's postinst runs it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "espline/stub.h"

#define MAX_SOURCES 16

static const char setup_help[] =
	"usage: espline setup [--from FILE] [--to FILE] [--check]\n\n"
	"Put an ESP8266 flasher stub where espline finds it.  espline does not ship\n"
	"Espressif's stub: setup copies the one of an installed esptool-js (npm) or\n"
	"esptool (pip), after checking it, to " ESPL_STUB_STATE_PATH "\n"
	"(as root, for the service) or to ~/.local/share/espline/stub/esp8266.json.\n\n"
	"  --from FILE   copy this stub JSON instead of an installed one\n"
	"  --to FILE     copy it there instead\n"
	"  --check       only say which stub espline would use now\n\n"
	"Exit: 0 a stub is in place, 1 none was found (the message says how to get one),\n"
	"2 bad arguments, 3 the copy failed.\n";

static void how_to_get_one(void)
{
	fprintf(stderr,
	        "espline setup: no ESP8266 flasher stub found, and espline does not ship one.\n"
	        "Install Espressif's esptool-js or esptool, then run espline setup again:\n"
	        "  sudo npm install -g esptool-js@0.7.0 && sudo espline setup\n"
	        "  pip install esptool && espline setup      (for your user only)\n"
	        "or copy a stub JSON (esp8266.json from esptool-js's lib/targets/stub_flasher/,\n"
	        "or stub_flasher_8266.json from esptool's targets/stub_flasher/) yourself:\n"
	        "  sudo espline setup --from FILE\n");
}

/* Root: the service's place; anyone else: the user's data folder. */
static int default_destination(char *buf, size_t len)
{
	const espl_stub_env *env = espl_cli_stub_env();
	const char *xdg = env->data_home, *home = env->home;
	if (geteuid() == 0)
		snprintf(buf, len, "%s", ESPL_STUB_STATE_PATH);
	else if (xdg && xdg[0] == '/')
		snprintf(buf, len, "%s/espline/stub/esp8266.json", xdg);
	else if (home && *home)
		snprintf(buf, len, "%s/.local/share/espline/stub/esp8266.json", home);
	else
		return -1;
	return 0;
}

static int check_only(void)
{
	espl_stub stub;
	espl_error err = { 0, "" };
	if (espl_stub_find(NULL, espl_cli_stub_env(), &stub, &err) < 0) {
		fprintf(stderr, "espline setup: %s\n", espl_cli_shown(err.msg));
		how_to_get_one();
		return ESPL_EXIT_FAIL;
	}
	printf("espline uses the flasher stub %s\n", espl_cli_shown(stub.path));
	espl_stub_free(&stub);
	return ESPL_EXIT_OK;
}

static int install(const char *from, const char *to)
{
	char *sources[MAX_SOURCES];
	size_t n = 0;
	char dst[1024];
	espl_error err = { 0, "" };

	if (to)
		snprintf(dst, sizeof dst, "%s", to);
	else if (default_destination(dst, sizeof dst) < 0) {
		fprintf(stderr, "espline setup: no HOME to copy the stub into: give --to FILE\n");
		return ESPL_EXIT_USAGE;
	}
	if (!from) {
		n = espl_stub_installed_sources(espl_cli_stub_env(), sources, MAX_SOURCES);
		if (n == 0) {
			if (access(dst, R_OK) == 0) {
				printf("espline setup: no esptool-js or esptool installed; keeping %s\n",
				       espl_cli_shown(dst));
				return ESPL_EXIT_OK;
			}
			how_to_get_one();
			return ESPL_EXIT_FAIL;
		}
		from = sources[0];
	}
	int rc = espl_stub_install(from, dst, &err);
	if (rc < 0)
		fprintf(stderr, "espline setup: %s\n", espl_cli_shown(err.msg));
	else
		printf("espline setup: flasher stub %s -> %s\n", espl_cli_shown(from), espl_cli_shown(dst));
	for (size_t i = 0; i < n; i++)
		free(sources[i]);
	if (rc < 0)
		return rc == ESPL_EARG || rc == ESPL_ENOTFOUND ? ESPL_EXIT_FAIL : ESPL_EXIT_DEVICE;
	return ESPL_EXIT_OK;
}

static int setup_main(int argc, char **argv)
{
	enum { O_FROM = 256, O_TO, O_CHECK };
	static const struct option opts[] = {
		{ "from", required_argument, NULL, O_FROM }, { "to", required_argument, NULL, O_TO },
		{ "check", no_argument, NULL, O_CHECK },     { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = NULL, *to = NULL;
	int check = 0, c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM: from = optarg; break;
		case O_TO: to = optarg; break;
		case O_CHECK: check = 1; break;
		case 'h': fputs(setup_help, stdout); return ESPL_EXIT_OK;
		default:
			fprintf(stderr, "espline setup: unknown or incomplete option %s (espline setup --help)\n",
			        espl_cli_shown(argv[optind - 1]));
			return ESPL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "espline setup: unexpected argument %s (espline setup --help)\n",
		        espl_cli_shown(argv[optind]));
		return ESPL_EXIT_USAGE;
	}
	return check ? check_only() : install(from, to);
}

const espl_cli_command espl_cmd_setup = {
	"setup", "put a flasher stub where espline finds it (from esptool-js or esptool)", setup_main,
};
