/* runner.c - run a recipe on one unit; see include/espline/runner.h. */
#include "espline/runner.h"
#include "job/runner_int.h"
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "espline/flash.h"
#include "espline/image.h"
#include "espline/fixture.h"
#include "espline/reset.h"
#include "espline/stub.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

void espl__runner_md5_hex_of(const uint8_t *data, size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_md5(), NULL) || n != 16) {
		out[0] = '\0';
		return;
	}
	espl_md5_hex(md, out);
}

const char *espl__runner_base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

const char *espl_step_status_name(enum espl_step_status s)
{
	switch (s) {
	case ESPL_STEP_PASSED: return "passed";
	case ESPL_STEP_FAILED: return "failed";
	default: return "not run";
	}
}

/* ------------------------------------------------------------------ */
/* before the steps: expect and layout                                   */

static bool in_list(const uint8_t *list, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == v)
			return true;
	return false;
}

static int check_expect(const espl_recipe *r, const espl_chip_info *chip, espl_error *err)
{
	const espl_recipe_expect *e = &r->expect;
	char a[16], b[16], list[256];
	size_t used = 0;

	if (e->flash_size_min && chip->flash_size == 0)
		return espl_fail(err, ESPL_EPART, "expect.flash_size_min (line %u): the flash size is unknown (JEDEC id 0x%06X); at least %s is required",
		                 e->pos.line, chip->flash_id, espl_recipe_format_size(e->flash_size_min, a, sizeof a));
	if (e->flash_size_min && chip->flash_size < e->flash_size_min)
		return espl_fail(err, ESPL_EPART, "expect.flash_size_min (line %u): the unit has %s of flash, the recipe needs at least %s",
		                 e->pos.line, espl_recipe_format_size((uint32_t)chip->flash_size, a, sizeof a),
		                 espl_recipe_format_size(e->flash_size_min, b, sizeof b));
	if (e->n_manufacturers && !in_list(e->manufacturers, e->n_manufacturers, chip->flash_manufacturer)) {
		list[0] = '\0';
		for (size_t i = 0; i < e->n_manufacturers; i++) {
			const char *name = espl_flash_manufacturer_name(e->manufacturers[i]);
			used += (size_t)snprintf(list + used, sizeof list - used, "%s0x%02X (%s)", i ? ", " : "",
			                         e->manufacturers[i], name ? name : "unknown");
			if (used >= sizeof list)
				break;
		}
		const char *got = espl_flash_manufacturer_name(chip->flash_manufacturer);
		return espl_fail(err, ESPL_EPART, "expect.flash_manufacturer (line %u): flash manufacturer 0x%02X (%s) is not one of %s",
		                 e->pos.line, chip->flash_manufacturer, got ? got : "unknown", list);
	}
	if (e->crystal_mhz && chip->xtal_mhz != e->crystal_mhz)
		return espl_fail(err, ESPL_EPART, "expect.crystal_mhz (line %u): the unit has a %u MHz crystal; the recipe's init data is for %u MHz (byte %d of esp_init_data: 0 = 40 MHz, 1 = 26 MHz)",
		                 e->crystal_pos.line, chip->xtal_mhz, e->crystal_mhz, ESPL_INIT_DATA_CRYSTAL_BYTE);
	if (e->n_ouis) {
		for (size_t i = 0; i < e->n_ouis; i++)
			if (memcmp(e->ouis[i], chip->mac, 3) == 0)
				return ESPL_OK;
		list[0] = '\0';
		for (size_t i = 0; i < e->n_ouis && used + 12 < sizeof list; i++)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%02X:%02X:%02X", i ? ", " : "",
			                         e->ouis[i][0], e->ouis[i][1], e->ouis[i][2]);
		return espl_fail(err, ESPL_EPART, "expect.mac_oui (line %u): MAC %s has OUI %02X:%02X:%02X, not one of %s",
		                 e->pos.line, chip->mac_str, chip->mac[0], chip->mac[1], chip->mac[2], list);
	}
	return ESPL_OK;
}

