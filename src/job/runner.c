/* runner.c - run a recipe on one unit; see include/espline/runner.h. */
#include "espline/runner.h"
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "espline/flash.h"
#include "espline/image.h"
#include "espline/reset.h"
#include "espline/stub.h"

/* System-area sizes the init data can be placed for: 256KB .. 16MB. */
#define N_SYS_SIZES 7
#define MAX_OPS 256
/* skip_unchanged hashes a differing image in chunks of this size and writes
 * only the chunks that differ.  Measured (1 MB image, one sector changed,
 * simulator at real speed): 4/8/16/32/64/256 KiB took 2.13/1.83/1.78/2.05/
 * 1.93/3.58 s at 921600 baud and 4 KiB 4.64, 16 KiB 4.25, 64 KiB 6.76 s at
 * 115200: smaller chunks cost a round trip each, bigger ones rewrite more. */
#define SKIP_CHUNK (16u * 1024u)

static uint32_t sys_size_at(size_t i) { return (256u << 10) << i; }

struct espl_plan {
	const espl_recipe *r;
	espl_stub stub;
	bool have_stub;
	espl_image_source **write_src;             /* per step; NULL unless write */
	espl_image *(*init_img)[N_SYS_SIZES];      /* per step; NULL unless write_init_data */
	char blank_md5[33];                        /* of one sector of 0xFF */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void md5_hex_of(const uint8_t *data, size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(data, len, md, &n, EVP_md5(), NULL) || n != 16) {
		out[0] = '\0';
		return;
	}
	espl_md5_hex(md, out);
}

static const char *base_name(const char *path)
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
/* plan                                                                 */

static void flash_params(const espl_recipe *r, espl_flash_params *p)
{
	p->mode = r->flash.mode;
	p->freq = r->flash.freq;
	switch (r->flash.size_mode) {
	case ESPL_FLASH_SIZE_DETECT: p->size = ESPL_PARAM_DETECT; break;
	case ESPL_FLASH_SIZE_KEEP: p->size = ESPL_PARAM_KEEP; break;
	default: p->size = espl_flash_size_code(r->flash.size); break;
	}
}

static int plan_error(const espl_recipe *r, espl_recipe_pos pos, espl_error *err)
{
	espl_error_prefix(err, "%s:%u:%u: error", r->path, pos.line, pos.column);
	return err->code ? err->code : ESPL_ERECIPE;
}

static int plan_init_data(espl_plan *p, size_t i, espl_error *err)
{
	const espl_step *s = &p->r->steps[i];
	espl_flash_params keep;
	espl_flash_params_keep(&keep);
	for (size_t k = 0; k < N_SYS_SIZES; k++) {
		espl_system_area a;
		ESPL_TRY(espl_system_area_for(sys_size_at(k), &a, err));
		if (espl_image_prepare(s->init_data.file.data, s->init_data.file.size, a.init_data, &keep, 0,
		                       base_name(s->init_data.file.path), &p->init_img[i][k], err) < 0)
			return plan_error(p->r, s->init_data.file.pos, err);
	}
	return ESPL_OK;
}

int espl_plan_new(const espl_recipe *r, espl_plan **out, espl_error *err)
{
	espl_plan *p;
	espl_flash_params params;
	uint8_t blank[ESPL_RECIPE_SECTOR];

	*out = NULL;
	if (!r->prepared)
		return espl_fail(err, ESPL_EARG, "recipe %s was not prepared (espl_recipe_prepare)", r->path);
	p = calloc(1, sizeof *p);
	if (!p)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	p->r = r;
	p->write_src = calloc(r->n_steps, sizeof *p->write_src);
	p->init_img = calloc(r->n_steps, sizeof *p->init_img);
	if (!p->write_src || !p->init_img) {
		espl_plan_free(p);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	memset(blank, 0xFF, sizeof blank);
	md5_hex_of(blank, sizeof blank, p->blank_md5);
	flash_params(r, &params);
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		int rc = ESPL_OK;
		if (s->kind == ESPL_STEP_WRITE &&
		    espl_image_source_new(s->write.file.data, s->write.file.size, base_name(s->write.file.path),
		                          s->write.address, &params, &p->write_src[i], err) < 0)
			rc = plan_error(r, s->write.file.pos, err);
		else if (s->kind == ESPL_STEP_WRITE_INIT_DATA)
			rc = plan_init_data(p, i, err);
		if (rc < 0) {
			espl_plan_free(p);
			return rc;
		}
	}
	int rc = espl_stub_find(r->connect.stub == ESPL_STUB_FILE ? r->connect.stub_path : NULL, &p->stub, err);
	if (rc < 0) {
		espl_plan_free(p);
		return rc;
	}
	p->have_stub = true;
	*out = p;
	return ESPL_OK;
}

