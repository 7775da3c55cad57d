/* plan.c - the read-only plan a recipe runs from, shared by every unit;
 * see include/espline/runner.h. */
#include "espline/runner.h"
#include "espline/boot.h"
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
	/* the file at that place cannot be used as the recipe says: the
	 * recipe's fault (exit 2), whatever the image code called it.  A
	 * built recipe has no place; the message names the file. */
	if (pos.line)
		espl_error_prefix(err, "%s:%u:%u: error", r->path, pos.line, pos.column);
	return err->code = ESPL_ERECIPE;
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
		                       espl__runner_base_name(s->init_data.file.path), &p->init_img[i][k], err) < 0)
			return plan_error(p->r, s->init_data.file.pos, err);
	}
	return ESPL_OK;
}

int espl_plan_new(const espl_recipe *r, const espl_stub_env *stub_env, espl_plan **out, espl_error *err)
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
	p->boot_rules = calloc(r->n_steps, sizeof *p->boot_rules);
	if (!p->write_src || !p->init_img || !p->boot_rules) {
		espl_plan_free(p);
		return espl_fail(err, ESPL_ENOMEM, "out of memory");
	}
	memset(blank, 0xFF, sizeof blank);
	espl__runner_md5_hex_of(blank, sizeof blank, p->blank_md5);
	flash_params(r, &params);
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		int rc = ESPL_OK;
		if (s->kind == ESPL_STEP_WRITE &&
		    espl_image_source_new(s->write.file.data, s->write.file.size, espl__runner_base_name(s->write.file.path),
		                          s->write.address, &params, &p->write_src[i], err) < 0)
			rc = plan_error(r, s->write.file.pos, err);
		else if (s->kind == ESPL_STEP_WRITE_INIT_DATA)
			rc = plan_init_data(p, i, err);
		else if (s->kind == ESPL_STEP_BOOT_CHECK &&
		         espl_boot_rules_new((const char *const *)s->boot.expect, s->boot.n_expect,
		                             (const char *const *)s->boot.reject, s->boot.n_reject, &p->boot_rules[i], err) < 0)
			rc = plan_error(r, s->pos, err);
		if (s->kind == ESPL_STEP_VERIFY)
			p->last_verify = i;
		if (rc < 0) {
			espl_plan_free(p);
			return rc;
		}
	}
	if (r->connect.stub != ESPL_STUB_NONE) {
		int rc = espl_stub_find(r->connect.stub == ESPL_STUB_BUILTIN ? NULL : r->connect.stub_path,
		                        stub_env, &p->stub, err);
		if (rc < 0) {
			espl_plan_free(p);
			return rc;
		}
		p->have_stub = true;
	}
	*out = p;
	return ESPL_OK;
}

void espl_plan_prepare_images(const espl_plan *p)
{
	for (size_t i = 0; i < p->r->n_steps; i++) {
		const espl_image *img;
		espl_error err;
		if (p->write_src[i] && !espl_image_source_needs_size(p->write_src[i]))
			(void)espl_image_source_get(p->write_src[i], 0, &img, &err);
	}
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
		if (p->boot_rules)
			espl_boot_rules_free(p->boot_rules[i]);
	}
	free(p->write_src);
	free(p->init_img);
	free(p->boot_rules);
	if (p->have_stub)
		espl_stub_free(&p->stub);
	free(p);
}

const espl_recipe *espl_plan_recipe(const espl_plan *p)
{
	return p->r;
}
