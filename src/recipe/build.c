/* build.c - a recipe from a device command's arguments (espline write,
 * verify, erase, read, info), so that they run through the runner like any
 * recipe; see include/espline/recipe.h (espl_recipe_build). */
#include "espline/recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espline/stub.h"
#include "recipe/recipe_int.h"
#include "recipe/yaml.h"
#include "util/file.h"

/* A recipe has no file here: no position (line 0) makes every message
 * positionless (yaml.c), and names the file argument instead. */
static const espl_recipe_pos nowhere = { 0, 0 };

static espl_step *add_step(espl_recipe *r, enum espl_step_kind kind)
{
	espl_step *s = &r->steps[r->n_steps++];
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->number = (unsigned)r->n_steps;
	s->pos = nowhere;
	espl__recipe_step_defaults(s);
	return s;
}

static int by_address(const void *x, const void *y)
{
	const espl_job_file *a = x, *b = y;
	return a->address < b->address ? -1 : a->address > b->address;
}

/* The file argument read (bounded) and hashed, as prepare does for a
 * recipe's files. */
static int read_file(parse_ctx *c, const espl_job_file *f, espl_step *s)
{
	espl_recipe_file *rf = &s->write.file;
	espl_error e;
	char *data;
	size_t len;

	if (!(rf->path = strdup(f->path))) {
		espl__yaml_error(&c->y, nowhere, "out of memory");
		return -1;
	}
	if (espl__file_read(f->path, ESP8266_MAX_FLASH, "image", &data, &len, &e) < 0) {
		espl__yaml_error(&c->y, nowhere, "%s", e.msg);
		return -1;
	}
	rf->data = (uint8_t *)data;
	rf->size = (uint32_t)len;
	if (espl__recipe_sha256_hex(rf->data, rf->size, rf->sha256) < 0) {
		espl__yaml_error(&c->y, nowhere, "%s: SHA-256 failed (OpenSSL)", f->path);
		return -1;
	}
	return 0;
}

static void add_file_step(parse_ctx *c, const espl_recipe_job *job, const espl_job_file *f)
{
	espl_step *s = add_step(c->r, ESPL_STEP_WRITE);
	s->write.address = f->address;
	s->write.address_pos = nowhere;
	s->write.compress = job->compress;
	s->write.check_only = job->kind == ESPL_JOB_VERIFY;
	if (read_file(c, f, s) < 0)
		return;
	if (f->address % 4)
		espl__yaml_error(&c->y, nowhere, "%s at 0x%X: the address must be a multiple of 4", f->path, f->address);
	else if (f->address % ESPL_RECIPE_SECTOR && !s->write.check_only)
		espl__yaml_warn(&c->y, nowhere, "%s starts at 0x%X, inside a 4 KiB sector: the bytes from 0x%X up to it will be erased",
		                f->path, f->address, f->address & ~(ESPL_RECIPE_SECTOR - 1));
}

/* A verify writes nothing, so the sector rule does not apply; two files
 * that claim the same bytes are still a mistake. */
static void check_no_overlap(parse_ctx *c, const espl_recipe *r)
{
	for (size_t i = 1; i < r->n_steps; i++) {
		const espl_step *a = &r->steps[i - 1], *b = &r->steps[i];
		if (a->kind != ESPL_STEP_WRITE || b->kind != ESPL_STEP_WRITE)
			continue;
		uint64_t a_end = (uint64_t)a->write.address + a->write.file.size;
		if (a_end > b->write.address)
			espl__yaml_error(&c->y, nowhere, "%s (0x%X..0x%llX) overlaps %s at 0x%X", a->write.file.path,
			                 a->write.address, (unsigned long long)a_end - 1, b->write.file.path, b->write.address);
	}
}

static void add_erase(parse_ctx *c, const espl_recipe_job *job)
{
	espl_step *s = add_step(c->r, ESPL_STEP_ERASE);
	if (job->length == 0) {
		s->erase.chip = true;
		return;
	}
	if (job->address % ESPL_RECIPE_SECTOR || job->length % ESPL_RECIPE_SECTOR) {
		espl__yaml_error(&c->y, nowhere, "region 0x%X+0x%X: address and length must be non-zero multiples of 4096 (0x1000)",
		                 job->address, job->length);
		return;
	}
	if (!(s->erase.regions = calloc(1, sizeof *s->erase.regions))) {
		espl__yaml_error(&c->y, nowhere, "out of memory");
		return;
	}
	s->erase.regions[0] = (espl_region){ job->address, job->length, nowhere };
	s->erase.n_regions = 1;
}

