/* loader_fixture.h - what the in-process loader and runner tests
 * (test_loader.c, test_runner.c) share: the fake stub file, a simulated
 * chip of a given flash size, and firmware-like bytes.  The port that runs
 * the chip is tests/sim/sim_port.h.  Header-only because each test_*.c is
 * its own program. */
#ifndef ESPLINE_TEST_LOADER_FIXTURE_H
#define ESPLINE_TEST_LOADER_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../sim/sim_chip.h"

/* The chip model only needs something uploaded before MEM_END to start its
 * stub personality: 16 bytes of text, 4 of data ("AAEC..." = bytes 0..15). */
static const char fake_stub_json[] =
	"{\"entry\": 1074840836, \"text\": \"AAECAwQFBgcICQoLDA0ODw==\", "
	"\"text_start\": 1074840832, \"data\": \"AAECAw==\", \"data_start\": 1073720940}\n";

/* Write the fake stub to path (a test fails if it cannot). */
static inline void write_fake_stub_to(const char *path)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(fake_stub_json, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A chip of flash_size bytes whose JEDEC id says so (manufacturer byte,
 * memory type 0x40, capacity log2), crystal xtal_mhz, MAC mac (NULL: the
 * simulator's default). */
static inline sim_chip_config chip_of_size(size_t flash_size, uint8_t manufacturer, unsigned xtal_mhz,
                                           const uint8_t mac[6])
{
	sim_chip_config cfg;
	sim_chip_config_defaults(&cfg);
	if (mac)
		memcpy(cfg.mac, mac, 6);
	unsigned cap = 0;
	while (((size_t)1 << cap) < flash_size)
		cap++;
	cfg.flash_size = flash_size;
	cfg.jedec_id = manufacturer | 0x4000u | (uint32_t)cap << 16;
	cfg.xtal_mhz = xtal_mhz;
	return cfg;
}

/* Firmware-like bytes: repetitive text (word, cycled) with some noise, so
 * they deflate like a real image.  Deterministic in seed. */
static inline void fill_firmware(uint8_t *d, size_t n, unsigned seed, const char *word)
{
	size_t wlen = strlen(word);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		d[i] = (x >> 24) % 4 == 0 ? (uint8_t)(x >> 16) : (uint8_t)word[i % wlen];
	}
}

#endif
