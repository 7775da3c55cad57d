/* fuzz_recipe.c - libFuzzer target: the YAML recipe parser and validator
 * (include/espline/recipe.h).
 *
 * The input is written as recipe.yaml into a scratch folder that also holds
 * images/nodemcu-demo.bin (a tiny valid ESP8266 image) and
 * images/esp_init_data_demo.bin (128 bytes), so the sample recipes' file
 * references resolve.  The recipe is loaded, and when it is valid and only
 * refers to files in the scratch folder it is prepared too.  Checks: every
 * diagnostic has a position and a message; load fails exactly when an
 * error was reported, and the first error is in err; a valid recipe keeps
 * the rules its header promises (at least one step, reset last, aligned
 * writes and erases, text and hash as read); the per-unit helpers accept
 * any flash size without crashing. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "espline/recipe.h"
#include "fuzz_util.h"

#define FUZZ_RECIPE_MAX (64u << 10)

typedef struct fuzz_recipe_diags {
	unsigned errors, warnings;
	char first[ESPL_ERROR_MAX];
} fuzz_recipe_diags;

static void fuzz_recipe_on_diag(void *ctx, const espl_recipe_diag *d)
{
	fuzz_recipe_diags *c = ctx;
	FUZZ_CHECK(d->message != NULL && d->message[0] != '\0');
	FUZZ_CHECK(d->file != NULL);
	FUZZ_CHECK(d->pos.line >= 1 && d->pos.column >= 1);
	if (d->warning) {
		c->warnings++;
		return;
	}
	if (c->errors++ == 0)
		snprintf(c->first, sizeof c->first, "%s", d->message);
}

/* The files the sample recipes refer to, made once per scratch folder. */
static int fuzz_recipe_files(const char **dir_out)
{
	const char *dir = fuzz_scratch_dir();
	char path[512];
	struct stat st;
	if (!dir)
		return -1;
	*dir_out = dir;
	snprintf(path, sizeof path, "%s/images/esp_init_data_demo.bin", dir);
	if (stat(path, &st) == 0)
		return 0;
	uint8_t img[48];
	memset(img, 0, sizeof img);
	img[0] = 0xE9; img[1] = 1; img[2] = 2; img[3] = 0x40;  /* dio, 4MB, 40m */
	fuzz_put_le32(img + 4, 0x40100004u);
	fuzz_put_le32(img + 8, 0x40100000u);
	fuzz_put_le32(img + 12, 16);
	uint8_t sum = 0xEF;
	for (int i = 0; i < 16; i++) {
		img[16 + i] = (uint8_t)(i * 37 + 1);
		sum ^= img[16 + i];
	}
	img[47] = sum;                                        /* last byte of the 16-byte line */
	uint8_t init[128];
	for (int i = 0; i < 128; i++)
		init[i] = (uint8_t)i;
	snprintf(path, sizeof path, "%s/images", dir);
	mkdir(path, 0755);
	if (!fuzz_write_file("images/nodemcu-demo.bin", img, sizeof img, path, sizeof path) ||
	    !fuzz_write_file("images/esp_init_data_demo.bin", init, sizeof init, path, sizeof path))
		return -1;
	return 0;
}

static int fuzz_recipe_file_is_local(const espl_recipe_file *f, const char *dir)
{
	return f->path && strncmp(f->path, dir, strlen(dir)) == 0 && !strstr(f->path, "..");
}

