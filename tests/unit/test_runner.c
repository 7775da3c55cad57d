/* test_runner.c - recipes run on the simulated chip (tests/sim/sim_chip.h),
 * in process: every step kind, skip_unchanged, init-data addresses for each
 * flash size, expect failures, retries, MD5 mismatches, the runtime layout
 * check.
 *
 * The fake port is tests/sim/sim_port.h, shared with test_loader.c: the
 * chip (a sim_unit) outlives the port, so a second run can meet the same
 * unit, and "lose the next N requests with opcode X" makes a step fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "espline/image.h"
#include "espline/loader.h"
#include "espline/recipe.h"
#include "espline/runner.h"
#include "espline/slip.h"
#include "../sim/sim_chip.h"
#include "../sim/sim_port.h"
#include "loader_fixture.h"

/* ---- a port wired straight to a sim_chip: tests/sim/sim_port.h -------- */

typedef sim_unit unit_chip;
typedef sim_port chip_port;

static const uint8_t espressif_mac[6] = { 0x5C, 0xCF, 0x7F, 0x12, 0x34, 0x56 };

static unit_chip *unit_of(const sim_chip_config *cfg)
{
	unit_chip *uc = sim_unit_new(cfg);
	assert_non_null(uc);
	return uc;
}

/* A fresh unit (26 MHz crystal); mac NULL = 5c:cf:7f:12:34:56. */
static unit_chip *new_unit(size_t flash_size, uint8_t manufacturer, const uint8_t mac[6])
{
	sim_chip_config cfg = chip_of_size(flash_size, manufacturer, 26, mac ? mac : espressif_mac);
	return unit_of(&cfg);
}

/* A used module: every sector holds leftovers, so erase: chip erases. */
static unit_chip *new_used_unit(size_t flash_size)
{
	sim_chip_config cfg = chip_of_size(flash_size, 0xEF, 26, espressif_mac);
	cfg.dirty_pct = 100;
	return unit_of(&cfg);
}

static void free_unit(unit_chip *uc) { sim_unit_free(uc); }

static chip_port *attach(unit_chip *uc)
{
	chip_port *cp = sim_port_attach(uc);
	assert_non_null(cp);
	return cp;
}

static uint8_t *flash_of(unit_chip *uc, size_t *size)
{
	return sim_chip_flash(uc->chip, size);
}

/* ---- fixture: a folder with a stub, images and recipes ---------------- */

static char dir[128];
static uint8_t fw[0x6000];
static uint8_t init_data[128];

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A valid ESP8266 v1 image (one segment, right checksum) followed by
 * firmware-like bytes. */
