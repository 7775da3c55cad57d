/* test_image.c - image header parsing, flash-parameter patching, prepared
 * images (padding, MD5, deflate) and per-flash-size variants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "espline/image.h"
#include "espline/loader.h"

/* Build a v1 image: header, segments of given lengths, padding, checksum. */
static size_t make_image(uint8_t *buf, size_t cap, uint8_t mode, uint8_t sizefreq,
			 const uint32_t *seglens, unsigned nseg, int bad_checksum)
{
	size_t pos = 8;
	uint8_t chk = 0xEF;
	buf[0] = 0xE9;
	buf[1] = (uint8_t)nseg;
	buf[2] = mode;
	buf[3] = sizefreq;
	buf[4] = 0x04; buf[5] = 0x10; buf[6] = 0x10; buf[7] = 0x40; /* entry 0x40101004 */
	for (unsigned s = 0; s < nseg; s++) {
		uint32_t addr = 0x40100000 + s * 0x1000;
		memcpy(buf + pos, &addr, 4); /* little-endian host */
		memcpy(buf + pos + 4, &seglens[s], 4);
		pos += 8;
		for (uint32_t i = 0; i < seglens[s]; i++) {
			buf[pos] = (uint8_t)(i * 7 + s);
			chk ^= buf[pos++];
		}
	}
	while (pos % 16 != 15)
		buf[pos++] = 0;
	buf[pos++] = bad_checksum ? (uint8_t)~chk : chk;
	assert_true(pos <= cap);
	return pos;
}

static void test_parse_valid(void **state)
{
	(void)state;
	uint8_t buf[512];
	uint32_t segs[] = { 20, 33 };
	espl_image_info info;
	espl_error err;
	size_t n = make_image(buf, sizeof buf, 2, 0x40, segs, 2, 0);
	assert_int_equal(n % 16, 0);
	assert_int_equal(espl_image_parse(buf, n, &info, &err), 0);
	assert_int_equal(info.nsegments, 2);
	assert_int_equal(info.mode, 2);
	assert_int_equal(info.size_code, 0x40);
	assert_int_equal(info.freq, 0);
	assert_int_equal(info.entry, 0x40101004);
	assert_int_equal(info.seg[1].len, 33);
	assert_int_equal(info.seg[1].file_offset, 8 + 8 + 20 + 8);
	assert_int_equal(info.end, n);
	assert_int_equal(info.checksum, info.computed);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	uint8_t buf[512];
	uint32_t segs[] = { 20 };
	espl_image_info info;
	espl_error err;
	size_t n = make_image(buf, sizeof buf, 0, 0, segs, 1, 1);
	assert_int_equal(espl_image_parse(buf, n, &info, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "checksum"));

	n = make_image(buf, sizeof buf, 0, 0, segs, 1, 0);
	assert_int_equal(espl_image_parse(buf, n - 1, &info, &err), ESPL_EARG); /* no checksum byte */
	assert_int_equal(espl_image_parse(buf, 20, &info, &err), ESPL_EARG);    /* truncated segment */
	assert_non_null(strstr(err.msg, "past the end"));
	buf[0] = 0xEA;
	assert_int_equal(espl_image_parse(buf, n, &info, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "0xEA"));
	buf[0] = 0xE9;
	buf[1] = 17;
	assert_int_equal(espl_image_parse(buf, n, &info, &err), ESPL_EARG);
}

static void test_param_names(void **state)
{
	(void)state;
	int code;
	espl_error err;
	assert_int_equal(espl_flash_mode_parse("dout", &code, &err), 0);
	assert_int_equal(code, 3);
	assert_int_equal(espl_flash_size_parse("4MB", &code, &err), 0);
	assert_int_equal(code, 0x40);
	assert_int_equal(espl_flash_size_parse("256KB", &code, &err), 0);
	assert_int_equal(code, 0x10);
	assert_int_equal(espl_flash_size_parse("16MB", &code, &err), 0);
	assert_int_equal(code, 0x90);
	assert_int_equal(espl_flash_size_parse("detect", &code, &err), 0);
	assert_int_equal(code, ESPL_PARAM_DETECT);
	assert_int_equal(espl_flash_freq_parse("80m", &code, &err), 0);
	assert_int_equal(code, 0xF);
	assert_int_equal(espl_flash_freq_parse("keep", &code, &err), 0);
	assert_int_equal(code, ESPL_PARAM_KEEP);
	assert_int_equal(espl_flash_mode_parse("detect", &code, &err), ESPL_EARG);
	assert_int_equal(espl_flash_freq_parse("33m", &code, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "40m"));
	assert_int_equal(espl_flash_size_code(1u << 20), 0x20);
	assert_int_equal(espl_flash_size_code(512u << 10), 0x00);
	assert_int_equal(espl_flash_size_code(32u << 20), -1);
	assert_string_equal(espl_flash_size_name(0x60), "4MB-c1");
}

