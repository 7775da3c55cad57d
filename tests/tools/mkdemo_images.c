/*
 * mkdemo_images.c - write the demo images the sample recipes use.
 *
 *   mkdemo_images OUTDIR
 *
 * writes OUTDIR/nodemcu-demo.bin (a NodeMCU-style combined image: an
 * ESP8266 v1 image at 0x0 with three segments, then its flash-mapped IROM
 * part at 0x10000 of the same file; 256 KiB, carrying the version banner
 * "NodeMCU 3.0.0-espline-demo ..." that the simulator prints when it boots
 * it) and OUTDIR/esp_init_data_demo.bin
 * (128 bytes in the layout of the SDK's esp_init_data_default.bin).  The
 * bytes are made up but deterministic, so the sample recipes can pin their
 * sha256; they program a simulator, not a real module.  Real users point
 * their recipes at their own firmware and at the init data of their SDK.
 *
 * Standalone on purpose (only libc): scripts/make-demo-images.sh builds and
 * runs it without the Makefile.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE_SIZE 0x40000u
#define IROM_OFFSET 0x10000u
#define BANNER_OFFSET 0x400u
#define DEMO_BANNER "NodeMCU 3.0.0-espline-demo build 2026-12-05 powered by Lua 5.1.4 on SDK 3.0.2"  /* made up */

typedef struct segment {
	uint32_t load_addr, len;
} segment;

/* IRAM code, DRAM data, DRAM rodata: the usual three of a non-OS SDK image. */
static const segment segments[] = {
	{ 0x40100000u, 0x6A40u },
	{ 0x3FFE8000u, 0x0874u },
	{ 0x3FFE8880u, 0x02F8u },
};

static uint32_t rng_state = 0x8266u;

static uint32_t next_random(void)
{
	/* xorshift32: deterministic across platforms */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Bytes that compress roughly like Xtensa code: mostly words from a small
 * vocabulary, some noise. */
static void fill_code_like(uint8_t *p, size_t len)
{
	uint32_t vocab[64];
	for (size_t i = 0; i < 64; i++)
		vocab[i] = next_random();
	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint32_t r = next_random();
		uint32_t w = (r & 0x300) ? vocab[r & 63] : next_random();
		memcpy(p + i, &w, 4);
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static size_t build_app(uint8_t *img)
{
	size_t nseg = sizeof segments / sizeof segments[0];
	size_t at = 8;
	uint8_t checksum = 0xEF;

	img[0] = 0xE9;          /* magic */
	img[1] = (uint8_t)nseg; /* segment count */
	img[2] = 0x00;          /* flash mode qio */
	img[3] = 0x40;          /* 4MB, 40m: recipes with flash settings patch this */
	put32(img + 4, 0x40100004u); /* entry */
	for (size_t s = 0; s < nseg; s++) {
		put32(img + at, segments[s].load_addr);
		put32(img + at + 4, segments[s].len);
		at += 8;
		fill_code_like(img + at, segments[s].len);
		for (uint32_t i = 0; i < segments[s].len; i++)
			checksum ^= img[at + i];
		at += segments[s].len;
	}
	/* zero padding up to 15 mod 16, then the checksum byte */
	while (at % 16 != 15)
		img[at++] = 0;
	img[at++] = checksum;
	return at;
}

static int write_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "mkdemo_images: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "mkdemo_images: cannot rename %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* 128 bytes in the layout of esp_init_data_default.bin (RF/PHY settings;
 * byte 0 the version, byte 114 the RF calibration mode).  Demo values. */
static void build_init_data(uint8_t *d)
{
	static const uint8_t head[] = {
		0x05, 0x08, 0x04, 0x02, 0x05, 0x05, 0x05, 0x02, 0x05, 0x00, 0x04, 0x05, 0x05, 0x04,
		0x05, 0x05, 0x04, 0xFE, 0xFD, 0xFF, 0xF0, 0xF0, 0xF0, 0xE0, 0xE0, 0xE0, 0xE1, 0x0A,
		0xFF, 0xFF, 0xF8, 0x00, 0xF8, 0xF8, 0x4E, 0x4A, 0x46, 0x40, 0x3C, 0x38, 0x00, 0x00,
		0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x01,
	};
	memset(d, 0, 128);
	memcpy(d, head, sizeof head);
	d[92] = 0xE1;
	d[93] = 0x0A;
	d[107] = 0x01;
	d[108] = 0x93;
	d[109] = 0x43;
	d[114] = 0x01; /* RF calibration: only on first boot after init data changed */
}

int main(int argc, char **argv)
{
	uint8_t *img;
	uint8_t init[128];

	if (argc != 2) {
		fprintf(stderr, "usage: mkdemo_images OUTDIR\n");
		return 2;
	}
	img = malloc(IMAGE_SIZE);
	if (!img)
		return 1;
	memset(img, 0xFF, IMAGE_SIZE);
	if (build_app(img) > IROM_OFFSET) {
		fprintf(stderr, "mkdemo_images: app part does not fit below 0x%x\n", IROM_OFFSET);
		return 1;
	}
	fill_code_like(img + IROM_OFFSET, IMAGE_SIZE - IROM_OFFSET - 0x2000);
	/* the version banner, as a C string among the constants, where the
	 * simulator's banner convention finds it (docs/boot-model.md) */
	memcpy(img + IROM_OFFSET + BANNER_OFFSET, "\0" DEMO_BANNER, sizeof DEMO_BANNER + 1);
	build_init_data(init);
	int rc = write_file(argv[1], "nodemcu-demo.bin", img, IMAGE_SIZE) ||
	         write_file(argv[1], "esp_init_data_demo.bin", init, sizeof init);
	free(img);
	return rc ? 1 : 0;
}
