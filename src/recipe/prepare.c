/* prepare.c - the shared read-only plan of a recipe; see include/espline/recipe.h and src/recipe/recipe_int.h. */
#include "espline/recipe.h"
#include "espline/flashmap.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "recipe/recipe_int.h"
#include "recipe/yaml.h"
#include "util/file.h"


/* ------------------------------------------------------------------ */
/* prepare                                                              */

static int read_file_data(parse_ctx *c, espl_recipe_file *f, const char *what)
{
	espl_error e;
	char *data;
	size_t len;

	free(f->data);
	f->data = NULL;
	if (espl__file_read(f->path, ESP8266_MAX_FLASH, what, &data, &len, &e) < 0) {
		espl__yaml_error(&c->y, f->pos, "%s", e.msg);
		return -1;
	}
	f->data = (uint8_t *)data;
	if (len != f->size) {
		espl__yaml_error(&c->y, f->pos, "%s: %s changed size while the recipe was being loaded (%u bytes expected)",
		         what, f->path, f->size);
		return -1;
	}
	if (espl__recipe_sha256_hex(f->data, f->size, f->sha256) < 0) {
		espl__yaml_error(&c->y, f->pos, "%s: SHA-256 failed (OpenSSL)", what);
		return -1;
	}
	if (f->pin[0] && strcmp(f->pin, f->sha256) != 0) {
		espl__yaml_error(&c->y, f->pin_pos, "%s: sha256 mismatch for %s: the file has %s, the recipe pins %s",
		         what, f->path, f->sha256, f->pin);
		return -1;
	}
	return 0;
}

static void note_image_header(parse_ctx *c, espl_recipe *r, const espl_step *s)
{
	const espl_recipe_file *f = &s->write.file;
	bool patching = r->flash.size_mode != ESPL_FLASH_SIZE_KEEP || r->flash.mode != ESPL_FLASH_MODE_KEEP ||
	                r->flash.freq != ESPL_FREQ_KEEP;
	if (f->size >= 8 && f->data[0] == 0xE9) {
		r->image_declared_size = espl__recipe_header_code_to_size(f->data[3] >> 4);
		return;
	}
	/* esptool only warns and writes the file unpatched; on a line that is
	 * a wrong image or a header that will not say what the recipe says */
	if (patching)
		espl__yaml_error(&c->y, f->pos, "%s is written at 0x0 but is not an ESP8266 image (first byte 0x%02x, expected 0xe9), so flash.size/mode/freq cannot be written into its header; check the file, or set flash: { size: keep, mode: keep, freq: keep }",
		         espl__recipe_base_name(f->path), f->size ? f->data[0] : 0);
}

/* expect.crystal_mhz: the init data must be for that crystal (byte 48,
 * crystal_26m_en: 0 = 40 MHz, 1 = 26 MHz, 2 = 24 MHz). */
static void check_init_crystal(parse_ctx *c, const espl_recipe *r, const espl_recipe_file *f)
{
	unsigned want = r->expect.crystal_mhz;
	if (!want)
		return;
	if (f->size <= ESPL_INIT_DATA_CRYSTAL_BYTE) {
		espl__yaml_error(&c->y, f->pos, "write_init_data.file: %s is %u bytes, too short to say its crystal (byte %d), and expect.crystal_mhz (line %u) asks for %u MHz",
		                f->path, f->size, ESPL_INIT_DATA_CRYSTAL_BYTE, r->expect.crystal_pos.line, want);
		return;
	}
	uint8_t v = f->data[ESPL_INIT_DATA_CRYSTAL_BYTE];
	unsigned mhz = v == 0 ? 40 : v == 1 ? 26 : v == 2 ? 24 : 0;
	if (mhz != want)
		espl__yaml_error(&c->y, f->pos, "write_init_data.file: %s is init data for a %s crystal (byte %d = %u), but expect.crystal_mhz (line %u) is %u: the RF would run off frequency",
		                f->path, mhz == 40 ? "40 MHz" : mhz == 26 ? "26 MHz" : mhz == 24 ? "24 MHz" : "unknown",
		                ESPL_INIT_DATA_CRYSTAL_BYTE, v, r->expect.crystal_pos.line, want);
}