static int place_system_area(unit *u, espl_error *err)
{
	uint32_t sys;
	uint32_t chip_size = (uint32_t)u->res->chip.flash_size;
	ESPL_TRY(espl_recipe_system_flash_size(u->r, chip_size, &sys, err));
	ESPL_TRY(espl_recipe_check_layout(u->r, sys, chip_size, err));
	for (size_t k = 0; k < N_SYS_SIZES; k++)
		if (sys_size_at(k) == sys) {
			u->sys_index = k;
			u->res->system_flash_size = sys;
			return espl_system_area_for(sys, &u->area, err);
		}
	return espl_fail(err, ESPL_ECHIP, "no init-data layout for a %u-byte flash", sys);
}

/* ------------------------------------------------------------------ */
/* the unit                                                             */

void espl_runner_options_init(espl_runner_options *o)
{
	memset(o, 0, sizeof *o);
}

const char *espl_phase_name(enum espl_phase phase)
{
	switch (phase) {
	case ESPL_PHASE_NONE: break;
	case ESPL_PHASE_CONNECT: return "connect";
	case ESPL_PHASE_IDENTIFY: return "identify";
	case ESPL_PHASE_EXPECT: return "expect";
	case ESPL_PHASE_LAYOUT: return "layout";
	case ESPL_PHASE_IDENTITY: return "identity";
	case ESPL_PHASE_UNIT_DATA: return "unit data";
	case ESPL_PHASE_BARCODE: return "barcode";
	case ESPL_PHASE_ROUTE_CHECK: return "route_check";
	case ESPL_PHASE_STEP: return "step";
	case ESPL_PHASE_VERIFY: return "verify";
	case ESPL_PHASE_STOPPED: return "stopped";
	}
	return NULL;
}

static void fail_phase(espl_unit_result *res, enum espl_phase phase, const espl_error *e)
{
	if (res->failed_phase != ESPL_PHASE_NONE)
		return;
	/* the stop flag ended it (before a step, or inside the loader) */
	if (e->code == ESPL_EINTERRUPTED)
		phase = ESPL_PHASE_STOPPED;
	res->failed_phase = phase;
	if (phase == ESPL_PHASE_STEP) /* the message starts "step N (...)" */
		espl_fail(&res->first_error, e->code, "%s", e->msg);
	else
		espl_fail(&res->first_error, e->code, "%s: %s", espl_phase_name(phase), e->msg);
}

static int init_result(const espl_plan *p, const char *port_name, espl_unit_result *res)
{
	memset(res, 0, sizeof *res);
	snprintf(res->port, sizeof res->port, "%s", port_name ? port_name : "");
	res->recipe_name = p->r->name;
	res->recipe_sha256 = p->r->sha256;
	res->started_unix_ms = espl__wall_ms();
	res->steps = calloc(p->r->n_steps, sizeof *res->steps);
	if (!res->steps)
		return espl_fail(&res->first_error, ESPL_ENOMEM, "out of memory");
	res->n_steps = p->r->n_steps;
	for (size_t i = 0; i < p->r->n_steps; i++)
		res->steps[i].step = &p->r->steps[i];
	return ESPL_OK;
}

/* The recipe's connect settings and the runner's options (a start rate
 * that worked on this adapter before, the connect budget); the device
 * layer turns them into loader options. */
static void loader_options(const espl_plan *p, const espl_runner_options *o, espl_loader_options *lo)
{
	const espl_recipe *r = p->r;
	espl_connect_settings cs = {
		.reset = r->connect.reset == ESPL_CONNECT_RESET_AUTO ? ESPL_RESET_AUTO : ESPL_RESET_NONE,
		.rom_baud = o->rom_baud ? o->rom_baud : espl_recipe_rom_baud(r),
		.flash_baud = r->connect.flash_baud,
		.lower_bauds = r->connect.lower_bauds,
		.n_lower_bauds = r->connect.n_lower_bauds,
		.flash_baud_start = o->flash_baud_start,
		.no_stub = r->connect.stub == ESPL_STUB_NONE,
		.stub = p->have_stub ? &p->stub : NULL,
		.connect_attempts = o->connect_attempts,
		.connect_timeout_ms = o->connect_timeout_ms,
		.events = o->loader_events,
		.cancel = o->stop,
	};
	espl_loader_options_for(&cs, lo);
}

