/*
 * boot_fixture.h - test helper: ESP8266 v1 firmware images in memory, for
 * the tests of the simulator's boot path.
 *
 * The layout is esptool's (see docs/boot-model.md): an 8-byte header
 * (0xE9, segment count, flash mode, size/frequency, entry point), each
 * segment as address, length and data, zero padding up to 15 mod 16 and
 * the checksum byte (0xEF XOR every data byte).  Segment data are a
 * deterministic pattern from a seed.  Header-only: static functions.
 */
#ifndef ESPLINE_TEST_BOOT_FIXTURE_H
#define ESPLINE_TEST_BOOT_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct boot_seg {
	uint32_t addr, len;
} boot_seg;

#define BOOT_ENTRY 0x40100004u

static inline void boot_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Writes the image at img (room for it is the caller's business) and
 * returns its length; *checksum gets the checksum byte it stored. */
static inline size_t boot_image_write(uint8_t *img, uint8_t mode, uint8_t size_freq, const boot_seg *segs,
                                      size_t nseg, uint32_t seed, uint8_t *checksum)
{
	size_t at = 8;
	uint8_t cks = 0xEF;
	img[0] = 0xE9;
	img[1] = (uint8_t)nseg;
	img[2] = mode;
	img[3] = size_freq;
	boot_put32(img + 4, BOOT_ENTRY);
	for (size_t s = 0; s < nseg; s++) {
		boot_put32(img + at, segs[s].addr);
		boot_put32(img + at + 4, segs[s].len);
		at += 8;
		for (uint32_t i = 0; i < segs[s].len; i++) {
			uint8_t b = (uint8_t)(seed * 131u + s * 17u + i * 7u + (i >> 9));
			img[at + i] = b;
			cks ^= b;
		}
		at += segs[s].len;
	}
	while (at % 16 != 15)
		img[at++] = 0;
	img[at++] = cks;
	if (checksum)
		*checksum = cks;
	return at;
}

/* XOR of the seeded data of segments [0, upto], from 0xEF: what the ROM
 * prints as "chksum" after segment upto. */
static inline uint8_t boot_running_checksum(const boot_seg *segs, size_t upto, uint32_t seed)
{
	uint8_t cks = 0xEF;
	for (size_t s = 0; s <= upto; s++)
		for (uint32_t i = 0; i < segs[s].len; i++)
			cks ^= (uint8_t)(seed * 131u + s * 17u + i * 7u + (i >> 9));
	return cks;
}

/* The first bytes of an SDK init data sector (version byte 0x05). */
static inline void boot_put_init_data(uint8_t *flash, size_t at)
{
	static const uint8_t head[8] = { 0x05, 0x08, 0x04, 0x02, 0x05, 0x05, 0x05, 0x02 };
	memcpy(flash + at, head, sizeof head);
}

#endif /* ESPLINE_TEST_BOOT_FIXTURE_H */
