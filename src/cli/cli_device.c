/* cli_device.c - single-device commands: ports, info, erase, read, and
 * what write and verify share.  Parses arguments, builds a one-unit job
 * (espl_recipe_build) and runs it through the runner, prints progress and
 * results, picks exit codes. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_device.h"
#include "espline/esp8266.h"
#include "espline/flashmap.h"
#include "espline/image.h"
#include "espline/loader.h"
#include "espline/port.h"
#include "espline/reset.h"
#include "espline/stub.h"

/* ---- output ------------------------------------------------------------- */

static void on_log(void *ctx, int level, const char *msg)
{
	progress_view *v = ctx;
	if (level == ESPL_LOG_DEBUG && !v->verbose)
		return;
	if (level < ESPL_LOG_WARN && v->quiet)
		return;
	fprintf(stderr, "%s%s%s\n", v->tty ? "\r\033[K" : "", level == ESPL_LOG_WARN ? "warning: " : "",
		espl_cli_shown(msg));
}

static void draw_bar(const espl_progress *p)
{
	int width = 30, fill = p->total ? (int)(width * (double)p->done / (double)p->total) : 0;
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r\033[K%-6s 0x%08X [%s] %3d%% %7.1f KB/s", p->step, p->address, bar,
		p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 0, p->rate / 1024.0);
	if (p->total && p->done >= p->total)
		fprintf(stderr, " %.1f s\n", p->elapsed_s);
	fflush(stderr);
}

static void on_progress(void *ctx, const espl_progress *p)
{
	progress_view *v = ctx;
	if (v->quiet)
		return;
	if (v->tty) {
		draw_bar(p);
		return;
	}
	/* Plain lines for logs and pipes: start, each 10 %, end. */
	if (p->done == 0 || v->last_step != p->step || v->last_addr != p->address) {
		v->last_step = p->step;
		v->last_addr = p->address;
		v->last_decile = -1;
	}
	int decile = p->total ? (int)(10 * (double)p->done / (double)p->total) : 0;
	if (decile == v->last_decile && !(p->total && p->done == p->total))
		return;
	if (p->total && p->done == p->total && v->last_decile == 10)
		return;
	v->last_decile = p->total && p->done == p->total ? 10 : decile;
	fprintf(stderr, "%s 0x%08X: %zu/%zu bytes (%d%%), %.1f KB/s, %.1f s\n", p->step, p->address,
		p->done, p->total, p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 0,
		p->rate / 1024.0, p->elapsed_s);
}

int espl__cli_fail(const dev_args *a, const espl_error *err)
{
	fprintf(stderr, "espline %s: error: %s\n", a->cmd, espl_cli_shown(err->msg));
	return espl_cli_exit_for(err->code);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "espline %s: ", cmd);
	fprintf(stderr, fmt, espl_cli_shown(arg));  /* arg may be what the user typed */
	fprintf(stderr, " (espline %s --help)\n", cmd);
	return ESPL_EXIT_USAGE;
}

/* ---- argument parsing --------------------------------------------------- */

const char espl__cli_common_help[] =
	"connection options:\n"
	"  --baud N          rate for reset and sync (default: the --flash-baud rate,\n"
	"                    falling back to " ESPL__STR(ESPL_DEFAULT_BAUD) " within 0.2 s if the ROM is deaf there)\n"
	"  --flash-baud N    rate once the flasher stub runs (default "
	ESPL__STR(ESPL_DEFAULT_FLASH_BAUD) "; falls back\n"
	"                    to --baud if the adapter or cable cannot do it)\n"
	"  --reset auto|none auto: DTR/RTS auto-reset circuit (default); none: the jig\n"
	"                    holds GPIO0 low and resets the chip itself\n"
	"  --after run|stay  after the command: reset into the firmware (default) or\n"
	"                    leave the chip in the loader\n"
	"  --stub STUB       flasher stub JSON file, or legacy / esp-flasher-stub for that\n"
	"                    generation (default: $ESPLINE_STUB, the copy made by\n"
	"                    scripts/install-deps.sh, then an installed esptool/esptool-js)\n"
	"  --no-stub         talk to the ROM loader only (slow; no erase/verify/read)\n"
	"  -v, --verbose     debug log     -q, --quiet  no progress\n"
	"  --db PATH         erase, write, verify: where the command is recorded (the\n"
	"                    MAC, the regions, the result; default $ESPLINE_DB, else\n"
	"                    db/espline.sqlite); `espline history MAC` shows it\n"
	"  --no-record       erase, write, verify: do not record the command\n"
	"\nPORT: /dev/ttyUSB0, /dev/pts/N, a glob or usb:VID:PID matching exactly one\n"
	"adapter, rfc2217://HOST:PORT or socket://HOST:PORT.\n"
	"exit codes: 0 ok, 1 check failed (verify mismatch, wrong chip, image too big),\n"
	"2 usage, 3 device/port error.\n";