static void fuzz_recipe_check_valid(espl_recipe *r, const uint8_t *data, size_t size,
				    const char *dir)
{
	FUZZ_CHECK(r->name != NULL && r->path != NULL && r->dir != NULL);
	FUZZ_CHECK(r->text_len == size && memcmp(r->text, data, size) == 0);
	FUZZ_CHECK(strlen(r->sha256) == ESPL_SHA256_HEX_LEN);
	FUZZ_CHECK(r->n_steps >= 1 && r->steps != NULL);
	int local = 1;
	for (size_t i = 0; i < r->n_steps; i++) {
		const espl_step *s = &r->steps[i];
		FUZZ_CHECK(s->number == i + 1);
		if (s->kind == ESPL_STEP_RESET)
			FUZZ_CHECK(i + 1 == r->n_steps);
		if (s->kind == ESPL_STEP_WRITE) {
			FUZZ_CHECK(s->write.address % 4 == 0);
			FUZZ_CHECK(s->write.file.size > 0);
			local &= fuzz_recipe_file_is_local(&s->write.file, dir);
		}
		if (s->kind == ESPL_STEP_WRITE_INIT_DATA && s->init_data.file.path)
			local &= fuzz_recipe_file_is_local(&s->init_data.file, dir);
		if (s->kind == ESPL_STEP_ERASE && !s->erase.chip) {
			FUZZ_CHECK(s->erase.n_regions == 0 || s->erase.regions != NULL);
			for (size_t k = 0; k < s->erase.n_regions; k++) {
				FUZZ_CHECK(s->erase.regions[k].address % ESPL_RECIPE_SECTOR == 0);
				FUZZ_CHECK(s->erase.regions[k].length % ESPL_RECIPE_SECTOR == 0);
			}
		}
		if (s->kind == ESPL_STEP_VERIFY && !s->verify.all)
			FUZZ_CHECK(s->verify.n_regions == 0 || s->verify.regions != NULL);
	}
	FUZZ_CHECK(r->expect.n_manufacturers <= ESPL_RECIPE_MAX_LIST);
	FUZZ_CHECK(r->expect.n_ouis <= ESPL_RECIPE_MAX_LIST);

	espl_error err;
	if (local) {
		fuzz_recipe_diags d = { 0, 0, "" };
		int rc = espl_recipe_prepare(r, fuzz_recipe_on_diag, &d, &err);
		FUZZ_CHECK((rc == 0) == (d.errors == 0));
		if (rc == 0) {
			FUZZ_CHECK(r->prepared);
			FUZZ_CHECK(espl_recipe_prepare(r, NULL, NULL, &err) == 0); /* idempotent */
		}
	}
	static const uint32_t sizes[] = { 0, 0x10000, 256u << 10, 512u << 10, 1u << 20,
					  4u << 20, 16u << 20, 0x123457, 0xFFFFFFFFu };
	uint32_t min = espl_recipe_min_flash_size(r);
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint32_t sys = 0;
		espl_system_area area;
		char buf[16];
		if (espl_recipe_system_flash_size(r, sizes[i], &sys, &err) == 0)
			FUZZ_CHECK(sys <= sizes[i] || sizes[i] == 0);
		if (espl_system_area_for(sizes[i], &area, &err) == 0)
			FUZZ_CHECK(area.rf_cal < area.init_data && area.init_data < area.blank &&
				   area.blank < sizes[i]);
		(void)espl_recipe_check_layout(r, sizes[i], sizes[i], &err);
		(void)espl_recipe_check_layout(r, min ? min : sizes[i], sizes[i], &err);
		FUZZ_CHECK(espl_recipe_format_size(sizes[i], buf, sizeof buf) != NULL);
	}
}

static int fuzz_recipe_one(const uint8_t *data, size_t size)
{
	const char *dir;
	char path[512];
	espl_recipe *r = NULL;
	espl_error err;
	fuzz_recipe_diags d = { 0, 0, "" };

	if (size > FUZZ_RECIPE_MAX || fuzz_recipe_files(&dir) < 0)
		return 0;
	if (!fuzz_write_file("recipe.yaml", data, size, path, sizeof path))
		return 0;
	espl_error_clear(&err);
	int rc = espl_recipe_load(path, fuzz_recipe_on_diag, &d, &r, &err);
	if (rc == 0) {
		FUZZ_CHECK(r != NULL && d.errors == 0);
		fuzz_recipe_check_valid(r, data, size, dir);
		espl_recipe_free(r);
	} else {
		FUZZ_CHECK(r == NULL && rc < 0);
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		if (rc == ESPL_ERECIPE && d.errors > 0)
			FUZZ_CHECK(strstr(err.msg, d.first) != NULL || strlen(d.first) > 200);
	}

	/* The value parsers on the raw text (NUL-terminated, short). */
	char s[64];
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	uint32_t u;
	unsigned ms;
	uint8_t oui[3];
	(void)espl_recipe_parse_u32(s, &u);
	(void)espl_recipe_parse_duration_ms(s, &ms);
	(void)espl_recipe_parse_oui(s, oui);
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_recipe_one(data, size);
}
#endif