int espl_recipe_prepare(espl_recipe *r, espl_recipe_diag_fn diag_fn, void *diag_ctx, espl_error *err)
{
	parse_ctx c = espl__recipe_ctx(r->path, r, diag_fn, diag_ctx, err);

	if (r->prepared)
		return ESPL_OK;
	for (size_t i = 0; i < r->n_steps; i++) {
		espl_step *s = &r->steps[i];
		if (s->kind == ESPL_STEP_WRITE && read_file_data(&c, &s->write.file, "write.file") == 0 &&
		    s->write.address == 0)
			note_image_header(&c, r, s);
		if (s->kind == ESPL_STEP_WRITE_INIT_DATA &&
		    read_file_data(&c, &s->init_data.file, "write_init_data.file") == 0)
			check_init_crystal(&c, r, &s->init_data.file);
		if (s->kind == ESPL_STEP_WRITE_UNIT_DATA && s->unit_data.tmpl.path)  /* else a layout */
			read_file_data(&c, &s->unit_data.tmpl, "write_unit_data.template");
	}
	if (c.y.errors == 0)
		espl__recipe_prepare_unit_data(&c, r);
	if (c.y.errors)
		return ESPL_ERECIPE;
	r->prepared = true;
	return ESPL_OK;
}

static void free_file(espl_recipe_file *f)
{
	free(f->path);
	free(f->data);
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

void espl_recipe_free(espl_recipe *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_steps; i++) {
		espl_step *s = &r->steps[i];
		free(s->erase.regions);
		free(s->verify.regions);
		free_file(&s->write.file);
		free_file(&s->init_data.file);
		free_file(&s->unit_data.tmpl);
		espl_layout_free(s->unit_data.layout, s->unit_data.n_layout);
		free_strings(s->boot.expect, s->boot.n_expect);
		free_strings(s->boot.reject, s->boot.n_reject);
	}
	free(r->steps);
	espl__recipe_free_unit_data(r);
	free_strings(r->connect.fixture.download, r->connect.fixture.n_download);
	free_strings(r->connect.fixture.run, r->connect.fixture.n_run);
	free(r->connect.stub_path);
	free(r->expect.barcode);
	free(r->name);
	free(r->path);
	free(r->dir);
	free(r->text);
	free(r);
}

/* ------------------------------------------------------------------ */
/* system area                                                          */

int espl_system_area_for(uint32_t flash_size, espl_system_area *out, espl_error *err)
{
	if (flash_size < 0x10000 || flash_size % ESPL_RECIPE_SECTOR)
		return espl_fail(err, ESPL_EARG, "flash size 0x%x is too small or not a whole number of sectors",
		                 flash_size);
	espl_flashmap map;
	espl_flashmap_layout(flash_size, &map);
	out->flash_size = flash_size;
	out->rf_cal = map.rf_cal;
	out->init_data = map.init_data;
	out->blank = map.blank;
	return ESPL_OK;
}

uint32_t espl_recipe_min_flash_size(const espl_recipe *r)
{
	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED)
		return r->flash.size;
	return r->expect.flash_size_min;
}

int espl_recipe_system_flash_size(const espl_recipe *r, uint32_t detected_size, uint32_t *out,
                                  espl_error *err)
{
	char a[16], b[16];
	uint32_t size = detected_size;
	const char *why = "detected";

	if (r->flash.size_mode == ESPL_FLASH_SIZE_FIXED) {
		size = r->flash.size;
		why = r->built ? "--flash-size" : "flash.size";
	} else if (r->flash.size_mode == ESPL_FLASH_SIZE_KEEP && r->image_declared_size) {
		size = r->image_declared_size;
		why = "the image header at 0x0";
	}
	if (size == 0)
		return espl_fail(err, ESPL_ECHIP, "flash size unknown: detection found no size");
	if (size > detected_size)
		return espl_fail(err, ESPL_ECHIP, "the chip has %s of flash but %s says %s",
		                 espl_recipe_format_size(detected_size, a, sizeof a), why,
		                 espl_recipe_format_size(size, b, sizeof b));
	*out = size;
	return ESPL_OK;
}

int espl_recipe_check_layout(const espl_recipe *r, uint32_t system_size, uint32_t chip_size,
                             espl_error *err)
{
	parse_ctx c = espl__recipe_ctx(r->path, NULL, NULL, NULL, err);
	espl__recipe_check_layout(&c, r, system_size, chip_size, "the size detected on this unit");
	return c.y.errors ? ESPL_ERECIPE : ESPL_OK;
}
