/* fuzz_image.c - libFuzzer target: ESP8266 image header parsing, header
 * patching and image preparation (include/espline/image.h).
 *
 * Input: byte 0 chooses the flash parameters (mode, size, frequency, each
 * possibly "keep" or "detect") and the address; the rest is the image file.
 * Checks: a parsed image's segments and checksum lie inside the data and
 * the checksum is recomputed the same; patching touches only bytes 2..3 and
 * writes what was asked; a prepared image is the input padded to 4 bytes
 * with 0xFF (plus the patch), its MD5 is right, its zlib stream inflates
 * back to it and the per-block output counts add up to its size. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "espline/image.h"
#include "fuzz_util.h"

#define FUZZ_IMAGE_MAX (64u << 10)

static void fuzz_image_params(uint8_t sel, espl_flash_params *p, size_t *flash_size)
{
	static const int sizes[8] = { ESPL_PARAM_KEEP, ESPL_PARAM_DETECT, 0x00, 0x10,
				      0x20, 0x40, 0x90, ESPL_PARAM_DETECT };
	static const int freqs[4] = { ESPL_PARAM_KEEP, 0x0, 0x1, 0xF };
	static const size_t flash[4] = { 4u << 20, 1u << 20, 3u << 20, 0 };
	unsigned m = sel & 7;
	p->mode = m < 4 ? (int)m : ESPL_PARAM_KEEP;
	p->size = sizes[(sel >> 3) & 7];
	p->freq = freqs[(sel >> 6) & 3];
	*flash_size = flash[(sel >> 1) & 3];
}

static void fuzz_image_check_info(const uint8_t *d, size_t len, const espl_image_info *info)
{
	uint8_t sum = 0xEF;
	FUZZ_CHECK(info->nsegments >= 1 && info->nsegments <= ESPL_IMAGE_MAX_SEGMENTS);
	FUZZ_CHECK(info->end <= len && info->end % 16 == 0);
	for (unsigned i = 0; i < info->nsegments; i++) {
		const espl_image_segment *s = &info->seg[i];
		FUZZ_CHECK(s->file_offset <= len && s->len <= len - s->file_offset);
		FUZZ_CHECK(s->file_offset + s->len < info->end);
		for (size_t k = 0; k < s->len; k++)
			sum ^= d[s->file_offset + k];
	}
	FUZZ_CHECK(sum == info->computed && info->checksum == info->computed);
	FUZZ_CHECK(d[info->end - 1] == info->checksum);
}

static void fuzz_image_check_patch(const uint8_t *d, size_t len, const espl_flash_params *p)
{
	uint8_t *copy = malloc(len ? len : 1);
	espl_error err;
	espl_image_info before;
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, d, len);
	int parsed = espl_image_parse(d, len, &before, &err) == 0;
	int rc = espl_image_patch(copy, len, p, &err);
	FUZZ_CHECK(rc == 0 || rc == 1 || rc < 0);
	for (size_t i = 0; i < len; i++)
		if (rc < 0 || (i != 2 && i != 3))
			FUZZ_CHECK(copy[i] == d[i]);
	if (rc == 1)
		FUZZ_CHECK(copy[2] != d[2] || copy[3] != d[3]);
	if (rc >= 0 && len >= 4 && p->size != ESPL_PARAM_DETECT) {
		if (p->mode != ESPL_FLASH_MODE_KEEP)
			FUZZ_CHECK(copy[2] == (uint8_t)p->mode);
		if (p->size != ESPL_PARAM_KEEP)
			FUZZ_CHECK((copy[3] & 0xF0) == (uint8_t)p->size);
		if (p->freq != ESPL_FREQ_KEEP)
			FUZZ_CHECK((copy[3] & 0x0F) == (uint8_t)p->freq);
	}
	if (parsed && rc >= 0) {
		espl_image_info after;
		FUZZ_CHECK(espl_image_parse(copy, len, &after, &err) == 0);
		FUZZ_CHECK(after.end == before.end && after.nsegments == before.nsegments);
	}
	free(copy);
}

static void fuzz_image_check_prepared(const uint8_t *d, size_t len, const espl_image *img)
{
	uint8_t md5[16];
	unsigned mlen = sizeof md5;
	size_t padded = (len + 3) & ~(size_t)3;

	FUZZ_CHECK(img->size == padded && img->file_size == len);
	for (size_t i = 0; i < padded; i++) {
		if (i >= len)
			FUZZ_CHECK(img->data[i] == 0xFF);
		else if (!(img->patched && (i == 2 || i == 3)))
			FUZZ_CHECK(img->data[i] == d[i]);
	}
	FUZZ_CHECK(EVP_Digest(img->data, img->size, md5, &mlen, EVP_md5(), NULL) == 1);
	FUZZ_CHECK(memcmp(md5, img->md5, 16) == 0);
	FUZZ_CHECK(strlen(img->md5_hex) == 32);

	uLongf out_len = (uLongf)img->size;
	uint8_t *back = malloc(img->size ? img->size : 1);
	FUZZ_CHECK(back != NULL);
	FUZZ_CHECK(uncompress(back, &out_len, img->zdata, (uLong)img->zsize) == Z_OK);
	FUZZ_CHECK(out_len == img->size && memcmp(back, img->data, img->size) == 0);
	free(back);

	size_t total = 0;
	FUZZ_CHECK(img->zblocks == (img->zsize + 0x4000 - 1) / 0x4000);
	for (size_t b = 0; b < img->zblocks; b++)
		total += img->zblock_out[b];
	FUZZ_CHECK(total == img->size);
}

static int fuzz_image_one(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_IMAGE_MAX)
		return 0;
	espl_flash_params p;
	size_t flash_size;
	fuzz_image_params(data[0], &p, &flash_size);
	uint32_t address = (data[0] & 0x20) && (data[0] & 0x01) ? 0x1000 : 0;
	const uint8_t *d = data + 1;
	size_t len = size - 1;
	espl_error err;
	espl_image_info info;

	if (espl_image_parse(d, len, &info, &err) == 0)
		fuzz_image_check_info(d, len, &info);
	else
		FUZZ_CHECK(err.code == ESPL_EARG && err.msg[0] != '\0');

	if (p.size != ESPL_PARAM_DETECT)
		fuzz_image_check_patch(d, len, &p);

	espl_image *img = NULL;
	int rc = espl_image_prepare(d, len, address, &p, flash_size, "fuzz.bin", &img, &err);
	if (rc == 0) {
		FUZZ_CHECK(img != NULL);
		fuzz_image_check_prepared(d, len, img);
		espl_image_free(img);
	} else {
		FUZZ_CHECK(img == NULL && rc < 0 && err.msg[0] != '\0');
	}

	/* The shared source: same bytes whichever way it is asked. */
	espl_image_source *src = NULL;
	if (espl_image_source_new(d, len, "fuzz.bin", address, &p, &src, &err) == 0) {
		const espl_image *a = NULL, *b = NULL;
		int ra = espl_image_source_get(src, flash_size, &a, &err);
		int rb = espl_image_source_get(src, flash_size, &b, &err);
		FUZZ_CHECK(ra == rb);
		if (ra == 0) {
			FUZZ_CHECK(a->size == b->size && memcmp(a->data, b->data, a->size) == 0);
			fuzz_image_check_prepared(d, len, a);
		}
		espl_image_source_free(src);
	}
	return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_image_one(data, size);
}
#endif