static void make_firmware(void)
{
	fill_firmware(fw, sizeof fw, 12345, "espline runner ");
	const uint32_t seg_len = 0x1000;
	fw[0] = 0xE9;
	fw[1] = 1;
	fw[2] = 0;    /* qio */
	fw[3] = 0x20; /* 1MB, 40m */
	memcpy(fw + 4, "\x04\x00\x10\x40", 4);
	memcpy(fw + 8, "\x00\x00\x10\x40", 4);
	fw[12] = (uint8_t)seg_len;
	fw[13] = (uint8_t)(seg_len >> 8);
	fw[14] = fw[15] = 0;
	uint8_t cs = 0xEF;
	for (uint32_t i = 0; i < seg_len; i++)
		cs ^= fw[16 + i];
	size_t at = 16 + seg_len;
	while (at % 16 != 15)
		fw[at++] = 0;
	fw[at] = cs;
	for (size_t i = 0; i < sizeof init_data; i++)
		init_data[i] = (uint8_t)(0x40 + i);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/espline-test-runner-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	make_firmware();
	write_file("fw.bin", fw, sizeof fw);
	write_file("init.bin", init_data, sizeof init_data);
	char stub[160];
	snprintf(stub, sizeof stub, "%s/stub.json", dir);
	write_fake_stub_to(stub);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

typedef struct fixture {
	espl_recipe *recipe;
	espl_plan *plan;
} fixture;

#define HEAD "recipe: t\nchip: esp8266\nconnect: { stub: stub.json, flash_baud: 921600 }\n"
/* fw.bin at 0x10000, written only where the chip differs, then verified */
#define SKIP_UNCHANGED HEAD "steps:\n  - write: { file: fw.bin, address: 0x10000, skip_unchanged: true }\n  - verify: md5\n"

static void load_plan(const char *name, const char *text, fixture *fx)
{
	espl_error err = { 0, "" };
	write_file(name, text, strlen(text));
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (espl_recipe_load(path, NULL, NULL, &fx->recipe, &err) < 0 ||
	    espl_recipe_prepare(fx->recipe, NULL, NULL, &err) < 0 ||
	    espl_plan_new(fx->recipe, NULL, &fx->plan, &err) < 0)
		fail_msg("%s: %s", name, err.msg);
}

static void free_plan(fixture *fx)
{
	espl_plan_free(fx->plan);
	espl_recipe_free(fx->recipe);
}

typedef struct observer {
	unit_chip *uc;
	int corrupt_after_write;   /* flip a flash bit when a write step is done */
	uint32_t corrupt_at;
	char log[8192];
	size_t log_len;
} observer;

static void on_step_done(void *ctx, const espl_step_result *s)
{
	observer *ob = ctx;
	if (ob->corrupt_after_write && s->step->kind == ESPL_STEP_WRITE && s->status == ESPL_STEP_PASSED) {
		size_t size;
		flash_of(ob->uc, &size)[ob->corrupt_at] ^= 0x01; /* a bit that did not hold */
		ob->corrupt_after_write = 0;
	}
}

static void on_log(void *ctx, int level, const char *msg)
{
	observer *ob = ctx;
	(void)level;
	ob->log_len += (size_t)snprintf(ob->log + ob->log_len, sizeof ob->log - ob->log_len, "%s\n", msg);
	if (ob->log_len >= sizeof ob->log)
		ob->log_len = sizeof ob->log - 1;
}

/* Runner options whose loader log goes into ob->log. */
static void logged_options(espl_runner_options *o, observer *ob)
{
	espl_runner_options_init(o);
	o->loader_events.ctx = ob;
	o->loader_events.log = on_log;
}

/* What a port loses on the way to the chip: nothing, or the requests with
 * opcode op, count of them (-1: all) after the first skip. */
#define NO_LOSS ((sim_port_fault){ .op = -1 })
#define LOSE(opcode, n) ((sim_port_fault){ .op = (opcode), .count = (n) })

/* Run plan on uc through a fresh port (the runner closes it) that loses
 * what drop says; o NULL = the runner's defaults. */
static int run_losing(const espl_plan *plan, unit_chip *uc, sim_port_fault drop,
                      const espl_runner_options *o, espl_unit_result *res)
{
	chip_port *cp = attach(uc);
	cp->drop = drop;
	return espl_runner_run_port(plan, &cp->base, o, res);
}

/* Run fx's plan on uc: two connect attempts within 3 s, step events and
 * the loader log to ob. */
static int run_on(fixture *fx, unit_chip *uc, observer *ob, espl_unit_result *res)
{
	espl_runner_options o;
	logged_options(&o, ob);
	o.connect_attempts = 2;
	o.connect_timeout_ms = 3000;
	o.events.ctx = ob;
	o.events.step_done = on_step_done;
	ob->uc = uc;
	return run_losing(fx->plan, uc, NO_LOSS, &o, res);
}

/* A recipe, one fresh 1 MB Winbond unit, an observer and a result: what
 * most tests set up. */
typedef struct one_unit {
	fixture fx;
	unit_chip *uc;
	observer ob;
	espl_unit_result res;
} one_unit;

static void case_init(one_unit *c, const char *name, const char *recipe)
{
	memset(c, 0, sizeof *c);
	load_plan(name, recipe, &c->fx);
	c->uc = new_unit(1u << 20, 0xEF, NULL);
}

/* Run the case's plan on its unit (run_on). */
static int run_case(one_unit *c)
{
	return run_on(&c->fx, c->uc, &c->ob, &c->res);
}

/* fw.bin is on the case's unit at address. */
static void assert_fw_at(one_unit *c, uint32_t address)
{
	size_t size;
	assert_memory_equal(flash_of(c->uc, &size) + address, fw, sizeof fw);
}

static void case_free(one_unit *c)
{
	espl_unit_result_clear(&c->res);
	free_unit(c->uc);
	free_plan(&c->fx);
}

static void md5_hex(const uint8_t *d, size_t n, char out[33])
{
	unsigned char md[16];
	unsigned int len;
	assert_true(EVP_Digest(d, n, md, &len, EVP_md5(), NULL));
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static bool all_ff(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0xFF)
			return false;
	return true;
}

/* ---- tests ------------------------------------------------------------ */

static void test_full_recipe_passes(void **state)
{
	(void)state;
	fixture fx;
	observer ob = { 0 };
	espl_unit_result res;
	load_plan("full.yaml",
	          HEAD "flash: { size: detect, mode: dio, freq: 40m }\n"
	          "expect: { flash_size_min: 1MB, flash_manufacturer: [Winbond], mac_oui: [\"5C:CF:7F\"] }\n"
	          "steps:\n  - erase: chip\n  - write: { file: fw.bin, address: 0x0 }\n"
	          "  - write_init_data: { file: init.bin }\n  - verify: md5\n  - reset: run\n", &fx);
	unit_chip *uc = new_unit(4u << 20, 0xEF, NULL);
	size_t size;
	uint8_t *flash = flash_of(uc, &size);
	memset(flash + 0x3FB000, 0x00, 0x5000); /* old RF cal, init data, params */

	int rc = run_on(&fx, uc, &ob, &res);
	if (rc)
		fail_msg("unit failed: %s\nlog:\n%s", res.first_error.msg, ob.log);
	assert_true(res.pass);
	assert_int_equal(res.failed_phase, ESPL_PHASE_NONE);
	assert_true(res.connected && res.identified);
	assert_string_equal(res.chip.mac_str, "5c:cf:7f:12:34:56");
	assert_int_equal(res.chip.flash_size, 4u << 20);
	assert_int_equal(res.system_flash_size, 4u << 20);
	assert_string_equal(res.recipe_name, "t");
	assert_int_equal(res.n_steps, 5);
	for (size_t i = 0; i < res.n_steps; i++) {
		assert_int_equal(res.steps[i].status, ESPL_STEP_PASSED);
		assert_int_equal(res.steps[i].attempts, 1);
	}
	/* the header says dio and the detected 4MB; everything after it as in the file */
	assert_int_equal(flash[2], 0x02);
	assert_int_equal(flash[3], 0x40);
	assert_memory_equal(flash + 4, fw + 4, sizeof fw - 4);
	assert_memory_equal(flash + 0x3FC000, init_data, sizeof init_data);
	assert_true(all_ff(flash + 0x3FC000 + sizeof init_data, 0x1000 - sizeof init_data));
	assert_true(all_ff(flash + 0x3FB000, 0x1000)); /* RF cal erased */
	assert_true(all_ff(flash + 0x3FE000, 0x1000)); /* blank */
	/* three regions, each verified against the MD5 of what was written */
	assert_int_equal(res.n_regions, 3);
	char want[33];
	md5_hex(flash, sizeof fw, want);
	assert_int_equal(res.regions[0].address, 0);
	assert_string_equal(res.regions[0].expected_md5, want);
	assert_string_equal(res.regions[0].actual_md5, want);
	assert_int_equal(res.regions[1].address, 0x3FC000);
	assert_int_equal(res.regions[2].address, 0x3FE000);
	for (size_t i = 0; i < res.n_regions; i++)
		assert_true(res.regions[i].verified);
	assert_int_equal(res.steps[1].bytes, sizeof fw);
	espl_unit_result_clear(&res);
	free_unit(uc);
	free_plan(&fx);
}

static void test_init_data_address_per_flash_size(void **state)
{
	(void)state;
	static const uint32_t sizes[] = { 512u << 10, 1u << 20, 2u << 20, 4u << 20, 16u << 20 };
	fixture fx;
	load_plan("init.yaml", HEAD "steps:\n  - write_init_data: { file: init.bin }\n  - verify: md5\n", &fx);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		observer ob = { 0 };
		espl_unit_result res;
		uint32_t s = sizes[i];
		unit_chip *uc = new_unit(s, 0xEF, NULL);
		size_t size;
		uint8_t *flash = flash_of(uc, &size);
		memset(flash + s - 0x6000, 0x00, 0x6000);
		if (run_on(&fx, uc, &ob, &res) != ESPL_OK)
			fail_msg("%u bytes: %s", s, res.first_error.msg);
		assert_int_equal(res.system_flash_size, s);
		assert_memory_equal(flash + s - 0x4000, init_data, sizeof init_data);
		assert_true(all_ff(flash + s - 0x5000, 0x1000)); /* RF cal erased */
		assert_true(all_ff(flash + s - 0x2000, 0x1000)); /* blank */
		assert_int_equal(flash[s - 0x6000], 0x00);        /* nothing else touched */
		assert_int_equal(flash[s - 0x3000], 0x00);
		assert_int_equal(flash[s - 0x1000], 0x00);
		assert_int_equal(res.regions[0].address, s - 0x4000);
		espl_unit_result_clear(&res);
		free_unit(uc);
	}
	free_plan(&fx);
}