void espl_plan_free(espl_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->r && i < p->r->n_steps; i++) {
		if (p->write_src)
			espl_image_source_free(p->write_src[i]);
		for (size_t k = 0; p->init_img && k < N_SYS_SIZES; k++)
			espl_image_free(p->init_img[i][k]);
	}
	free(p->write_src);
	free(p->init_img);
	if (p->have_stub)
		espl_stub_free(&p->stub);
	free(p);
}

const espl_recipe *espl_plan_recipe(const espl_plan *p)
{
	return p->r;
}

/* ------------------------------------------------------------------ */
/* one unit                                                             */

/* What the flash got, in order, to know the expected bytes of any region. */
typedef struct flash_op {
	enum { OP_ERASE_ALL, OP_ERASE, OP_WRITE } kind;
	uint32_t address, length;
	const uint8_t *data;       /* OP_WRITE; NULL = all 0xFF */
} flash_op;

typedef struct unit {
	const espl_plan *plan;
	const espl_recipe *r;
	const espl_runner_options *o;
	espl_loader *l;
	espl_unit_result *res;
	espl_system_area area;
	size_t sys_index;
	flash_op ops[MAX_OPS];
	size_t n_ops;
	bool ops_incomplete;       /* an op was dropped or a failed attempt may have written */
	/* skip_unchanged confirmed region i's MD5 on the chip when ops[0..n)
	 * were done (n = confirmed_at[i]; 0 = not confirmed): verify need not
	 * hash it again unless a later op touches it. */
	size_t confirmed_at[ESPL_UNIT_MAX_REGIONS];
	double attempt_started;
	const espl_step *step;
} unit;

static void add_op(unit *u, int kind, uint32_t address, uint32_t length, const uint8_t *data)
{
	if (u->n_ops < MAX_OPS)
		u->ops[u->n_ops++] = (flash_op){ kind, address, length, data };
	else
		u->ops_incomplete = true;
}

static int add_region(unit *u, uint32_t address, uint32_t length, const char *what,
                      const char *md5, bool skipped, espl_error *err)
{
	espl_unit_result *res = u->res;
	if (res->n_regions == ESPL_UNIT_MAX_REGIONS)
		return espl_fail(err, ESPL_EARG, "more than %d written regions in one unit", ESPL_UNIT_MAX_REGIONS);
	u->confirmed_at[res->n_regions] = 0;
	espl_written_region *w = &res->regions[res->n_regions++];
	memset(w, 0, sizeof *w);
	w->address = address;
	w->length = length;
	w->step = u->step->number;
	snprintf(w->what, sizeof w->what, "%s", what);
	snprintf(w->expected_md5, sizeof w->expected_md5, "%s", md5);
	w->skipped = skipped;
	return ESPL_OK;
}

/* The loader runs each operation to its own protocol timeout; the step's
 * budget is checked between operations. */
/* A default write timeout allows for the wire time at the recipe's
 * flash_baud.  When the link runs slower (--flash-baud, or the loader fell
 * back to a lower rate) allow for the wire time at the real rate instead,
 * or a write that went fine "times out" and is sent again (seen: 1 MB at
 * --flash-baud 115200 "took 62.2 s, more than the step's timeout of 54 s"). */
static double step_budget_ms(const unit *u)
{
	const espl_step *s = u->step;
	unsigned planned = u->r->connect.timeouts_baud, actual = espl_loader_baud(u->l);
	double ms = s->timeout_ms;
	uint64_t bytes = s->kind == ESPL_STEP_WRITE ? s->write.file.size
	               : s->kind == ESPL_STEP_WRITE_INIT_DATA ? s->init_data.file.size + ESPL_RECIPE_SECTOR : 0;
	if (s->timeout_default && bytes && actual && planned && actual < planned)
		ms += (double)bytes * 10 * 1000 / actual - (double)bytes * 10 * 1000 / planned;
	return ms;
}