/* Identify; after a link error get back in touch with the chip (re-sync,
 * or reset and connect again) and identify once more.  Answers such as a
 * wrong chip are not retried. */
static int identify_with_retry(unit *u, espl_error *err)
{
	int rc = espl_esp8266_identify(u->l, &u->res->chip, err);
	if (rc >= 0 || !espl__runner_retryable(rc) || espl__runner_stopped(u))
		return rc;
	espl_loader_log(u->l, ESPL_LOG_WARN, "identify failed (%s); connecting again", err->msg);
	if (espl_loader_reconnect(u->l, err) < 0) {
		espl_error_prefix(err, "connecting again after a failed identify");
		return err->code;
	}
	return espl_esp8266_identify(u->l, &u->res->chip, err);
}

/* A failed step's error for the unit: the recipe's step and line; for a
 * built recipe (a device command's) the error alone, which names what was
 * done and where ("writing app.bin at 0x1000: ...", "erasing 0x..",
 * "verify failed for app.bin at 0x1000"): "step 1 (write)" would name a
 * step the command line never wrote. */
static void describe_step_failure(const espl_step_result *sr, espl_error *e)
{
	const espl_step *s = sr->step;
	char tries[32] = "";
	if (s->pos.line) {
		if (sr->attempts > 1)
			snprintf(tries, sizeof tries, ", after %u attempts", sr->attempts);
		espl_fail(e, sr->error.code, "step %u (%s, line %u)%s: %s", s->number,
		          espl_step_kind_name(s->kind), s->pos.line, tries, sr->error.msg);
		return;
	}
	if (sr->attempts > 1)
		snprintf(tries, sizeof tries, " (after %u attempts)", sr->attempts);
	espl_fail(e, sr->error.code, "%s%s", sr->error.msg, tries);
}

/* Everything after connect; the loader is open. */
static void run_unit(unit *u)
{
	espl_unit_result *res = u->res;
	espl_error e;

	if (identify_with_retry(u, &e) < 0) {
		fail_phase(res, ESPL_PHASE_IDENTIFY, &e);
		return;
	}
	res->identified = true;
	if (u->o->events.identified)
		u->o->events.identified(u->o->events.ctx, res);
	if (check_expect(u->r, &res->chip, &e) < 0) {
		fail_phase(res, ESPL_PHASE_EXPECT, &e);
		return;
	}
	if (place_system_area(u, &e) < 0) {
		fail_phase(res, ESPL_PHASE_LAYOUT, &e);
		return;
	}
	if (espl__runner_identity(u, &e) < 0) {
		fail_phase(res, res->reserved ? ESPL_PHASE_UNIT_DATA : ESPL_PHASE_IDENTITY, &e);
		return;
	}
	enum espl_phase phase = ESPL_PHASE_BARCODE;
	if (u->o->events.admit && u->o->events.admit(u->o->events.ctx, res, &phase, &e) < 0) {
		fail_phase(res, phase, &e);
		return;
	}
	for (size_t i = 0; i < res->n_steps; i++) {
		if (espl__runner_stopped(u)) {
			espl_fail(&e, ESPL_EINTERRUPTED, "stopped before step %zu", i + 1);
			fail_phase(res, ESPL_PHASE_STOPPED, &e);
			return;
		}
		if (espl__runner_run_step(u, i) < 0) {
			describe_step_failure(&res->steps[i], &e);
			fail_phase(res, ESPL_PHASE_STEP, &e);
			return;
		}
	}
}