static void test_skip_unchanged_second_run_writes_nothing(void **state)
{
	(void)state;
	one_unit c;
	case_init(&c, "skip.yaml", SKIP_UNCHANGED);
	size_t size;

	assert_int_equal(run_case(&c), ESPL_OK);
	assert_int_equal(c.res.steps[0].bytes, sizeof fw);
	assert_int_equal(c.res.steps[0].bytes_skipped, 0);
	assert_false(c.res.steps[0].skipped);
	assert_int_equal(c.res.steps[0].md5_address, 0x10000);
	assert_int_equal(c.res.steps[0].md5_length, sizeof fw);
	assert_false(c.res.regions[0].skipped);
	espl_unit_result_clear(&c.res);
	assert_fw_at(&c, 0x10000);

	/* the same unit again: MD5 matches, nothing is written, still verified */
	assert_int_equal(run_case(&c), ESPL_OK);
	assert_true(c.res.pass);
	assert_int_equal(c.res.steps[0].bytes, 0);
	assert_int_equal(c.res.steps[0].bytes_skipped, sizeof fw);
	assert_true(c.res.steps[0].skipped);
	assert_string_equal(c.res.steps[0].actual_md5, c.res.steps[0].expected_md5);
	assert_true(c.res.regions[0].skipped);
	assert_true(c.res.regions[0].verified);
	espl_unit_result_clear(&c.res);

	/* change one byte on the chip: the third run writes again, but only
	 * the 16 KiB chunk holding it */
	flash_of(c.uc, &size)[0x10000 + 100] ^= 0xFF;
	assert_int_equal(run_case(&c), ESPL_OK);
	assert_int_equal(c.res.steps[0].bytes, 0x4000);
	assert_int_equal(c.res.steps[0].bytes_skipped, sizeof fw - 0x4000);
	assert_false(c.res.steps[0].skipped);
	assert_fw_at(&c, 0x10000);
	case_free(&c);
}

/* skip_unchanged on a unit that differs in one place: only the chunk that
 * differs is sent (one FLASH_DEFL_BEGIN), and verify still hashes it all. */
static void test_skip_unchanged_writes_only_the_differing_chunk(void **state)
{
	(void)state;
	one_unit c;
	case_init(&c, "chunk.yaml", SKIP_UNCHANGED);
	size_t size;

	assert_int_equal(run_case(&c), ESPL_OK);
	espl_unit_result_clear(&c.res);
	/* one sector in the second (last, 8 KiB) chunk differs */
	memset(flash_of(c.uc, &size) + 0x10000 + 0x5000, 0x00, 0x1000);
	unsigned begins = c.uc->op_count[ESPL_OP_FLASH_DEFL_BEGIN], md5s = c.uc->op_count[ESPL_OP_SPI_FLASH_MD5];
	assert_int_equal(run_case(&c), ESPL_OK);
	assert_true(c.res.pass);
	assert_int_equal(c.res.steps[0].bytes, 0x2000);
	assert_int_equal(c.res.steps[0].bytes_skipped, 0x4000);
	assert_false(c.res.steps[0].skipped);
	assert_int_equal(c.uc->op_count[ESPL_OP_FLASH_DEFL_BEGIN] - begins, 1);
	/* whole image, two chunks, then the verify of the whole image */
	assert_int_equal(c.uc->op_count[ESPL_OP_SPI_FLASH_MD5] - md5s, 4);
	assert_true(c.res.regions[0].verified);
	assert_false(c.res.regions[0].skipped);
	assert_fw_at(&c, 0x10000);
	case_free(&c);
}

/* A region skip_unchanged found on the chip is not hashed again by verify
 * (the chip just computed that MD5), unless something may have written since
 * that the runner cannot account for: here a later step that failed once
 * (a lost FLASH_DEFL_BEGIN) and was retried. */
static void test_verify_rehashes_a_skipped_region_unless_sure(void **state)
{
	(void)state;
	fixture fx, retried;
	load_plan("keep.yaml", SKIP_UNCHANGED, &fx);
	load_plan("retried.yaml",
	          HEAD "steps:\n  - write: { file: fw.bin, address: 0x10000, skip_unchanged: true }\n"
	          "  - write: { file: fw.bin, address: 0x40000 }\n    retries: 1\n  - verify: md5\n", &retried);
	unit_chip *uc = new_unit(1u << 20, 0xEF, NULL);
	observer ob = { 0 };
	espl_unit_result res;

	assert_int_equal(run_on(&fx, uc, &ob, &res), ESPL_OK);
	espl_unit_result_clear(&res);
	unsigned md5s = uc->op_count[ESPL_OP_SPI_FLASH_MD5];
	assert_int_equal(run_on(&fx, uc, &ob, &res), ESPL_OK);
	assert_int_equal(uc->op_count[ESPL_OP_SPI_FLASH_MD5] - md5s, 1);
	assert_true(res.regions[0].skipped);
	assert_true(res.regions[0].verified);
	assert_string_equal(res.regions[0].actual_md5, res.regions[0].expected_md5);
	espl_unit_result_clear(&res);

	/* a retried step after the check: verify hashes both regions again */
	espl_runner_options o;
	logged_options(&o, &ob);
	o.connect_attempts = 2;
	o.connect_timeout_ms = 3000;
	md5s = uc->op_count[ESPL_OP_SPI_FLASH_MD5];
	int rc = run_losing(retried.plan, uc, LOSE(ESPL_OP_FLASH_DEFL_BEGIN, 1), &o, &res);
	if (rc)
		fail_msg("%s", res.first_error.msg);
	assert_int_equal(res.steps[1].attempts, 2);
	assert_true(res.regions[0].skipped);
	assert_true(res.regions[0].verified);
	/* skip check + the retry's look at what attempt 1 left (a retry
	 * resumes) + verify of region 1 + verify of region 2 */
	assert_int_equal(uc->op_count[ESPL_OP_SPI_FLASH_MD5] - md5s, 4);
	espl_unit_result_clear(&res);
	free_unit(uc);
	free_plan(&fx);
	free_plan(&retried);
}

