/* test_boot.c - the first-boot judgement on boot logs as the ROM and the
 * SDK print them (docs/boot-model.md), one case per verdict, and a
 * fixture's reset commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "espline/boot.h"
#include "espline/fixture.h"

/* The ROM's text for the demo image (three segments), as the simulator
 * prints it and as real logs show it. */
#define BANNER(c) "\n ets Jan  8 2013,rst cause:" #c ", boot mode:(3,6)\n\n"
#define LOADS                                                                   \
	"load 0x40100000, len 27200, room 16 \ntail 0\nchksum 0x55\n"                 \
	"load 0x3ffe8000, len 2164, room 8 \ntail 12\nchksum 0x65\n"                  \
	"ho 0 tail 12 room 4\nload 0x3ffe8880, len 760, room 12 \ntail 12\nchksum 0x3d\n"
#define GOOD_ROM BANNER(2) LOADS "csum 0x3d\n"
#define FW_BANNER "\nNodeMCU 3.0.0-espline-demo build 2026-12-05 powered by Lua 5.1.4 on SDK 3.0.2\n"

static espl_boot_rules *rules(const char *expect, const char *reject)
{
	espl_boot_rules *r = NULL;
	espl_error err;
	const char *e[] = { expect }, *j[] = { reject };
	assert_int_equal(espl_boot_rules_new(e, expect ? 1 : 0, j, reject ? 1 : 0, &r, &err), 0);
	return r;
}

static espl_boot_judgement judge(const char *expect, const char *reject, const char *text, bool final)
{
	espl_boot_rules *r = rules(expect, reject);
	espl_boot_judgement j;
	espl_boot_judge(r, text, final, &j);
	espl_boot_rules_free(r);
	return j;
}

static void assert_reason(const espl_boot_judgement *j, enum espl_boot_verdict v, const char *part)
{
	if (j->verdict != v || !strstr(j->reason, part))
		fail_msg("verdict %s, reason \"%s\"; wanted %s with \"%s\"", espl_boot_verdict_name(j->verdict),
		         j->reason, espl_boot_verdict_name(v), part);
}

static void test_good_boot(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU [0-9.]+", NULL, GOOD_ROM FW_BANNER, false);
	assert_int_equal(j.verdict, ESPL_BOOT_PENDING); /* still watching for rejects */
	assert_true(j.expect_done);
	assert_true(j.rom_done);
	j = judge("NodeMCU [0-9.]+", NULL, GOOD_ROM FW_BANNER, true);
	assert_int_equal(j.verdict, ESPL_BOOT_OK);
	assert_int_equal(j.banners, 1);
	assert_int_equal(j.causes[0], 2);
}

static void test_no_banner(void **state)
{
	(void)state;
	espl_boot_judgement j = judge(NULL, NULL, "", true);
	assert_reason(&j, ESPL_BOOT_NO_BANNER, "no ROM banner");
	/* noise only (the right rate never came): still no banner, and said so */
	j = judge(NULL, NULL, "\\xC3y\\xE0\n", true);
	assert_reason(&j, ESPL_BOOT_NO_BANNER, "received only: \\xC3y\\xE0");
}

static void test_download_mode(void **state)
{
	(void)state;
	espl_boot_judgement j = judge(NULL, NULL, "\n ets Jan  8 2013,rst cause:2, boot mode:(1,6)\n\n", false);
	assert_reason(&j, ESPL_BOOT_DOWNLOAD_MODE, "GPIO0");
}

static void test_checksum_rejected(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU", NULL, BANNER(2) LOADS "csum 0x3c\ncsum err\nets_main.c \n", false);
	assert_reason(&j, ESPL_BOOT_IMAGE_REJECTED, "checksum error (\"csum err\" after 3 segments)");
}

static void test_blank_flash_rejected(void **state)
{
	(void)state;
	espl_boot_judgement j = judge(NULL, NULL, BANNER(2) "ets_main.c \n", false);
	assert_reason(&j, ESPL_BOOT_IMAGE_REJECTED, "no image at 0x0 (bad magic byte, or blank flash");
}