static int finish(espl_unit_result *res, bool verify_optional, double started)
{
	bool all_passed = true;
	res->duration_s = espl__now_s() - started - res->operator_wait_s;
	if (res->duration_s < 0)
		res->duration_s = 0;
	for (size_t i = 0; i < res->n_steps; i++)
		all_passed &= res->steps[i].status == ESPL_STEP_PASSED;
	for (size_t i = 0; i < res->n_regions && res->failed_phase == ESPL_PHASE_NONE; i++)
		if (!res->regions[i].verified && !verify_optional) {
			espl_error e;
			espl_fail(&e, ESPL_EMISMATCH, "%s at 0x%X written by step %u was never verified",
			          res->regions[i].what, res->regions[i].address, res->regions[i].step);
			fail_phase(res, ESPL_PHASE_VERIFY, &e);
		}
	res->pass = all_passed && res->failed_phase == ESPL_PHASE_NONE && res->identified;
	if (!res->pass && res->failed_phase == ESPL_PHASE_NONE) {
		espl_error e;
		espl_fail(&e, ESPL_EARG, "not every step passed");
		fail_phase(res, ESPL_PHASE_STEP, &e);
	}
	return res->pass ? ESPL_OK : (res->first_error.code ? res->first_error.code : ESPL_EMISMATCH);
}

int espl_runner_run_port(const espl_plan *p, espl_port *port, const espl_runner_options *o,
                         espl_unit_result *res)
{
	espl_runner_options defaults;
	espl_loader_options lo;
	espl_error e;
	double started = espl__now_s();
	unit *u;

	if (!o) {
		espl_runner_options_init(&defaults);
		o = &defaults;
	}
	if (init_result(p, port ? port->name : NULL, res) < 0) {
		espl_port_close(port);
		return res->first_error.code;
	}
	u = calloc(1, sizeof *u);
	if (!u) {
		espl_port_close(port);
		espl_fail(&e, ESPL_ENOMEM, "out of memory");
		fail_phase(res, ESPL_PHASE_CONNECT, &e);
		return finish(res, p->r->verify_optional, started);
	}
	u->plan = p;
	u->r = p->r;
	u->o = o;
	u->res = res;
	loader_options(p, o, &lo);
	if (p->r->connect.reset == ESPL_CONNECT_RESET_FIXTURE &&
	    espl_fixture_run(p->r->connect.fixture.download, p->r->connect.fixture.n_download, "download",
	                     ESPL_FIXTURE_TIMEOUT_MS, &e) < 0) {
		espl_port_close(port);
		fail_phase(res, ESPL_PHASE_CONNECT, &e);
	} else if (espl_loader_connect(port, &lo, &u->l, &e) < 0) {
		fail_phase(res, ESPL_PHASE_CONNECT, &e);
	} else {
		res->connected = true;
		res->connect_s = espl__now_s() - started;
		res->rom_baud = espl_loader_rom_baud(u->l);
		res->flash_baud = espl_loader_flash_baud(u->l);
		run_unit(u);
		res->flash_baud = espl_loader_flash_baud(u->l);
		espl__runner_free_unit_data(u);
		espl_loader_close(u->l);
	}
	free(u);
	return finish(res, p->r->verify_optional, started);
}

int espl_runner_run(const espl_plan *p, const char *port_spec, const espl_runner_options *o,
                    espl_unit_result *res)
{
	espl_port *port;
	espl_error e;
	double started = espl__now_s();
	unsigned baud = o->rom_baud ? o->rom_baud : espl_recipe_rom_baud(p->r);

	if (espl_port_open(port_spec, baud, &port, &e) < 0) {
		if (init_result(p, port_spec, res) == ESPL_OK) {
			fail_phase(res, ESPL_PHASE_CONNECT, &e);
			res->port_fault = true;
		}
		return finish(res, p->r->verify_optional, started);
	}
	int rc = espl_runner_run_port(p, port, o, res);
	snprintf(res->port, sizeof res->port, "%s", port_spec);
	return rc;
}

void espl_unit_result_clear(espl_unit_result *res)
{
	for (size_t i = 0; res->steps && i < res->n_steps; i++) {
		free(res->steps[i].detail);
		free(res->steps[i].data);
	}
	free(res->steps);
	res->steps = NULL;
	res->n_steps = 0;
}