static void test_expect_failures_touch_nothing(void **state)
{
	(void)state;
	static const uint8_t other_mac[6] = { 0x18, 0xFE, 0x34, 0x01, 0x02, 0x03 };
	static const struct {
		const char *expect;
		size_t flash_size;
		uint32_t manufacturer;
		const uint8_t *mac;
		const char *want;
	} cases[] = {
		{ "{ flash_manufacturer: [Winbond, 0x68] }", 4u << 20, 0xC8, NULL,
		  "expect: expect.flash_manufacturer (line 4): flash manufacturer 0xC8 (GigaDevice) is not one of 0xEF (Winbond), 0x68 (Boya)" },
		{ "{ flash_size_min: 4MB }", 1u << 20, 0xEF, NULL,
		  "expect: expect.flash_size_min (line 4): the unit has 1MB of flash, the recipe needs at least 4MB" },
		{ "{ mac_oui: [\"5C:CF:7F\", \"AC:D0:74\"] }", 4u << 20, 0xEF, other_mac,
		  "expect: expect.mac_oui (line 4): MAC 18:fe:34:01:02:03 has OUI 18:FE:34, not one of 5C:CF:7F, AC:D0:74" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[512];
		fixture fx;
		observer ob = { 0 };
		espl_unit_result res;
		snprintf(text, sizeof text, HEAD "expect: %s\nsteps:\n  - erase: chip\n  - write: { file: fw.bin, address: 0x0 }\n  - verify: md5\n",
		         cases[i].expect);
		load_plan("expect.yaml", text, &fx);
		unit_chip *uc = new_unit(cases[i].flash_size, cases[i].manufacturer, cases[i].mac);
		size_t size;
		uint8_t *flash = flash_of(uc, &size);
		memset(flash, 0x5A, size);
		assert_int_equal(run_on(&fx, uc, &ob, &res), ESPL_EPART);
		assert_false(res.pass);
		assert_true(res.identified);
		assert_int_equal(res.failed_phase, ESPL_PHASE_EXPECT);
		assert_string_equal(res.first_error.msg, cases[i].want);
		for (size_t k = 0; k < res.n_steps; k++)
			assert_int_equal(res.steps[k].status, ESPL_STEP_NOT_RUN);
		assert_int_equal(flash[0], 0x5A);               /* not erased, not written */
		assert_int_equal(flash[size - 1], 0x5A);
		espl_unit_result_clear(&res);
		free_unit(uc);
		free_plan(&fx);
	}
}

static void test_retry_recovers_from_one_lost_command(void **state)
{
	(void)state;
	one_unit c;
	case_init(&c, "retry.yaml",
	          HEAD "steps:\n  - write: { file: fw.bin, address: 0x0 }\n  - verify: md5\n    retries: 1\n");
	espl_runner_options o;
	logged_options(&o, &c.ob);
	/* SPI_FLASH_MD5 may be sent twice: the loader repeats one lost
	 * request itself, and the step passes at its first attempt. */
	int rc = run_losing(c.fx.plan, c.uc, LOSE(0x13, 1), &o, &c.res);
	if (rc)
		fail_msg("%s\n%s", c.res.first_error.msg, c.ob.log);
	assert_true(c.res.pass);
	assert_int_equal(c.res.steps[1].attempts, 1);
	assert_int_equal(c.uc->op_count[0x13], 2); /* cp was closed by the runner */
	espl_unit_result_clear(&c.res);

	/* Lost as often as the loader tries (3 times): the step retries. */
	c.ob.log[0] = '\0';
	c.ob.log_len = 0;
	rc = run_losing(c.fx.plan, c.uc, LOSE(0x13, 3), &o, &c.res);
	if (rc)
		fail_msg("%s\n%s", c.res.first_error.msg, c.ob.log);
	assert_true(c.res.pass);
	assert_int_equal(c.res.steps[0].attempts, 1);
	assert_int_equal(c.res.steps[1].attempts, 2);
	assert_int_equal(c.res.steps[1].status, ESPL_STEP_PASSED);
	assert_non_null(strstr(c.ob.log, "step 2 (verify) attempt 1 failed"));
	espl_unit_result_clear(&c.res);

	/* lost every time: the step fails after 1 + retries attempts */
	rc = run_losing(c.fx.plan, c.uc, LOSE(0x13, 1000), &o, &c.res);
	assert_int_equal(rc, ESPL_ETIMEOUT);
	assert_false(c.res.pass);
	assert_int_equal(c.res.steps[1].attempts, 2);
	assert_int_equal(c.res.steps[1].status, ESPL_STEP_FAILED);
	assert_int_equal(c.res.failed_phase, ESPL_PHASE_STEP);
	assert_non_null(strstr(c.res.first_error.msg, "step 2 (verify, line 6), after 2 attempts: "));
	assert_false(c.res.regions[0].verified);
	case_free(&c);
}

/* How many blocks erase: chip (step 1) hashes on a used module: a run
 * without faults tells. */
static unsigned blocks_hashed_by_erase(fixture *fx)
{
	unit_chip *uc = new_used_unit(1u << 20);
	espl_unit_result res;
	assert_int_equal(run_losing(fx->plan, uc, NO_LOSS, NULL, &res), 0);
	unsigned n = res.steps[0].blocks_checked;
	assert_true(n > 0 && res.steps[0].blocks_dirty == n);
	espl_unit_result_clear(&res);
	free_unit(uc);
	return n;
}

/* A lost request in each kind of step (for MD5, which the loader repeats
 * by itself, lost as often as the loader tries), on a used module: the
 * step's second attempt passes.  The erase step's blank check hashes
 * blocks first; the verify case lets those MD5s through. */
static void test_each_step_kind_recovers_from_one_lost_request(void **state)
{
	(void)state;
	struct {
		int op;
		size_t step;
		int lost, skip;
	} cases[] = {
		{ 0xD0, 0, 1, 0 }, /* ERASE_FLASH: erase chip (most blocks dirty) */
		{ 0x13, 0, 3, 0 }, /* SPI_FLASH_MD5: erase chip's blank check */
		{ 0x10, 1, 1, 0 }, /* FLASH_DEFL_BEGIN: write */
		{ 0xD1, 2, 1, 0 }, /* ERASE_REGION: write_init_data erases the RF cal sector */
		{ 0x13, 3, 3, -1 }, /* SPI_FLASH_MD5: verify (skip: the blank check's) */
	};
	fixture fx;
	load_plan("lost.yaml",
	          HEAD "steps:\n  - erase: chip\n  - write: { file: fw.bin, address: 0x0 }\n"
	          "  - write_init_data: { file: init.bin }\n  - verify: md5\n", &fx);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unit_chip *uc = new_used_unit(1u << 20);
		espl_unit_result res;
		sim_port_fault drop = LOSE(cases[i].op, cases[i].lost);
		drop.skip = cases[i].skip < 0 ? (int)blocks_hashed_by_erase(&fx) : cases[i].skip;
		int rc = run_losing(fx.plan, uc, drop, NULL, &res);
		if (rc)
			fail_msg("lost op 0x%02X: %s", cases[i].op, res.first_error.msg);
		for (size_t k = 0; k < res.n_steps; k++)
			if (res.steps[k].attempts != (k == cases[i].step ? 2u : 1u))
				fail_msg("lost op 0x%02X: step %zu took %u attempts", cases[i].op, k + 1, res.steps[k].attempts);
		assert_int_equal(res.steps[0].bytes, 1u << 20); /* a chip erase */
		espl_unit_result_clear(&res);
		free_unit(uc);
	}
	free_plan(&fx);
}

