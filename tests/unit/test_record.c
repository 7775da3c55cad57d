/* test_record.c - runner results to database records (record.h): results,
 * error kinds, which steps are recorded, retries, MD5 columns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "espline/record.h"

/* A recipe-like set of steps: erase chip, write, init data, verify, reset. */
static espl_step steps[5];
static espl_step_result srs[5];

static void make_result(espl_unit_result *res)
{
	static const enum espl_step_kind kinds[5] = { ESPL_STEP_ERASE, ESPL_STEP_WRITE, ESPL_STEP_WRITE_INIT_DATA,
	                                              ESPL_STEP_VERIFY, ESPL_STEP_RESET };
	memset(res, 0, sizeof *res);
	memset(steps, 0, sizeof steps);
	memset(srs, 0, sizeof srs);
	for (int i = 0; i < 5; i++) {
		steps[i].kind = kinds[i];
		steps[i].number = (unsigned)i + 1;
		srs[i].step = &steps[i];
		srs[i].status = ESPL_STEP_PASSED;
		srs[i].attempts = 1;
		srs[i].duration_s = 0.25;
	}
	steps[0].erase.chip = true;
	srs[1].bytes = 262144;
	srs[3].md5_address = 0x3FC000;
	srs[3].md5_length = 4096;
	strcpy(srs[3].expected_md5, "0123456789abcdef0123456789abcdef");
	strcpy(srs[3].actual_md5, "0123456789abcdef0123456789abcdef");
	res->pass = true;
	res->connected = res->identified = true;
	strcpy(res->port, "rfc2217://127.0.0.1:4000");
	strcpy(res->chip.mac_str, "5c:cf:7f:a0:00:01");
	res->chip.chip_id = 0xa00001;
	res->chip.flash_id = 0x1640ef;
	res->chip.flash_vendor = "Winbond";
	res->chip.flash_size = 4u << 20;
	res->chip.xtal_mhz = 26;
	res->started_unix_ms = 1764000000000;
	res->duration_s = 3.5;
	res->n_steps = 5;
	res->steps = srs;
	res->n_regions = 2;
	res->regions[0] = (espl_written_region){ .address = 0, .length = 262144, .step = 2 };
	strcpy(res->regions[0].expected_md5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	strcpy(res->regions[0].actual_md5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	res->regions[1] = (espl_written_region){ .address = 0x3FC000, .length = 128, .step = 3 };
	strcpy(res->regions[1].expected_md5, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
}

static const espl_record_context ctx = {
	"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
	"/dev/ttyUSB3", "A10KX7Q2", "1-1.3", "A3", "PCB-0042", "^XA^FDlabel^FS^XZ",
};

static void test_pass_maps_every_field(void **state)
{
	(void)state;
	espl_unit_result res;
	espl_record rec;
	espl_error err;
	make_result(&res);
	assert_int_equal(espl_record_from_result(&res, &ctx, &rec, &err), ESPL_OK);
	assert_int_equal(rec.unit.result, ESPL_DB_PASS);
	assert_string_equal(rec.unit.uuid, ctx.unit_uuid);
	assert_string_equal(rec.unit.batch_uuid, ctx.batch_uuid);
	assert_string_equal(rec.unit.mac, "5c:cf:7f:a0:00:01");
	assert_int_equal(rec.unit.chip_id, 0xa00001);
	assert_int_equal(rec.unit.flash_id, 0x1640ef);
	assert_string_equal(rec.unit.manufacturer, "Winbond");
	assert_int_equal(rec.unit.flash_size, 4u << 20);
	assert_int_equal(rec.unit.crystal_mhz, 26);
	assert_string_equal(rec.unit.port, "/dev/ttyUSB3");  /* the context's name wins */
	assert_string_equal(rec.unit.adapter_serial, "A10KX7Q2");
	assert_string_equal(rec.unit.adapter_location, "1-1.3");
	assert_string_equal(rec.unit.slot, "A3");
	assert_string_equal(rec.unit.barcode, "PCB-0042");
	assert_string_equal(rec.unit.label, "^XA^FDlabel^FS^XZ");
	assert_int_equal(rec.unit.started_ms, 1764000000000);
	assert_int_equal(rec.unit.duration_ms, 3500);
	assert_int_equal(rec.unit.ended_ms, 1764000003500);
	assert_null(rec.unit.error);
	assert_null(rec.unit.error_kind);
	assert_int_equal(rec.n_steps, 5);
	/* erase chip: the whole flash */
	assert_string_equal(rec.steps[0].kind, "erase");
	assert_int_equal(rec.steps[0].length, 4u << 20);
	/* write: its region and both MD5s */
	assert_string_equal(rec.steps[1].kind, "write");
	assert_int_equal(rec.steps[1].length, 262144);
	assert_string_equal(rec.steps[1].expected_md5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_string_equal(rec.steps[1].actual_md5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(rec.steps[1].bytes, 262144);
	assert_int_equal(rec.steps[1].duration_ms, 250);
	/* init data: never verified here, so no actual MD5 */
	assert_int_equal(rec.steps[2].address, 0x3FC000);
	assert_null(rec.steps[2].actual_md5);
	/* verify: the region it checked */
	assert_int_equal(rec.steps[3].address, 0x3FC000);
	assert_int_equal(rec.steps[3].length, 4096);
	assert_string_equal(rec.steps[3].actual_md5, "0123456789abcdef0123456789abcdef");
	for (size_t i = 0; i < rec.n_steps; i++) {
		assert_int_equal(rec.steps[i].index, (int)i);
		assert_int_equal(rec.steps[i].result, ESPL_DB_PASS);
		assert_int_equal(rec.steps[i].retries, 0);
	}
	espl_record_free(&rec);
}

static void test_fail_keeps_reason_and_skips_steps_not_run(void **state)
{
	(void)state;
	espl_unit_result res;
	espl_record rec;
	espl_error err;
	make_result(&res);
	res.pass = false;
	res.failed_phase = ESPL_PHASE_STEP;
	espl_fail(&res.first_error, ESPL_EDISCONNECTED, "2 (write, line 21), after all attempts: port gone");
	srs[1].status = ESPL_STEP_FAILED;
	srs[1].attempts = 3;
	espl_fail(&srs[1].error, ESPL_EDISCONNECTED, "port gone");
	for (int i = 2; i < 5; i++) {
		srs[i].status = ESPL_STEP_NOT_RUN;
		srs[i].attempts = 0;
	}
	assert_int_equal(espl_record_from_result(&res, &ctx, &rec, &err), ESPL_OK);
	assert_int_equal(rec.unit.result, ESPL_DB_FAIL);
	assert_string_equal(rec.unit.error_kind, "write: disconnected");
	assert_string_equal(rec.unit.error, "2 (write, line 21), after all attempts: port gone");
	assert_int_equal(rec.n_steps, 2);
	assert_int_equal(rec.steps[1].result, ESPL_DB_FAIL);
	assert_int_equal(rec.steps[1].retries, 2);
	assert_string_equal(rec.steps[1].error, "port gone");
	espl_record_free(&rec);
}

static void test_phases_and_interrupts(void **state)
{
	(void)state;
	espl_unit_result res;
	char kind[64];
	make_result(&res);
	res.pass = false;
	res.failed_phase = ESPL_PHASE_EXPECT;
	espl_fail(&res.first_error, ESPL_EPART, "expect.flash_size_min: too small");
	assert_int_equal(espl_record_result(&res), ESPL_DB_FAIL);
	espl_record_error_kind(&res, kind, sizeof kind);
	assert_string_equal(kind, "expect: wrong part");

	res.failed_phase = ESPL_PHASE_CONNECT;
	res.identified = res.connected = false;
	espl_fail(&res.first_error, ESPL_ETIMEOUT, "no reply");
	espl_record_error_kind(&res, kind, sizeof kind);
	assert_string_equal(kind, "connect: timeout");

	/* every phase has its own text (the database's error_kind); none has none */
	assert_null(espl_phase_name(ESPL_PHASE_NONE));
	for (int p = ESPL_PHASE_CONNECT; p <= ESPL_PHASE_STOPPED; p++) {
		assert_non_null(espl_phase_name((enum espl_phase)p));
		for (int q = ESPL_PHASE_CONNECT; q < p; q++)
			assert_string_not_equal(espl_phase_name((enum espl_phase)p), espl_phase_name((enum espl_phase)q));
	}
	res.failed_phase = ESPL_PHASE_UNIT_DATA;
	espl_record_error_kind(&res, kind, sizeof kind);
	assert_string_equal(kind, "unit data: timeout");

	res.failed_phase = ESPL_PHASE_STOPPED;
	espl_fail(&res.first_error, ESPL_EINTERRUPTED, "stopped before step 2");
	assert_int_equal(espl_record_result(&res), ESPL_DB_INTERRUPTED);
	espl_record_error_kind(&res, kind, sizeof kind);
	assert_string_equal(kind, "interrupted");

	espl_db_unit begin;
	espl_record_begin(&res, &ctx, &begin);
	assert_int_equal(begin.result, ESPL_DB_RUNNING);
	assert_null(begin.mac);  /* not identified: no MAC yet */
}

static void test_skip_unchanged_is_skipped(void **state)
{
	(void)state;
	espl_unit_result res;
	espl_record rec;
	espl_error err;
	make_result(&res);
	srs[1].bytes = 0;
	srs[1].bytes_skipped = 262144;
	assert_int_equal(espl_record_from_result(&res, &ctx, &rec, &err), ESPL_OK);
	assert_int_equal(rec.steps[1].result, ESPL_DB_SKIPPED);
	assert_int_equal(rec.unit.result, ESPL_DB_PASS);
	espl_record_free(&rec);
}

static void test_interrupted_record_from_begin(void **state)
{
	(void)state;
	espl_unit_result res;
	espl_db_unit begin;
	espl_record rec;
	make_result(&res);
	espl_record_begin(&res, &ctx, &begin);
	espl_record_interrupted(&begin, begin.started_ms + 1200, "aborted", &rec);
	assert_int_equal(rec.unit.result, ESPL_DB_INTERRUPTED);
	assert_int_equal(rec.unit.duration_ms, 1200);
	assert_string_equal(rec.unit.mac, "5c:cf:7f:a0:00:01");
	assert_string_equal(rec.unit.error, "aborted");
	assert_string_equal(rec.unit.error_kind, "interrupted");
	assert_int_equal(rec.n_steps, 0);
	espl_record_free(&rec);
}

static void assert_same_text(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* The progressive row of each finished step is the row the completed record
 * gives for it. */
static void test_step_row_matches_completed_record(void **state)
{
	(void)state;
	espl_unit_result res;
	espl_record rec;
	espl_error err;
	espl_db_step row;
	make_result(&res);
	srs[1].attempts = 3;
	assert_int_equal(espl_record_from_result(&res, &ctx, &rec, &err), ESPL_OK);
	assert_int_equal(rec.n_steps, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(espl_record_step(&res, &srs[i], &row), ESPL_OK);
		const espl_db_step *want = &rec.steps[i];
		assert_int_equal(row.index, want->index);
		assert_string_equal(row.kind, want->kind);
		assert_int_equal(row.address, want->address);
		assert_int_equal(row.length, want->length);
		assert_same_text(row.expected_md5, want->expected_md5);
		assert_same_text(row.actual_md5, want->actual_md5);
		assert_int_equal(row.bytes, want->bytes);
		assert_int_equal(row.duration_ms, want->duration_ms);
		assert_int_equal(row.retries, want->retries);
		assert_int_equal(row.result, want->result);
		assert_same_text(row.error, want->error);
	}
	assert_int_equal(rec.steps[1].retries, 2);
	assert_int_equal(rec.steps[1].duration_ms, 250);
	espl_record_free(&rec);
	/* A step that did not run, or one not of this unit, has no row. */
	srs[4].attempts = 0;
	assert_int_equal(espl_record_step(&res, &srs[4], &row), ESPL_EARG);
	espl_step_result stray = srs[0];
	assert_int_equal(espl_record_step(&res, &stray, &row), ESPL_EARG);
	assert_int_equal(espl_record_step(&res, NULL, &row), ESPL_EARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_maps_every_field),
		cmocka_unit_test(test_fail_keeps_reason_and_skips_steps_not_run),
		cmocka_unit_test(test_phases_and_interrupts),
		cmocka_unit_test(test_skip_unchanged_is_skipped),
		cmocka_unit_test(test_interrupted_record_from_begin),
		cmocka_unit_test(test_step_row_matches_completed_record),
	};
	return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