static int within_timeout(unit *u, espl_error *err)
{
	double spent = espl__now_s() - u->attempt_started, budget = step_budget_ms(u);
	if (spent * 1000.0 <= budget)
		return ESPL_OK;
	return espl_fail(err, ESPL_ETIMEOUT, "took %.1f s, more than the step's timeout of %.1f s (raise `timeout:` in the recipe if this part is slow)",
	                 spent, budget / 1000.0);
}

static int stopped(const unit *u)
{
	return u->o->stop && *u->o->stop;
}

static int do_erase(unit *u, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	if (s->erase.chip) {
		ESPL_TRY(espl_flash_erase_chip(u->l, err));
		add_op(u, OP_ERASE_ALL, 0, 0, NULL);
		sr->bytes += u->res->chip.flash_size;
		return within_timeout(u, err);
	}
	for (size_t k = 0; k < s->erase.n_regions; k++) {
		const espl_region *g = &s->erase.regions[k];
		ESPL_TRY(espl_flash_erase_region(u->l, g->address, g->length, err));
		add_op(u, OP_ERASE, g->address, g->length, NULL);
		sr->bytes += g->length;
		ESPL_TRY(within_timeout(u, err));
	}
	return ESPL_OK;
}

/* skip_unchanged: is the image already on the chip? */
static int already_there(unit *u, const espl_image *img, espl_step_result *sr, bool *same,
                         uint8_t md5[16], espl_error *err)
{
	ESPL_TRY(espl_flash_md5(u->l, img->address, (uint32_t)img->size, md5, err));
	espl_md5_hex(md5, sr->actual_md5);
	*same = memcmp(md5, img->md5, 16) == 0;
	if (*same)
		sr->bytes_skipped += img->size;
	return ESPL_OK;
}

/* skip_unchanged found the image differs: write only the chunks that do
 * (compressed writes only; a plain write sends it all). */
static int write_changed(unit *u, const espl_image *img, bool compress, const uint8_t chip[16],
                         espl_step_result *sr, espl_error *err)
{
	size_t written = 0;
	if (!compress) {
		ESPL_TRY(espl_flash_write(u->l, img, 0, err));
		sr->bytes += img->size;
		return ESPL_OK;
	}
	ESPL_TRY(espl_flash_write_changed(u->l, img, chip, SKIP_CHUNK, &written, err));
	sr->bytes += written;
	sr->bytes_skipped += img->size - written;
	return ESPL_OK;
}

static int write_image(unit *u, const espl_image *img, bool compress, bool skip_unchanged,
                       const char *what, espl_step_result *sr, espl_error *err)
{
	bool same = false;
	uint8_t chip[16];
	sr->md5_address = img->address;
	sr->md5_length = (uint32_t)img->size;
	snprintf(sr->expected_md5, sizeof sr->expected_md5, "%s", img->md5_hex);
	/* A retry resumes: what the failed attempt wrote right stays, so each
	 * attempt gets further on a line that keeps losing bytes. */
	bool resume = !skip_unchanged && sr->attempts > 1;
	if (skip_unchanged || resume) {
		ESPL_TRY(already_there(u, img, sr, &same, chip, err));
		if (!same)
			ESPL_TRY(write_changed(u, img, compress, chip, sr, err));
		else if (skip_unchanged)
			espl_loader_log(u->l, ESPL_LOG_INFO, "%s at 0x%06X is already on the chip (MD5 %s): not written",
			                what, img->address, img->md5_hex);
		if (resume) { /* the step still counts as written, not skipped */
			sr->bytes = img->size;
			sr->bytes_skipped = 0;
			same = false;
		}
	} else {
		ESPL_TRY(espl_flash_write(u->l, img, compress ? ESPL_WRITE_COMPRESS : 0, err));
		sr->bytes += img->size;
	}
	sr->skipped = same;
	add_op(u, OP_WRITE, img->address, (uint32_t)img->size, img->data);
	ESPL_TRY(add_region(u, img->address, (uint32_t)img->size, what, img->md5_hex, same, err));
	if (same)
		u->confirmed_at[u->res->n_regions - 1] = u->n_ops;
	return within_timeout(u, err);
}

