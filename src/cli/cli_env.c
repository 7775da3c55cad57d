/* cli_env.c - the environment variables that the library takes as options.
 *
 * The library reads no environment variable (tests/tools/check_layers.sh
 * holds that): the program reads them here, once, and passes the values in
 * through the options structs, so a library user decides for itself. */
#include <stdlib.h>

#include "cli/cli.h"

static const char *nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

const espl_stub_env *espl_cli_stub_env(void)
{
	static espl_stub_env env;
	env.stub = nonempty("ESPLINE_STUB");
	env.data_home = nonempty("XDG_DATA_HOME");
	env.home = nonempty("HOME");
	return &env;
}

int espl_cli_no_color(void)
{
	return nonempty("NO_COLOR") != NULL;  /* https://no-color.org */
}

const char *espl_cli_http_token_env(void)
{
	return nonempty("ESPLINE_HTTP_TOKEN");
}

int espl_cli_columns(void)
{
	const char *v = nonempty("COLUMNS");
	long n = v ? strtol(v, NULL, 10) : 0;
	return n >= 20 && n <= 1000 ? (int)n : 0;
}

int espl_cli_central_backoff_max_ms(void)
{
	const char *v = nonempty("ESPLINE_CENTRAL_BACKOFF_MAX_MS");
	long ms = v ? strtol(v, NULL, 10) : 0;
	return ms > 0 && ms <= 3600000 ? (int)ms : 0;
}
