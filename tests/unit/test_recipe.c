/* test_recipe.c - YAML recipes: every error with its line:column, the parsed
 * structure, defaults, paths, sha256 pins, sizes and the system area. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "espline/esp8266.h"
#include "espline/recipe.h"

/* ---- fixture: a folder with a few files the recipes refer to ---------- */

static char dir[256];
static char app_sha[65], init_sha[65];

#define APP_SIZE 0x2064u   /* ends inside sector 0x2000 */

static void write_bytes(const char *name, const uint8_t *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void hex_sha256(const uint8_t *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	assert_true(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL));
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static int setup_dir(void **state)
{
	(void)state;
	uint8_t buf[8192 + 1024];
	snprintf(dir, sizeof dir, "/tmp/espline-test-recipe-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* app.bin: an ESP8266 image header declaring 1MB, then a pattern */
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	buf[0] = 0xE9;
	buf[1] = 1;
	buf[2] = 0;
	buf[3] = 0x20;
	write_bytes("app.bin", buf, APP_SIZE);
	hex_sha256(buf, APP_SIZE, app_sha);
	write_bytes("small.bin", buf + 16, 1024);
	write_bytes("init.bin", buf + 100, 128);
	hex_sha256(buf + 100, 128, init_sha);
	write_bytes("big_init.bin", buf, 5000);
	write_bytes("empty.bin", buf, 0);
	write_bytes("raw.bin", buf + 1, 64); /* not an image: byte 0 is not 0xE9 */
	char sub[300];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	if (mkdir(sub, 0755) < 0)
		return -1;
	write_bytes("sub/other.bin", buf, 100);
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write text (with @APP_SHA@ / @INIT_SHA@ replaced) to dir/name. */
static void write_recipe(const char *name, const char *text, char *path, size_t path_len)
{
	char out[8192];
	size_t o = 0;
	for (const char *p = text; *p && o < sizeof out - 70;) {
		if (strncmp(p, "@APP_SHA@", 9) == 0) {
			memcpy(out + o, app_sha, 64);
			o += 64;
			p += 9;
		} else if (strncmp(p, "@INIT_SHA@", 10) == 0) {
			memcpy(out + o, init_sha, 64);
			o += 64;
			p += 10;
		} else {
			out[o++] = *p++;
		}
	}
	snprintf(path, path_len, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(out, 1, o, f), o);
	assert_int_equal(fclose(f), 0);
}

typedef struct diags {
	char first_error[600];
	char first_warning[600];
	unsigned errors, warnings;
} diags;

static void collect(void *ctx, const espl_recipe_diag *d)
{
	diags *g = ctx;
	char *slot = d->warning ? g->first_warning : g->first_error;
	if ((d->warning ? g->warnings : g->errors) == 0)
		snprintf(slot, sizeof g->first_error, "%u:%u: %s", d->pos.line, d->pos.column, d->message);
	if (d->warning)
		g->warnings++;
	else
		g->errors++;
}

/* Load and prepare; returns the recipe or NULL, diagnostics in g. */
static espl_recipe *load(const char *name, const char *text, diags *g, espl_error *err)
{
	char path[512];
	espl_recipe *r = NULL;
	memset(g, 0, sizeof *g);
	write_recipe(name, text, path, sizeof path);
	if (espl_recipe_load(path, collect, g, &r, err) != ESPL_OK)
		return NULL;
	if (espl_recipe_prepare(r, collect, g, err) != ESPL_OK) {
		espl_recipe_free(r);
		return NULL;
	}
	return r;
}

/* ---- bad recipes: the exact first message, with line:column ---------- */

#define HEAD "recipe: t\nchip: esp8266\n"
#define WRITE_APP "  - write: { file: app.bin, address: 0x0 }\n"
#define VERIFY "  - verify: md5\n"

typedef struct bad_case {
	const char *name;
	const char *text;
	const char *want; /* "LINE:COL: message" (the "error: " is added by load) */
} bad_case;

static const bad_case bad_cases[] = {
	{ "yaml_unclosed_flow",
	  HEAD "steps:\n  - write: { file: app.bin, address: 0x0\n  - verify: md5\n",
	  "5:11: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 4, column 12)" },
	{ "yaml_bad_indent",
	  "recipe: t\n  chip: esp8266\n",
	  "2:7: invalid YAML: mapping values are not allowed in this context" },
	{ "empty_file", "# nothing here\n",
	  "1:1: the recipe is empty; expected a mapping with recipe, chip and steps" },
	{ "two_documents", HEAD "steps:\n" WRITE_APP VERIFY "---\nrecipe: u\n",
	  "7:1: a second YAML document starts here; a recipe file holds exactly one" },
	{ "top_level_list", "- write: x\n",
	  "1:1: expected a mapping with recipe, chip and steps at the top level, got a list" },
	{ "unknown_top_key_suggest", HEAD "stpes:\n" WRITE_APP VERIFY,
	  "3:1: unknown key 'stpes' at the top level; did you mean 'steps'?" },
	{ "unknown_key_no_suggestion", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, colour: red }\n" VERIFY,
	  "4:43: unknown key 'colour' in write; expected one of: file, address, sha256, compress, skip_unchanged, retries, timeout" },
	{ "unknown_key_typo", HEAD "steps:\n  - write: { file: app.bin, adress: 0x0 }\n" VERIFY,
	  "4:29: unknown key 'adress' in write; did you mean 'address'?" },
	{ "missing_recipe_name", "chip: esp8266\nsteps:\n" WRITE_APP VERIFY,
	  "1:1: recipe: missing required key 'recipe' (for example recipe: nodemcu-golden)" },
	{ "wrong_chip", "recipe: t\nchip: esp32\nsteps:\n" WRITE_APP VERIFY,
	  "2:7: chip: expected esp8266, got 'esp32'" },
	{ "duplicate_key", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, address: 0x1000 }\n" VERIFY,
	  "4:43: duplicate key 'address' in write (first given at line 4)" },
	{ "address_wrong_type", HEAD "steps:\n  - write: { file: app.bin, address: zero }\n" VERIFY,
	  "4:38: write.address: expected a number (decimal, 0x hex, or with a KB/MB suffix), got 'zero'" },
	{ "address_is_list", HEAD "steps:\n  - write:\n      file: app.bin\n      address: [0]\n" VERIFY,
	  "6:16: write.address: expected a number (decimal, 0x hex, or with a KB/MB suffix), got a list" },
	{ "write_not_word_aligned", HEAD "steps:\n  - write: { file: app.bin, address: 0x1002 }\n" VERIFY,
	  "4:38: write.address: 0x1002 is not 4-byte aligned; the flasher writes whole 32-bit words" },
	{ "erase_not_sector_aligned", HEAD "steps:\n  - erase: { regions: [ { address: 0x1800, length: 4KB } ] }\n" WRITE_APP VERIFY,
	  "4:36: erase.regions[1].address: 0x1800 is not aligned to a 4 KiB sector (0x1000); erase works on whole sectors" },
	{ "erase_length_not_sectors", HEAD "steps:\n  - erase:\n      regions:\n        - address: 0x10000\n          length: 100\n" WRITE_APP VERIFY,
	  "7:19: erase.regions[1].length: 0x64 is not a multiple of 4 KiB (0x1000); erase works on whole sectors" },
	{ "overlapping_writes_same_sector", HEAD "steps:\n" WRITE_APP "  - write: { file: small.bin, address: 0x2800 }\n" VERIFY,
	  "5:40: write of small.bin (0x2800..0x2bff) overlaps step 1 (write, line 4) at 0x0..0x2063; writes are erased in 4 KiB sectors, so two writes must not share a sector" },
	{ "past_flash_size", HEAD "flash: { size: 512KB }\nsteps:\n  - write: { file: small.bin, address: 0x7FE00 }\n" VERIFY,
	  "5:40: write of small.bin ends at 0x80200, past the end of the smallest allowed flash (512KB, flash.size)" },
	{ "past_flash_size_min", HEAD "expect: { flash_size_min: 1MB }\nsteps:\n  - write: { file: app.bin, address: 0xFF000 }\n" VERIFY,
	  "5:38: write of app.bin ends at 0x101064, past the end of the smallest allowed flash (1MB, expect.flash_size_min)" },
	{ "missing_file", HEAD "steps:\n  - write: { file: nosuch.bin, address: 0x0 }\n" VERIFY,
	  "4:20: write.file: cannot read 'nosuch.bin' (resolved to @DIR@/nosuch.bin): No such file or directory" },
	{ "empty_image_file", HEAD "steps:\n  - write: { file: empty.bin, address: 0x0 }\n" VERIFY,
	  "4:20: write.file: 'empty.bin' (resolved to @DIR@/empty.bin) is empty" },
	{ "sha256_mismatch", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, sha256: @INIT_SHA@ }\n" VERIFY,
	  "4:51: write.file: sha256 mismatch for @DIR@/app.bin: the file has @APP_SHA@, the recipe pins @INIT_SHA@" },
	{ "sha256_malformed", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, sha256: abc }\n" VERIFY,
	  "4:51: write.sha256: expected 64 hex digits (the output of sha256sum), got 'abc'" },
	{ "init_data_too_big", HEAD "steps:\n  - write_init_data: { file: big_init.bin }\n" VERIFY,
	  "4:30: write_init_data.file: @DIR@/big_init.bin is 5000 bytes; init data must fit in one 4 KiB sector (esp_init_data_default.bin is 128 bytes)" },
	{ "write_never_verified", HEAD "steps:\n" WRITE_APP "  - reset: run\n",
	  "4:5: write of app.bin is never verified: add '- verify: md5' after it (a unit passes only when every written region is verified)" },
	{ "write_after_last_verify", HEAD "steps:\n" WRITE_APP VERIFY "  - write: { file: small.bin, address: 0x10000 }\n",
	  "6:5: write of small.bin is never verified: add '- verify: md5' after it (a unit passes only when every written region is verified)" },
	{ "verify_before_any_write", HEAD "steps:\n" VERIFY WRITE_APP VERIFY,
	  "4:5: verify: md5 has nothing to check: no write comes before it" },
	{ "step_after_reset", HEAD "steps:\n" WRITE_APP "  - reset: run\n" VERIFY,
	  "6:5: verify comes after reset (line 5); reset must be the last step" },
	{ "two_kinds_in_one_step", HEAD "steps:\n  - write: { file: app.bin, address: 0x0 }\n    verify: md5\n",
	  "5:5: steps[1] has both 'write' and 'verify'; give each step its own list item (- verify: ...)" },
	{ "misplaced_inner_key", HEAD "steps:\n  - write:\n    file: app.bin\n    address: 0x0\n" VERIFY,
	  "5:5: 'file' belongs inside write: indent it under 'write:' (or write write: { file: ... })" },
	{ "expect_as_step", HEAD "steps:\n  - expect: { flash_size_min: 4MB }\n" WRITE_APP VERIFY,
	  "4:5: 'expect' is a top-level key, not a step: it is checked once per unit before any step runs" },
	{ "unknown_step_kind", HEAD "steps:\n  - wirte: { file: app.bin, address: 0x0 }\n" VERIFY,
	  "4:5: unknown key 'wirte' in steps[1]; did you mean 'write'?" },
	{ "step_is_scalar", HEAD "steps:\n" WRITE_APP "  - verify\n",
	  "5:5: steps[2]: expected a step such as '- verify: md5', got 'verify'" },
	{ "erase_chip_after_write", HEAD "steps:\n" WRITE_APP "  - erase: chip\n" VERIFY,
	  "5:5: erase: chip would erase what step 1 (write, line 4) at 0x0..0x2063 wrote" },
	{ "erase_region_after_write", HEAD "steps:\n" WRITE_APP "  - erase: { regions: [ { address: 0x2000, length: 0x1000 } ] }\n" VERIFY,
	  "5:25: erase region (0x2000..0x2fff) would erase what step 1 (write, line 4) at 0x0..0x2063 wrote" },
	{ "retries_out_of_range", HEAD "steps:\n" WRITE_APP "    retries: 99\n" VERIFY,
	  "5:14: write.retries: expected a whole number from 0 to 10, got '99'" },
	{ "timeout_bad", HEAD "steps:\n" WRITE_APP VERIFY "    timeout: soon\n",
	  "6:14: verify.timeout: expected a duration from 1ms to 3600s such as 30s or 500ms, got 'soon'" },
	{ "retries_twice", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, retries: 1 }\n    retries: 2\n" VERIFY,
	  "4:43: 'retries' is given twice for this step (also at line 5)" },
	{ "flash_size_unsupported", HEAD "flash: { size: 3MB }\nsteps:\n" WRITE_APP VERIFY,
	  "3:16: flash.size: expected detect, keep, 256KB, 512KB, 1MB, 2MB, 4MB, 8MB or 16MB, got '3MB'" },
	{ "flash_mode_typo", HEAD "flash: { mode: qoi }\nsteps:\n" WRITE_APP VERIFY,
	  "3:16: flash.mode: expected qio, qout, dio, dout or keep, got 'qoi' (did you mean 'qio'?)" },
	{ "connect_reset_bad", HEAD "connect: { reset: no_reset }\nsteps:\n" WRITE_APP VERIFY,
	  "3:19: connect.reset: expected auto or none, got 'no_reset'" },
	{ "baud_out_of_range", HEAD "connect: { baud: 300 }\nsteps:\n" WRITE_APP VERIFY,
	  "3:18: connect.baud: expected a baud rate from 9600 to 4000000, got 300" },
	{ "ladder_not_descending",
	  HEAD "connect: { flash_baud: [2000000, 921600, 1500000] }\nsteps:\n" WRITE_APP VERIFY,
	  "3:42: connect.flash_baud: the ladder goes from the highest rate down (1500000 is not below 921600)" },
	{ "ladder_rate_out_of_range",
	  HEAD "connect: { flash_baud: [5000000, 921600] }\nsteps:\n" WRITE_APP VERIFY,
	  "3:25: connect.flash_baud: expected a baud rate from 9600 to 4000000, got 5000000" },
	{ "ladder_empty",
	  HEAD "connect: { flash_baud: [] }\nsteps:\n" WRITE_APP VERIFY,
	  "3:24: connect.flash_baud: a ladder of 1 to 8 baud rates, highest first, e.g. [2000000, 1500000, 921600]" },
	{ "rom_baud_no_list",
	  HEAD "connect: { baud: [921600] }\nsteps:\n" WRITE_APP VERIFY,
	  "3:18: connect.baud: expected a number (decimal, 0x hex, or with a KB/MB suffix), got a list" },
	{ "mac_oui_bad", HEAD "expect:\n  mac_oui: [\"5C:CF:7F\", \"5C:CF\"]\nsteps:\n" WRITE_APP VERIFY,
	  "4:25: expect.mac_oui[2]: expected the first three MAC bytes as \"5C:CF:7F\", got '5C:CF'" },
	{ "manufacturer_unknown", HEAD "expect:\n  flash_manufacturer: [Winbond, Acme]\nsteps:\n" WRITE_APP VERIFY,
	  "4:33: expect.flash_manufacturer[2]: expected a JEDEC manufacturer id (0x00..0xFF) or one of Spansion, XTX, EON, Adesto, XMC, AMIC, Zbit, Boya, Puya, ESMT, ISSI, Fudan, SST, Macronix, GigaDevice, TH, BergMicro, Winbond; got 'Acme'" },
	{ "bool_wrong", HEAD "steps:\n  - write: { file: app.bin, address: 0x0, compress: yes }\n" VERIFY,
	  "4:53: write.compress: expected true or false, got 'yes'" },
	{ "steps_empty", HEAD "steps: []\n",
	  "3:8: steps: the list is empty; a recipe needs at least one step" },
	{ "steps_missing_value", HEAD "steps:\n",
	  "3:7: steps: expected a list of steps (- erase: chip, - write: {...}, ...), got nothing" },
	{ "write_missing_address", HEAD "steps:\n  - write: { file: app.bin }\n" VERIFY,
	  "4:12: write: missing required key 'address' (for example address: 0x0)" },
	{ "init_data_collides_with_write", HEAD "flash: { size: 512KB }\nsteps:\n  - write: { file: app.bin, address: 0x7C000 }\n  - write_init_data: { file: init.bin }\n" VERIFY,
	  "6:5: init data init.bin (0x7c000..0x7c07f) overlaps step 1 (write, line 5) at 0x7c000..0x7e063; writes are erased in 4 KiB sectors, so two writes must not share a sector" },
	{ "non_image_at_0_with_flash_params", HEAD "flash: { mode: dio }\nsteps:\n  - write: { file: raw.bin, address: 0x0 }\n" VERIFY,
	  "5:20: raw.bin is written at 0x0 but is not an ESP8266 image (first byte 0x01, expected 0xe9), so flash.size/mode/freq cannot be written into its header; check the file, or set flash: { size: keep, mode: keep, freq: keep }" },
	{ "verify_region_unknown_bytes", HEAD "steps:\n" WRITE_APP "  - verify: { regions: [ { address: 0x0, length: 0x4000 } ] }\n",
	  "5:26: verify region 0x0..0x3fff includes bytes no earlier step wrote or erased, so their MD5 cannot be known" },
};

