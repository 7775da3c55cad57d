/* test_esp8266.c - pure decoding: chip magic names, MAC and OUI rule, chip
 * id, crystal from CLKDIV, flash size from the JEDEC capacity byte, vendor
 * names, and the ROM erase-size correction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "espline/esp8266.h"
#include "espline/loader.h"

static void test_magic_names(void **state)
{
	(void)state;
	assert_string_equal(espl_chip_name_for_magic(0xFFF0C101), "ESP8266");
	assert_string_equal(espl_chip_name_for_magic(0x00F01D83), "ESP32");
	assert_string_equal(espl_chip_name_for_magic(0x000007C6), "ESP32-S2");
	assert_string_equal(espl_chip_name_for_magic(0x1B31506F), "ESP32-C3");
	assert_string_equal(espl_chip_name_for_magic(0x00000009), "ESP32-S3");
	assert_null(espl_chip_name_for_magic(0x12345678));
}

static void test_mac_oui_rule(void **state)
{
	(void)state;
	uint8_t mac[6];
	espl_error err;
	/* MAC3 set: OUI from it (esptool issue #620: 84:0D:8E). */
	uint32_t e1[4] = { 0xAB000000, 0x00001234, 0, 0x00840D8E };
	assert_int_equal(espl_esp8266_mac(e1, mac, &err), 0);
	assert_memory_equal(mac, ((uint8_t[]){ 0x84, 0x0D, 0x8E, 0x12, 0x34, 0xAB }), 6);
	/* selector 0: 18:FE:34 */
	uint32_t e2[4] = { 0x56000000, 0x00003412, 0, 0 };
	assert_int_equal(espl_esp8266_mac(e2, mac, &err), 0);
	assert_memory_equal(mac, ((uint8_t[]){ 0x18, 0xFE, 0x34, 0x34, 0x12, 0x56 }), 6);
	/* selector 1: AC:D0:74 */
	uint32_t e3[4] = { 0x01000000, 0x0001FFEE, 0, 0 };
	assert_int_equal(espl_esp8266_mac(e3, mac, &err), 0);
	assert_memory_equal(mac, ((uint8_t[]){ 0xAC, 0xD0, 0x74, 0xFF, 0xEE, 0x01 }), 6);
	/* anything else: refused */
	uint32_t e4[4] = { 0, 0x00020000, 0, 0 };
	assert_int_equal(espl_esp8266_mac(e4, mac, &err), ESPL_EDEVICE);
	assert_non_null(strstr(err.msg, "OUI"));
}

static void test_chip_id_and_description(void **state)
{
	(void)state;
	uint32_t e[4] = { 0xAB000000, 0x00001234, 0, 0 };
	assert_int_equal(espl_esp8266_chip_id(e), 0x1234AB);
	assert_string_equal(espl_esp8266_description(e), "ESP8266EX");
	uint32_t e8285[4] = { 0x10, 0, 0, 0 };
	assert_non_null(strstr(espl_esp8266_description(e8285), "ESP8285"));
	uint32_t e8285b[4] = { 0, 0, 0x10000, 0 };
	assert_non_null(strstr(espl_esp8266_description(e8285b), "ESP8285"));
}

static void test_crystal(void **state)
{
	(void)state;
	double est;
	assert_int_equal(espl_esp8266_xtal_mhz(0x1C4, 115200, &est), 26); /* real trace */
	assert_true(est > 25.5 && est < 26.5);
	assert_int_equal(espl_esp8266_xtal_mhz(694, 115200, &est), 40);
	assert_true(est > 39.5 && est < 40.5);
	/* after the stub switched to 921600 the divider scales down */
	assert_int_equal(espl_esp8266_xtal_mhz(56, 921600, NULL), 26);
	assert_int_equal(espl_esp8266_xtal_mhz(87, 921600, NULL), 40);
}

static void test_flash_size_and_vendor(void **state)
{
	(void)state;
	assert_int_equal(espl_flash_size_from_capacity(0x16), 4u << 20);
	assert_int_equal(espl_flash_size_from_capacity(0x36), 4u << 20);
	assert_int_equal(espl_flash_size_from_capacity(0x13), 512u << 10);
	assert_int_equal(espl_flash_size_from_capacity(0x18), 16u << 20);
	assert_int_equal(espl_flash_size_from_capacity(0x20), 64u << 20);
	assert_int_equal(espl_flash_size_from_capacity(0x99), 0);
	assert_string_equal(espl_flash_vendor(0xEF), "Winbond");
	assert_string_equal(espl_flash_vendor(0xC8), "GigaDevice");
	assert_string_equal(espl_flash_vendor(0x42), "unknown");
}

static void test_rom_erase_size(void **state)
{
	(void)state;
	/* protocol notes §5.4 examples */
	assert_int_equal(espl_rom_erase_size(0x000000, 0x1000), 0x1000);
	assert_int_equal(espl_rom_erase_size(0x000000, 0x10000), 0x8000);
	assert_int_equal(espl_rom_erase_size(0x000000, 0x60000), 0x50000);
	assert_int_equal(espl_rom_erase_size(0x3FB000, 0x5000), 0x3000);
	assert_int_equal(espl_rom_erase_size(0x3FC000, 0x1000), 0x1000);
	/* Under the ROM model (erases r + min(r, head) sectors), the correction
	 * never under-erases and over-erases by at most one sector. */
	for (uint32_t start = 0; start < 32; start++) {
		for (uint32_t sectors = 1; sectors < 80; sectors++) {
			uint32_t r = espl_rom_erase_size(start * 0x1000, sectors * 0x1000) / 0x1000;
			uint32_t head = 16 - start % 16;
			uint32_t erased = r + (r < head ? r : head);
			assert_true(erased >= sectors);
			assert_true(erased <= sectors + 1);
		}
	}
}

static void test_timeouts(void **state)
{
	(void)state;
	assert_int_equal(espl_timeout_for(ESPL_ERASE_MS_PER_MB, 1000), ESPL_TIMEOUT_DEFAULT_MS);
	assert_int_equal(espl_timeout_for(ESPL_ERASE_MS_PER_MB, 1000000), 30000);
	assert_int_equal(espl_timeout_for(ESPL_WRITE_MS_PER_MB, 16 * 1000000), ESPL_TIMEOUT_MAX_MS);
	assert_int_equal(espl_checksum((const uint8_t *)"\x01\x02", 2, 0xEF), 0xEF ^ 0x03);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magic_names),
		cmocka_unit_test(test_mac_oui_rule),
		cmocka_unit_test(test_chip_id_and_description),
		cmocka_unit_test(test_crystal),
		cmocka_unit_test(test_flash_size_and_vendor),
		cmocka_unit_test(test_rom_erase_size),
		cmocka_unit_test(test_timeouts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