static void test_patch(void **state)
{
	(void)state;
	uint8_t buf[256];
	uint32_t segs[] = { 16 };
	espl_error err;
	espl_flash_params p;
	size_t n = make_image(buf, sizeof buf, 0, 0x21, segs, 1, 0);
	espl_flash_params_keep(&p);
	assert_int_equal(espl_image_patch(buf, n, &p, &err), 0);
	p.mode = 2; /* dio; size and freq kept */
	assert_int_equal(espl_image_patch(buf, n, &p, &err), 1);
	assert_int_equal(buf[2], 2);
	assert_int_equal(buf[3], 0x21);
	p.size = 0x40;
	p.freq = 0xF;
	assert_int_equal(espl_image_patch(buf, n, &p, &err), 1);
	assert_int_equal(buf[3], 0x4F);
	assert_int_equal(espl_image_patch(buf, n, &p, &err), 0); /* already so */
	/* Not an image: refused. */
	buf[0] = 0x00;
	assert_int_equal(espl_image_patch(buf, n, &p, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "not an ESP8266 image"));
}

static void md5(const uint8_t *d, size_t n, uint8_t out[16])
{
	unsigned len = 16;
	EVP_Digest(d, n, out, &len, EVP_md5(), NULL);
}

static void test_prepare_pads_hashes_compresses(void **state)
{
	(void)state;
	size_t n = 100003;
	uint8_t *d = malloc(n + 1);
	espl_image *img;
	espl_error err;
	espl_flash_params keep;
	uint8_t want[16];
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)((i % 251) ^ (i >> 9));
	espl_flash_params_keep(&keep);
	assert_int_equal(espl_image_prepare(d, n, 0x10000, &keep, 0, "x.bin", &img, &err), 0);
	assert_int_equal(img->size, 100004);
	assert_int_equal(img->file_size, n);
	assert_int_equal(img->data[n], 0xFF);
	assert_memory_equal(img->data, d, n);
	d[n] = 0xFF;
	md5(d, n + 1, want);
	assert_memory_equal(img->md5, want, 16);
	assert_int_equal(strlen(img->md5_hex), 32);
	assert_false(img->patched);

	/* The zlib stream inflates to the image, and the per-block output
	 * counts add up to its size. */
	uint8_t *back = malloc(img->size);
	uLongf blen = img->size;
	assert_int_equal(uncompress(back, &blen, img->zdata, img->zsize), Z_OK);
	assert_int_equal(blen, img->size);
	assert_memory_equal(back, img->data, img->size);
	assert_int_equal(img->zblocks, (img->zsize + ESPL_STUB_WRITE_BLOCK - 1) / ESPL_STUB_WRITE_BLOCK);
	size_t sum = 0;
	for (size_t b = 0; b < img->zblocks; b++)
		sum += img->zblock_out[b];
	assert_int_equal(sum, img->size);
	free(back);
	espl_image_free(img);

	assert_int_equal(espl_image_prepare(d, 0, 0, &keep, 0, "empty.bin", &img, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "empty"));
	free(d);
}