static int do_write(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	const espl_image *img;
	ESPL_TRY(espl_image_source_get(u->plan->write_src[index], u->res->chip.flash_size, &img, err));
	return write_image(u, img, s->write.compress, s->write.skip_unchanged,
	                   base_name(s->write.file.path), sr, err);
}

static int do_init_data(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	const espl_image *img = u->plan->init_img[index][u->sys_index];
	char what[64];

	if (s->init_data.rf_cal == ESPL_RF_CAL_ERASE) {
		ESPL_TRY(espl_flash_erase_region(u->l, u->area.rf_cal, ESPL_RECIPE_SECTOR, err));
		add_op(u, OP_ERASE, u->area.rf_cal, ESPL_RECIPE_SECTOR, NULL);
		sr->bytes += ESPL_RECIPE_SECTOR;
	}
	snprintf(what, sizeof what, "init data %s", base_name(s->init_data.file.path));
	ESPL_TRY(write_image(u, img, true, false, what, sr, err));
	if (s->init_data.blank) {
		/* erasing gives exactly blank.bin's bytes without sending them */
		ESPL_TRY(espl_flash_erase_region(u->l, u->area.blank, ESPL_RECIPE_SECTOR, err));
		add_op(u, OP_ERASE, u->area.blank, ESPL_RECIPE_SECTOR, NULL);
		ESPL_TRY(add_region(u, u->area.blank, ESPL_RECIPE_SECTOR, "blank system-param sector",
		                    u->plan->blank_md5, false, err));
		sr->bytes += ESPL_RECIPE_SECTOR;
	}
	return within_timeout(u, err);
}

/* Expected bytes of [address, address+length) from the operations so far. */
static int expected_bytes(const unit *u, uint32_t address, uint32_t length, uint8_t *buf,
                          espl_error *err)
{
	uint8_t *known = calloc(length, 1);
	if (!known)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	for (size_t i = 0; i < u->n_ops; i++) {
		const flash_op *op = &u->ops[i];
		uint64_t start = op->kind == OP_ERASE_ALL ? 0 : op->address;
		uint64_t end = op->kind == OP_ERASE_ALL ? UINT64_MAX : (uint64_t)op->address + op->length;
		uint64_t lo = start > address ? start : address;
		uint64_t hi = end < (uint64_t)address + length ? end : (uint64_t)address + length;
		for (uint64_t a = lo; a < hi; a++) {
			buf[a - address] = op->kind == OP_WRITE && op->data ? op->data[a - op->address] : 0xFF;
			known[a - address] = 1;
		}
	}
	int all = memchr(known, 0, length) == NULL;
	free(known);
	if (!all)
		return espl_fail(err, ESPL_EARG, "region 0x%X..0x%X holds bytes no step wrote or erased; their MD5 cannot be known",
		                 address, address + length - 1);
	return ESPL_OK;
}

static int check_md5(unit *u, uint32_t address, uint32_t length, const char *expected, const char *what,
                     espl_step_result *sr, espl_error *err)
{
	uint8_t md5[16];
	sr->md5_address = address;
	sr->md5_length = length;
	snprintf(sr->expected_md5, sizeof sr->expected_md5, "%s", expected);
	sr->actual_md5[0] = '\0';
	ESPL_TRY(espl_flash_md5(u->l, address, length, md5, err));
	espl_md5_hex(md5, sr->actual_md5);
	if (strcmp(sr->actual_md5, expected) != 0) {
		/* The reply carries no checksum: a garbled byte looks like a
		 * mismatch.  Ask once more; only an answer equal to the expected
		 * hash (which no garbling produces) turns it into a pass. */
		ESPL_TRY(espl_flash_md5(u->l, address, length, md5, err));
		espl_md5_hex(md5, sr->actual_md5);
	}
	sr->bytes += length;
	if (strcmp(sr->actual_md5, expected) == 0)
		return ESPL_OK;
	uint8_t *ff = malloc(length);
	char blank[33] = "";
	if (ff) {
		memset(ff, 0xFF, length);
		md5_hex_of(ff, length, blank);
		free(ff);
	}
	return espl_fail(err, ESPL_EMISMATCH, "%s at 0x%X (%u bytes): the chip's MD5 is %s, expected %s%s",
	                 what, address, length, sr->actual_md5, expected,
	                 strcmp(blank, sr->actual_md5) == 0 ? " (blank flash, all 0xFF: nothing was written)" : "");
}