enum opt_id {
	OPT_BAUD = 1000, OPT_FLASH_BAUD, OPT_RESET, OPT_AFTER, OPT_STUB, OPT_NO_STUB, OPT_NO_COMPRESS,
	OPT_VERIFY, OPT_MODE, OPT_SIZE, OPT_FREQ, OPT_REGION, OPT_DB, OPT_NO_RECORD, OPT_HELP,
};

static const struct option long_opts[] = {
	{ "baud", required_argument, NULL, OPT_BAUD },
	{ "flash-baud", required_argument, NULL, OPT_FLASH_BAUD },
	{ "reset", required_argument, NULL, OPT_RESET },
	{ "after", required_argument, NULL, OPT_AFTER },
	{ "stub", required_argument, NULL, OPT_STUB },
	{ "no-stub", no_argument, NULL, OPT_NO_STUB },
	{ "no-compress", no_argument, NULL, OPT_NO_COMPRESS },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "flash-mode", required_argument, NULL, OPT_MODE },
	{ "flash-size", required_argument, NULL, OPT_SIZE },
	{ "flash-freq", required_argument, NULL, OPT_FREQ },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "db", required_argument, NULL, OPT_DB },
	{ "no-record", no_argument, NULL, OPT_NO_RECORD },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_baud(const char *cmd, const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || v < ESPL_BAUD_MIN || v > ESPL_BAUD_MAX)
		return usage_error(cmd, "bad baud rate '%s' (" ESPL__STR(ESPL_BAUD_MIN) " to "
				   ESPL__STR(ESPL_BAUD_MAX) ")", s);
	*out = (unsigned)v;
	return 0;
}