static void test_prepare_patches_only_at_zero(void **state)
{
	(void)state;
	uint8_t buf[256];
	uint32_t segs[] = { 40 };
	size_t n = make_image(buf, sizeof buf, 0, 0x00, segs, 1, 0);
	espl_flash_params p = { .mode = 3, .size = ESPL_PARAM_DETECT, .freq = ESPL_PARAM_KEEP };
	espl_image *img;
	espl_error err;

	assert_int_equal(espl_image_prepare(buf, n, 0x1000, &p, 4u << 20, "a", &img, &err), 0);
	assert_false(img->patched);
	assert_memory_equal(img->data, buf, n);
	espl_image_free(img);

	assert_int_equal(espl_image_prepare(buf, n, 0, &p, 4u << 20, "a", &img, &err), 0);
	assert_true(img->patched);
	assert_int_equal(img->data[2], 3);
	assert_int_equal(img->data[3], 0x40);
	/* The MD5 is of the patched bytes. */
	uint8_t want[16];
	md5(img->data, img->size, want);
	assert_memory_equal(img->md5, want, 16);
	espl_image_free(img);

	/* detect without a known size is an error. */
	assert_int_equal(espl_image_prepare(buf, n, 0, &p, 0, "a", &img, &err), ESPL_EARG);
}

static void test_source_variants_and_rejection(void **state)
{
	(void)state;
	uint8_t buf[256];
	uint32_t segs[] = { 40 };
	size_t n = make_image(buf, sizeof buf, 0, 0x00, segs, 1, 0);
	espl_flash_params p = { .mode = ESPL_PARAM_KEEP, .size = ESPL_PARAM_DETECT, .freq = ESPL_PARAM_KEEP };
	espl_image_source *src;
	const espl_image *a, *b, *c;
	espl_error err;

	assert_int_equal(espl_image_source_new(buf, n, "fw.bin", 0, &p, &src, &err), 0);
	assert_true(espl_image_source_needs_size(src));
	assert_int_equal(espl_image_source_get(src, 1u << 20, &a, &err), 0);
	assert_int_equal(espl_image_source_get(src, 4u << 20, &b, &err), 0);
	assert_int_equal(espl_image_source_get(src, 1u << 20, &c, &err), 0);
	assert_ptr_equal(a, c); /* built once per size */
	assert_ptr_not_equal(a, b);
	assert_int_equal(a->data[3], 0x20);
	assert_int_equal(b->data[3], 0x40);
	assert_int_equal(espl_image_source_get(src, 0, &c, &err), ESPL_EARG);
	espl_image_source_free(src);

	/* Patching asked at 0x0 but the file is not an image: refused early. */
	uint8_t text[64];
	memset(text, 'A', sizeof text);
	assert_int_equal(espl_image_source_new(text, sizeof text, "notes.txt", 0, &p, &src, &err), ESPL_EARG);
	assert_non_null(strstr(err.msg, "notes.txt"));
	assert_non_null(strstr(err.msg, "not a bootable image"));
	/* ...but fine elsewhere or with keep. */
	assert_int_equal(espl_image_source_new(text, sizeof text, "notes.txt", 0x1000, &p, &src, &err), 0);
	assert_false(espl_image_source_needs_size(src));
	assert_int_equal(espl_image_source_get(src, 0, &a, &err), 0);
	assert_memory_equal(a->data, text, sizeof text);
	espl_image_source_free(src);
}

static void test_source_open_file(void **state)
{
	(void)state;
	char path[64];
	espl_image_source *src;
	const espl_image *img;
	espl_error err;
	snprintf(path, sizeof path, "/tmp/espline-test-image-%d.bin", (int)getpid());
	FILE *f = fopen(path, "wb");
	for (int i = 0; i < 200000; i++)
		fputc(i % 13, f);
	fclose(f);
	assert_int_equal(espl_image_source_open(path, 0x2000, NULL, &src, &err), 0);
	assert_int_equal(espl_image_source_get(src, 0, &img, &err), 0);
	assert_int_equal(img->size, 200000);
	assert_int_equal(img->data[199999], 199999 % 13);
	assert_int_equal(img->address, 0x2000);
	espl_image_source_free(src);
	unlink(path);
	assert_int_equal(espl_image_source_open(path, 0, NULL, &src, &err), ESPL_ENOTFOUND);
	assert_non_null(strstr(err.msg, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_param_names),
		cmocka_unit_test(test_patch),
		cmocka_unit_test(test_prepare_pads_hashes_compresses),
		cmocka_unit_test(test_prepare_patches_only_at_zero),
		cmocka_unit_test(test_source_variants_and_rejection),
		cmocka_unit_test(test_source_open_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