/* Did skip_unchanged already see region i's MD5 on the chip, with nothing
 * written or erased over it since?  Then hashing it again proves nothing
 * new (the chip computed the same MD5 of the same bytes). */
static bool still_confirmed(const unit *u, size_t i)
{
	const espl_written_region *w = &u->res->regions[i];
	if (!u->confirmed_at[i] || u->ops_incomplete)
		return false;
	for (size_t k = u->confirmed_at[i]; k < u->n_ops; k++) {
		const flash_op *op = &u->ops[k];
		if (op->kind == OP_ERASE_ALL || ((uint64_t)op->address < (uint64_t)w->address + w->length &&
		                                 (uint64_t)w->address < (uint64_t)op->address + op->length))
			return false;
	}
	return true;
}

static int verify_written(unit *u, espl_step_result *sr, espl_error *err)
{
	for (size_t i = 0; i < u->res->n_regions; i++) {
		espl_written_region *w = &u->res->regions[i];
		if (still_confirmed(u, i)) {
			memcpy(w->actual_md5, w->expected_md5, sizeof w->actual_md5);
			sr->md5_address = w->address;
			sr->md5_length = w->length;
			memcpy(sr->expected_md5, w->expected_md5, sizeof sr->expected_md5);
			memcpy(sr->actual_md5, w->expected_md5, sizeof sr->actual_md5);
			w->verified = true;
			espl_loader_log(u->l, ESPL_LOG_DEBUG, "%s at 0x%X: MD5 matched in step %u (skip_unchanged) "
			                "and nothing touched it since; not hashed again", w->what, w->address, w->step);
			continue;
		}
		int rc = check_md5(u, w->address, w->length, w->expected_md5, w->what, sr, err);
		snprintf(w->actual_md5, sizeof w->actual_md5, "%s", sr->actual_md5);
		if (rc < 0)
			return rc;
		w->verified = true;
		ESPL_TRY(within_timeout(u, err));
	}
	return ESPL_OK;
}

static int verify_regions(unit *u, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	for (size_t k = 0; k < s->verify.n_regions; k++) {
		const espl_region *g = &s->verify.regions[k];
		uint8_t *buf = malloc(g->length);
		char expected[33], what[48];
		if (!buf)
			return espl_fail(err, ESPL_ENOMEM, "out of memory");
		int rc = expected_bytes(u, g->address, g->length, buf, err);
		if (rc == ESPL_OK)
			md5_hex_of(buf, g->length, expected);
		free(buf);
		ESPL_TRY(rc);
		snprintf(what, sizeof what, "verify region %zu", k + 1);
		ESPL_TRY(check_md5(u, g->address, g->length, expected, what, sr, err));
		for (size_t i = 0; i < u->res->n_regions; i++) {
			espl_written_region *w = &u->res->regions[i];
			if (g->address <= w->address && (uint64_t)w->address + w->length <= (uint64_t)g->address + g->length)
				w->verified = true;
		}
		ESPL_TRY(within_timeout(u, err));
	}
	return ESPL_OK;
}

static int do_reset(unit *u, espl_error *err)
{
	if (!u->step->reset.run) {
		espl_loader_log(u->l, ESPL_LOG_INFO, "reset: stay (the unit stays in the bootloader)");
		return ESPL_OK;
	}
	return espl_loader_hard_reset(u->l, err);
}

static int do_step(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	switch (u->step->kind) {
	case ESPL_STEP_ERASE: return do_erase(u, sr, err);
	case ESPL_STEP_WRITE: return do_write(u, index, sr, err);
	case ESPL_STEP_WRITE_INIT_DATA: return do_init_data(u, index, sr, err);
	case ESPL_STEP_VERIFY:
		return u->step->verify.all ? verify_written(u, sr, err) : verify_regions(u, sr, err);
	case ESPL_STEP_RESET: return do_reset(u, err);
	}
	return espl_fail(err, ESPL_EARG, "unknown step kind %d", (int)u->step->kind);
}

/* Link failures may go away on a second try; answers do not. */
static bool retryable(int code)
{
	return code == ESPL_ETIMEOUT || code == ESPL_EPROTO || code == ESPL_EDEVICE;
}