/* A link error during identify (every try of one register read lost): the
 * runner gets back in touch with the chip and identifies once more; lost
 * every time, the unit fails in identify after that one extra round. */
static void test_identify_link_error_reconnects(void **state)
{
	(void)state;
	fixture fx;
	load_plan("ident.yaml", HEAD "steps:\n  - write: { file: fw.bin, address: 0x0 }\n  - verify: md5\n", &fx);
	for (int always = 0; always <= 1; always++) {
		unit_chip *uc = new_unit(1u << 20, 0xEF, NULL);
		observer ob = { 0 };
		espl_unit_result res;
		espl_runner_options o;
		logged_options(&o, &ob);
		/* READ_REG 1 and 2 are connect's chip checks; 3 is the first efuse
		 * word, lost as often as the loader tries it (3 times). */
		int rc = run_losing(fx.plan, uc, (sim_port_fault){ .op = 0x0A, .skip = 2, .count = always ? -1 : 3 },
		                    &o, &res);
		if (!always) {
			if (rc)
				fail_msg("%s\n%s", res.first_error.msg, ob.log);
			assert_true(res.pass);
			assert_non_null(strstr(ob.log, "identify failed"));
		} else {
			assert_int_equal(rc, ESPL_ETIMEOUT);
			assert_false(res.pass);
			assert_int_equal(res.failed_phase, ESPL_PHASE_IDENTIFY);
		}
		espl_unit_result_clear(&res);
		free_unit(uc);
	}
	free_plan(&fx);
}

static void test_md5_mismatch_fails_without_retry(void **state)
{
	(void)state;
	one_unit c;
	case_init(&c, "mismatch.yaml",
	          HEAD "steps:\n  - write: { file: fw.bin, address: 0x8000 }\n  - verify: md5\n    retries: 3\n");
	c.ob.corrupt_after_write = 1;
	c.ob.corrupt_at = 0x8000 + 0x1234;
	int rc = run_case(&c);
	assert_int_equal(rc, ESPL_EMISMATCH);
	assert_false(c.res.pass);
	assert_int_equal(c.res.steps[1].attempts, 1);
	assert_int_equal(c.res.steps[1].status, ESPL_STEP_FAILED);
	char want[33];
	md5_hex(fw, sizeof fw, want);
	assert_string_equal(c.res.steps[1].expected_md5, want);
	assert_string_not_equal(c.res.steps[1].actual_md5, want);
	assert_int_equal(strlen(c.res.steps[1].actual_md5), 32);
	assert_string_equal(c.res.regions[0].actual_md5, c.res.steps[1].actual_md5);
	assert_false(c.res.regions[0].verified);
	char msg[300];
	snprintf(msg, sizeof msg, "step 2 (verify, line 6): verify failed for fw.bin at 0x8000 (24576 bytes): expected MD5 %s, "
	         "flash has %s. Erase and write again; if it fails again the flash is faulty: reject the module",
	         want, c.res.steps[1].actual_md5);
	assert_string_equal(c.res.first_error.msg, msg);
	assert_int_equal(c.res.failed_phase, ESPL_PHASE_STEP);
	case_free(&c);
}

static void test_erase_regions_and_verify_regions(void **state)
{
	(void)state;
	/* the verify region spans the written image and erased bytes after it */
	one_unit c;
	case_init(&c, "regions.yaml",
	          HEAD "steps:\n  - erase: { regions: [ { address: 0x20000, length: 0x10000 } ] }\n"
	          "  - write: { file: fw.bin, address: 0x20000 }\n"
	          "  - verify: { regions: [ { address: 0x20000, length: 0x8000 } ] }\n");
	size_t size;
	uint8_t *flash = flash_of(c.uc, &size);
	memset(flash + 0x20000, 0x00, 0x10000);
	int rc = run_case(&c);
	if (rc)
		fail_msg("%s", c.res.first_error.msg);
	assert_true(all_ff(flash + 0x20000 + sizeof fw, 0x10000 - sizeof fw));
	uint8_t expect[0x8000];
	memset(expect, 0xFF, sizeof expect);
	memcpy(expect, fw, sizeof fw);
	char want[33];
	md5_hex(expect, sizeof expect, want);
	assert_string_equal(c.res.steps[2].expected_md5, want);
	assert_string_equal(c.res.steps[2].actual_md5, want);
	assert_true(c.res.regions[0].verified);
	assert_int_equal(c.res.steps[0].bytes, 0x10000);
	case_free(&c);
}