static void test_flash_mode_rejected(void **state)
{
	(void)state;
	/* QIO header on a DIO part: the first header right, then zeros */
	espl_boot_judgement j = judge(NULL, NULL,
	                              BANNER(2) "load 0x40100000, len 27200, room 16 \ntail 0\nchksum 0xef\n"
	                              "load 0x00000000, len 0, room 8 \ntail 0\nchksum 0xef\n"
	                              "csum 0xef\ncsum err\nets_main.c \n", false);
	assert_reason(&j, ESPL_BOOT_IMAGE_REJECTED, "cannot do the SPI mode in the image header");
}

static void test_unfinished_load(void **state)
{
	(void)state;
	espl_boot_judgement j = judge(NULL, NULL, BANNER(2) "load 0x40100000, len -1, room 16 \n", true);
	assert_reason(&j, ESPL_BOOT_IMAGE_REJECTED, "did not finish loading");
}

static void test_boot_loop_by_banners(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU", NULL, GOOD_ROM BANNER(4) "wdt reset\n" LOADS, false);
	assert_reason(&j, ESPL_BOOT_LOOP, "reset causes 2 (external reset), 4 (watchdog)");
	assert_int_equal(j.banners, 2);
}

static void test_boot_loop_by_second_load(void **state)
{
	(void)state;
	/* the second banner came while listening at the firmware's rate */
	espl_boot_judgement j = judge("NodeMCU", NULL, GOOD_ROM "\\xC3y\\xE0" LOADS "csum 0x3d\n", false);
	assert_reason(&j, ESPL_BOOT_LOOP, "2 ROM logs");
}

static void test_rf_cal_rejected(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU", NULL, GOOD_ROM "rf_cal[0] !=0x05,is 0xFF\n" BANNER(2), false);
	assert_reason(&j, ESPL_BOOT_REJECTED_TEXT, "reject pattern \"rf_cal\" matched the line \"rf_cal[0] !=0x05,is 0xFF\"");
	assert_non_null(strstr(j.reason, "init data"));
}

static void test_exception_rejected(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU", NULL,
	                              GOOD_ROM FW_BANNER "\nFatal exception 0(IllegalInstructionCause):\n", false);
	assert_reason(&j, ESPL_BOOT_REJECTED_TEXT, "\"Fatal exception\" matched");
}

static void test_user_reject(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU", "espline-demo build 20[0-9]+", GOOD_ROM FW_BANNER, false);
	assert_reason(&j, ESPL_BOOT_REJECTED_TEXT, "reject pattern \"espline-demo build 20[0-9]+\" matched the line \"NodeMCU 3.0.0");
}

static void test_expect_missing(void **state)
{
	(void)state;
	espl_boot_judgement j = judge("NodeMCU 9\\.9", NULL, GOOD_ROM FW_BANNER, false);
	assert_int_equal(j.verdict, ESPL_BOOT_PENDING);
	j = judge("NodeMCU 9\\.9", NULL, GOOD_ROM FW_BANNER, true);
	assert_reason(&j, ESPL_BOOT_EXPECT_MISSING, "expected \"NodeMCU 9\\.9\" (expect[1]) not seen; seen instead: ");
	assert_non_null(strstr(j.reason, "NodeMCU 3.0.0-espline-demo"));
}

static void test_expect_in_order(void **state)
{
	(void)state;
	espl_boot_rules *r = NULL;
	espl_error err;
	const char *e[] = { "second", "first" };
	espl_boot_judgement j;
	assert_int_equal(espl_boot_rules_new(e, 2, NULL, 0, &r, &err), 0);
	espl_boot_judge(r, GOOD_ROM "first\nsecond\n", true, &j);
	assert_reason(&j, ESPL_BOOT_EXPECT_MISSING, "expected \"first\" (expect[2])");
	espl_boot_judge(r, GOOD_ROM "second\nfirst\n", true, &j);
	assert_int_equal(j.verdict, ESPL_BOOT_OK);
	espl_boot_rules_free(r);
}