static void set_connect(espl_recipe *r, const espl_recipe_job *job, espl_error *err)
{
	espl_recipe_connect *cn = &r->connect;
	cn->reset = job->reset_none ? ESPL_CONNECT_RESET_NONE : ESPL_CONNECT_RESET_AUTO;
	if (job->flash_baud)
		cn->flash_baud = job->flash_baud;
	if (job->baud) {
		cn->baud = job->baud;
		cn->baud_default = false;
	} else if (job->no_stub) { /* the ROM alone: no faster rate to try first */
		cn->baud = ESPL_DEFAULT_BAUD;
		cn->baud_default = false;
	}
	if (job->no_stub) {
		cn->stub = ESPL_STUB_NONE;
	} else if (job->stub) {
		cn->stub = espl_stub_is_generation(job->stub) ? ESPL_STUB_GENERATION : ESPL_STUB_FILE;
		if (!(cn->stub_path = strdup(job->stub)))
			espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
}

static void set_flash(espl_recipe *r, const espl_flash_params *p)
{
	r->flash.mode = p->mode;
	r->flash.freq = p->freq;
	if (p->size == ESPL_PARAM_KEEP) {
		r->flash.size_mode = ESPL_FLASH_SIZE_KEEP;
	} else if (p->size == ESPL_PARAM_DETECT) {
		r->flash.size_mode = ESPL_FLASH_SIZE_DETECT;
	} else {
		r->flash.size_mode = ESPL_FLASH_SIZE_FIXED;
		r->flash.size = espl__recipe_header_code_to_size((uint8_t)(p->size >> 4));
	}
}

static void add_steps(parse_ctx *c, const espl_recipe_job *job, espl_job_file *sorted)
{
	espl_recipe *r = c->r;
	switch (job->kind) {
	case ESPL_JOB_INFO:
		break;
	case ESPL_JOB_WRITE:
	case ESPL_JOB_VERIFY:
		for (size_t i = 0; i < job->n_files; i++)
			add_file_step(c, job, &sorted[i]);
		if (job->kind == ESPL_JOB_VERIFY)
			check_no_overlap(c, r);
		else if (job->verify)
			add_step(r, ESPL_STEP_VERIFY)->verify.all = true;
		else
			r->verify_optional = true;
		break;
	case ESPL_JOB_ERASE:
		add_erase(c, job);
		break;
	case ESPL_JOB_READ: {
		espl_step *s = add_step(r, ESPL_STEP_READ);
		s->read.address = job->address;
		s->read.length = job->length;
		break;
	}
	}
	add_step(r, ESPL_STEP_RESET)->reset.run = job->run_after;
}

static espl_recipe *new_recipe(const espl_recipe_job *job)
{
	espl_recipe *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	espl__recipe_set_defaults(r);
	r->name = strdup(job->name);
	r->path = strdup(job->name);
	r->dir = strdup(".");
	r->text = strdup("");
	r->steps = calloc(job->n_files + 3, sizeof *r->steps);
	r->built = r->prepared = true;
	if (!r->name || !r->path || !r->dir || !r->text || !r->steps ||
	    espl__recipe_sha256_hex(r->text, 0, r->sha256) < 0) {
		espl_recipe_free(r);
		return NULL;
	}
	return r;
}

int espl_recipe_build(const espl_recipe_job *job, espl_recipe_diag_fn diag_fn, void *diag_ctx,
                      espl_recipe **out, espl_error *err)
{
	espl_error setup = { 0, "" };
	espl_recipe *r;
	espl_job_file *sorted = NULL;

	*out = NULL;
	if (job->n_files > ESPL_RECIPE_MAX_LIST)
		return espl_fail(err, ESPL_EARG, "at most %d files", ESPL_RECIPE_MAX_LIST);
	if (!(r = new_recipe(job)) ||
	    (job->n_files && !(sorted = malloc(job->n_files * sizeof *sorted)))) {
		espl_recipe_free(r);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	if (job->n_files) {
		memcpy(sorted, job->files, job->n_files * sizeof *sorted);
		qsort(sorted, job->n_files, sizeof *sorted, by_address);
	}
	parse_ctx c = espl__recipe_ctx(r->path, r, diag_fn, diag_ctx, err);
	set_connect(r, job, &setup);
	set_flash(r, &job->params);
	add_steps(&c, job, sorted);
	free(sorted);
	if (c.y.errors == 0 && setup.code == ESPL_OK) {
		espl__recipe_fill_default_timeouts(r);
		espl__recipe_check_layout(&c, r, 0, ESP8266_MAX_FLASH, "the largest the ESP8266 can address");
	}
	if (c.y.errors || setup.code) {
		if (setup.code)
			espl_fail(err, setup.code, "%s", setup.msg);
		espl_recipe_free(r);
		return setup.code ? setup.code : ESPL_ERECIPE;
	}
	*out = r;
	return ESPL_OK;
}