static void test_layout_checked_for_the_detected_size(void **state)
{
	(void)state;
	fixture fx;
	/* fine on 4MB; on a 1MB unit init data would land in the image's last sector */
	load_plan("layout.yaml",
	          HEAD "steps:\n  - write: { file: fw.bin, address: 0xF8000 }\n"
	          "  - write_init_data: { file: init.bin, rf_cal: keep }\n  - verify: md5\n", &fx);
	observer ob = { 0 };
	espl_unit_result res;
	unit_chip *big = new_unit(4u << 20, 0xEF, NULL);
	assert_int_equal(run_on(&fx, big, &ob, &res), ESPL_OK);
	espl_unit_result_clear(&res);
	unit_chip *small = new_unit(1u << 20, 0xEF, NULL);
	size_t size;
	uint8_t *flash = flash_of(small, &size);
	memset(flash, 0x33, size);
	assert_int_equal(run_on(&fx, small, &ob, &res), ESPL_ERECIPE);
	assert_int_equal(res.failed_phase, ESPL_PHASE_LAYOUT);
	assert_non_null(strstr(res.first_error.msg, "init data init.bin (0xfc000..0xfc07f) overlaps step 1 (write, line 5) at 0xf8000..0xfdfff"));
	assert_int_equal(flash_of(small, &size)[0xF8000], 0x33);
	espl_unit_result_clear(&res);
	free_unit(big);
	free_unit(small);
	free_plan(&fx);
}

/* ---- built recipes: the device commands' one-unit jobs ---------------- */

typedef struct diag_seen {
	unsigned errors, warnings, with_line;
	char first[400];
} diag_seen;

static void on_diag(void *ctx, const espl_recipe_diag *d)
{
	diag_seen *s = ctx;
	s->with_line += d->pos.line != 0;
	if (d->warning) {
		s->warnings++;
		return;
	}
	if (s->errors++ == 0)
		snprintf(s->first, sizeof s->first, "%s", d->message);
}

static char fw_path[256], init_path[256], stub_path[256];

/* A job as `espline CMD` would build it (stub in the fixture's folder). */
static espl_recipe_job job_of(enum espl_job_kind kind, const espl_job_file *files, size_t n)
{
	snprintf(fw_path, sizeof fw_path, "%s/fw.bin", dir);
	snprintf(init_path, sizeof init_path, "%s/init.bin", dir);
	snprintf(stub_path, sizeof stub_path, "%s/stub.json", dir);
	espl_recipe_job j = { .name = "espline test", .kind = kind, .files = files, .n_files = n,
	                      .compress = true, .stub = stub_path, .flash_baud = 921600 };
	espl_flash_params_keep(&j.params);
	return j;
}

static void build_plan(const espl_recipe_job *job, fixture *fx)
{
	espl_error err = { 0, "" };
	if (espl_recipe_build(job, NULL, NULL, &fx->recipe, &err) < 0 ||
	    espl_plan_new(fx->recipe, NULL, &fx->plan, &err) < 0)
		fail_msg("build: %s", err.msg);
}

/* The unit's result for job on uc, from a fresh plan; the previous one is
 * freed (a result points into its recipe: keep it until then). */
static int run_job(const espl_recipe_job *job, unit_chip *uc, observer *ob, espl_unit_result *res)
{
	static fixture fx;
	static bool have;
	if (have)
		free_plan(&fx);
	have = job != NULL;
	if (!job)
		return ESPL_OK;
	build_plan(job, &fx);
	return run_on(&fx, uc, ob, res);
}

static void test_built_jobs_write_verify_read_erase(void **state)
{
	(void)state;
	observer ob = { 0 };
	espl_unit_result res;
	unit_chip *uc = new_unit(1u << 20, 0xEF, NULL);
	size_t size;
	uint8_t *flash = flash_of(uc, &size);
	char want[33];

	/* write two files given out of order, then verify: md5 */
	espl_job_file files[2] = { { 0x20000, NULL }, { 0x10000, NULL } };
	espl_recipe_job job = job_of(ESPL_JOB_WRITE, files, 2);
	files[0].path = init_path;
	files[1].path = fw_path;
	job.verify = true;
	if (run_job(&job, uc, &ob, &res) != ESPL_OK)
		fail_msg("write: %s\n%s", res.first_error.msg, ob.log);
	assert_int_equal(res.n_steps, 4); /* write, write, verify, reset */
	assert_int_equal(res.steps[0].step->write.address, 0x10000); /* by address */
	assert_int_equal(res.n_regions, 2);
	assert_true(res.regions[0].verified && res.regions[1].verified);
	assert_memory_equal(flash + 0x10000, fw, sizeof fw);
	assert_memory_equal(flash + 0x20000, init_data, sizeof init_data);
	espl_unit_result_clear(&res);

	/* verify writes nothing and checks each file's own MD5 */
	job = job_of(ESPL_JOB_VERIFY, files, 2);
	flash[0x10000 + sizeof fw] ^= 0xFF;   /* outside the files: no matter */
	unsigned begins = uc->op_count[ESPL_OP_FLASH_BEGIN] + uc->op_count[ESPL_OP_FLASH_DEFL_BEGIN];
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_OK);
	assert_int_equal(uc->op_count[ESPL_OP_FLASH_BEGIN] + uc->op_count[ESPL_OP_FLASH_DEFL_BEGIN], begins);
	assert_int_equal(res.n_regions, 2);
	md5_hex(fw, sizeof fw, want);
	assert_string_equal(res.regions[0].actual_md5, want);
	assert_true(res.regions[0].verified && res.regions[0].skipped);
	espl_unit_result_clear(&res);
	flash[0x10000 + 100] ^= 0x01;
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_EMISMATCH);
	assert_int_equal(res.steps[0].attempts, 1); /* an answer, not retried */
	/* the mismatch names the file and address itself: no step before it */
	if (strstr(res.first_error.msg, "verify failed for fw.bin at 0x10000 (") != res.first_error.msg)
		fail_msg("%s", res.first_error.msg);
	espl_unit_result_clear(&res);
	flash[0x10000 + 100] ^= 0x01;

	/* read: the bytes in the step's data */
	job = job_of(ESPL_JOB_READ, NULL, 0);
	job.address = 0x10000;
	job.length = 0x2000;
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_OK);
	assert_int_equal(res.steps[0].step->kind, ESPL_STEP_READ);
	assert_non_null(res.steps[0].data);
	assert_memory_equal(res.steps[0].data, fw, 0x2000);
	espl_unit_result_clear(&res);

	/* erase a region; an unaligned one is refused before any device */
	job = job_of(ESPL_JOB_ERASE, NULL, 0);
	job.address = 0x11000;
	job.length = 0x1000;
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_OK);
	assert_true(all_ff(flash + 0x11000, 0x1000));
	assert_memory_equal(flash + 0x10000, fw, 0x1000);
	assert_memory_equal(flash + 0x12000, fw + 0x2000, 0x1000);
	espl_unit_result_clear(&res);
	run_job(NULL, NULL, NULL, NULL);
	free_unit(uc);
}

