/* boot_step.c - after the flash is written: the screening checks and the
 * first boot; see src/job/runner_int.h and include/espline/boot.h. */
#include "espline/runner.h"
#include "job/runner_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espline/boot.h"
#include "espline/fixture.h"
#include "espline/flash.h"
#include "espline/reset.h"

/* ------------------------------------------------------------------ */
/* screening: expect.flash_capacity and expect.crystal_mhz               */

/* Append a line to the step's detail text. */
void espl__runner_add_detail(espl_step_result *sr, const char *line)
{
	size_t had = sr->detail ? strlen(sr->detail) : 0, add = strlen(line);
	char *grown = realloc(sr->detail, had + add + 2);
	if (!grown)
		return; /* the finding is also in the log; the record goes without it */
	memcpy(grown + had, line, add);
	grown[had + add] = '\n';
	grown[had + add + 1] = '\0';
	sr->detail = grown;
}

/* A NOR part ignores the address bits above its die: a fake "4MB" part
 * with a 1 MB die shows the image at 0x0 again at 0x100000, 0x200000...
 * Hash the image's length at each alias size/2, size/4, ... that lies
 * past the image; the smallest that matches is the real size. */
static int check_capacity(unit *u, espl_step_result *sr, espl_error *err)
{
	const espl_recipe_expect *e = &u->r->expect;
	const espl_written_region *img = NULL;
	uint32_t size = (uint32_t)u->res->chip.flash_size, real = 0;
	char line[256], a[16], b[16];
	size_t used = 0;

	for (size_t i = 0; i < u->res->n_regions && !img; i++)
		if (u->res->regions[i].address == 0)
			img = &u->res->regions[i];
	if (!img && u->res->n_regions)
		img = &u->res->regions[0];
	if (!img || !size)
		return espl_fail(err, ESPL_EPART, "expect.flash_capacity (line %u): nothing was written at a known flash size, so the capacity cannot be checked",
		                 e->capacity_pos.line);
	used = (size_t)snprintf(line, sizeof line, "flash_capacity: %s at 0x%X (MD5 %.8s...) compared at +", img->what,
	                        img->address, img->expected_md5);
	for (uint32_t k = size / 2; k >= img->address + img->length && k >= ESPL_RECIPE_SECTOR; k /= 2) {
		uint8_t md5[16];
		char hex[33];
		ESPL_TRY(espl_flash_md5(u->l, img->address + k, img->length, md5, err));
		espl_md5_hex(md5, hex);
		if (used < sizeof line)
			used += (size_t)snprintf(line + used, sizeof line - used, "0x%X%s ", k,
			                         strcmp(hex, img->expected_md5) == 0 ? "=same" : "");
		if (strcmp(hex, img->expected_md5) == 0)
			real = k;
	}
	if (real) {
		espl__runner_add_detail(sr, line);
		return espl_fail(err, ESPL_EPART, "expect.flash_capacity (line %u): fake flash capacity: the JEDEC id claims %s but the image at 0x%X reads back again at 0x%X: the part wraps there; real size %s",
		                 e->capacity_pos.line, espl_recipe_format_size(size, a, sizeof a), img->address,
		                 img->address + real, espl_recipe_format_size(real, b, sizeof b));
	}
	snprintf(line + (used < sizeof line ? used : sizeof line - 1), sizeof line - (used < sizeof line ? used : sizeof line - 1),
	         ": no alias, %s verified", espl_recipe_format_size(size, a, sizeof a));
	espl__runner_add_detail(sr, line);
	return ESPL_OK;
}

/* The crystal was checked before writing (check_expect); say what was
 * found, and what the init data written says. */
static void note_crystal(unit *u, espl_step_result *sr)
{
	char line[160];
	int byte48 = -1;
	for (size_t i = 0; i < u->r->n_steps; i++) {
		const espl_step *s = &u->r->steps[i];
		if (s->kind == ESPL_STEP_WRITE_INIT_DATA && s->init_data.file.size > ESPL_INIT_DATA_CRYSTAL_BYTE)
			byte48 = s->init_data.file.data[ESPL_INIT_DATA_CRYSTAL_BYTE];
	}
	snprintf(line, sizeof line, "crystal_mhz: %u MHz expected, %u MHz detected; init data byte %d = %d",
	         u->r->expect.crystal_mhz, u->res->chip.xtal_mhz, ESPL_INIT_DATA_CRYSTAL_BYTE, byte48);
	espl__runner_add_detail(sr, line);
}

int espl__runner_screen(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	if (index != u->plan->last_verify)
		return ESPL_OK;
	if (u->r->expect.crystal_mhz)
		note_crystal(u, sr);
	if (u->r->expect.flash_capacity)
		return check_capacity(u, sr, err);
	return ESPL_OK;
}

/* ------------------------------------------------------------------ */
/* boot_check                                                           */

static int restart_by_lines(void *ctx, espl_port *p, espl_error *err)
{
	(void)ctx;
	return espl_reset_to_app(p, err);
}

static int restart_by_fixture(void *ctx, espl_port *p, espl_error *err)
{
	const espl_recipe_fixture *f = ctx;
	(void)p;
	return espl_fixture_run(f->run, f->n_run, "run", ESPL_FIXTURE_TIMEOUT_MS, err);
}

int espl__runner_boot_check(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	espl_boot_config cfg = {
		.rules = u->plan->boot_rules[index],
		.rom_baud = espl_boot_rom_baud(u->res->chip.xtal_mhz),
		.fw_baud = s->boot.baud,
		.timeout_ms = s->timeout_ms,
		.settle_ms = s->boot.settle_ms,
	};
	espl_boot_capture cap;

	if (u->r->connect.reset == ESPL_CONNECT_RESET_FIXTURE) {
		cfg.restart = restart_by_fixture;
		cfg.restart_ctx = (void *)&u->r->connect.fixture;
	} else {
		cfg.restart = restart_by_lines;
	}
	int rc = espl_boot_check(espl_loader_port(u->l), &cfg, &cap, err);
	free(sr->detail);
	sr->detail = cap.text;
	sr->bytes = cap.raw_bytes;
	espl_loader_log(u->l, rc == ESPL_OK ? ESPL_LOG_INFO : ESPL_LOG_WARN,
	                "boot_check: %s after %.2f s (restart %.2f s, %zu bytes at %u/%u baud)",
	                espl_boot_verdict_name(cap.j.verdict), cap.boot_s, cap.restart_s, cap.raw_bytes,
	                cfg.rom_baud, cfg.fw_baud);
	return rc;
}