/* Replace @DIR@, @APP_SHA@ and @INIT_SHA@ in an expected message. */
static void expand(const char *in, char *out, size_t len)
{
	size_t o = 0;
	while (*in && o + 80 < len) {
		if (strncmp(in, "@DIR@", 5) == 0) {
			o += (size_t)snprintf(out + o, len - o, "%s", dir);
			in += 5;
		} else if (strncmp(in, "@APP_SHA@", 9) == 0) {
			o += (size_t)snprintf(out + o, len - o, "%s", app_sha);
			in += 9;
		} else if (strncmp(in, "@INIT_SHA@", 10) == 0) {
			o += (size_t)snprintf(out + o, len - o, "%s", init_sha);
			in += 10;
		} else {
			out[o++] = *in++;
		}
	}
	out[o] = '\0';
}

static void test_bad_recipe(void **state)
{
	const bad_case *bc = *state;
	char name[96], want[800], want_err[1200], first[900];
	diags g;
	espl_error err = { 0, "" };

	snprintf(name, sizeof name, "%s.yaml", bc->name);
	espl_recipe *r = load(name, bc->text, &g, &err);
	expand(bc->want, want, sizeof want);
	assert_null(r);
	assert_int_equal(err.code, ESPL_ERECIPE);
	snprintf(first, sizeof first, "%s", g.first_error);
	assert_string_equal(first, want);
	/* the error value carries the same message as "file:line:col: error: ..." */
	const char *msg = strchr(strchr(want, ':') + 1, ':') + 2;
	snprintf(want_err, sizeof want_err, "%s/%s:%.*s: error: %s", dir, name,
	         (int)(msg - 2 - want), want, msg);
	assert_string_equal(err.msg, want_err);
	espl_recipe_free(r);
}