static void reset_step_result(espl_step_result *sr)
{
	sr->bytes = sr->bytes_skipped = 0;
	sr->skipped = false;
	sr->md5_address = sr->md5_length = 0;
	sr->expected_md5[0] = sr->actual_md5[0] = '\0';
}

/* Before a retry: get back in step with the chip.  When it had to be
 * connected from the start (it had reset, and the stub was gone), identify
 * it again: that also gives the new stub the flash parameters, and makes
 * sure the module answering is still the one being programmed. */
static int back_in_touch(unit *u, espl_error *err)
{
	unsigned connects = espl_loader_connects(u->l);
	espl_chip_info again;

	ESPL_TRY(espl_loader_reconnect(u->l, err));
	if (espl_loader_connects(u->l) == connects)
		return ESPL_OK;
	espl_loader_log(u->l, ESPL_LOG_WARN, "the chip had reset (the stub was gone): connected again");
	ESPL_TRY(espl_esp8266_identify(u->l, &again, err));
	if (memcmp(again.mac, u->res->chip.mac, sizeof again.mac) != 0)
		return espl_fail(err, ESPL_ECHIP, "after a reset another module answered (MAC %s): "
				 "was the unit swapped mid-way?", again.mac_str);
	return ESPL_OK;
}

static int run_step(unit *u, size_t index)
{
	espl_step_result *sr = &u->res->steps[index];
	double started = espl__now_s();
	int rc = ESPL_OK;

	u->step = sr->step;
	if (u->o->events.step_start)
		u->o->events.step_start(u->o->events.ctx, sr);
	for (unsigned attempt = 0;; attempt++) {
		size_t regions_before = u->res->n_regions, ops_before = u->n_ops;
		sr->attempts = attempt + 1;
		reset_step_result(sr);
		espl_error_clear(&sr->error);
		u->attempt_started = espl__now_s();
		rc = do_step(u, index, sr, &sr->error);
		if (rc == ESPL_OK || !retryable(rc) || attempt >= sr->step->retries || stopped(u))
			break;
		espl_loader_log(u->l, ESPL_LOG_WARN, "step %u (%s) attempt %u failed: %s; retrying",
		                sr->step->number, espl_step_kind_name(sr->step->kind), attempt + 1, sr->error.msg);
		/* forget what the failed attempt did, and get back in step with the stub */
		u->res->n_regions = regions_before;
		u->n_ops = ops_before;
		u->ops_incomplete = true; /* the failed attempt may have written anywhere */
		espl_error e;
		int touch = back_in_touch(u, &e);
		if (touch < 0) {
			char failed[ESPL_ERROR_MAX];
			snprintf(failed, sizeof failed, "%s", sr->error.msg);
			rc = espl_fail(&sr->error, touch, "%s; then connecting again failed: %s", failed,
				       e.msg);
			break;
		}
	}
	sr->status = rc == ESPL_OK ? ESPL_STEP_PASSED : ESPL_STEP_FAILED;
	sr->duration_s = espl__now_s() - started;
	if (u->o->events.step_done)
		u->o->events.step_done(u->o->events.ctx, sr);
	return rc;
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

static void fail_phase(espl_unit_result *res, const char *phase, const espl_error *e)
{
	if (res->failed_phase)
		return;
	res->failed_phase = phase;
	if (strcmp(phase, "step") == 0) /* the message starts "step N (...)" */
		espl_fail(&res->first_error, e->code, "%s", e->msg);
	else
		espl_fail(&res->first_error, e->code, "%s: %s", phase, e->msg);
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

static void loader_options(const espl_plan *p, const espl_runner_options *o, espl_loader_options *lo)
{
	const espl_recipe *r = p->r;
	espl_loader_options_init(lo);
	lo->baud = o->rom_baud ? o->rom_baud : r->connect.baud;
	lo->flash_baud = r->connect.flash_baud;
	lo->reset = r->connect.reset == ESPL_CONNECT_RESET_NONE ? ESPL_RESET_NONE : ESPL_RESET_AUTO;
	lo->stub = &p->stub;
	lo->connect_attempts = o->connect_attempts;
	lo->connect_timeout_ms = o->connect_timeout_ms;
	lo->events = o->loader_events;
}

/* Identify; after a link error get back in touch with the chip (re-sync,
 * or reset and connect again) and identify once more.  Answers such as a
 * wrong chip are not retried. */
static int identify_with_retry(unit *u, espl_error *err)
{
	int rc = espl_esp8266_identify(u->l, &u->res->chip, err);
	if (rc >= 0 || !retryable(rc) || stopped(u))
		return rc;
	espl_loader_log(u->l, ESPL_LOG_WARN, "identify failed (%s); connecting again", err->msg);
	if (espl_loader_reconnect(u->l, err) < 0) {
		espl_error_prefix(err, "connecting again after a failed identify");
		return err->code;
	}
	return espl_esp8266_identify(u->l, &u->res->chip, err);
}

/* Everything after connect; the loader is open. */
static void run_unit(unit *u)
{
	espl_unit_result *res = u->res;
	espl_error e;

	if (identify_with_retry(u, &e) < 0) {
		fail_phase(res, "identify", &e);
		return;
	}
	res->identified = true;
	if (u->o->events.identified)
		u->o->events.identified(u->o->events.ctx, res);
	if (check_expect(u->r, &res->chip, &e) < 0) {
		fail_phase(res, "expect", &e);
		return;
	}
	if (place_system_area(u, &e) < 0) {
		fail_phase(res, "layout", &e);
		return;
	}
	for (size_t i = 0; i < res->n_steps; i++) {
		if (stopped(u)) {
			espl_fail(&e, ESPL_EINTERRUPTED, "stopped before step %zu", i + 1);
			fail_phase(res, "stopped", &e);
			return;
		}
		if (run_step(u, i) < 0) {
			const espl_step_result *sr = &res->steps[i];
			const espl_step *s = sr->step;
			char tries[32] = "";
			if (sr->attempts > 1)
				snprintf(tries, sizeof tries, ", after %u attempts", sr->attempts);
			espl_fail(&e, sr->error.code, "step %u (%s, line %u)%s: %s", s->number,
			          espl_step_kind_name(s->kind), s->pos.line, tries, sr->error.msg);
			fail_phase(res, "step", &e);
			return;
		}
	}
}

static int finish(espl_unit_result *res, double started)
{
	bool all_passed = true;
	res->duration_s = espl__now_s() - started;
	for (size_t i = 0; i < res->n_steps; i++)
		all_passed &= res->steps[i].status == ESPL_STEP_PASSED;
	for (size_t i = 0; i < res->n_regions && !res->failed_phase; i++)
		if (!res->regions[i].verified) {
			espl_error e;
			espl_fail(&e, ESPL_EMISMATCH, "%s at 0x%X written by step %u was never verified",
			          res->regions[i].what, res->regions[i].address, res->regions[i].step);
			fail_phase(res, "verify", &e);
		}
	res->pass = all_passed && !res->failed_phase && res->identified;
	if (!res->pass && !res->failed_phase) {
		espl_error e;
		espl_fail(&e, ESPL_EARG, "not every step passed");
		fail_phase(res, "step", &e);
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
		fail_phase(res, "connect", &e);
		return finish(res, started);
	}
	u->plan = p;
	u->r = p->r;
	u->o = o;
	u->res = res;
	loader_options(p, o, &lo);
	if (espl_loader_connect(port, &lo, &u->l, &e) < 0) {
		fail_phase(res, "connect", &e);
	} else {
		res->connected = true;
		res->connect_s = espl__now_s() - started;
		res->rom_baud = espl_loader_rom_baud(u->l);
		run_unit(u);
		espl_loader_close(u->l);
	}
	free(u);
	return finish(res, started);
}

int espl_runner_run(const espl_plan *p, const char *port_spec, const espl_runner_options *o,
                    espl_unit_result *res)
{
	espl_port *port;
	espl_error e;
	double started = espl__now_s();
	unsigned baud = o->rom_baud ? o->rom_baud : p->r->connect.baud;

	if (espl_port_open(port_spec, baud, &port, &e) < 0) {
		if (init_result(p, port_spec, res) == ESPL_OK)
			fail_phase(res, "connect", &e);
		return finish(res, started);
	}
	int rc = espl_runner_run_port(p, port, o, res);
	snprintf(res->port, sizeof res->port, "%s", port_spec);
	return rc;
}

void espl_unit_result_clear(espl_unit_result *res)
{
	free(res->steps);
	res->steps = NULL;
	res->n_steps = 0;
}