static void test_unfinished_line_waits(void **state)
{
	(void)state;
	/* "Fatal exc" may still become the reject; nothing decided on half a line */
	espl_boot_judgement j = judge(NULL, NULL, GOOD_ROM "Fatal exc", false);
	assert_int_equal(j.verdict, ESPL_BOOT_PENDING);
	j = judge(NULL, NULL, GOOD_ROM "Fatal exception 0\n", false);
	assert_int_equal(j.verdict, ESPL_BOOT_REJECTED_TEXT);
}

static void test_no_expect_runs_to_the_end(void **state)
{
	(void)state;
	espl_boot_judgement j = judge(NULL, NULL, GOOD_ROM FW_BANNER, false);
	assert_int_equal(j.verdict, ESPL_BOOT_PENDING);
	assert_false(j.expect_done);
	j = judge(NULL, NULL, GOOD_ROM FW_BANNER, true);
	assert_int_equal(j.verdict, ESPL_BOOT_OK);
}

static void test_bad_regex(void **state)
{
	(void)state;
	espl_boot_rules *r = NULL;
	espl_error err;
	const char *e[] = { "NodeMCU [0-9" };
	assert_int_equal(espl_boot_rules_new(e, 1, NULL, 0, &r, &err), ESPL_EARG);
	assert_null(r);
	assert_non_null(strstr(err.msg, "expect[1] \"NodeMCU [0-9\" is not a valid regular expression"));
}

static void test_rom_baud(void **state)
{
	(void)state;
	assert_int_equal(espl_boot_rom_baud(26), 74880);
	assert_int_equal(espl_boot_rom_baud(40), 115200);
}

static void test_fixture_commands(void **state)
{
	(void)state;
	espl_error err;
	char *ok[] = { "true", "sh -c exit\t0" };
	assert_int_equal(espl_fixture_run(ok, 2, "run", 2000, &err), 0);
	char *fails[] = { "true", "false", "true" };
	assert_int_equal(espl_fixture_run(fails, 3, "run", 2000, &err), ESPL_ESYS);
	assert_non_null(strstr(err.msg, "fixture run command 2 (\"false\"): exited 1"));
	char *missing[] = { "/nonexistent/espline-reset --run" };
	assert_int_equal(espl_fixture_run(missing, 1, "download", 2000, &err), ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, "fixture download command 1"));
	char *slow[] = { "sleep 5" };
	assert_int_equal(espl_fixture_run(slow, 1, "run", 100, &err), ESPL_ETIMEOUT);
	assert_non_null(strstr(err.msg, "still running after 100 ms: killed"));
	/* no shell: a ';' is an argument, not a second command */
	char *noshell[] = { "true ; false" };
	assert_int_equal(espl_fixture_run(noshell, 1, "run", 2000, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_boot),
		cmocka_unit_test(test_no_banner),
		cmocka_unit_test(test_download_mode),
		cmocka_unit_test(test_checksum_rejected),
		cmocka_unit_test(test_blank_flash_rejected),
		cmocka_unit_test(test_flash_mode_rejected),
		cmocka_unit_test(test_unfinished_load),
		cmocka_unit_test(test_boot_loop_by_banners),
		cmocka_unit_test(test_boot_loop_by_second_load),
		cmocka_unit_test(test_rf_cal_rejected),
		cmocka_unit_test(test_exception_rejected),
		cmocka_unit_test(test_user_reject),
		cmocka_unit_test(test_expect_missing),
		cmocka_unit_test(test_expect_in_order),
		cmocka_unit_test(test_unfinished_line_waits),
		cmocka_unit_test(test_no_expect_runs_to_the_end),
		cmocka_unit_test(test_bad_regex),
		cmocka_unit_test(test_rom_baud),
		cmocka_unit_test(test_fixture_commands),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
