/* steps.c - the steps of a recipe on one unit, with retries; see
 * include/espline/runner.h. */
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
#include "espline/reset.h"
#include "espline/stub.h"

/* ------------------------------------------------------------------ */
/* one unit                                                             */

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
	               : s->kind == ESPL_STEP_WRITE_UNIT_DATA ? s->unit_data.size
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

int espl__runner_stopped(const unit *u)
{
	return u->o->stop && *u->o->stop;
}

/* Blocks that a later write step overwrites from end to end: the stub
 * erases ahead of that write, so what they hold now does not matter. */
static bool *blocks_written_later(const unit *u, size_t nblocks)
{
	bool *covered = calloc(nblocks ? nblocks : 1, sizeof *covered);
	if (!covered)
		return NULL;
	for (const espl_step *t = u->step + 1; t < u->r->steps + u->r->n_steps; t++) {
		if (t->kind != ESPL_STEP_WRITE)
			continue;
		uint64_t start = t->write.address, end = start + t->write.file.size;
		for (uint64_t b = (start + ESPL_FLASH_BLOCK - 1) / ESPL_FLASH_BLOCK;
		     b < nblocks && (b + 1) * ESPL_FLASH_BLOCK <= end; b++)
			covered[b] = true;
	}
	return covered;
}

/* erase: chip, with the same result (every byte 0xFF before the writes)
 * without erasing blocks that are blank already (espl_flash_erase_dirty). */
static int erase_chip_where_dirty(unit *u, espl_step_result *sr, espl_error *err)
{
	espl_erase_check ec;
	bool *skip = blocks_written_later(u, u->res->chip.flash_size / ESPL_FLASH_BLOCK);
	if (!skip)
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	int rc = espl_flash_erase_dirty(u->l, skip, &ec, err);
	free(skip);
	sr->bytes += ec.bytes_erased;
	sr->blocks_checked = ec.checked;
	sr->blocks_dirty = ec.dirty;
	return rc;
}

static int do_erase(unit *u, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	if (s->erase.chip) {
		ESPL_TRY(erase_chip_where_dirty(u, sr, err));
		add_op(u, OP_ERASE_ALL, 0, 0, NULL);
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

int espl__runner_write_image(unit *u, const espl_image *img, bool compress, bool skip_unchanged,
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

static int check_md5(unit *u, uint32_t address, uint32_t length, const char *expected, const char *what,
                     espl_step_result *sr, espl_error *err);

/* write.check_only (`espline verify`): the flash must already hold the
 * image; the region counts as checked on the chip, as skip_unchanged's. */
static int check_image(unit *u, const espl_image *img, const char *what, espl_step_result *sr,
                       espl_error *err)
{
	ESPL_TRY(check_md5(u, img->address, (uint32_t)img->size, img->md5_hex, what, sr, err));
	ESPL_TRY(add_region(u, img->address, (uint32_t)img->size, what, img->md5_hex, true, err));
	espl_written_region *w = &u->res->regions[u->res->n_regions - 1];
	memcpy(w->actual_md5, img->md5_hex, sizeof w->actual_md5);
	w->verified = true;
	return within_timeout(u, err);
}

static int do_write(unit *u, size_t index, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	const char *what = espl__runner_base_name(s->write.file.path);
	const espl_image *img;
	ESPL_TRY(espl_image_source_get(u->plan->write_src[index], u->res->chip.flash_size, &img, err));
	if (img->patched)
		espl_loader_log(u->l, ESPL_LOG_INFO, "%s: flash params set to 0x%02X%02X", what, img->header[0],
		                img->header[1]);
	if (s->write.check_only)
		return check_image(u, img, what, sr, err);
	return espl__runner_write_image(u, img, s->write.compress, s->write.skip_unchanged, what, sr, err);
}

/* read (a built recipe's): the bytes into the step result, for the
 * caller to keep. */
static int do_read(unit *u, espl_step_result *sr, espl_error *err)
{
	const espl_step *s = u->step;
	uint8_t *buf = malloc(s->read.length ? s->read.length : 1);
	if (!buf)
		return espl_fail(err, ESPL_ENOMEM, "out of memory for %u bytes", s->read.length);
	int rc = espl_flash_read(u->l, s->read.address, s->read.length, buf, err);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	sr->data = buf;
	sr->bytes = s->read.length;
	return within_timeout(u, err);
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
	snprintf(what, sizeof what, "init data %s", espl__runner_base_name(s->init_data.file.path));
	ESPL_TRY(espl__runner_write_image(u, img, true, false, what, sr, err));
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
	ESPL_TRY(espl_flash_md5_shown(u->l, address, length, md5, err));
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
		espl__runner_md5_hex_of(ff, length, blank);
		free(ff);
	}
	/* the device layer's espl_flash_verify says it the same way */
	return espl_fail(err, ESPL_EMISMATCH, "verify failed for %s at 0x%X (%u bytes): expected MD5 %s, flash has %s%s. "
	                 "Erase and write again; if it fails again the flash is faulty: reject the module",
	                 what, address, length, expected, sr->actual_md5,
	                 strcmp(blank, sr->actual_md5) == 0 ? " (= blank flash, all 0xFF: nothing was written)" : "");
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
			espl__runner_md5_hex_of(buf, g->length, expected);
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
		ESPL_TRY(u->step->verify.all ? verify_written(u, sr, err) : verify_regions(u, sr, err));
		return espl__runner_screen(u, index, sr, err);
	case ESPL_STEP_RESET: return do_reset(u, err);
	case ESPL_STEP_BOOT_CHECK: return espl__runner_boot_check(u, index, sr, err);
	case ESPL_STEP_WRITE_UNIT_DATA: return espl__runner_write_unit_data(u, index, sr, err);
	case ESPL_STEP_READ: return do_read(u, sr, err);
	}
	return espl_fail(err, ESPL_EARG, "unknown step kind %d", (int)u->step->kind);
}

/* Link failures may go away on a second try; answers do not. */
bool espl__runner_retryable(int code)
{
	return code == ESPL_ETIMEOUT || code == ESPL_EPROTO || code == ESPL_EDEVICE;
}

static void reset_step_result(espl_step_result *sr)
{
	sr->bytes = sr->bytes_skipped = 0;
	sr->skipped = false;
	sr->md5_address = sr->md5_length = 0;
	sr->expected_md5[0] = sr->actual_md5[0] = '\0';
	free(sr->detail);
	sr->detail = NULL;
	free(sr->data);
	sr->data = NULL;
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

int espl__runner_run_step(unit *u, size_t index)
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
		if (rc == ESPL_OK || !espl__runner_retryable(rc) || attempt >= sr->step->retries || espl__runner_stopped(u))
			break;
		if (sr->step->pos.line)
			espl_loader_log(u->l, ESPL_LOG_WARN, "step %u (%s) attempt %u failed: %s; retrying",
			                sr->step->number, espl_step_kind_name(sr->step->kind), attempt + 1, sr->error.msg);
		else /* a built recipe: the error names what was done and where */
			espl_loader_log(u->l, ESPL_LOG_WARN, "attempt %u failed: %s; retrying", attempt + 1,
			                sr->error.msg);
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