static void test_built_layout_messages_have_no_position(void **state)
{
	(void)state;
	espl_recipe *r = NULL;
	espl_error err = { 0, "" };
	diag_seen seen = { 0 };
	espl_job_file files[2] = { { 0x20100, NULL }, { 0x20800, NULL } };
	espl_recipe_job job = job_of(ESPL_JOB_WRITE, files, 2);
	files[0].path = fw_path;
	files[1].path = init_path;

	/* two writes sharing a sector: the recipe's rule, named by file */
	assert_int_equal(espl_recipe_build(&job, on_diag, &seen, &r, &err), ESPL_ERECIPE);
	assert_null(r);
	assert_string_equal(err.msg, "write of init.bin (0x20800..0x2087f) overlaps write of fw.bin (0x20100..0x260ff); "
	                    "writes are erased in 4 KiB sectors, so two writes must not share a sector");
	assert_string_equal(seen.first, err.msg);
	assert_int_equal(seen.with_line, 0);
	assert_int_equal(seen.warnings, 2); /* both start inside a sector */

	/* a verify writes nothing: only overlapping bytes are refused */
	files[1].address = 0x26100;
	job.kind = ESPL_JOB_VERIFY;
	assert_int_equal(espl_recipe_build(&job, NULL, NULL, &r, &err), ESPL_OK);
	espl_recipe_free(r);
	files[1].address = 0x26000;
	assert_int_equal(espl_recipe_build(&job, NULL, NULL, &r, &err), ESPL_ERECIPE);
	assert_non_null(strstr(err.msg, "fw.bin (0x20100..0x260FF) overlaps "));

	/* an unaligned erase region */
	job = job_of(ESPL_JOB_ERASE, NULL, 0);
	job.address = 0x1001;
	job.length = 0x1000;
	assert_int_equal(espl_recipe_build(&job, NULL, NULL, &r, &err), ESPL_ERECIPE);
	assert_string_equal(err.msg, "region 0x1001+0x1000: address and length must be non-zero multiples of 4096 (0x1000)");

	/* past the end of this unit's flash: the runtime layout check */
	observer ob = { 0 };
	espl_unit_result res;
	unit_chip *uc = new_unit(1u << 20, 0xEF, NULL);
	job = job_of(ESPL_JOB_WRITE, files, 1);
	files[0].address = 0xFC000;
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_ERECIPE);
	assert_int_equal(res.failed_phase, ESPL_PHASE_LAYOUT);
	assert_string_equal(res.first_error.msg, "layout: write of fw.bin ends at 0x102000, past the end of the flash (1MB, the size detected on this unit)");
	espl_unit_result_clear(&res);
	run_job(NULL, NULL, NULL, NULL);
	free_unit(uc);
}

static void test_built_write_without_verify_and_rom_only(void **state)
{
	(void)state;
	observer ob = { 0 };
	espl_unit_result res;
	unit_chip *uc = new_unit(1u << 20, 0xEF, NULL);
	size_t size;
	uint8_t *flash = flash_of(uc, &size);
	espl_job_file files[1] = { { 0x30000, NULL } };
	espl_recipe_job job = job_of(ESPL_JOB_WRITE, files, 1);
	files[0].path = fw_path;
	job.no_stub = true;  /* the ROM loader alone, and no verify (it has no MD5) */
	if (run_job(&job, uc, &ob, &res) != ESPL_OK)
		fail_msg("rom write: %s\n%s", res.first_error.msg, ob.log);
	assert_true(res.pass);
	assert_int_equal(res.flash_baud, 0);   /* no stub ran */
	assert_false(res.regions[0].verified); /* asked for no verify */
	assert_memory_equal(flash + 0x30000, fw, sizeof fw);
	espl_unit_result_clear(&res);

	job = job_of(ESPL_JOB_VERIFY, files, 1);
	job.no_stub = true;
	assert_int_equal(run_job(&job, uc, &ob, &res), ESPL_EUNSUPPORTED);
	assert_non_null(strstr(res.first_error.msg, "needs the flasher stub"));
	espl_unit_result_clear(&res);
	run_job(NULL, NULL, NULL, NULL);
	free_unit(uc);
}

static void test_plan_needs_prepared_recipe(void **state)
{
	(void)state;
	espl_recipe *r;
	espl_plan *p = (espl_plan *)1;
	espl_error err;
	char path[256];
	const char *text = HEAD "steps:\n  - write: { file: fw.bin, address: 0x0 }\n  - verify: md5\n";
	write_file("unprepared.yaml", text, strlen(text));
	snprintf(path, sizeof path, "%s/unprepared.yaml", dir);
	assert_int_equal(espl_recipe_load(path, NULL, NULL, &r, &err), ESPL_OK);
	assert_int_equal(espl_plan_new(r, NULL, &p, &err), ESPL_EARG);
	assert_null(p);
	espl_recipe_free(r);
}

static void test_pin_mismatch_nothing_runs(void **state)
{
	(void)state;
	espl_recipe *r;
	espl_error err;
	char path[256];
	/* the pin is init.bin's hash, not fw.bin's: the recipe cannot be
	 * prepared, so no plan and no unit can exist */
	const char *text = HEAD "steps:\n  - write: { file: fw.bin, address: 0x0, sha256: "
	                   "0000000000000000000000000000000000000000000000000000000000000000 }\n  - verify: md5\n";
	write_file("pin.yaml", text, strlen(text));
	snprintf(path, sizeof path, "%s/pin.yaml", dir);
	assert_int_equal(espl_recipe_load(path, NULL, NULL, &r, &err), ESPL_OK);
	assert_int_equal(espl_recipe_prepare(r, NULL, NULL, &err), ESPL_ERECIPE);
	assert_non_null(strstr(err.msg, "sha256 mismatch"));
	assert_non_null(strstr(err.msg, "the recipe pins 0000000000000000000000000000000000000000000000000000000000000000"));
	espl_plan *p = (espl_plan *)1;
	assert_int_equal(espl_plan_new(r, NULL, &p, &err), ESPL_EARG);
	assert_null(p);
	espl_recipe_free(r);
}