int espl__cli_parse_u32(const char *cmd, const char *what, const char *s, uint32_t *out)
{
	size_t v;
	espl_error err;
	if (espl_size_parse(s, &v, &err) < 0 || v > 0xFFFFFFFFu) {
		fprintf(stderr, "espline %s: bad %s '%s' (decimal, 0x hex, or e.g. 4MB)\n", cmd, what, espl_cli_shown(s));
		return ESPL_EXIT_USAGE;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Apply one option; returns 0 or an exit code. */
static int apply_opt(dev_args *a, int c, const char *arg)
{
	espl_error err;
	int rc = 0;
	enum espl_reset_mode reset;
	switch (c) {
	case OPT_BAUD: return parse_baud(a->cmd, arg, &a->job.baud);
	case OPT_FLASH_BAUD: return parse_baud(a->cmd, arg, &a->job.flash_baud);
	case OPT_RESET:
		rc = espl_reset_mode_parse(arg, &reset, &err);
		a->job.reset_none = reset == ESPL_RESET_NONE;
		break;
	case OPT_AFTER:
		if (strcmp(arg, "run") == 0 || strcmp(arg, "hard_reset") == 0)
			a->job.run_after = true;
		else if (strcmp(arg, "stay") == 0 || strcmp(arg, "no_reset") == 0)
			a->job.run_after = false;
		else
			return usage_error(a->cmd, "--after takes run or stay, not '%s'", arg);
		return 0;
	case OPT_STUB: a->job.stub = arg; return 0;
	case OPT_NO_STUB: a->job.no_stub = true; return 0;
	case OPT_NO_COMPRESS: a->job.compress = false; return 0;
	case OPT_VERIFY: a->job.verify = true; return 0;
	case OPT_MODE: rc = espl_flash_mode_parse(arg, &a->job.params.mode, &err); break;
	case OPT_SIZE: rc = espl_flash_size_parse(arg, &a->job.params.size, &err); break;
	case OPT_FREQ: rc = espl_flash_freq_parse(arg, &a->job.params.freq, &err); break;
	case OPT_REGION: a->region = 1; a->region_addr = arg; return 0;
	case OPT_DB: a->db = arg; return 0;
	case OPT_NO_RECORD: a->no_record = 1; return 0;
	case 'v': a->verbose = 1; return 0;
	case 'q': a->quiet = 1; return 0;
	default: return ESPL_EXIT_USAGE;
	}
	if (rc < 0) {
		fprintf(stderr, "espline %s: %s\n", a->cmd, espl_cli_shown(err.msg));
		return ESPL_EXIT_USAGE;
	}
	return 0;
}

/* Returns -1 to go on, or an exit code (help printed, or a usage error). */
int espl__cli_parse_args(dev_args *a, int argc, char **argv, const char *allowed, const char *help)
{
	memset(a, 0, sizeof *a);
	a->cmd = argv[0];
	snprintf(a->name, sizeof a->name, "espline %s", a->cmd);
	a->job.name = a->name;
	a->job.compress = true;
	a->job.run_after = true;
	espl_flash_params_keep(&a->job.params);
	optind = 1;
	opterr = 0;
	for (;;) {
		int idx = 0;
		int c = getopt_long(argc, argv, "+vqh", long_opts, &idx);
		if (c == -1) {
			/* permute by hand: options may follow positional arguments */
			if (optind < argc && argv[optind][0] != '-') {
				a->pos = realloc(a->pos, sizeof *a->pos * (size_t)(a->npos + 1));
				a->pos[a->npos++] = argv[optind++];
				continue;
			}
			if (optind < argc && strcmp(argv[optind], "--") == 0) {
				for (optind++; optind < argc; optind++) {
					a->pos = realloc(a->pos, sizeof *a->pos * (size_t)(a->npos + 1));
					a->pos[a->npos++] = argv[optind];
				}
			}
			break;
		}
		if (c == OPT_HELP || c == 'h') {
			fputs(help, stdout);
			return ESPL_EXIT_OK;
		}
		if (c == '?' || c == ':')
			return usage_error(a->cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
		if (c >= OPT_BAUD && !strchr(allowed, 'A' + (c - OPT_BAUD)))
			return usage_error(a->cmd, "option '%s' does not apply here", argv[optind - 1]);
		int rc = apply_opt(a, c, optarg);
		if (rc)
			return rc;
	}
	return -1;
}

int espl__cli_device_command(int argc, char **argv, const char *allowed, const char *help_head,
                             int (*body)(dev_args *a))
{
	char help[4096];
	dev_args a;
	snprintf(help, sizeof help, "%s%s", help_head, espl__cli_common_help);
	int rc = espl__cli_parse_args(&a, argc, argv, allowed, help);
	if (rc < 0)
		rc = body(&a);
	free(a.pos);
	return rc;
}

/* ---- running a job ------------------------------------------------------ */

/* A glob or usb:VID:PID must name exactly one adapter here. */
static int resolve_port(const char *cmd, const char *spec, char *out, size_t cap)
{
	espl_port_info *list = NULL;
	espl_error err;
	int n;

	if (!strchr(spec, '*') && !strchr(spec, '?') && strncmp(spec, "usb:", 4) != 0) {
		snprintf(out, cap, "%s", spec);
		return 0;
	}
	n = espl_port_list(spec, &list, &err);
	if (n < 0) {
		fprintf(stderr, "espline %s: error: %s\n", cmd, espl_cli_shown(err.msg));
		return espl_cli_exit_for(n);
	}
	if (n != 1) {
		fprintf(stderr, "espline %s: '%s' matches %d ports; this command programs one "
			"(use `espline run` for many):\n", cmd, espl_cli_shown(spec), n);
		for (int i = 0; i < n; i++)
			fprintf(stderr, "  %s\n", espl_cli_shown(list[i].path));
		free(list);
		return ESPL_EXIT_USAGE;
	}
	snprintf(out, cap, "%s", list[0].path);
	free(list);
	return 0;
}

/* A diagnostic of the built recipe: it has no file, so no line:col. */
static void print_diag(void *ctx, const espl_recipe_diag *d)
{
	(void)ctx;
	fprintf(stderr, "%s: %s%s\n", d->warning ? "warning" : espl_cli_shown(d->file),
	        d->warning ? "" : "error: ", espl_cli_shown(d->message));
}

/* No stub found: the message may be cut short, so list every place
 * looked.  A setup fault (exit 4), not an unreachable device. */
static int no_stub(const dev_args *a, const espl_error *err)
{
	char *paths[64];
	size_t n = espl_stub_candidates(a->job.stub, espl_cli_stub_env(), paths, 64);
	(void)espl__cli_fail(a, err);
	fprintf(stderr, "stub locations tried:\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "  %s\n", espl_cli_shown(paths[i]));
		free(paths[i]);
	}
	return ESPL_EXIT_STATION;
}

int espl__cli_plan(dev_args *a, espl_dev_job *j)
{
	espl_error err = { 0, "" };
	memset(&j->res, 0, sizeof j->res);
	j->recipe = NULL;
	j->plan = NULL;
	int rc = espl_recipe_build(&a->job, print_diag, NULL, &j->recipe, &err);
	if (rc == ESPL_ERECIPE)
		return ESPL_EXIT_USAGE;  /* print_diag said why */
	if (rc < 0)
		return espl__cli_fail(a, &err);
	rc = espl_plan_new(j->recipe, espl_cli_stub_env(), &j->plan, &err);
	if (rc == ESPL_ENOTFOUND && strstr(err.msg, "stub"))
		return no_stub(a, &err);
	return rc < 0 ? espl__cli_fail(a, &err) : 0;
}

/* The chip, as soon as the runner identified it. */
static void on_identified(void *ctx, const espl_unit_result *u)
{
	const progress_view *v = ctx;
	char size[16];
	const espl_chip_info *chip = &u->chip;
	if (v->quiet)
		return;
	fprintf(stderr, "%s, MAC %s, flash %s (%s), %s at %u baud\n", chip->chip, chip->mac_str,
		chip->flash_size ? espl_size_name(chip->flash_size, size, sizeof size) : "unknown",
		chip->flash_vendor, u->flash_baud ? "stub" : "ROM", u->flash_baud ? u->flash_baud : u->rom_baud);
}

typedef struct prep_arg {
	const espl_plan *plan;
} prep_arg;

static void *prepare_images(void *arg)
{
	espl_plan_prepare_images(((prep_arg *)arg)->plan);
	return NULL;
}

/* The runner's exit code for the command: a check that failed (a layout
 * that does not fit, an MD5 that differs, a wrong chip) is 1, a link or
 * device error 3, as espl_cli_exit_for says for the error's code. */
static int exit_for_unit(const espl_unit_result *res)
{
	if (res->pass)
		return ESPL_EXIT_OK;
	if (res->failed_phase == ESPL_PHASE_LAYOUT || res->failed_phase == ESPL_PHASE_VERIFY)
		return ESPL_EXIT_FAIL;
	return espl_cli_exit_for(res->first_error.code);
}

int espl__cli_run(dev_args *a, espl_dev_job *j)
{
	progress_view v = { 0 };
	espl_runner_options o;
	char path[256];
	pthread_t prep;
	prep_arg pa = { j->plan };

	int rc = resolve_port(a->cmd, a->pos[0], path, sizeof path);
	if (rc)
		return rc;
	v.tty = isatty(STDERR_FILENO);
	v.quiet = a->quiet;
	v.verbose = a->verbose;
	espl_runner_options_init(&o);
	o.loader_events = (espl_loader_events){ .ctx = &v, .log = on_log, .progress = on_progress };
	o.events.ctx = &v;
	o.events.identified = on_identified;
	if (!a->quiet)
		fprintf(stderr, "connecting to %s...\n", espl_cli_shown(path));
	/* Deflate and hash the images while the chip is being connected (the
	 * stub upload alone takes a second). */
	int threaded = pthread_create(&prep, NULL, prepare_images, &pa) == 0;
	(void)espl_runner_run(j->plan, path, &o, &j->res);
	if (threaded)
		pthread_join(prep, NULL);
	rc = exit_for_unit(&j->res);
	if (rc)
		(void)espl__cli_fail(a, &j->res.first_error);
	return rc;
}

void espl__cli_job_free(espl_dev_job *j)
{
	espl_unit_result_clear(&j->res);
	espl_plan_free(j->plan);
	espl_recipe_free(j->recipe);
}

/* ---- ports -------------------------------------------------------------- */

static const char ports_help[] =
	"usage: espline ports [SPEC]\n\n"
	"List serial adapters (path, USB VID:PID, serial number, description).\n"
	"SPEC narrows the list: a glob (/dev/ttyUSB*) or usb:VID[:PID].\n";

static int cmd_ports(int argc, char **argv)
{
	dev_args a;
	espl_port_info *list = NULL;
	espl_error err;
	int rc = espl__cli_parse_args(&a, argc, argv, "", ports_help);
	if (rc >= 0)
		return rc;
	if (a.npos > 1) {
		free(a.pos);
		return usage_error("ports", "takes at most one SPEC%s", "");
	}
	int n = espl_port_list(a.npos ? a.pos[0] : NULL, &list, &err);
	free(a.pos);
	if (n < 0)
		return espl__cli_fail(&a, &err);
	if (n == 0)
		fprintf(stderr, "no serial ports found\n");
	else
		printf("%-28s %-9s %-20s %s\n", "PORT", "VID:PID", "SERIAL", "DESCRIPTION");
	for (int i = 0; i < n; i++) {
		char id[16] = "-";
		if (list[i].vid || list[i].pid)
			snprintf(id, sizeof id, "%04x:%04x", list[i].vid, list[i].pid);
		/* a USB device names its own serial number and description */
		printf("%-28s %-9s %-20s %s\n", espl_cli_shown(list[i].path), id,
		       list[i].serial[0] ? espl_cli_shown(list[i].serial) : "-",
		       list[i].description[0] ? espl_cli_shown(list[i].description) : "-");
	}
	free(list);
	return ESPL_EXIT_OK;
}

/* ---- info --------------------------------------------------------------- */

static const char info_help_head[] =
	"usage: espline info PORT [options]\n\n"
	"Connect and print what the module is: chip, MAC, chip id, crystal, flash JEDEC\n"
	"id, vendor and size, and where the SDK's init data goes for that size.\n\n";

static void print_info(const char *port, const espl_unit_result *res)
{
	const espl_chip_info *chip = &res->chip;
	espl_flashmap map;
	espl_error err;
	char size[16];
	printf("port:        %s\n", espl_cli_shown(port));
	printf("chip:        %s\n", chip->chip);
	printf("mac:         %s\n", chip->mac_str);
	printf("chip id:     0x%06x\n", chip->chip_id);
	printf("crystal:     %u MHz (estimated %.1f)\n", chip->xtal_mhz, chip->xtal_estimate_mhz);
	printf("flash id:    0x%06X (manufacturer 0x%02X %s, device 0x%02X%02X)\n", chip->flash_id,
	       chip->flash_manufacturer, chip->flash_vendor, chip->flash_type, chip->flash_capacity);
	printf("flash size:  %s\n", chip->flash_size ? espl_size_name(chip->flash_size, size, sizeof size)
						       : "unknown");
	if (chip->flash_size && espl_flashmap_for_size(chip->flash_size, &map, &err) == 0)
		printf("init data:   0x%06X (RF cal 0x%06X, blank 0x%06X)\n", map.init_data, map.rf_cal,
		       map.blank);
	printf("loader:      %s at %u baud\n", res->flash_baud ? "stub" : "ROM",
	       res->flash_baud ? res->flash_baud : res->rom_baud);
}

static int run_info(dev_args *a)
{
	espl_dev_job j;
	if (a->npos != 1)
		return usage_error("info", "needs exactly one PORT%s", "");
	a->job.kind = ESPL_JOB_INFO;
	int rc = espl__cli_plan(a, &j);
	if (rc == 0)
		rc = espl__cli_run(a, &j);
	if (rc == 0)
		print_info(a->pos[0], &j.res);
	espl__cli_job_free(&j);
	return rc;
}

static int cmd_info(int argc, char **argv)
{
	return espl__cli_device_command(argc, argv, CONN_OPTS, info_help_head, run_info);
}

/* ---- erase -------------------------------------------------------------- */

static const char erase_help_head[] =
	"usage: espline erase PORT [--region ADDR LEN] [options]\n\n"
	"Erase the whole flash, or LEN bytes from ADDR (both multiples of 4096).\n\n";

static int run_erase(dev_args *a)
{
	espl_dev_job j;
	int rc;
	if (a->npos != (a->region ? 2 : 1))
		return usage_error("erase", a->region ? "needs PORT and --region ADDR LEN%s"
						      : "needs exactly one PORT%s", "");
	a->job.kind = ESPL_JOB_ERASE;
	if (a->region && ((rc = espl__cli_parse_u32("erase", "address", a->region_addr, &a->job.address)) ||
			  (rc = espl__cli_parse_u32("erase", "length", a->pos[1], &a->job.length))))
		return rc;
	if (a->region && a->job.length == 0) {
		fprintf(stderr, "espline erase: --region 0x%X 0x0: the length must be a non-zero multiple of 4096 (0x1000)\n",
			a->job.address);
		return ESPL_EXIT_USAGE;
	}
	rc = espl__cli_plan(a, &j);
	if (rc == 0) {
		rc = espl__cli_run(a, &j);
		if (rc == ESPL_EXIT_OK && !a->quiet)
			fprintf(stderr, "erase done\n");
		rc = espl__cli_record(a, &j, rc);
	}
	espl__cli_job_free(&j);
	return rc;
}

static int cmd_erase(int argc, char **argv)
{
	return espl__cli_device_command(argc, argv, CONN_OPTS "L" RECORD_OPTS, erase_help_head, run_erase);
}

/* ---- read --------------------------------------------------------------- */

static const char read_help_head[] =
	"usage: espline read PORT [options] ADDR LEN OUT\n\n"
	"Read LEN bytes of flash from ADDR into the file OUT (LEN may be e.g. 4MB).\n\n";

/* The runner read into memory; write OUT now (a failed read leaves no
 * file). */
static int save_read(const dev_args *a, const espl_dev_job *j)
{
	const espl_step_result *sr = &j->res.steps[0];
	const char *out = a->pos[3];
	FILE *f = fopen(out, "wb");
	if (!f || fwrite(sr->data, 1, a->job.length, f) != a->job.length || fclose(f) != 0) {
		fprintf(stderr, "espline read: cannot write %s: %s\n", espl_cli_shown(out), strerror(errno));
		return ESPL_EXIT_STATION;
	}
	if (!a->quiet)
		fprintf(stderr, "read %u bytes from 0x%X into %s\n", a->job.length, a->job.address, espl_cli_shown(out));
	return ESPL_EXIT_OK;
}

static int run_read(dev_args *a)
{
	espl_dev_job j;
	int rc;
	if (a->npos != 4)
		return usage_error("read", "needs PORT ADDR LEN OUT%s", "");
	a->job.kind = ESPL_JOB_READ;
	if ((rc = espl__cli_parse_u32("read", "address", a->pos[1], &a->job.address)) ||
	    (rc = espl__cli_parse_u32("read", "length", a->pos[2], &a->job.length)))
		return rc;
	rc = espl__cli_plan(a, &j);
	if (rc == 0)
		rc = espl__cli_run(a, &j);
	if (rc == 0)
		rc = save_read(a, &j);
	espl__cli_job_free(&j);
	return rc;
}

static int cmd_read(int argc, char **argv)
{
	return espl__cli_device_command(argc, argv, CONN_OPTS, read_help_head, run_read);
}

const espl_cli_command espl_cmd_ports = { "ports", "list serial adapters", cmd_ports };
const espl_cli_command espl_cmd_info = { "info", "identify the module on a port", cmd_info };
const espl_cli_command espl_cmd_erase = { "erase", "erase the flash, or a region", cmd_erase };
const espl_cli_command espl_cmd_read = { "read", "read flash into a file", cmd_read };