/* A write already reported as too big is not reported again by the verify
 * step after it ("nothing to check"): one error, not two. */
static void test_rejected_write_no_follow_on_error(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("follow_on.yaml", HEAD "flash: { size: 512KB }\nsteps:\n"
	                      "  - write: { file: small.bin, address: 0x7FE00 }\n" VERIFY, &g, &err);
	assert_null(r);
	assert_int_equal(g.errors, 1);
	assert_non_null(strstr(g.first_error, "past the end of the smallest allowed flash"));
	/* with no write at all, the verify is still an error of its own */
	r = load("no_write.yaml", HEAD "steps:\n" VERIFY, &g, &err);
	assert_null(r);
	assert_non_null(strstr(g.first_error, "nothing to check"));
}

/* ---- warnings (the recipe stays valid) -------------------------------- */

static void test_warning_unaligned_write_and_no_reset(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("warn.yaml", HEAD "steps:\n  - write: { file: small.bin, address: 0x1800 }\n" VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(g.errors, 0);
	assert_int_equal(g.warnings, 2);
	assert_string_equal(g.first_warning, "4:40: write.address: 0x1800 is not at a 4 KiB sector boundary; bytes 0x1000..0x17ff of its sector are erased too");
	espl_recipe_free(r);
}

static void test_non_image_at_0_with_keep(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	/* a raw blob at 0x0 is fine when nothing is to be patched into it */
	espl_recipe *r = load("rawkeep.yaml", HEAD "flash: { size: keep, mode: keep, freq: keep }\nsteps:\n  - write: { file: raw.bin, address: 0x0 }\n" VERIFY "  - reset: run\n", &g, &err);
	assert_non_null(r);
	assert_int_equal(g.errors + g.warnings, 0);
	assert_int_equal(r->image_declared_size, 0);
	espl_recipe_free(r);
}

static void test_warning_fixed_size_above_expect_min(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("sizewarn.yaml", HEAD "flash: { size: 4MB }\nexpect: { flash_size_min: 1MB }\nsteps:\n" WRITE_APP VERIFY "  - reset: run\n", &g, &err);
	assert_non_null(r);
	assert_int_equal(g.warnings, 1);
	assert_string_equal(g.first_warning, "3:16: flash.size is 4MB but expect.flash_size_min lets 1MB units through; they will fail (raise flash_size_min to 4MB)");
	espl_recipe_free(r);
}

/* ---- good recipes ------------------------------------------------------ */

static const char full_recipe[] =
	"recipe: golden-1\n"
	"chip: esp8266\n"
	"connect: { reset: none, baud: 0x1C200, flash_baud: 921600, stub: sub/other.bin }\n"
	"flash: { size: 4MB, mode: dout, freq: 80m }\n"
	"expect:\n"
	"  flash_size_min: 4MB\n"
	"  flash_manufacturer: [0xEF, gigadevice]\n"
	"  mac_oui: [\"5C:CF:7F\", 18-fe-34]\n"
	"steps:\n"
	"  - erase: { regions: [ { address: 0x10000, length: 64KB } ] }\n"
	"    retries: 0\n"
	"  - write: { file: app.bin, address: 0, sha256: @APP_SHA@, compress: false, skip_unchanged: true }\n"
	"    timeout: 90s\n"
	"  - write:\n"
	"      file: small.bin\n"
	"      address: 0x10000\n"
	"      retries: 5\n"
	"      timeout: 1500ms\n"
	"  - write_init_data: { file: init.bin, sha256: @INIT_SHA@, blank: false, rf_cal: keep }\n"
	"  - verify: { regions: [ { address: 0x0, length: 0x2064 }, { address: 0x10000, length: 1KB } ] }\n"
	"  - verify: md5\n"
	"  - reset: stay\n";

static void test_full_recipe_structure(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	char path[600];
	espl_recipe *r = load("full.yaml", full_recipe, &g, &err);
	assert_non_null(r);
	assert_int_equal(g.errors, 0);
	assert_int_equal(g.warnings, 0);
	assert_string_equal(r->name, "golden-1");

	assert_int_equal(r->connect.reset, ESPL_CONNECT_RESET_NONE);
	assert_int_equal(r->connect.baud, 115200);
	assert_int_equal(r->connect.flash_baud, 921600);
	assert_int_equal(r->connect.stub, ESPL_STUB_FILE);
	snprintf(path, sizeof path, "%s/sub/other.bin", dir);
	assert_string_equal(r->connect.stub_path, path);
	assert_false(r->connect.baud_default);

	assert_int_equal(r->flash.size_mode, ESPL_FLASH_SIZE_FIXED);
	assert_int_equal(r->flash.size, 4u << 20);
	assert_int_equal(r->flash.mode, ESPL_FLASH_DOUT);
	assert_int_equal(r->flash.freq, ESPL_FREQ_80M);

	assert_int_equal(r->expect.flash_size_min, 4u << 20);
	assert_int_equal(r->expect.n_manufacturers, 2);
	assert_int_equal(r->expect.manufacturers[0], 0xEF);
	assert_int_equal(r->expect.manufacturers[1], 0xC8);
	assert_int_equal(r->expect.n_ouis, 2);
	const uint8_t oui0[3] = { 0x5C, 0xCF, 0x7F }, oui1[3] = { 0x18, 0xFE, 0x34 };
	assert_memory_equal(r->expect.ouis[0], oui0, 3);
	assert_memory_equal(r->expect.ouis[1], oui1, 3);
	assert_int_equal(r->expect.pos.line, 5);

	assert_int_equal(r->n_steps, 7);
	const espl_step *s = r->steps;
	assert_int_equal(s[0].kind, ESPL_STEP_ERASE);
	assert_false(s[0].erase.chip);
	assert_int_equal(s[0].erase.n_regions, 1);
	assert_int_equal(s[0].erase.regions[0].address, 0x10000);
	assert_int_equal(s[0].erase.regions[0].length, 0x10000);
	assert_int_equal(s[0].retries, 0);
	assert_false(s[0].retries_default);
	assert_int_equal(s[0].pos.line, 10);
	assert_int_equal(s[0].pos.column, 5);

	assert_int_equal(s[1].kind, ESPL_STEP_WRITE);
	assert_int_equal(s[1].number, 2);
	snprintf(path, sizeof path, "%s/app.bin", dir);
	assert_string_equal(s[1].write.file.path, path);
	assert_int_equal(s[1].write.file.size, APP_SIZE);
	assert_string_equal(s[1].write.file.pin, app_sha);
	assert_string_equal(s[1].write.file.sha256, app_sha);
	assert_non_null(s[1].write.file.data);
	assert_int_equal(s[1].write.file.data[0], 0xE9);
	assert_int_equal(s[1].write.address, 0);
	assert_false(s[1].write.compress);
	assert_true(s[1].write.skip_unchanged);
	assert_int_equal(s[1].timeout_ms, 90000);
	assert_int_equal(s[1].retries, 2);
	assert_true(s[1].retries_default);

	assert_int_equal(s[2].write.address, 0x10000);
	assert_int_equal(s[2].retries, 5);
	assert_int_equal(s[2].timeout_ms, 1500);
	assert_false(s[2].retries_default);
	assert_false(s[2].timeout_default);

	assert_int_equal(s[3].kind, ESPL_STEP_WRITE_INIT_DATA);
	assert_false(s[3].init_data.blank);
	assert_int_equal(s[3].init_data.rf_cal, ESPL_RF_CAL_KEEP);
	assert_string_equal(s[3].init_data.file.sha256, init_sha);

	assert_int_equal(s[4].kind, ESPL_STEP_VERIFY);
	assert_false(s[4].verify.all);
	assert_int_equal(s[4].verify.n_regions, 2);
	assert_int_equal(s[4].verify.regions[1].address, 0x10000);
	assert_int_equal(s[4].verify.regions[1].length, 1024);
	assert_true(s[5].verify.all);
	assert_int_equal(s[6].kind, ESPL_STEP_RESET);
	assert_false(s[6].reset.run);
	assert_true(r->prepared);
	assert_int_equal(r->image_declared_size, 1u << 20); /* app.bin's header says 1MB */
	espl_recipe_free(r);
}

/* connect.stub names a generation: kept as the name, searched later */
static void test_stub_generation(void **state)
{
	(void)state;
	static const char *const names[] = { "legacy", "esp-flasher-stub" };
	for (int i = 0; i < 2; i++) {
		diags g;
		espl_error err = { 0, "" };
		char text[256];
		snprintf(text, sizeof text, HEAD "connect: { stub: %s }\nsteps:\n" WRITE_APP VERIFY, names[i]);
		espl_recipe *r = load("gen.yaml", text, &g, &err);
		if (!r)
			print_error("%s (%u errors: %s)\n", err.msg, g.errors, g.first_error);
		assert_non_null(r);
		assert_int_equal(r->connect.stub, ESPL_STUB_GENERATION);
		assert_string_equal(r->connect.stub_path, names[i]);
		assert_false(r->connect.stub_default);
		espl_recipe_free(r);
	}
}

/* connect.flash_baud as a ladder; a single number is a ladder of one. */
static void test_baud_ladder(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("ladder.yaml",
		HEAD "connect: { flash_baud: [3000000, 2000000, 1500000, 921600] }\nsteps:\n" WRITE_APP VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(r->connect.flash_baud, 3000000);
	assert_int_equal(r->connect.n_lower_bauds, 3);
	assert_int_equal(r->connect.lower_bauds[0], 2000000);
	assert_int_equal(r->connect.lower_bauds[2], 921600);
	assert_false(r->connect.flash_baud_default);
	assert_int_equal(espl_recipe_rom_baud(r), 921600); /* the ROM syncs at the last rate */
	espl_recipe_set_flash_baud(r, 460800);              /* --flash-baud: one rate, no ladder */
	assert_int_equal(r->connect.n_lower_bauds, 0);
	assert_int_equal(espl_recipe_rom_baud(r), 460800);
	espl_recipe_free(r);

	r = load("one.yaml", HEAD "connect: { flash_baud: 2000000 }\nsteps:\n" WRITE_APP VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(r->connect.flash_baud, 2000000);
	assert_int_equal(r->connect.n_lower_bauds, 0);
	assert_int_equal(espl_recipe_rom_baud(r), 2000000);
	espl_recipe_free(r);
}

static void test_defaults(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("defaults.yaml",
		HEAD "steps:\n  - erase: chip\n" WRITE_APP "  - write_init_data: { file: init.bin }\n" VERIFY "  - reset: run\n",
		&g, &err);
	assert_non_null(r);
	assert_int_equal(g.warnings, 0);
	assert_int_equal(r->connect.reset, ESPL_CONNECT_RESET_AUTO);
	assert_int_equal(r->connect.baud, 115200);
	assert_int_equal(r->connect.flash_baud, 460800);
	assert_int_equal(r->connect.stub, ESPL_STUB_BUILTIN);
	assert_true(r->connect.baud_default && r->connect.flash_baud_default && r->connect.stub_default);
	assert_int_equal(r->flash.size_mode, ESPL_FLASH_SIZE_DETECT);
	assert_int_equal(r->flash.mode, ESPL_FLASH_MODE_KEEP);
	assert_int_equal(r->flash.freq, ESPL_FREQ_KEEP);
	assert_int_equal(r->expect.n_manufacturers, 0);
	assert_int_equal(r->expect.flash_size_min, 0);

	const espl_step *s = r->steps;
	assert_true(s[0].erase.chip);
	assert_int_equal(s[0].retries, 1);
	assert_int_equal(s[0].timeout_ms, 120000);
	assert_true(s[0].retries_default && s[0].timeout_default);
	/* write: 40 s/MB of 0x2064 bytes -> 1 s, floor 10 s; wire 0x2064 bytes
	 * at 460800 baud -> 1 s */
	assert_true(s[1].write.compress);
	assert_false(s[1].write.skip_unchanged);
	assert_int_equal(s[1].retries, 2);
	assert_int_equal(s[1].timeout_ms, 11000);
	assert_true(s[2].init_data.blank);
	assert_int_equal(s[2].init_data.rf_cal, ESPL_RF_CAL_ERASE);
	assert_int_equal(s[2].retries, 2);
	assert_int_equal(s[3].retries, 1);
	assert_int_equal(s[3].timeout_ms, 10000);
	assert_true(s[4].reset.run);
	assert_int_equal(s[4].timeout_ms, 5000);
	espl_recipe_free(r);
}

static void test_default_timeouts_scale_with_size(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("bigerase.yaml",
		HEAD "connect: { flash_baud: 115200 }\nsteps:\n  - erase: { regions: [ { address: 0, length: 1MB } ] }\n" WRITE_APP VERIFY,
		&g, &err);
	assert_non_null(r);
	/* 30 s per 10^6 bytes: 1 MiB -> 31.46 s -> 32 s */
	assert_int_equal(r->steps[0].timeout_ms, 32000);
	/* 0x2064 bytes at 115200 baud: 0.72 s of wire -> 1 s, plus the 10 s floor */
	assert_int_equal(r->steps[1].timeout_ms, 11000);
	espl_recipe_free(r);
}

static void test_relative_paths(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	char path[600];
	/* the recipe lives in sub/, so app.bin is ../app.bin from there */
	espl_recipe *r = load("sub/rel.yaml",
		HEAD "steps:\n  - write: { file: ../app.bin, address: 0x0 }\n  - write: { file: other.bin, address: 0x10000 }\n" VERIFY,
		&g, &err);
	assert_non_null(r);
	snprintf(path, sizeof path, "%s/sub/../app.bin", dir);
	assert_string_equal(r->steps[0].write.file.path, path);
	snprintf(path, sizeof path, "%s/sub/other.bin", dir);
	assert_string_equal(r->steps[1].write.file.path, path);
	assert_int_equal(r->steps[1].write.file.size, 100);
	snprintf(path, sizeof path, "%s/sub", dir);
	assert_string_equal(r->dir, path);
	espl_recipe_free(r);

	/* absolute paths stay as they are; a missing relative file names the
	 * folder it was looked up in */
	char text[1024];
	snprintf(text, sizeof text, HEAD "steps:\n  - write: { file: %s/small.bin, address: 0x10000 }\n" VERIFY, dir);
	r = load("sub/abs.yaml", text, &g, &err);
	assert_non_null(r);
	snprintf(path, sizeof path, "%s/small.bin", dir);
	assert_string_equal(r->steps[0].write.file.path, path);
	espl_recipe_free(r);

	r = load("sub/missing.yaml", HEAD "steps:\n  - write: { file: app.bin, address: 0x0 }\n" VERIFY, &g, &err);
	assert_null(r);
	snprintf(path, sizeof path, "(resolved to %s/sub/app.bin)", dir);
	assert_non_null(strstr(g.first_error, path));
}

static void test_sha256_pin_ok_and_recipe_hash(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	char text[] = HEAD "steps:\n  - write: { file: app.bin, address: 0x0, sha256: @APP_SHA@ }\n" VERIFY;
	espl_recipe *r = load("pin.yaml", text, &g, &err);
	assert_non_null(r);
	assert_string_equal(r->steps[0].write.file.sha256, app_sha);
	/* the recipe keeps its own text and its hash (the database stores them) */
	char want[65];
	hex_sha256((const uint8_t *)r->text, r->text_len, want);
	assert_string_equal(r->sha256, want);
	assert_non_null(strstr(r->text, app_sha));
	espl_recipe_free(r);

	/* pins are case-insensitive: sha256sum prints lowercase, people paste upper */
	char upper[65];
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(app_sha[i] >= 'a' && app_sha[i] <= 'f' ? app_sha[i] - 32 : app_sha[i]);
	char text2[512];
	snprintf(text2, sizeof text2, HEAD "steps:\n  - write: { file: app.bin, address: 0x0, sha256: \"%s\" }\n" VERIFY, upper);
	r = load("pin_upper.yaml", text2, &g, &err);
	assert_non_null(r);
	espl_recipe_free(r);
}

static void test_multiple_errors_all_reported(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	espl_recipe *r = load("many.yaml",
		HEAD "connect: { baud: fast, colour: red }\nflash: { mode: qoi }\nsteps:\n" WRITE_APP VERIFY, &g, &err);
	assert_null(r);
	assert_int_equal(g.errors, 3);
}

static void test_missing_recipe_file(void **state)
{
	(void)state;
	espl_recipe *r = (espl_recipe *)1;
	espl_error err = { 0, "" };
	char path[600];
	snprintf(path, sizeof path, "%s/nope.yaml", dir);
	assert_int_equal(espl_recipe_load(path, NULL, NULL, &r, &err), ESPL_ENOTFOUND);
	assert_null(r);
	assert_non_null(strstr(err.msg, "nope.yaml"));
}

/* ---- runtime layout check (system area placed on the detected size) --- */

static void test_layout_checked_again_per_unit(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	/* a write at 0xFA000..0xFC063 is fine on a 4MB unit, but on a 1MB unit
	 * init data goes to 0xFC000 and shares its sector */
	espl_recipe *r = load("perunit.yaml",
		HEAD "steps:\n  - write: { file: app.bin, address: 0xFA000 }\n  - write_init_data: { file: init.bin, rf_cal: keep }\n" VERIFY,
		&g, &err);
	assert_non_null(r);
	assert_int_equal(espl_recipe_check_layout(r, 4u << 20, 4u << 20, &err), ESPL_OK);
	assert_int_equal(espl_recipe_check_layout(r, 1u << 20, 1u << 20, &err), ESPL_ERECIPE);
	assert_non_null(strstr(err.msg, ":5:5: error: init data init.bin (0xfc000..0xfc07f) overlaps step 1 (write, line 4) at 0xfa000..0xfc063"));
	/* and on 512KB the write itself does not fit */
	assert_int_equal(espl_recipe_check_layout(r, 512u << 10, 512u << 10, &err), ESPL_ERECIPE);
	assert_non_null(strstr(err.msg, "write of app.bin ends at 0xfc064, past the end of the smallest allowed flash (512KB, the size detected on this unit)"));
	espl_recipe_free(r);
}

/* ---- values ----------------------------------------------------------- */

static void test_size_parsing(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		uint32_t want;
	} cases[] = {
		{ "0", 0, 0 }, { "4096", 0, 4096 }, { "0x1000", 0, 0x1000 }, { "0X3fC000", 0, 0x3FC000 },
		{ "4KB", 0, 4096 }, { "4 KB", 0, 4096 }, { "512kb", 0, 512 * 1024 }, { "1MB", 0, 1u << 20 },
		{ "16MB", 0, 16u << 20 }, { "0x10KB", 0, 0x4000 }, { "4M", 0, 4u << 20 }, { "2MiB", 0, 2u << 20 },
		{ "4294967295", 0, 0xFFFFFFFFu }, { "4294967296", -1, 0 }, { "4096MB", -1, 0 },
		{ "0x", -1, 0 }, { "", -1, 0 }, { "1.5MB", -1, 0 }, { "-1", -1, 0 }, { "4GB", -1, 0 },
		{ "12abc", -1, 0 }, { "KB", -1, 0 }, { "0x1g", -1, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t v = 0xDEADBEEF;
		int rc = espl_recipe_parse_u32(cases[i].in, &v);
		if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
			fail_msg("parse_u32(\"%s\") = %d, 0x%x; want %d, 0x%x", cases[i].in, rc, v,
			         cases[i].rc, cases[i].want);
	}
}

static void test_duration_and_oui_parsing(void **state)
{
	(void)state;
	unsigned ms = 0;
	assert_int_equal(espl_recipe_parse_duration_ms("30", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(espl_recipe_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(espl_recipe_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(espl_recipe_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(espl_recipe_parse_duration_ms("2h", &ms), -1);
	assert_int_equal(espl_recipe_parse_duration_ms("s", &ms), -1);
	assert_int_equal(espl_recipe_parse_duration_ms("-5s", &ms), -1);

	uint8_t oui[3];
	const uint8_t want[3] = { 0x5C, 0xCF, 0x7F };
	assert_int_equal(espl_recipe_parse_oui("5C:CF:7F", oui), 0);
	assert_memory_equal(oui, want, 3);
	assert_int_equal(espl_recipe_parse_oui("5c-cf-7f", oui), 0);
	assert_memory_equal(oui, want, 3);
	assert_int_equal(espl_recipe_parse_oui("5C:CF:7F:00", oui), -1);
	assert_int_equal(espl_recipe_parse_oui("5C:CF", oui), -1);
	assert_int_equal(espl_recipe_parse_oui("5CCF7F", oui), -1);
	assert_int_equal(espl_recipe_parse_oui("5G:CF:7F", oui), -1);
}

static void test_system_area(void **state)
{
	(void)state;
	static const struct {
		uint32_t size, rf, init, blank;
	} cases[] = {
		{ 512u << 10, 0x7B000, 0x7C000, 0x7E000 }, { 1u << 20, 0xFB000, 0xFC000, 0xFE000 },
		{ 2u << 20, 0x1FB000, 0x1FC000, 0x1FE000 }, { 4u << 20, 0x3FB000, 0x3FC000, 0x3FE000 },
		{ 8u << 20, 0x7FB000, 0x7FC000, 0x7FE000 }, { 16u << 20, 0xFFB000, 0xFFC000, 0xFFE000 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		espl_system_area a;
		assert_int_equal(espl_system_area_for(cases[i].size, &a, NULL), 0);
		assert_int_equal(a.rf_cal, cases[i].rf);
		assert_int_equal(a.init_data, cases[i].init);
		assert_int_equal(a.blank, cases[i].blank);
	}
	espl_system_area a;
	assert_int_equal(espl_system_area_for(0x1000, &a, NULL), ESPL_EARG);
}

static void test_system_flash_size_modes(void **state)
{
	(void)state;
	diags g;
	espl_error err = { 0, "" };
	uint32_t size = 0;

	espl_recipe *r = load("sz_detect.yaml", HEAD "steps:\n" WRITE_APP VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(espl_recipe_system_flash_size(r, 2u << 20, &size, &err), 0);
	assert_int_equal(size, 2u << 20);
	assert_int_equal(espl_recipe_min_flash_size(r), 0);
	espl_recipe_free(r);

	r = load("sz_fixed.yaml", HEAD "flash: { size: 1MB }\nsteps:\n" WRITE_APP VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(espl_recipe_system_flash_size(r, 4u << 20, &size, &err), 0);
	assert_int_equal(size, 1u << 20);
	assert_int_equal(espl_recipe_min_flash_size(r), 1u << 20);
	/* a 512KB chip cannot hold a recipe that declares 1MB */
	assert_int_equal(espl_recipe_system_flash_size(r, 512u << 10, &size, &err), ESPL_ECHIP);
	assert_string_equal(err.msg, "the chip has 512KB of flash but flash.size says 1MB");
	espl_recipe_free(r);

	/* keep: the SDK uses the size the image header declares (app.bin: 1MB) */
	r = load("sz_keep.yaml", HEAD "flash: { size: keep }\nsteps:\n" WRITE_APP VERIFY, &g, &err);
	assert_non_null(r);
	assert_int_equal(espl_recipe_system_flash_size(r, 4u << 20, &size, &err), 0);
	assert_int_equal(size, 1u << 20);
	espl_recipe_free(r);
}

static void test_names(void **state)
{
	(void)state;
	char buf[16];
	assert_string_equal(espl_flash_manufacturer_name(0xEF), "Winbond");
	assert_null(espl_flash_manufacturer_name(0x42));
	/* One table for the recipe and identify's log (espl_flash_vendor). */
	for (unsigned id = 0; id < 256; id++) {
		const char *name = espl_flash_manufacturer_name((uint8_t)id);
		assert_string_equal(espl_flash_vendor((uint8_t)id), name ? name : "unknown");
		uint8_t back = 0;
		if (name) {
			assert_int_equal(espl_flash_manufacturer_by_name(name, &back), 0);
			assert_int_equal(back, id);
		}
	}
	uint8_t id = 0;
	assert_int_equal(espl_flash_manufacturer_by_name("cypress", &id), 0); /* an alias */
	assert_int_equal(id, 0x01);
	assert_int_equal(espl_flash_manufacturer_by_name("Acme", &id), -1);
	assert_string_equal(espl_flash_mode_name(ESPL_FLASH_DIO), "dio");
	assert_string_equal(espl_flash_mode_name(ESPL_FLASH_MODE_KEEP), "keep");
	assert_string_equal(espl_flash_freq_name(ESPL_FREQ_80M), "80m");
	assert_string_equal(espl_recipe_format_size(4u << 20, buf, sizeof buf), "4MB");
	assert_string_equal(espl_recipe_format_size(512u << 10, buf, sizeof buf), "512KB");
	assert_string_equal(espl_recipe_format_size(0x2064, buf, sizeof buf), "0x2064");
}

/* The sector rule recipes and `espline write` share. */
static void test_sectors_meet(void **state)
{
	(void)state;
	assert_false(espl_recipe_sectors_meet(0x0, 0x1000, 0x1000, 0x2000));  /* back to back */
	assert_true(espl_recipe_sectors_meet(0x0, 0x1001, 0x1000, 0x2000));   /* one byte into the next */
	assert_true(espl_recipe_sectors_meet(0x800, 0x900, 0xA00, 0xB00));    /* same sector, no byte shared */
	assert_true(espl_recipe_sectors_meet(0xA00, 0xB00, 0x800, 0x900));    /* either order */
	assert_false(espl_recipe_sectors_meet(0x0, 0x1000, 0x2000, 0x3000));
	assert_true(espl_recipe_sectors_meet(0x3FF000, 0x400000, 0x0, 0x400000));  /* one inside the other */
}

int main(void)
{
	const size_t n_bad = sizeof bad_cases / sizeof bad_cases[0];
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_sectors_meet),
		cmocka_unit_test(test_warning_unaligned_write_and_no_reset),
		cmocka_unit_test(test_non_image_at_0_with_keep),
		cmocka_unit_test(test_warning_fixed_size_above_expect_min),
		cmocka_unit_test(test_full_recipe_structure),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_baud_ladder),
		cmocka_unit_test(test_stub_generation),
		cmocka_unit_test(test_default_timeouts_scale_with_size),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_sha256_pin_ok_and_recipe_hash),
		cmocka_unit_test(test_multiple_errors_all_reported),
		cmocka_unit_test(test_missing_recipe_file),
		cmocka_unit_test(test_layout_checked_again_per_unit),
		cmocka_unit_test(test_size_parsing),
		cmocka_unit_test(test_duration_and_oui_parsing),
		cmocka_unit_test(test_system_area),
		cmocka_unit_test(test_system_flash_size_modes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_rejected_write_no_follow_on_error),
	};
	const size_t n_fixed = sizeof fixed / sizeof fixed[0];
	struct CMUnitTest *tests = calloc(n_bad + n_fixed, sizeof *tests);
	if (!tests)
		return 1;
	for (size_t i = 0; i < n_bad; i++) {
		tests[i].name = bad_cases[i].name;
		tests[i].test_func = test_bad_recipe;
		tests[i].initial_state = (void *)&bad_cases[i];
	}
	memcpy(tests + n_bad, fixed, sizeof fixed);
	int rc = _cmocka_run_group_tests("recipe", tests, n_bad + n_fixed, setup_dir, teardown_dir);
	free(tests);
	return rc;
}
