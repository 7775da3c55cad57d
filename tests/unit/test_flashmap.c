/* test_flashmap.c - SDK system-sector addresses per flash size, and size
 * parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "espline/flashmap.h"
#include "espline/recipe.h"

static void test_table(void **state)
{
	(void)state;
	/* protocol notes §9 */
	static const struct { size_t size; uint32_t rf, init, blank; } rows[] = {
		{ 512u << 10, 0x7B000, 0x7C000, 0x7E000 },
		{ 1u << 20, 0xFB000, 0xFC000, 0xFE000 },
		{ 2u << 20, 0x1FB000, 0x1FC000, 0x1FE000 },
		{ 4u << 20, 0x3FB000, 0x3FC000, 0x3FE000 },
		{ 8u << 20, 0x7FB000, 0x7FC000, 0x7FE000 },
		{ 16u << 20, 0xFFB000, 0xFFC000, 0xFFE000 },
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		espl_flashmap m;
		espl_error err;
		assert_int_equal(espl_flashmap_for_size(rows[i].size, &m, &err), 0);
		assert_int_equal(m.rf_cal, rows[i].rf);
		assert_int_equal(m.init_data, rows[i].init);
		assert_int_equal(m.blank, rows[i].blank);
	}
}

/* The recipe's system area is the same arithmetic (one piece of code). */
static void test_recipe_system_area_agrees(void **state)
{
	(void)state;
	for (size_t size = 256u << 10; size <= (16u << 20); size <<= 1) {
		espl_flashmap m;
		espl_system_area a;
		assert_int_equal(espl_flashmap_for_size(size, &m, NULL), 0);
		assert_int_equal(espl_system_area_for((uint32_t)size, &a, NULL), 0);
		assert_int_equal(a.flash_size, m.flash_size);
		assert_int_equal(a.rf_cal, m.rf_cal);
		assert_int_equal(a.init_data, m.init_data);
		assert_int_equal(a.blank, m.blank);
	}
}

static void test_bad_sizes(void **state)
{
	(void)state;
	espl_flashmap m;
	espl_error err;
	assert_int_equal(espl_flashmap_for_size(0, &m, &err), ESPL_EARG);
	assert_int_equal(espl_flashmap_for_size(3u << 20, &m, &err), ESPL_EARG);
	assert_int_equal(espl_flashmap_for_size(32u << 20, &m, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "16MB"));
}

static void test_size_parse(void **state)
{
	(void)state;
	size_t b;
	espl_error err;
	char name[16];
	assert_int_equal(espl_size_parse("4MB", &b, &err), 0);
	assert_int_equal(b, 4u << 20);
	assert_int_equal(espl_size_parse("512KB", &b, &err), 0);
	assert_int_equal(b, 512u << 10);
	assert_int_equal(espl_size_parse("0x1000", &b, &err), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(espl_size_parse("4096", &b, &err), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(espl_size_parse("4XB", &b, &err), ESPL_EARG);
	assert_int_equal(espl_size_parse("", &b, &err), ESPL_EARG);
	assert_string_equal(espl_size_name(4u << 20, name, sizeof name), "4MB");
	assert_string_equal(espl_size_name(512u << 10, name, sizeof name), "512KB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_recipe_system_area_agrees),
		cmocka_unit_test(test_size_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