/* Erase, write and verify on a fresh unit whose flash is all 0x11, with
 * the stop flag *stop (raised by step_start, when given, on the runner's
 * thread); the unit must end STOPPED.  Returns the unit's flash. */
static uint8_t *run_stopped(one_unit *c, volatile int *stop,
                            void (*step_start)(void *ctx, const espl_step_result *s))
{
	case_init(c, "stop.yaml",
	          HEAD "steps:\n  - erase: chip\n  - write: { file: fw.bin, address: 0x0 }\n  - verify: md5\n");
	size_t size;
	uint8_t *flash = flash_of(c->uc, &size);
	memset(flash, 0x11, size);
	espl_runner_options o;
	espl_runner_options_init(&o);
	o.stop = stop;
	o.events.ctx = (void *)stop;
	o.events.step_start = step_start;
	assert_int_equal(run_losing(c->fx.plan, c->uc, NO_LOSS, &o, &c->res), ESPL_EINTERRUPTED);
	assert_false(c->res.pass);
	assert_int_equal(c->res.failed_phase, ESPL_PHASE_STOPPED);
	return flash;
}

/* A stop flag already up: the loader sends nothing (it is checked before
 * every command), no step runs, the flash is untouched. */
static void test_stop_flag_stops_before_the_next_step(void **state)
{
	(void)state;
	one_unit c;
	volatile int stop = 1;
	uint8_t *flash = run_stopped(&c, &stop, NULL);
	assert_non_null(strstr(c.res.first_error.msg, "stopped on request"));
	assert_int_equal(c.res.steps[0].status, ESPL_STEP_NOT_RUN);
	assert_int_equal(flash[0], 0x11);
	case_free(&c);
}

/* The stop flag raised as the write step starts (as a station's worker
 * does from an event when its slot is stopped): the loader sends no block
 * of it, the step fails and is not retried, and the unit is STOPPED. */
static void stop_at_write(void *ctx, const espl_step_result *s)
{
	if (s->step->kind == ESPL_STEP_WRITE)
		*(volatile int *)ctx = 1;
}

static void test_stop_flag_reaches_into_a_step(void **state)
{
	(void)state;
	one_unit c;
	volatile int stop = 0;
	uint8_t *flash = run_stopped(&c, &stop, stop_at_write);
	assert_int_equal(c.res.steps[0].status, ESPL_STEP_PASSED);
	assert_int_equal(c.res.steps[1].status, ESPL_STEP_FAILED);
	assert_int_equal(c.res.steps[1].error.code, ESPL_EINTERRUPTED);
	assert_int_equal(c.res.steps[1].attempts, 1);
	assert_int_equal(c.uc->op_count[ESPL_OP_FLASH_DEFL_DATA] + c.uc->op_count[ESPL_OP_FLASH_DATA], 0);
	assert_int_equal(flash[0], 0xFF); /* erased, never written */
	case_free(&c);
}

typedef struct worker {
	const espl_plan *plan;
	unit_chip *uc;
	espl_unit_result res;
	int rc;
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	espl_runner_options o;
	espl_runner_options_init(&o);
	w->rc = run_losing(w->plan, w->uc, NO_LOSS, &o, &w->res);
	return NULL;
}

/* One plan, four workers at once, three flash sizes: the image at 0x0 is
 * patched once per detected size and shared (run under make tsan too). */
static void test_parallel_units_share_one_plan(void **state)
{
	(void)state;
	static const uint32_t sizes[] = { 1u << 20, 2u << 20, 4u << 20, 4u << 20 };
	static const uint8_t codes[] = { 0x20, 0x30, 0x40, 0x40 };
	fixture fx;
	worker w[4];
	pthread_t t[4];
	load_plan("parallel.yaml",
	          HEAD "flash: { size: detect }\nsteps:\n  - write: { file: fw.bin, address: 0x0 }\n"
	          "  - write_init_data: { file: init.bin }\n  - verify: md5\n", &fx);
	for (int i = 0; i < 4; i++) {
		static const uint8_t base[5] = { 0x5C, 0xCF, 0x7F, 0x00, 0x00 };
		uint8_t mac[6];
		memcpy(mac, base, 5);
		mac[5] = (uint8_t)i;
		w[i].plan = fx.plan;
		w[i].uc = new_unit(sizes[i], 0xEF, mac);
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < 4; i++) {
		size_t size;
		uint8_t *flash = flash_of(w[i].uc, &size);
		if (w[i].rc)
			fail_msg("worker %d: %s", i, w[i].res.first_error.msg);
		assert_true(w[i].res.pass);
		assert_int_equal(w[i].res.chip.mac[5], i);
		assert_int_equal(flash[3], codes[i]);
		assert_memory_equal(flash + sizes[i] - 0x4000, init_data, sizeof init_data);
		espl_unit_result_clear(&w[i].res);
		free_unit(w[i].uc);
	}
	free_plan(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_recipe_passes),
		cmocka_unit_test(test_identify_link_error_reconnects),
		cmocka_unit_test(test_init_data_address_per_flash_size),
		cmocka_unit_test(test_skip_unchanged_second_run_writes_nothing),
		cmocka_unit_test(test_skip_unchanged_writes_only_the_differing_chunk),
		cmocka_unit_test(test_verify_rehashes_a_skipped_region_unless_sure),
		cmocka_unit_test(test_expect_failures_touch_nothing),
		cmocka_unit_test(test_retry_recovers_from_one_lost_command),
		cmocka_unit_test(test_each_step_kind_recovers_from_one_lost_request),
		cmocka_unit_test(test_md5_mismatch_fails_without_retry),
		cmocka_unit_test(test_erase_regions_and_verify_regions),
		cmocka_unit_test(test_layout_checked_for_the_detected_size),
		cmocka_unit_test(test_plan_needs_prepared_recipe),
		cmocka_unit_test(test_built_jobs_write_verify_read_erase),
		cmocka_unit_test(test_built_layout_messages_have_no_position),
		cmocka_unit_test(test_built_write_without_verify_and_rom_only),
		cmocka_unit_test(test_pin_mismatch_nothing_runs),
		cmocka_unit_test(test_stop_flag_stops_before_the_next_step),
		cmocka_unit_test(test_stop_flag_reaches_into_a_step),
		cmocka_unit_test(test_parallel_units_share_one_plan),
	};
	return cmocka_run_group_tests_name("runner", tests, setup, teardown);
}
